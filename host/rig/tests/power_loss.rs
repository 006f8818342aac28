//! Power-loss verification on the simulated bench: soak, the seed's lock-up and its recovery,
//! the M7-boot-disabled diagnosis, and power cuts during flash writes.

mod common;

use std::{process::Command, sync::atomic::AtomicBool, time::Duration};

use bench_config::RigConfig;
use common::{repo, rig_variant, run, write};
use rig_verify::dbc::OilTempEncoder;
use rig_verify::report::Outcome;
use rig_verify::{
    power_loss::{
        recovery::{recover, FlashImage, RecoverOptions},
        PowerCycleCheck,
    },
    rig::Rig,
    session::Runner,
};

fn open(rig: &std::path::Path) -> Rig {
    let config = RigConfig::load(rig).expect("rig config");
    let encoder = OilTempEncoder::load(&rig_verify::dbc::default_path()).expect("dbc");
    rig::assembly::open(config, encoder).expect("rig opens")
}

fn check(off_ms: u64) -> PowerCycleCheck {
    PowerCycleCheck {
        off: Duration::from_millis(off_ms),
        celsius: 40.0,
        pulse_us: 1000.0,
        tolerance_us: 4.0,
        settle_timeout: Duration::from_secs(3),
    }
}

/// A short soak keeps the soak loop under test; the 1,000-cycle soak is the benchmark
/// `power_cycle_soak` (a step of .ci/run), out of the default `cargo test`.
#[test]
fn correct_firmware_survives_repeated_power_cycles() {
    let _g = common::bench_lock();
    let mut rig = open(&repo("rig-config/sim.toml"));
    let abort = AtomicBool::new(false);
    let cycles = 25;
    let summary =
        rig_verify::power_loss::soak::soak(&mut rig, cycles, check(10), &abort, &mut |_, _| {});
    assert_eq!(
        (summary.passed, summary.failed, summary.errors),
        (cycles, 0, 0),
        "{:?}",
        summary.failures.first()
    );
    assert_eq!(summary.boot_to_attach_ms.count, cycles);
    assert!(summary.power_on_to_first_pulse_ms.min > 0.0);
}

#[test]
fn ldo_build_fails_the_first_power_cycle_and_recover_brings_the_board_back() {
    let _g = common::bench_lock();
    let mut rig = open(&repo("rig-config/sim-ldo-firmware.toml"));
    let abort = AtomicBool::new(false);
    let first = Runner {
        rig: &mut rig,
        abort: &abort,
    }
    .run_power_cycle_check(check(50));
    assert_eq!(first.outcome, Outcome::Fail);
    let d = first.diagnosis.as_deref().expect("diagnosis");
    assert!(
        d.contains("Supply lock-up")
            && d.contains("PWR_CR3")
            && d.contains("selects ldo (0x02)")
            && d.contains("rig recover --erase"),
        "{d}"
    );

    // Without the confirmation nothing is erased.
    let refused = recover(
        &mut rig,
        &RecoverOptions {
            erase: false,
            flash: None,
            restore_boot: false,
        },
        &abort,
    );
    assert_eq!(refused.outcome, Outcome::Fail);
    assert!(refused
        .steps
        .iter()
        .any(|s| s.what == "mass erase" && !s.ok && s.detail.contains("--erase")));

    let recovered = recover(
        &mut rig,
        &RecoverOptions {
            erase: true,
            flash: Some(FlashImage::Logic(
                gauge_logic::supply::SupplyConfig::DirectSmps,
            )),
            restore_boot: false,
        },
        &abort,
    );
    let lines: Vec<String> = recovered
        .steps
        .iter()
        .map(|s| format!("{} {} {}", s.ok, s.what, s.detail))
        .collect();
    assert_eq!(recovered.outcome, Outcome::Pass, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("verify PWR_CR3") && l.contains("0x06")),
        "{lines:#?}"
    );
    // And it stays recovered through another real power cut.
    let again = Runner {
        rig: &mut rig,
        abort: &abort,
    }
    .run_power_cycle_check(check(50));
    assert_eq!(again.outcome, Outcome::Pass, "{:?}", again.message);
}

#[test]
fn board_with_cm7_boot_disabled_gets_that_diagnosis() {
    let dir = tempfile::tempdir().unwrap();
    let rig = rig_variant(
        dir.path(),
        "rig-config/sim.toml",
        &[(
            "option_bytes = { bcm7 = true, bcm4 = true }",
            "option_bytes = { bcm7 = false, bcm4 = true }",
        )],
    );
    let s = write(
        dir.path(),
        "pc.toml",
        "name = \"pc\"\n[[steps]]\naction = \"power_cycle_check\"\n",
    );
    let (result, _r) = run(&rig, &[s]);
    assert!(
        !result.report.scenarios.is_empty(),
        "{:?}",
        result.report.error
    );
    let step = &result.report.scenarios[0].steps[0];
    assert_eq!(step.outcome, Outcome::Fail, "{:?}", step.message);
    let d = step.diagnosis.as_deref().expect("diagnosis");
    assert!(
        d.contains("Cortex-M7 boot disabled (BCM7 = 0)") && d.contains("access port 3"),
        "{d}"
    );
    assert!(!d.contains("Supply lock-up"), "{d}");
}

#[test]
fn power_cut_sweep_loses_no_committed_record() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), "sweep.toml", "name = \"sweep\"\n[[steps]]\naction = \"power_cut_sweep\"\n[[steps]]\naction = \"power_cut_during_write\"\nafter_bytes = 33\n[[steps]]\naction = \"power_cycle_check\"\n");
    let (result, _r) = run(&repo("rig-config/sim.toml"), &[s]);
    let sc = &result.report.scenarios[0];
    assert_eq!(sc.outcome, Outcome::Pass, "{:#?}", sc.steps);
    let m = |name: &str| {
        sc.steps[0]
            .measurements
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
            .unwrap_or(f64::NAN)
    };
    let tried = m("cuts_tried");
    assert!(
        tried >= 32.0 && tried == m("bytes_per_boot"),
        "a cut at every byte of a boot's writes: {tried}"
    );
    assert_eq!(
        (
            m("cuts_losing_a_record"),
            m("cuts_leaving_storage_unreadable")
        ),
        (0.0, 0.0)
    );
    println!("power-cut sweep: {tried} cuts, 0 lost, 0 unreadable");
}

#[test]
fn locked_board_stops_bring_up_and_the_recover_command_fixes_it() {
    let _g = common::bench_lock();
    let bin = env!("CARGO_BIN_EXE_rig");
    let dir = tempfile::tempdir().unwrap();
    let rig = repo("rig-config/sim-locked.toml");
    let run = Command::new(bin)
        .args(["run", "--reports"])
        .arg(dir.path())
        .arg("--rig")
        .arg(&rig)
        .arg(repo("scenarios/broadcast_basic.toml"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("Supply lock-up suspected"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let refused = Command::new(bin)
        .arg("recover")
        .arg("--rig")
        .arg(&rig)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let fixed = recover_erase_and_flash(&rig);
    let out = String::from_utf8_lossy(&fixed.stdout);
    assert_eq!(
        fixed.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&fixed.stderr)
    );
    assert!(
        out.contains("recovered") && out.contains("power-cycle check"),
        "{out}"
    );
}

/// A NUCLEO powered through CN1: the ST-LINK is off while the board is, so nothing holds NRST
/// across the power-on and the LDO build in flash latches again before the probe is back. With
/// no relay on NRST or BOOT0, `recover` fails and says what a person has to do.
#[test]
fn recover_on_a_cn1_powered_bench_without_a_recovery_relay_says_to_hold_the_reset_button() {
    let _g = common::bench_lock();
    let dir = tempfile::tempdir().unwrap();
    let rig = common::rig_variant(
        dir.path(),
        "rig-config/sim-locked.toml",
        &[("[power]\n", "[power]\ntopology = \"stlink-usb\"\n")],
    );
    let out = recover_erase_and_flash(&rig);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NRST across power-on") && text.contains("reset button (B2)"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("connect under reset") && text.contains("3 attempts"),
        "{text}"
    );
}

/// The same CN1-powered bench with a relay channel of its own on NRST (the shipped
/// rig-config/sim-locked-cn1.toml) or on BOOT0 (ST's two ways): `recover` switches it across
/// the power-on and brings the board back.
#[rstest::rstest]
#[case::nrst("nrst", "NRST across power-on")]
#[case::boot0("boot0", "BOOT0 across power-on")]
fn recover_on_a_cn1_powered_bench_through_a_recovery_relay(#[case] pin: &str, #[case] step: &str) {
    let _g = common::bench_lock();
    let dir = tempfile::tempdir().unwrap();
    let line = format!("pin = \"{pin}\"");
    let rig = common::rig_variant(
        dir.path(),
        "rig-config/sim-locked-cn1.toml",
        &[("pin = \"nrst\"", line.as_str())],
    );
    let out = recover_erase_and_flash(&rig);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(step) && text.contains("recovery_line"),
        "{text}"
    );
    assert!(
        !text.contains("reset button (B2)"),
        "no hand needed: {text}"
    );
    assert!(
        text.contains("recovered") && text.contains("power-cycle check"),
        "{text}"
    );
}

/// `rig recover --erase --flash logic:direct-smps` on the rig config at `rig`.
fn recover_erase_and_flash(rig: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rig"))
        .arg("recover")
        .arg("--rig")
        .arg(rig)
        .args(["--erase", "--flash", "logic:direct-smps"])
        .output()
        .unwrap()
}
