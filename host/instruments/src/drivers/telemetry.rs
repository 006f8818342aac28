//! The firmware's status lines on the ST-LINK virtual COM port.
//!
//! On a NUCLEO powered through the ST-LINK's USB port that port leaves USB at every power
//! cut (reads fail with EIO, the device node goes) and comes back under the same by-id name
//! once the ST-LINK has enumerated again; it is not there at all while the board starts
//! unpowered. So the port is (re)opened by name whenever it is missing, until a read's timeout.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use gauge_logic::telemetry::{ParseError, StatusLine};
use serialport::SerialPort;

use super::serial::{self, read_some};
use crate::{InstrumentError, InstrumentResult, TelemetryPort};

pub struct SerialTelemetry {
    port: Option<Box<dyn SerialPort>>,
    baud: u32,
    device: String,
    /// Why the port is closed (it vanished, or was not there yet), for a timeout's message.
    absent: Option<String>,
    pending: Vec<u8>,
    /// Lines that did not parse, for diagnosis.
    pub rejected: Vec<(String, ParseError)>,
}

impl SerialTelemetry {
    /// Opens the port; one that does not exist yet (a VCP whose board is off) is opened at
    /// the first read.
    pub fn open(path: &str, baud: u32) -> InstrumentResult<Self> {
        let mut t = Self {
            port: None,
            baud,
            device: path.to_string(),
            absent: None,
            pending: Vec::new(),
            rejected: Vec::new(),
        };
        match serial::open(path, baud) {
            Ok(port) => t.port = Some(port),
            Err(_) if !Path::new(path).exists() => {
                t.absent = Some("not present when the rig started".into());
            }
            Err(e) => return Err(e),
        }
        Ok(t)
    }

    /// Reopens a missing port by name, if the device is back.
    fn reopen(&mut self) {
        if self.port.is_some() || !Path::new(&self.device).exists() {
            return;
        }
        // An error: just re-enumerated, udev may not have finished with the node yet.
        if let Ok(p) = serial::open(&self.device, self.baud) {
            tracing::info!(device = %self.device, "telemetry port back, reopened");
            self.port = Some(p);
            self.absent = None;
        }
    }

    /// Reads what is there; a read error means the device left (cdc_acm's EIO/ENODEV after
    /// a disconnect): the port is closed and reopened when it is back.
    fn read(&mut self, buf: &mut [u8]) -> usize {
        self.reopen();
        let Some(port) = self.port.as_mut() else {
            std::thread::sleep(REOPEN_POLL);
            return 0;
        };
        match read_some(port.as_mut(), buf, &self.device) {
            Ok(n) => n,
            Err(e) => {
                tracing::info!(device = %self.device, error = %e, "telemetry port gone");
                self.port = None;
                self.absent = Some(format!("vanished ({e})"));
                0
            }
        }
    }
}

/// How long buffered bytes are dropped before a new status line is awaited.
const DRAIN_AT_MOST: Duration = Duration::from_millis(100);

/// How often a missing port is looked for.
const REOPEN_POLL: Duration = Duration::from_millis(50);

impl TelemetryPort for SerialTelemetry {
    fn next_status(&mut self, timeout: Duration) -> InstrumentResult<StatusLine> {
        // Only lines that start after this call: drop what is buffered and any partial line,
        // for a moment at most (a port that never pauses would hold this loop for ever).
        let mut buf = [0u8; 1024];
        let deadline = Instant::now() + timeout;
        let drained_by = (Instant::now() + DRAIN_AT_MOST).min(deadline);
        while self.port.is_some() && Instant::now() < drained_by && self.read(&mut buf) > 0 {}
        self.pending.clear();
        let mut synced = false;
        // Bytes that came while no line parsed: a garbled link, not a silent one.
        let (mut heard, rejected_before) = (0usize, self.rejected.len());
        loop {
            let n = self.read(&mut buf);
            heard += n;
            for &b in &buf[..n] {
                if b == b'\n' {
                    let line = String::from_utf8_lossy(&self.pending).into_owned();
                    self.pending.clear();
                    if !synced {
                        synced = true;
                        // The first fragment may be the tail of a line already under way.
                        if !line.starts_with(gauge_logic::telemetry::PREFIX) {
                            continue;
                        }
                    }
                    match StatusLine::parse(&line) {
                        Ok(s) => return Ok(s),
                        Err(e) => {
                            tracing::warn!(device = %self.device, %line, error = %e, "telemetry line rejected");
                            self.rejected.push((line, e));
                        }
                    }
                } else {
                    self.pending.push(b);
                }
            }
            if Instant::now() > deadline {
                if heard > 0 {
                    let last = self.rejected[rejected_before..]
                        .last()
                        .map(|(line, e)| format!(" (the last line, {line:?}: {e})"))
                        .unwrap_or_default();
                    return Err(InstrumentError::Protocol {
                        device: self.device.clone(),
                        reason: format!("{heard} bytes came in {timeout:?} but no GAUGE/1 status line{last}: a wrong baud rate (the firmware sends 115200 8N1; telemetry.baud is {}), noise, or another device on this port", self.baud),
                    });
                }
                return Err(InstrumentError::Timeout {
                    device: self.device.clone(),
                    what: match &self.absent {
                        Some(why) => format!(
                            "a telemetry status line (the port {why} and was not back in time)"
                        ),
                        None => "a telemetry status line".into(),
                    },
                    timeout,
                });
            }
        }
    }

    fn describe(&self) -> String {
        format!("telemetry port {}", self.device)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serialport::TTYPort;

    use super::*;

    fn line(up: u32) -> String {
        format!("GAUGE/1 up={up} temp=90.0 src=bcast pw=1455 cr3=0x00000004 boots=7 fs=0\r\n")
    }

    /// A VCP that leaves (its pseudo-terminal hung up, its by-id link removed) and comes back
    /// under the same name, as a NUCLEO's does across a power cut: the port is reopened.
    #[test]
    fn a_port_that_vanishes_is_reopened_when_it_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir
            .path()
            .join("usb-STMicroelectronics_STLINK-V3_TEST-if02");
        let (mut first, first_slave) = TTYPort::pair().unwrap();
        std::os::unix::fs::symlink(first_slave.name().unwrap(), &link).unwrap();
        let mut telemetry = SerialTelemetry::open(link.to_str().unwrap(), 115_200).unwrap();
        drop(first_slave);
        let writer = {
            let link = link.clone();
            std::thread::spawn(move || {
                for up in 0..5 {
                    let _ = first.write_all(line(up).as_bytes());
                    std::thread::sleep(Duration::from_millis(60));
                }
                // Gone: the master hangs up, udev removes the link; back 300 ms later.
                drop(first);
                std::fs::remove_file(&link).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                let (mut second, second_slave) = TTYPort::pair().unwrap();
                std::os::unix::fs::symlink(second_slave.name().unwrap(), &link).unwrap();
                drop(second_slave);
                for up in 1000..1040 {
                    let _ = second.write_all(line(up).as_bytes());
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        let before = telemetry.next_status(Duration::from_secs(2)).unwrap();
        assert!(before.uptime_ms < 1000);
        std::thread::sleep(Duration::from_millis(400));
        let after = telemetry
            .next_status(Duration::from_secs(3))
            .expect("a status line from the port that came back");
        assert!(after.uptime_ms >= 1000, "line from the new port: {after:?}");
        writer.join().unwrap();
    }

    /// A port that never pauses and never sends a status line (a wrong device, a console in
    /// a loop): the wait ends at its timeout instead of draining for ever.
    #[test]
    fn a_port_that_never_stops_talking_times_out() {
        let talker = crate::drivers::serial::fake::EndlessTalker::start(&[b'x'; 256]);
        let (tx, rx) = std::sync::mpsc::channel();
        let path = talker.path.clone();
        std::thread::spawn(move || {
            let mut telemetry = SerialTelemetry::open(&path, 115_200).unwrap();
            let started = Instant::now();
            let r = telemetry.next_status(Duration::from_millis(500));
            let _ = tx.send((r.map(|_| ()).map_err(|e| e.to_string()), started.elapsed()));
        });
        let outcome = rx.recv_timeout(Duration::from_secs(10));
        drop(talker);
        let (result, took) = outcome.expect("next_status returned (it drained for ever before)");
        assert!(result.is_err(), "{result:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }

    #[test]
    fn a_port_that_never_appears_times_out_saying_so() {
        let mut telemetry =
            SerialTelemetry::open("/dev/serial/by-id/no-such-vcp", 115_200).unwrap();
        let e = telemetry
            .next_status(Duration::from_millis(200))
            .unwrap_err();
        assert!(
            e.to_string().contains("not present when the rig started"),
            "{e}"
        );
    }
}
