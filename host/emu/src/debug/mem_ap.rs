//! One MEM-AP (ADIv5.2 chapter C2): CSW, TAR, DRW, the banked data registers BD0-3, CFG, BASE
//! and IDR.

use super::{ApBus, BusFault};

/// CSW.Size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessSize {
    Byte,
    Half,
    Word,
}

impl AccessSize {
    pub fn bytes(self) -> u32 {
        match self {
            Self::Byte => 1,
            Self::Half => 2,
            Self::Word => 4,
        }
    }

    fn from_csw(csw: u32) -> Option<Self> {
        match csw & CSW_SIZE {
            0 => Some(Self::Byte),
            1 => Some(Self::Half),
            2 => Some(Self::Word),
            _ => None,
        }
    }
}

const CSW_SIZE: u32 = 0b111;
const CSW_ADDRINC_SHIFT: u32 = 4;
const CSW_ADDRINC: u32 = 0b11 << CSW_ADDRINC_SHIFT;
/// DeviceEn: the AP's bus can be accessed (read-only).
const CSW_DEVICE_EN: u32 = 1 << 6;
/// Bits a debugger may change: Size, AddrInc, Mode, Prot/HPROT (30:24), DbgSwEnable.
const CSW_WRITABLE: u32 = CSW_SIZE | CSW_ADDRINC | (0xF << 8) | (0x7F << 24) | (1 << 31);
/// AHB-AP CSW after reset: word size, no increment, HPROT data + privileged, DbgSwEnable.
const CSW_RESET: u32 = 0x0300_0002 | (1 << 31);

/// Auto-increment is only guaranteed within a 1 KiB block: TAR[9:0] wraps.
const TAR_WRAP: u32 = 0x3FF;

/// AP register addresses (bank in bits 7:4, as `SELECT.APBANKSEL`).
pub const CSW: u8 = 0x00;
pub const TAR: u8 = 0x04;
pub const DRW: u8 = 0x0C;
pub const BD0: u8 = 0x10;
pub const CFG: u8 = 0xF4;
pub const BASE: u8 = 0xF8;
pub const IDR: u8 = 0xFC;

/// One MEM-AP: its registers; transfers go to the board's bus as AP `number`.
#[derive(Clone, Debug)]
pub struct MemAp {
    pub number: u8,
    idr: u32,
    base: u32,
    csw: u32,
    tar: u32,
}

impl MemAp {
    pub fn new(number: u8, idr: u32, rom_table: u32) -> Self {
        Self {
            number,
            idr,
            // Bit 1: ADIv5 format, bit 0: a debug entry is present.
            base: rom_table | 0b11,
            csw: CSW_RESET,
            tar: 0,
        }
    }

    fn size(&self) -> AccessSize {
        AccessSize::from_csw(self.csw).unwrap_or(AccessSize::Word)
    }

    fn advance(&mut self) {
        if self.csw & CSW_ADDRINC != 0 {
            let next = self.tar.wrapping_add(self.size().bytes()) & TAR_WRAP;
            self.tar = (self.tar & !TAR_WRAP) | next;
        }
    }

    /// Reads AP register `addr` (bank and offset); `None` for a register that does not exist
    /// (reads as zero).
    pub fn read(&mut self, addr: u8, bus: &mut dyn ApBus) -> Result<u32, BusFault> {
        Ok(match addr {
            CSW => self.csw | CSW_DEVICE_EN,
            TAR => self.tar,
            DRW => {
                let size = self.size();
                let lane = (self.tar & 3) * 8;
                let aligned = self.tar & !(size.bytes() - 1);
                let v = bus.read(self.number, aligned, size)?;
                self.advance();
                match size {
                    AccessSize::Word => v,
                    // The data sits in the byte lanes of its address.
                    AccessSize::Half => (v & 0xFFFF) << (lane & 16),
                    AccessSize::Byte => (v & 0xFF) << lane,
                }
            }
            a @ BD0..=0x1C => bus.read(
                self.number,
                (self.tar & !0xF) | u32::from(a - BD0),
                AccessSize::Word,
            )?,
            // Little-endian, 32-bit addresses and data.
            CFG => 0,
            BASE => self.base,
            IDR => self.idr,
            _ => 0,
        })
    }

    pub fn write(&mut self, addr: u8, value: u32, bus: &mut dyn ApBus) -> Result<(), BusFault> {
        match addr {
            CSW => {
                let mut csw = (self.csw & !CSW_WRITABLE) | (value & CSW_WRITABLE);
                if AccessSize::from_csw(csw).is_none() {
                    // An unsupported size (64-bit and up) keeps the previous one.
                    csw = (csw & !CSW_SIZE) | (self.csw & CSW_SIZE);
                }
                self.csw = csw;
            }
            TAR => self.tar = value,
            DRW => {
                let size = self.size();
                let lane = (self.tar & 3) * 8;
                let aligned = self.tar & !(size.bytes() - 1);
                let data = match size {
                    AccessSize::Word => value,
                    AccessSize::Half => (value >> (lane & 16)) & 0xFFFF,
                    AccessSize::Byte => (value >> lane) & 0xFF,
                };
                bus.write(self.number, aligned, size, data)?;
                self.advance();
            }
            a @ BD0..=0x1C => bus.write(
                self.number,
                (self.tar & !0xF) | u32::from(a - BD0),
                AccessSize::Word,
                value,
            )?,
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bus of 4 KiB of words that records each transfer.
    struct Ram {
        words: Vec<u32>,
        log: Vec<(u32, AccessSize)>,
    }

    impl ApBus for Ram {
        fn read(&mut self, _ap: u8, address: u32, size: AccessSize) -> Result<u32, BusFault> {
            self.log.push((address, size));
            let w = self.words[(address as usize / 4) % 1024];
            Ok(match size {
                AccessSize::Word => w,
                AccessSize::Half => (w >> ((address & 2) * 8)) & 0xFFFF,
                AccessSize::Byte => (w >> ((address & 3) * 8)) & 0xFF,
            })
        }
        fn write(
            &mut self,
            _ap: u8,
            address: u32,
            size: AccessSize,
            value: u32,
        ) -> Result<(), BusFault> {
            self.log.push((address, size));
            let i = (address as usize / 4) % 1024;
            let shift = (address & 3) * 8;
            let mask = match size {
                AccessSize::Word => u32::MAX,
                AccessSize::Half => 0xFFFF << shift,
                AccessSize::Byte => 0xFF << shift,
            };
            self.words[i] = (self.words[i] & !mask) | ((value << shift) & mask);
            Ok(())
        }
    }

    fn ram() -> Ram {
        Ram {
            words: (0..1024).map(|i| 0x1000_0000 + i).collect(),
            log: Vec::new(),
        }
    }

    #[test]
    fn drw_auto_increments_and_wraps_within_1k() {
        let mut ap = MemAp::new(0, 0x8477_0001, 0xE00F_E000);
        let mut bus = ram();
        ap.write(CSW, 0x2 | (1 << 4), &mut bus).unwrap();
        ap.write(TAR, 0x2000_03F8, &mut bus).unwrap();
        for _ in 0..3 {
            ap.read(DRW, &mut bus).unwrap();
        }
        let addresses: Vec<u32> = bus.log.iter().map(|(a, _)| *a).collect();
        assert_eq!(addresses, [0x2000_03F8, 0x2000_03FC, 0x2000_0000]);
        assert_eq!(ap.read(TAR, &mut bus).unwrap(), 0x2000_0004);
    }

    #[test]
    fn byte_and_half_transfers_use_their_byte_lanes() {
        let mut ap = MemAp::new(0, 0x8477_0001, 0xE00F_E000);
        let mut bus = ram();
        ap.write(CSW, 0x0, &mut bus).unwrap();
        ap.write(TAR, 0x2000_0007, &mut bus).unwrap();
        ap.write(DRW, 0xAB00_0000, &mut bus).unwrap();
        assert_eq!(bus.words[1], 0xAB00_0001);
        assert_eq!(ap.read(DRW, &mut bus).unwrap(), 0xAB00_0000);
        ap.write(CSW, 0x1, &mut bus).unwrap();
        ap.write(TAR, 0x2000_0006, &mut bus).unwrap();
        assert_eq!(ap.read(DRW, &mut bus).unwrap(), 0xAB00_0000);
        assert_eq!(ap.read(CSW, &mut bus).unwrap() & 0x47, 0x41);
    }

    #[test]
    fn banked_registers_address_the_tar_block_and_unsupported_sizes_are_refused() {
        let mut ap = MemAp::new(2, 0x5477_0002, 0xE00E_0000);
        let mut bus = ram();
        ap.write(TAR, 0x2000_0014, &mut bus).unwrap();
        assert_eq!(ap.read(BD0 + 8, &mut bus).unwrap(), 0x1000_0006);
        ap.write(CSW, 0x3, &mut bus).unwrap();
        assert_eq!(ap.read(CSW, &mut bus).unwrap() & CSW_SIZE, 2);
        assert_eq!(ap.read(BASE, &mut bus).unwrap(), 0xE00E_0003);
        assert_eq!(ap.read(IDR, &mut bus).unwrap(), 0x5477_0002);
    }
}
