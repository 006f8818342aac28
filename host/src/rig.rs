//! A bench assembled from its rig config: resources (config) -> drivers -> a ready rig,
//! with the bring-up strategy (power on -> attach -> flash the firmware under test).

use std::time::{Duration, Instant};

use gauge_logic::supply::SupplyConfig;

use crate::{
    config::{BoardBackend, FirmwareKind, ProbeBackend, RigConfig},
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
        let (bench, ports) = match config.backend {
            BoardBackend::Simulated => {
                let mut option_bytes = OptionBytes::default();
                if !config.option_bytes.bcm7 {
                    option_bytes.optsr &= !OPTSR_BCM7;
                }
                if !config.option_bytes.bcm4 {
                    option_bytes.optsr &= !OPTSR_BCM4;
                }
                let bench = SimulatedBench::start(SimulatedBenchConfig {
                    wiring: config.wiring,
                    preloaded: LogicFirmware {
                        supply: config.preloaded_supply,
                    },
                    option_bytes,
                    relay_channel: config.power.channel,
                })
                .map_err(RigError::Simulation)?;
                let ports = bench.ports.clone();
                (Some(bench), ports)
            }
            BoardBackend::Hardware => (
                None,
                SimulatedPorts {
                    slcan: config.can.port.clone(),
                    sump: config.pulse_meter.port.clone(),
                    relay: config.power.port.clone(),
                    telemetry: config.telemetry.port.clone(),
                },
            ),
        };
        let can = drivers::open_can(&config.can, &ports.slcan)?;
        let meter = drivers::open_pulse_meter(&config.pulse_meter, &ports.sump)?;
        let power = drivers::open_power(&config.power, &ports.relay)?;
        let telemetry = drivers::open_telemetry(&config.telemetry, &ports.telemetry)?;
        let probe: Option<Box<dyn DebugProbe>> = match (config.probe.backend, &bench) {
            (ProbeBackend::Simulated, Some(b)) => {
                Some(Box::new(SimulatedProbe::new(b.shared.clone())))
            }
            _ => None,
        };
        let ecu = Ecu::start(can, encoder).map_err(RigError::Simulation)?;
        let firmware = FirmwareIdentity {
            name: match config.firmware_kind {
                FirmwareKind::Logic => "gauge-logic (host build on the simulated board)".into(),
                FirmwareKind::Flashed => "firmware as flashed on the board".into(),
            },
            version: env!("CARGO_PKG_VERSION").into(),
            supply: (config.firmware_kind == FirmwareKind::Logic)
                .then(|| config.firmware_supply.name().to_string()),
            sha256: None,
        };
        let mut rig = Self {
            config,
            ecu,
            meter,
            power,
            probe,
            telemetry,
            firmware,
            powered_at: None,
            bench,
        };
        rig.bring_up()?;
        Ok(rig)
    }

    /// Power on and, on the simulated board, flash the firmware under test over whatever the
    /// board had (a reset, not a power cycle: the supply latch keeps the earlier choice).
    fn bring_up(&mut self) -> Result<(), RigError> {
        self.power.set_power(true)?;
        self.powered_at = Some(Instant::now());
        std::thread::sleep(Duration::from_millis(self.config.power.settle_ms));
        if self.config.firmware_kind == FirmwareKind::Logic {
            let image = FirmwareImage::Logic(LogicFirmware {
                supply: self.config.firmware_supply,
            });
            let bench = self.bench.as_ref().ok_or_else(|| {
                RigError::Setup("firmware.kind = \"logic\" needs the simulated bench".into())
            })?;
            let mut probe = SimulatedProbe::new(bench.shared.clone());
            probe.attach(CoreSelect::Cm7).map_err(|e| {
                RigError::Setup(format!(
                    "bring-up: cannot attach to the board to load the firmware under test ({e}); the preloaded firmware may have locked it up: run recovery"
                ))
            })?;
            probe.flash(&image)?;
            probe.detach();
        }
        Ok(())
    }

    /// Cuts the supply for `off`, restores it and waits the configured settle time.
    pub fn power_cycle(&mut self, off: Duration) -> Result<(), InstrumentError> {
        self.power.set_power(false)?;
        std::thread::sleep(off);
        self.power.set_power(true)?;
        self.powered_at = Some(Instant::now());
        std::thread::sleep(Duration::from_millis(self.config.power.settle_ms));
        Ok(())
    }
}
