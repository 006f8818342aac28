//! USB descriptors (USB 2.0 chapter 9, CDC 1.2 for the ACM functional descriptors), built as
//! the bytes a device returns to GET_DESCRIPTOR.

/// Descriptor types.
pub const DEVICE: u8 = 1;
pub const CONFIGURATION: u8 = 2;
pub const STRING: u8 = 3;
pub const INTERFACE: u8 = 4;
pub const ENDPOINT: u8 = 5;
pub const DEVICE_QUALIFIER: u8 = 6;
pub const INTERFACE_ASSOCIATION: u8 = 11;
const CS_INTERFACE: u8 = 0x24;

/// Endpoint transfer types (bmAttributes).
pub const BULK: u8 = 2;
pub const INTERRUPT: u8 = 3;

/// The interface triple a USB/IP device record lists.
pub type InterfaceClass = (u8, u8, u8);

/// One configuration's descriptor set, built interface by interface.
#[derive(Clone, Debug, Default)]
pub struct Configuration {
    body: Vec<u8>,
    interfaces: Vec<InterfaceClass>,
    /// bMaxPower in 2 mA units.
    max_power: u8,
}

impl Configuration {
    pub fn new(max_power_ma: u16) -> Self {
        Self {
            body: Vec::new(),
            interfaces: Vec::new(),
            max_power: (max_power_ma / 2).min(250) as u8,
        }
    }

    /// The next interface (numbered in order) with its endpoints: (address, type, max packet,
    /// interval).
    pub fn interface(
        mut self,
        class: InterfaceClass,
        string_index: u8,
        endpoints: &[(u8, u8, u16, u8)],
    ) -> Self {
        let number = self.interfaces.len() as u8;
        self.body.extend_from_slice(&[
            9,
            INTERFACE,
            number,
            0,
            endpoints.len() as u8,
            class.0,
            class.1,
            class.2,
            string_index,
        ]);
        for &(address, kind, max_packet, interval) in endpoints {
            let [lo, hi] = max_packet.to_le_bytes();
            self.body
                .extend_from_slice(&[7, ENDPOINT, address, kind, lo, hi, interval]);
        }
        self.interfaces.push(class);
        self
    }

    /// An interface association (a function of several interfaces, as CDC-ACM is) starting at
    /// the next interface.
    pub fn association(mut self, count: u8, class: InterfaceClass) -> Self {
        let first = self.interfaces.len() as u8;
        self.body.extend_from_slice(&[
            8,
            INTERFACE_ASSOCIATION,
            first,
            count,
            class.0,
            class.1,
            class.2,
            0,
        ]);
        self
    }

    /// A CDC-ACM function: its communication interface (notification endpoint `notify`) and
    /// its data interface (bulk `data_out` / `data_in`), with the functional descriptors
    /// cdc_acm reads (header, call management, ACM with line coding and serial state, union).
    pub fn cdc_acm(
        self,
        notify: u8,
        data_out: u8,
        data_in: u8,
        bulk_max_packet: u16,
        string_index: u8,
    ) -> Self {
        let comm = self.interfaces.len() as u8;
        let mut s = self.association(2, (2, 2, 1));
        s.body
            .extend_from_slice(&[9, INTERFACE, comm, 0, 1, 2, 2, 1, string_index]);
        // Header (CDC 1.10), call management (data interface comm + 1), ACM (line coding,
        // serial state, break), union (comm controls comm + 1).
        s.body
            .extend_from_slice(&[5, CS_INTERFACE, 0x00, 0x10, 0x01]);
        s.body
            .extend_from_slice(&[5, CS_INTERFACE, 0x01, 0x00, comm + 1]);
        s.body.extend_from_slice(&[4, CS_INTERFACE, 0x02, 0x06]);
        s.body
            .extend_from_slice(&[5, CS_INTERFACE, 0x06, comm, comm + 1]);
        s.body
            .extend_from_slice(&[7, ENDPOINT, notify, INTERRUPT, 16, 0, 16]);
        s.interfaces.push((2, 2, 1));
        let [lo, hi] = bulk_max_packet.to_le_bytes();
        s.body
            .extend_from_slice(&[9, INTERFACE, comm + 1, 0, 2, 0x0a, 0, 0, 0]);
        s.body
            .extend_from_slice(&[7, ENDPOINT, data_out, BULK, lo, hi, 0]);
        s.body
            .extend_from_slice(&[7, ENDPOINT, data_in, BULK, lo, hi, 0]);
        s.interfaces.push((0x0a, 0, 0));
        s
    }

    pub fn interfaces(&self) -> &[InterfaceClass] {
        &self.interfaces
    }

    /// The whole descriptor set: the configuration descriptor, then every interface's.
    pub fn bytes(&self) -> Vec<u8> {
        let total = (9 + self.body.len()) as u16;
        let [lo, hi] = total.to_le_bytes();
        let mut out = vec![
            9,
            CONFIGURATION,
            lo,
            hi,
            self.interfaces.len() as u8,
            1,
            0,
            0x80,
            self.max_power,
        ];
        out.extend_from_slice(&self.body);
        out
    }
}

/// A string descriptor (UTF-16LE); index 0 is the language list.
pub fn string(text: &str) -> Vec<u8> {
    let mut out = vec![0, STRING];
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out[0] = out.len().min(255) as u8;
    out.truncate(255);
    out
}

/// US English, the only language.
pub fn languages() -> Vec<u8> {
    vec![4, STRING, 0x09, 0x04]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks a descriptor set as the kernel's parser does: each length byte must land on the
    /// next descriptor and the total must match.
    fn walk(bytes: &[u8]) -> Vec<u8> {
        let total = u16::from_le_bytes([bytes[2], bytes[3]]) as usize;
        assert_eq!(total, bytes.len());
        let mut kinds = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len = bytes[at] as usize;
            assert!(len >= 2 && at + len <= bytes.len(), "bad length at {at}");
            kinds.push(bytes[at + 1]);
            at += len;
        }
        kinds
    }

    #[test]
    fn a_composite_with_cdc_acm_parses() {
        let c = Configuration::new(300)
            .interface(
                (0xff, 0xff, 0xff),
                4,
                &[(0x01, BULK, 512, 0), (0x81, BULK, 512, 0)],
            )
            .cdc_acm(0x83, 0x04, 0x84, 512, 5);
        let bytes = c.bytes();
        assert_eq!(bytes[4], 3, "three interfaces");
        assert_eq!(bytes[8], 150);
        let kinds = walk(&bytes);
        assert_eq!(kinds.iter().filter(|&&k| k == ENDPOINT).count(), 5);
        assert_eq!(
            kinds
                .iter()
                .filter(|&&k| k == INTERFACE_ASSOCIATION)
                .count(),
            1
        );
        assert_eq!(c.interfaces()[2], (0x0a, 0, 0));
    }

    #[test]
    fn strings_are_utf16() {
        assert_eq!(string("ST"), vec![6, STRING, b'S', 0, b'T', 0]);
    }
}
