//! `rig recover`: ST's recovery procedure for a supply lock-up (rig_verify::power_loss::recovery), on the console.

use crate::assembly;
use rig_verify::power_loss::recovery::*;
use rig_verify::report::Outcome;

/// The `recover` command: opens the rig's instruments without bringing the board up, runs the
/// procedure, prints each step; exit 0 when recovered, 1 when a step failed, 2 when the rig could not be opened.
pub fn cli(rig_path: &std::path::Path, opts: &RecoverOptions) -> std::process::ExitCode {
    let abort = super::signals::install("the recovery");
    let opened = assembly::open_path(rig_path, false);
    let mut rig = match opened {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    println!(
        "recovering the board on {} ({})",
        rig.config.name, rig.config.path
    );
    let result = recover(&mut rig, opts, &abort);
    for s in &result.steps {
        println!(
            "  [{}] {:<26} {}",
            if s.ok { " ok " } else { "FAIL" },
            s.what,
            s.detail
        );
    }
    match result.outcome {
        Outcome::Pass => {
            println!("recovered");
            std::process::ExitCode::SUCCESS
        }
        _ => {
            println!("not recovered");
            std::process::ExitCode::from(1)
        }
    }
}
