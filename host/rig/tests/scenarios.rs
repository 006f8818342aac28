//! One test per shipped scenario file, on the simulated bench; of `scenarios/fdcan/` (for a
//! board with an FDCAN) the bus load too: the logic board has no FDCAN, so there it tests the
//! rig's traffic and gauge-logic. The bus-fault ones need the emulated board's FDCAN model.

mod common;

use std::path::PathBuf;

use rig_verify::report::Outcome;
use rstest::rstest;

#[rstest]
fn shipped_scenario_passes(
    #[base_dir = "${CARGO_MANIFEST_DIR}/../../scenarios"]
    #[files("*.toml")]
    #[files("fdcan/bus_load.toml")]
    path: PathBuf,
) {
    let (result, _reports) = common::run(
        &bench_config::bench_folder::default_rig_config(),
        std::slice::from_ref(&path),
    );
    let report = &result.report;
    let failures: Vec<String> = report
        .scenarios
        .iter()
        .flat_map(|s| s.steps.iter())
        .filter(|st| st.outcome != Outcome::Pass)
        .map(|st| {
            format!(
                "step {} (line {}) {}: {:?} {:?} {:?}",
                st.index, st.line, st.action, st.outcome, st.message, st.diagnosis
            )
        })
        .collect();
    assert_eq!(
        report.outcome,
        Outcome::Pass,
        "{}: {:?}\n{}",
        path.display(),
        report.error,
        failures.join("\n")
    );
    // The report on disk is the one returned, and it is complete.
    let text = std::fs::read_to_string(&result.report_path).expect("report.json exists");
    let json: serde_json::Value = serde_json::from_str(&text).expect("report.json is JSON");
    assert_eq!(json["schema"], "gauge-rig-report/1");
    assert_eq!(json["outcome"], "pass");
    assert!(json["finished_at"].is_string());
    assert!(json["rig"]["instruments"]
        .as_array()
        .is_some_and(|a| a.len() >= 4));
    let steps = json["scenarios"][0]["steps"].as_array().expect("steps");
    for step in steps.iter().filter(|s| s["action"] == "expect_pulse") {
        let names: Vec<&str> = step["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        assert!(
            names.contains(&"pulse_error") && names.contains(&"settle_time"),
            "{names:?}"
        );
    }
}
