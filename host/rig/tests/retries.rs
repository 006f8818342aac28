//! `rig run --retries N`: a scenario that ends in `error` (the bench stumbled) runs again; one
//! that then passes is `flaky`, never a plain pass, in report.json and junit.xml alike. A
//! `fail` (the gauge) is never retried. The bench's stumble is a transient fault of the
//! simulated telemetry port (`[simulated_faults]` with `for_ms`).

mod common;

use std::path::Path;

use rig_verify::{job::RunResult, report::Outcome};

/// set_temperature, then the telemetry's status line: with the port silent the step is the
/// rig's error (the needle moves, so the gauge is not blamed).
fn telemetry_scenario(dir: &Path) -> std::path::PathBuf {
    common::write(
        dir,
        "telemetry.toml",
        "name = \"telemetry-after-a-stumble\"\n\
         [[steps]]\naction = \"set_temperature\"\ncelsius = 90\n\n\
         [[steps]]\naction = \"expect_pulse\"\nus = 1455\n\n\
         [[steps]]\naction = \"expect_telemetry\"\ncelsius = 90\nsource = \"bcast\"\n",
    )
}

fn rig_with_telemetry_fault(dir: &Path, fault: &str) -> std::path::PathBuf {
    let base = std::fs::read_to_string(common::repo("rig-config/sim.toml")).expect("sim.toml");
    common::write(
        dir,
        "rig.toml",
        &format!("{base}\n[simulated_faults]\ntelemetry = {{ {fault} }}\n"),
    )
}

fn run(
    rig: &Path,
    scenarios: &[std::path::PathBuf],
    retries: u32,
) -> (RunResult, tempfile::TempDir) {
    common::run_choosing(
        rig,
        scenarios,
        rig::commands::run::RunChoices {
            retries,
            evidence_always: false,
        },
    )
}

#[test]
fn an_error_that_passes_on_a_retry_is_flaky_in_the_report_and_in_junit() {
    let dir = tempfile::tempdir().unwrap();
    // Silent for the first 4 s after bring-up: the first attempt's status-line wait (2.5 s)
    // falls inside; the retry's starts inside and outlasts it.
    let rig =
        rig_with_telemetry_fault(dir.path(), "kind = \"silent\", after_ms = 0, for_ms = 4000");
    let (result, _reports) = run(&rig, &[telemetry_scenario(dir.path())], 2);
    let report = &result.report;
    let sc = &report.scenarios[0];
    assert_eq!(sc.outcome, Outcome::Flaky, "{sc:#?}");
    assert_eq!(sc.retried.len(), 1, "one erred attempt, then a pass");
    assert_eq!(sc.retried[0].outcome, Outcome::Error);
    assert!(
        sc.retried[0].error.contains("expect_telemetry"),
        "{}",
        sc.retried[0].error
    );
    assert_eq!(report.outcome, Outcome::Flaky);
    assert_eq!(
        (report.summary.passed, report.summary.flaky),
        (0, 1),
        "{:?}",
        report.summary
    );
    assert_eq!(result.exit_code(), 0, "the gauge passed");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result.report_path).expect("report.json"))
            .expect("parses");
    assert_eq!(json["scenarios"][0]["outcome"], "flaky");
    assert_eq!(json["summary"]["flaky"], 1);
    let junit =
        std::fs::read_to_string(result.report_path.with_file_name("junit.xml")).expect("junit.xml");
    assert!(
        junit.contains(r#"tests="1" failures="0" errors="0" skipped="0""#),
        "{junit}"
    );
    assert!(
        junit.contains("<flakyError message=\"step 3 expect_telemetry: "),
        "{junit}"
    );
    assert!(
        junit.contains(r#"<property name="flaky" value="1"/>"#),
        "{junit}"
    );
}

#[test]
fn an_error_that_lasts_is_retried_then_reported_as_the_error_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let rig = rig_with_telemetry_fault(dir.path(), "kind = \"silent\", after_ms = 0");
    let (result, _reports) = run(&rig, &[telemetry_scenario(dir.path())], 1);
    let sc = &result.report.scenarios[0];
    assert_eq!(sc.outcome, Outcome::Error);
    assert_eq!(sc.retried.len(), 1);
    assert_eq!(result.exit_code(), 2);
}

#[test]
fn a_failing_gauge_is_never_retried() {
    let (result, _reports) = run(
        &common::repo("rig-config/sim-ldo-firmware.toml"),
        &[common::repo("scenarios/supply_configuration.toml")],
        3,
    );
    let sc = &result.report.scenarios[0];
    assert_eq!(sc.outcome, Outcome::Fail);
    assert!(sc.retried.is_empty(), "{:?}", sc.retried);
    assert_eq!(result.exit_code(), 1);
}
