//! Telemetry steps: the firmware's GAUGE/1 status lines against what the bench set.

use crate::{
    report::{Measurement, Outcome},
    session::*,
};

impl Runner<'_> {
    pub(crate) fn expect_telemetry(
        &mut self,
        celsius: Option<f64>,
        source: Option<&str>,
        failsafe: Option<bool>,
        bus: Option<&str>,
        state: &mut ScenarioState,
    ) -> StepResult {
        let line = match self.next_status() {
            Ok(l) => l,
            Err(r) => return r,
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
        if let Some(want) = bus {
            match line.bus {
                Some(b) if b.name() == want => {}
                Some(b) => problems.push(format!("CAN bus state is {:?}, wanted {want:?}", b.name())),
                // Not the gauge's fail: this bench cannot tell.
                None => {
                    return StepResult {
                        measurements: m,
                        ..StepResult::error(format!(
                            "telemetry {line}: no bus= CAN state (wanted {want:?}): the simulated logic board has no CAN controller, and firmware from before bus= does not say; run on the emulated board or the NUCLEO with current firmware"
                        ))
                    }
                }
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
}
