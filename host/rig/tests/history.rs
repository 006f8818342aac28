//! The run history as a lab reads it: `rig run` records every run in
//! `<reports>/history.sqlite`; `rig history` prints each scenario's pass rate and names the
//! one whose outcome changed across the last runs (made to fail now and then here), and each
//! run's report.html shows its measurements against the runs before.

mod common;

use std::{
    path::Path,
    process::{Command, Output},
};

fn rig(args: &[&str], reports: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(args)
        .arg("--reports")
        .arg(reports)
        .current_dir(common::repo(""))
        .output()
        .expect("rig runs")
}

/// A scenario that passes, or fails (a wrong expected pulse), under one name; its second
/// set-point has a settle time against the physical floor.
fn wobbly(dir: &Path, fails: bool) -> std::path::PathBuf {
    let us = if fails { 1300 } else { 1455 };
    common::write(
        dir,
        "wobbly.toml",
        &format!(
            "name = \"wobbly\"\n[defaults]\nsettle_timeout_ms = 600\n\n\
             [[steps]]\naction = \"set_temperature\"\ncelsius = 60\n\n\
             [[steps]]\naction = \"expect_pulse\"\nus = 1185\n\n\
             [[steps]]\naction = \"set_temperature\"\ncelsius = 90\n\n\
             [[steps]]\naction = \"expect_pulse\"\nus = {us}\n"
        ),
    )
}

#[test]
fn a_scenario_that_fails_now_and_then_shows_as_unstable_in_rig_history() {
    let _g = common::bench_lock();
    let dir = tempfile::tempdir().expect("temp dir");
    let reports = dir.path().join("reports");
    let none = rig(&["history"], &reports);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no history yet"),
        "{none:?}"
    );

    let steady = common::repo("scenarios/broadcast_basic.toml");
    let sim = common::repo("rig-config/sim.toml");
    let mut exits = Vec::new();
    for fails in [false, true, false] {
        let scenario = wobbly(dir.path(), fails);
        let out = Command::new(env!("CARGO_BIN_EXE_rig"))
            .arg("run")
            .arg("--rig")
            .arg(&sim)
            .arg("--reports")
            .arg(&reports)
            .arg(&steady)
            .arg(&scenario)
            .current_dir(common::repo(""))
            .output()
            .expect("rig run");
        exits.push(out.status.code());
    }
    assert_eq!(exits, vec![Some(0), Some(1), Some(0)]);
    assert!(reports.join("history.sqlite").is_file());

    let out = rig(&["history", "--last", "3"], &reports);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{out:?}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_string()
    };
    let w = line("wobbly ");
    assert!(
        w.contains("2/3") && w.contains("PFP") && w.contains("UNSTABLE"),
        "{w}"
    );
    let b = line("broadcast-basic ");
    assert!(b.contains("3/3") && !b.contains("UNSTABLE"), "{b}");
    assert!(text.contains("unstable: wobbly\n"), "{text}");
    // The settle ratio's trend: one value per run that settled (the failing run did not).
    let trend = line("wobbly: settle/floor");
    assert_eq!(
        trend
            .split_whitespace()
            .filter(|w| w.parse::<f64>().is_ok())
            .count(),
        2,
        "{trend}"
    );

    // The last two runs: the fail is still among them; the last one alone is stable.
    let out = rig(&["history", "--last", "1"], &reports);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unstable: none"), "{text}");

    // The newest run's page shows each measurement against the two before.
    let mut runs: Vec<_> = std::fs::read_dir(&reports)
        .expect("reports")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    runs.sort();
    let page = std::fs::read_to_string(runs[2].join("report.html")).expect("report.html");
    assert!(page.contains("<th>last 2 runs</th>"), "no history column");
    assert!(page.contains("class=\"spark\""), "no sparkline");

    let out = rig(&["history", "--rig", "no-such-rig"], &reports);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-rig"));
}
