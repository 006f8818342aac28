//! Speed of the emulated board running the real firmware ELF through whole scenarios.
//! Run: `cargo bench -p rig --features emulator --bench emulation_speed` (needs the ELF from
//! firmware/build.sh). Target: faster than real time (speed factor above 1) with a real-time
//! factor of 1.0 on the bench (the board kept up).

use std::{path::Path, sync::atomic::AtomicBool};

use rig_verify::job::Quiet;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let elf = root.join("firmware/target/thumbv7em-none-eabihf/release/firmware");
    if !elf.exists() {
        eprintln!(
            "emulation_speed: {} not built; run firmware/build.sh first",
            elf.display()
        );
        std::process::exit(2);
    }
    let reports = std::env::temp_dir().join("gauge-rig-emulation-bench");
    let abort = AtomicBool::new(false);
    let result = match rig::commands::run::run(
        root.join("rig-config/emulated.toml"),
        vec![
            root.join("scenarios/sweep.toml"),
            root.join("scenarios/stale_failsafe.toml"),
        ],
        reports.clone(),
        rig_verify::dbc::default_path(),
        &abort,
        &mut Quiet,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("emulation_speed: cannot write reports: {e}");
            std::process::exit(2);
        }
    };
    let Some(em) = result.report.emulation.clone() else {
        eprintln!(
            "emulation_speed: the run has no emulation stats ({:?})",
            result.report.error
        );
        std::process::exit(2);
    };
    println!(
        "emulation_speed: outcome {:?}; {} instructions; {:.2} emulated s in {:.2} s of emulation work and {:.2} bench s",
        result.report.outcome, em.instructions, em.virtual_s, em.busy_s, em.wall_s
    );
    println!(
        "emulation_speed: {:.2} M instructions/s, speed factor {:.1}x (faster than real time when > 1), real-time factor {:.3}",
        em.instructions_per_s / 1e6,
        em.speed_factor,
        em.real_time_factor
    );
    let _ = std::fs::remove_dir_all(&reports);
}
