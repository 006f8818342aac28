//! Embedded flash: geometry, controller registers, option bytes (RDP, core boot, boot addresses).

use core::ops::Range;

/// Both banks: 2 x 1 MiB from 0x0800_0000.
pub const FLASH_BASE: u32 = 0x0800_0000;
pub const FLASH_SIZE: u32 = 0x20_0000;
pub const FLASH_ADDRESSES: Range<u32> = FLASH_BASE..FLASH_BASE + FLASH_SIZE;
/// Bank 1 (the Cortex-M7's program).
pub const BANK1: u32 = FLASH_BASE;
pub const BANK1_SIZE: u32 = 0x10_0000;
/// Bank 2 (the Cortex-M4's program; the gauge keeps its storage in sectors 6-7).
pub const BANK2: u32 = 0x0810_0000;
pub const BANK2_SIZE: u32 = 0x10_0000;
/// Bank 2 as offsets from the flash base.
pub const BANK2_OFFSETS: Range<u32> = 0x0010_0000..0x0020_0000;
/// Programming granularity: one 256-bit flash word.
pub const FLASH_WORD: u32 = 32;
/// Erase granularity: one 128 KiB sector.
pub const SECTOR: u32 = 0x2_0000;

/// The flash interface registers (shared part and bank 1 at FLASH, bank 2 at FLASH + 0x100).
pub const FLASH: u32 = 0x5200_2000;
pub const FLASH_ACR: u32 = FLASH;
pub const FLASH_KEYR1: u32 = FLASH + 0x04;
pub const FLASH_OPTKEYR: u32 = FLASH + 0x08;
pub const FLASH_CR1: u32 = FLASH + 0x0C;
pub const FLASH_SR1: u32 = FLASH + 0x10;
pub const FLASH_OPTCR: u32 = FLASH + 0x18;
pub const FLASH_OPTSR_CUR: u32 = FLASH + 0x1C;
pub const FLASH_OPTSR_PRG: u32 = FLASH + 0x20;
pub const FLASH_OPTCCR: u32 = FLASH + 0x24;
pub const FLASH_BOOT7_CURR: u32 = FLASH + 0x40;
pub const FLASH_BOOT7_PRGR: u32 = FLASH + 0x44;
pub const FLASH_BOOT4_CURR: u32 = FLASH + 0x48;
pub const FLASH_BOOT4_PRGR: u32 = FLASH + 0x4C;
pub const FLASH_KEYR2: u32 = FLASH + 0x104;
pub const FLASH_CR2: u32 = FLASH + 0x10C;
pub const FLASH_SR2: u32 = FLASH + 0x110;
pub const FLASH_CCR2: u32 = FLASH + 0x114;

/// Key sequences that unlock FLASH_CRx (KEYRx) and FLASH_OPTCR (OPTKEYR).
pub const FLASH_KEY1: u32 = 0x4567_0123;
pub const FLASH_KEY2: u32 = 0xCDEF_89AB;
pub const FLASH_OPTKEY1: u32 = 0x0819_2A3B;
pub const FLASH_OPTKEY2: u32 = 0x4C5D_6E7F;

/// FLASH_OPTCR fields.
pub const OPTCR_OPTLOCK: u32 = 1 << 0;
pub const OPTCR_OPTSTART: u32 = 1 << 1;

/// FLASH_OPTSR fields.
pub const OPTSR_OPT_BUSY: u32 = 1 << 0;
pub const OPTSR_BCM4: u32 = 1 << 22;
pub const OPTSR_BCM7: u32 = 1 << 23;
/// FLASH_OPTSR_CUR as shipped: RDP level 0, both cores boot.
pub const OPTSR_DEFAULT: u32 = 0x0BC6_AAF0;
/// FLASH_BOOT7_CURR as shipped: BOOT_CM7_ADD0 = 0x0800 (0x0800_0000), ADD1 = 0x1FF0.
pub const BOOT7_DEFAULT: u32 = 0x1FF0_0800;
/// FLASH_BOOT4_CURR as shipped: BOOT_CM4_ADD0 = 0x0810 (0x0810_0000), ADD1 = 0x1000.
pub const BOOT4_DEFAULT: u32 = 0x1000_0810;

/// Readout protection level from FLASH_OPTSR's RDP byte: 0xAA level 0, 0xCC level 2,
/// anything else level 1.
pub const fn rdp_level(optsr: u32) -> u8 {
    match (optsr >> 8) & 0xFF {
        0xAA => 0,
        0xCC => 2,
        _ => 1,
    }
}

/// The boot address a core starts from with BOOT0 low: BOOTx_ADD0 (the low half of
/// FLASH_BOOT7/BOOT4) holds address bits 31:16.
pub const fn boot_address0(boot: u32) -> u32 {
    (boot & 0xFFFF) << 16
}

/// Whether the Cortex-M7 boots (BCM7) and whether the Cortex-M4 boots (BCM4).
pub const fn cores_booting(optsr: u32) -> (bool, bool) {
    (optsr & OPTSR_BCM7 != 0, optsr & OPTSR_BCM4 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdp_levels_and_boot_addresses_decode_as_rm0399_says() {
        assert_eq!(rdp_level(OPTSR_DEFAULT), 0);
        assert_eq!(rdp_level(0xCC << 8), 2);
        assert_eq!(rdp_level(0xBB << 8), 1);
        assert_eq!(boot_address0(BOOT7_DEFAULT), 0x0800_0000);
        assert_eq!(boot_address0(BOOT4_DEFAULT), 0x0810_0000);
        assert_eq!(cores_booting(OPTSR_DEFAULT), (true, true));
        assert_eq!(cores_booting(OPTSR_DEFAULT & !OPTSR_BCM7), (false, true));
        assert_eq!(BANK2, FLASH_BASE + BANK2_OFFSETS.start);
    }
}
