//! The needle's steps: settle detection (the last two pulses agree and sit at the target,
//! counting only pulses after the set-point reached the bus), pulse and failsafe expectations.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use gauge_logic::gauge::GaugeTiming;
use rig_instruments::InstrumentError;

use crate::{
    report::{Measurement, PulseTrace},
    session::*,
};

/// Pulses per capture. Captures follow each other without missing a pulse, so the settle check
/// (the last two pulses agree and sit at the target) can span two captures.
const PULSES_PER_CAPTURE: usize = 2;
/// Two consecutive pulses closer than this are "not moving" (the slew moves 40 us per frame).
const STABLE_US: f64 = 2.0;
const PWM_PERIOD_MS: f64 = 20.0;

impl Runner<'_> {
    /// Captures until the last two pulses that began after `after` agree and sit within `tol`
    /// of `target`, or `deadline`. Returns (mean of those two pulses, period, when the first
    /// at-target pulse began). Every pulse captured goes into `trace` (time from `after`).
    pub(crate) fn settle(
        &mut self,
        target: f64,
        tol: f64,
        after: Instant,
        deadline: Instant,
        trace: &mut PulseTrace,
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
                    for &(t, h) in &pulses {
                        let since = if t >= after {
                            ms(t - after)
                        } else {
                            -ms(after - t)
                        };
                        trace.push(since, h);
                    }
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
                Err(e) => {
                    let name = self.instrument_name(Instrument::PulseMeter);
                    let message = from_instrument(&name, e).message.unwrap_or_default();
                    return Err((last, format!("ERROR: {message}")));
                }
            }
            if Instant::now() >= deadline {
                if stream.is_empty() {
                    // No servo signal until the end: the gauge's fail only if the meter is well.
                    if let Err(e) = self.rig.meter.confirm_answering() {
                        let name = self.instrument_name(Instrument::PulseMeter);
                        let message = from_instrument(&name, e).message.unwrap_or_default();
                        return Err((last, format!("ERROR: {message}")));
                    }
                }
                return Err((last, last_problem));
            }
        }
    }

    pub(crate) fn expect_pulse(
        &mut self,
        us: f64,
        tol: f64,
        timeout: Duration,
        setpoint: Option<Option<f64>>,
        state: &mut ScenarioState,
    ) -> StepResult {
        let step_start = Instant::now();
        let deadline = step_start + timeout;
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
        let mut trace = PulseTrace::new(us, tol);
        let result = self.settle(us, tol, t0, deadline, &mut trace);
        self.judge_pulse(us, tol, timeout, setpoint, t0, result, state)
            .with_trace(trace)
    }

    #[allow(clippy::too_many_arguments)]
    fn judge_pulse(
        &mut self,
        us: f64,
        tol: f64,
        timeout: Duration,
        setpoint: Option<Option<f64>>,
        t0: Instant,
        result: Result<(f64, f64, Instant), (Option<f64>, String)>,
        state: &mut ScenarioState,
    ) -> StepResult {
        let limits = (Some(us - tol), Some(us + tol));
        match result {
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

    pub(crate) fn expect_failsafe(
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
        let mut trace = PulseTrace::new(park, tol);
        match self.settle(
            park,
            tol,
            reference,
            deadline.max(Instant::now() + Duration::from_millis(200)),
            &mut trace,
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
                return StepResult::fail(m, format!("needle did not park at {park} us within {within_ms} ms of the last valid data: {problem}")).with_trace(trace);
            }
        }
        match self.next_status() {
            Ok(line) => {
                m.push(Measurement::limited(
                    "telemetry_failsafe",
                    f64::from(u8::from(line.failsafe)),
                    "flag",
                    Some(1.0),
                    Some(1.0),
                ));
                StepResult::judged(m).with_trace(trace)
            }
            Err(mut r) => {
                r.measurements = m;
                r.with_trace(trace)
            }
        }
    }
}

impl Runner<'_> {
    /// Every pulse that begins within the next `over` sits at `us` +- `tol`: the needle neither
    /// moves nor flips between sources. Measures how many pulses were off and how often the
    /// needle moved between consecutive pulses.
    pub(crate) fn expect_steady(
        &mut self,
        us: f64,
        tol: f64,
        over: Duration,
        state: &mut ScenarioState,
    ) -> StepResult {
        let start = Instant::now();
        let end = start + over;
        let mut pulses: Vec<f64> = Vec::new();
        let mut without_signal = 0usize;
        while Instant::now() < end {
            if self.abort.load(Ordering::Relaxed) {
                return StepResult::error("interrupted");
            }
            match self.rig.meter.capture(PULSES_PER_CAPTURE) {
                Ok(tc) => {
                    let c = &tc.capture;
                    for (&h, &pulse_end) in c.high_us.iter().zip(&c.pulse_end_us) {
                        let began = tc.started + Duration::from_secs_f64((pulse_end - h) / 1e6);
                        if began >= start && began < end {
                            pulses.push(h);
                        }
                    }
                }
                Err(InstrumentError::Measurement { .. }) => without_signal += 1,
                Err(e) => {
                    let name = self.instrument_name(Instrument::PulseMeter);
                    return from_instrument(&name, e);
                }
            }
        }
        let off: Vec<f64> = pulses
            .iter()
            .copied()
            .filter(|h| (h - us).abs() > tol)
            .collect();
        let moves = pulses
            .windows(2)
            .filter(|w| (w[1] - w[0]).abs() > STABLE_US)
            .count();
        let (lo, hi) = pulses
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &h| {
                (lo.min(h), hi.max(h))
            });
        // The meter's back-to-back captures see most servo periods; a quarter is the least a
        // working meter delivers, so fewer means the window was not watched.
        let periods = ms(over) / PWM_PERIOD_MS;
        let least = (periods / 4.0).floor().max(2.0);
        let mut m = vec![
            Measurement::limited(
                "pulses_checked",
                pulses.len() as f64,
                "pulses",
                Some(least),
                None,
            ),
            Measurement::limited(
                "pulses_off_target",
                off.len() as f64,
                "pulses",
                None,
                Some(0.0),
            ),
            Measurement::info("needle_moves", moves as f64, "changes"),
            Measurement::limited(
                "captures_without_signal",
                without_signal as f64,
                "captures",
                None,
                Some(0.0),
            ),
        ];
        if !pulses.is_empty() {
            m.push(Measurement::info("pulse_min", lo, "us"));
            m.push(Measurement::info("pulse_max", hi, "us"));
            state.set_needle(pulses.iter().sum::<f64>() / pulses.len() as f64);
        }
        let mut result = StepResult::judged(m);
        if result.outcome == crate::report::Outcome::Pass {
            return result;
        }
        result.message = Some(if pulses.is_empty() {
            format!("no pulse captured in {over:?}")
        } else {
            format!(
                "needle not steady at {us} +- {tol} us over {over:?}: {} of {} pulses off target ({lo:.0}..{hi:.0} us), {moves} moves, {without_signal} captures without signal",
                off.len(),
                pulses.len()
            )
        });
        result
    }
}
