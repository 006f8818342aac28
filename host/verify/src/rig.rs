//! Everything a scenario can touch on a bench: its instruments, the stand-in ECU on its bus,
//! what it knows of the firmware, and the capabilities the bench offers. Assembled from a rig
//! config by the `rig` binary; strategies over it (power off, confirm dark, power on) here.

use std::time::{Duration, Instant};

use bench_config::RigConfig;
use rig_instruments::{
    CoreSelect, DebugProbe, EmulationMonitor, EmulationStats, FirmwareIdentity, InstrumentError,
    LogicImageLoader, PowerSwitch, ProbeError, PulseMeter, StoragePowerCut, TelemetryPort,
};
use stm32h755::supply::SupplyConfig;

use crate::{ecu::Ecu, report::RigInfo};

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
    /// Capabilities only some benches offer (`rig_instruments::capabilities`), asked for like
    /// instruments: a step that needs one it does not have says so.
    pub storage_cut: Option<Box<dyn StoragePowerCut>>,
    pub logic_loader: Option<Box<dyn LogicImageLoader>>,
    pub emulation: Option<Box<dyn EmulationMonitor>>,
    /// What the bench assembly keeps alive while the rig is in use (a simulated bench's
    /// threads and pseudo-terminals): opaque here, and dropped last.
    pub keep_alive: Option<Box<dyn Send>>,
}

impl Rig {
    /// How an emulated board has kept up so far (`None` for other boards).
    pub fn emulation_stats(&self) -> Option<EmulationStats> {
        self.emulation.as_ref().and_then(|e| e.emulation())
    }

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
