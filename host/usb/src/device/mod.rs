//! A simulated USB device: its identity and descriptors, the standard requests every device
//! answers on endpoint 0, and the function behind it (class and vendor requests, OUT data,
//! IN pipes).

pub mod descriptors;
pub mod pipe;
pub mod request;

use std::sync::Arc;

pub use pipe::{Framing, InPipe};

use descriptors::Configuration;
pub use request::{Setup, Speed};

/// What a bench's `rig list` shows of a device: VID:PID and its strings.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    pub vendor_id: u16,
    pub product_id: u16,
    pub bcd_device: u16,
    /// None: no manufacturer string (udev then names the vendor by its ID, as for a CH340).
    pub manufacturer: Option<String>,
    pub product: String,
    /// None: the device has no serial number string (a CH340).
    pub serial: Option<String>,
}

impl Identity {
    /// The `/dev/serial/by-id` name udev gives interface `interface` of this device's serial
    /// function (`-portN` for a usb-serial converter such as a CH340, none for CDC-ACM).
    pub fn by_id(&self, interface: u8, usb_serial_port: Option<u8>) -> String {
        let clean = |s: &str| {
            s.chars()
                .map(|c| match c {
                    ' ' => '_',
                    '/' => '_',
                    c => c,
                })
                .collect::<String>()
        };
        let serial = match &self.serial {
            Some(s) => format!("_{}", clean(s)),
            None => String::new(),
        };
        let port = usb_serial_port.map_or(String::new(), |p| format!("-port{p}"));
        let vendor = match &self.manufacturer {
            Some(m) => clean(m),
            None => format!("{:04x}", self.vendor_id),
        };
        format!(
            "/dev/serial/by-id/usb-{}_{}{}-if{:02}{}",
            vendor,
            clean(&self.product),
            serial,
            interface,
            port
        )
    }
}

/// A request the device does not support: the endpoint stalls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stall;

/// The device-specific side: what the standard requests do not cover.
pub trait Function: Send + Sync {
    /// A class or vendor request; returns the IN data (empty for OUT requests).
    fn control(&self, setup: &Setup, data: &[u8]) -> Result<Vec<u8>, Stall>;
    /// Data the host sent to an OUT endpoint.
    fn out(&self, endpoint: u8, data: Vec<u8>) -> Result<(), Stall>;
    /// The pipe behind an IN endpoint (address with 0x80).
    fn in_pipe(&self, endpoint: u8) -> Option<Arc<InPipe>>;
    /// The host attached the device (after a plug-in): a freshly powered function.
    fn attached(&self) {}
    /// The host's connection ended (unplugged or detached).
    fn detached(&self) {}
}

/// A device as it is exported.
pub struct UsbDevice {
    pub identity: Identity,
    pub speed: Speed,
    /// bDeviceClass, SubClass, Protocol (0xEF/2/1 for a composite with IADs).
    pub class: (u8, u8, u8),
    pub configuration: Configuration,
    /// Strings from index 4 on (1-3: manufacturer, product, serial).
    pub extra_strings: Vec<String>,
    pub function: Arc<dyn Function>,
}

const MANUFACTURER: u8 = 1;
const PRODUCT: u8 = 2;
const SERIAL: u8 = 3;
/// The first index of [`UsbDevice::extra_strings`].
pub const FIRST_EXTRA_STRING: u8 = 4;

impl UsbDevice {
    fn max_packet0(&self) -> u8 {
        64
    }

    pub fn device_descriptor(&self) -> Vec<u8> {
        let id = &self.identity;
        let mut d = vec![18, descriptors::DEVICE, 0x00, 0x02];
        d.extend_from_slice(&[self.class.0, self.class.1, self.class.2, self.max_packet0()]);
        d.extend_from_slice(&id.vendor_id.to_le_bytes());
        d.extend_from_slice(&id.product_id.to_le_bytes());
        d.extend_from_slice(&id.bcd_device.to_le_bytes());
        d.extend_from_slice(&[
            if id.manufacturer.is_some() {
                MANUFACTURER
            } else {
                0
            },
            PRODUCT,
            if id.serial.is_some() { SERIAL } else { 0 },
            1,
        ]);
        d
    }

    fn string(&self, index: u8) -> Option<Vec<u8>> {
        let id = &self.identity;
        match index {
            0 => Some(descriptors::languages()),
            MANUFACTURER => id.manufacturer.as_deref().map(descriptors::string),
            PRODUCT => Some(descriptors::string(&id.product)),
            SERIAL => id.serial.as_deref().map(descriptors::string),
            i => self
                .extra_strings
                .get(usize::from(i - FIRST_EXTRA_STRING))
                .map(|s| descriptors::string(s)),
        }
    }

    fn get_descriptor(&self, setup: &Setup) -> Result<Vec<u8>, Stall> {
        let [index, kind] = setup.value.to_le_bytes();
        let bytes = match kind {
            descriptors::DEVICE => Some(self.device_descriptor()),
            descriptors::CONFIGURATION if index == 0 => Some(self.configuration.bytes()),
            descriptors::STRING => self.string(index),
            // A high-speed device tells what it would be at full speed.
            descriptors::DEVICE_QUALIFIER if self.speed == Speed::High => {
                let d = self.device_descriptor();
                Some(vec![
                    10,
                    descriptors::DEVICE_QUALIFIER,
                    0x00,
                    0x02,
                    d[4],
                    d[5],
                    d[6],
                    d[7],
                    1,
                    0,
                ])
            }
            _ => None,
        };
        bytes.ok_or(Stall)
    }

    /// Answers a control transfer on endpoint 0.
    pub fn control(&self, setup: &Setup, data: &[u8]) -> Result<Vec<u8>, Stall> {
        if setup.kind() != 0 {
            return self.function.control(setup, data);
        }
        let mut reply = match (setup.request_type, setup.request) {
            (0x80, 6) => self.get_descriptor(setup)?,
            // SET_CONFIGURATION, SET_INTERFACE (alternate 0 only), CLEAR/SET_FEATURE.
            (0x00, 9) if setup.value <= 1 => Vec::new(),
            (0x01, 11) if setup.value == 0 => Vec::new(),
            (0x00..=0x02, 1 | 3) => Vec::new(),
            (0x80, 8) => vec![1],
            (0x81, 10) => vec![0],
            (0x80..=0x82, 0) => vec![0, 0],
            _ => return Err(Stall),
        };
        reply.truncate(usize::from(setup.length));
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_id_names_follow_udev() {
        let stlink = Identity {
            vendor_id: 0x0483,
            product_id: 0x374e,
            bcd_device: 0x0100,
            manufacturer: Some("STMicroelectronics".into()),
            product: "STLINK-V3".into(),
            serial: Some("0030003A3433510237363934".into()),
        };
        assert_eq!(
            stlink.by_id(2, None),
            "/dev/serial/by-id/usb-STMicroelectronics_STLINK-V3_0030003A3433510237363934-if02"
        );
        let ch340 = Identity {
            vendor_id: 0x1a86,
            product_id: 0x7523,
            bcd_device: 0x0263,
            manufacturer: None,
            product: "USB Serial".into(),
            serial: None,
        };
        assert_eq!(
            ch340.by_id(0, Some(0)),
            "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0"
        );
    }
}
