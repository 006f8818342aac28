//! What every USB device sees of a transfer: the SETUP packet of a control request, and the
//! bus speed it runs at.

/// Speeds as the kernel numbers them (`enum usb_device_speed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speed {
    Full = 2,
    High = 3,
}

/// The eight bytes of a control transfer's SETUP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    pub request_type: u8,
    pub request: u8,
    pub value: u16,
    pub index: u16,
    pub length: u16,
}

impl Setup {
    pub fn parse(bytes: [u8; 8]) -> Self {
        Self {
            request_type: bytes[0],
            request: bytes[1],
            value: u16::from_le_bytes([bytes[2], bytes[3]]),
            index: u16::from_le_bytes([bytes[4], bytes[5]]),
            length: u16::from_le_bytes([bytes[6], bytes[7]]),
        }
    }

    /// Device to host.
    pub fn is_in(&self) -> bool {
        self.request_type & 0x80 != 0
    }

    /// 0 standard, 1 class, 2 vendor.
    pub fn kind(&self) -> u8 {
        (self.request_type >> 5) & 3
    }

    /// 0 device, 1 interface, 2 endpoint.
    pub fn recipient(&self) -> u8 {
        self.request_type & 0x1f
    }
}
