//! The JSON run report (schema in `reports/README.md`), written atomically after every
//! scenario so an interrupted run still leaves a readable record, and the JUnit XML (`junit`)
//! and the HTML page (`html`) rendered from it.

pub mod events;
pub mod html;
pub mod junit;
pub mod run_log;

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use rig_instruments::{EmulationStats, FirmwareIdentity};

pub const SCHEMA: &str = "gauge-rig-report/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Something stopped the step or run from reaching a verdict (instrument, config, abort).
    Error,
    /// Not run because an earlier step failed or the run was interrupted.
    Skipped,
    /// Still running (seen only in a report of a run that was killed).
    Running,
    /// Passed on a retry after an attempt that ended in `error` (`rig run --retries`): the
    /// gauge passed, the bench stumbled first. Never reported as a plain pass.
    Flaky,
}

impl Outcome {
    /// Combining outcomes: error beats running beats fail beats flaky beats pass; skipped
    /// counts for nothing.
    pub fn worst(self, other: Outcome) -> Outcome {
        use Outcome::*;
        match (self, other) {
            (Error, _) | (_, Error) => Error,
            (Running, _) | (_, Running) => Running,
            (Fail, _) | (_, Fail) => Fail,
            (Flaky, _) | (_, Flaky) => Flaky,
            (Pass, _) | (_, Pass) => Pass,
            (Skipped, Skipped) => Skipped,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
            Outcome::Running => "running",
            Outcome::Flaky => "flaky",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    pub name: String,
    pub value: f64,
    pub units: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    pub outcome: Outcome,
}

impl Measurement {
    /// A measurement judged against inclusive limits.
    pub fn limited(
        name: &str,
        value: f64,
        units: &str,
        low: Option<f64>,
        high: Option<f64>,
    ) -> Self {
        let ok = low.is_none_or(|l| value >= l) && high.is_none_or(|h| value <= h);
        Self {
            name: name.into(),
            value,
            units: units.into(),
            low,
            high,
            outcome: if ok { Outcome::Pass } else { Outcome::Fail },
        }
    }

    /// A recorded value with no limit (it passes).
    pub fn info(name: &str, value: f64, units: &str) -> Self {
        Self::limited(name, value, units, None, None)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    pub index: usize,
    pub line: usize,
    pub action: String,
    pub outcome: Outcome,
    pub duration_ms: f64,
    pub measurements: Vec<Measurement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For failures the rig can explain: what was found, what it means, how to recover.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<String>,
    /// The needle's pulses the step watched (expect_pulse, expect_failsafe, the power-cycle
    /// check), for the HTML report's plot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<PulseTrace>,
}

/// The servo pulses a step captured while it waited for the needle: each pulse's rising edge
/// (ms from the step's reference: the set-point's first frame on the bus, the last valid
/// frame for a failsafe, power-on for a power cycle; earlier pulses are negative) and width.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PulseTrace {
    pub target_us: f64,
    pub tolerance_us: f64,
    /// Pulses captured in all; `t_ms`/`width_us` keep at most [`PulseTrace::MAX_POINTS`].
    pub captured: usize,
    pub t_ms: Vec<f64>,
    pub width_us: Vec<f64>,
}

impl PulseTrace {
    /// A long wait's trace is thinned to this many points (a report stays small; a plot of
    /// more points shows nothing more).
    pub const MAX_POINTS: usize = 200;

    pub fn new(target_us: f64, tolerance_us: f64) -> Self {
        Self {
            target_us,
            tolerance_us,
            ..Self::default()
        }
    }

    pub fn push(&mut self, t_ms: f64, width_us: f64) {
        self.captured += 1;
        self.t_ms.push(t_ms);
        self.width_us.push(width_us);
    }

    /// At most [`Self::MAX_POINTS`] points, evenly spread, the first and the last kept (the
    /// last ones are what the verdict was made on).
    pub fn thinned(mut self) -> Self {
        let n = self.t_ms.len();
        if n > Self::MAX_POINTS {
            let keep: Vec<usize> = (0..Self::MAX_POINTS)
                .map(|i| i * (n - 1) / (Self::MAX_POINTS - 1))
                .collect();
            self.t_ms = keep.iter().map(|&i| self.t_ms[i]).collect();
            self.width_us = keep.iter().map(|&i| self.width_us[i]).collect();
        }
        self
    }
}

/// Settling performance of a scenario's set-points, against the physical floor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettleSummary {
    pub setpoints: usize,
    /// Wall time from each set-point until the rig confirmed the needle settled, summed.
    pub total_ms: f64,
    /// Slew time plus two PWM periods per set-point, summed.
    pub floor_ms: f64,
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub name: String,
    pub file: String,
    pub outcome: Outcome,
    pub started_at: String,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub steps: Vec<StepReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settling: Option<SettleSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Earlier attempts that ended in `error` and were run again (`rig run --retries`), oldest
    /// first; this report is the last attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retried: Vec<Attempt>,
    /// What the instruments saw (CAN log, telemetry transcript, captures), relative to the
    /// run folder: written for a scenario that did not pass, or always on request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

/// An attempt at a scenario that ended in `error` and was run again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub outcome: Outcome,
    pub started_at: String,
    pub duration_ms: f64,
    /// What stopped it: the deciding step's message, or the scenario's error.
    pub error: String,
    pub steps: Vec<StepReport>,
}

impl Attempt {
    pub fn of(report: &ScenarioReport) -> Self {
        Self {
            outcome: report.outcome,
            started_at: report.started_at.clone(),
            duration_ms: report.duration_ms,
            error: report.stop_reason(),
            steps: report.steps.clone(),
        }
    }
}

impl ScenarioReport {
    /// A scenario under way since `started_at`, with no step finished yet.
    pub fn under_way(
        name: String,
        file: String,
        started_at: String,
        description: Option<String>,
    ) -> Self {
        Self {
            name,
            file,
            outcome: Outcome::Running,
            started_at,
            duration_ms: 0.0,
            description,
            steps: Vec::new(),
            settling: None,
            error: None,
            retried: Vec::new(),
            evidence: Vec::new(),
        }
    }

    /// A scenario under way from now, with no step finished yet.
    pub fn running(scenario: &crate::scenario::Scenario) -> Self {
        Self::under_way(
            scenario.name.clone(),
            scenario.path.display().to_string(),
            now_rfc3339(),
            scenario.description.clone(),
        )
    }

    /// A scenario that never started (the run was interrupted first).
    pub fn not_run(scenario: &crate::scenario::Scenario, why: &str) -> Self {
        Self {
            outcome: Outcome::Skipped,
            error: Some(why.to_string()),
            ..Self::running(scenario)
        }
    }

    /// The first step with the scenario's outcome: the one that decided it.
    pub fn deciding_step(&self) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.outcome == self.outcome)
    }

    /// Why the scenario ended as it did, in a line: `step N <action>: <message>`, else its
    /// error, else its outcome.
    pub fn stop_reason(&self) -> String {
        match (self.deciding_step(), &self.error) {
            (Some(step), _) => format!(
                "step {} {}: {}",
                step.index,
                step.action,
                step.message.as_deref().unwrap_or(self.outcome.name())
            ),
            (None, Some(e)) => e.clone(),
            (None, None) => self.outcome.name().to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RigInfo {
    pub name: String,
    pub config: String,
    pub backend: String,
    pub board: String,
    pub wiring: String,
    pub instruments: Vec<String>,
    /// Each instrument that is a USB device, as found on this machine: what a bench report
    /// needs to tell which adapter, analyzer, relay and probe took the measurements.
    pub usb: Vec<InstrumentUsb>,
    /// SHA-256 of the rig config file as it was read: a changed bench config shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_sha256: Option<String>,
    /// The machine that ran the rig (its host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstrumentUsb {
    /// `can`, `pulse_meter`, `power`, `telemetry` or `probe`.
    pub instrument: String,
    /// The path in the rig config (a serial port) or the probe's name.
    pub configured: String,
    /// `/dev/serial/by-id` names of the device (none for a probe).
    pub by_id: Vec<String>,
    pub identity: rig_instruments::usb_identity::UsbIdentity,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Summary {
    pub scenarios: usize,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub skipped: usize,
    /// Passed on a retry (not counted in `passed`).
    #[serde(default)]
    pub flaky: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub schema: String,
    pub run_id: String,
    pub tool: String,
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rig: Option<RigInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<FirmwareIdentity>,
    pub summary: Summary,
    pub scenarios: Vec<ScenarioReport>,
    /// Emulated board only: instructions, virtual vs wall time, real-time factor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emulation: Option<EmulationStats>,
}

impl RunReport {
    pub fn new(run_id: String) -> Self {
        Self {
            schema: SCHEMA.to_string(),
            run_id,
            tool: format!("rig {}", env!("CARGO_PKG_VERSION")),
            started_at: now_rfc3339(),
            finished_at: None,
            outcome: Outcome::Running,
            error: None,
            rig: None,
            firmware: None,
            summary: Summary::default(),
            scenarios: Vec::new(),
            emulation: None,
        }
    }

    pub fn recount(&mut self) {
        let mut s = Summary {
            scenarios: self.scenarios.len(),
            ..Summary::default()
        };
        for sc in &self.scenarios {
            match sc.outcome {
                Outcome::Pass => s.passed += 1,
                Outcome::Fail => s.failed += 1,
                Outcome::Error | Outcome::Running => s.errors += 1,
                Outcome::Skipped => s.skipped += 1,
                Outcome::Flaky => s.flaky += 1,
            }
        }
        self.summary = s;
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}

/// A run id that sorts by time: `20261121T161502Z-<pid>`.
pub fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    format!(
        "{}-{}",
        now.format(&fmt).unwrap_or_else(|_| "run".into()),
        std::process::id()
    )
}

/// Writes `reports/<run-id>/report.json` by writing a temporary file and renaming it, so a
/// failed write (a full disk) leaves the last complete report in place.
pub struct ReportWriter {
    pub dir: PathBuf,
    /// The last report that could not be written, as JSON, for the caller to show instead.
    unwritten: std::sync::Mutex<Option<String>>,
    /// `events.jsonl`, opened for appending.
    events: std::sync::Mutex<std::fs::File>,
}

impl Drop for ReportWriter {
    fn drop(&mut self) {
        run_log::close();
    }
}

impl ReportWriter {
    pub fn create(reports_root: &Path, run_id: &str) -> std::io::Result<Self> {
        let dir = reports_root.join(run_id);
        std::fs::create_dir_all(&dir)?;
        run_log::open_in(&dir)?;
        let events = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("events.jsonl"))?;
        Ok(Self {
            dir,
            unwritten: Default::default(),
            events: std::sync::Mutex::new(events),
        })
    }

    /// Appends `event` to `events.jsonl` before returning: a killed rig keeps it. The disk
    /// sync comes with the synced report writes (bring-up, each scenario's end, the run's
    /// end): syncing after every step, even on a thread of its own, cost the software-emulated
    /// USB guest's only CPU enough for a CAN adapter's answer to come late.
    pub fn event(&self, event: &events::Event) -> std::io::Result<()> {
        let mut line = serde_json::to_string(event).map_err(std::io::Error::other)?;
        line.push('\n');
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(line.as_bytes())?;
        Ok(())
    }

    pub fn events_path(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    /// The report a failed write could not save (the newest one), as JSON.
    pub fn take_unwritten(&self) -> Option<String> {
        self.unwritten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("report.json")
    }

    pub fn write(&self, report: &RunReport) -> std::io::Result<()> {
        self.write_with(report, true)
    }

    /// [`Self::write`] without waiting for the disk: what a step's end writes, so the next
    /// step starts on time (a shared folder's fsync took long enough to delay a timing step in
    /// the USB guest). A killed run keeps it all the same; the scenario's end syncs.
    pub fn write_unsynced(&self, report: &RunReport) -> std::io::Result<()> {
        self.write_with(report, false)
    }

    /// `junit.xml` beside `report.json` ([`junit`]).
    pub fn junit_path(&self) -> PathBuf {
        self.dir.join("junit.xml")
    }

    /// `report.html` beside `report.json` ([`html`]).
    pub fn html_path(&self) -> PathBuf {
        self.dir.join("report.html")
    }

    fn write_with(&self, report: &RunReport, sync: bool) -> std::io::Result<()> {
        let mut json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
        json.push('\n');
        let written = self.replace(".report.json.tmp", &self.path(), &json, sync);
        if written.is_err() {
            *self.unwritten.lock().unwrap_or_else(|e| e.into_inner()) = Some(json);
            return written;
        }
        // The JSON is the record (rewritten after every step); the JUnit file is rendered from
        // it at the synced writes: bring-up, each scenario's end and the run's end.
        if !sync {
            return Ok(());
        }
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sync_data()?;
        let xml = junit::render(report)?;
        self.replace(".junit.xml.tmp", &self.junit_path(), &xml, sync)?;
        let page = html::render(report);
        self.replace(".report.html.tmp", &self.html_path(), &page, sync)
    }

    /// Writes `text` to `path` through a temporary file and a rename, so a failed write
    /// leaves the last complete file in place.
    fn replace(&self, tmp: &str, path: &Path, text: &str, sync: bool) -> std::io::Result<()> {
        replace_file(&self.dir.join(tmp), path, text, sync)
    }
}

/// Writes `text` to `path` through the temporary file `tmp` and a rename, so a failed write
/// leaves the last complete file in place.
fn replace_file(tmp: &Path, path: &Path, text: &str, sync: bool) -> std::io::Result<()> {
    let written = (|| {
        let mut f = std::fs::File::create(tmp)?;
        f.write_all(text.as_bytes())?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    written
}

/// Replaces a run folder's `report.html` with `page` as the report writer does (the page
/// rendered again once the run's history is known).
pub fn rewrite_html(folder: &Path, page: &str) -> std::io::Result<()> {
    replace_file(
        &folder.join(".report.html.tmp"),
        &folder.join("report.html"),
        page,
        true,
    )
}
