//! SUMP completeness against the simulated analyzer: run-length encoded captures, duty and
//! period count, VCD export of a real capture; RLE fallback on a device that does not offer it.

mod common;

use std::{
    io::{Read, Write},
    time::{Duration, Instant},
};

use bench_config::RigConfig;
use rig::assembly as rig_assembly;
use rig_instruments::drivers::sump::{SumpAnalyzer, SumpOptions};
use rig_instruments::PulseMeter;
use rig_sim::SimulatedBench;
use serialport::{SerialPort, TTYPort};

fn powered_bench() -> SimulatedBench {
    let config = RigConfig::load(&common::repo("rig-config/sim.toml")).expect("sim.toml");
    let bench =
        SimulatedBench::start(rig_assembly::simulated_bench_config(&config)).expect("bench starts");
    bench.shared.set_power(true);
    std::thread::sleep(Duration::from_millis(50));
    bench
}

#[test]
fn rle_captures_decode_to_the_same_servo_measurement_as_raw_ones() {
    let _g = common::bench_lock();
    let bench = powered_bench();
    let mut options = SumpOptions::new(0, 1_000_000);
    options.rle = true;
    options.max_jitter_us = 0.0; // the simulated timer is exact
    let mut rle = SumpAnalyzer::open_with(&bench.ports.sump, &options).unwrap();
    assert!(rle.rle_active(), "the simulator offers protocol version 2");
    assert!(rle.describe().ends_with(", RLE"), "{}", rle.describe());
    let c = rle.capture(3).unwrap().capture;
    // Only ~1/64 of the samples travel, yet the window holds three whole pulses.
    assert_eq!(c.high_us, vec![900.0; 3]);
    assert_eq!(c.period_us, vec![20_000.0; 2]);
    assert_eq!(c.periods, 2);
    assert!((c.duty.unwrap() - 0.045).abs() < 1e-9, "{:?}", c.duty);
    assert!(
        (43_000..44_000).contains(&c.samples),
        "RLE window {} samples",
        c.samples
    );
    drop(rle);

    let mut raw = SumpAnalyzer::open(&bench.ports.sump, 0, 1_000_000).unwrap();
    assert!(!raw.rle_active());
    let r = raw.capture(3).unwrap().capture;
    assert_eq!((r.high_us, r.period_us), (c.high_us, c.period_us));
}

#[test]
fn a_real_capture_exports_to_vcd() {
    let _g = common::bench_lock();
    let bench = powered_bench();
    let mut analyzer = SumpAnalyzer::open(&bench.ports.sump, 0, 1_000_000).unwrap();
    let c = analyzer.capture(2).unwrap().capture;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.vcd");
    c.export_vcd(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("$timescale 1 us $end"));
    assert!(text.contains("$var wire 1 ! servo $end"));
    // Starts high at the trigger; then falls, rises, falls: value changes only.
    let changes: Vec<&str> = text.lines().skip_while(|l| *l != "$end").skip(1).collect();
    assert_eq!(
        changes,
        [
            "#900",
            "0!",
            "#20000",
            "1!",
            "#20900",
            "0!",
            &format!("#{}", c.samples)
        ][..]
    );
    assert!(text.contains("$dumpvars\n1!\n$end"));
}

#[test]
fn rle_falls_back_to_raw_samples_when_the_device_does_not_offer_it() {
    let (mut fake, slave) = TTYPort::pair().unwrap();
    fake.set_timeout(Duration::from_millis(5)).unwrap();
    let path = slave.name().unwrap();
    let device = std::thread::spawn(move || {
        // An original SUMP core: ID and metadata without a protocol version.
        let end = Instant::now() + Duration::from_secs(2);
        let mut buf = [0u8; 64];
        let mut answered = 0;
        while Instant::now() < end && answered < 2 {
            if let Ok(n) = fake.read(&mut buf) {
                for &b in &buf[..n] {
                    match b {
                        0x02 => fake.write_all(b"1ALS").unwrap(),
                        0x04 => fake
                            .write_all(b"\x01old sump\x00\x20\x00\x00\x00\x08\x00")
                            .unwrap(),
                        _ => continue,
                    }
                    answered += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    });
    let mut options = SumpOptions::new(0, 1_000_000);
    options.rle = true;
    let analyzer = SumpAnalyzer::open_with(&path, &options).unwrap();
    assert_eq!(analyzer.metadata.protocol_version, None);
    assert!(!analyzer.rle_active());
    assert!(!analyzer.describe().contains("RLE"));
    drop(analyzer);
    device.join().unwrap();
    // RLE needs bit 7 for the count flag: channel 7 is refused up front.
    let mut seven = SumpOptions::new(7, 1_000_000);
    seven.rle = true;
    let err = SumpAnalyzer::open_with("/dev/null", &seven)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("0-6 with RLE"), "{err}");
}
