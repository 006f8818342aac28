//! How close the sweep scenario comes to its physical floor on the simulated bench.
//!
//! Floor per set-point = slew time (|delta pulse| / 2000 us/s) + two 20 ms PWM periods. The rig
//! detects settling from the measured pulses instead of sleeping; target: within 1.3x.
//! Run: `cargo bench -p rig --bench sweep_floor` (real time, about 20 s).

use std::{path::Path, sync::atomic::AtomicBool};

use rig_verify::job::Quiet;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let reports = std::env::temp_dir().join("gauge-rig-bench");
    let abort = AtomicBool::new(false);
    let runs = 5;
    let mut ratios = Vec::new();
    for i in 1..=runs {
        let result = match rig::commands::run::run(
            root.join("rig-config/sim.toml"),
            vec![root.join("scenarios/sweep.toml")],
            reports.clone(),
            rig_verify::dbc::default_path(),
            &abort,
            &mut Quiet,
        ) {
            Ok(r) => r,
            Err(e) => {
                eprintln!(
                    "sweep_floor: cannot write reports under {}: {e}",
                    reports.display()
                );
                std::process::exit(2);
            }
        };
        let Some(settling) = result
            .report
            .scenarios
            .first()
            .and_then(|s| s.settling.clone())
        else {
            eprintln!(
                "sweep_floor: run {i} produced no settling summary: {:?}",
                result.report.error
            );
            std::process::exit(2);
        };
        println!(
            "run {i}: outcome {:?}, {} set-points, settled in {:.0} ms, floor {:.0} ms, ratio {:.3}",
            result.report.outcome, settling.setpoints, settling.total_ms, settling.floor_ms, settling.ratio
        );
        ratios.push(settling.ratio);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "sweep_floor: ratio min {:.3} median {:.3} max {:.3} over {runs} runs (target <= 1.3)",
        ratios[0],
        ratios[ratios.len() / 2],
        ratios[ratios.len() - 1]
    );
    let _ = std::fs::remove_dir_all(&reports);
}
