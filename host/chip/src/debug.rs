//! Debug identification: what a debugger reads to know it is talking to an STM32H755.

/// DBGMCU_IDCODE (readable from either core's access port).
pub const DBGMCU_IDCODE: u32 = 0x5C00_1000;
/// DBGMCU_IDCODE of an STM32H745/755/747/757, revision V (DEV_ID 0x450).
pub const DBGMCU_IDCODE_VALUE: u32 = 0x2003_6450;
/// DEV_ID field of DBGMCU_IDCODE.
pub const fn dev_id(idcode: u32) -> u32 {
    idcode & 0xFFF
}
/// The access port of each core: AP 0 the Cortex-M7, AP 3 the Cortex-M4.
pub const CM7_ACCESS_PORT: u8 = 0;
pub const CM4_ACCESS_PORT: u8 = 3;
