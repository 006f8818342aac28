//! Scenario files: what to do to the gauge and what to expect, in TOML.
//!
//! ```toml
//! name = "broadcast-90"
//! description = "A warm engine on the broadcast frame"
//!
//! [defaults]            # optional
//! tolerance_us = 4      # expect_pulse tolerance
//! settle_timeout_ms = 3000
//!
//! [[steps]]
//! action = "set_temperature"
//! celsius = 90
//! source = "broadcast"  # or "obd"
//!
//! [[steps]]
//! action = "expect_pulse"
//! us = 1455
//! ```
//!
//! Actions: `set_temperature`, `stop_sending`, `inject`, `clear_faults`, `hold`,
//! `expect_pulse`, `expect_failsafe`, `expect_telemetry`, `expect_obd_polling`,
//! `power_cycle`, `reset`, `expect_supply`, `expect_boot_count`. See `scenarios/README.md`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::dbc::OilTempEncoder;
use bench_config::source_file::{FileError, SourceFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TempSource {
    #[default]
    Broadcast,
    Obd,
}

/// Bad traffic the rig can put on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Random IDs and payloads, including the broadcast ID with random lengths.
    Garbage,
    /// The broadcast frame with a DLC other than the DBC's.
    WrongDlc,
    /// The broadcast signal carrying a status code (raw 255 "Fault", 254 "Unknown").
    StatusCode,
    /// Frames on IDs the gauge does not listen to.
    ForeignIds,
    /// Replies from 0x7E8 that are not valid mode-01 PID-5C single frames.
    MalformedObd,
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Start sending `celsius` on `source` (broadcast every `period_ms`, or OBD-II replies).
    SetTemperature {
        celsius: f64,
        #[serde(default)]
        source: TempSource,
        #[serde(default = "default_period_ms")]
        period_ms: u64,
    },
    /// Stop all traffic from the rig (broadcast and OBD-II replies).
    StopSending,
    /// Add bad frames to the bus; `keep_valid = false` also stops the valid ones.
    Inject {
        fault: Fault,
        #[serde(default = "default_fault_rate")]
        rate_hz: u32,
        #[serde(default = "default_true")]
        keep_valid: bool,
    },
    ClearFaults,
    Hold {
        ms: u64,
    },
    /// Wait for the needle to settle and check its pulse width.
    ExpectPulse {
        us: f64,
        tolerance_us: Option<f64>,
        settle_timeout_ms: Option<u64>,
    },
    /// The needle parks (900 us) and telemetry reports the failsafe within `within_ms` of the last valid data.
    ExpectFailsafe {
        #[serde(default = "default_failsafe_ms")]
        within_ms: u64,
        tolerance_us: Option<f64>,
    },
    /// The next status line reports these values (each optional).
    ExpectTelemetry {
        celsius: Option<f64>,
        source: Option<String>,
        failsafe: Option<bool>,
    },
    /// The gauge polls OBD-II every `interval_ms` (+- `tolerance_ms`), observed over `over_ms`.
    ExpectObdPolling {
        #[serde(default = "default_poll_ms")]
        interval_ms: f64,
        #[serde(default = "default_poll_tolerance")]
        tolerance_ms: f64,
        #[serde(default = "default_over_ms")]
        over_ms: u64,
    },
    /// Cut the board's supply for `off_ms` (default from the rig config) and restore it.
    PowerCycle {
        off_ms: Option<u64>,
    },
    /// System reset through the debug probe (the supply latch survives it).
    Reset,
    /// PWR_CR3 supply bits equal the board's wiring and PWR_CSR1.ACTVOSRDY = 1.
    ExpectSupply,
    /// The boot counter in telemetry went up by `by` since the last telemetry the scenario read.
    ExpectBootCount {
        by: u32,
    },
    /// Power off for `off_ms`, on again, then verify: the probe attaches to CM7 in time, PWR_CR3
    /// matches the wiring with ACTVOSRDY = 1, option bytes as the rig config expects, flash equals
    /// the ELF, the boot counter rose by one and the calibration is unchanged, and `celsius` on the
    /// broadcast frame gives `us`.
    PowerCycleCheck {
        off_ms: Option<u64>,
        #[serde(default = "default_check_celsius")]
        celsius: f64,
        #[serde(default = "default_check_us")]
        us: f64,
        tolerance_us: Option<f64>,
    },
    /// Cut the power while the firmware writes its boot records (simulated bench: after
    /// `after_bytes` programmed bytes, random if unset; hardware: `delay_ms` after power-on), then
    /// check storage is readable and no committed record was lost.
    PowerCutDuringWrite {
        after_bytes: Option<usize>,
        delay_ms: Option<u64>,
    },
    /// A power cut at every byte of one boot's record writes in turn (simulated bench), or at
    /// every millisecond from power-on up to `max_delay_ms` (hardware).
    PowerCutSweep {
        #[serde(default = "default_sweep_ms")]
        max_delay_ms: u64,
    },
}

fn default_sweep_ms() -> u64 {
    20
}

fn default_check_celsius() -> f64 {
    40.0
}
fn default_check_us() -> f64 {
    1000.0
}

fn default_period_ms() -> u64 {
    100
}
fn default_fault_rate() -> u32 {
    50
}
fn default_true() -> bool {
    true
}
fn default_failsafe_ms() -> u64 {
    2000
}
fn default_poll_ms() -> f64 {
    100.0
}
fn default_poll_tolerance() -> f64 {
    15.0
}
fn default_over_ms() -> u64 {
    1000
}

impl Step {
    pub fn action(&self) -> &'static str {
        match self {
            Step::SetTemperature { .. } => "set_temperature",
            Step::StopSending => "stop_sending",
            Step::Inject { .. } => "inject",
            Step::ClearFaults => "clear_faults",
            Step::Hold { .. } => "hold",
            Step::ExpectPulse { .. } => "expect_pulse",
            Step::ExpectFailsafe { .. } => "expect_failsafe",
            Step::ExpectTelemetry { .. } => "expect_telemetry",
            Step::ExpectObdPolling { .. } => "expect_obd_polling",
            Step::PowerCycle { .. } => "power_cycle",
            Step::Reset => "reset",
            Step::ExpectSupply => "expect_supply",
            Step::ExpectBootCount { .. } => "expect_boot_count",
            Step::PowerCycleCheck { .. } => "power_cycle_check",
            Step::PowerCutDuringWrite { .. } => "power_cut_during_write",
            Step::PowerCutSweep { .. } => "power_cut_sweep",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default = "default_tolerance")]
    pub tolerance_us: f64,
    #[serde(default = "default_settle_timeout")]
    pub settle_timeout_ms: u64,
}

fn default_tolerance() -> f64 {
    4.0
}
fn default_settle_timeout() -> u64 {
    3000
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            tolerance_us: default_tolerance(),
            settle_timeout_ms: default_settle_timeout(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    description: Option<String>,
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    continue_on_fail: bool,
    steps: Vec<Spanned<toml::Table>>,
}

/// A step with the line of its `[[steps]]` header.
#[derive(Debug, Clone)]
pub struct LocatedStep {
    pub line: usize,
    pub step: Step,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub path: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub defaults: Defaults,
    pub continue_on_fail: bool,
    pub steps: Vec<LocatedStep>,
}

impl Scenario {
    /// Loads and validates a scenario; with `encoder`, broadcast set-points are checked against the DBC.
    pub fn load(path: &Path, encoder: Option<&OilTempEncoder>) -> Result<Self, FileError> {
        let file = SourceFile::read(path)?;
        let raw: RawScenario = file.parse()?;
        if raw.defaults.tolerance_us.is_nan() || raw.defaults.tolerance_us <= 0.0 {
            return Err(file.error_at(None, "defaults.tolerance_us must be positive"));
        }
        if raw.steps.is_empty() {
            return Err(file.error_at(None, "a scenario needs at least one [[steps]] entry"));
        }
        let mut steps = Vec::new();
        for (i, table) in raw.steps.into_iter().enumerate() {
            let span = table.span();
            let step: Step = toml::Value::Table(table.into_inner()).try_into().map_err(
                |e: toml::de::Error| {
                    file.error_at(
                        Some(span.clone()),
                        format!("step {}: {}", i + 1, e.message().trim()),
                    )
                },
            )?;
            validate(&step)
                .map_err(|m| file.error_at(Some(span.clone()), format!("step {}: {m}", i + 1)))?;
            if let (
                Some(enc),
                Step::SetTemperature {
                    celsius,
                    source: TempSource::Broadcast,
                    ..
                },
            ) = (encoder, &step)
            {
                enc.encode(*celsius).map_err(|m| {
                    file.error_at(Some(span.clone()), format!("step {}: {m}", i + 1))
                })?;
            }
            let line = file.error_at(Some(span), "").line;
            steps.push(LocatedStep { line, step });
        }
        Ok(Self {
            path: path.to_path_buf(),
            name: raw.name,
            description: raw.description,
            defaults: raw.defaults,
            continue_on_fail: raw.continue_on_fail,
            steps,
        })
    }

    /// All `*.toml` scenarios in `paths` (files, or folders searched one level deep), sorted.
    pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, FileError> {
        let mut out = Vec::new();
        for p in paths {
            if p.is_dir() {
                let entries = std::fs::read_dir(p).map_err(|e| FileError {
                    path: p.display().to_string(),
                    line: 0,
                    column: 0,
                    message: format!("cannot list folder: {e}"),
                })?;
                let mut files: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                    .collect();
                files.sort();
                out.extend(files);
            } else if p.exists() {
                out.push(p.clone());
            } else {
                return Err(FileError {
                    path: p.display().to_string(),
                    line: 0,
                    column: 0,
                    message: "no such file or folder".into(),
                });
            }
        }
        Ok(out)
    }
}

fn validate(step: &Step) -> Result<(), String> {
    match step {
        Step::SetTemperature {
            celsius,
            source,
            period_ms,
        } => {
            if !celsius.is_finite() {
                return Err("celsius must be a number".into());
            }
            if *source == TempSource::Obd
                && (!(-40.0..=215.0).contains(celsius) || celsius.fract() != 0.0)
            {
                return Err(format!(
                    "OBD-II PID 0x5C carries whole degrees -40..215 degC, not {celsius}"
                ));
            }
            if *period_ms == 0 || *period_ms > 10_000 {
                return Err("period_ms must be 1..=10000".into());
            }
        }
        Step::ExpectPulse {
            us, tolerance_us, ..
        } => {
            if !(400.0..=2600.0).contains(us) {
                return Err(format!(
                    "us = {us} is outside a servo's pulse range (400..2600)"
                ));
            }
            if tolerance_us.is_some_and(|t| t <= 0.0) {
                return Err("tolerance_us must be positive".into());
            }
        }
        Step::ExpectTelemetry {
            source: Some(src), ..
        } if !["bcast", "obd", "none"].contains(&src.as_str()) => {
            return Err(format!(
                "telemetry source {src:?}: the status line reports \"bcast\", \"obd\" or \"none\""
            ));
        }
        Step::Inject { rate_hz, .. } if *rate_hz == 0 || *rate_hz > 2000 => {
            return Err("rate_hz must be 1..=2000".into())
        }
        Step::Hold { ms } if *ms > 600_000 => {
            return Err("hold longer than 10 minutes; split the scenario".into())
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Scenario, FileError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, text).unwrap();
        Scenario::load(
            &p,
            Some(&OilTempEncoder::load(&crate::dbc::default_path()).unwrap()),
        )
    }

    #[test]
    fn parses_steps_with_their_lines() {
        let s = load("name = \"x\"\n\n[[steps]]\naction = \"set_temperature\"\ncelsius = 90\n\n[[steps]]\naction = \"expect_pulse\"\nus = 1455\n").unwrap();
        assert_eq!(s.steps.len(), 2);
        assert_eq!(s.steps[1].line, 7, "the [[steps]] header");
        assert_eq!(
            s.steps[0].step,
            Step::SetTemperature {
                celsius: 90.0,
                source: TempSource::Broadcast,
                period_ms: 100
            }
        );
    }

    #[test]
    fn unknown_action_and_field_name_the_line() {
        let e = load("name = \"x\"\n[[steps]]\naction = \"fly\"\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("step 1"), "{e}");
        let e = load("name = \"x\"\n[[steps]]\naction = \"hold\"\nms = 5\n[[steps]]\naction = \"expect_pulse\"\nusec = 5\n").unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(
            e.message.contains("usec") || e.message.contains("us"),
            "{e}"
        );
    }

    #[test]
    fn semantic_errors_name_the_step() {
        let e = load("name = \"x\"\n[[steps]]\naction = \"set_temperature\"\ncelsius = 300\nsource = \"obd\"\n").unwrap_err();
        assert!(e.message.contains("-40..215"), "{e}");
        let e = load("name = \"x\"\n[[steps]]\naction = \"set_temperature\"\ncelsius = 200\n")
            .unwrap_err();
        assert!(e.message.contains("range -60..193") && e.line == 2, "{e}");
        let e = load(
            "name = \"x\"\n[[steps]]\naction = \"expect_telemetry\"\nsource = \"broadcast\"\n",
        )
        .unwrap_err();
        assert!(e.message.contains("bcast"), "{e}");
        let e = load("name = \"x\"\nsteps = []\n").unwrap_err();
        assert!(e.message.contains("at least one"), "{e}");
    }
}
