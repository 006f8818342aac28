//! `rig soak`: the power-cycle check N times (rig_verify::power_loss::soak), on the console and in soak.json.

use crate::assembly;
use rig_verify::power_loss::{soak::*, PowerCycleCheck};
use rig_verify::report::Outcome;

/// The `soak` command: prints progress, the summary, writes it as JSON under `reports/<run-id>/soak.json`.
pub fn cli(
    rig_path: &std::path::Path,
    cycles: usize,
    check: PowerCycleCheck,
    reports: &std::path::Path,
) -> std::process::ExitCode {
    let abort = super::signals::install("the soak");
    let opened = assembly::open_path(rig_path, true);
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
    let run_id = rig_verify::report::new_run_id();
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
