//! `rig soak`: the power-cycle check N times in a row, with pass/fail counts and the spread of
//! boot-to-attach and power-on-to-first-pulse times.

use std::{sync::atomic::AtomicBool, time::Instant};

use serde::Serialize;

use crate::power_loss::power_cycle::PowerCycleCheck;
use crate::report::{Outcome, StepReport};
use crate::rig::Rig;
use crate::session::Runner;

#[derive(Clone, Debug, Serialize, Default)]
pub struct Spread {
    pub count: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(mut values: Vec<f64>) -> Self {
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        Self {
            count: values.len(),
            min: values[0],
            median: values[values.len() / 2],
            max: values[values.len() - 1],
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SoakSummary {
    pub cycles: usize,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub boot_to_attach_ms: Spread,
    pub power_on_to_first_pulse_ms: Spread,
    pub wall_time_s: f64,
    /// The first few failing cycles, whole.
    pub failures: Vec<(usize, StepReport)>,
}

fn value(step: &StepReport, name: &str) -> Option<f64> {
    step.measurements
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.value)
}

/// Runs `cycles` power-cycle checks; `on_cycle(n, step)` after each. Stops early on an error
/// (the rig, not the board, failed) or when `abort` is set.
pub fn soak(
    rig: &mut Rig,
    cycles: usize,
    check: PowerCycleCheck,
    abort: &AtomicBool,
    on_cycle: &mut dyn FnMut(usize, &StepReport),
) -> SoakSummary {
    let started = Instant::now();
    let (mut passed, mut failed, mut errors) = (0, 0, 0);
    let (mut attach, mut pulse) = (Vec::new(), Vec::new());
    let mut failures = Vec::new();
    let mut runner = Runner { rig, abort };
    for n in 1..=cycles {
        if abort.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let step = runner.run_power_cycle_check(check);
        attach.extend(value(&step, "boot_to_attach"));
        pulse.extend(value(&step, "power_on_to_first_pulse"));
        match step.outcome {
            Outcome::Pass => passed += 1,
            Outcome::Fail => failed += 1,
            _ => errors += 1,
        }
        on_cycle(n, &step);
        let stop = step.outcome == Outcome::Error;
        if step.outcome != Outcome::Pass && failures.len() < 5 {
            failures.push((n, step));
        }
        if stop {
            break;
        }
    }
    SoakSummary {
        cycles: passed + failed + errors,
        passed,
        failed,
        errors,
        boot_to_attach_ms: Spread::of(attach),
        power_on_to_first_pulse_ms: Spread::of(pulse),
        wall_time_s: started.elapsed().as_secs_f64(),
        failures,
    }
}
