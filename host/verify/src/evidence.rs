//! Evidence of what the instruments saw during a scenario, for a person looking at a failure:
//! the CAN traffic as a candump log (`can.log`, which can-utils' canplayer and log2asc,
//! python-can and cantools read), the telemetry transcript (`telemetry.txt`) and the last
//! servo captures as Value Change Dumps (`capture-NN.vcd`, for GTKWave or PulseView).
//!
//! The pulse meter and the telemetry port are wrapped in recorders when the job starts
//! ([`Evidence::attach`]); the CAN traffic is the stand-in ECU's own log
//! ([`crate::ecu::Ecu::traffic_since`]), since every frame goes through it.

use std::{
    collections::VecDeque,
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use gauge_logic::{frame::CanFrame, telemetry::StatusLine};
use rig_instruments::{InstrumentResult, PulseCapture, PulseMeter, TelemetryPort, TimedCapture};

use crate::{ecu::Traffic, rig::Rig};

/// Captures kept per scenario (the latest): enough to see the needle settle or not.
const CAPTURES_KEPT: usize = 16;
/// Telemetry lines kept per scenario (10 lines/s for over 8 minutes).
const LINES_KEPT: usize = 5_000;

#[derive(Default)]
struct Log {
    captures: VecDeque<(SystemTime, PulseCapture)>,
    telemetry: VecDeque<(SystemTime, String)>,
}

fn lock(m: &Mutex<Log>) -> MutexGuard<'_, Log> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn push_bounded<T>(q: &mut VecDeque<T>, item: T, max: usize) {
    if q.len() >= max {
        q.pop_front();
    }
    q.push_back(item);
}

struct RecordingMeter {
    inner: Box<dyn PulseMeter>,
    log: Arc<Mutex<Log>>,
}

impl PulseMeter for RecordingMeter {
    fn capture(&mut self, periods: usize) -> InstrumentResult<TimedCapture> {
        let c = self.inner.capture(periods)?;
        push_bounded(
            &mut lock(&self.log).captures,
            (SystemTime::now(), c.capture.clone()),
            CAPTURES_KEPT,
        );
        Ok(c)
    }
    fn confirm_answering(&mut self) -> InstrumentResult<()> {
        self.inner.confirm_answering()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

struct RecordingTelemetry {
    inner: Box<dyn TelemetryPort>,
    log: Arc<Mutex<Log>>,
}

impl TelemetryPort for RecordingTelemetry {
    fn next_status(&mut self, timeout: Duration) -> InstrumentResult<StatusLine> {
        let r = self.inner.next_status(timeout);
        let line = match &r {
            Ok(status) => status.to_string(),
            Err(e) => format!("(no status line: {e})"),
        };
        push_bounded(
            &mut lock(&self.log).telemetry,
            (SystemTime::now(), line),
            LINES_KEPT,
        );
        r
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Placeholders while the real instruments move into their recorders.
struct Unplugged;

fn not_attached(device: &str) -> rig_instruments::InstrumentError {
    rig_instruments::InstrumentError::Io {
        device: device.into(),
        reason: "not attached".into(),
    }
}

impl PulseMeter for Unplugged {
    fn capture(&mut self, _periods: usize) -> InstrumentResult<TimedCapture> {
        Err(not_attached("pulse meter"))
    }
    fn describe(&self) -> String {
        "none".into()
    }
}
impl TelemetryPort for Unplugged {
    fn next_status(&mut self, _timeout: Duration) -> InstrumentResult<StatusLine> {
        Err(not_attached("telemetry"))
    }
    fn describe(&self) -> String {
        "none".into()
    }
}

/// The recorders of one run.
pub struct Evidence {
    log: Arc<Mutex<Log>>,
    since: SystemTime,
}

impl Evidence {
    /// Puts the rig's pulse meter and telemetry port behind recorders.
    pub fn attach(rig: &mut Rig) -> Self {
        let log = Arc::new(Mutex::new(Log::default()));
        let meter = std::mem::replace(&mut rig.meter, Box::new(Unplugged));
        rig.meter = Box::new(RecordingMeter {
            inner: meter,
            log: log.clone(),
        });
        let telemetry = std::mem::replace(&mut rig.telemetry, Box::new(Unplugged));
        rig.telemetry = Box::new(RecordingTelemetry {
            inner: telemetry,
            log: log.clone(),
        });
        Self {
            log,
            since: SystemTime::now(),
        }
    }

    /// Forgets what came before: a scenario starts.
    pub fn begin(&mut self) {
        let mut log = lock(&self.log);
        log.captures.clear();
        log.telemetry.clear();
        self.since = SystemTime::now();
    }

    /// Writes what the instruments saw since [`Self::begin`] into `dir`; returns the files.
    pub fn write(&self, rig: &Rig, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut files = Vec::new();
        let can = dir.join("can.log");
        std::fs::write(&can, candump_log(&rig.ecu.traffic_since(self.since)))?;
        files.push(can);
        let log = lock(&self.log);
        let mut transcript = String::new();
        for (at, line) in &log.telemetry {
            let _ = writeln!(transcript, "{} {line}", unix_seconds(*at));
        }
        let telemetry = dir.join("telemetry.txt");
        std::fs::write(&telemetry, transcript)?;
        files.push(telemetry);
        for (i, (_, capture)) in log.captures.iter().enumerate() {
            let path = dir.join(format!("capture-{:02}.vcd", i + 1));
            capture.export_vcd(&path)?;
            files.push(path);
        }
        Ok(files)
    }
}

fn unix_seconds(at: SystemTime) -> String {
    let d = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("({}.{:06})", d.as_secs(), d.subsec_micros())
}

/// One frame as candump -l writes it: `123#DEADBEEF`, an extended ID with 8 hex digits.
fn candump_frame(f: &CanFrame) -> String {
    let mut s = if f.extended {
        format!("{:08X}#", f.id)
    } else {
        format!("{:03X}#", f.id)
    };
    for b in f.payload() {
        let _ = write!(s, "{b:02X}");
    }
    s
}

/// The traffic in candump's log format (`(seconds.micros) can0 ID#DATA`), sent and received
/// frames alike, in time order.
pub fn candump_log(traffic: &[Traffic]) -> String {
    let mut out = String::new();
    for t in traffic {
        let _ = writeln!(
            out,
            "{} can0 {}",
            unix_seconds(t.at),
            candump_frame(&t.frame)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_written_as_candump_logs_them() {
        let at = UNIX_EPOCH + Duration::from_micros(1_733_160_000_123_456);
        let traffic = [
            Traffic {
                at,
                frame: CanFrame::standard(0x156, &[0x01, 0xAB]).expect("frame"),
            },
            Traffic {
                at,
                frame: CanFrame::extended(0x18DB33F1, &[]).expect("frame"),
            },
        ];
        assert_eq!(
            candump_log(&traffic),
            "(1733160000.123456) can0 156#01AB\n(1733160000.123456) can0 18DB33F1#\n"
        );
    }
}
