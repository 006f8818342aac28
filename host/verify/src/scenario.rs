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
//! Actions: `set_temperature`, `add_ecu`, `other_tester`, `stop_sending`, `inject`,
//! `clear_faults`, `hold`, `expect_pulse`, `expect_steady`, `expect_failsafe`, `expect_telemetry`, `expect_obd_polling`,
//! `power_cycle`, `reset`, `expect_supply`, `expect_boot_count`. See `scenarios/README.md`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::dbc::OilTempEncoder;
use bench_config::source_file::{FileError, SourceFile};
use rig_instruments::CanBusFault;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TempSource {
    #[default]
    Broadcast,
    Obd,
}

/// How a tester addresses its OBD-II requests (ISO 15765-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
pub enum ObdAddressing {
    /// 11-bit: functional request 0x7DF, replies 0x7E8..0x7EF.
    #[default]
    #[serde(rename = "11bit")]
    Standard11,
    /// 29-bit: functional request 0x18DB33F1, replies 0x18DAF1xx.
    #[serde(rename = "29bit")]
    Extended29,
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
        /// OBD-II only: the engine answers each request after this long...
        #[serde(default)]
        reply_delay_ms: u64,
        /// ...plus up to this much more, drawn anew for each reply.
        #[serde(default)]
        reply_jitter_ms: u64,
    },
    /// Another ECU (0x7E9..0x7EF) answers every functional PID 0x5C request with its own value.
    AddEcu {
        id: u16,
        celsius: f64,
        #[serde(default)]
        reply_delay_ms: u64,
        #[serde(default)]
        reply_jitter_ms: u64,
    },
    /// A scan tool or data logger polls `pids` in turn, one every `period_ms`; the engine answers
    /// each after `reply_delay_ms`, PID 0x5C with `celsius`.
    OtherTester {
        #[serde(default = "default_tester_pids")]
        pids: Vec<u8>,
        #[serde(default = "default_period_ms")]
        period_ms: u64,
        celsius: f64,
        #[serde(default)]
        addressing: ObdAddressing,
        #[serde(default = "default_tester_reply_ms")]
        reply_delay_ms: u64,
    },
    /// Other ECUs' periodic frames fill `percent` of the 500 kbit/s bus (IDs below and above
    /// the broadcast's); 0 ends the load.
    BusLoad {
        percent: u32,
    },
    /// Over `over_ms`, the gauge takes every broadcast frame the rig sent (its status line's
    /// `bc=` count against the frames sent), losing at most `max_lost`.
    ExpectBroadcastReceived {
        #[serde(default = "default_broadcast_window_ms")]
        over_ms: u64,
        #[serde(default)]
        max_lost: u64,
    },
    /// A fault on the board's CAN bus (`none`, `no_ack`, `short`), where the bench can make one.
    BusFault {
        fault: CanBusFault,
    },
    /// Stop all traffic from the rig (broadcast, OBD-II replies, other ECUs, testers, faults, load).
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
    /// Every pulse over `over_ms` sits at `us` +- tolerance: the needle neither moves nor flips.
    ExpectSteady {
        us: f64,
        tolerance_us: Option<f64>,
        #[serde(default = "default_steady_ms")]
        over_ms: u64,
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
        /// The CAN controller's state the status line reports: active, passive or off.
        bus: Option<String>,
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

fn default_tester_pids() -> Vec<u8> {
    vec![0x0C, 0x5C, 0x05, 0x0D]
}
fn default_tester_reply_ms() -> u64 {
    5
}
fn default_steady_ms() -> u64 {
    2000
}

fn default_broadcast_window_ms() -> u64 {
    3000
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
            Step::AddEcu { .. } => "add_ecu",
            Step::OtherTester { .. } => "other_tester",
            Step::BusLoad { .. } => "bus_load",
            Step::BusFault { .. } => "bus_fault",
            Step::ExpectBroadcastReceived { .. } => "expect_broadcast_received",
            Step::ExpectSteady { .. } => "expect_steady",
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
    /// Linear in the number of steps.
    pub fn load(path: &Path, encoder: Option<&OilTempEncoder>) -> Result<Self, FileError> {
        Self::from_file(path, SourceFile::read(path)?, encoder)
    }

    /// [`Self::load`] of a scenario's `text`, as if read from `path` (which errors name and
    /// [`Scenario::path`] keeps; nothing is read from it).
    pub fn from_text(
        path: &Path,
        text: impl Into<String>,
        encoder: Option<&OilTempEncoder>,
    ) -> Result<Self, FileError> {
        let file = SourceFile {
            path: path.display().to_string(),
            text: text.into(),
        };
        Self::from_file(path, file, encoder)
    }

    fn from_file(
        path: &Path,
        file: SourceFile,
        encoder: Option<&OilTempEncoder>,
    ) -> Result<Self, FileError> {
        let raw: RawScenario = file.parse()?;
        for (key, value) in [
            ("tolerance_us", raw.defaults.tolerance_us),
            ("settle_timeout_ms", raw.defaults.settle_timeout_ms as f64),
        ] {
            in_range(&format!("defaults.{key}"), value)
                .map_err(|m| file.error_at(file.key_span("defaults", key), m))?;
        }
        if raw.steps.is_empty() {
            return Err(file.error_at(None, "a scenario needs at least one [[steps]] entry"));
        }
        let mut steps = Vec::with_capacity(raw.steps.len());
        // Lines counted on from the previous step, not from the top each time.
        let (mut line, mut counted_to) = (1, 0);
        for (i, table) in raw.steps.into_iter().enumerate() {
            let span = table.span();
            let at_step = |key: Option<&str>, m: String| {
                let at = key.map_or(span.clone(), |k| file.key_in_table(span.clone(), k));
                file.error_at(Some(at), format!("step {}: {m}", i + 1))
            };
            let step: Step = toml::Value::Table(table.into_inner())
                .try_into()
                .map_err(|e: toml::de::Error| at_step(None, e.message().trim().to_string()))?;
            validate(&step).map_err(|(key, m)| at_step(key, m))?;
            if let (
                Some(enc),
                Step::SetTemperature {
                    celsius,
                    source: TempSource::Broadcast,
                    ..
                }
                | Step::PowerCycleCheck { celsius, .. },
            ) = (encoder, &step)
            {
                enc.encode(*celsius)
                    .map_err(|m| at_step(Some("celsius"), m))?;
            }
            let start = span.start.min(file.text.len());
            line += file.text[counted_to..start].matches('\n').count();
            counted_to = start;
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

/// `field` (`action.key`) against its documented range.
fn in_range(field: &str, value: f64) -> Result<(), String> {
    match bench_config::ranges::range_of(field) {
        Some(range) => range.check(value),
        None => Ok(()), // every field is listed (test every_numeric_field_has_a_range)
    }
}

impl Step {
    /// The step's numeric fields that are set, by key, for their range checks.
    fn numbers(&self) -> Vec<(&'static str, f64)> {
        let opt = |key, v: Option<f64>| v.map(|v| (key, v));
        let ms = |v: Option<u64>| v.map(|v| v as f64);
        match self {
            Step::SetTemperature {
                celsius,
                period_ms,
                reply_delay_ms,
                reply_jitter_ms,
                ..
            } => vec![
                ("celsius", *celsius),
                ("period_ms", *period_ms as f64),
                ("reply_delay_ms", *reply_delay_ms as f64),
                ("reply_jitter_ms", *reply_jitter_ms as f64),
            ],
            Step::AddEcu {
                id,
                celsius,
                reply_delay_ms,
                reply_jitter_ms,
            } => vec![
                ("id", f64::from(*id)),
                ("celsius", *celsius),
                ("reply_delay_ms", *reply_delay_ms as f64),
                ("reply_jitter_ms", *reply_jitter_ms as f64),
            ],
            Step::OtherTester {
                period_ms,
                celsius,
                reply_delay_ms,
                ..
            } => vec![
                ("period_ms", *period_ms as f64),
                ("celsius", *celsius),
                ("reply_delay_ms", *reply_delay_ms as f64),
            ],
            Step::BusLoad { percent } => vec![("percent", f64::from(*percent))],
            Step::ExpectBroadcastReceived { over_ms, max_lost } => {
                vec![("over_ms", *over_ms as f64), ("max_lost", *max_lost as f64)]
            }
            Step::ExpectSteady {
                us,
                tolerance_us,
                over_ms,
            } => [
                Some(("us", *us)),
                opt("tolerance_us", *tolerance_us),
                Some(("over_ms", *over_ms as f64)),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Step::Inject { rate_hz, .. } => vec![("rate_hz", f64::from(*rate_hz))],
            Step::Hold { ms } => vec![("ms", *ms as f64)],
            Step::ExpectPulse {
                us,
                tolerance_us,
                settle_timeout_ms,
            } => [
                Some(("us", *us)),
                opt("tolerance_us", *tolerance_us),
                opt("settle_timeout_ms", ms(*settle_timeout_ms)),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Step::ExpectFailsafe {
                within_ms,
                tolerance_us,
            } => [
                Some(("within_ms", *within_ms as f64)),
                opt("tolerance_us", *tolerance_us),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Step::ExpectTelemetry { celsius, .. } => opt("celsius", *celsius).into_iter().collect(),
            Step::ExpectObdPolling {
                interval_ms,
                tolerance_ms,
                over_ms,
            } => vec![
                ("interval_ms", *interval_ms),
                ("tolerance_ms", *tolerance_ms),
                ("over_ms", *over_ms as f64),
            ],
            Step::PowerCycle { off_ms } => opt("off_ms", ms(*off_ms)).into_iter().collect(),
            Step::ExpectBootCount { by } => vec![("by", f64::from(*by))],
            Step::PowerCycleCheck {
                off_ms,
                celsius,
                us,
                tolerance_us,
            } => [
                opt("off_ms", ms(*off_ms)),
                Some(("celsius", *celsius)),
                Some(("us", *us)),
                opt("tolerance_us", *tolerance_us),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Step::PowerCutDuringWrite {
                after_bytes,
                delay_ms,
            } => [
                opt("after_bytes", after_bytes.map(|n| n as f64)),
                opt("delay_ms", ms(*delay_ms)),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Step::PowerCutSweep { max_delay_ms } => vec![("max_delay_ms", *max_delay_ms as f64)],
            Step::StopSending
            | Step::BusFault { .. }
            | Step::ClearFaults
            | Step::Reset
            | Step::ExpectSupply => Vec::new(),
        }
    }
}

/// A step's fields against their ranges and each other; the error names the key it is about.
fn validate(step: &Step) -> Result<(), (Option<&'static str>, String)> {
    let whole_obd_degrees = |celsius: f64| {
        if (-40.0..=215.0).contains(&celsius) && celsius.fract() == 0.0 {
            Ok(())
        } else {
            Err((
                Some("celsius"),
                format!("OBD-II PID 0x5C carries whole degrees -40..215 degC, not {celsius}"),
            ))
        }
    };
    match step {
        Step::SetTemperature {
            source: TempSource::Broadcast,
            reply_delay_ms,
            reply_jitter_ms,
            ..
        } if *reply_delay_ms != 0 || *reply_jitter_ms != 0 => {
            let key = if *reply_delay_ms != 0 {
                "reply_delay_ms"
            } else {
                "reply_jitter_ms"
            };
            return Err((
                Some(key),
                format!("{key} times the engine's OBD-II replies: it needs source = \"obd\""),
            ));
        }
        Step::SetTemperature {
            celsius,
            source: TempSource::Obd,
            ..
        }
        | Step::AddEcu { celsius, .. }
        | Step::OtherTester { celsius, .. } => whole_obd_degrees(*celsius)?,
        _ => {}
    }
    if let Step::OtherTester { pids, .. } = step {
        if pids.is_empty() {
            return Err((
                Some("pids"),
                "pids is empty: a tester polls at least one PID".into(),
            ));
        }
    }
    for (key, value) in step.numbers() {
        in_range(&format!("{}.{key}", step.action()), value).map_err(|m| (Some(key), m))?;
    }
    match step {
        Step::ExpectTelemetry { bus: Some(b), .. }
            if gauge_logic::telemetry::BusState::from_name(b).is_none() =>
        {
            Err((
                Some("bus"),
                format!("telemetry bus {b:?}: the status line reports \"active\", \"passive\" or \"off\""),
            ))
        }
        Step::ExpectTelemetry {
            source: Some(src), ..
        } if !["bcast", "obd", "none"].contains(&src.as_str()) => Err((
            Some("source"),
            format!(
                "telemetry source {src:?}: the status line reports \"bcast\", \"obd\" or \"none\""
            ),
        )),
        Step::ExpectObdPolling {
            interval_ms,
            tolerance_ms,
            ..
        } if tolerance_ms >= interval_ms => Err((
            Some("tolerance_ms"),
            format!("tolerance_ms = {tolerance_ms} is not below interval_ms = {interval_ms}: every interval would pass"),
        )),
        Step::ExpectObdPolling {
            interval_ms,
            over_ms,
            ..
        } if (*over_ms as f64) < 2.0 * interval_ms => Err((
            Some("over_ms"),
            format!("over_ms = {over_ms} is shorter than two intervals of {interval_ms} ms: no interval can be seen"),
        )),
        _ => Ok(()),
    }
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
                period_ms: 100,
                reply_delay_ms: 0,
                reply_jitter_ms: 0,
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
        assert!(e.message.contains("range -60..193") && e.line == 4, "{e}");
        let e = load(
            "name = \"x\"\n[[steps]]\naction = \"expect_telemetry\"\nsource = \"broadcast\"\n",
        )
        .unwrap_err();
        assert!(e.message.contains("bcast"), "{e}");
        let e = load("name = \"x\"\nsteps = []\n").unwrap_err();
        assert!(e.message.contains("at least one"), "{e}");
    }

    /// One step of each action with every numeric field set (valid values).
    fn every_step() -> Vec<Step> {
        vec![
            Step::SetTemperature {
                celsius: 90.0,
                source: TempSource::Obd,
                period_ms: 100,
                reply_delay_ms: 5,
                reply_jitter_ms: 10,
            },
            Step::AddEcu {
                id: 0x7E9,
                celsius: 70.0,
                reply_delay_ms: 2,
                reply_jitter_ms: 20,
            },
            Step::OtherTester {
                pids: vec![0x5C],
                period_ms: 100,
                celsius: 150.0,
                addressing: ObdAddressing::Extended29,
                reply_delay_ms: 5,
            },
            Step::ExpectSteady {
                us: 1455.0,
                tolerance_us: Some(4.0),
                over_ms: 2000,
            },
            Step::BusLoad { percent: 60 },
            Step::BusFault {
                fault: CanBusFault::Short,
            },
            Step::ExpectBroadcastReceived {
                over_ms: 3000,
                max_lost: 0,
            },
            Step::Inject {
                fault: Fault::Garbage,
                rate_hz: 50,
                keep_valid: true,
            },
            Step::Hold { ms: 10 },
            Step::ExpectPulse {
                us: 1500.0,
                tolerance_us: Some(4.0),
                settle_timeout_ms: Some(3000),
            },
            Step::ExpectFailsafe {
                within_ms: 2000,
                tolerance_us: Some(4.0),
            },
            Step::ExpectTelemetry {
                celsius: Some(90.0),
                source: None,
                failsafe: None,
                bus: None,
            },
            Step::ExpectObdPolling {
                interval_ms: 100.0,
                tolerance_ms: 15.0,
                over_ms: 1000,
            },
            Step::PowerCycle { off_ms: Some(300) },
            Step::ExpectBootCount { by: 1 },
            Step::PowerCycleCheck {
                off_ms: Some(300),
                celsius: 40.0,
                us: 1000.0,
                tolerance_us: Some(4.0),
            },
            Step::PowerCutDuringWrite {
                after_bytes: Some(10),
                delay_ms: Some(5),
            },
            Step::PowerCutSweep { max_delay_ms: 20 },
        ]
    }

    #[test]
    fn every_numeric_field_has_a_documented_range() {
        let mut seen = Vec::new();
        for step in every_step() {
            assert_eq!(validate(&step), Ok(()), "{step:?}");
            for (key, _) in step.numbers() {
                let field = format!("{}.{key}", step.action());
                assert!(
                    bench_config::ranges::range_of(&field).is_some(),
                    "{field} has no range"
                );
                seen.push(field);
            }
        }
        // And every scenario range belongs to a field a step has.
        for r in bench_config::ranges::SCENARIO_RANGES {
            assert!(
                r.field.starts_with("defaults.") || seen.iter().any(|f| f == r.field),
                "{} is checked by no step",
                r.field
            );
        }
    }

    #[test]
    fn out_of_range_fields_point_at_their_own_line() {
        let cases = [
            (
                "action = \"expect_pulse\"\nus = 1500\ntolerance_us = nan\n",
                5,
                "expect_pulse.tolerance_us = NaN",
            ),
            (
                "action = \"expect_failsafe\"\ntolerance_us = -4\n",
                4,
                "expect_failsafe.tolerance_us = -4: must be 0.01..=500",
            ),
            (
                "action = \"power_cut_during_write\"\nafter_bytes = 99999999\n",
                4,
                "after_bytes = 99999999: must be 0..=65536",
            ),
            (
                "action = \"power_cycle_check\"\ncelsius = 200\n",
                4,
                "power_cycle_check.celsius = 200",
            ),
            (
                "action = \"expect_obd_polling\"\ninterval_ms = 100\ntolerance_ms = 100\n",
                5,
                "every interval would pass",
            ),
            (
                "action = \"expect_obd_polling\"\nover_ms = 150\n",
                4,
                "shorter than two intervals",
            ),
            (
                "action = \"set_temperature\"\ncelsius = 20\nperiod_ms = 0\n",
                5,
                "set_temperature.period_ms = 0: must be 1..=10000",
            ),
            (
                "action = \"set_temperature\"\ncelsius = 20\nreply_delay_ms = 60\n",
                5,
                "it needs source = \"obd\"",
            ),
            (
                "action = \"add_ecu\"\nid = 0x7E8\ncelsius = 20\n",
                4,
                "add_ecu.id = 2024: must be 2025..=2031",
            ),
            (
                "action = \"add_ecu\"\nid = 0x7E9\ncelsius = 20.5\n",
                5,
                "whole degrees -40..215 degC, not 20.5",
            ),
            (
                "action = \"other_tester\"\ncelsius = 90\npids = []\n",
                5,
                "pids is empty",
            ),
            (
                "action = \"other_tester\"\ncelsius = 90\nperiod_ms = 0\n",
                5,
                "other_tester.period_ms = 0",
            ),
            (
                "action = \"expect_steady\"\nus = 1455\nover_ms = 50\n",
                5,
                "expect_steady.over_ms = 50: must be 100..=600000",
            ),
            (
                "action = \"bus_load\"\npercent = 95\n",
                4,
                "bus_load.percent = 95: must be 0..=90",
            ),
            (
                "action = \"expect_broadcast_received\"\nover_ms = 1000\n",
                4,
                "expect_broadcast_received.over_ms = 1000: must be 2100..=600000",
            ),
            (
                "action = \"bus_fault\"\nfault = \"open\"\n",
                2,
                "unknown variant `open`, expected one of `none`, `no_ack`, `short`",
            ),
            (
                "action = \"expect_telemetry\"\nbus = \"gone\"\n",
                4,
                "the status line reports \"active\", \"passive\" or \"off\"",
            ),
        ];
        for (step, line, words) in cases {
            let e = load(&format!("name = \"x\"\n[[steps]]\n{step}")).unwrap_err();
            assert_eq!(e.line, line, "{e}");
            assert_eq!(e.column, 1, "{e}");
            assert!(e.message.contains(words), "{e}");
        }
        let e = load(
            "name = \"x\"\n[defaults]\ntolerance_us = 0\n[[steps]]\naction = \"hold\"\nms = 1\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.starts_with("defaults.tolerance_us = 0"), "{e}");
    }

    #[test]
    fn step_lines_are_counted_on_across_many_steps() {
        let mut text = String::from("name = \"x\"\n");
        for i in 0..500 {
            text += &format!("\n[[steps]]\naction = \"hold\"\nms = {i}\n");
        }
        let s = load(&text).unwrap();
        assert_eq!(s.steps.len(), 500);
        for (i, step) in s.steps.iter().enumerate() {
            assert_eq!(step.line, 3 + 4 * i, "step {}", i + 1);
        }
    }
}
