//! Everything a scenario can touch on a bench: its instruments, the stand-in ECU on its bus,
//! what it knows of the firmware, and the capabilities the bench offers. Assembled from a rig
//! config by the `rig` binary; strategies over it (power off, confirm dark, power on) here.

use std::time::{Duration, Instant};

use bench_config::{RecoveryPin, RigConfig};
use rig_instruments::{
    CanBusFaults, CoreSelect, DebugProbe, EmulationMonitor, EmulationStats, FirmwareIdentity,
    InstrumentError, LogicImageLoader, PowerSwitch, ProbeError, PulseMeter, StoragePowerCut,
    TelemetryPort,
};
use stm32h755::supply::SupplyConfig;

use crate::{
    ecu::Ecu,
    report::{InstrumentUsb, RigInfo},
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
/// Below this target voltage the board is dark (the STM32H7 needs 1.62 V to run).
pub const DARK_BELOW_V: f32 = 0.8;

/// What showed that the board lost power after an off command.
#[derive(Clone, Debug, PartialEq)]
pub enum DarkEvidence {
    /// The probe measured the target supply (VTref) below [`DARK_BELOW_V`].
    TargetVoltage { volts: f32 },
    /// The probe itself went away: it is powered with the board (a NUCLEO's ST-LINK).
    ProbeGone { reason: String },
    /// No attach succeeded: the probe cannot measure VTref, so this is all it can say (a
    /// board that answers nothing is not proven unpowered).
    NoAttach,
    /// The rig has no probe: nothing was confirmed.
    NoProbe,
}

impl DarkEvidence {
    /// The measurement that records the time to this evidence: its name says what was seen.
    pub fn measurement(&self) -> &'static str {
        match self {
            Self::TargetVoltage { .. } => "off_command_to_target_below_0v8",
            Self::ProbeGone { .. } => "off_command_to_probe_gone",
            Self::NoAttach => "off_command_to_no_attach",
            Self::NoProbe => "off_command_unconfirmed",
        }
    }
}

pub struct Rig {
    pub config: RigConfig,
    pub ecu: Ecu,
    pub meter: Box<dyn PulseMeter>,
    pub power: Box<dyn PowerSwitch>,
    /// A relay channel on the board's NRST or BOOT0 (`power.recovery_line`), for recovery.
    pub recovery_line: Option<(RecoveryPin, Box<dyn PowerSwitch>)>,
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
    pub can_bus_faults: Option<Box<dyn CanBusFaults>>,
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
        let mut usb = Vec::new();
        let c = &self.config;
        let ports = [
            ("can", c.can.port.as_deref()),
            ("pulse_meter", Some(c.pulse_meter.port.as_str())),
            ("power", c.power.port.as_deref()),
            ("telemetry", Some(c.telemetry.port.as_str())),
        ];
        // One look at the machine's serial ports for all of them.
        let found = rig_instruments::usb_identity::serial_ports().unwrap_or_default();
        for (instrument, port) in ports {
            let Some(port) = port else { continue };
            let Some(entry) = rig_instruments::usb_identity::find(&found, port) else {
                continue;
            };
            if let Some(identity) = entry.usb.clone() {
                usb.push(InstrumentUsb {
                    instrument: instrument.into(),
                    configured: port.into(),
                    by_id: entry.by_id.clone(),
                    identity,
                });
            }
        }
        if let Some(identity) = self.probe.as_ref().and_then(|p| p.usb_identity()) {
            usb.push(InstrumentUsb {
                instrument: "probe".into(),
                configured: self
                    .probe
                    .as_ref()
                    .map(|p| p.describe())
                    .unwrap_or_default(),
                by_id: Vec::new(),
                identity,
            });
        }
        RigInfo {
            usb,
            config_sha256: rig_instruments::elf::sha256_hex(std::path::Path::new(
                &self.config.path,
            ))
            .ok(),
            host: host_name(),
            name: self.config.name.clone(),
            config: self.config.path.clone(),
            backend: format!("{:?}", self.config.backend).to_lowercase(),
            board: self.config.board_model.clone(),
            wiring: self.config.wiring.name().into(),
            instruments,
        }
    }

    /// Switches the supply off and, when there is a probe, waits until the board has lost
    /// power (a relay's command latency is not a power cut). Returns how long that took and
    /// what showed it.
    pub fn power_off_confirmed(&mut self) -> Result<(Duration, DarkEvidence), RigError> {
        const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);
        self.switch_power(false)?;
        let sent = Instant::now();
        let Some(probe) = self.probe.as_mut() else {
            return Ok((Duration::ZERO, DarkEvidence::NoProbe));
        };
        let mut last_volts = None;
        loop {
            let evidence = match probe.target_voltage() {
                Ok(Some(v)) if v < DARK_BELOW_V => Some(DarkEvidence::TargetVoltage { volts: v }),
                Ok(Some(v)) => {
                    last_volts = Some(v);
                    None
                }
                // A probe that cannot measure VTref: only "nothing answers" is left.
                Ok(None) => {
                    let answers = probe.attach(CoreSelect::Cm7).is_ok()
                        || probe.attach(CoreSelect::Cm4).is_ok();
                    probe.detach();
                    (!answers).then_some(DarkEvidence::NoAttach)
                }
                Err(ProbeError::Gone { reason, .. }) => Some(DarkEvidence::ProbeGone { reason }),
                Err(e) => {
                    return Err(RigError::Setup(format!(
                    "after the off command the probe cannot tell whether the board lost power: {e}"
                )))
                }
            };
            if let Some(e) = evidence {
                return Ok((sent.elapsed(), e));
            }
            if sent.elapsed() > CONFIRM_TIMEOUT {
                let seen = last_volts
                    .map(|v| format!("the probe still measures {v:.2} V on the target"))
                    .unwrap_or_else(|| "the board still answers the probe".into());
                return Err(RigError::Setup(format!(
                    "{}: {seen} {CONFIRM_TIMEOUT:?} after the off command: the switch does not cut the supply (check its wiring, channel and that the board is not also powered from the ST-LINK USB)",
                    self.power.describe()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The state a run leaves the bench in, however it ended (interrupted included): the
    /// stand-in ECU silent (the gauge parks on stale data), NRST released and the probe
    /// detached (the firmware runs), the recovery line off, and the supply as it was: never
    /// cut by the rig at the end, so a flash write under way is not torn.
    pub fn leave_safe(&mut self) {
        self.ecu.stop_sending();
        if let Some(p) = self.probe.as_mut() {
            let _ = p.hold_reset(false);
            p.detach();
        }
        if let Some((_, line)) = self.recovery_line.as_mut() {
            let _ = line.set_power(false);
        }
    }

    /// Switches the supply; an error names the switch and what to check.
    pub fn switch_power(&mut self, on: bool) -> Result<(), RigError> {
        self.power.set_power(on).map_err(|e| {
            RigError::Setup(format!(
                "power switch ({}): {e}. Check that it is plugged in and that the rig config's port is this switch",
                self.power.describe()
            ))
        })
    }

    /// Cuts the supply (confirmed) for `off`, restores it and waits the configured settle time.
    pub fn power_cycle(&mut self, off: Duration) -> Result<(), RigError> {
        self.power_off_confirmed()?;
        rig_instruments::interrupt::sleep(off);
        self.switch_power(true)?;
        self.powered_at = Some(Instant::now());
        rig_instruments::interrupt::sleep(Duration::from_millis(self.config.power.settle_ms));
        Ok(())
    }
}

/// This machine's host name (Linux: the kernel's; else `$HOSTNAME`).
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}
