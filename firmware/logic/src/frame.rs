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

    /// Bit times this data frame takes on a classic CAN bus, from its start of frame to the
    /// end of the interframe space: the stuff bits its own ID, DLC, data and CRC-15 need
    /// included, so that a bus's load and a frame's arrival time follow what is on the wire.
    pub fn bits_on_wire(&self) -> u32 {
        let mut bits = StuffedBits::default();
        bits.push(false, 1); // SOF
        if self.extended {
            bits.push_value(self.id >> 18, 11);
            bits.push(true, 1); // SRR
            bits.push(true, 1); // IDE
            bits.push_value(self.id & 0x3_FFFF, 18);
            bits.push(false, 3); // RTR, r1, r0
        } else {
            bits.push_value(self.id & 0x7FF, 11);
            bits.push(false, 3); // RTR, IDE, r0
        }
        let len = self.len.min(8);
        bits.push_value(u32::from(len), 4);
        for &byte in self.payload() {
            bits.push_value(u32::from(byte), 8);
        }
        let crc = bits.crc;
        bits.push_value(u32::from(crc), 15);
        // CRC delimiter, ACK slot and delimiter, EOF, intermission: fixed form, never stuffed.
        bits.count + 1 + 2 + 7 + 3
    }
}

/// The stuffed part of a frame (SOF to CRC), bit by bit: its length with stuff bits and the
/// CRC-15 (x^15 + x^14 + x^10 + x^8 + x^7 + x^4 + x^3 + 1) of the bits before the CRC.
#[derive(Default)]
struct StuffedBits {
    count: u32,
    last: bool,
    run: u32,
    crc: u16,
}

impl StuffedBits {
    fn push_value(&mut self, value: u32, width: u32) {
        for i in (0..width).rev() {
            self.push(value >> i & 1 == 1, 1);
        }
    }

    fn push(&mut self, bit: bool, times: u32) {
        for _ in 0..times {
            let feedback = bit ^ (self.crc >> 14 & 1 == 1);
            self.crc = (self.crc << 1) & 0x7FFF;
            if feedback {
                self.crc ^= 0x4599;
            }
            self.stuff(bit);
        }
    }

    /// Counts a bit and, after five equal ones, the opposite bit the transmitter inserts
    /// (which starts the next run).
    fn stuff(&mut self, bit: bool) {
        self.count += 1;
        if self.count > 1 && bit == self.last {
            self.run += 1;
        } else {
            self.last = bit;
            self.run = 1;
        }
        if self.run == 5 {
            self.count += 1;
            self.last = !bit;
            self.run = 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_all_zero_frame_has_a_stuff_bit_after_every_five_zeros() {
        // SOF, ID 0, RTR/IDE/r0, DLC 0 and a CRC of 0: 34 zeros, stuffed after each 5th.
        let f = CanFrame::standard(0, &[]).expect("ID 0 fits");
        assert_eq!(f.bits_on_wire(), 34 + 6 + 13);
    }

    #[test]
    fn stuffing_stays_within_the_classic_bounds() {
        // Unstuffed: 47 + 8n bits (11-bit ID), 67 + 8n (29-bit); stuff bits at most one per
        // four bits after the first of the stuffed part (34 + 8n or 54 + 8n bits).
        for id in (0..0x800u16).step_by(7) {
            for n in 0..=8usize {
                let data: [u8; 8] = core::array::from_fn(|i| (id as u8).wrapping_mul(31) ^ i as u8);
                let f = CanFrame::standard(id, &data[..n]).expect("fits");
                let (plain, stuffed_part) = (47 + 8 * n as u32, 34 + 8 * n as u32);
                let bits = f.bits_on_wire();
                assert!(
                    bits >= plain && bits <= plain + (stuffed_part - 1) / 4,
                    "{id:#x} {n}: {bits}"
                );
                let x = CanFrame::extended(u32::from(id) << 13 | 0x155, &data[..n]).expect("fits");
                let (plain, stuffed_part) = (67 + 8 * n as u32, 54 + 8 * n as u32);
                let bits = x.bits_on_wire();
                assert!(
                    bits >= plain && bits <= plain + (stuffed_part - 1) / 4,
                    "{id:#x} {n}: {bits}"
                );
            }
        }
    }

    #[test]
    fn crc15_matches_the_can_check_value() {
        // The CRC-15/CAN catalogue's check: "123456789" gives 0x059E.
        let mut bits = StuffedBits::default();
        for &b in b"123456789" {
            bits.push_value(u32::from(b), 8);
        }
        assert_eq!(bits.crc, 0x059E);
    }

    #[test]
    fn alternating_bits_need_no_stuffing() {
        // ID 0x555 = 101 0101 0101 after SOF 0: no five equal bits until RTR/IDE/r0 and DLC.
        let f = CanFrame::standard(0x555, &[0x55; 8]).expect("fits");
        let bits = f.bits_on_wire();
        assert!(bits < 47 + 64 + 4, "{bits}");
    }
}
