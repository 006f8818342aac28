//! `rig run`: scenario files on a rig, progress on the console, reports/<run-id>/report.json.

use std::{path::PathBuf, process::ExitCode, sync::atomic::AtomicBool};

use rig_verify::{
    job::{self, Progress, RunOptions},
    report::{Outcome, RunReport, ScenarioReport, StepReport},
    rig::Rig,
    scenario::Scenario,
};

use bench_config::bench_folder;

use crate::assembly;

/// `rig run`'s arguments; `None` and an empty list take the bench folder's defaults.
pub struct RunArgs {
    pub paths: Vec<PathBuf>,
    pub rig: Option<PathBuf>,
    pub reports: PathBuf,
    pub dbc: Option<PathBuf>,
    pub retries: u32,
    pub evidence: bool,
}

/// The run job with the bench assembled from the rig config (what the CLI and the tests run).
pub fn run(
    rig: PathBuf,
    scenarios: Vec<PathBuf>,
    reports_root: PathBuf,
    dbc: PathBuf,
    abort: &AtomicBool,
    progress: &mut dyn Progress,
) -> Result<job::RunResult, job::ReportLost> {
    run_with(
        rig,
        scenarios,
        reports_root,
        dbc,
        RunChoices::default(),
        abort,
        progress,
    )
}

/// What `rig run` may do beyond the defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunChoices {
    /// A scenario that ends in `error` runs again up to this many times (`--retries`).
    pub retries: u32,
    /// Evidence for every scenario, not only those that did not pass (`--evidence`).
    pub evidence_always: bool,
}

/// [`run`] with [`RunChoices`].
pub fn run_with(
    rig: PathBuf,
    scenarios: Vec<PathBuf>,
    reports_root: PathBuf,
    dbc: PathBuf,
    choices: RunChoices,
    abort: &AtomicBool,
    progress: &mut dyn Progress,
) -> Result<job::RunResult, job::ReportLost> {
    let opener = |config, encoder| assembly::open(config, encoder).map_err(|e| e.to_string());
    let opts = RunOptions {
        rig,
        scenarios,
        reports_root: reports_root.clone(),
        dbc,
        abort,
        open_rig: &opener,
        retries: choices.retries,
        evidence_always: choices.evidence_always,
    };
    let result = job::run(&opts, progress)?;
    if let Some(folder) = result.report_path.parent() {
        super::history::record(&reports_root, folder, &result.report);
    }
    Ok(result)
}

pub fn cli(args: RunArgs) -> ExitCode {
    let abort = super::signals::install("the run");
    let scenarios = if args.paths.is_empty() {
        vec![bench_folder::default_scenarios()]
    } else {
        args.paths
    };
    let result = run_with(
        args.rig.unwrap_or_else(bench_folder::default_rig_config),
        scenarios,
        args.reports,
        args.dbc.unwrap_or_else(bench_folder::default_dbc),
        RunChoices {
            retries: args.retries,
            evidence_always: args.evidence,
        },
        &abort,
        &mut Console,
    );
    match result {
        Ok(result) => {
            println!("\n{}", summary_line(&result.report));
            if let Some(em) = &result.report.emulation {
                println!(
                    "emulated board: {} instructions, {:.1} emulated s in {:.1} bench s (real-time factor {:.3}), {:.1} M instructions/s, {:.1}x faster than real time when busy",
                    em.instructions, em.virtual_s, em.wall_s, em.real_time_factor, em.instructions_per_s / 1e6, em.speed_factor
                );
                println!(
                    "emulated FDCAN: {} frames into the RX FIFO, {} rejected by the acceptance filters, {} lost to a full FIFO, {} not taken (controller not operating or bus-off), {} kept off by a bus fault; error passive {} times, bus-off {} times",
                    em.can_frames_received, em.can_frames_filtered, em.can_fifo_overruns, em.can_frames_dropped, em.can_frames_lost_to_bus_fault, em.can_error_passive_events, em.can_bus_off_events
                );
            }
            if let Some(e) = &result.report.error {
                eprintln!("error: {e}");
            }
            print_outputs(&result.report_path);
            ExitCode::from(result.exit_code() as u8)
        }
        Err(lost) => {
            eprintln!("error: {lost}");
            // Never lose a report: what could not be saved goes to the console.
            if let Some(json) = &lost.json {
                eprintln!("the report that could not be written:\n{json}");
            }
            ExitCode::from(2)
        }
    }
}

/// `pass: 7 scenarios, 7 passed, 0 failed, 0 errors` (and the flaky ones, if any).
pub fn summary_line(report: &RunReport) -> String {
    let s = &report.summary;
    let flaky = if s.flaky > 0 {
        format!(", {} flaky (passed only on a retry)", s.flaky)
    } else {
        String::new()
    };
    format!(
        "{}: {} scenarios, {} passed, {} failed, {} errors{flaky}",
        mark(report.outcome),
        s.scenarios,
        s.passed,
        s.failed,
        s.errors
    )
}

/// Where a run's report, its JUnit file and its HTML page are.
pub fn print_outputs(report_json: &std::path::Path) {
    println!("report: {}", report_json.display());
    println!(
        "junit:  {}",
        report_json.with_file_name("junit.xml").display()
    );
    println!(
        "html:   {}",
        report_json.with_file_name("report.html").display()
    );
    let history = report_json
        .parent()
        .and_then(std::path::Path::parent)
        .map(|reports| reports.join(rig_history::FILE));
    if let Some(h) = history.filter(|h| h.is_file()) {
        println!("history: {} (rig history)", h.display());
    }
}

pub struct Console;

fn mark(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::Error => "ERROR",
        Outcome::Skipped => "skip",
        Outcome::Running => "....",
        Outcome::Flaky => "FLAKY",
    }
}

impl Progress for Console {
    fn rig_ready(&mut self, rig: &Rig) {
        println!("rig: {} ({})", rig.config.name, rig.config.path);
        for i in rig.info().instruments {
            println!("  - {i}");
        }
    }
    fn scenario_started(&mut self, s: &Scenario) {
        println!("\nscenario {} ({})", s.name, s.path.display());
    }
    fn step_done(&mut self, s: &StepReport) {
        let ms: Vec<String> = s
            .measurements
            .iter()
            .filter(|m| m.low.is_some() || m.high.is_some() || m.name.contains("time"))
            .map(|m| {
                format!(
                    "{}={:.1}{}",
                    m.name,
                    m.value,
                    if m.units == "us" || m.units == "ms" {
                        m.units.as_str()
                    } else {
                        ""
                    }
                )
            })
            .collect();
        println!(
            "  [{}] {:>2} {:<20} {:>8.0} ms  {}",
            mark(s.outcome),
            s.index,
            s.action,
            s.duration_ms,
            ms.join(" ")
        );
        if let Some(m) = &s.message {
            if s.outcome != Outcome::Pass {
                println!("         {m}");
            }
        }
        if let Some(d) = &s.diagnosis {
            println!("         diagnosis: {d}");
        }
    }
    fn scenario_retried(&mut self, attempt: &ScenarioReport, next: u32, of: u32) {
        println!(
            "  => ERROR in {:.1} s: {}; running it again (attempt {next} of {of}, --retries)",
            attempt.duration_ms / 1000.0,
            attempt.stop_reason()
        );
    }
    fn scenario_done(&mut self, r: &ScenarioReport) {
        if let Some(first) = r.evidence.first() {
            let folder = std::path::Path::new(first)
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            println!(
                "  evidence: {folder}/ in the run folder ({} files: CAN log, telemetry, captures)",
                r.evidence.len()
            );
        }
        let settle = r
            .settling
            .as_ref()
            .map(|s| {
                format!(
                    ", settling {:.0} ms vs floor {:.0} ms ({:.2}x over {} set-points)",
                    s.total_ms, s.floor_ms, s.ratio, s.setpoints
                )
            })
            .unwrap_or_default();
        println!(
            "  => {} in {:.1} s{settle}",
            mark(r.outcome),
            r.duration_ms / 1000.0
        );
    }
}
