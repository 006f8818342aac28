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
/// AP 1: the AHB-AP into the D3 domain (SRAM4, the D3 peripherals), per RM0399's debug
/// infrastructure; AP 2: the APB-AP to the debug components (DBGMCU, ROM tables, trace).
pub const D3_ACCESS_PORT: u8 = 1;
pub const DEBUG_APB_ACCESS_PORT: u8 = 2;

/// SW-DP identification of the STM32H7 (DPv2, designer Arm), as a debugger prints it.
pub const DPIDR_VALUE: u32 = 0x6BA0_2477;
/// IDR of the AHB-APs (AP 0, 1, 3) and of the APB-AP (AP 2).
pub const AHB_AP_IDR: u32 = 0x8477_0001;
pub const APB_AP_IDR: u32 = 0x5477_0002;
/// Each AP's BASE register: the ROM table it leads to (bit 0: entry present, bit 1: ADIv5
/// format). AP 0 the Cortex-M7's PPB ROM table, AP 2 the system ROM table, AP 3 the Cortex-M4's.
pub const CM7_ROM_TABLE: u32 = 0xE00F_E000;
pub const SYSTEM_ROM_TABLE: u32 = 0xE00E_0000;
pub const CM4_ROM_TABLE: u32 = 0xE00F_F000;

/// DBGMCU in the APB-AP's view (AP 2); CR at +0x04.
pub const DBGMCU_APB: u32 = 0xE00E_1000;
pub const DBGMCU_CR_OFFSET: u32 = 0x04;
/// DBGMCU_APB1LFZ1 (+0x3C): bit 0 freezes TIM2 while the Cortex-M7 is halted.
pub const DBGMCU_APB1LFZ1_OFFSET: u32 = 0x3C;
/// DBGMCU_APB2FZ1 (+0x4C): bit 0 freezes TIM1.
pub const DBGMCU_APB2FZ1_OFFSET: u32 = 0x4C;

/// ARMv7-M debug registers (in each core's private peripheral bus).
pub mod armv7m {
    pub const DHCSR: u32 = 0xE000_EDF0;
    pub const DCRSR: u32 = 0xE000_EDF4;
    pub const DCRDR: u32 = 0xE000_EDF8;
    pub const DEMCR: u32 = 0xE000_EDFC;
    pub const DFSR: u32 = 0xE000_ED30;
    pub const AIRCR: u32 = 0xE000_ED0C;
    pub const CPUID: u32 = 0xE000_ED00;
    pub const FP_CTRL: u32 = 0xE000_2000;
    pub const FP_REMAP: u32 = 0xE000_2004;
    /// FP_COMP0; comparator n at + 4n.
    pub const FP_COMP0: u32 = 0xE000_2008;

    /// DHCSR writes need this key in bits 31:16.
    pub const DBGKEY: u32 = 0xA05F << 16;
    pub const C_DEBUGEN: u32 = 1 << 0;
    pub const C_HALT: u32 = 1 << 1;
    pub const C_STEP: u32 = 1 << 2;
    pub const C_MASKINTS: u32 = 1 << 3;
    pub const S_REGRDY: u32 = 1 << 16;
    pub const S_HALT: u32 = 1 << 17;
    pub const S_SLEEP: u32 = 1 << 18;
    pub const S_LOCKUP: u32 = 1 << 19;
    pub const S_RETIRE_ST: u32 = 1 << 24;
    pub const S_RESET_ST: u32 = 1 << 25;
    /// DCRSR: REGWnR (bit 16) and REGSEL (6:0).
    pub const REGWNR: u32 = 1 << 16;
    /// DEMCR bits.
    pub const VC_CORERESET: u32 = 1 << 0;
    pub const VC_HARDERR: u32 = 1 << 10;
    pub const TRCENA: u32 = 1 << 24;
    /// DFSR bits.
    pub const DFSR_HALTED: u32 = 1 << 0;
    pub const DFSR_BKPT: u32 = 1 << 1;
    pub const DFSR_VCATCH: u32 = 1 << 3;
    /// AIRCR writes need VECTKEY in bits 31:16.
    pub const VECTKEY: u32 = 0x05FA << 16;
    pub const SYSRESETREQ: u32 = 1 << 2;
    /// CPUID of the Cortex-M7 r1p2 (the H7 rev V's) and of the Cortex-M4 r0p1.
    pub const CPUID_CM7: u32 = 0x411F_C272;
    pub const CPUID_CM4: u32 = 0x410F_C241;
}
