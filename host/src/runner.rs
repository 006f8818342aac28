//! Runs scenarios on a [`Rig`]. Knows steps and instruments' traits, nothing of transports.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use gauge_logic::{
    gauge::GaugeTiming,
    supply::{SupplyConfig, PWR_CR3_ADDR, PWR_CR3_SUPPLY_MASK, PWR_CSR1_ACTVOSRDY, PWR_CSR1_ADDR},
};

use crate::{
    diagnosis,
    instruments::{CoreSelect, InstrumentError},
    report::{Measurement, Outcome, ScenarioReport, SettleSummary, StepReport},
    rig::Rig,
    scenario::{Scenario, Step},
};

/// Pulses per capture. Captures follow each other without missing a pulse, so the settle check
/// (the last two pulses agree and sit at the target) can span two captures.
const PULSES_PER_CAPTURE: usize = 2;
/// Two consecutive pulses closer than this are "not moving" (the slew moves 40 us per frame).
const STABLE_US: f64 = 2.0;
const TELEMETRY_TIMEOUT: Duration = Duration::from_millis(2500);
const PWM_PERIOD_MS: f64 = 20.0;

/// Per-scenario memory between steps.
#[derive(Default)]
pub(crate) struct ScenarioState {
    /// The needle position last measured.
    last_pulse_us: Option<f64>,
    /// A set-point waiting for its expect_pulse, and the needle position before it.
    pending_setpoint: Option<Option<f64>>,
    last_boot_count: Option<u32>,
    settle_total_ms: f64,
    settle_floor_ms: f64,
    settle_count: usize,
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
    /// Runs every step of `scenario`, calling `on_step` as each finishes.
    pub fn run(
        &mut self,
        scenario: &Scenario,
        on_step: &mut dyn FnMut(&StepReport),
    ) -> ScenarioReport {
        let started = Instant::now();
        let started_at = crate::report::now_rfc3339();
        let mut state = ScenarioState::default();
        let mut steps = Vec::new();
        let mut stop_reason: Option<String> = None;
        // Each scenario starts from a quiet bus.
        self.rig.ecu.stop_sending();
        let _ = self.rig.ecu.take_error();
        for (index, located) in scenario.steps.iter().enumerate() {
            if stop_reason.is_none() && self.abort.load(Ordering::Relaxed) {
                stop_reason = Some("run interrupted".into());
            }
            if let Some(reason) = &stop_reason {
                steps.push(StepReport {
                    index: index + 1,
                    line: located.line,
                    action: located.step.action().into(),
                    outcome: Outcome::Skipped,
                    duration_ms: 0.0,
                    measurements: Vec::new(),
                    message: Some(reason.clone()),
                    diagnosis: None,
                });
                continue;
            }
            let t = Instant::now();
            let mut result = self.step(scenario, &located.step, &mut state);
            if let Some(e) = self.rig.ecu.take_error() {
                result = StepResult::error(format!("CAN adapter: {e}"));
            }
            let report = StepReport {
                index: index + 1,
                line: located.line,
                action: located.step.action().into(),
                outcome: result.outcome,
                duration_ms: ms(t.elapsed()),
                measurements: result.measurements,
                message: result.message,
                diagnosis: result.diagnosis,
            };
            on_step(&report);
            match report.outcome {
                Outcome::Error => {
                    stop_reason = Some(format!("step {} ended in an error", index + 1))
                }
                Outcome::Fail if !scenario.continue_on_fail => {
                    stop_reason = Some(format!("step {} failed", index + 1))
                }
                _ => {}
            }
            steps.push(report);
        }
        self.rig.ecu.stop_sending();
        let mut outcome = steps
            .iter()
            .map(|s| s.outcome)
            .filter(|o| *o != Outcome::Skipped)
            .fold(Outcome::Pass, Outcome::worst);
        if self.abort.load(Ordering::Relaxed) && steps.iter().any(|s| s.outcome == Outcome::Skipped)
        {
            outcome = Outcome::Error;
        }
        let settling = (state.settle_count > 0).then(|| SettleSummary {
            setpoints: state.settle_count,
            total_ms: state.settle_total_ms,
            floor_ms: state.settle_floor_ms,
            ratio: state.settle_total_ms / state.settle_floor_ms,
        });
        ScenarioReport {
            name: scenario.name.clone(),
            file: scenario.path.display().to_string(),
            outcome,
            started_at,
            duration_ms: ms(started.elapsed()),
            description: scenario.description.clone(),
            steps,
            settling,
            error: stop_reason.filter(|_| outcome == Outcome::Error),
        }
    }

    fn step(&mut self, scenario: &Scenario, step: &Step, state: &mut ScenarioState) -> StepResult {
        let d = scenario.defaults;
        match step {
            Step::SetTemperature {
                celsius,
                source,
                period_ms,
            } => {
                match self.rig.ecu.set_temperature(
                    *celsius,
                    *source,
                    Duration::from_millis(*period_ms),
                ) {
                    Ok(()) => {
                        state.pending_setpoint = Some(state.last_pulse_us);
                        StepResult::pass()
                    }
                    Err(e) => StepResult::error(e),
                }
            }
            Step::StopSending => {
                self.rig.ecu.stop_sending();
                StepResult::pass()
            }
            Step::Inject {
                fault,
                rate_hz,
                keep_valid,
            } => {
                self.rig.ecu.inject(*fault, *rate_hz, *keep_valid);
                StepResult::pass()
            }
            Step::ClearFaults => {
                self.rig.ecu.clear_faults();
                StepResult::pass()
            }
            Step::Hold { ms: hold } => {
                self.sleep(Duration::from_millis(*hold));
                let (valid, faults) = self.rig.ecu.frames_sent();
                StepResult::judged(vec![
                    Measurement::info("valid_frames_sent_total", valid as f64, "frames"),
                    Measurement::info("fault_frames_sent_total", faults as f64, "frames"),
                ])
            }
            Step::ExpectPulse {
                us,
                tolerance_us,
                settle_timeout_ms,
            } => {
                let tol = tolerance_us.unwrap_or(d.tolerance_us);
                let timeout =
                    Duration::from_millis(settle_timeout_ms.unwrap_or(d.settle_timeout_ms));
                let setpoint = state.pending_setpoint.take();
                self.expect_pulse(*us, tol, timeout, setpoint, state)
            }
            Step::ExpectFailsafe {
                within_ms,
                tolerance_us,
            } => self.expect_failsafe(*within_ms, tolerance_us.unwrap_or(d.tolerance_us), state),
            Step::ExpectTelemetry {
                celsius,
                source,
                failsafe,
            } => self.expect_telemetry(*celsius, source.as_deref(), *failsafe, state),
            Step::ExpectObdPolling {
                interval_ms,
                tolerance_ms,
                over_ms,
            } => {
                let since = Instant::now();
                self.sleep(Duration::from_millis(*over_ms));
                let requests = self.rig.ecu.obd_requests_since(since);
                let intervals: Vec<f64> = requests.windows(2).map(|w| ms(w[1] - w[0])).collect();
                let mut m = vec![Measurement::limited(
                    "obd_requests",
                    requests.len() as f64,
                    "requests",
                    Some(2.0),
                    None,
                )];
                if !intervals.is_empty() {
                    let mean = intervals.iter().sum::<f64>() / intervals.len() as f64;
                    let max = intervals.iter().copied().fold(0.0, f64::max);
                    m.push(Measurement::limited(
                        "obd_poll_interval_mean",
                        mean,
                        "ms",
                        Some(interval_ms - tolerance_ms),
                        Some(interval_ms + tolerance_ms),
                    ));
                    m.push(Measurement::info("obd_poll_interval_max", max, "ms"));
                }
                StepResult::judged(m)
            }
            Step::PowerCycle { off_ms } => {
                let off = Duration::from_millis(off_ms.unwrap_or(self.rig.config.power.off_ms));
                state.last_pulse_us = None;
                match self.rig.power_cycle(off) {
                    Ok(()) => {
                        StepResult::judged(vec![Measurement::info("power_off_time", ms(off), "ms")])
                    }
                    Err(e) => StepResult::error(e.to_string()),
                }
            }
            Step::Reset => {
                let attach_timeout = Duration::from_millis(self.rig.config.probe.attach_timeout_ms);
                let Some(probe) = self.rig.probe.as_mut() else {
                    return StepResult::error(
                        "this rig has no debug probe (probe.backend = \"none\"): reset needs one",
                    );
                };
                if let Err(e) = crate::instruments::attach_with_retry(
                    probe.as_mut(),
                    CoreSelect::Cm7,
                    attach_timeout,
                ) {
                    return StepResult::fail(Vec::new(), e.to_string());
                }
                let r = probe.reset();
                probe.detach();
                state.last_pulse_us = None;
                match r {
                    Ok(()) => StepResult::pass(),
                    Err(e) => StepResult::fail(Vec::new(), e.to_string()),
                }
            }
            Step::ExpectSupply => self.expect_supply(),
            Step::PowerCycleCheck {
                off_ms,
                celsius,
                us,
                tolerance_us,
            } => {
                let off = Duration::from_millis(off_ms.unwrap_or(self.rig.config.power.off_ms));
                let check = crate::checks::PowerCycleCheck {
                    off,
                    celsius: *celsius,
                    pulse_us: *us,
                    tolerance_us: tolerance_us.unwrap_or(d.tolerance_us),
                    settle_timeout: Duration::from_millis(d.settle_timeout_ms),
                };
                self.power_cycle_check(check, state)
            }
            Step::PowerCutDuringWrite {
                after_bytes,
                delay_ms,
            } => self.power_cut_during_write(*after_bytes, *delay_ms, state),
            Step::PowerCutSweep { max_delay_ms } => self.power_cut_sweep(*max_delay_ms, state),
            Step::ExpectBootCount { by } => {
                let Some(before) = state.last_boot_count else {
                    return StepResult::error(
                        "no boot count read yet in this scenario: put an expect_telemetry step before the power cycle",
                    );
                };
                match self.rig.telemetry.next_status(TELEMETRY_TIMEOUT) {
                    Ok(line) => {
                        state.last_boot_count = Some(line.boot_count);
                        let want = f64::from(before) + f64::from(*by);
                        StepResult::judged(vec![
                            Measurement::limited(
                                "boot_count",
                                f64::from(line.boot_count),
                                "boots",
                                Some(want),
                                Some(want),
                            ),
                            Measurement::info("boot_count_before", f64::from(before), "boots"),
                        ])
                    }
                    Err(e) => from_instrument(e),
                }
            }
        }
    }

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

    /// Captures until the last two pulses that began after `after` agree and sit within `tol`
    /// of `target`, or `deadline`. Returns (mean of those two pulses, period, when the first
    /// at-target pulse began).
    pub(crate) fn settle(
        &mut self,
        target: f64,
        tol: f64,
        after: Instant,
        deadline: Instant,
    ) -> Result<(f64, f64, Instant), (Option<f64>, String)> {
        let mut last: Option<f64> = None;
        let mut last_problem = String::from("no capture completed");
        // Pulses seen so far as (rising edge, high time), newest last; kept while captures are contiguous.
        let mut stream: Vec<(Instant, f64)> = Vec::new();
        let mut period = f64::NAN;
        loop {
            if self.abort.load(Ordering::Relaxed) {
                return Err((last, "interrupted".into()));
            }
            match self.rig.meter.capture(PULSES_PER_CAPTURE) {
                Ok(tc) => {
                    let c = &tc.capture;
                    period = c.mean_period_us().unwrap_or(period);
                    let pulses: Vec<(Instant, f64)> = c
                        .high_us
                        .iter()
                        .zip(&c.pulse_end_us)
                        .map(|(&h, &end)| {
                            (tc.started + Duration::from_secs_f64((end - h) / 1e6), h)
                        })
                        .collect();
                    // Contiguous with the previous capture when the gap is one servo period.
                    let contiguous = match (stream.last(), pulses.first()) {
                        (Some(&(prev, _)), Some(&(first, _))) => {
                            let gap = ms(first.saturating_duration_since(prev));
                            (PWM_PERIOD_MS * 0.75..PWM_PERIOD_MS * 1.25).contains(&gap)
                        }
                        _ => false,
                    };
                    if !contiguous {
                        stream.clear();
                    }
                    stream.extend(pulses.into_iter().filter(|&(t, _)| t >= after));
                    if stream.len() >= 2 {
                        let (a, b) = (stream[stream.len() - 2].1, stream[stream.len() - 1].1);
                        let mean = (a + b) / 2.0;
                        last = Some(mean);
                        if (a - b).abs() <= STABLE_US
                            && (a - target).abs() <= tol
                            && (b - target).abs() <= tol
                        {
                            let first_at_target = (0..stream.len())
                                .find(|&k| {
                                    stream[k..].iter().all(|(_, h)| (h - target).abs() <= tol)
                                })
                                .unwrap_or(stream.len() - 2);
                            return Ok((mean, period, stream[first_at_target].0));
                        }
                        last_problem =
                            format!("needle at {mean:.1} us (last pulses {a:.0}/{b:.0} us)");
                    } else if let Some(&(_, h)) = stream.last() {
                        last = Some(h);
                    }
                }
                Err(e @ InstrumentError::Measurement { .. }) => {
                    stream.clear();
                    last_problem = e.to_string();
                }
                Err(e) => return Err((last, format!("ERROR: {e}"))),
            }
            if Instant::now() >= deadline {
                return Err((last, last_problem));
            }
        }
    }

    fn expect_pulse(
        &mut self,
        us: f64,
        tol: f64,
        timeout: Duration,
        setpoint: Option<Option<f64>>,
        state: &mut ScenarioState,
    ) -> StepResult {
        let step_start = Instant::now();
        let deadline = step_start + timeout;
        let limits = (Some(us - tol), Some(us + tol));
        // After a set-point, only pulses that begin once its first frame is on the bus count
        // (an OBD-II set-point waits for the gauge's next request).
        let t0 = if setpoint.is_some() {
            loop {
                if let Some(t) = self.rig.ecu.setpoint_sent_at() {
                    break t;
                }
                if Instant::now() >= deadline || self.abort.load(Ordering::Relaxed) {
                    return StepResult::fail(Vec::new(), format!("the set-point never went out on the bus within {timeout:?} (for OBD-II: the gauge sent no request)"));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        } else {
            step_start
        };
        match self.settle(us, tol, t0, deadline) {
            Ok((mean, period, at)) => {
                let confirmed = Instant::now();
                state.last_pulse_us = Some(mean);
                let settle_ms = ms(at.saturating_duration_since(t0));
                let confirm_ms = ms(confirmed.saturating_duration_since(t0));
                let mut m = vec![
                    Measurement::limited("pulse_width", mean, "us", limits.0, limits.1),
                    Measurement::limited("pulse_error", mean - us, "us", Some(-tol), Some(tol)),
                    Measurement::limited(
                        "pwm_period",
                        period,
                        "us",
                        Some(19_000.0),
                        Some(21_000.0),
                    ),
                    Measurement::info("settle_time", settle_ms, "ms"),
                    Measurement::info("confirm_time", confirm_ms, "ms"),
                ];
                if let Some(Some(before)) = setpoint {
                    let slew = f64::from(GaugeTiming::DEFAULT.slew_us_per_s);
                    let floor = (us - before).abs() / slew * 1000.0 + 2.0 * PWM_PERIOD_MS;
                    m.push(Measurement::info("physical_floor", floor, "ms"));
                    state.settle_total_ms += confirm_ms;
                    state.settle_floor_ms += floor;
                    state.settle_count += 1;
                }
                StepResult::judged(m)
            }
            Err((last, problem)) => {
                state.last_pulse_us = last;
                if let Some(msg) = problem.strip_prefix("ERROR: ") {
                    return StepResult::error(msg.to_string());
                }
                let mut m = Vec::new();
                if let Some(v) = last {
                    m.push(Measurement::limited(
                        "pulse_width",
                        v,
                        "us",
                        limits.0,
                        limits.1,
                    ));
                    m.push(Measurement::limited(
                        "pulse_error",
                        v - us,
                        "us",
                        Some(-tol),
                        Some(tol),
                    ));
                }
                StepResult::fail(
                    m,
                    format!(
                        "needle did not settle at {us} +- {tol} us within {timeout:?}: {problem}"
                    ),
                )
            }
        }
    }

    fn expect_failsafe(
        &mut self,
        within_ms: u64,
        tol: f64,
        state: &mut ScenarioState,
    ) -> StepResult {
        let park = f64::from(GaugeTiming::DEFAULT.park_pulse_us);
        let reference = self
            .rig
            .ecu
            .last_valid_sent_at()
            .unwrap_or_else(Instant::now);
        let deadline = reference + Duration::from_millis(within_ms + 500);
        let mut m = Vec::new();
        match self.settle(
            park,
            tol,
            reference,
            deadline.max(Instant::now() + Duration::from_millis(200)),
        ) {
            Ok((mean, _, at)) => {
                state.last_pulse_us = Some(mean);
                m.push(Measurement::limited(
                    "pulse_width",
                    mean,
                    "us",
                    Some(park - tol),
                    Some(park + tol),
                ));
                m.push(Measurement::limited(
                    "failsafe_after",
                    ms(at.saturating_duration_since(reference)),
                    "ms",
                    None,
                    Some(within_ms as f64),
                ));
            }
            Err((last, problem)) => {
                state.last_pulse_us = last;
                if let Some(v) = last {
                    m.push(Measurement::limited(
                        "pulse_width",
                        v,
                        "us",
                        Some(park - tol),
                        Some(park + tol),
                    ));
                }
                return StepResult::fail(m, format!("needle did not park at {park} us within {within_ms} ms of the last valid data: {problem}"));
            }
        }
        match self.rig.telemetry.next_status(TELEMETRY_TIMEOUT) {
            Ok(line) => {
                m.push(Measurement::limited(
                    "telemetry_failsafe",
                    f64::from(u8::from(line.failsafe)),
                    "flag",
                    Some(1.0),
                    Some(1.0),
                ));
                StepResult::judged(m)
            }
            Err(e) => {
                let mut r = from_instrument(e);
                r.measurements = m;
                r
            }
        }
    }

    fn expect_telemetry(
        &mut self,
        celsius: Option<f64>,
        source: Option<&str>,
        failsafe: Option<bool>,
        state: &mut ScenarioState,
    ) -> StepResult {
        let line = match self.rig.telemetry.next_status(TELEMETRY_TIMEOUT) {
            Ok(l) => l,
            Err(e) => return from_instrument(e),
        };
        state.last_boot_count = Some(line.boot_count);
        let mut m = vec![
            Measurement::info("boot_count", f64::from(line.boot_count), "boots"),
            Measurement::info("telemetry_pwr_cr3", f64::from(line.pwr_cr3), "register"),
            Measurement::info("telemetry_pulse_width", f64::from(line.pulse_us), "us"),
        ];
        let mut problems = Vec::new();
        if let Some(want) = celsius {
            match line.temperature {
                Some(t) => m.push(Measurement::limited(
                    "telemetry_temperature",
                    f64::from(t.0) / 1000.0,
                    "degC",
                    Some(want - 0.1),
                    Some(want + 0.1),
                )),
                None => problems.push(format!("reports no temperature (wanted {want} degC)")),
            }
        }
        if let Some(want) = source {
            if line.source.name() != want {
                problems.push(format!(
                    "source is {:?}, wanted {want:?}",
                    line.source.name()
                ));
            }
        }
        if let Some(want) = failsafe {
            m.push(Measurement::limited(
                "telemetry_failsafe",
                f64::from(u8::from(line.failsafe)),
                "flag",
                Some(f64::from(u8::from(want))),
                Some(f64::from(u8::from(want))),
            ));
        }
        let r = StepResult::judged(m);
        if problems.is_empty() {
            r.with_message(format!("{line}"))
        } else {
            StepResult {
                outcome: Outcome::Fail,
                message: Some(format!("telemetry {}: {}", line, problems.join("; "))),
                ..r
            }
        }
    }

    pub(crate) fn diagnosis_context(&self) -> diagnosis::Context {
        diagnosis::Context {
            wiring: self.rig.wiring(),
            rig_path: self.rig.config.path.clone(),
            firmware_supply: self
                .rig
                .firmware
                .supply
                .as_deref()
                .and_then(SupplyConfig::from_name),
        }
    }

    /// PWR_CR3 supply bits against the wiring and ACTVOSRDY, with a diagnosis when the probe
    /// cannot see the CM7. Returns the measurements so far and whether the supply is right.
    pub(crate) fn check_supply(
        &mut self,
        m: &mut Vec<Measurement>,
        attach_from: Option<Instant>,
    ) -> Result<(), StepResult> {
        let ctx = self.diagnosis_context();
        let expected = self.rig.wiring().cr3_bits();
        let attach_timeout = Duration::from_millis(self.rig.config.probe.attach_timeout_ms);
        let Some(probe) = self.rig.probe.as_mut() else {
            return Err(StepResult::error(
                "this rig has no debug probe (probe.backend = \"none\"): supply checks need one",
            ));
        };
        if let Err(cm7_error) =
            crate::instruments::attach_with_retry(probe.as_mut(), CoreSelect::Cm7, attach_timeout)
        {
            let diagnosis = ctx.no_cm7(probe.as_mut());
            let mut r = StepResult::fail(
                std::mem::take(m),
                format!(
                    "probe cannot attach to the Cortex-M7 within {attach_timeout:?}: {cm7_error}"
                ),
            );
            r.diagnosis = Some(diagnosis);
            return Err(r);
        }
        if let Some(t) = attach_from {
            m.push(Measurement::limited(
                "boot_to_attach",
                ms(t.elapsed()),
                "ms",
                None,
                Some(ms(attach_timeout)),
            ));
        }
        let reads = probe
            .read_u32(PWR_CR3_ADDR)
            .and_then(|cr3| Ok((cr3, probe.read_u32(PWR_CSR1_ADDR)?)));
        let (cr3, csr1) = match reads {
            Ok(v) => v,
            Err(e) => {
                probe.detach();
                return Err(StepResult::error(e.to_string()));
            }
        };
        let found = cr3 & PWR_CR3_SUPPLY_MASK;
        let actvosrdy = csr1 & PWR_CSR1_ACTVOSRDY != 0;
        m.push(Measurement::limited(
            "pwr_cr3_supply_bits",
            f64::from(found),
            "bits",
            Some(f64::from(expected)),
            Some(f64::from(expected)),
        ));
        m.push(Measurement::limited(
            "pwr_csr1_actvosrdy",
            f64::from(u8::from(actvosrdy)),
            "flag",
            Some(1.0),
            Some(1.0),
        ));
        m.push(Measurement::info("pwr_cr3", f64::from(cr3), "register"));
        if found != expected || !actvosrdy {
            probe.detach();
            let mut r = StepResult::judged(std::mem::take(m));
            r.diagnosis = Some(ctx.wrong_supply(cr3, actvosrdy));
            return Err(r);
        }
        Ok(())
    }

    fn expect_supply(&mut self) -> StepResult {
        let mut m = Vec::new();
        let result = self.check_supply(&mut m, None);
        if let Some(p) = self.rig.probe.as_mut() {
            p.detach();
        }
        if let Some(t) = self.rig.powered_at {
            m.push(Measurement::info(
                "power_on_to_check",
                ms(t.elapsed()),
                "ms",
            ));
        }
        match result {
            Ok(()) => StepResult::judged(m),
            Err(r) => r,
        }
    }
}
