//! `rig flash`: put a firmware ELF on the bench's board through its debug probe. Preflight the
//! ELF, switch the supply on, attach to the Cortex-M7 (under reset when configured or when a
//! normal attach fails), download with verify, reset.
//!
//! On the simulated bench every run starts a fresh simulated board, so flashing there proves
//! the command path (ELF segments downloaded into the board model's flash and read back), not
//! a lasting change.

use std::{
    io::Write,
    path::Path,
    process::ExitCode,
    time::{Duration, Instant},
};

use crate::assembly::BenchResources;
use bench_config::{ProbeBackend, RigConfig};
use rig_instruments::drivers::{self, probe_rs::ProbeRsProbe};
use rig_instruments::elf::{self, ElfError, Segment};
use rig_instruments::{CoreSelect, DebugProbe, InstrumentError, ProbeError};
use rig_verify::rig::RigError;

#[derive(Clone, Copy, Debug, Default)]
pub struct FlashOptions {
    /// Connect under reset right away (also `probe.under_reset` in the rig config).
    pub under_reset: bool,
    /// Leave the supply as it is instead of switching it on first.
    pub no_power: bool,
    /// Skip the emulated boot check (`rig preflight`, feature `emulator`).
    pub no_preflight: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    #[error("{0}")]
    Elf(#[from] ElfError),
    #[error("preflight: {0}")]
    Preflight(String),
    #[error("simulated bench: {0}")]
    Simulation(RigError),
    #[error("power switch: {0}")]
    Power(#[from] InstrumentError),
    #[error("{0}")]
    Probe(#[from] ProbeError),
    #[error("probe.backend = \"none\" in {0}: this bench has no debug probe to flash with; set probe.backend = \"probe-rs\" and probe.serial")]
    NoProbe(String),
}

/// What the ELF will put where (printed, and the input of the preflight).
pub struct ElfSummary {
    pub segments: Vec<Segment>,
    pub bytes: usize,
    pub sha256: String,
}

/// Reads the ELF before anything touches the board.
pub fn summarize(elf_path: &Path) -> Result<ElfSummary, FlashError> {
    let segments = elf::load_segments(elf_path)?;
    let bytes = segments.iter().map(|s| s.data.len()).sum();
    let sha256 = elf::sha256_hex(elf_path)?;
    Ok(ElfSummary {
        segments,
        bytes,
        sha256,
    })
}

/// Checks before anything is written to the board.
///
/// PREFLIGHT: the firmware preflight (e.g. the ELF's supply choice against `board.wiring`)
/// goes here; an `Err` stops `rig flash` before the probe is touched: an image with nothing
/// to write, a segment outside the chip's flash or on the storage sectors.
pub fn preflight(config: &RigConfig, elf: &ElfSummary) -> Result<(), FlashError> {
    if elf.bytes == 0 {
        return Err(FlashError::Preflight(
            "the ELF has no bytes to write".into(),
        ));
    }
    elf::check_download(&elf.segments)
        .map_err(|e| FlashError::Preflight(format!("{e} ({})", config.board_model)))
}

/// Flashes `elf_path` on the bench `config` describes, saying what it does on `out`.
pub fn flash(
    config: &RigConfig,
    elf_path: &Path,
    opts: FlashOptions,
    out: &mut dyn Write,
) -> Result<(), FlashError> {
    let mut say = |line: String| {
        let _ = writeln!(out, "{line}");
    };
    let summary = summarize(elf_path)?;
    say(format!(
        "firmware: {} ({} bytes in {} segment(s), sha256 {})",
        elf_path.display(),
        summary.bytes,
        summary.segments.len(),
        summary.sha256
    ));
    preflight(config, &summary)?;
    #[cfg(feature = "emulator")]
    if opts.no_preflight {
        say("emulated preflight: skipped (--no-preflight)".into());
    } else {
        let line =
            crate::assembly::emulated_preflight(config, elf_path).map_err(FlashError::Preflight)?;
        say(format!("emulated preflight: {line}"));
    }
    say("preflight: ok".into());

    if config.probe.backend == ProbeBackend::None {
        return Err(FlashError::NoProbe(config.path.clone()));
    }
    let resources = BenchResources::start(config).map_err(FlashError::Simulation)?;
    if resources.is_simulated() {
        say("simulated bench started (a fresh simulated board: flashing it proves the command path only)".into());
    }
    if opts.no_power {
        say("power: left as it is (--no-power)".into());
    } else {
        let port = resources.ports.relay.clone();
        let mut switch = drivers::open_power(&config.power, &port)?;
        switch.set_power(true)?;
        std::thread::sleep(Duration::from_millis(config.power.settle_ms));
        say(format!(
            "power: {} switched on, waited {} ms",
            switch.describe(),
            config.power.settle_ms
        ));
    }

    let mut probe: Box<dyn DebugProbe> = match resources.bench_probe(config) {
        Some(p) => p
            .map_err(FlashError::Simulation)?
            .ok_or_else(|| FlashError::NoProbe(config.path.clone()))?,
        None => {
            let p = ProbeRsProbe::open(&config.probe).map_err(ProbeError::from)?;
            if let Some(n) = &p.notice {
                say(format!("note: {n}"));
            }
            Box::new(p)
        }
    };
    say(format!("probe: {}", probe.describe()));

    let under_reset = opts.under_reset || config.probe.under_reset;
    let attach_timeout = Duration::from_millis(config.probe.attach_timeout_ms);
    let mut attached_under_reset = under_reset;
    if under_reset {
        probe.attach_under_reset(CoreSelect::Cm7)?;
        say("attached to the Cortex-M7 under reset".into());
    } else {
        match rig_instruments::attach_with_retry(probe.as_mut(), CoreSelect::Cm7, attach_timeout) {
            Ok(()) => say("attached to the Cortex-M7".into()),
            Err(first) => {
                say(format!(
                    "normal attach failed within {attach_timeout:?} ({first}); trying under reset"
                ));
                probe.attach_under_reset(CoreSelect::Cm7).map_err(|e| {
                    ProbeError::Other {
                        probe: probe.describe(),
                        reason: format!("attach failed ({first}) and so did attach under reset ({e}). If the board locked up after a wrong supply choice, run the recovery (hold NRST while powering on, mass erase)"),
                    }
                })?;
                attached_under_reset = true;
                say("attached to the Cortex-M7 under reset".into());
            }
        }
    }

    let started = Instant::now();
    let result = probe.flash_elf(elf_path);
    probe.detach();
    // The simulated probe keeps NRST held after an attach under reset; probe-rs has let go.
    if attached_under_reset && config.probe.backend == ProbeBackend::Simulated {
        probe.hold_reset(false)?;
    }
    result?;
    say(format!(
        "downloaded {} bytes, verified, target reset ({:.1} s)",
        summary.bytes,
        started.elapsed().as_secs_f64()
    ));
    drop(resources);
    Ok(())
}

/// `rig flash`: 0 when flashed and verified, 1 otherwise, 2 when the rig config cannot be read.
pub fn cli(rig: &Path, elf_path: &Path, opts: FlashOptions) -> ExitCode {
    let _interrupt = super::signals::install("the flash");
    let config = match RigConfig::load(rig) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: rig config: {e}");
            return ExitCode::from(2);
        }
    };
    println!("rig: {} ({})", config.name, config.path);
    let mut stdout = std::io::stdout();
    match flash(&config, elf_path, opts, &mut stdout) {
        Ok(()) => {
            println!("flashed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_refuses_a_segment_on_the_storage_sectors_or_outside_flash() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rig-config/sim.toml");
        let config = RigConfig::load(Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
        let summary = |address: u32| ElfSummary {
            segments: vec![Segment {
                address,
                data: vec![0; 64],
            }],
            bytes: 64,
            sha256: String::new(),
        };
        assert!(preflight(&config, &summary(0x0800_0000)).is_ok());
        // A Cortex-M4 image in bank 2 sector 0 is fine ...
        assert!(preflight(&config, &summary(0x0810_0000)).is_ok());
        // ... one on the boot records' sectors is not.
        let e = preflight(&config, &summary(0x081C_0000))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("boot records") && e.contains("0x081c0000"),
            "{e}"
        );
        let e = preflight(&config, &summary(0x0900_0000))
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside the STM32H755's flash"), "{e}");
    }
}
