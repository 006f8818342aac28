//! The `run` job: rig config + scenarios in, report out. Shared by the CLI and the tests; the
//! bench itself comes from the caller's opener (the `rig` binary's assembly), so this job
//! knows no driver and no simulator.

use std::{path::PathBuf, sync::atomic::AtomicBool};

use crate::{
    dbc::OilTempEncoder,
    evidence::Evidence,
    report::{
        events::Event, new_run_id, now_rfc3339, Attempt, Outcome, ReportWriter, RunReport,
        ScenarioReport, StepReport,
    },
    rig::Rig,
    scenario::Scenario,
    session::Runner,
};
use bench_config::RigConfig;

/// Opens a rig (brought up: powered, firmware under test loaded) from its config and the DBC.
pub type RigOpener<'a> = dyn Fn(RigConfig, OilTempEncoder) -> Result<Rig, String> + 'a;

pub struct RunOptions<'a> {
    pub rig: PathBuf,
    pub scenarios: Vec<PathBuf>,
    pub reports_root: PathBuf,
    pub dbc: PathBuf,
    pub abort: &'a AtomicBool,
    pub open_rig: &'a RigOpener<'a>,
    /// How many times a scenario that ended in `error` (the rig, an instrument) is run again;
    /// one that then passes is `flaky`. A `fail` (the gauge) is never retried.
    pub retries: u32,
    /// Write the instruments' evidence for every scenario, not only those that did not pass.
    pub evidence_always: bool,
}

/// What a run produced. The report is on disk at `report_path` whatever the outcome.
pub struct RunResult {
    pub report: RunReport,
    pub report_path: PathBuf,
}

impl RunResult {
    /// 0 all passed (some perhaps only on a retry: `flaky`, said in the report), 1 something
    /// failed, 2 an error stopped the run.
    pub fn exit_code(&self) -> i32 {
        match self.report.outcome {
            Outcome::Pass | Outcome::Flaky => 0,
            Outcome::Fail => 1,
            _ => 2,
        }
    }
}

/// Output while the run goes on.
pub trait Progress {
    fn rig_ready(&mut self, _rig: &Rig) {}
    fn scenario_started(&mut self, _scenario: &Scenario) {}
    fn step_done(&mut self, _step: &StepReport) {}
    fn scenario_done(&mut self, _report: &ScenarioReport) {}
    /// An attempt ended in `error` and the scenario runs again (attempt `next` of `of`).
    fn scenario_retried(&mut self, _attempt: &ScenarioReport, _next: u32, _of: u32) {}
}

pub struct Quiet;
impl Progress for Quiet {}

/// A report that could not be written (a full disk, a folder made read-only mid-run): the
/// error, where it should have gone, and the report itself, for the caller to show.
#[derive(Debug)]
pub struct ReportLost {
    pub error: std::io::Error,
    pub path: PathBuf,
    /// The newest report as JSON (none when the run folder could not even be made).
    pub json: Option<String>,
}

impl std::fmt::Display for ReportLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write the report {}: {}. Free some space or make the folder writable (or give --reports another folder); the run stopped there", self.path.display(), self.error)
    }
}

/// Runs the scenarios; `Err` only when the report could not be written (the run stops then).
pub fn run(opts: &RunOptions<'_>, progress: &mut dyn Progress) -> Result<RunResult, ReportLost> {
    let run_id = new_run_id();
    let writer = ReportWriter::create(&opts.reports_root, &run_id).map_err(|error| ReportLost {
        error,
        path: opts.reports_root.join(&run_id),
        json: None,
    })?;
    run_into(opts, progress, &writer, run_id).map_err(|error| ReportLost {
        error,
        path: writer.path(),
        json: writer.take_unwritten(),
    })
}

fn run_into(
    opts: &RunOptions<'_>,
    progress: &mut dyn Progress,
    writer: &ReportWriter,
    run_id: String,
) -> std::io::Result<RunResult> {
    let mut report = RunReport::new(run_id);
    writer.event(&Event::RunStarted {
        schema: report.schema.clone(),
        run_id: report.run_id.clone(),
        tool: report.tool.clone(),
        started_at: report.started_at.clone(),
    })?;
    writer.write(&report)?;
    let finish =
        |report: &mut RunReport, outcome: Outcome, error: Option<String>| -> std::io::Result<()> {
            report.outcome = outcome;
            report.error = error;
            report.finished_at = Some(now_rfc3339());
            report.recount();
            writer.event(&Event::RunDone {
                outcome,
                error: report.error.clone(),
                finished_at: report.finished_at.clone().unwrap_or_default(),
            })?;
            writer.write(report)
        };

    let prepared = (|| -> Result<(RigConfig, Vec<Scenario>, OilTempEncoder), String> {
        let config = RigConfig::load(&opts.rig).map_err(|e| format!("rig config: {e}"))?;
        let files = Scenario::collect(&opts.scenarios).map_err(|e| e.to_string())?;
        if files.is_empty() {
            return Err(format!(
                "no scenario files (*.toml) in {:?}",
                opts.scenarios
            ));
        }
        let encoder = OilTempEncoder::load(&opts.dbc).map_err(|e| format!("DBC: {e}"))?;
        let mut scenarios = Vec::new();
        let mut problems = Vec::new();
        for f in &files {
            match Scenario::load(f, Some(&encoder)) {
                Ok(s) => scenarios.push(s),
                Err(e) => problems.push(e.to_string()),
            }
        }
        if !problems.is_empty() {
            return Err(format!(
                "invalid scenario files:\n  {}",
                problems.join("\n  ")
            ));
        }
        Ok((config, scenarios, encoder))
    })();
    let (config, scenarios, encoder) = match prepared {
        Ok(p) => p,
        Err(e) => {
            finish(&mut report, Outcome::Error, Some(e))?;
            return Ok(RunResult {
                report,
                report_path: writer.path(),
            });
        }
    };

    let mut rig = match (opts.open_rig)(config, encoder) {
        Ok(r) => r,
        Err(e) => {
            finish(
                &mut report,
                Outcome::Error,
                Some(format!("bringing up the rig: {e}")),
            )?;
            return Ok(RunResult {
                report,
                report_path: writer.path(),
            });
        }
    };
    // What the board runs, read back before anything else touches it.
    crate::provenance::fill(&mut rig);
    let mut evidence = Evidence::attach(&mut rig);
    // Once: it looks each USB instrument up on this machine.
    let info = rig.info();
    tracing::info!(
        "rig {} brought up ({}): {}",
        rig.config.name,
        rig.config.path,
        info.instruments.join("; ")
    );
    writer.event(&Event::RigReady {
        rig: info.clone(),
        firmware: rig.firmware.clone(),
    })?;
    report.rig = Some(info);
    report.firmware = Some(rig.firmware.clone());
    writer.write(&report)?;
    progress.rig_ready(&rig);

    let mut outcome = Outcome::Pass;
    for scenario in &scenarios {
        if opts.abort.load(std::sync::atomic::Ordering::Relaxed) {
            let not_run = ScenarioReport::not_run(scenario, "run interrupted before this scenario");
            writer.event(&Event::ScenarioDone {
                scenario: not_run.clone(),
                emulation: None,
            })?;
            report.scenarios.push(not_run);
            continue;
        }
        progress.scenario_started(scenario);
        let mut retried = Vec::new();
        tracing::info!(
            "scenario {} ({}) starts",
            scenario.name,
            scenario.path.display()
        );
        evidence.begin();
        writer.event(&Event::ScenarioStarted {
            name: scenario.name.clone(),
            file: scenario.path.display().to_string(),
            started_at: now_rfc3339(),
            description: scenario.description.clone(),
        })?;
        let mut sr = loop {
            let mut runner = Runner {
                rig: &mut rig,
                abort: opts.abort,
            };
            // Every finished step reaches the disk at once: a run killed mid-scenario keeps it.
            let mut partial = ScenarioReport::running(scenario);
            partial.retried = retried.clone();
            let mut write_error = None;
            let mut sr = runner.run(scenario, &mut |s| {
                progress.step_done(s);
                partial.steps.push(s.clone());
                let mut so_far = report.clone();
                so_far.scenarios.push(partial.clone());
                let written = writer
                    .event(&Event::Step { step: s.clone() })
                    .and_then(|()| writer.write_unsynced(&so_far));
                if let Err(e) = written {
                    write_error.get_or_insert(e);
                }
            });
            let attempts = retried.len() as u32 + 1;
            let interrupted = opts.abort.load(std::sync::atomic::Ordering::Relaxed);
            if write_error.is_none()
                && sr.outcome == Outcome::Error
                && attempts <= opts.retries
                && !interrupted
            {
                let attempt = Attempt::of(&sr);
                tracing::warn!(
                    "scenario {}: {}; running it again (attempt {} of {})",
                    scenario.name,
                    attempt.error,
                    attempts + 1,
                    opts.retries + 1
                );
                progress.scenario_retried(&sr, attempts + 1, opts.retries + 1);
                writer.event(&Event::ScenarioRetried {
                    attempt: attempt.clone(),
                })?;
                retried.push(attempt);
                continue;
            }
            if !retried.is_empty() && sr.outcome == Outcome::Pass {
                sr.outcome = Outcome::Flaky;
            }
            sr.retried = std::mem::take(&mut retried);
            if let Some(e) = write_error {
                report.scenarios.push(sr);
                return Err(e);
            }
            break sr;
        };
        if opts.evidence_always || !matches!(sr.outcome, Outcome::Pass | Outcome::Skipped) {
            let folder = format!(
                "evidence/{:02}-{}",
                report.scenarios.len() + 1,
                scenario
                    .path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "scenario".into())
            );
            match evidence.write(&rig, &writer.dir.join(&folder)) {
                Ok(files) => {
                    sr.evidence = files
                        .iter()
                        .filter_map(|f| f.strip_prefix(&writer.dir).ok())
                        .map(|f| f.display().to_string())
                        .collect();
                }
                // A full disk stops the run at the report write just below.
                Err(e) => tracing::warn!("evidence for {}: {e}", scenario.name),
            }
        }
        tracing::info!(
            "scenario {} ends: {} in {:.1} s",
            scenario.name,
            sr.outcome.name(),
            sr.duration_ms / 1000.0
        );
        progress.scenario_done(&sr);
        outcome = outcome.worst(sr.outcome);
        report.emulation = rig.emulation_stats();
        writer.event(&Event::ScenarioDone {
            scenario: sr.clone(),
            emulation: report.emulation.clone(),
        })?;
        report.scenarios.push(sr);
        report.recount();
        writer.write(&report)?;
    }
    rig.leave_safe();
    let interrupted = opts.abort.load(std::sync::atomic::Ordering::Relaxed);
    // An interrupted run never passes, even if the interrupt came during its last step.
    if interrupted {
        outcome = Outcome::Error;
    }
    finish(
        &mut report,
        outcome,
        interrupted.then(|| "run interrupted".to_string()),
    )?;
    Ok(RunResult {
        report,
        report_path: writer.path(),
    })
}
