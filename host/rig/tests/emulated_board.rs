//! The emulated board: the real board ELF on the emulated STM32H755 Cortex-M7 for whole
//! scenarios, driven by the same host instruments (slcan and SUMP over pseudo-terminals, the
//! telemetry port, the in-process probe). Needs the `emulator` feature:
//! `cargo test -p rig --features emulator --test emulated_board`. Tests that need the shipped
//! ELFs print SKIP and pass when firmware/build.sh has not been run.
#![cfg(feature = "emulator")]

mod common;

use std::{
    collections::VecDeque,
    path::PathBuf,
    time::{Duration, Instant},
};

use bench_config::RigConfig;
use common::{repo, run, shipped, DIRECT_SMPS_ELF, LDO_ELF};
use gauge_logic::supply::{SupplyConfig, PWR_CR3_ADDR};
use rig::assembly as rig_assembly;
use rig_emu::{
    board::{EmulatedBoard, KnownImage},
    machine::Firmware,
};
use rig_instruments::drivers;
use rig_instruments::CoreSelect;
use rig_sim::{
    logic_board::OptionBytes,
    target::{DebugAccessError, EmulationStats, SimulatedTarget, TargetIo},
};
use rig_verify::report::Outcome;

fn print_speed(what: &str, s: &EmulationStats) {
    println!(
        "{what}: {} instructions, {:.3} s emulated in {:.3} s of emulation work: {:.1} M instructions/s, \
         {:.1}x faster than real time; real-time factor on the bench {:.3} (emulated s per bench s), \
         {} exceptions, lag {:.2} ms; {}",
        s.instructions,
        s.virtual_s,
        s.busy_s,
        s.instructions_per_s / 1e6,
        s.speed_factor,
        s.real_time_factor,
        s.exceptions,
        s.lag_ms,
        s.state
    );
}

/// Ticks a board outside the bench, `ms` milliseconds of bench time from `t_us`, as fast as the
/// emulator goes; returns the pins of the last tick.
fn run_board(
    b: &mut EmulatedBoard,
    t_us: &mut u64,
    ms: u64,
    uart: &mut Vec<u8>,
) -> rig_sim::target::Pins {
    let (mut rx, mut tx) = (VecDeque::new(), Vec::new());
    let mut pins = Default::default();
    for _ in 0..ms {
        *t_us += 1000;
        let mut io = TargetIo {
            can_rx: &mut rx,
            can_tx: &mut tx,
            uart_tx: uart,
        };
        pins = b.tick(*t_us, &mut io);
        if b.power_cut_requested() {
            b.power_off();
            break;
        }
    }
    pins
}

fn board(elfs: &[&std::path::Path]) -> EmulatedBoard {
    let mut b =
        match EmulatedBoard::from_elfs(SupplyConfig::DirectSmps, OptionBytes::default(), elfs) {
            Ok(b) => b,
            Err(e) => panic!("emulated board: {e}"),
        };
    // Outside the bench nothing waits for real time: let each tick finish.
    b.tick_budget = Duration::from_secs(10);
    b
}

fn last_status(uart: &[u8]) -> Option<String> {
    String::from_utf8_lossy(uart)
        .lines()
        .rev()
        .find(|l| l.starts_with("GAUGE/1"))
        .map(str::to_string)
}

#[test]
fn boot_reaches_the_main_loop_with_900us_pulses_and_a_status_line_on_the_bench() {
    let Some(_) = shipped(DIRECT_SMPS_ELF) else {
        return;
    };
    let _guard = common::bench_lock();
    let config = match RigConfig::load(&repo("rig-config/emulated.toml")) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let bench = match rig_assembly::start_simulated_bench(&config) {
        Ok(b) => b,
        Err(e) => panic!("bench: {e}"),
    };
    let mut relay = drivers::open_power(&config.power, &bench.ports.relay).expect("relay");
    let mut meter =
        drivers::open_pulse_meter(&config.pulse_meter, &bench.ports.sump).expect("analyzer");
    let mut telemetry =
        drivers::open_telemetry(&config.telemetry, &bench.ports.telemetry).expect("telemetry");
    let powered = Instant::now();
    relay.set_power(true).expect("power on");

    // The first status line comes right after the main loop starts (uptime ~1 ms), then one
    // per second: parked needle, no data (failsafe), Direct SMPS latched, one boot.
    let line = telemetry
        .next_status(Duration::from_secs(3))
        .expect("a GAUGE/1 status line");
    println!("status after {:?}: {line}", powered.elapsed());
    assert_eq!(line.pulse_us, 900);
    assert!(line.failsafe);
    assert_eq!(line.pwr_cr3 & 0x3F, SupplyConfig::DirectSmps.cr3_bits());
    assert!(line.boot_count >= 1);

    // The SUMP analyzer samples TIM1 CH1 as the emulated timer drives it.
    let capture = meter.capture(3).expect("a capture");
    println!(
        "capture: high {:?} us, periods {:?} us",
        capture.capture.high_us, capture.capture.period_us
    );
    assert!(!capture.capture.high_us.is_empty());
    for h in &capture.capture.high_us {
        assert!((h - 900.0).abs() <= 2.0, "pulse {h} us");
    }
    for p in &capture.capture.period_us {
        assert!((p - 20_000.0).abs() <= 5.0, "period {p} us");
    }

    // The core idles in the executor's WFE between ticks of its 1 ms loop.
    std::thread::sleep(Duration::from_millis(500));
    let stats = {
        let b = bench.shared.board();
        assert!(b.target.debug_accessible(CoreSelect::Cm7));
        assert_eq!(
            b.target
                .debug_read_u32(CoreSelect::Cm7, PWR_CR3_ADDR)
                .map(|v| v & 0x3F),
            Ok(0x04)
        );
        b.target.emulation().expect("an emulated target has stats")
    };
    print_speed("emulated board on the bench", &stats);
    assert!(stats.state.contains("Executor"), "{}", stats.state);
    assert!(
        stats.real_time_factor > 0.8,
        "the emulated board kept up with the bench"
    );
    assert!(
        stats.exceptions > 300,
        "TIM2 interrupts drive embassy's time"
    );
}

#[test]
fn shipped_scenarios_pass_on_the_emulated_board() {
    let Some(_) = shipped(DIRECT_SMPS_ELF) else {
        return;
    };
    let scenarios: Vec<PathBuf> = [
        "broadcast_basic",
        "obd_only",
        "stale_failsafe",
        "scan_tool",
        "several_ecus",
        "obd_29bit",
        "obd_response_window",
        "fdcan/bus_load",
        "fdcan/bus_off",
        "fdcan/no_ack",
    ]
    .iter()
    .map(|s| repo(&format!("scenarios/{s}.toml")))
    .collect();
    let started = Instant::now();
    let (result, _reports) = run(&repo("rig-config/emulated.toml"), &scenarios);
    println!(
        "{} scenarios on the emulated board in {:?}",
        scenarios.len(),
        started.elapsed()
    );
    for sc in &result.report.scenarios {
        println!("{}: {:?}", sc.name, sc.outcome);
        for st in &sc.steps {
            if st.outcome != Outcome::Pass {
                println!(
                    "  {} {:?} {:?} {:?}",
                    st.action, st.outcome, st.message, st.diagnosis
                );
            }
        }
    }
    assert_eq!(result.report.outcome, Outcome::Pass);
    // The run's report carries the emulation's speed.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result.report_path).expect("report.json"))
            .expect("JSON");
    let em = &json["emulation"];
    assert!(
        em["instructions"].as_u64().is_some_and(|n| n > 100_000),
        "{em}"
    );
    // The acceptance filters kept the load frames out of the RX FIFO, and none was lost there.
    assert!(
        em["can_frames_filtered"]
            .as_u64()
            .is_some_and(|n| n > 10_000),
        "{em}"
    );
    assert_eq!(em["can_fifo_overruns"].as_u64(), Some(0), "{em}");
    // During the short the rig's slcan adapter reported it (`F`: bus error, error passive).
    let bus_off = result
        .report
        .scenarios
        .iter()
        .find(|s| s.name == "bus-off")
        .expect("bus-off ran");
    let flags = bus_off
        .steps
        .iter()
        .find(|s| s.action == "hold")
        .and_then(|s| {
            s.measurements
                .iter()
                .find(|m| m.name == "adapter_error_flags")
        })
        .map(|m| m.value);
    assert_eq!(flags, Some(f64::from(0xA0u8)), "{:?}", bus_off.steps);
    // The bus faults took the FDCAN error passive (no_ack) and bus-off (bus_off).
    assert!(em["can_bus_off_events"].as_u64() >= Some(1), "{em}");
    assert!(em["can_error_passive_events"].as_u64() >= Some(2), "{em}");
    let rtf = em["real_time_factor"].as_f64().unwrap_or(0.0);
    assert!(rtf > 0.9, "the emulated board kept up with the bench: {em}");
    println!("report emulation: {em}");
    assert_eq!(result.report.scenarios.len(), scenarios.len());
}

#[test]
fn ldo_elf_survives_the_download_reset_then_locks_up_after_the_power_cycle() {
    if shipped(DIRECT_SMPS_ELF).is_none() || shipped(LDO_ELF).is_none() {
        return;
    }
    let (result, _reports) = run(
        &repo("rig-config/emulated-ldo.toml"),
        &[repo("scenarios/supply_configuration.toml")],
    );
    let sc = &result.report.scenarios[0];
    assert_eq!(result.report.outcome, Outcome::Fail);
    let by_action = |a: &str, nth: usize| {
        sc.steps
            .iter()
            .filter(|s| s.action == a)
            .nth(nth)
            .unwrap_or_else(|| panic!("no {a} #{nth}"))
    };
    // The download's reset keeps the Direct SMPS latched by the good build's power-on.
    assert_eq!(by_action("expect_supply", 0).outcome, Outcome::Pass);
    assert_eq!(
        by_action("expect_pulse", 1).outcome,
        Outcome::Pass,
        "works after a reset"
    );
    assert_eq!(by_action("power_cycle", 0).outcome, Outcome::Pass);
    // The real LDO ELF writes 0x02 to PWR_CR3 at its first power-on: the chip is gone.
    let supply = by_action("expect_supply", 1);
    assert_eq!(supply.outcome, Outcome::Fail);
    let d = supply.diagnosis.as_deref().expect("diagnosis");
    println!("diagnosis: {d}");
    for needle in [
        "PWR_CR3",
        "expected supply bits 0x04",
        "selects ldo (0x02)",
        "mass-erase",
    ] {
        assert!(d.contains(needle), "diagnosis lacks {needle:?}: {d}");
    }
}

#[test]
fn emulation_speed_and_real_time_factor() {
    let Some(elf) = shipped(DIRECT_SMPS_ELF) else {
        return;
    };
    // Alone on the machine, like the benches: the numbers are the emulator's own.
    let _guard = common::bench_lock();
    let mut b = board(&[&elf]);
    let (mut t, mut uart) = (0, Vec::new());
    b.power_on(t);
    let started = Instant::now();
    let pins = run_board(&mut b, &mut t, 5_000, &mut uart);
    let wall = started.elapsed();
    let s = b.stats();
    print_speed("5 s of the idle gauge, unpaced", &s);
    println!(
        "5.000 s emulated in {:.3} s of wall time: {:.1}x real time",
        wall.as_secs_f64(),
        5.0 / wall.as_secs_f64()
    );
    assert_eq!(pins.pwm_pulse_us, Some(900));
    assert!(pins.red_led, "failsafe LED without data");
    assert!(
        s.speed_factor > 1.0,
        "the emulator runs faster than real time: {:.2}x",
        s.speed_factor
    );
    assert_eq!(String::from_utf8_lossy(&uart).matches("GAUGE/1").count(), 5);
}

#[test]
fn flash_survives_power_cycles_the_latch_survives_resets_and_a_planned_cut_hits_a_write() {
    let (Some(good), Some(ldo)) = (shipped(DIRECT_SMPS_ELF), shipped(LDO_ELF)) else {
        return;
    };
    let _guard = common::bench_lock();
    let mut b = board(&[&good, &ldo]);
    let (mut t, mut uart) = (0, Vec::new());
    let boots = |uart: &[u8]| {
        last_status(uart)
            .and_then(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("boots=").map(str::to_string))
            })
            .and_then(|n| n.parse::<u32>().ok())
    };
    let mut last = 0;
    for _ in 0..3 {
        b.power_on(t);
        run_board(&mut b, &mut t, 1_100, &mut uart);
        let n = boots(&uart).expect("a status line");
        assert_eq!(
            n,
            last + 1,
            "boot counter in flash bank 2 across power cuts"
        );
        last = n;
        b.power_off();
        uart.clear();
    }
    // A cut after 31 programmed bytes of the next boot's records: the board switches itself
    // off; the next clean boot still counts on from what was committed.
    b.arm_storage_power_cut(Some(31));
    let written = b.storage_bytes_written();
    b.power_on(t);
    run_board(&mut b, &mut t, 50, &mut uart);
    assert_eq!(b.storage_bytes_written(), written + 31);
    assert!(!b.debug_accessible(CoreSelect::Cm7), "the cut board is off");
    b.arm_storage_power_cut(None);
    b.power_on(t);
    run_board(&mut b, &mut t, 1_100, &mut uart);
    let n = boots(&uart).expect("a status line");
    assert!(n == last + 1 || n == last + 2, "boots {n} after {last}");

    // The LDO build downloaded and reset: the latch keeps Direct SMPS, the gauge works.
    let segments = match Firmware::load(&ldo) {
        Ok(f) => f.segments,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(b.load_program(&segments), Ok(()));
    b.reset(t);
    uart.clear();
    let pins = run_board(&mut b, &mut t, 1_100, &mut uart);
    assert_eq!(pins.pwm_pulse_us, Some(900));
    assert!(last_status(&uart).is_some_and(|l| l.contains("cr3=0x00000004")));
    // Its own power-on latches LDO: Vcore is cut, the debug port is dead.
    b.power_off();
    b.power_on(t);
    let pins = run_board(&mut b, &mut t, 10, &mut uart);
    assert_eq!(pins.pwm_pulse_us, None);
    assert!(!b.debug_accessible(CoreSelect::Cm7) && !b.debug_accessible(CoreSelect::Cm4));
    assert!(b.stats().state.contains("locked up"));
    // The flash still holds the LDO image: recovery is a mass erase.
    assert!(b.identity().name.contains("/ldo/"));
}

// ---- crafted firmware: faults -----------------------------------------------------------------

/// A bank-1 image: a vector table (SP, reset -> 0x0800_0101, HardFault -> 0x0800_0111) and
/// Thumb halfwords at 0x0800_0100.
fn crafted(code: &[u16], words: &[(u32, u32)]) -> KnownImage {
    let mut data = vec![0u8; 0x200];
    let mut put = |at: usize, w: u32| data[at..at + 4].copy_from_slice(&w.to_le_bytes());
    put(0, 0x2002_0000);
    put(4, 0x0800_0101);
    put(0x0C, 0x0800_0111);
    for (at, w) in words {
        put(*at as usize, *w);
    }
    for (i, h) in code.iter().enumerate() {
        data[0x100 + 2 * i..0x102 + 2 * i].copy_from_slice(&h.to_le_bytes());
    }
    // HardFault handler: b .
    data[0x110..0x112].copy_from_slice(&0xE7FEu16.to_le_bytes());
    KnownImage {
        name: "crafted".into(),
        firmware: Firmware {
            segments: vec![rig_instruments::elf::Segment {
                address: 0x0800_0000,
                data,
            }],
            initial_sp: 0x2002_0000,
            reset: 0x0800_0101,
            symbols: Default::default(),
        },
        sha256: None,
    }
}

#[test]
fn an_access_outside_every_memory_leaves_an_error_state_not_a_panic() {
    // ldr r0, [pc, #0]; ldr r1, [r0]; literal 0x7000_0000 (the FMC window: nothing there).
    let image = crafted(&[0x4800, 0x6801, 0x0000, 0x7000], &[]);
    let mut b = EmulatedBoard::new(
        SupplyConfig::DirectSmps,
        OptionBytes::default(),
        vec![image],
    );
    b.power_on(0);
    let (mut t, mut uart) = (0, Vec::new());
    run_board(&mut b, &mut t, 5, &mut uart);
    let s = b.stats();
    println!("{}", s.state);
    assert!(s.state.contains("emulator stopped"), "{}", s.state);
    assert!(s.state.contains("0x70000000"), "{}", s.state);
    // The flash still answers the probe; RAM and registers do not, with the reason.
    assert!(b.debug_accessible(CoreSelect::Cm7));
    assert!(b.debug_read_u32(CoreSelect::Cm7, 0x0800_0000).is_ok());
    match b.debug_read_u32(CoreSelect::Cm7, PWR_CR3_ADDR) {
        Err(DebugAccessError::Emulator(reason)) => assert!(reason.contains("0x70000000")),
        other => panic!("{other:?}"),
    }
    assert!(b.identity().version.contains("emulator stopped"));
    // A power cycle starts it over.
    b.power_off();
    b.power_on(t);
    assert!(
        b.stats().state.contains("emulator stopped"),
        "same program, same fault"
    );
}

#[test]
fn an_undefined_instruction_enters_hardfault_like_the_chip() {
    // udf #254: HardFault, whose handler is `b .`; the core then idles there.
    let image = crafted(&[0xDEFE], &[]);
    let mut b = EmulatedBoard::new(
        SupplyConfig::DirectSmps,
        OptionBytes::default(),
        vec![image],
    );
    b.power_on(0);
    let (mut t, mut uart) = (0, Vec::new());
    run_board(&mut b, &mut t, 20, &mut uart);
    let faults = b.firmware_faults();
    println!("{faults:?} / {}", b.stats().state);
    assert_eq!(faults.len(), 1);
    assert!(faults[0].contains("undefined instruction at 0x08000100"));
    assert!(b.stats().state.contains("`b .`"), "{}", b.stats().state);
    assert!(
        b.debug_read_u32(CoreSelect::Cm7, 0x2001_FFE0).is_ok(),
        "RAM readable"
    );
}
