//! A CH340 USB-serial converter (WCH, 1a86:7523), the chip on an LCUS-1 relay board: one
//! vendor interface (bulk 0x02 OUT, 0x82 IN, interrupt 0x81 IN) and the vendor requests the
//! kernel's ch341 driver sends: read version (0x5F), serial init (0xA1), write register (0x9A,
//! the baud divisor and prescaler at 0x1312, the line control at 0x2518), read register (0x95)
//! and modem control (0xA4). The baud rate the host programs is decoded from the divisor
//! registers and must match the relay MCU's UART.

use std::sync::Arc;

use crate::device::{Function, InPipe, Setup, Stall};

use super::serial_bridge::SerialBridge;

pub const BULK_OUT: u8 = 0x02;
pub const BULK_IN: u8 = 0x82;
pub const INTERRUPT_IN: u8 = 0x81;

const READ_VERSION: u8 = 0x5f;
const READ_REGISTER: u8 = 0x95;
const WRITE_REGISTER: u8 = 0x9a;
const SERIAL_INIT: u8 = 0xa1;
const MODEM_CONTROL: u8 = 0xa4;
/// The divisor (high byte) and prescaler (low byte) registers, written as one pair.
const DIVISOR_PRESCALER: u16 = 0x1312;
/// A chip version above 0x27 (the driver then sets bit 7 of the prescaler byte).
const VERSION: u8 = 0x31;
const CLOCK_HZ: u64 = 48_000_000;

/// The baud rate a divisor/prescaler pair gives: 48 MHz / (2^(12 - 3*ps - fact) * (256 - d)).
pub fn baud_of(pair: u16) -> Option<u32> {
    let [prescaler, divisor] = pair.to_le_bytes();
    let ps = u32::from(prescaler & 0x03);
    let fact = u32::from(prescaler >> 2 & 1);
    let div = 256 - u64::from(divisor);
    let shift = 12u32.checked_sub(3 * ps + fact)?;
    let rate = CLOCK_HZ / ((1u64 << shift) * div.max(1));
    u32::try_from(rate).ok()
}

pub struct Ch340 {
    bridge: SerialBridge,
    interrupt: Arc<InPipe>,
}

impl Ch340 {
    pub fn new(bridge: SerialBridge) -> Self {
        Self {
            bridge,
            interrupt: Arc::new(InPipe::new(crate::device::Framing::Transfers)),
        }
    }
}

impl Function for Ch340 {
    fn control(&self, setup: &Setup, _data: &[u8]) -> Result<Vec<u8>, Stall> {
        if setup.kind() != 2 {
            return Err(Stall);
        }
        match (setup.is_in(), setup.request) {
            (true, READ_VERSION) => Ok(vec![VERSION, 0x00]),
            // Status, line control, break: all read back as idle lines.
            (true, READ_REGISTER) => Ok(vec![0x00; usize::from(setup.length.min(2))]),
            (false, WRITE_REGISTER) => {
                if setup.value == DIVISOR_PRESCALER {
                    if let Some(baud) = baud_of(setup.index) {
                        self.bridge.set_host_baud(baud);
                    }
                }
                Ok(Vec::new())
            }
            (false, SERIAL_INIT | MODEM_CONTROL) => Ok(Vec::new()),
            // Other vendor writes (newer drivers' extras) are taken and ignored.
            (false, _) => Ok(Vec::new()),
            (true, _) => Err(Stall),
        }
    }

    fn out(&self, endpoint: u8, data: Vec<u8>) -> Result<(), Stall> {
        if endpoint != BULK_OUT {
            return Err(Stall);
        }
        self.bridge.from_host(data);
        Ok(())
    }

    fn in_pipe(&self, endpoint: u8) -> Option<Arc<InPipe>> {
        match endpoint {
            BULK_IN => Some(self.bridge.pipe()),
            INTERRUPT_IN => Some(self.interrupt.clone()),
            _ => None,
        }
    }

    fn attached(&self) {
        self.bridge.set_host_baud(0);
        self.bridge.set_attached(true);
    }

    fn detached(&self) {
        self.bridge.set_attached(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_divisors_the_driver_writes() {
        // ps 2, fact 0 -> 48 MHz / 64 = 750 kHz; (256 - 178) = 78 -> 9615 baud.
        assert_eq!(baud_of(u16::from_le_bytes([0x82, 178])), Some(9615));
        // ps 3, fact 1 -> 48 MHz / 4 = 12 MHz; (256 - 152) = 104 -> 115384 baud.
        assert_eq!(baud_of(u16::from_le_bytes([0x87, 152])), Some(115_384));
    }
}
