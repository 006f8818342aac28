//! A scenario run's working context: the [`Runner`] (the rig and the interrupt flag), what a
//! scenario remembers between steps, and a step's result. The step kinds (needle, telemetry,
//! power loss) are `impl Runner` blocks in their own modules; the runner module dispatches.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use gauge_logic::telemetry::StatusLine;
use rig_instruments::InstrumentError;

use crate::{
    report::{Measurement, Outcome, PulseTrace},
    rig::Rig,
};

/// How long a step waits for the firmware's next status line.
pub(crate) const TELEMETRY_TIMEOUT: Duration = Duration::from_millis(2500);

/// Per-scenario memory between steps.
#[derive(Default)]
pub(crate) struct ScenarioState {
    /// The needle position last measured.
    pub(crate) last_pulse_us: Option<f64>,
    /// A set-point waiting for its expect_pulse, and the needle position before it.
    pub(crate) pending_setpoint: Option<Option<f64>>,
    pub(crate) last_boot_count: Option<u32>,
    pub(crate) settle_total_ms: f64,
    pub(crate) settle_floor_ms: f64,
    pub(crate) settle_count: usize,
    /// The scenario put a fault on the CAN bus: the adapter's errors are expected.
    pub(crate) bus_fault_set: bool,
}

impl ScenarioState {
    /// The needle position is unknown (after a power cut or reset).
    pub(crate) fn forget_needle(&mut self) {
        self.last_pulse_us = None;
    }

    pub(crate) fn set_needle(&mut self, us: f64) {
        self.last_pulse_us = Some(us);
    }
}

pub(crate) struct StepResult {
    pub(crate) outcome: Outcome,
    pub(crate) measurements: Vec<Measurement>,
    pub(crate) message: Option<String>,
    pub(crate) diagnosis: Option<String>,
    /// Boxed: a step result is often the `Err` of a `Result`.
    pub(crate) trace: Option<Box<PulseTrace>>,
}

impl StepResult {
    pub(crate) fn judged(measurements: Vec<Measurement>) -> Self {
        let outcome = if measurements.iter().all(|m| m.outcome == Outcome::Pass) {
            Outcome::Pass
        } else {
            Outcome::Fail
        };
        Self {
            outcome,
            measurements,
            message: None,
            diagnosis: None,
            trace: None,
        }
    }
    pub(crate) fn pass() -> Self {
        Self::judged(Vec::new())
    }
    pub(crate) fn error(message: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Error,
            measurements: Vec::new(),
            message: Some(message.into()),
            diagnosis: None,
            trace: None,
        }
    }
    pub(crate) fn fail(measurements: Vec<Measurement>, message: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Fail,
            measurements,
            message: Some(message.into()),
            diagnosis: None,
            trace: None,
        }
    }
    pub(crate) fn with_message(mut self, m: impl Into<String>) -> Self {
        self.message = Some(m.into());
        self
    }
    pub(crate) fn with_trace(mut self, trace: PulseTrace) -> Self {
        self.trace = Some(Box::new(trace.thinned()));
        self
    }
}

/// A bench instrument, to name in an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Instrument {
    Can,
    PulseMeter,
    Telemetry,
}

/// What to check when an instrument failed in a way that is the bench's, not the gauge's.
fn advice(e: &InstrumentError) -> &'static str {
    match e {
        InstrumentError::Io { .. } => ". The device failed mid-run: check that it is still plugged in (a device powered with the board leaves with it) and its cable",
        InstrumentError::Timeout { .. } => ". Check that the device is powered and that the rig config's port is this instrument",
        InstrumentError::Protocol { .. } => ". Check the port's baud rate and that the port is this instrument, not another device",
        InstrumentError::Open { .. } | InstrumentError::Measurement { .. } | InstrumentError::CanBus { .. } => "",
    }
}

/// An instrument error: what the instrument measured of the gauge (no servo signal) is a
/// fail; the instrument failing (gone, silent, garbled, refusing) is the rig's error, with
/// the instrument named and what to check.
pub(crate) fn from_instrument(instrument: &str, e: InstrumentError) -> StepResult {
    match e {
        InstrumentError::Measurement { .. } => StepResult::fail(Vec::new(), e.to_string()),
        other => StepResult::error(format!("{instrument}: {other}{}", advice(&other))),
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub struct Runner<'a> {
    pub rig: &'a mut Rig,
    pub abort: &'a AtomicBool,
}

impl Runner<'_> {
    /// The instrument's own description (kind, device path), for messages.
    pub(crate) fn instrument_name(&self, which: Instrument) -> String {
        match which {
            Instrument::Can => format!("CAN adapter ({})", self.rig.ecu.adapter_name()),
            Instrument::PulseMeter => format!("pulse meter ({})", self.rig.meter.describe()),
            Instrument::Telemetry => self.rig.telemetry.describe(),
        }
    }

    pub(crate) fn instrument_failed(&self, which: Instrument, e: InstrumentError) -> StepResult {
        from_instrument(&self.instrument_name(which), e)
    }

    /// The firmware's next status line. When none comes, the pulse meter tells a silent
    /// firmware (no needle either: the gauge's fail) from a telemetry port that is broken
    /// while the firmware runs (the bench's error).
    pub(crate) fn next_status(&mut self) -> Result<StatusLine, StepResult> {
        match self.rig.telemetry.next_status(TELEMETRY_TIMEOUT) {
            Ok(line) => Ok(line),
            Err(e @ InstrumentError::Timeout { .. }) => {
                let port = self.instrument_name(Instrument::Telemetry);
                Err(match self.rig.meter.capture(2) {
                    Ok(_) => StepResult::error(format!("{port}: {e}, yet the firmware is running (the pulse meter sees the needle's pulses): the telemetry link is at fault. Check that the port is the board's virtual COM port, its cable, and telemetry.baud (the firmware sends at 115200)")),
                    Err(InstrumentError::Measurement { reason, .. }) => match self.rig.meter.confirm_answering() {
                        Ok(()) => StepResult::fail(Vec::new(), format!("the firmware is silent: {e}, and no servo pulse either ({reason})")),
                        Err(meter) => self.both_failed(&port, &e, meter),
                    },
                    Err(meter) => self.both_failed(&port, &e, meter),
                })
            }
            Err(e) => Err(self.instrument_failed(Instrument::Telemetry, e)),
        }
    }

    /// The run's abort flag or the process's interrupt (Ctrl-C, SIGTERM).
    pub(crate) fn interrupted(&self) -> bool {
        self.abort.load(Ordering::Relaxed) || rig_instruments::interrupt::requested()
    }

    /// No status line, and the pulse meter asked whether the firmware runs failed too.
    fn both_failed(&self, port: &str, e: &InstrumentError, meter: InstrumentError) -> StepResult {
        let meter = self.instrument_failed(Instrument::PulseMeter, meter);
        let said = meter.message.clone().unwrap_or_default();
        meter.with_message(format!(
            "{port}: {e}; and the pulse meter, asked whether the firmware runs, failed too: {said}"
        ))
    }

    /// Sleeps in slices so an interrupt is noticed.
    pub(crate) fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.interrupted() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}
