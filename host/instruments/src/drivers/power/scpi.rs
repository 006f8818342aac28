//! A SCPI bench supply over a serial port: commands end with `\n`; `*IDN?` answers the
//! IEEE 488.2 identity (`maker,model,serial,firmware`); `OUTPut ON|OFF` switches the output
//! and `VOLTage <v>` sets the voltage.

use std::time::Duration;

use serialport::SerialPort;

use super::{drain, read_answer, send, shown, IDN_TIMEOUT};
use crate::drivers::serial;
use crate::{InstrumentError, InstrumentResult, PowerSwitch};

pub const DEFAULT_BAUD: u32 = 9600;

/// Whether an `*IDN?` answer has the IEEE 488.2 shape: four comma-separated printable fields,
/// a maker and a model at least.
pub fn looks_like_idn(idn: &str) -> bool {
    let fields: Vec<&str> = idn.split(',').collect();
    fields.len() == 4
        && !fields[0].trim().is_empty()
        && !fields[1].trim().is_empty()
        && idn.chars().all(|c| c.is_ascii_graphic() || c == ' ')
}

/// The identity in a SCPI supply's answer to `*IDN?`: the trimmed line when the answer is one
/// whole identity line (ending in `\n`), else the reason for the error.
pub fn parse_idn_answer(answer: &[u8]) -> Result<String, String> {
    let identity = String::from_utf8_lossy(answer).trim().to_string();
    if !answer.ends_with(b"\n") || !looks_like_idn(&identity) {
        return Err(format!(
            "answered {} to *IDN?, not a SCPI identity line (\"maker,model,serial,firmware\\n\"): check power.port, power.baud and power.switch",
            shown(answer)
        ));
    }
    Ok(identity)
}

pub struct ScpiSupply {
    port: Box<dyn SerialPort>,
    device: String,
    /// What the supply answered to `*IDN?`.
    pub identity: String,
    voltage: Option<f64>,
}

impl ScpiSupply {
    /// Opens the supply, checks its identity and sets `voltage` if given (output unchanged).
    pub fn open(path: &str, baud: u32, voltage: Option<f64>) -> InstrumentResult<Self> {
        let mut port = serial::open(path, baud)?;
        drain(port.as_mut(), path)?;
        send(port.as_mut(), path, b"*IDN?\n")?;
        let answer = read_answer(
            port.as_mut(),
            path,
            &format!("*IDN? (a SCPI supply at {baud} baud answers \"maker,model,serial,firmware\"; is it switched on, in remote mode, and is this its port?)"),
            IDN_TIMEOUT,
            Duration::from_millis(200),
            |b| b.ends_with(b"\n"),
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
        if let Some(v) = voltage {
            supply.command(&format!("VOLTage {v:.3}"))?;
        }
        Ok(supply)
    }

    fn command(&mut self, text: &str) -> InstrumentResult<()> {
        send(
            self.port.as_mut(),
            &self.device,
            format!("{text}\n").as_bytes(),
        )
    }
}

impl PowerSwitch for ScpiSupply {
    fn set_power(&mut self, on: bool) -> InstrumentResult<()> {
        self.command(if on { "OUTPut ON" } else { "OUTPut OFF" })
    }

    fn describe(&self) -> String {
        format!(
            "SCPI supply {:?} at {}{}",
            self.identity,
            self.device,
            self.voltage
                .map(|v| format!(", {v:.3} V"))
                .unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn idn_shape() {
        assert!(super::looks_like_idn(
            "RIGOL TECHNOLOGIES,DP832,DP8C1234,00.01.14"
        ));
        assert!(!super::looks_like_idn("KORADKA3005PV2.0"));
        assert!(!super::looks_like_idn(",,,"));
    }
}
