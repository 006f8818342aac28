//! Korad KA3005P bench supply (and its clones sold as Tenma 72-2540, Velleman PS3005D,
//! RND 320-KA3005P) over its USB serial port: 9600 8N1, ASCII commands with no terminator,
//! so commands are separated by a pause: `*IDN?`, `VSET1:5.00`, `OUT1`, `OUT0`.

use std::time::Duration;

use serialport::SerialPort;

use super::{drain, read_answer, send, shown, IDN_TIMEOUT};
use crate::drivers::serial;
use crate::{InstrumentError, InstrumentResult, PowerSwitch};

pub const DEFAULT_BAUD: u32 = 9600;
/// The supply takes a command as complete when the line goes quiet: wait this long after each.
pub const COMMAND_GAP: Duration = Duration::from_millis(60);
/// Identity fragments of the Korad family (upper case).
pub const KNOWN_IDENTITIES: &[&str] = &[
    "KORAD", "KA3005", "KA3305", "KA6003", "KA6005", "TENMA", "VELLEMAN", "RND 320",
];

/// Whether an `*IDN?` answer names a supply that speaks the Korad protocol.
pub fn looks_like_korad(idn: &str) -> bool {
    let upper = idn.to_ascii_uppercase();
    KNOWN_IDENTITIES.iter().any(|k| upper.contains(k))
}

/// The identity in a Korad's answer to `*IDN?` (no terminator: the answer ends when the line
/// goes quiet): the trimmed text when it names the family, else the reason for the error.
pub fn parse_idn_answer(answer: &[u8]) -> Result<String, String> {
    let identity = String::from_utf8_lossy(answer).trim().to_string();
    if !looks_like_korad(&identity) {
        return Err(format!(
            "answered {} to *IDN?, which is not a Korad KA3005P or a clone (expected one of {}): check power.port and power.switch",
            shown(answer),
            KNOWN_IDENTITIES.join(", ")
        ));
    }
    Ok(identity)
}

/// The `VSET1` command for `volts` (two decimals, as the front panel shows).
pub fn vset(volts: f64) -> String {
    format!("VSET1:{volts:.2}")
}

pub struct Ka3005p {
    port: Box<dyn SerialPort>,
    device: String,
    /// What the supply answered to `*IDN?`.
    pub identity: String,
    voltage: Option<f64>,
}

impl Ka3005p {
    /// Opens the supply, checks its identity and sets `voltage` if given (output unchanged).
    pub fn open(path: &str, baud: u32, voltage: Option<f64>) -> InstrumentResult<Self> {
        let mut port = serial::open(path, baud)?;
        drain(port.as_mut(), path)?;
        send(port.as_mut(), path, b"*IDN?")?;
        let answer = read_answer(
            port.as_mut(),
            path,
            &format!("*IDN? (a Korad KA3005P at {baud} baud answers e.g. \"KORADKA3005PV2.0\"; is it switched on and is this its port?)"),
            IDN_TIMEOUT,
            Duration::from_millis(50),
            |b| b.len() >= 128,
        )?;
        let identity = parse_idn_answer(&answer).map_err(|reason| InstrumentError::Protocol {
            device: path.to_string(),
            reason,
        })?;
        let mut supply = Self {
            port,
            device: path.to_string(),
            identity,
            voltage,
        };
        std::thread::sleep(COMMAND_GAP);
        if let Some(v) = voltage {
            supply.command(&vset(v))?;
        }
        Ok(supply)
    }

    fn command(&mut self, text: &str) -> InstrumentResult<()> {
        send(self.port.as_mut(), &self.device, text.as_bytes())?;
        std::thread::sleep(COMMAND_GAP);
        Ok(())
    }
}

impl PowerSwitch for Ka3005p {
    fn set_power(&mut self, on: bool) -> InstrumentResult<()> {
        self.command(if on { "OUT1" } else { "OUT0" })
    }

    fn describe(&self) -> String {
        format!(
            "Korad KA3005P {:?} at {}{}",
            self.identity,
            self.device,
            self.voltage
                .map(|v| format!(", {v:.2} V"))
                .unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_family_and_formats_vset() {
        assert!(looks_like_korad("KORADKA3005PV2.0"));
        assert!(looks_like_korad("TENMA 72-2540 V2.1"));
        assert!(!looks_like_korad("RIGOL TECHNOLOGIES,DP832,x,1"));
        assert_eq!(vset(5.0), "VSET1:5.00");
        assert_eq!(vset(12.345), "VSET1:12.35");
    }
}
