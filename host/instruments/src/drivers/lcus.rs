//! LCUS USB relays (CH340 serial, 9600 8N1): `A0 <channel> <state> <checksum>`, the same on
//! the one-channel LCUS-1 and the multi-channel LCUS-2/4/8. The relay does not answer, so the
//! only check is that the bytes went out.

/// The relay MCU's UART behind the CH340 (9600 8N1).
pub const BAUD: u32 = 9600;

use std::sync::{Arc, Mutex};

use serialport::SerialPort;

use super::serial::{self, io_error};
use crate::{InstrumentResult, PowerSwitch};

/// The four bytes that switch `channel` on or off.
pub fn command(channel: u8, on: bool) -> [u8; 4] {
    let state = u8::from(on);
    [
        0xA0,
        channel,
        state,
        0xA0u8.wrapping_add(channel).wrapping_add(state),
    ]
}

/// One channel of a relay board; the board's other channels share its port.
pub struct LcusRelay {
    port: Arc<Mutex<Box<dyn SerialPort>>>,
    device: String,
    channel: u8,
}

impl LcusRelay {
    pub fn open(path: &str, channel: u8) -> InstrumentResult<Self> {
        Ok(Self {
            port: Arc::new(Mutex::new(serial::open(path, BAUD)?)),
            device: path.to_string(),
            channel,
        })
    }

    /// Another channel of the same board, through the same port (a serial port is opened
    /// once: serialport locks it against a second open).
    pub fn channel(&self, channel: u8) -> Self {
        Self {
            port: self.port.clone(),
            device: self.device.clone(),
            channel,
        }
    }
}

impl PowerSwitch for LcusRelay {
    fn set_power(&mut self, on: bool) -> InstrumentResult<()> {
        // A panic elsewhere while holding the port leaves it usable: the frame is 4 bytes.
        let mut port = self.port.lock().unwrap_or_else(|e| e.into_inner());
        port.write_all(&command(self.channel, on))
            .map_err(|e| io_error(&self.device, e))?;
        port.flush().map_err(|e| io_error(&self.device, e))
    }

    fn describe(&self) -> String {
        format!("LCUS relay at {}, channel {}", self.device, self.channel)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn documented_bytes() {
        assert_eq!(super::command(1, true), [0xA0, 0x01, 0x01, 0xA2]);
        assert_eq!(super::command(1, false), [0xA0, 0x01, 0x00, 0xA1]);
    }
}
