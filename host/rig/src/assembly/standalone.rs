//! A simulated bench on its own (`rig sim`): started from a rig config, the board powered
//! through the simulated LCUS-1 relay (the same bytes a real relay gets) and loaded with the
//! firmware under test, as `rig run` would.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use bench_config::{BoardBackend, FileError, FirmwareKind, RigConfig};
use rig_instruments::{drivers, EmulationStats, InstrumentError};
use rig_sim::SimulatedBench;
use rig_verify::rig::RigError;

use super::BenchPorts;

/// Why the simulated bench could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SimCommandError {
    #[error(transparent)]
    Config(#[from] FileError),
    #[error("{0}: board.backend is \"hardware\"; `rig sim` runs only simulated rig configs (e.g. rig-config/sim.toml)")]
    NotSimulated(String),
    #[error("cannot start the simulated bench: {0}")]
    Bench(std::io::Error),
    #[error("cannot power the simulated board on: {0}")]
    Power(#[from] InstrumentError),
    #[error(
        "the simulated relay took the power-on command but the board did not power up within {0:?}"
    )]
    PowerTimeout(Duration),
    #[error(transparent)]
    Firmware(#[from] RigError),
}

/// A running simulated bench with its board powered (stops when dropped).
pub struct SimSession {
    pub config: RigConfig,
    bench: SimulatedBench,
    ports: BenchPorts,
    /// A bench bridged to a SocketCAN interface shares it ([`super::bench_lock`]).
    _lock: super::bench_lock::BenchLock,
}

impl SimSession {
    /// The instruments' pseudo-terminals.
    pub fn ports(&self) -> &BenchPorts {
        &self.ports
    }

    pub fn board_powered(&self) -> bool {
        self.bench.shared.board().powered
    }

    /// The bench's shared state and its simulators' pseudo-terminals (to serve them over USB).
    pub fn bench_parts(
        &self,
    ) -> (
        std::sync::Arc<rig_sim::shared::Shared>,
        &rig_sim::bench::SimulatedPorts,
    ) {
        (self.bench.shared.clone(), &self.bench.ports)
    }

    /// The emulated board's speed (`firmware.kind = "elf"`).
    pub fn emulation(&self) -> Option<EmulationStats> {
        self.bench.shared.board().target.emulation()
    }
}

/// What `rig sim` puts on the board after powering it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimFirmware {
    /// The firmware under test (`firmware.elf` or the logic build), downloaded through the
    /// probe over whatever was in flash.
    UnderTest,
    /// Nothing: the board runs what it was found with (the preloaded firmware), as a bench
    /// board does before anyone flashes it; a locked one stays locked.
    AsFound,
}

/// Starts the bench of the rig config at `path`, powers the board through the relay and loads
/// `firmware`.
pub fn start(path: &Path, firmware: SimFirmware) -> Result<SimSession, SimCommandError> {
    let config = RigConfig::load(path)?;
    if config.backend != BoardBackend::Simulated {
        return Err(SimCommandError::NotSimulated(path.display().to_string()));
    }
    let lock = super::bench_lock::acquire(&config)?;
    let bench = super::start_simulated_bench(&config).map_err(|e| match e {
        RigError::Simulation(io) => SimCommandError::Bench(io),
        other => SimCommandError::Firmware(other),
    })?;
    {
        // Through the relay's own protocol, then closed again so the user can open the port.
        let mut relay = drivers::open_power(&config.power, &bench.ports.relay)?;
        relay.set_power(true)?;
    }
    let timeout = Duration::from_secs(2);
    let end = Instant::now() + timeout;
    while !bench.shared.board().powered {
        if Instant::now() > end {
            return Err(SimCommandError::PowerTimeout(timeout));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(config.power.settle_ms));
    // `[simulated_faults]` count from the bench's start here (no run brings it up).
    bench.shared.faults.arm();
    if firmware == SimFirmware::AsFound {
        let ports = BenchPorts::of(&bench);
        return Ok(SimSession {
            config,
            bench,
            ports,
            _lock: lock,
        });
    }
    if config.firmware_kind == FirmwareKind::Logic {
        super::load_logic_firmware(&config, &bench.shared)?;
    }
    if config.firmware_kind == FirmwareKind::Elf {
        let mut probe = super::bench_probe(&config, &bench)
            .map_err(SimCommandError::Firmware)?
            .ok_or_else(|| {
                SimCommandError::Firmware(RigError::Setup(format!(
                    "{}: firmware.kind = \"elf\" is downloaded through the debug probe: set probe.backend",
                    config.path
                )))
            })?;
        super::load_elf_firmware(&config, probe.as_mut())?;
    }
    let ports = BenchPorts::of(&bench);
    Ok(SimSession {
        config,
        bench,
        ports,
        _lock: lock,
    })
}
