//! `rig soak`: the power-cycle check N times in a row, with pass/fail counts and the spread of
//! boot-to-attach and power-on-to-first-pulse times.

use std::{sync::atomic::AtomicBool, time::Instant};

use serde::Serialize;

use crate::{
    checks::PowerCycleCheck,
    report::{Outcome, StepReport},
    rig::Rig,
    runner::Runner,
};

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

/// The `soak` command: prints progress, the summary, writes it as JSON under `reports/<run-id>/soak.json`.
pub fn cli(
    rig_path: &std::path::Path,
    cycles: usize,
    check: PowerCycleCheck,
    reports: &std::path::Path,
) -> std::process::ExitCode {
    let abort = std::sync::Arc::new(AtomicBool::new(false));
    let flag = abort.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::Relaxed));
    let opened = Rig::open_path(rig_path, true);
    let mut rig = match opened {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    println!(
        "soak: {cycles} power cycles on {} ({})",
        rig.config.name, rig.config.path
    );
    let summary = soak(&mut rig, cycles, check, &abort, &mut |n, step| {
        if step.outcome != Outcome::Pass {
            println!(
                "  cycle {n}: {:?} {}",
                step.outcome,
                step.message
                    .as_deref()
                    .or(step.diagnosis.as_deref())
                    .unwrap_or("")
            );
        } else if n % 100 == 0 {
            println!("  {n} cycles");
        }
    });
    let show = |name: &str, s: &Spread| {
        println!(
            "  {name:<26} min {:>7.1}  median {:>7.1}  max {:>7.1} ms  (n = {})",
            s.min, s.median, s.max, s.count
        )
    };
    println!(
        "passed {} failed {} errors {} of {} cycles in {:.1} s",
        summary.passed, summary.failed, summary.errors, summary.cycles, summary.wall_time_s
    );
    show("boot to attach", &summary.boot_to_attach_ms);
    show(
        "power-on to first pulse",
        &summary.power_on_to_first_pulse_ms,
    );
    let run_id = crate::report::new_run_id();
    let dir = reports.join(&run_id);
    let written = std::fs::create_dir_all(&dir).and_then(|_| {
        let tmp = dir.join(".soak.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(&summary).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, dir.join("soak.json"))
    });
    match written {
        Ok(()) => println!("report: {}", dir.join("soak.json").display()),
        Err(e) => eprintln!("warning: cannot write {}: {e}", dir.display()),
    }
    let all = summary.cycles == cycles && summary.failed == 0 && summary.errors == 0;
    std::process::ExitCode::from(if all {
        0
    } else if summary.errors > 0 {
        2
    } else {
        1
    })
}
