//! 1,000 power cycles of the correct firmware on the simulated bench: every cycle must pass
//! (supply bits, flash, records, first pulse), and the figures a lab compares between builds
//! are printed. Out of the default `cargo test` (it takes minutes); .ci/run runs it.
//! Run: `cargo bench --profile dev -p rig --bench power_cycle_soak [-- CYCLES]`.

use std::{path::Path, process::ExitCode, sync::atomic::AtomicBool, time::Duration};

use bench_config::RigConfig;
use rig_verify::{dbc::OilTempEncoder, power_loss::PowerCycleCheck};

fn main() -> ExitCode {
    // `cargo bench` passes `--bench` to a harness-less bench: the cycle count is the first
    // number among the arguments.
    let cycles = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(1000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rig_path = root.join("rig-config/sim.toml");
    let opened = RigConfig::load(&rig_path)
        .map_err(|e| e.to_string())
        .and_then(|config| {
            let encoder = OilTempEncoder::load(&rig_verify::dbc::default_path())
                .map_err(|e| e.to_string())?;
            rig::assembly::open(config, encoder).map_err(|e| e.to_string())
        });
    let mut rig = match opened {
        Ok(rig) => rig,
        Err(e) => {
            eprintln!("power_cycle_soak: cannot open {}: {e}", rig_path.display());
            return ExitCode::from(2);
        }
    };
    let check = PowerCycleCheck {
        off: Duration::from_millis(10),
        celsius: 40.0,
        pulse_us: 1000.0,
        tolerance_us: 4.0,
        settle_timeout: Duration::from_secs(3),
    };
    let abort = AtomicBool::new(false);
    let summary =
        rig_verify::power_loss::soak::soak(&mut rig, cycles, check, &abort, &mut |_, _| {});
    println!(
        "power_cycle_soak: {} cycles in {:.1} s: {} passed, {} failed, {} errors",
        summary.cycles, summary.wall_time_s, summary.passed, summary.failed, summary.errors
    );
    for (name, spread) in [
        ("boot to attach", &summary.boot_to_attach_ms),
        (
            "power-on to first pulse",
            &summary.power_on_to_first_pulse_ms,
        ),
    ] {
        println!(
            "  {name:24} min {:.1} ms, median {:.1} ms, max {:.1} ms ({} cycles)",
            spread.min, spread.median, spread.max, spread.count
        );
    }
    let complete =
        summary.boot_to_attach_ms.count == cycles && summary.power_on_to_first_pulse_ms.min > 0.0;
    if summary.passed != cycles || !complete {
        eprintln!(
            "power_cycle_soak: FAILED: first failure {:?}",
            summary.failures.first()
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
