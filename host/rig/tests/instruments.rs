//! Host drivers against simulators over pseudo-terminals, checking the bytes on the wire.

mod common;

use std::{
    io::{Read, Write},
    time::{Duration, Instant},
};

use gauge_logic::{frame::CanFrame, supply::SupplyConfig};
use rig_instruments::drivers::{lcus::LcusRelay, slcan::SlcanAdapter, sump::SumpAnalyzer};
use rig_instruments::{CanAdapter, InstrumentError, PowerSwitch, PulseMeter};
use rig_sim::{
    logic_board::{LogicFirmware, OptionBytes},
    SimulatedBench, SimulatedBenchConfig,
};
use serialport::{SerialPort, TTYPort};

fn bench() -> SimulatedBench {
    SimulatedBench::start(SimulatedBenchConfig {
        wiring: SupplyConfig::DirectSmps,
        preloaded: LogicFirmware {
            supply: SupplyConfig::DirectSmps,
        },
        option_bytes: OptionBytes::default(),
        relay_channel: 1,
        supply_rise_ms: 0,
        probe_supply: Default::default(),
        recovery_line: None,
        can_interface: None,
        faults: Default::default(),
    })
    .expect("bench starts")
}

/// Reads from a fake device until `want` bytes arrived or a second passed.
fn read_n(port: &mut TTYPort, want: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let end = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 256];
    while out.len() < want && Instant::now() < end {
        if let Ok(n) = port.read(&mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
    }
    out
}

#[test]
fn relay_driver_sends_lcus_bytes_and_switches_the_simulated_board() {
    let _g = common::bench_lock();
    let bench = bench();
    let mut relay = LcusRelay::open(&bench.ports.relay, 1).unwrap();
    relay.set_power(true).unwrap();
    relay.set_power(false).unwrap();
    let end = Instant::now() + Duration::from_secs(1);
    while bench.shared.relay_log.lock().unwrap().len() < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    let log = bench.shared.relay_log.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![
            ([0xA0, 0x01, 0x01, 0xA2], true),
            ([0xA0, 0x01, 0x00, 0xA1], true)
        ]
    );
    assert!(!bench.shared.board().powered);
}

/// An LCUS-2: channel 1 in the board's supply, channel 2 from NRST to GND. The driver's second
/// channel shares the port; with NRST held across the power-on the LDO build in flash never
/// runs, and releasing it lets it run and lock the chip up.
#[test]
fn relay_driver_holds_nrst_through_its_second_channel() {
    let _g = common::bench_lock();
    let bench = SimulatedBench::start(SimulatedBenchConfig {
        wiring: SupplyConfig::DirectSmps,
        preloaded: LogicFirmware {
            supply: SupplyConfig::Ldo,
        },
        option_bytes: OptionBytes::default(),
        relay_channel: 1,
        supply_rise_ms: 0,
        probe_supply: Default::default(),
        recovery_line: Some(bench_config::RecoveryLine {
            pin: bench_config::RecoveryPin::Nrst,
            channel: 2,
        }),
        can_interface: None,
        faults: Default::default(),
    })
    .expect("bench starts");
    let mut power = LcusRelay::open(&bench.ports.relay, 1).unwrap();
    let mut nrst = power.channel(2);
    assert!(nrst.describe().contains("channel 2"), "{}", nrst.describe());
    let alive = || {
        bench
            .shared
            .board()
            .target
            .debug_accessible(rig_instruments::CoreSelect::Cm7)
    };
    let commands_seen = |n: usize| {
        let end = Instant::now() + Duration::from_secs(1);
        while bench.shared.relay_log.lock().unwrap().len() < n && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    nrst.set_power(true).unwrap();
    power.set_power(true).unwrap();
    commands_seen(2);
    assert!(alive(), "held in reset across the power-on");
    nrst.set_power(false).unwrap();
    commands_seen(3);
    assert!(
        !alive(),
        "released: the LDO build ran and locked the chip up"
    );
    let log = bench.shared.relay_log.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![
            ([0xA0, 0x02, 0x01, 0xA3], true),
            ([0xA0, 0x01, 0x01, 0xA2], true),
            ([0xA0, 0x02, 0x00, 0xA2], true)
        ]
    );
}

/// A frame line that comes in the same read as the answer to `F` (found in bad_frames: the
/// line was left in the driver's buffer, swallowed the next acknowledgement, and the adapter
/// was called silent).
#[test]
fn slcan_driver_keeps_what_follows_a_query_answer() {
    let (mut fake, slave) = TTYPort::pair().unwrap();
    fake.set_timeout(Duration::from_millis(5)).unwrap();
    let path = slave.name().unwrap();
    let device = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let end = Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 64];
        let mut acks = 0;
        while Instant::now() < end && acks < 1 {
            if let Ok(n) = fake.read(&mut buf) {
                for &b in &buf[..n] {
                    seen.push(b);
                    if b != b'\r' {
                        continue;
                    }
                    let line = String::from_utf8_lossy(&seen).to_string();
                    seen.clear();
                    let reply: &[u8] = match line.as_str() {
                        "\r" | "C\r" => b"\x07",
                        "S6\r" | "O\r" => b"\r",
                        "F\r" => b"F00\rt7E8803415C82AAAAAAAA\r",
                        l if l.starts_with('t') => {
                            acks += 1;
                            b"z\r"
                        }
                        other => panic!("unexpected command {other:?}"),
                    };
                    fake.write_all(reply).unwrap();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(800));
    });
    let mut adapter = SlcanAdapter::open(&path, 500_000, false).expect("open sequence accepted");
    let status = adapter.bus_status().expect("F answered").expect("flags");
    assert!(!status.bus_in_trouble());
    let got = adapter
        .recv(Duration::from_millis(200))
        .unwrap()
        .expect("the frame after the answer is kept");
    assert_eq!(got.id, 0x7E8);
    adapter
        .send(&CanFrame::standard(0x156, &[0; 8]).unwrap())
        .unwrap();
    // Its acknowledgement is seen: no silence error for 700 ms of receiving.
    let end = Instant::now() + Duration::from_millis(700);
    while Instant::now() < end {
        adapter
            .recv(Duration::from_millis(50))
            .expect("acknowledged, not silent");
    }
    drop(adapter);
    device.join().unwrap();
}

#[test]
fn slcan_driver_speaks_lawicel_to_a_fake_adapter() {
    let (mut fake, slave) = TTYPort::pair().unwrap();
    fake.set_timeout(Duration::from_millis(5)).unwrap();
    let path = slave.name().unwrap();
    let device = std::thread::spawn(move || {
        // Expect the opening sequence and answer like a CANable.
        let mut seen = Vec::new();
        let end = Instant::now() + Duration::from_secs(2);
        let mut buf = [0u8; 64];
        let mut frames = 0;
        while Instant::now() < end && frames < 1 {
            if let Ok(n) = fake.read(&mut buf) {
                for &b in &buf[..n] {
                    seen.push(b);
                    if b == b'\r' {
                        let line = String::from_utf8_lossy(&seen).to_string();
                        seen.clear();
                        let reply: &[u8] = match line.as_str() {
                            "\r" => b"\x07",
                            "C\r" => b"\x07", // already closed: BEL, which the driver tolerates
                            "S6\r" | "O\r" => b"\r",
                            l if l.starts_with('t') => {
                                assert_eq!(l, "t1568003C000000000000\r");
                                frames += 1;
                                b"z\r"
                            }
                            other => panic!("unexpected command {other:?}"),
                        };
                        fake.write_all(reply).unwrap();
                    }
                }
            }
        }
        // A frame from the bus, with a Z1 timestamp, then an error for the next command.
        fake.write_all(b"t7DF802015C00000000001A2B\r").unwrap();
        let _ = read_n(&mut fake, 1);
        fake.write_all(b"\x07").unwrap();
        std::thread::sleep(Duration::from_millis(300));
    });
    let mut adapter = SlcanAdapter::open(&path, 500_000, false).expect("open sequence accepted");
    adapter
        .send(&CanFrame::standard(0x156, &[0x00, 0x3C, 0, 0, 0, 0, 0, 0]).unwrap())
        .unwrap();
    let got = adapter
        .recv(Duration::from_secs(1))
        .unwrap()
        .expect("frame received");
    assert_eq!(
        (got.id, got.payload()),
        (0x7DF, &[0x02, 0x01, 0x5C, 0, 0, 0, 0, 0][..])
    );
    // Frames are streamed ahead of their acknowledgements: the adapter's BEL for this one is
    // the error of the next call that reads its replies.
    adapter
        .send(&CanFrame::standard(0x100, &[]).unwrap())
        .expect("streamed");
    let err = adapter.recv(Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, InstrumentError::Protocol { .. }), "{err}");
    assert!(err.to_string().contains("refused a frame"), "{err}");
    drop(adapter);
    device.join().unwrap();
}

#[test]
fn slcan_driver_refuses_a_bitrate_slcan_cannot_set() {
    let (_fake, slave) = TTYPort::pair().unwrap();
    let err = SlcanAdapter::open(&slave.name().unwrap(), 333_000, false)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("333000"), "{err}");
}

#[test]
fn sump_driver_measures_the_simulated_servo_and_times_out_without_signal() {
    let _g = common::bench_lock();
    let bench = bench();
    let mut analyzer = SumpAnalyzer::open(&bench.ports.sump, 0, 1_000_000).unwrap();
    assert_eq!(analyzer.id, "1ALS");
    assert_eq!(analyzer.metadata.probes, Some(8));
    // Board unpowered: no edge, a clear measurement error rather than a hang.
    let t = Instant::now();
    let err = analyzer.capture(2).unwrap_err();
    assert!(
        matches!(err, InstrumentError::Measurement { .. })
            && err.to_string().contains("no rising edge"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(2));
    // Powered: the gauge parks its needle at 900 us on a 20 ms frame.
    bench.shared.set_power(true);
    std::thread::sleep(Duration::from_millis(50));
    let c = analyzer.capture(3).unwrap().capture;
    assert_eq!(c.high_us, vec![900.0; 3]);
    assert_eq!(c.period_us, vec![20_000.0; 2]);
}

#[test]
fn slcan_driver_copes_with_early_canable_firmware_lacking_z_f_and_n() {
    use rig_instruments::drivers::slcan::SlcanOptions;
    let (mut fake, slave) = TTYPort::pair().unwrap();
    fake.set_timeout(Duration::from_millis(5)).unwrap();
    let path = slave.name().unwrap();
    let device = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut commands = Vec::new();
        let end = Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 64];
        while Instant::now() < end && !commands.contains(&"N".to_string()) {
            if let Ok(n) = fake.read(&mut buf) {
                for &b in &buf[..n] {
                    if b != b'\r' {
                        seen.push(b);
                        continue;
                    }
                    let cmd = String::from_utf8_lossy(&seen).to_string();
                    seen.clear();
                    let reply: &[u8] = match cmd.as_str() {
                        "" | "C" => b"\x07",
                        "S6" | "O" => b"\r",
                        "V" => b"V1013\r",
                        // What the early firmware lacks; a frame from the bus arrives first.
                        "Z1" | "F" | "N" => b"t12381122334455667788\r\x07",
                        other => panic!("unexpected {other:?}"),
                    };
                    fake.write_all(reply).unwrap();
                    commands.push(cmd);
                }
            }
        }
        // Stay connected while the driver reads the last answer.
        std::thread::sleep(Duration::from_millis(300));
        commands
    });
    let mut adapter = SlcanAdapter::open_with(
        &path,
        500_000,
        SlcanOptions {
            s7_is_750k: false,
            timestamps: true,
        },
    )
    .expect("opens without Z");
    assert!(!adapter.timestamps());
    assert_eq!(adapter.version().unwrap(), "V1013");
    assert_eq!(adapter.status_flags().unwrap(), None);
    assert_eq!(adapter.serial_number().unwrap(), None);
    // The frames that arrived during the refused commands were kept.
    let got = adapter
        .recv(Duration::from_millis(200))
        .unwrap()
        .expect("frame kept");
    assert_eq!((got.id, got.len), (0x123, 8));
    drop(adapter);
    let commands = device.join().unwrap();
    assert_eq!(
        &commands[commands.len() - 6..],
        &["S6", "Z1", "O", "V", "F", "N"]
    );
}
