//! The firmware's status lines on the ST-LINK virtual COM port.

use std::time::{Duration, Instant};

use gauge_logic::telemetry::{ParseError, StatusLine};
use serialport::SerialPort;

use super::serial::{self, read_some};
use crate::{InstrumentError, InstrumentResult, TelemetryPort};

pub struct SerialTelemetry {
    port: Box<dyn SerialPort>,
    device: String,
    pending: Vec<u8>,
    /// Lines that did not parse, for diagnosis.
    pub rejected: Vec<(String, ParseError)>,
}

impl SerialTelemetry {
    pub fn open(path: &str, baud: u32) -> InstrumentResult<Self> {
        Ok(Self {
            port: serial::open(path, baud)?,
            device: path.to_string(),
            pending: Vec::new(),
            rejected: Vec::new(),
        })
    }
}

impl TelemetryPort for SerialTelemetry {
    fn next_status(&mut self, timeout: Duration) -> InstrumentResult<StatusLine> {
        // Only lines that start after this call: drop what is buffered and any partial line.
        let mut buf = [0u8; 1024];
        while read_some(self.port.as_mut(), &mut buf, &self.device)? > 0 {}
        self.pending.clear();
        let mut synced = false;
        let deadline = Instant::now() + timeout;
        loop {
            let n = read_some(self.port.as_mut(), &mut buf, &self.device)?;
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
                return Err(InstrumentError::Timeout {
                    device: self.device.clone(),
                    what: "a telemetry status line".into(),
                    timeout,
                });
            }
        }
    }

    fn describe(&self) -> String {
        format!("telemetry port {}", self.device)
    }
}
