//! Power switches other than the LCUS-1 relay ([`super::lcus`]): external commands (uhubctl
//! and the like), the Linux sysfs USB port `disable` attribute, and bench supplies over serial
//! (Korad KA3005P and generic SCPI).

pub mod command;
pub mod korad;
pub mod scpi;
pub mod sysfs;

use std::time::{Duration, Instant};

use serialport::SerialPort;

use super::serial::{io_error, read_some};
use crate::{InstrumentError, InstrumentResult};

/// How long a bench supply may take to answer `*IDN?`.
pub const IDN_TIMEOUT: Duration = Duration::from_millis(1000);

/// Writes `bytes` and flushes.
fn send(port: &mut dyn SerialPort, device: &str, bytes: &[u8]) -> InstrumentResult<()> {
    port.write_all(bytes).map_err(|e| io_error(device, e))?;
    port.flush().map_err(|e| io_error(device, e))
}

/// Drops whatever the device sent before we asked anything.
fn drain(port: &mut dyn SerialPort, device: &str) -> InstrumentResult<()> {
    let mut buf = [0u8; 256];
    let end = Instant::now() + Duration::from_millis(200);
    while read_some(port, &mut buf, device)? > 0 && Instant::now() < end {}
    Ok(())
}

/// Reads an answer: until `done(bytes so far)` holds, or the line goes quiet for `quiet` after
/// the first byte, or `timeout` passes. `Err(Timeout)` when nothing at all came.
fn read_answer(
    port: &mut dyn SerialPort,
    device: &str,
    what: &str,
    timeout: Duration,
    quiet: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> InstrumentResult<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut last_byte = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        let n = read_some(port, &mut buf, device)?;
        if n > 0 {
            out.extend_from_slice(&buf[..n]);
            last_byte = Instant::now();
            if done(&out) {
                return Ok(out);
            }
        }
        let now = Instant::now();
        if !out.is_empty() && now.duration_since(last_byte) >= quiet {
            return Ok(out);
        }
        if now >= deadline {
            if out.is_empty() {
                return Err(InstrumentError::Timeout {
                    device: device.to_string(),
                    what: what.to_string(),
                    timeout,
                });
            }
            return Ok(out);
        }
    }
}

/// An answer as text for error messages (control characters escaped).
fn shown(answer: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(answer))
}
