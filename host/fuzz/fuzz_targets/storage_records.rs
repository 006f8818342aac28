//! The firmware's boot records in flash (a `sequential-storage` map over bank 2 sectors 6-7),
//! from any bytes left there: read back by the rig through the debug probe
//! (`power_loss::storage_readback::read_records`), and at boot by the firmware itself
//! (`storage::Records::on_boot`, which writes the incremented counter). The input is the start
//! of the 256 KiB storage area; the rest is erased (0xFF). What reads back after a boot is that
//! boot's records or an error, never other values.
#![no_main]

use embedded_storage_async::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use gauge_logic::storage::{Records, STORAGE_ADDRESSES};
use libfuzzer_sys::fuzz_target;
use rig_instruments::{CoreSelect, DebugProbe, ProbeError};
use rig_verify::power_loss::storage_readback::read_records;

const STORAGE_LEN: usize = (STORAGE_ADDRESSES.end - STORAGE_ADDRESSES.start) as usize;

fn image(data: &[u8]) -> Vec<u8> {
    let mut image = vec![0xFF; STORAGE_LEN];
    let n = data.len().min(STORAGE_LEN);
    image[..n].copy_from_slice(&data[..n]);
    image
}

/// A probe whose board's storage sectors hold `image`; reads elsewhere fail.
struct ImageProbe {
    image: Vec<u8>,
}

fn refused() -> ProbeError {
    ProbeError::Other {
        probe: "fuzz".into(),
        reason: "not in this probe".into(),
    }
}

impl DebugProbe for ImageProbe {
    fn attach(&mut self, _: CoreSelect) -> Result<(), ProbeError> {
        Ok(())
    }
    fn attach_under_reset(&mut self, _: CoreSelect) -> Result<(), ProbeError> {
        Ok(())
    }
    fn hold_reset(&mut self, _: bool) -> Result<(), ProbeError> {
        Ok(())
    }
    fn read_u32(&mut self, address: u32) -> Result<u32, ProbeError> {
        let mut b = [0u8; 4];
        self.read_memory(address, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn read_memory(&mut self, address: u32, buf: &mut [u8]) -> Result<(), ProbeError> {
        let start = address
            .checked_sub(STORAGE_ADDRESSES.start)
            .ok_or_else(refused)? as usize;
        let bytes = self
            .image
            .get(start..start + buf.len())
            .ok_or_else(refused)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
    fn write_u32(&mut self, _: u32, _: u32) -> Result<(), ProbeError> {
        Err(refused())
    }
    fn reset(&mut self) -> Result<(), ProbeError> {
        Err(refused())
    }
    fn mass_erase(&mut self) -> Result<(), ProbeError> {
        Err(refused())
    }
    fn flash_elf(&mut self, _: &std::path::Path) -> Result<(), ProbeError> {
        Err(refused())
    }
    fn detach(&mut self) {}
    fn describe(&self) -> String {
        "fuzz image probe".into()
    }
}

/// The storage sectors as the firmware's flash driver sees them: the H7's 32-byte flash words,
/// each programmable once after an erase, and 128 KiB sectors.
struct H7Flash {
    bytes: Vec<u8>,
}

#[derive(Debug)]
struct FlashError;

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

impl ErrorType for H7Flash {
    type Error = FlashError;
}

impl ReadNorFlash for H7Flash {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let start = offset as usize;
        bytes.copy_from_slice(
            self.bytes
                .get(start..start + bytes.len())
                .ok_or(FlashError)?,
        );
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

impl NorFlash for H7Flash {
    const WRITE_SIZE: usize = 32;
    const ERASE_SIZE: usize = 128 * 1024;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        let (from, to) = (from as usize, to as usize);
        if !from.is_multiple_of(Self::ERASE_SIZE) || !to.is_multiple_of(Self::ERASE_SIZE) {
            return Err(FlashError);
        }
        self.bytes.get_mut(from..to).ok_or(FlashError)?.fill(0xFF);
        Ok(())
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let start = offset as usize;
        if !start.is_multiple_of(Self::WRITE_SIZE) || !bytes.len().is_multiple_of(Self::WRITE_SIZE)
        {
            return Err(FlashError);
        }
        let target = self
            .bytes
            .get_mut(start..start + bytes.len())
            .ok_or(FlashError)?;
        // ECC: a flash word is programmed once; programming it again is an error.
        if target.iter().any(|&b| b != 0xFF) {
            return Err(FlashError);
        }
        target.copy_from_slice(bytes);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    // The rig's read-back through the probe.
    let mut probe = ImageProbe { image: image(data) };
    let _ = read_records(&mut probe);

    // The firmware's boot on the same flash (offsets from 0: the map's range is the whole
    // fake flash).
    let range = 0..STORAGE_LEN as u32;
    let flash = H7Flash { bytes: image(data) };
    let Ok(mut records) = Records::new(flash, range.clone()) else {
        panic!("two whole sectors make a map");
    };
    let Ok(boot) = futures::executor::block_on(records.on_boot()) else {
        return;
    };
    // What the rig reads back after that boot, and what the next boot finds, is what the boot
    // wrote, or an error: never other values. (Not always readable: an item header left in
    // the sectors that claims more than the 64-byte read buffer makes every later read
    // fail; see README.md, "Findings".)
    let flash = records.into_flash();
    let mut probe = ImageProbe {
        image: flash.bytes.clone(),
    };
    if let Ok(read) = read_records(&mut probe) {
        assert_eq!(read, boot);
    }
    let mut records = Records::new(flash, range).expect("as before");
    if let Ok(next) = futures::executor::block_on(records.on_boot()) {
        assert_eq!(next.boot_count, boot.boot_count.wrapping_add(1));
        assert_eq!(next.calibration, boot.calibration);
    }
});
