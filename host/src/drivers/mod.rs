//! Drivers that speak each instrument's real protocol over a serial port (a USB CDC device on
//! the bench, a pseudo-terminal on the simulated bench).

pub mod lcus;
pub mod pulse;
pub mod serial;
pub mod slcan;
pub mod sump;
pub mod telemetry;

use crate::{
    config::{
        AnalyzerKind, CanAdapterKind, CanConfig, PowerConfig, PowerSwitchKind, PulseMeterConfig,
        TelemetryConfig,
    },
    instruments::{CanAdapter, InstrumentResult, PowerSwitch, PulseMeter, TelemetryPort},
};

/// Opens the CAN adapter a rig config names; `port` is the device (or simulated pty) path.
pub fn open_can(config: &CanConfig, port: &str) -> InstrumentResult<Box<dyn CanAdapter>> {
    match config.adapter {
        CanAdapterKind::Slcan => Ok(Box::new(slcan::SlcanAdapter::open(
            port,
            config.bitrate,
            config.s7_is_750k,
        )?)),
    }
}

/// Opens the pulse meter a rig config names.
pub fn open_pulse_meter(
    config: &PulseMeterConfig,
    port: &str,
) -> InstrumentResult<Box<dyn PulseMeter>> {
    match config.analyzer {
        AnalyzerKind::Sump => Ok(Box::new(sump::SumpAnalyzer::open(
            port,
            config.channel,
            config.sample_rate_hz,
        )?)),
    }
}

/// Opens the power switch a rig config names.
pub fn open_power(config: &PowerConfig, port: &str) -> InstrumentResult<Box<dyn PowerSwitch>> {
    match config.switch {
        PowerSwitchKind::Lcus1 => Ok(Box::new(lcus::LcusRelay::open(port, config.channel)?)),
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
