//! Flash bank 2 model with H7 semantics: 32-byte flash-word programming under PG, program-once
//! words, sector/bank erase, SR2/CCR2, on the non-volatile [`FlashModel`].

use futures::executor::block_on;
use rig_sim::flash::FlashModel;
use stm32h755::flash::{
    BANK2, BANK2_OFFSETS, BANK2_SIZE, FLASH_BASE, FLASH_CCR2, FLASH_CR2, FLASH_SR2, FLASH_WORD,
    SECTOR,
};

/// Bank 2's control, status and clear registers, for [`crate::soc`].
pub const FLASH_CR2_ADDR: u32 = FLASH_CR2;
pub const FLASH_SR2_ADDR: u32 = FLASH_SR2;
pub const FLASH_CCR2_ADDR: u32 = FLASH_CCR2;

const CR_PG: u32 = 1 << 1;
const CR_SER: u32 = 1 << 2;
const CR_BER: u32 = 1 << 3;
const CR_START: u32 = 1 << 7;
const SR_EOP: u32 = 1 << 16;
const SR_WRPERR: u32 = 1 << 17;
const SR_PGSERR: u32 = 1 << 18;
const SR_INCERR: u32 = 1 << 21;
const SR_OPERR: u32 = 1 << 22;

/// Bank 2 of the flash: what the firmware's storage programs and erases.
#[derive(Clone, Debug)]
pub struct FlashBank2 {
    /// The bank's contents (non-volatile: the board keeps it across power cycles).
    pub flash: FlashModel,
    sr: u32,
    /// The 32-byte write buffer being filled: (flash word address, bytes, bytes written).
    buffer: Option<(u32, [u8; 32], u32)>,
    /// The planned power cut hit during a program or erase.
    pub power_cut: bool,
}

impl FlashBank2 {
    pub fn new(flash: FlashModel) -> Self {
        Self {
            flash,
            sr: 0,
            buffer: None,
            power_cut: false,
        }
    }

    pub fn handles(addr: u32) -> bool {
        (BANK2..BANK2 + BANK2_SIZE).contains(&addr)
    }

    /// A byte of bank 2 as read through the bus.
    pub fn read(&self, addr: u32, size: usize) -> u32 {
        let off = addr - FLASH_BASE;
        match self.flash.read_at(off, size) {
            Ok(b) => b
                .iter()
                .rev()
                .fold(0u32, |acc, byte| (acc << 8) | u32::from(*byte)),
            Err(_) => u32::MAX,
        }
    }

    pub fn sr(&self) -> u32 {
        self.sr
    }

    /// A write into bank 2's address space: a program step when PG is set.
    pub fn write_data(&mut self, addr: u32, size: usize, value: u32, cr2: u32, unlocked: bool) {
        if cr2 & CR_PG == 0 || !unlocked {
            self.sr |= SR_PGSERR;
            return;
        }
        let word_addr = addr & !(FLASH_WORD - 1);
        let (wa, mut bytes, mut filled) = match self.buffer.take() {
            Some((wa, b, f)) if wa == word_addr => (wa, b, f),
            Some(_) => {
                // A write to another flash word before this one was complete.
                self.sr |= SR_INCERR;
                return;
            }
            None => (word_addr, [0xFF; 32], 0),
        };
        for k in 0..size.min(4) {
            let at = (addr - wa) as usize + k;
            if at < 32 {
                bytes[at] = (value >> (8 * k)) as u8;
                filled |= 1 << at;
            }
        }
        if filled != u32::MAX {
            self.buffer = Some((wa, bytes, filled));
            return;
        }
        match block_on(embedded_storage_async::nor_flash::NorFlash::write(
            &mut self.flash,
            wa - FLASH_BASE,
            &bytes,
        )) {
            Ok(()) => self.sr |= SR_EOP,
            Err(rig_sim::flash::FlashError::PowerLost) => self.power_cut = true,
            // A word programmed twice: its ECC no longer matches (an error on the chip, too).
            Err(_) => self.sr |= SR_OPERR,
        }
    }

    /// After a write to FLASH_CR2 (already stored): START with SER or BER erases.
    pub fn control(&mut self, cr2: u32, unlocked: bool) -> bool {
        if cr2 & CR_START == 0 {
            return false;
        }
        if !unlocked {
            self.sr |= SR_WRPERR;
            return true;
        }
        let (from, to) = if cr2 & CR_BER != 0 {
            (BANK2_OFFSETS.start, BANK2_OFFSETS.end)
        } else if cr2 & CR_SER != 0 {
            let sector = (cr2 >> 8) & 7;
            let from = BANK2_OFFSETS.start + sector * SECTOR;
            (from, from + SECTOR)
        } else {
            self.sr |= SR_PGSERR;
            return true;
        };
        match block_on(embedded_storage_async::nor_flash::NorFlash::erase(
            &mut self.flash,
            from,
            to,
        )) {
            Ok(()) => self.sr |= SR_EOP,
            Err(rig_sim::flash::FlashError::PowerLost) => self.power_cut = true,
            Err(_) => self.sr |= SR_PGSERR,
        }
        true
    }

    /// FLASH_CCR2: clears the flags written 1.
    pub fn clear(&mut self, value: u32) {
        self.sr &= !(value & 0x1FFF_0000);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::gpio_bsrr;

    #[test]
    fn bank2_program_once_erase_and_cut() {
        let mut b = FlashBank2::new(FlashModel::new(BANK2_OFFSETS));
        let at = 0x081C_0000;
        b.write_data(at, 4, 0x1234_5678, 0, true);
        assert_ne!(b.sr() & SR_PGSERR, 0, "no PG");
        b.clear(u32::MAX);
        for k in 0..8 {
            b.write_data(at + 4 * k, 4, k, CR_PG, true);
        }
        assert_ne!(b.sr() & SR_EOP, 0);
        assert_eq!(b.read(at + 4, 4), 1);
        for k in 0..8 {
            b.write_data(at + 4 * k, 4, 0, CR_PG, true);
        }
        assert_ne!(b.sr() & SR_OPERR, 0, "programmed twice");
        assert!(b.control(CR_SER | (6 << 8) | CR_START, true));
        assert_eq!(b.read(at, 4), u32::MAX);
        b.flash.cut_power_after(Some(40));
        for k in 0..16 {
            b.write_data(at + 4 * k, 4, 0, CR_PG, true);
        }
        assert!(b.power_cut);
        assert_eq!(gpio_bsrr(0, (1 << 14) | (1 << 30)), 1 << 14);
        assert_eq!(gpio_bsrr(1 << 14, 1 << 30), 0);
    }
}
