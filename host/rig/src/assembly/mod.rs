//! A bench assembled from its rig config (labgrid's model): resources (the config) -> drivers
//! (real ones, or the simulated bench's and the emulated board's) -> a ready
//! [`Rig`], with the bring-up strategy (power on -> attach -> flash the firmware under test).
//! The one module outside `rig-sim` and `rig-emu` that names simulated types.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use bench_config::{
    BoardBackend, CanAdapterKind, FirmwareKind, PowerTopology, ProbeBackend, RigConfig,
};
use rig_instruments::{
    attach_with_retry, drivers, CanBusFaults, CoreSelect, DebugProbe, EmulationMonitor,
    FirmwareIdentity, LogicImageLoader, ProbeError, StoragePowerCut,
};
use rig_sim::{
    bench::ProbeSupply,
    logic_board::{LogicFirmware, OptionBytes},
    probe::SimulatedProbe,
    swd_probe::{SwdCounters, SwdProbe, SWD_PROBE_NAME},
    target::FirmwareImage,
    BenchControl, SimulatedBench, SimulatedBenchConfig,
};
use rig_verify::{
    dbc::OilTempEncoder,
    ecu::Ecu,
    power_loss::diagnosis,
    rig::{Rig, RigError},
};
use stm32h755::flash::{OPTSR_BCM4, OPTSR_BCM7};

pub mod bench_lock;
mod resources;
pub mod standalone;

pub use resources::{BenchPorts, BenchResources};

/// The emulator's verdict on an ELF before it is flashed (`rig flash`).
#[cfg(feature = "emulator")]
pub use rig_emu::preflight::gate as emulated_preflight;

/// Brings the bench up: simulated instruments if any, drivers, power on, firmware under test.
pub fn open(config: RigConfig, encoder: OilTempEncoder) -> Result<Rig, RigError> {
    let (mut rig, shared) = assemble(config, encoder)?;
    bring_up(&mut rig, shared.as_ref())?;
    Ok(rig)
}

/// Loads the rig config at `path` and the shipped DBC, then opens the rig, brought up or
/// (`bring_up = false`) with its instruments only. Errors are one readable line.
pub fn open_path(path: &Path, bring_up: bool) -> Result<Rig, String> {
    let config = RigConfig::load(path).map_err(|e| e.to_string())?;
    let encoder =
        OilTempEncoder::load(&rig_verify::dbc::default_path()).map_err(|e| e.to_string())?;
    let opened = if bring_up {
        open(config, encoder)
    } else {
        open_instruments(config, encoder)
    };
    opened.map_err(|e| e.to_string())
}

/// The instruments only: nothing is switched on or flashed (for recovery, which must find
/// the board as it is).
pub fn open_instruments(config: RigConfig, encoder: OilTempEncoder) -> Result<Rig, RigError> {
    assemble(config, encoder).map(|(rig, _)| rig)
}

/// The simulated bench's state, for bring-up's in-process firmware loading.
type BenchShared = std::sync::Arc<rig_sim::bench::Shared>;

/// Opens every instrument the config names (starting the simulated bench first if it is one).
fn assemble(
    config: RigConfig,
    encoder: OilTempEncoder,
) -> Result<(Rig, Option<BenchShared>), RigError> {
    // Before anything is opened or switched: one rig process per bench.
    let lock = bench_lock::acquire(&config)?;
    let resources = match config.backend {
        BoardBackend::Simulated => BenchResources::simulated(start_simulated_bench(&config)?),
        BoardBackend::Hardware => BenchResources::hardware(&config),
    };
    let ports = resources.ports.clone();
    let bench = resources.into_bench();
    // slcan: the serial device (the pty on the simulated bench); socketcan: the interface,
    // which the simulated bench bridges to its board.
    let can_port = match config.can.adapter {
        CanAdapterKind::Slcan => ports.slcan.clone(),
        CanAdapterKind::Socketcan => config.can.interface.clone().unwrap_or_default(),
    };
    let can = drivers::open_can(&config.can, &can_port)?;
    let meter = drivers::open_pulse_meter(&config.pulse_meter, &ports.sump)?;
    let power = drivers::open_power_outputs(&config.power, &ports.relay)?;
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
            .and_then(|p| rig_instruments::elf::sha256_hex(p).ok()),
        ..FirmwareIdentity::default()
    };
    let shared = bench.as_ref().map(|b| b.shared.clone());
    let capability = |s: &BenchShared| BenchControl::new(s.clone());
    let storage_cut = shared
        .as_ref()
        .map(|s| Box::new(capability(s)) as Box<dyn StoragePowerCut>);
    let logic_loader = shared
        .as_ref()
        .map(|s| Box::new(capability(s)) as Box<dyn LogicImageLoader>);
    let emulation = shared
        .as_ref()
        .map(|s| Box::new(capability(s)) as Box<dyn EmulationMonitor>);
    let can_bus_faults = shared
        .as_ref()
        .map(|s| Box::new(capability(s)) as Box<dyn CanBusFaults>);
    let rig = Rig {
        config,
        ecu,
        meter,
        power: power.supply,
        recovery_line: power.recovery_line,
        probe,
        telemetry,
        firmware,
        powered_at: None,
        storage_cut,
        logic_loader,
        emulation,
        can_bus_faults,
        keep_alive: Some(Box::new((bench, lock))),
    };
    Ok((rig, shared))
}

/// Power on and, on the simulated board, flash the firmware under test over whatever the
/// board had (a reset, not a power cycle: the supply latch keeps the earlier choice).
fn bring_up(rig: &mut Rig, shared: Option<&BenchShared>) -> Result<(), RigError> {
    rig.switch_power(true)?;
    rig.powered_at = Some(Instant::now());
    std::thread::sleep(Duration::from_millis(rig.config.power.settle_ms));
    if rig.config.firmware_kind == FirmwareKind::Logic {
        let shared = shared.ok_or_else(|| {
            RigError::Setup("firmware.kind = \"logic\" needs the simulated bench".into())
        })?;
        load_logic_firmware(&rig.config, shared)?;
    }
    if rig.config.firmware_kind == FirmwareKind::Elf {
        if shared.is_none() {
            return Err(RigError::Setup(
                "firmware.kind = \"elf\" needs the simulated bench".into(),
            ));
        }
        let config = rig.config.clone();
        let probe = rig.probe.as_deref_mut().ok_or_else(|| {
            RigError::Setup(format!(
                "{}: firmware.kind = \"elf\" is downloaded through the debug probe: set probe.backend",
                config.path
            ))
        })?;
        load_elf_firmware(&config, probe)?;
    }
    // `[simulated_faults]` count from here: the run proper.
    if let Some(s) = shared {
        s.faults.arm();
    }
    Ok(())
}

/// The debug probe a rig config names: on a simulated bench see [`bench_probe`]; on hardware a
/// real one through probe-rs, looked up on USB now and, if it is not there yet (a probe powered
/// by the bench's power switch), again at its first attach.
pub fn open_probe(
    config: &RigConfig,
    bench: Option<&SimulatedBench>,
) -> Result<Option<Box<dyn DebugProbe>>, RigError> {
    if let Some(b) = bench {
        return bench_probe(config, b);
    }
    Ok(match config.probe.backend {
        ProbeBackend::ProbeRs => Some(Box::new(
            drivers::probe_rs::ProbeRsProbe::open_or_defer(&config.probe)
                .map_err(ProbeError::from)?,
        )),
        ProbeBackend::Simulated | ProbeBackend::None => None,
    })
}

/// The debug probe of a simulated bench: the in-process probe (`probe.backend = "simulated"`),
/// or (`"probe-rs"`) the bench's real probe-rs driver, [`ProbeRsProbe`], on an in-process SWD
/// probe wired to the emulated board's debug port: the code a bench runs, against emulated
/// silicon.
///
/// [`ProbeRsProbe`]: drivers::probe_rs::ProbeRsProbe
pub fn bench_probe(
    config: &RigConfig,
    bench: &SimulatedBench,
) -> Result<Option<Box<dyn DebugProbe>>, RigError> {
    Ok(match config.probe.backend {
        ProbeBackend::Simulated => Some(Box::new(SimulatedProbe::new(bench.shared.clone()))),
        ProbeBackend::ProbeRs => Some(Box::new(probe_rs_on_bench(config, bench)?)),
        ProbeBackend::None => None,
    })
}

/// probe-rs on the simulated bench: only the emulated board has a debug port it can speak to.
fn probe_rs_on_bench(
    config: &RigConfig,
    bench: &SimulatedBench,
) -> Result<drivers::probe_rs::ProbeRsProbe, RigError> {
    if !bench.shared.board().target.has_debug_port() {
        return Err(RigError::Setup(format!(
            "{}: probe.backend = \"probe-rs\" on the simulated bench needs the emulated board's \
             debug port: set firmware.kind = \"elf\" (and build the rig with --features \
             emulator), or use probe.backend = \"simulated\"",
            config.path
        )));
    }
    let shared = bench.shared.clone();
    let counters = std::sync::Arc::new(SwdCounters::default());
    let open: drivers::probe_rs::ProbeOpener =
        std::sync::Arc::new(move || SwdProbe::open(shared.clone(), counters.clone()));
    Ok(drivers::probe_rs::ProbeRsProbe::in_process(
        &config.probe,
        SWD_PROBE_NAME,
        open,
    ))
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
        supply_rise_ms: config.power.supply_rise_ms,
        probe_supply: match config.power.topology {
            PowerTopology::Target => ProbeSupply::OwnUsb,
            PowerTopology::StlinkUsb => ProbeSupply::BoardSupply {
                enumeration_us: config.usb.clone().unwrap_or_default().stlink_enumeration_ms * 1000,
            },
        },
        recovery_line: config.power.recovery_line,
        // The board's bus on a real SocketCAN interface (vcan0) instead of the slcan pty.
        can_interface: match config.can.adapter {
            CanAdapterKind::Socketcan => config.can.interface.clone(),
            CanAdapterKind::Slcan => None,
        },
        faults: config.simulated_faults.clone().unwrap_or_default(),
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
) -> Result<Box<dyn rig_sim::target::SimulatedTarget>, RigError> {
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
    let board = rig_emu::board::EmulatedBoard::from_elfs(config.wiring, bench.option_bytes, &paths)
        .map_err(|e| RigError::Setup(format!("emulated board: {e}")))?;
    Ok(Box::new(board))
}

#[cfg(not(feature = "emulator"))]
fn emulated_target(
    config: &RigConfig,
    _bench: &SimulatedBenchConfig,
) -> Result<Box<dyn rig_sim::target::SimulatedTarget>, RigError> {
    Err(RigError::Setup(format!(
        "{}: firmware.kind = \"elf\" needs a rig built with the emulator (--features emulator)",
        config.path
    )))
}

/// Downloads the board ELF under test (`firmware.kind = "elf"`) into the powered emulated board
/// through the bench's probe (the in-process one, or probe-rs on the emulated debug port), with
/// verify, then resets it: a reset, not a power cycle.
pub fn load_elf_firmware(config: &RigConfig, probe: &mut dyn DebugProbe) -> Result<(), RigError> {
    let Some(elf) = config.firmware_elf.as_deref() else {
        return Err(RigError::Setup(
            "firmware.kind = \"elf\" needs firmware.elf".into(),
        ));
    };
    let timeout = Duration::from_millis(config.probe.attach_timeout_ms);
    let ctx = diagnosis::Context {
        wiring: config.wiring,
        rig_path: config.path.clone(),
        firmware_supply: None, // whatever was in flash before the download
    };
    if attach_with_retry(probe, CoreSelect::Cm7, timeout).is_err() {
        // Through the Cortex-M4 (AP 3 reaches the same flash), if it answers.
        let through_cm4 = probe
            .attach(CoreSelect::Cm4)
            .and_then(|_| probe.flash_elf(elf));
        probe.detach();
        return match through_cm4 {
            Ok(()) => Ok(()),
            Err(e) => {
                let diagnosis = ctx.no_cm7(probe);
                Err(RigError::Setup(format!(
                    "bring-up: the Cortex-M7 does not answer the probe and the download through the Cortex-M4 failed ({e}), so the ELF under test cannot be downloaded. {diagnosis}"
                )))
            }
        };
    }
    probe.flash_elf(elf)?;
    probe.detach();
    Ok(())
}

/// Loads the firmware under test (the host-built gauge logic, `firmware.kind = "logic"`) into
/// a powered simulated board through the in-process probe: a reset, not a power cycle.
pub fn load_logic_firmware(config: &RigConfig, shared: &BenchShared) -> Result<(), RigError> {
    let image = FirmwareImage::Logic(LogicFirmware {
        supply: config.firmware_supply,
    });
    let mut probe = SimulatedProbe::new(shared.clone());
    // Through the Cortex-M7 if it answers, else through the Cortex-M4 (AP 3 reaches the same
    // flash: a board with BCM7 = 0 can still be programmed).
    let timeout = Duration::from_millis(config.probe.attach_timeout_ms);
    // Retried: the supply may come on later than the switch command (relay latency).
    if attach_with_retry(&mut probe, CoreSelect::Cm7, timeout).is_err()
        && probe.attach(CoreSelect::Cm4).is_err()
    {
        let ctx = diagnosis::Context {
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
