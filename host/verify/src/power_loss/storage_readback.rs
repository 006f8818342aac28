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

pub struct ProbeFlash<'a> {
    pub probe: &'a mut dyn DebugProbe,
    pub last_error: Option<String>,
}

impl ErrorType for ProbeFlash<'_> {
    type Error = ProbeFlashError;
}

impl ReadNorFlash for ProbeFlash<'_> {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.probe
            .read_memory(FLASH_BASE + offset, bytes)
            .map_err(|e| {
                self.last_error = Some(e.to_string());
                ProbeFlashError::Read(e.to_string())
            })
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
    let flash = ProbeFlash {
        probe,
        last_error: None,
    };
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
