//! A bench assembled from its rig config: resources (config) -> drivers -> a ready rig,
//! with the bring-up strategy (power on -> attach -> flash the firmware under test).

use std::time::{Duration, Instant};

use gauge_logic::supply::SupplyConfig;

use crate::{
    config::{BoardBackend, CanAdapterKind, FirmwareKind, ProbeBackend, RigConfig},
    dbc::OilTempEncoder,
    drivers,
    ecu::Ecu,
    instruments::{
        CoreSelect, DebugProbe, InstrumentError, PowerSwitch, ProbeError, PulseMeter, TelemetryPort,
    },
    report::RigInfo,
    sim::{
        bench::SimulatedPorts,
        logic_board::{LogicFirmware, OptionBytes, OPTSR_BCM4, OPTSR_BCM7},
        probe::SimulatedProbe,
        target::{FirmwareIdentity, FirmwareImage},
        SimulatedBench, SimulatedBenchConfig,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum RigError {
    #[error(transparent)]
    Instrument(#[from] InstrumentError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("simulated bench: {0}")]
    Simulation(std::io::Error),
    #[error("{0}")]
    Setup(String),
}

/// Everything a scenario can touch.
pub struct Rig {
    pub config: RigConfig,
    pub ecu: Ecu,
    pub meter: Box<dyn PulseMeter>,
    pub power: Box<dyn PowerSwitch>,
    pub probe: Option<Box<dyn DebugProbe>>,
    pub telemetry: Box<dyn TelemetryPort>,
    pub firmware: FirmwareIdentity,
    /// When the board's supply was last switched on.
    pub powered_at: Option<Instant>,
    /// The simulated bench, when the rig is simulated (dropped last).
    pub bench: Option<SimulatedBench>,
}

impl Rig {
    pub fn wiring(&self) -> SupplyConfig {
        self.config.wiring
    }

    pub fn info(&self) -> RigInfo {
        let mut instruments = vec![
            self.ecu.adapter_name().to_string(),
            self.meter.describe(),
            self.power.describe(),
            self.telemetry.describe(),
        ];
        if let Some(p) = &self.probe {
            instruments.push(p.describe());
        }
        RigInfo {
            name: self.config.name.clone(),
            config: self.config.path.clone(),
            backend: format!("{:?}", self.config.backend).to_lowercase(),
            board: self.config.board_model.clone(),
            wiring: self.config.wiring.name().into(),
            instruments,
        }
    }

    /// Brings the bench up: simulated instruments if any, drivers, power on, firmware under test.
    pub fn open(config: RigConfig, encoder: OilTempEncoder) -> Result<Self, RigError> {
        let mut rig = Self::open_instruments(config, encoder)?;
        rig.bring_up()?;
        Ok(rig)
    }

    /// Loads the rig config at `path` and the shipped DBC, then opens the rig, brought up or
    /// (`bring_up = false`) with its instruments only. Errors are one readable line.
    pub fn open_path(path: &std::path::Path, bring_up: bool) -> Result<Self, String> {
        let config = RigConfig::load(path).map_err(|e| e.to_string())?;
        let encoder =
            OilTempEncoder::load(&crate::dbc::default_path()).map_err(|e| e.to_string())?;
        let opened = if bring_up {
            Self::open(config, encoder)
        } else {
            Self::open_instruments(config, encoder)
        };
        opened.map_err(|e| e.to_string())
    }

    /// The instruments only: nothing is switched on or flashed (for recovery, which must find
    /// the board as it is).
    pub fn open_instruments(config: RigConfig, encoder: OilTempEncoder) -> Result<Self, RigError> {
        let (bench, ports) = match config.backend {
            BoardBackend::Simulated => {
                let bench = start_simulated_bench(&config)?;
                let ports = bench.ports.clone();
                (Some(bench), ports)
            }
            BoardBackend::Hardware => (
                None,
                SimulatedPorts {
                    slcan: config.can.port.clone().unwrap_or_default(),
                    sump: config.pulse_meter.port.clone(),
                    // Only serial switches have a port; command and sysfs switches ignore it.
                    relay: config.power.port.clone().unwrap_or_default(),
                    telemetry: config.telemetry.port.clone(),
                },
            ),
        };
        // slcan: the serial device (the pty on the simulated bench); socketcan: the interface,
        // which the simulated bench bridges to its board.
        let can_port = match config.can.adapter {
            CanAdapterKind::Slcan => ports.slcan.clone(),
            CanAdapterKind::Socketcan => config.can.interface.clone().unwrap_or_default(),
        };
        let can = drivers::open_can(&config.can, &can_port)?;
        let meter = drivers::open_pulse_meter(&config.pulse_meter, &ports.sump)?;
        let power = drivers::open_power(&config.power, &ports.relay)?;
        let telemetry = drivers::open_telemetry(&config.telemetry, &ports.telemetry)?;
        let probe = open_probe(&config, bench.as_ref())?;
        let ecu = Ecu::start(can, encoder).map_err(RigError::Simulation)?;
        let firmware = FirmwareIdentity {
            name: match config.firmware_kind {
                FirmwareKind::Logic => "gauge-logic (host build on the simulated board)".into(),
                FirmwareKind::Flashed => "firmware as flashed on the board".into(),
                FirmwareKind::Elf => "board ELF on the emulated board (unicorn Cortex-M7)".into(),
            },
            version: env!("CARGO_PKG_VERSION").into(),
            // What the build writes to PWR_CR3: the logic's build option, or what the rig
            // config says of the ELF (`firmware.supply`).
            supply: matches!(
                config.firmware_kind,
                FirmwareKind::Logic | FirmwareKind::Elf
            )
            .then(|| config.firmware_supply.name().to_string()),
            sha256: config
                .firmware_elf
                .as_deref()
                .and_then(|p| crate::elf::sha256_hex(p).ok()),
        };
        Ok(Self {
            config,
            ecu,
            meter,
            power,
            probe,
            telemetry,
            firmware,
            powered_at: None,
            bench,
        })
    }

    /// Power on and, on the simulated board, flash the firmware under test over whatever the
    /// board had (a reset, not a power cycle: the supply latch keeps the earlier choice).
    fn bring_up(&mut self) -> Result<(), RigError> {
        self.power.set_power(true)?;
        self.powered_at = Some(Instant::now());
        std::thread::sleep(Duration::from_millis(self.config.power.settle_ms));
        if self.config.firmware_kind == FirmwareKind::Logic {
            let bench = self.bench.as_ref().ok_or_else(|| {
                RigError::Setup("firmware.kind = \"logic\" needs the simulated bench".into())
            })?;
            load_logic_firmware(&self.config, bench)?;
        }
        if self.config.firmware_kind == FirmwareKind::Elf {
            let bench = self.bench.as_ref().ok_or_else(|| {
                RigError::Setup("firmware.kind = \"elf\" needs the simulated bench".into())
            })?;
            load_elf_firmware(&self.config, bench)?;
        }
        Ok(())
    }

    /// How the emulated board has run so far (`None` for other boards).
    pub fn emulation(&self) -> Option<crate::sim::target::EmulationStats> {
        self.bench
            .as_ref()
            .and_then(|b| b.shared.board().target.emulation())
    }

    /// Switches the supply off and, when there is a probe, waits until the board stops
    /// answering it (a relay's command latency is not a power cut). Returns how long that took.
    pub fn power_off_confirmed(&mut self) -> Result<Duration, RigError> {
        const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);
        self.power.set_power(false)?;
        let sent = Instant::now();
        let Some(probe) = self.probe.as_mut() else {
            return Ok(Duration::ZERO);
        };
        loop {
            let answers =
                probe.attach(CoreSelect::Cm7).is_ok() || probe.attach(CoreSelect::Cm4).is_ok();
            probe.detach();
            if !answers {
                return Ok(sent.elapsed());
            }
            if sent.elapsed() > CONFIRM_TIMEOUT {
                return Err(RigError::Setup(format!(
                    "{}: the board still answers the probe {CONFIRM_TIMEOUT:?} after the off command: the switch does not cut the supply (check its wiring, channel and that the board is not also powered from the ST-LINK USB)",
                    self.power.describe()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Cuts the supply (confirmed) for `off`, restores it and waits the configured settle time.
    pub fn power_cycle(&mut self, off: Duration) -> Result<(), RigError> {
        self.power_off_confirmed()?;
        std::thread::sleep(off);
        self.power.set_power(true)?;
        self.powered_at = Some(Instant::now());
        std::thread::sleep(Duration::from_millis(self.config.power.settle_ms));
        Ok(())
    }
}

/// The debug probe a rig config names: the simulated bench's in-process probe, or a real one
/// through probe-rs, looked up on USB now and, if it is not there yet (a probe powered by the
/// bench's power switch), again at its first attach.
pub fn open_probe(
    config: &RigConfig,
    bench: Option<&SimulatedBench>,
) -> Result<Option<Box<dyn DebugProbe>>, RigError> {
    Ok(match (config.probe.backend, bench) {
        (ProbeBackend::Simulated, Some(b)) => Some(Box::new(SimulatedProbe::new(b.shared.clone()))),
        (ProbeBackend::ProbeRs, _) => Some(Box::new(
            crate::drivers::probe_rs::ProbeRsProbe::open_or_defer(&config.probe)
                .map_err(ProbeError::from)?,
        )),
        (ProbeBackend::Simulated, None) | (ProbeBackend::None, _) => None,
    })
}

/// What the simulated bench simulates for a rig config (`board.backend = "simulated"`).
pub fn simulated_bench_config(config: &RigConfig) -> SimulatedBenchConfig {
    let mut option_bytes = OptionBytes::default();
    if !config.option_bytes.bcm7 {
        option_bytes.optsr &= !OPTSR_BCM7;
    }
    if !config.option_bytes.bcm4 {
        option_bytes.optsr &= !OPTSR_BCM4;
    }
    SimulatedBenchConfig {
        wiring: config.wiring,
        preloaded: LogicFirmware {
            supply: config.preloaded_supply,
        },
        option_bytes,
        relay_channel: config.power.channel,
        // The board's bus on a real SocketCAN interface (vcan0) instead of the slcan pty.
        can_interface: match config.can.adapter {
            CanAdapterKind::Socketcan => config.can.interface.clone(),
            CanAdapterKind::Slcan => None,
        },
    }
}

/// Starts the simulated bench a rig config describes: the board model that runs the host-built
/// logic, or with `firmware.kind = "elf"` the emulated board that runs the real ELF.
pub fn start_simulated_bench(config: &RigConfig) -> Result<SimulatedBench, RigError> {
    let bench_config = simulated_bench_config(config);
    if config.firmware_kind == FirmwareKind::Elf {
        let target = emulated_target(config, &bench_config)?;
        return SimulatedBench::start_with_target(bench_config, target)
            .map_err(RigError::Simulation);
    }
    SimulatedBench::start(bench_config).map_err(RigError::Simulation)
}

/// The emulated board with the rig's ELFs: the preloaded one in flash, the one under test known
/// by its segments (for symbols in diagnoses).
#[cfg(feature = "emulator")]
fn emulated_target(
    config: &RigConfig,
    bench: &SimulatedBenchConfig,
) -> Result<Box<dyn crate::sim::target::SimulatedTarget>, RigError> {
    let Some(elf) = config.firmware_elf.as_deref() else {
        return Err(RigError::Setup(
            "firmware.kind = \"elf\" needs firmware.elf".into(),
        ));
    };
    let preloaded = config.preloaded_elf.as_deref().unwrap_or(elf);
    let mut paths = vec![preloaded];
    if preloaded != elf {
        paths.push(elf);
    }
    for p in &paths {
        if !p.is_file() {
            return Err(RigError::Setup(format!(
                "{}: the board ELF is not built; run firmware/build.sh{} ({})",
                p.display(),
                if p.to_string_lossy().contains("/ldo/") {
                    " --ldo"
                } else {
                    ""
                },
                config.path
            )));
        }
    }
    let board =
        crate::emu::board::EmulatedBoard::from_elfs(config.wiring, bench.option_bytes, &paths)
            .map_err(|e| RigError::Setup(format!("emulated board: {e}")))?;
    Ok(Box::new(board))
}

#[cfg(not(feature = "emulator"))]
fn emulated_target(
    config: &RigConfig,
    _bench: &SimulatedBenchConfig,
) -> Result<Box<dyn crate::sim::target::SimulatedTarget>, RigError> {
    Err(RigError::Setup(format!(
        "{}: firmware.kind = \"elf\" needs a rig built with the emulator (--features emulator)",
        config.path
    )))
}

/// Downloads the board ELF under test (`firmware.kind = "elf"`) into the powered emulated board
/// through the in-process probe, with verify, then resets it: a reset, not a power cycle.
pub fn load_elf_firmware(config: &RigConfig, bench: &SimulatedBench) -> Result<(), RigError> {
    let Some(elf) = config.firmware_elf.as_deref() else {
        return Err(RigError::Setup(
            "firmware.kind = \"elf\" needs firmware.elf".into(),
        ));
    };
    let mut probe = SimulatedProbe::new(bench.shared.clone());
    let timeout = Duration::from_millis(config.probe.attach_timeout_ms);
    if crate::instruments::attach_with_retry(&mut probe, CoreSelect::Cm7, timeout).is_err()
        && probe.attach(CoreSelect::Cm4).is_err()
    {
        let ctx = crate::diagnosis::Context {
            wiring: config.wiring,
            rig_path: config.path.clone(),
            firmware_supply: None, // whatever was in flash before the download
        };
        let diagnosis = ctx.no_cm7(&mut probe);
        return Err(RigError::Setup(format!(
            "bring-up: the board does not answer the probe, so the ELF under test cannot be downloaded. {diagnosis}"
        )));
    }
    probe.flash_elf(elf)?;
    probe.detach();
    Ok(())
}

/// Loads the firmware under test (the host-built gauge logic, `firmware.kind = "logic"`) into
/// a powered simulated board through the in-process probe: a reset, not a power cycle.
pub fn load_logic_firmware(config: &RigConfig, bench: &SimulatedBench) -> Result<(), RigError> {
    let image = FirmwareImage::Logic(LogicFirmware {
        supply: config.firmware_supply,
    });
    let mut probe = SimulatedProbe::new(bench.shared.clone());
    // Through the Cortex-M7 if it answers, else through the Cortex-M4 (AP 3 reaches the same
    // flash: a board with BCM7 = 0 can still be programmed).
    let timeout = Duration::from_millis(config.probe.attach_timeout_ms);
    // Retried: the supply may come on later than the switch command (relay latency).
    if crate::instruments::attach_with_retry(&mut probe, CoreSelect::Cm7, timeout).is_err()
        && probe.attach(CoreSelect::Cm4).is_err()
    {
        let ctx = crate::diagnosis::Context {
            wiring: config.wiring,
            rig_path: config.path.clone(),
            firmware_supply: Some(config.preloaded_supply),
        };
        let diagnosis = ctx.no_cm7(&mut probe);
        return Err(RigError::Setup(format!(
            "bring-up: the board does not answer the probe, so the firmware under test cannot be loaded. {diagnosis}"
        )));
    }
    probe.flash(&image)?;
    // The real ELF's bytes into the program flash, so the power-cycle check can verify them.
    if let Some(elf) = config.firmware_elf.as_deref().filter(|p| p.exists()) {
        probe.flash_elf(elf)?;
    }
    probe.detach();
    Ok(())
}
