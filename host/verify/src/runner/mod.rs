//! Runs scenarios on a [`crate::rig::Rig`]: step dispatch. Knows steps and instruments' traits,
//! nothing of transports; the steps themselves live with their concern (needle, telemetry,
//! power loss).

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use crate::{
    ecu::{OtherEcu, ReplyTiming, Tester},
    report::{Measurement, Outcome, ScenarioReport, SettleSummary, StepReport},
    scenario::{Scenario, Step},
};

mod bus;
mod telemetry;

use crate::session::*;
use rig_instruments::CoreSelect;

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
                    trace: None,
                });
                continue;
            }
            let t = Instant::now();
            let mut result = self.step(scenario, &located.step, &mut state);
            if let Some(e) = self.rig.ecu.take_error() {
                let adapter = format!(
                    "{}: {e}. Check that the adapter is still plugged in and answering (slcan: at 115200 baud on this port)",
                    self.instrument_name(Instrument::Can)
                );
                if result.outcome == Outcome::Error {
                    // The step's own error came first and names its instrument; the adapter's
                    // follows it (seen over USB: a relay's late answer left the board off, so
                    // the adapter's frames went unacknowledged).
                    let also = format!("the CAN adapter failed too: {adapter}");
                    result.diagnosis = Some(match result.diagnosis.take() {
                        Some(d) => format!("{d}; {also}"),
                        None => also,
                    });
                } else {
                    result = StepResult::error(adapter);
                }
            }
            if result.outcome != Outcome::Pass && !state.bus_fault_set {
                if let Some(st) = self.rig.ecu.adapter_status().filter(|s| s.bus_in_trouble()) {
                    let said = format!(
                        "the CAN adapter reports {} (flags {:#04x}): the bus itself may be at fault; check CANH/CANL, the 120 ohm terminations and that the gauge's transceiver is powered",
                        st.describe(),
                        st.raw
                    );
                    result.diagnosis = Some(match result.diagnosis.take() {
                        Some(d) => format!("{d}; {said}"),
                        None => said,
                    });
                }
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
                trace: result.trace.map(|t| *t),
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
        // A bus fault a scenario set ends with it: the next one starts from a good bus.
        if let Some(faults) = self.rig.can_bus_faults.as_mut() {
            let _ = faults.set_can_bus_fault(rig_instruments::CanBusFault::None);
        }
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
            retried: Vec::new(),
            evidence: Vec::new(),
        }
    }

    fn step(&mut self, scenario: &Scenario, step: &Step, state: &mut ScenarioState) -> StepResult {
        let d = scenario.defaults;
        match step {
            Step::SetTemperature {
                celsius,
                source,
                period_ms,
                reply_delay_ms,
                reply_jitter_ms,
            } => {
                match self.rig.ecu.set_temperature(
                    *celsius,
                    *source,
                    Duration::from_millis(*period_ms),
                    ReplyTiming::from_ms(*reply_delay_ms, *reply_jitter_ms),
                ) {
                    Ok(()) => {
                        state.pending_setpoint = Some(state.last_pulse_us);
                        StepResult::pass()
                    }
                    Err(e) => StepResult::error(e),
                }
            }
            Step::AddEcu {
                id,
                celsius,
                reply_delay_ms,
                reply_jitter_ms,
            } => match self.rig.ecu.add_ecu(OtherEcu {
                id: *id,
                celsius: celsius.round() as i32,
                timing: ReplyTiming::from_ms(*reply_delay_ms, *reply_jitter_ms),
            }) {
                Ok(()) => StepResult::pass(),
                Err(e) => StepResult::error(e),
            },
            Step::OtherTester {
                pids,
                period_ms,
                celsius,
                addressing,
                reply_delay_ms,
            } => match self.rig.ecu.start_tester(Tester {
                pids: pids.clone(),
                period: Duration::from_millis(*period_ms),
                celsius: celsius.round() as i32,
                addressing: *addressing,
                reply_delay: Duration::from_millis(*reply_delay_ms),
            }) {
                Ok(()) => StepResult::pass(),
                Err(e) => StepResult::error(e),
            },
            Step::ExpectSteady {
                us,
                tolerance_us,
                over_ms,
            } => self.expect_steady(
                *us,
                tolerance_us.unwrap_or(d.tolerance_us),
                Duration::from_millis(*over_ms),
                state,
            ),
            Step::BusLoad { percent } => self.bus_load(*percent),
            Step::BusFault { fault } => {
                state.bus_fault_set = *fault != rig_instruments::CanBusFault::None;
                self.bus_fault(*fault)
            }
            Step::ExpectBroadcastReceived { over_ms, max_lost } => {
                self.expect_broadcast_received(Duration::from_millis(*over_ms), *max_lost)
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
                let sent = self.rig.ecu.frames_sent();
                StepResult::judged(
                    vec![
                        Measurement::info("valid_frames_sent_total", sent.valid as f64, "frames"),
                        Measurement::info("fault_frames_sent_total", sent.faults as f64, "frames"),
                        Measurement::info("tester_frames_sent_total", sent.tester as f64, "frames"),
                        Measurement::info(
                            "other_ecu_frames_sent_total",
                            sent.other_ecus as f64,
                            "frames",
                        ),
                        Measurement::info("load_frames_sent_total", sent.load as f64, "frames"),
                    ]
                    .into_iter()
                    .chain(self.rig.ecu.adapter_status().map(|st| {
                        Measurement::info("adapter_error_flags", f64::from(st.raw), "flags")
                    }))
                    .collect(),
                )
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
                bus,
            } => self.expect_telemetry(
                *celsius,
                source.as_deref(),
                *failsafe,
                bus.as_deref(),
                state,
            ),
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
                if let Err(e) = rig_instruments::attach_with_retry(
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
                let check = crate::power_loss::power_cycle::PowerCycleCheck {
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
                match self.next_status() {
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
                    Err(r) => r,
                }
            }
        }
    }
}
