//! STM32H7 flash as the storage layer sees it: 32-byte program words (ECC: a word is
//! programmed once between erases), 128 KiB sectors, erased = 0xFF; contents survive power
//! loss, and a write can be cut after a chosen number of bytes.

use embedded_storage_async::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

pub const WORD: usize = 32;
pub const SECTOR: usize = 128 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashError {
    OutOfBounds,
    NotAligned,
    /// Programming a word that is not erased: the H7's ECC forbids it.
    WordNotErased {
        offset: u32,
    },
    /// Power was cut during this operation.
    PowerLost,
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FlashError::NotAligned => NorFlashErrorKind::NotAligned,
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// A flash region mapped at `base` (offsets as the firmware uses them).
#[derive(Clone, Debug)]
pub struct FlashModel {
    base: u32,
    bytes: Vec<u8>,
    /// Bytes that may still be programmed before the power goes; `None`: no cut planned.
    cut_after_bytes: Option<usize>,
    pub bytes_written: usize,
    pub erases: usize,
    /// Worn cells: (byte index, bits that stay 1 whatever is programmed).
    stuck_at_one: Vec<(usize, u8)>,
}

impl FlashModel {
    pub fn new(range: core::ops::Range<u32>) -> Self {
        let len = (range.end - range.start) as usize;
        Self {
            base: range.start,
            bytes: vec![0xFF; len],
            cut_after_bytes: None,
            bytes_written: 0,
            erases: 0,
            stuck_at_one: Vec::new(),
        }
    }

    /// A worn cell at bus offset `offset`: `bit` stays 1 whatever is programmed there (the
    /// flash no longer holds a 0 in it, so a download's verify must notice).
    pub fn stick_at_one(&mut self, offset: u32, bit: u8) -> Result<(), FlashError> {
        let i = self.index(offset, 1)?;
        self.stuck_at_one.push((i, 1 << (bit & 7)));
        Ok(())
    }

    /// A region holding `bytes` (as a download left it: programmed without counting).
    pub fn with_contents(range: core::ops::Range<u32>, bytes: Vec<u8>) -> Self {
        let mut m = Self::new(range);
        let n = m.bytes.len().min(bytes.len());
        m.bytes[..n].copy_from_slice(&bytes[..n]);
        m
    }

    /// Every byte of the region.
    pub fn contents(&self) -> &[u8] {
        &self.bytes
    }

    /// Cut the power after `n` more bytes have been programmed (erases count as one byte).
    pub fn cut_power_after(&mut self, n: Option<usize>) {
        self.cut_after_bytes = n;
    }

    pub fn power_was_cut(&self) -> bool {
        self.cut_after_bytes == Some(0)
    }

    fn index(&self, offset: u32, len: usize) -> Result<usize, FlashError> {
        let start = offset
            .checked_sub(self.base)
            .ok_or(FlashError::OutOfBounds)? as usize;
        if start + len > self.bytes.len() {
            return Err(FlashError::OutOfBounds);
        }
        Ok(start)
    }

    /// Reads `len` bytes at bus offset `offset`.
    pub fn read_at(&self, offset: u32, len: usize) -> Result<&[u8], FlashError> {
        let i = self.index(offset, len)?;
        Ok(&self.bytes[i..i + len])
    }

    fn budget(&mut self, want: usize) -> Result<usize, usize> {
        match &mut self.cut_after_bytes {
            None => Ok(want),
            Some(left) if *left >= want && want > 0 => {
                *left -= want;
                Ok(want)
            }
            Some(left) => {
                let got = (*left).min(want);
                *left = 0;
                Err(got)
            }
        }
    }
}

impl ErrorType for FlashModel {
    type Error = FlashError;
}

impl ReadNorFlash for FlashModel {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        if self.power_was_cut() {
            return Err(FlashError::PowerLost);
        }
        bytes.copy_from_slice(self.read_at(offset, bytes.len())?);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.base as usize + self.bytes.len()
    }
}

impl NorFlash for FlashModel {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if self.power_was_cut() {
            return Err(FlashError::PowerLost);
        }
        if !from.is_multiple_of(SECTOR as u32) || !to.is_multiple_of(SECTOR as u32) || to < from {
            return Err(FlashError::NotAligned);
        }
        let i = self.index(from, (to - from) as usize)?;
        for sector in (i..i + (to - from) as usize).step_by(SECTOR) {
            if self.budget(1).is_err() {
                // A cut erase leaves the sector partly erased.
                self.bytes[sector..sector + SECTOR / 2].fill(0xFF);
                return Err(FlashError::PowerLost);
            }
            self.bytes[sector..sector + SECTOR].fill(0xFF);
            self.erases += 1;
        }
        Ok(())
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        if self.power_was_cut() {
            return Err(FlashError::PowerLost);
        }
        if !offset.is_multiple_of(WORD as u32) || !bytes.len().is_multiple_of(WORD) {
            return Err(FlashError::NotAligned);
        }
        let i = self.index(offset, bytes.len())?;
        for (w, chunk) in bytes.chunks(WORD).enumerate() {
            let at = i + w * WORD;
            if self.bytes[at..at + WORD].iter().any(|&b| b != 0xFF) {
                return Err(FlashError::WordNotErased {
                    offset: offset + (w * WORD) as u32,
                });
            }
            match self.budget(WORD) {
                Ok(_) => {
                    self.bytes[at..at + WORD].copy_from_slice(chunk);
                    for (i, bits) in &self.stuck_at_one {
                        if (at..at + WORD).contains(i) {
                            self.bytes[*i] |= bits;
                        }
                    }
                    self.bytes_written += WORD;
                }
                Err(partial) => {
                    // The word is half programmed: its ECC no longer matches what either value expects.
                    for (k, b) in chunk.iter().enumerate().take(partial) {
                        self.bytes[at + k] &= *b;
                    }
                    self.bytes_written += partial;
                    return Err(FlashError::PowerLost);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn program_once_per_erase() {
        let mut f = FlashModel::new(0..2 * SECTOR as u32);
        block_on(f.write(0, &[0u8; 32])).unwrap();
        assert_eq!(
            block_on(f.write(0, &[0u8; 32])),
            Err(FlashError::WordNotErased { offset: 0 })
        );
        block_on(f.erase(0, SECTOR as u32)).unwrap();
        block_on(f.write(0, &[1u8; 32])).unwrap();
        assert_eq!(f.read_at(0, 2).unwrap(), &[1, 1]);
        assert_eq!(
            block_on(f.write(3, &[0u8; 32])),
            Err(FlashError::NotAligned)
        );
    }

    #[test]
    fn cut_mid_write_leaves_a_partial_word_and_blocks_further_access() {
        let mut f = FlashModel::new(0..2 * SECTOR as u32);
        f.cut_power_after(Some(40));
        assert_eq!(block_on(f.write(0, &[0u8; 64])), Err(FlashError::PowerLost));
        assert_eq!(f.read_at(32, 8).unwrap(), &[0u8; 8]);
        assert_eq!(f.read_at(40, 8).unwrap(), &[0xFF; 8]);
        let mut b = [0u8; 4];
        assert_eq!(block_on(f.read(0, &mut b)), Err(FlashError::PowerLost));
        f.cut_power_after(None);
        block_on(f.read(0, &mut b)).unwrap();
    }
}
