//! Power-fail-safe records in flash: the boot counter and the calibration.
//!
//! A [`sequential_storage`] map (key: [`RecordKey`]) over two 128 KiB sectors of bank 2
//! (sectors 6 and 7, 0x081C_0000..0x0820_0000), which the firmware image does not use. The map
//! needs two pages so it can move live items out of a page before erasing it. At every boot the
//! counter is read, incremented and written first, then the calibration is read (and written with
//! the default if missing).

use embedded_storage_async::nor_flash::NorFlash;
use sequential_storage::{
    cache::{Cache, Uncached},
    map::{MapConfig, MapStorage},
};

type NoCache = Cache<Uncached, Uncached, Uncached, u8>;

use crate::calibration::Calibration;

/// The storage range as offsets from the start of flash (0x0800_0000).
pub const STORAGE_OFFSETS: core::ops::Range<u32> = 0x001C_0000..0x0020_0000;
/// The same range as bus addresses.
pub const STORAGE_ADDRESSES: core::ops::Range<u32> = 0x081C_0000..0x0820_0000;

/// Keys of the records in the map.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKey {
    BootCount = 1,
    Calibration = 2,
}

/// What the firmware learns from flash at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootRecords {
    /// The count including this boot.
    pub boot_count: u32,
    pub calibration: Calibration,
}

/// A storage failure, kept small for the firmware's telemetry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageError {
    Flash,
    Corrupted,
    Full,
    Other,
}

impl<E> From<sequential_storage::Error<E>> for StorageError {
    fn from(e: sequential_storage::Error<E>) -> Self {
        match e {
            sequential_storage::Error::Storage { .. } => StorageError::Flash,
            sequential_storage::Error::Corrupted { .. } => StorageError::Corrupted,
            sequential_storage::Error::FullStorage => StorageError::Full,
            _ => StorageError::Other,
        }
    }
}

/// A buffer aligned for flashes that need aligned RAM (the H7 programs 32-byte words).
#[repr(align(32))]
struct Buffer([u8; 64]);

/// The boot records over a flash.
pub struct Records<F: NorFlash> {
    map: MapStorage<u8, F, NoCache>,
}

impl<F: NorFlash> Records<F> {
    /// `range`: offsets in `flash`'s address space, whole erase pages, at least two.
    pub fn new(flash: F, range: core::ops::Range<u32>) -> Result<Self, StorageError> {
        let config = MapConfig::try_new(range).map_err(|_| StorageError::Other)?;
        Ok(Self {
            map: MapStorage::new(flash, config, Cache::new_uncached()),
        })
    }

    pub async fn boot_count(&mut self) -> Result<Option<u32>, StorageError> {
        let mut buf = Buffer([0; 64]);
        Ok(self
            .map
            .fetch_item::<u32>(&mut buf.0, &(RecordKey::BootCount as u8))
            .await?)
    }

    pub async fn calibration(&mut self) -> Result<Option<Calibration>, StorageError> {
        let mut buf = Buffer([0; 64]);
        let bytes = self
            .map
            .fetch_item::<&[u8]>(&mut buf.0, &(RecordKey::Calibration as u8))
            .await?;
        Ok(bytes.and_then(Calibration::from_bytes))
    }

    pub async fn store_calibration(&mut self, cal: &Calibration) -> Result<(), StorageError> {
        let mut buf = Buffer([0; 64]);
        let bytes = cal.to_bytes();
        Ok(self
            .map
            .store_item(&mut buf.0, &(RecordKey::Calibration as u8), &&bytes[..])
            .await?)
    }

    /// The boot sequence: count this boot (first write after reset), then load the calibration.
    pub async fn on_boot(&mut self) -> Result<BootRecords, StorageError> {
        let boot_count = self.boot_count().await?.unwrap_or(0).wrapping_add(1);
        let mut buf = Buffer([0; 64]);
        self.map
            .store_item(&mut buf.0, &(RecordKey::BootCount as u8), &boot_count)
            .await?;
        let calibration = match self.calibration().await? {
            Some(cal) => cal,
            None => {
                self.store_calibration(&Calibration::DEFAULT).await?;
                Calibration::DEFAULT
            }
        };
        Ok(BootRecords {
            boot_count,
            calibration,
        })
    }

    pub fn into_flash(self) -> F {
        self.map.destroy().0
    }
}
