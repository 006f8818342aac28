//! One bank of the STM32H755's flash with H7 semantics: PG with 32-byte flash words filled
//! through the bank's address space, program-once words (ECC), sector and bank erase to 0xFF,
//! CR/SR/CCR, on the non-volatile [`FlashModel`] (which can cut the power after N bytes).
//!
//! **Time.** A word program and a sector or bank erase take the datasheet's typical time for
//! the parallelism in CR.PSIZE ([`FlashTiming::DATASHEET`]); meanwhile SR shows BSY and QW, and
//! EOP when it ends. The contents change when the operation starts (reads during it are not
//! modelled: the chip stalls them). A read of SR while busy tells the core it may sleep until
//! the operation ends ([`FlashBank::poll_wait`]): a polling loop then costs no host time, and
//! the bench's wall clock still pays the full duration.

use std::ops::Range;

use futures::executor::block_on;
use rig_sim::flash::FlashModel;
use stm32h755::flash::{
    BANK1, BANK2, BANK2_OFFSETS, BANK2_SIZE, FLASH_BASE, FLASH_CCR2, FLASH_CR1, FLASH_CR2,
    FLASH_SR1, FLASH_SR2, FLASH_WORD, SECTOR,
};

/// FLASH_CCR1 (bank 1's flag clear register).
pub const FLASH_CCR1: u32 = FLASH_CR1 + 0x08;

const CR_PG: u32 = 1 << 1;
const CR_SER: u32 = 1 << 2;
const CR_BER: u32 = 1 << 3;
const CR_PSIZE_SHIFT: u32 = 4;
const CR_START: u32 = 1 << 7;
const SR_BSY: u32 = 1 << 0;
const SR_WBNE: u32 = 1 << 1;
const SR_QW: u32 = 1 << 2;
const SR_EOP: u32 = 1 << 16;
const SR_WRPERR: u32 = 1 << 17;
const SR_PGSERR: u32 = 1 << 18;
const SR_INCERR: u32 = 1 << 21;
const SR_OPERR: u32 = 1 << 22;

/// Which bank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bank {
    One,
    Two,
}

impl Bank {
    /// The bank's bus addresses.
    pub fn addresses(self) -> Range<u32> {
        match self {
            Self::One => BANK1..BANK2,
            Self::Two => BANK2..BANK2 + BANK2_SIZE,
        }
    }

    /// Its offsets from 0x0800_0000, as the flash model counts them.
    pub fn offsets(self) -> Range<u32> {
        match self {
            Self::One => 0..BANK2_OFFSETS.start,
            Self::Two => BANK2_OFFSETS,
        }
    }

    pub fn cr(self) -> u32 {
        match self {
            Self::One => FLASH_CR1,
            Self::Two => FLASH_CR2,
        }
    }

    pub fn sr(self) -> u32 {
        match self {
            Self::One => FLASH_SR1,
            Self::Two => FLASH_SR2,
        }
    }

    pub fn ccr(self) -> u32 {
        match self {
            Self::One => FLASH_CCR1,
            Self::Two => FLASH_CCR2,
        }
    }
}

/// How long operations take, by CR.PSIZE (x8, x16, x32, x64), in picoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashTiming {
    /// One 256-bit flash word.
    pub word_program_ps: [u64; 4],
    /// One 128 KiB sector.
    pub sector_erase_ps: [u64; 4],
    /// A whole bank (BER).
    pub bank_erase_ps: [u64; 4],
}

const US: u64 = 1_000_000;
const MS: u64 = 1_000 * US;

impl FlashTiming {
    /// Typical values of the STM32H745/755 datasheet (DS12919, "Flash memory programming"):
    /// tprog per flash word 290/180/130/100 us, tERASE128KB per sector 2/1.8/1.1/1 s, mass erase
    /// 13/8/6/5 s, for x8/x16/x32/x64 parallelism. A bank erase is taken as long as the mass
    /// erase (the two banks erase in parallel). Maximum values are about twice these.
    pub const DATASHEET: Self = Self {
        word_program_ps: [290 * US, 180 * US, 130 * US, 100 * US],
        sector_erase_ps: [2_000 * MS, 1_800 * MS, 1_100 * MS, 1_000 * MS],
        bank_erase_ps: [13_000 * MS, 8_000 * MS, 6_000 * MS, 5_000 * MS],
    };

    /// Operations that end at once.
    pub const INSTANT: Self = Self {
        word_program_ps: [0; 4],
        sector_erase_ps: [0; 4],
        bank_erase_ps: [0; 4],
    };
}

fn psize(cr: u32) -> usize {
    ((cr >> CR_PSIZE_SHIFT) & 3) as usize
}

/// One bank of the flash: its contents and its controller.
#[derive(Clone, Debug)]
pub struct FlashBank {
    pub bank: Bank,
    /// The bank's contents (non-volatile: the board keeps them across power cycles).
    pub flash: FlashModel,
    timing: FlashTiming,
    sr: u32,
    /// The 32-byte write buffer being filled: (flash word address, bytes, bytes written).
    buffer: Option<(u32, [u8; 32], u32)>,
    /// When the operation in progress ends (virtual time).
    busy_until: Option<u64>,
    /// A read of SR found the bank busy: the core may sleep until this time.
    poll_wait: Option<u64>,
    /// Bus addresses whose contents the bank changed since the last [`take_changed`](Self::take_changed).
    changed: Vec<Range<u32>>,
    /// The planned power cut hit during a program or erase.
    pub power_cut: bool,
}

impl FlashBank {
    pub fn new(bank: Bank, flash: FlashModel, timing: FlashTiming) -> Self {
        Self {
            bank,
            flash,
            timing,
            sr: 0,
            buffer: None,
            busy_until: None,
            poll_wait: None,
            changed: Vec::new(),
            power_cut: false,
        }
    }

    pub fn handles(&self, addr: u32) -> bool {
        self.bank.addresses().contains(&addr)
    }

    /// Bytes of the bank as read through the bus.
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

    /// Ends an operation whose time is up.
    pub fn sync(&mut self, now_ps: u64) {
        if self.busy_until.is_some_and(|t| now_ps >= t) {
            self.busy_until = None;
            self.sr |= SR_EOP;
        }
    }

    /// When the operation in progress ends.
    pub fn next_event(&self) -> Option<u64> {
        self.busy_until
    }

    /// SR as read at `now_ps` (a read while busy arms [`poll_wait`](Self::poll_wait)).
    pub fn read_sr(&mut self, now_ps: u64) -> u32 {
        self.sync(now_ps);
        if let Some(t) = self.busy_until {
            self.poll_wait = Some(t);
        }
        self.sr_at(now_ps)
    }

    /// SR at `now_ps` without side effects.
    pub fn sr_at(&self, now_ps: u64) -> u32 {
        let mut sr = self.sr;
        match self.busy_until {
            Some(t) if now_ps < t => sr |= SR_BSY | SR_QW,
            Some(_) => sr |= SR_EOP,
            None => {}
        }
        if self.buffer.is_some() {
            sr |= SR_WBNE;
        }
        sr
    }

    pub fn take_poll_wait(&mut self) -> Option<u64> {
        self.poll_wait.take()
    }

    /// Bus ranges the bank changed since the last call.
    pub fn take_changed(&mut self) -> Vec<Range<u32>> {
        std::mem::take(&mut self.changed)
    }

    fn busy_for(&mut self, now_ps: u64, duration_ps: u64) {
        if duration_ps == 0 {
            self.sr |= SR_EOP;
            return;
        }
        // Operations queue behind the one in progress.
        let start = self.busy_until.map_or(now_ps, |t| t.max(now_ps));
        self.busy_until = Some(start + duration_ps);
    }

    /// A write into the bank's address space: a program step when PG is set.
    pub fn write_data(
        &mut self,
        addr: u32,
        size: usize,
        value: u32,
        cr: u32,
        unlocked: bool,
        now_ps: u64,
    ) {
        if cr & CR_PG == 0 || !unlocked {
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
            Ok(()) => self.busy_for(now_ps, self.timing.word_program_ps[psize(cr)]),
            Err(rig_sim::flash::FlashError::PowerLost) => self.power_cut = true,
            // A word programmed twice: its ECC no longer matches (an error on the chip, too).
            Err(_) => self.sr |= SR_OPERR,
        }
        self.changed.push(wa..wa + FLASH_WORD);
    }

    /// After a write to the bank's CR (already stored): START with SER or BER erases.
    /// Returns whether START was set (it clears itself).
    pub fn control(&mut self, cr: u32, unlocked: bool, now_ps: u64) -> bool {
        if cr & CR_START == 0 {
            return false;
        }
        if !unlocked {
            self.sr |= SR_WRPERR;
            return true;
        }
        let bank = self.bank.offsets();
        let (from, to, duration) = if cr & CR_BER != 0 {
            (bank.start, bank.end, self.timing.bank_erase_ps[psize(cr)])
        } else if cr & CR_SER != 0 {
            let sector = (cr >> 8) & 7;
            let from = bank.start + sector * SECTOR;
            (from, from + SECTOR, self.timing.sector_erase_ps[psize(cr)])
        } else {
            self.sr |= SR_PGSERR;
            return true;
        };
        match block_on(embedded_storage_async::nor_flash::NorFlash::erase(
            &mut self.flash,
            from,
            to,
        )) {
            Ok(()) => self.busy_for(now_ps, duration),
            Err(rig_sim::flash::FlashError::PowerLost) => self.power_cut = true,
            Err(_) => self.sr |= SR_PGSERR,
        }
        self.changed.push(FLASH_BASE + from..FLASH_BASE + to);
        true
    }

    /// The bank's CCR: clears the flags written 1.
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
        let mut b = FlashBank::new(
            Bank::Two,
            FlashModel::new(BANK2_OFFSETS),
            FlashTiming::INSTANT,
        );
        let at = 0x081C_0000;
        b.write_data(at, 4, 0x1234_5678, 0, true, 0);
        assert_ne!(b.sr_at(0) & SR_PGSERR, 0, "no PG");
        b.clear(u32::MAX);
        for k in 0..8 {
            b.write_data(at + 4 * k, 4, k, CR_PG, true, 0);
        }
        assert_ne!(b.sr_at(0) & SR_EOP, 0);
        assert_eq!(b.read(at + 4, 4), 1);
        for k in 0..8 {
            b.write_data(at + 4 * k, 4, 0, CR_PG, true, 0);
        }
        assert_ne!(b.sr_at(0) & SR_OPERR, 0, "programmed twice");
        assert!(b.control(CR_SER | (6 << 8) | CR_START, true, 0));
        assert_eq!(b.read(at, 4), u32::MAX);
        b.flash.cut_power_after(Some(40));
        for k in 0..16 {
            b.write_data(at + 4 * k, 4, 0, CR_PG, true, 0);
        }
        assert!(b.power_cut);
        assert_eq!(gpio_bsrr(0, (1 << 14) | (1 << 30)), 1 << 14);
        assert_eq!(gpio_bsrr(1 << 14, 1 << 30), 0);
    }

    #[test]
    fn operations_take_the_datasheet_time_with_bsy_and_qw_showing() {
        let mut b = FlashBank::new(
            Bank::One,
            FlashModel::new(Bank::One.offsets()),
            FlashTiming::DATASHEET,
        );
        // x8 (PSIZE 0): a sector erase takes 2 s.
        assert!(b.control(CR_SER | CR_START, true, 0));
        let done = 2_000 * MS;
        assert_eq!(b.next_event(), Some(done));
        assert_eq!(b.read_sr(done - 1) & (SR_BSY | SR_QW), SR_BSY | SR_QW);
        assert_eq!(b.take_poll_wait(), Some(done));
        let sr = b.read_sr(done);
        assert_eq!(sr & (SR_BSY | SR_QW | SR_EOP), SR_EOP);
        assert_eq!(b.take_changed(), vec![BANK1..BANK1 + SECTOR]);
        // x64 (PSIZE 3): a word takes 100 us; WBNE while the buffer is partly filled.
        let cr = CR_PG | (3 << CR_PSIZE_SHIFT);
        b.write_data(BANK1, 4, 0, cr, true, done);
        assert_ne!(b.sr_at(done) & SR_WBNE, 0);
        for k in 1..8 {
            b.write_data(BANK1 + 4 * k, 4, 0, cr, true, done);
        }
        assert_eq!(b.next_event(), Some(done + 100 * US));
        assert_eq!(b.read(BANK1, 4), 0);
    }
}
