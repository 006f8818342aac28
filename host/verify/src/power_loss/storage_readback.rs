//! The board's flash seen through the debug probe, read-only, as an `embedded-storage` flash:
//! the rig reads the firmware's own records (boot counter, calibration) with the same
//! `sequential-storage` code the firmware writes them with.

use embedded_storage_async::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use gauge_logic::storage::{BootRecords, Records, StorageError, STORAGE_OFFSETS};

use rig_instruments::DebugProbe;
// The firmware's storage offsets count from the flash base.
use stm32h755::flash::FLASH_BASE;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFlashError {
    Read(String),
    /// The rig never writes the board's flash behind the firmware's back.
    ReadOnly,
}

impl NorFlashError for ProbeFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

/// Reads go to the probe in blocks of this many bytes, each read once per readback:
/// sequential-storage reads a record's header, then its data, a few bytes at a time, and
/// through an ST-LINK every read is two USB round trips.
pub const READ_BLOCK: u32 = 4096;

pub struct ProbeFlash<'a> {
    pub probe: &'a mut dyn DebugProbe,
    pub last_error: Option<String>,
    /// Blocks already read (offset of the block, its bytes), for this readback only.
    blocks: Vec<(u32, Vec<u8>)>,
}

impl<'a> ProbeFlash<'a> {
    pub fn new(probe: &'a mut dyn DebugProbe) -> Self {
        Self {
            probe,
            last_error: None,
            blocks: Vec::new(),
        }
    }

    fn block(&mut self, start: u32) -> Result<&[u8], ProbeFlashError> {
        if let Some(i) = self.blocks.iter().position(|(s, _)| *s == start) {
            return Ok(&self.blocks[i].1);
        }
        let mut bytes = vec![0u8; READ_BLOCK as usize];
        self.probe
            .read_memory(FLASH_BASE + start, &mut bytes)
            .map_err(|e| {
                self.last_error = Some(e.to_string());
                ProbeFlashError::Read(e.to_string())
            })?;
        self.blocks.push((start, bytes));
        Ok(&self.blocks[self.blocks.len() - 1].1)
    }
}

impl ErrorType for ProbeFlash<'_> {
    type Error = ProbeFlashError;
}

impl ReadNorFlash for ProbeFlash<'_> {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let mut done = 0;
        while done < bytes.len() {
            let at = offset + done as u32;
            let start = at - at % READ_BLOCK;
            let block = self.block(start)?;
            let from = (at - start) as usize;
            let n = (block.len() - from).min(bytes.len() - done);
            bytes[done..done + n].copy_from_slice(&block[from..from + n]);
            done += n;
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        0x0020_0000
    }
}

impl NorFlash for ProbeFlash<'_> {
    // The H7's geometry, which decides the record layout.
    const WRITE_SIZE: usize = 32;
    const ERASE_SIZE: usize = 128 * 1024;

    async fn erase(&mut self, _from: u32, _to: u32) -> Result<(), Self::Error> {
        Err(ProbeFlashError::ReadOnly)
    }

    async fn write(&mut self, _offset: u32, _bytes: &[u8]) -> Result<(), Self::Error> {
        Err(ProbeFlashError::ReadOnly)
    }
}

/// The boot counter and calibration stored on the board (the probe must be attached).
/// `boot_count` 0 means no record.
pub fn read_records(probe: &mut dyn DebugProbe) -> Result<BootRecords, String> {
    let flash = ProbeFlash::new(probe);
    let mut records = Records::new(flash, STORAGE_OFFSETS).map_err(|e| format!("{e:?}"))?;
    let result = futures::executor::block_on(async {
        let boot_count = records.boot_count().await?.unwrap_or(0);
        let calibration = records.calibration().await?;
        Ok::<_, StorageError>((boot_count, calibration))
    });
    let flash = records.into_flash();
    match result {
        Ok((boot_count, Some(calibration))) => Ok(BootRecords {
            boot_count,
            calibration,
        }),
        Ok((_, None)) => Err("no calibration record in storage".into()),
        Err(e) => Err(format!(
            "storage unreadable ({e:?}){}",
            flash
                .last_error
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(address: u32) -> u8 {
        (address.wrapping_mul(31) >> 3) as u8
    }

    #[test]
    fn reads_across_blocks_match_the_flash_and_each_block_is_read_once() {
        let mut probe = crate::test_probe::MemoryProbe::new(pattern);
        let mut flash = ProbeFlash::new(&mut probe);
        let start = STORAGE_OFFSETS.start + READ_BLOCK - 5;
        let mut a = [0u8; 13];
        let mut b = [0u8; 3];
        futures::executor::block_on(async {
            flash.read(start, &mut a).await.unwrap();
            flash.read(start + 2, &mut b).await.unwrap();
        });
        for (i, &x) in a.iter().enumerate() {
            assert_eq!(x, pattern(FLASH_BASE + start + i as u32), "byte {i}");
        }
        assert_eq!(b, a[2..5]);
        assert_eq!(probe.reads, 2, "two blocks, each read once");
    }
}
