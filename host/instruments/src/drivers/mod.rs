//! Drivers that speak each instrument's real protocol over a serial port (a USB CDC device on
//! the bench, a pseudo-terminal on the simulated bench).

pub mod lcus;
pub mod power;
#[cfg(feature = "probe-rs")]
pub mod probe_rs;
pub mod serial;
pub mod slcan;
pub mod socketcan;
pub mod sump;
pub mod telemetry;

use crate::{
    CanAdapter, InstrumentError, InstrumentResult, PowerSwitch, PulseMeter, TelemetryPort,
};
use bench_config::{
    AnalyzerKind, CanAdapterKind, CanConfig, PowerConfig, PowerSwitchKind, PulseMeterConfig,
    RecoveryPin, TelemetryConfig,
};

/// Opens the CAN adapter a rig config names; `port` is the device (or simulated pty) path for
/// slcan, the network interface (`can0`, `vcan0`) for socketcan.
pub fn open_can(config: &CanConfig, port: &str) -> InstrumentResult<Box<dyn CanAdapter>> {
    match config.adapter {
        CanAdapterKind::Slcan => Ok(Box::new(slcan::SlcanAdapter::open_with(
            port,
            config.bitrate,
            slcan::SlcanOptions {
                s7_is_750k: config.s7_is_750k,
                timestamps: config.timestamps,
            },
        )?)),
        CanAdapterKind::Socketcan => Ok(Box::new(socketcan::SocketCanAdapter::open(
            port,
            config.fd,
            config.bitrate,
        )?)),
    }
}

/// Opens the pulse meter a rig config names.
pub fn open_pulse_meter(
    config: &PulseMeterConfig,
    port: &str,
) -> InstrumentResult<Box<dyn PulseMeter>> {
    match config.analyzer {
        AnalyzerKind::Sump => Ok(Box::new(sump::SumpAnalyzer::open_with(
            port,
            &sump::SumpOptions {
                channel: config.channel,
                sample_rate_hz: config.sample_rate_hz,
                rle: config.rle,
                max_jitter_us: config.max_jitter_us,
            },
        )?)),
    }
}

/// A bench's power switch and, when the rig config wires one (`power.recovery_line`), the
/// relay channel on the board's NRST or BOOT0.
pub struct PowerOutputs {
    pub supply: Box<dyn PowerSwitch>,
    pub recovery_line: Option<(RecoveryPin, Box<dyn PowerSwitch>)>,
}

/// Opens the power switch a rig config names, with its recovery line.
pub fn open_power_outputs(config: &PowerConfig, port: &str) -> InstrumentResult<PowerOutputs> {
    if let (PowerSwitchKind::Lcus1, Some(line)) = (config.switch, config.recovery_line) {
        let supply = lcus::LcusRelay::open(port, config.channel)?;
        let line_relay = supply.channel(line.channel);
        return Ok(PowerOutputs {
            supply: Box::new(supply),
            recovery_line: Some((line.pin, Box::new(line_relay))),
        });
    }
    // The config check allows a recovery line on relay boards only.
    Ok(PowerOutputs {
        supply: open_power(config, port)?,
        recovery_line: None,
    })
}

/// Opens the power switch a rig config names.
pub fn open_power(config: &PowerConfig, port: &str) -> InstrumentResult<Box<dyn PowerSwitch>> {
    match config.switch {
        PowerSwitchKind::Lcus1 => Ok(Box::new(lcus::LcusRelay::open(port, config.channel)?)),
        PowerSwitchKind::Command => {
            let missing = |key: &str| InstrumentError::Open {
                device: "power switch (command)".into(),
                reason: format!("power.{key} is missing from the rig config"),
            };
            Ok(Box::new(power::command::CommandSwitch::new(
                config
                    .on_command
                    .clone()
                    .ok_or_else(|| missing("on_command"))?,
                config
                    .off_command
                    .clone()
                    .ok_or_else(|| missing("off_command"))?,
                std::time::Duration::from_millis(config.command_timeout_ms),
            )?))
        }
        PowerSwitchKind::Sysfs => {
            let path = config
                .sysfs_port
                .as_deref()
                .ok_or_else(|| InstrumentError::Open {
                    device: "power switch (sysfs)".into(),
                    reason: "power.sysfs_port is missing from the rig config".into(),
                })?;
            Ok(Box::new(power::sysfs::SysfsPort::open(path)?))
        }
        PowerSwitchKind::Ka3005p => Ok(Box::new(power::korad::Ka3005p::open(
            port,
            config.baud.unwrap_or(power::korad::DEFAULT_BAUD),
            config.voltage,
        )?)),
        PowerSwitchKind::Scpi => Ok(Box::new(power::scpi::ScpiSupply::open(
            port,
            config.baud.unwrap_or(power::scpi::DEFAULT_BAUD),
            config.voltage,
        )?)),
    }
}

/// Opens the firmware's status-line port.
pub fn open_telemetry(
    config: &TelemetryConfig,
    port: &str,
) -> InstrumentResult<Box<dyn TelemetryPort>> {
    Ok(Box::new(telemetry::SerialTelemetry::open(
        port,
        config.baud,
    )?))
}
