//! `rig preflight`: boots a board ELF in the emulator up to its first idle and refuses one
//! that would latch the wrong supply or disable the Cortex-M7's boot (crate rig-emu).

use std::process::ExitCode;

#[cfg(feature = "emulator")]
pub fn cli(
    board: String,
    elf: &std::path::Path,
    max_instructions: u64,
    timeout_s: f64,
    verbose: bool,
) -> ExitCode {
    let wall_clock = match std::time::Duration::try_from_secs_f64(timeout_s) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            eprintln!("error: --timeout-s {timeout_s}: give a positive number of seconds");
            return ExitCode::from(2);
        }
    };
    let limits = rig_emu::Limits {
        max_instructions,
        wall_clock,
        ..Default::default()
    };
    rig_emu::preflight::cli(&board, elf, limits, verbose)
}

#[cfg(not(feature = "emulator"))]
pub fn cli(
    _board: String,
    _elf: &std::path::Path,
    _max_instructions: u64,
    _timeout_s: f64,
    _verbose: bool,
) -> ExitCode {
    eprintln!(
        "rig was built without the emulator: cargo build --features emulator (needs cmake and libclang-dev)"
    );
    ExitCode::from(2)
}
