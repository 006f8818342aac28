//! A classic CAN frame, independent of any driver's frame type.

/// A classic (non-FD) CAN data frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CanFrame {
    /// 11-bit or 29-bit identifier.
    pub id: u32,
    pub extended: bool,
    /// Data length code, 0..=8.
    pub len: u8,
    pub data: [u8; 8],
}

impl CanFrame {
    /// A standard-ID data frame; `None` when the ID or the length does not fit.
    pub fn standard(id: u16, data: &[u8]) -> Option<Self> {
        if id > 0x7FF || data.len() > 8 {
            return None;
        }
        let mut buf = [0; 8];
        buf[..data.len()].copy_from_slice(data);
        Some(Self {
            id: u32::from(id),
            extended: false,
            len: data.len() as u8,
            data: buf,
        })
    }

    /// An extended-ID data frame; `None` when the ID or the length does not fit.
    pub fn extended(id: u32, data: &[u8]) -> Option<Self> {
        if id > 0x1FFF_FFFF || data.len() > 8 {
            return None;
        }
        let mut buf = [0; 8];
        buf[..data.len()].copy_from_slice(data);
        Some(Self {
            id,
            extended: true,
            len: data.len() as u8,
            data: buf,
        })
    }

    /// The payload, `len` bytes.
    pub fn payload(&self) -> &[u8] {
        &self.data[..usize::from(self.len.min(8))]
    }
}
