//! The five instrument traits and their errors: what a bench run needs from each instrument,
//! independent of transport.

use std::time::{Duration, Instant};

use gauge_logic::{frame::CanFrame, telemetry::StatusLine};

pub use crate::pulse::PulseCapture;

/// A bus-side error from an instrument, naming the device and what to check.
#[derive(Debug, thiserror::Error)]
pub enum InstrumentError {
    #[error("{device}: cannot open: {reason}. Check that the device is plugged in and the path in the rig config is right")]
    Open { device: String, reason: String },
    #[error("{device}: I/O error: {reason}")]
    Io { device: String, reason: String },
    #[error("{device}: no answer within {timeout:?} to {what}")]
    Timeout {
        device: String,
        what: String,
        timeout: Duration,
    },
    #[error("{device}: protocol error: {reason}")]
    Protocol { device: String, reason: String },
    #[error("{device}: {reason}")]
    Measurement { device: String, reason: String },
    /// A CAN interface or bus problem (SocketCAN): no kernel support, interface missing or
    /// down, bus-off, error-passive, no ACK... `reason` says what to check.
    #[error("{device}: {reason}")]
    CanBus { device: String, reason: String },
}

pub type InstrumentResult<T> = Result<T, InstrumentError>;

/// A USB-CAN adapter on the gauge's bus.
pub trait CanAdapter: Send {
    fn send(&mut self, frame: &CanFrame) -> InstrumentResult<()>;
    /// The next received frame, or `None` when `timeout` passes first.
    fn recv(&mut self, timeout: Duration) -> InstrumentResult<Option<CanFrame>>;
    fn describe(&self) -> String;
    /// The adapter's own view of the bus when it has one to ask for (slcan's `F` flags);
    /// `None` when it cannot tell or reports errors otherwise (SocketCAN's error frames come
    /// back from [`recv`](Self::recv)).
    fn bus_status(&mut self) -> InstrumentResult<Option<AdapterBusStatus>> {
        Ok(None)
    }
}

/// What a CAN adapter's controller says of the bus.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdapterBusStatus {
    pub error_warning: bool,
    pub error_passive: bool,
    pub bus_error: bool,
    pub data_overrun: bool,
    pub arbitration_lost: bool,
    /// The adapter's flags as it gave them (slcan `F`: bit 2 error warning, 3 data overrun,
    /// 5 error passive, 6 arbitration lost, 7 bus error).
    pub raw: u8,
}

impl AdapterBusStatus {
    pub fn from_slcan_flags(flags: u8) -> Self {
        let bit = |n: u8| flags & (1 << n) != 0;
        Self {
            error_warning: bit(2),
            data_overrun: bit(3),
            error_passive: bit(5),
            arbitration_lost: bit(6),
            bus_error: bit(7),
            raw: flags,
        }
    }

    /// Errors that say the bus itself is in trouble (arbitration lost is normal traffic).
    pub fn bus_in_trouble(&self) -> bool {
        self.error_warning || self.error_passive || self.bus_error || self.data_overrun
    }

    /// The errors in words, e.g. "bus error, error passive".
    pub fn describe(&self) -> String {
        let names: Vec<&str> = [
            (self.bus_error, "bus error"),
            (self.error_passive, "error passive"),
            (self.error_warning, "error warning"),
            (self.data_overrun, "data overrun"),
            (self.arbitration_lost, "arbitration lost"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if names.is_empty() {
            "no errors".into()
        } else {
            names.join(", ")
        }
    }
}

/// Measures the servo signal.
pub trait PulseMeter: Send {
    /// One capture that starts at a rising edge of the servo signal and covers `periods` pulses.
    fn capture(&mut self, periods: usize) -> InstrumentResult<TimedCapture>;
    /// Before captures that found no servo signal are blamed on the gauge: the meter shows
    /// it still answers as it did at open (an error says how it failed).
    fn confirm_answering(&mut self) -> InstrumentResult<()> {
        Ok(())
    }
    fn describe(&self) -> String;
}

/// A capture with the host time at which its first sample was taken (estimated).
#[derive(Clone, Debug)]
pub struct TimedCapture {
    pub started: Instant,
    pub capture: PulseCapture,
}

/// Switches the board's supply.
pub trait PowerSwitch: Send {
    fn set_power(&mut self, on: bool) -> InstrumentResult<()>;
    fn describe(&self) -> String;
}

/// Which core to attach to (STM32H755: AP 0 = Cortex-M7, AP 3 = Cortex-M4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreSelect {
    Cm7,
    Cm4,
}

/// Why a probe operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probe {probe}: target does not respond on {core:?} (no debug access: powered off, supply lock-up or core boot disabled)")]
    NoTarget { probe: String, core: CoreSelect },
    #[error("probe {probe}: not attached")]
    NotAttached { probe: String },
    #[error("probe {probe}: memory read at {address:#010x} failed: {reason}")]
    Read {
        probe: String,
        address: u32,
        reason: String,
    },
    /// The probe itself is gone (left USB: unplugged, or powered with the board that was just
    /// switched off, as a NUCLEO's ST-LINK is).
    #[error("probe {probe}: no longer reachable ({reason})")]
    Gone { probe: String, reason: String },
    #[error("probe {probe}: {reason}")]
    Other { probe: String, reason: String },
}

/// The debug probe on the board's SWD port.
pub trait DebugProbe: Send {
    fn attach(&mut self, core: CoreSelect) -> Result<(), ProbeError>;
    /// Connect under reset ("hardware reset" mode): NRST asserted while attaching, so the
    /// firmware cannot run before the debugger holds the core.
    fn attach_under_reset(&mut self, core: CoreSelect) -> Result<(), ProbeError>;
    /// Drives the probe's NRST line (held across a power cycle for ST's recovery procedure).
    fn hold_reset(&mut self, asserted: bool) -> Result<(), ProbeError>;
    fn read_u32(&mut self, address: u32) -> Result<u32, ProbeError>;
    /// Reads `buf.len()` bytes from `address`.
    fn read_memory(&mut self, address: u32, buf: &mut [u8]) -> Result<(), ProbeError>;
    /// Writes a word at `address` through the attached core's bus (a register: FLASH_OPTKEYR,
    /// FLASH_OPTSR_PRG, ...).
    fn write_u32(&mut self, address: u32, value: u32) -> Result<(), ProbeError>;
    /// System reset of the target (the PWR_CR3 latch survives it).
    fn reset(&mut self) -> Result<(), ProbeError>;
    /// Erases all of the flash (both banks).
    fn mass_erase(&mut self) -> Result<(), ProbeError>;
    /// Downloads the ELF's loadable segments, verifies them and resets the target.
    fn flash_elf(&mut self, elf: &std::path::Path) -> Result<(), ProbeError>;
    fn detach(&mut self);
    fn describe(&self) -> String;
    /// The target supply the probe measures on its VTref pin, in volts; `Ok(None)` when this
    /// probe cannot measure it. Ends an attached session first.
    fn target_voltage(&mut self) -> Result<Option<f32>, ProbeError> {
        Ok(None)
    }
    /// The probe's USB identity (VID:PID, serial), for the run report.
    fn usb_identity(&self) -> Option<crate::usb_identity::UsbIdentity> {
        None
    }

    /// How long the last successful attach took (a probe-rs session start halts every core
    /// meanwhile), when the probe measures it.
    fn last_attach_time(&self) -> Option<Duration> {
        None
    }
}

/// The firmware's status lines.
pub trait TelemetryPort: Send {
    /// The next complete status line received after this call.
    fn next_status(&mut self, timeout: Duration) -> InstrumentResult<StatusLine>;
    fn describe(&self) -> String;
}

/// Attaches, retrying until `timeout`: the board may still be booting, or the ST-LINK
/// re-enumerating after its USB supply was cut.
pub fn attach_with_retry(
    probe: &mut dyn DebugProbe,
    core: CoreSelect,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let deadline = Instant::now() + timeout;
    loop {
        match probe.attach(core) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}
