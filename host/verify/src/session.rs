//! A scenario run's working context: the [`Runner`] (the rig and the interrupt flag), what a
//! scenario remembers between steps, and a step's result. The step kinds (needle, telemetry,
//! power loss) are `impl Runner` blocks in their own modules; the runner module dispatches.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use rig_instruments::InstrumentError;

use crate::{
    report::{Measurement, Outcome},
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
        }
    }
    pub(crate) fn fail(measurements: Vec<Measurement>, message: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Fail,
            measurements,
            message: Some(message.into()),
            diagnosis: None,
        }
    }
    pub(crate) fn with_message(mut self, m: impl Into<String>) -> Self {
        self.message = Some(m.into());
        self
    }
}

/// An instrument error: the DUT misbehaving (no signal, no answer) is a fail, the rig failing is an error.
pub(crate) fn from_instrument(e: InstrumentError) -> StepResult {
    match e {
        InstrumentError::Measurement { .. } | InstrumentError::Timeout { .. } => {
            StepResult::fail(Vec::new(), e.to_string())
        }
        other => StepResult::error(other.to_string()),
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
    /// Sleeps in slices so an interrupt is noticed.
    pub(crate) fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.abort.load(Ordering::Relaxed) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}
