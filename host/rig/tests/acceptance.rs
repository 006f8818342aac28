//! The walking skeleton's acceptance: the seed's wrong-supply story, diagnoses, bad input,
//! exit codes and reports that survive failure and interruption.

mod common;

use std::{process::Command, sync::atomic::AtomicBool, time::Duration};

use common::{repo, rig_variant, run, write};
use rig_verify::report::Outcome;

#[test]
fn ldo_build_survives_reset_then_locks_up_after_power_cycle_with_diagnosis() {
    let (result, _r) = run(
        &repo("rig-config/sim-ldo-firmware.toml"),
        &[repo("scenarios/supply_configuration.toml")],
    );
    let sc = &result.report.scenarios[0];
    assert_eq!(result.report.outcome, Outcome::Fail);
    assert_eq!(result.exit_code(), 1);
    let by_action = |a: &str, nth: usize| {
        sc.steps
            .iter()
            .filter(|s| s.action == a)
            .nth(nth)
            .unwrap_or_else(|| panic!("no {a} #{nth}"))
    };
    // Before the power cycle the latch holds the preloaded firmware's Direct SMPS: all is well.
    assert_eq!(by_action("expect_supply", 0).outcome, Outcome::Pass);
    assert_eq!(by_action("reset", 0).outcome, Outcome::Pass);
    assert_eq!(
        by_action("expect_pulse", 1).outcome,
        Outcome::Pass,
        "works after a reset"
    );
    assert_eq!(by_action("power_cycle", 0).outcome, Outcome::Pass);
    // After it, the LDO choice latches and the board is gone.
    let supply = by_action("expect_supply", 1);
    assert_eq!(supply.outcome, Outcome::Fail);
    let d = supply.diagnosis.as_deref().expect("diagnosis");
    for needle in [
        "PWR_CR3",
        "expected supply bits 0x04",
        "direct-smps",
        "found: unreadable",
        "selects ldo (0x02)",
        "mass-erase",
        "power-cycle once more",
    ] {
        assert!(d.contains(needle), "diagnosis lacks {needle:?}: {d}");
    }
    // Later steps were skipped, not silently dropped.
    assert!(sc.steps.iter().any(|s| s.outcome == Outcome::Skipped));
    // The CI server's view: junit.xml beside the report, the failure naming the step and
    // carrying the diagnosis.
    let junit = std::fs::read_to_string(result.report_path.with_file_name("junit.xml"))
        .expect("junit.xml beside report.json");
    assert!(
        junit.contains(r#"tests="1" failures="1" errors="0" skipped="0""#),
        "{junit}"
    );
    assert!(
        junit.contains(&format!(
            r#"<failure message="step {} expect_supply: "#,
            supply.index
        )),
        "{junit}"
    );
    assert!(junit.contains("mass-erase"), "{junit}");
    // Evidence of the failure beside the report: the CAN traffic in candump's format with the
    // broadcast frames, the telemetry transcript, the last captures as VCD.
    let run_dir = result.report_path.parent().expect("run folder");
    let file = |name: &str| {
        sc.evidence
            .iter()
            .find(|f| f.ends_with(name))
            .map(|f| run_dir.join(f))
            .unwrap_or_else(|| panic!("no {name} in {:?}", sc.evidence))
    };
    let can = std::fs::read_to_string(file("can.log")).expect("can.log");
    assert!(
        can.lines()
            .any(|l| l.starts_with('(') && l.contains(" can0 156#")),
        "{can}"
    );
    let telemetry = std::fs::read_to_string(file("telemetry.txt")).expect("telemetry.txt");
    assert!(telemetry.contains("GAUGE/1 "), "{telemetry}");
    let vcd = std::fs::read_to_string(file("capture-01.vcd")).expect("a capture");
    assert!(vcd.contains("$enddefinitions"), "{vcd}");
    assert!(
        junit.contains("[[ATTACHMENT|evidence/01-supply_configuration/can.log]]"),
        "{junit}"
    );
}

#[test]
fn supply_refused_by_the_smps_protection_is_read_back_with_expected_and_found() {
    let dir = tempfile::tempdir().unwrap();
    let rig = rig_variant(
        dir.path(),
        "rig-config/sim.toml",
        &[(
            "supply = \"direct-smps\"       # the supply",
            "supply = \"smps-1v8-feeds-ldo\" # the supply",
        )],
    );
    let (result, _r) = run(&rig, &[repo("scenarios/supply_configuration.toml")]);
    let supply = result.report.scenarios[0]
        .steps
        .iter()
        .filter(|s| s.action == "expect_supply")
        .nth(1)
        .expect("second expect_supply");
    assert_eq!(supply.outcome, Outcome::Fail);
    let bits = supply
        .measurements
        .iter()
        .find(|m| m.name == "pwr_cr3_supply_bits")
        .expect("CR3 measured");
    assert_eq!(bits.value, 16.0 + 6.0, "0x16 read back");
    let rdy = supply
        .measurements
        .iter()
        .find(|m| m.name == "pwr_csr1_actvosrdy")
        .expect("ACTVOSRDY measured");
    assert_eq!((rdy.value, rdy.outcome), (0.0, Outcome::Fail));
    let d = supply.diagnosis.as_deref().expect("diagnosis");
    assert!(
        d.contains("expected 0x04") && d.contains("found 0x16") && d.contains("smps-1v8-feeds-ldo"),
        "{d}"
    );
}

#[test]
fn invalid_scenario_is_reported_with_file_and_line_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.toml",
        "name = \"bad\"\n\n[[steps]]\naction = \"expect_pulse\"\nus = 1455\ntolerence_us = 3\n",
    );
    let (result, _r) = run(&repo("rig-config/sim.toml"), &[bad]);
    assert_eq!(result.report.outcome, Outcome::Error);
    assert_eq!(result.exit_code(), 2);
    let e = result.report.error.as_deref().unwrap();
    assert!(e.contains("bad.toml:3:"), "{e}");
    assert!(e.contains("tolerence_us"), "{e}");
    assert!(result.report.scenarios.is_empty());
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result.report_path).unwrap()).unwrap();
    assert_eq!(on_disk["outcome"], "error");
}

#[test]
fn invalid_rig_config_names_the_line_and_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let rig = rig_variant(
        dir.path(),
        "rig-config/sim.toml",
        &[("wiring = \"direct-smps\"", "wiring = \"smps\"")],
    );
    let (result, _r) = run(&rig, &[repo("scenarios/broadcast_basic.toml")]);
    let e = result.report.error.as_deref().unwrap();
    let line = std::fs::read_to_string(&rig)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("wiring"))
        .unwrap()
        + 1;
    assert!(e.contains(&format!("rig.toml:{line}:")), "{e}");
    assert!(e.contains("direct-smps") && e.contains("ldo"), "{e}");
    assert_eq!(result.exit_code(), 2);
}

#[test]
fn a_wrong_expectation_fails_with_the_measured_value() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(
        dir.path(),
        "wrong.toml",
        "name = \"wrong\"\n[[steps]]\naction = \"set_temperature\"\ncelsius = 90\n[[steps]]\naction = \"expect_pulse\"\nus = 1500\nsettle_timeout_ms = 1000\n",
    );
    let (result, _r) = run(&repo("rig-config/sim.toml"), &[s]);
    assert_eq!(result.exit_code(), 1);
    let step = &result.report.scenarios[0].steps[1];
    assert_eq!(step.outcome, Outcome::Fail);
    let pw = step
        .measurements
        .iter()
        .find(|m| m.name == "pulse_width")
        .expect("last measurement kept");
    assert!((pw.value - 1455.0).abs() < 1.0, "{}", pw.value);
    assert_eq!((pw.low, pw.high), (Some(1496.0), Some(1504.0)));
}

#[test]
fn interrupted_run_leaves_a_readable_report_of_what_ran() {
    let dir = tempfile::tempdir().unwrap();
    let abort = AtomicBool::new(false);
    let _guard = common::bench_lock();
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(1200));
            abort.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        rig::commands::run::run(
            repo("rig-config/sim.toml"),
            vec![repo("scenarios/stale_failsafe.toml")],
            dir.path().to_path_buf(),
            rig_verify::dbc::default_path(),
            &abort,
            &mut rig_verify::job::Quiet,
        )
        .unwrap()
    });
    assert_eq!(result.report.outcome, Outcome::Error);
    assert_eq!(result.report.error.as_deref(), Some("run interrupted"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result.report_path).unwrap()).unwrap();
    let steps = json["scenarios"][0]["steps"].as_array().unwrap();
    assert!(
        steps.iter().any(|s| s["outcome"] == "pass"),
        "what ran is recorded"
    );
    assert!(
        steps.iter().any(|s| s["outcome"] == "skipped"),
        "what did not run is marked"
    );
    assert!(!result
        .report_path
        .with_file_name(".report.json.tmp")
        .exists());
}

#[test]
fn cli_exit_codes_and_report_location() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_rig");
    let _guard = common::bench_lock();
    let ok = Command::new(bin)
        .args(["run", "--reports"])
        .arg(dir.path())
        .arg(repo("scenarios/broadcast_basic.toml"))
        .env_remove("GAUGE_RIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    // One run folder, and the history beside it.
    let runs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(runs.len(), 1);
    assert!(dir.path().join("history.sqlite").is_file());
    // The rig's own log in the run folder, beside the report.
    let log = std::fs::read_to_string(runs[0].join("rig.log")).expect("rig.log");
    assert!(log.contains("brought up"), "{log}");
    assert!(log.contains("ends: pass"), "{log}");
    assert!(runs[0].join("junit.xml").is_file());
    let missing = Command::new(bin)
        .args(["run", "--reports"])
        .arg(dir.path())
        .arg("no/such/file.toml")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/file.toml"));
    let check = Command::new(bin)
        .arg("check")
        .arg(repo("scenarios"))
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// A scenario that passes leaves no evidence unless asked for (`--evidence`).
#[test]
fn evidence_is_written_for_a_pass_only_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = common::write(
        dir.path(),
        "short.toml",
        "name = \"short\"\n[[steps]]\naction = \"set_temperature\"\ncelsius = 90\n\n\
         [[steps]]\naction = \"expect_pulse\"\nus = 1455\n",
    );
    let (plain, _r1) = run(
        &repo("rig-config/sim.toml"),
        std::slice::from_ref(&scenario),
    );
    assert_eq!(plain.report.outcome, Outcome::Pass);
    assert!(plain.report.scenarios[0].evidence.is_empty());
    let (asked, _r2) = common::run_choosing(
        &repo("rig-config/sim.toml"),
        &[scenario],
        rig::commands::run::RunChoices {
            retries: 0,
            evidence_always: true,
        },
    );
    let files = &asked.report.scenarios[0].evidence;
    assert!(files.iter().any(|f| f.ends_with("can.log")), "{files:?}");
    assert!(files.iter().any(|f| f.ends_with(".vcd")), "{files:?}");
}
