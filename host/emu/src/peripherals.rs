//! Register models of the STM32H755 peripherals the Cortex-M7 boot path touches.
//!
//! Every peripheral address reads from a word store that starts at the register's reset
//! value (0 when the model does not know better) and keeps what the firmware writes. On top of
//! that store, the registers the boot path waits on are modelled:
//!
//! - RCC: ready bits follow their enables (HSION -> HSIRDY, CSION -> CSIRDY, HSI48ON ->
//!   HSI48RDY, HSEON -> HSERDY, PLLxON -> PLLxRDY, LSEON -> LSERDY, LSION -> LSIRDY), CFGR.SWS
//!   follows CFGR.SW, D1CKRDY/D2CKRDY and HSIDIVF read 1.
//! - PWR: CR3 is written once per power-on (later writes to the supply bits are ignored, as on
//!   the chip); CSR1.ACTVOSRDY and D3CR.VOSRDY are 1 only while the supply latched in CR3 is
//!   the board's wiring (or nothing was written yet); CSR1.ACTVOS follows D3CR.VOS; CR2.BRRDY
//!   follows BREN; CR3.USB33RDY follows USB33DEN.
//! - FLASH: key sequences unlock CR1/CR2 and OPTCR; option-byte program registers ignore
//!   writes while OPTCR.OPTLOCK is set; OPTCR.OPTSTART copies the program registers to the
//!   current ones and is recorded; status registers read idle.
//! - SYSCFG: CCCSR.READY follows CCCSR.EN.
//! - FDCAN1/2: CREL and ENDN identification (ENDN = 0x8765_4321); CCCR resets with INIT set.
//! - USARTs: ISR has TXE and TC set, TEACK/REACK follow CR1.TE/RE.
//! - FDCAN message RAM: plain storage (which is what it is).
//! - HSEM: a read of RLRn takes a free semaphore for the Cortex-M7 (COREID 3).
//! - DBGMCU IDCODE (DEV_ID 0x450), SCB CPUID (Cortex-M7 r1p2), GPIO MODER reset values.
//!
//! Registers outside this list are plain storage; every access to one is logged in
//! [`Peripherals::unmodelled`].

use std::collections::{BTreeMap, HashMap};

use stm32h755::supply::{
    SupplyConfig, PWR_CR3_ADDR, PWR_CR3_POWER_ON_DEFAULT, PWR_CR3_SUPPLY_MASK, PWR_CSR1_ACTVOSRDY,
    PWR_CSR1_ADDR,
};

/// Peripheral space mapped with callbacks: APB/AHB buses of all three domains and DBGMCU.
pub const PERIPH_BASE: u32 = 0x4000_0000;
pub const PERIPH_SIZE: u32 = 0x2000_0000;
/// Cortex-M7 private peripheral bus (SCB, NVIC, SysTick, DWT, ...).
pub const PPB_BASE: u32 = 0xE000_0000;
pub const PPB_SIZE: u32 = 0x0010_0000;

pub const RCC: u32 = 0x5802_4400;
pub const RCC_CR: u32 = RCC;
pub const RCC_CFGR: u32 = RCC + 0x10;
pub const RCC_PLLCKSELR: u32 = RCC + 0x28;
pub const RCC_BDCR: u32 = RCC + 0x70;
pub const RCC_CSR: u32 = RCC + 0x74;

pub const PWR: u32 = 0x5802_4800;
pub const PWR_CR1: u32 = PWR;
pub const PWR_CSR1: u32 = PWR_CSR1_ADDR;
pub const PWR_CR2: u32 = PWR + 0x08;
pub const PWR_CR3: u32 = PWR_CR3_ADDR;
pub const PWR_D3CR: u32 = PWR + 0x18;
/// PWR_D3CR.VOSRDY.
pub const PWR_D3CR_VOSRDY: u32 = 1 << 13;

// The flash interface and option bytes: the chip crate's (one definition for the checks,
// both simulated boards and this model).
pub use stm32h755::flash::{
    BOOT4_DEFAULT, BOOT7_DEFAULT, FLASH, FLASH_ACR, FLASH_BOOT4_CURR, FLASH_BOOT4_PRGR,
    FLASH_BOOT7_CURR, FLASH_BOOT7_PRGR, FLASH_CR1, FLASH_CR2, FLASH_KEYR1, FLASH_KEYR2,
    FLASH_OPTCCR, FLASH_OPTCR, FLASH_OPTKEYR, FLASH_OPTSR_CUR, FLASH_OPTSR_PRG, FLASH_SR1,
    FLASH_SR2, OPTCR_OPTLOCK, OPTCR_OPTSTART, OPTSR_BCM4, OPTSR_BCM7, OPTSR_DEFAULT,
};
use stm32h755::flash::{FLASH_KEY1, FLASH_KEY2, FLASH_OPTKEY1, FLASH_OPTKEY2, OPTSR_OPT_BUSY};

pub const SYSCFG: u32 = 0x5800_0400;
pub const SYSCFG_CCCSR: u32 = SYSCFG + 0x20;

pub const HSEM: u32 = 0x5802_6400;
/// The Cortex-M7's HSEM core ID.
const HSEM_COREID_CM7: u32 = 3;

pub const FDCAN1: u32 = 0x4000_A000;
pub const FDCAN2: u32 = 0x4000_A400;
/// FDCAN_CREL (release 3.2.1, 2014-12-18) and FDCAN_ENDN (endianness test value).
pub const FDCAN_CREL_VALUE: u32 = 0x3214_1218;
pub const FDCAN_ENDN_VALUE: u32 = 0x8765_4321;

/// FDCAN message RAM: plain RAM is its model.
pub const FDCAN_MESSAGE_RAM: std::ops::Range<u32> = 0x4000_AC00..0x4000_D400;

pub use stm32h755::debug::{DBGMCU_IDCODE, DBGMCU_IDCODE_VALUE};
pub const SCB_CPUID: u32 = 0xE000_ED00;
/// Cortex-M7 r1p2.
pub const SCB_CPUID_VALUE: u32 = stm32h755::debug::armv7m::CPUID_CM7;

/// USART/UART/LPUART bases (ISR at +0x1C, CR1 at +0x00).
const USARTS: [(u32, &str); 9] = [
    (0x4001_1000, "USART1"),
    (0x4000_4400, "USART2"),
    (0x4000_4800, "USART3"),
    (0x4000_4C00, "UART4"),
    (0x4000_5000, "UART5"),
    (0x4001_1400, "USART6"),
    (0x4000_7800, "UART7"),
    (0x4000_7C00, "UART8"),
    (0x5800_0C00, "LPUART1"),
];

/// Peripheral blocks, for naming addresses in messages (base, size, name).
const BLOCKS: [(u32, u32, &str); 36] = [
    (0x4000_0000, 0x400, "TIM2"),
    (0x4000_0400, 0x400, "TIM3"),
    (0x4000_0800, 0x400, "TIM4"),
    (0x4000_4400, 0x400, "USART2"),
    (0x4000_4800, 0x400, "USART3"),
    (0x4000_4C00, 0x400, "UART4"),
    (0x4000_5000, 0x400, "UART5"),
    (0x4000_7800, 0x400, "UART7"),
    (0x4000_7C00, 0x400, "UART8"),
    (0x4000_A000, 0x400, "FDCAN1"),
    (0x4000_A400, 0x400, "FDCAN2"),
    (0x4000_A800, 0x400, "FDCAN_CCU"),
    (0x4000_AC00, 0x2800, "FDCAN message RAM"),
    (0x4001_0000, 0x400, "TIM1"),
    (0x4001_1000, 0x400, "USART1"),
    (0x4001_1400, 0x400, "USART6"),
    (0x4002_0000, 0x400, "DMA1"),
    (0x4002_0400, 0x400, "DMA2"),
    (0x4002_0800, 0x400, "DMAMUX1"),
    (0x5200_0000, 0x1000, "MDMA"),
    (0x5200_2000, 0x1000, "FLASH"),
    (0x5800_0000, 0x400, "EXTI"),
    (0x5800_0400, 0x400, "SYSCFG"),
    (0x5800_0C00, 0x400, "LPUART1"),
    (0x5802_0000, 0x2C00, "GPIO"),
    (0x5802_4400, 0x400, "RCC"),
    (0x5802_4800, 0x400, "PWR"),
    (0x5802_6400, 0x400, "HSEM"),
    (0x5C00_1000, 0x400, "DBGMCU"),
    (0xE000_1000, 0x1000, "DWT"),
    (0xE000_E010, 0x10, "SysTick"),
    (0xE000_E100, 0xC00, "NVIC"),
    (0xE000_ED00, 0x90, "SCB"),
    (0xE000_EF00, 0x100, "SCB cache/ID"),
    (0xE000_E000, 0x1000, "SCS"),
    (0xE004_2000, 0x1000, "DBGMCU(PPB)"),
];

/// Named registers whose reset value the model knows: (address, name, reset value).
const NAMED: &[(u32, &str, u32)] = &[
    (RCC_CR, "RCC_CR", 0x0000_0025),
    (RCC + 0x04, "RCC_HSICFGR", 0),
    (RCC + 0x08, "RCC_CRRCR", 0),
    (RCC + 0x0C, "RCC_CSICFGR", 0),
    (RCC_CFGR, "RCC_CFGR", 0),
    (RCC + 0x18, "RCC_D1CFGR", 0),
    (RCC + 0x1C, "RCC_D2CFGR", 0),
    (RCC + 0x20, "RCC_D3CFGR", 0),
    (RCC + 0x28, "RCC_PLLCKSELR", 0x0202_0200),
    (RCC + 0x2C, "RCC_PLLCFGR", 0x01FF_0000),
    (RCC + 0x30, "RCC_PLL1DIVR", 0x0101_0280),
    (RCC + 0x34, "RCC_PLL1FRACR", 0),
    (RCC + 0x38, "RCC_PLL2DIVR", 0x0101_0280),
    (RCC + 0x3C, "RCC_PLL2FRACR", 0),
    (RCC + 0x40, "RCC_PLL3DIVR", 0x0101_0280),
    (RCC + 0x44, "RCC_PLL3FRACR", 0),
    (RCC + 0x4C, "RCC_D1CCIPR", 0),
    (RCC + 0x50, "RCC_D2CCIP1R", 0),
    (RCC + 0x54, "RCC_D2CCIP2R", 0),
    (RCC + 0x58, "RCC_D3CCIPR", 0),
    (RCC + 0x60, "RCC_CIER", 0),
    (RCC + 0x64, "RCC_CIFR", 0),
    (RCC + 0x68, "RCC_CICR", 0),
    (RCC_BDCR, "RCC_BDCR", 0),
    (RCC_CSR, "RCC_CSR", 0),
    (RCC + 0x7C, "RCC_AHB3RSTR", 0),
    (RCC + 0x80, "RCC_AHB1RSTR", 0),
    (RCC + 0x84, "RCC_AHB2RSTR", 0),
    (RCC + 0x88, "RCC_AHB4RSTR", 0),
    (RCC + 0x8C, "RCC_APB3RSTR", 0),
    (RCC + 0x90, "RCC_APB1LRSTR", 0),
    (RCC + 0x94, "RCC_APB1HRSTR", 0),
    (RCC + 0x98, "RCC_APB2RSTR", 0),
    (RCC + 0x9C, "RCC_APB4RSTR", 0),
    (RCC + 0xA0, "RCC_GCR", 0),
    (RCC + 0xD0, "RCC_RSR", 0),
    (RCC + 0xD4, "RCC_AHB3ENR", 0),
    (RCC + 0xD8, "RCC_AHB1ENR", 0),
    (RCC + 0xDC, "RCC_AHB2ENR", 0),
    (RCC + 0xE0, "RCC_AHB4ENR", 0),
    (RCC + 0xE4, "RCC_APB3ENR", 0),
    (RCC + 0xE8, "RCC_APB1LENR", 0),
    (RCC + 0xEC, "RCC_APB1HENR", 0),
    (RCC + 0xF0, "RCC_APB2ENR", 0),
    (RCC + 0xF4, "RCC_APB4ENR", 0),
    (RCC + 0x130, "RCC_C1_RSR", 0),
    (RCC + 0x134, "RCC_C1_AHB3ENR", 0),
    (RCC + 0x138, "RCC_C1_AHB1ENR", 0),
    (RCC + 0x13C, "RCC_C1_AHB2ENR", 0),
    (RCC + 0x140, "RCC_C1_AHB4ENR", 0),
    (RCC + 0x144, "RCC_C1_APB3ENR", 0),
    (RCC + 0x148, "RCC_C1_APB1LENR", 0),
    (RCC + 0x14C, "RCC_C1_APB1HENR", 0),
    (RCC + 0x150, "RCC_C1_APB2ENR", 0),
    (RCC + 0x154, "RCC_C1_APB4ENR", 0),
    (PWR_CR1, "PWR_CR1", 0xF000_C000),
    (PWR_CSR1, "PWR_CSR1", 0),
    (PWR_CR2, "PWR_CR2", 0),
    (PWR_CR3, "PWR_CR3", PWR_CR3_POWER_ON_DEFAULT),
    (PWR + 0x10, "PWR_CPUCR", 0),
    (PWR_D3CR, "PWR_D3CR", 0x0000_4000),
    (FLASH_ACR, "FLASH_ACR", 0x37),
    (FLASH_KEYR1, "FLASH_KEYR1", 0),
    (FLASH_OPTKEYR, "FLASH_OPTKEYR", 0),
    (FLASH_CR1, "FLASH_CR1", 0x31),
    (FLASH_SR1, "FLASH_SR1", 0),
    (FLASH + 0x14, "FLASH_CCR1", 0),
    (FLASH_OPTCR, "FLASH_OPTCR", OPTCR_OPTLOCK),
    (FLASH_OPTSR_CUR, "FLASH_OPTSR_CUR", OPTSR_DEFAULT),
    (FLASH_OPTSR_PRG, "FLASH_OPTSR_PRG", OPTSR_DEFAULT),
    (FLASH_OPTCCR, "FLASH_OPTCCR", 0),
    (FLASH + 0x28, "FLASH_PRAR_CUR1", 0xFF),
    (FLASH + 0x2C, "FLASH_PRAR_PRG1", 0xFF),
    (FLASH + 0x30, "FLASH_SCAR_CUR1", 0xFF),
    (FLASH + 0x34, "FLASH_SCAR_PRG1", 0xFF),
    (FLASH + 0x38, "FLASH_WPSN_CUR1R", 0xFF),
    (FLASH + 0x3C, "FLASH_WPSN_PRG1R", 0xFF),
    (FLASH_BOOT7_CURR, "FLASH_BOOT7_CURR", BOOT7_DEFAULT),
    (FLASH_BOOT7_PRGR, "FLASH_BOOT7_PRGR", BOOT7_DEFAULT),
    (FLASH_BOOT4_CURR, "FLASH_BOOT4_CURR", BOOT4_DEFAULT),
    (FLASH_BOOT4_PRGR, "FLASH_BOOT4_PRGR", BOOT4_DEFAULT),
    (FLASH_KEYR2, "FLASH_KEYR2", 0),
    (FLASH_CR2, "FLASH_CR2", 0x31),
    (FLASH_SR2, "FLASH_SR2", 0),
    (FLASH + 0x114, "FLASH_CCR2", 0),
    (FLASH + 0x128, "FLASH_PRAR_CUR2", 0xFF),
    (FLASH + 0x12C, "FLASH_PRAR_PRG2", 0xFF),
    (FLASH + 0x130, "FLASH_SCAR_CUR2", 0xFF),
    (FLASH + 0x134, "FLASH_SCAR_PRG2", 0xFF),
    (FLASH + 0x138, "FLASH_WPSN_CUR2R", 0xFF),
    (FLASH + 0x13C, "FLASH_WPSN_PRG2R", 0xFF),
    (SYSCFG_CCCSR, "SYSCFG_CCCSR", 0),
    (SYSCFG + 0x2C, "SYSCFG_PWRCR", 0),
    (FDCAN1, "FDCAN1_CREL", FDCAN_CREL_VALUE),
    (FDCAN1 + 0x04, "FDCAN1_ENDN", FDCAN_ENDN_VALUE),
    (FDCAN1 + 0x18, "FDCAN1_CCCR", 0x1),
    (FDCAN2, "FDCAN2_CREL", FDCAN_CREL_VALUE),
    (FDCAN2 + 0x04, "FDCAN2_ENDN", FDCAN_ENDN_VALUE),
    (FDCAN2 + 0x18, "FDCAN2_CCCR", 0x1),
    (0x5802_0000, "GPIOA_MODER", 0xABFF_FFFF),
    (0x5802_0400, "GPIOB_MODER", 0xFFFF_FEBF),
    (0x5802_0800, "GPIOC_MODER", 0xFFFF_FFFF),
    (0x5802_0C00, "GPIOD_MODER", 0xFFFF_FFFF),
    (0x5802_1000, "GPIOE_MODER", 0xFFFF_FFFF),
    (0x5802_1400, "GPIOF_MODER", 0xFFFF_FFFF),
    (0x5802_1800, "GPIOG_MODER", 0xFFFF_FFFF),
    (0x5802_1C00, "GPIOH_MODER", 0xFFFF_FFFF),
    (0x5802_2000, "GPIOI_MODER", 0xFFFF_FFFF),
    (0x5802_2400, "GPIOJ_MODER", 0xFFFF_FFFF),
    (0x5802_2800, "GPIOK_MODER", 0xFFFF_FFFF),
    (DBGMCU_IDCODE, "DBGMCU_IDCODE", DBGMCU_IDCODE_VALUE),
    (SCB_CPUID, "SCB_CPUID", SCB_CPUID_VALUE),
    (0xE000_ED88, "SCB_CPACR", 0),
];

/// FLASH registers that exist once and appear in both banks' halves (+0x100 mirrors).
const FLASH_SHARED: [u32; 10] = [0x00, 0x08, 0x18, 0x1C, 0x20, 0x24, 0x40, 0x44, 0x48, 0x4C];

/// Option-byte program registers (and their key/control registers): every write is recorded.
const OPTION_REGISTERS: [u32; 12] = [
    FLASH_OPTKEYR,
    FLASH_OPTCR,
    FLASH_OPTSR_PRG,
    FLASH_OPTCCR,
    FLASH + 0x2C,
    FLASH + 0x34,
    FLASH + 0x3C,
    FLASH_BOOT7_PRGR,
    FLASH_BOOT4_PRGR,
    FLASH + 0x12C,
    FLASH + 0x134,
    FLASH + 0x13C,
];

/// Where in the program an access happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Site {
    pub pc: u32,
    /// Instructions executed before this one.
    pub instruction: u64,
}

/// One write to PWR_CR3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cr3Write {
    pub site: Site,
    /// The 32-bit value written (after merging a byte/halfword write).
    pub value: u32,
    /// False when the supply bits were already latched by an earlier write (ignored).
    pub latched: bool,
}

impl Cr3Write {
    pub fn supply_bits(&self) -> u32 {
        self.value & PWR_CR3_SUPPLY_MASK
    }
    pub fn supply(&self) -> Option<SupplyConfig> {
        SupplyConfig::from_cr3(self.value)
    }
}

/// One write to an option-byte register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionWrite {
    pub site: Site,
    pub address: u32,
    pub register: String,
    pub value: u32,
    /// False when the chip ignores it (OPTCR.OPTLOCK set).
    pub accepted: bool,
}

/// An option-byte change started through FLASH_OPTCR.OPTSTART.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionStart {
    pub site: Site,
    /// FLASH_OPTSR_PRG at the start: what the option bytes become.
    pub optsr: u32,
    pub boot7: u32,
    pub boot4: u32,
    /// False when OPTCR was still locked: the chip ignores the start.
    pub unlocked: bool,
}

impl OptionStart {
    pub fn disables_cm7_boot(&self) -> bool {
        self.unlocked && self.optsr & OPTSR_BCM7 == 0
    }
}

/// Accesses to a register the model does not know (plain storage, reset value 0).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterUse {
    pub reads: u64,
    pub writes: u64,
    pub first: Site,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum KeyState {
    #[default]
    Locked,
    HalfKey,
    Unlocked,
    /// Wrong sequence: locked until reset.
    Blocked,
}

impl KeyState {
    fn feed(self, value: u32, key1: u32, key2: u32) -> Self {
        match (self, value) {
            (Self::Blocked, _) => Self::Blocked,
            (Self::Locked, v) if v == key1 => Self::HalfKey,
            (Self::HalfKey, v) if v == key2 => Self::Unlocked,
            _ => Self::Blocked,
        }
    }
}

/// The register state of the emulated chip.
#[derive(Clone, Debug)]
pub struct Peripherals {
    wiring: SupplyConfig,
    store: HashMap<u32, u32>,
    cr3_latched: Option<u32>,
    bank1: KeyState,
    bank2: KeyState,
    options: KeyState,
    /// Every write to PWR_CR3, in order.
    pub cr3_writes: Vec<Cr3Write>,
    /// Every write to an option-byte register, in order.
    pub option_writes: Vec<OptionWrite>,
    /// Every OPTCR.OPTSTART.
    pub option_starts: Vec<OptionStart>,
    /// Accesses to registers the model does not know, by address.
    pub unmodelled: BTreeMap<u32, RegisterUse>,
}

impl Peripherals {
    /// A chip just after power-on on a board whose supply is wired as `wiring`.
    pub fn new(wiring: SupplyConfig) -> Self {
        Self {
            wiring,
            store: HashMap::new(),
            cr3_latched: None,
            bank1: KeyState::Locked,
            bank2: KeyState::Locked,
            options: KeyState::Locked,
            cr3_writes: Vec::new(),
            option_writes: Vec::new(),
            option_starts: Vec::new(),
            unmodelled: BTreeMap::new(),
        }
    }

    pub fn wiring(&self) -> SupplyConfig {
        self.wiring
    }

    /// The supply bits latched in PWR_CR3, if the firmware wrote them.
    pub fn latched_supply_bits(&self) -> Option<u32> {
        self.cr3_latched
    }

    /// ACTVOSRDY: the voltage levels are valid. True before any CR3 write (power-on default)
    /// and after a write of the board's own supply configuration.
    pub fn supply_valid(&self) -> bool {
        match self.cr3_latched {
            None => true,
            Some(bits) => SupplyConfig::from_cr3(bits) == Some(self.wiring),
        }
    }

    /// Reads `size` bytes at `addr` (any alignment inside one word).
    pub fn read(&mut self, addr: u32, size: usize, site: Site) -> u32 {
        let word = canonical(addr & !3);
        let shift = (addr & 3) * 8;
        let full = self.read_word(word, site);
        (full >> shift) & mask(size)
    }

    /// Writes `size` bytes of `value` at `addr`, merged into the register's word.
    pub fn write(&mut self, addr: u32, size: usize, value: u32, site: Site) {
        let word = canonical(addr & !3);
        let shift = (addr & 3) * 8;
        let m = mask(size) << shift;
        let merged = (self.stored(word) & !m) | ((value << shift) & m);
        self.write_word(word, merged, site);
    }

    /// The name of the register at `addr`: "RCC_CR", or "TIM2+0x24", or the bare address.
    pub fn register_name(addr: u32) -> String {
        let word = canonical(addr & !3);
        if let Some((_, name, _)) = NAMED.iter().find(|(a, _, _)| *a == word) {
            return (*name).to_string();
        }
        if let Some((_, name)) = USARTS.iter().find(|(b, _)| word == b + 0x1C) {
            return format!("{name}_ISR");
        }
        if (HSEM..HSEM + 0x80).contains(&word) {
            return format!("HSEM_R{}", (word - HSEM) / 4);
        }
        if (HSEM + 0x80..HSEM + 0x100).contains(&word) {
            return format!("HSEM_RLR{}", (word - HSEM - 0x80) / 4);
        }
        if let Some((base, _, name)) = BLOCKS
            .iter()
            .find(|(b, size, _)| (*b..b.saturating_add(*size)).contains(&addr))
        {
            return format!("{name}+{:#x}", addr - base);
        }
        format!("{addr:#010x}")
    }

    fn stored(&self, word: u32) -> u32 {
        match self.store.get(&word) {
            Some(v) => *v,
            None => reset_value(word).unwrap_or(0),
        }
    }

    fn note_unmodelled(&mut self, word: u32, write: bool, site: Site) {
        if is_modelled(word) {
            return;
        }
        let entry = self.unmodelled.entry(word).or_insert(RegisterUse {
            reads: 0,
            writes: 0,
            first: site,
        });
        if write {
            entry.writes += 1;
        } else {
            entry.reads += 1;
        }
    }

    /// A chip after a system reset that keeps the PWR supply latch of the previous run
    /// (`latched`: the supply bits latched since the last power-on, if any).
    pub fn after_reset(wiring: SupplyConfig, latched: Option<u32>) -> Self {
        let mut p = Self::new(wiring);
        if let Some(bits) = latched {
            p.cr3_latched = Some(bits);
            p.store.insert(
                PWR_CR3,
                (PWR_CR3_POWER_ON_DEFAULT & !PWR_CR3_SUPPLY_MASK) | bits,
            );
        }
        p
    }

    /// Sets the option bytes the chip loads at reset (current and program registers).
    pub fn set_option_bytes(&mut self, optsr: u32, boot7: u32, boot4: u32) {
        for (reg, v) in [
            (FLASH_OPTSR_CUR, optsr),
            (FLASH_OPTSR_PRG, optsr),
            (FLASH_BOOT7_CURR, boot7),
            (FLASH_BOOT7_PRGR, boot7),
            (FLASH_BOOT4_CURR, boot4),
            (FLASH_BOOT4_PRGR, boot4),
        ] {
            self.store.insert(reg, v);
        }
    }

    /// The register at `addr` as the firmware would read it, without side effects (no HSEM
    /// semaphore taken, nothing logged): for a debug probe.
    pub fn peek(&self, addr: u32) -> u32 {
        let word = canonical(addr & !3);
        self.value(word) >> ((addr & 3) * 8)
    }

    /// Replaces the stored word at `addr` (a register a device model keeps up to date).
    pub fn poke(&mut self, addr: u32, value: u32) {
        self.store.insert(canonical(addr & !3), value);
    }

    /// PLL1..3 ON bits of RCC_CR.
    fn pll_on(&self) -> [bool; 3] {
        let cr = self.stored(RCC_CR);
        [24, 26, 28].map(|b| cr & (1 << b) != 0)
    }

    /// Whether bank 1's control register is unlocked (FLASH_KEYR1 sequence done).
    pub fn bank1_unlocked(&self) -> bool {
        self.bank1 == KeyState::Unlocked
    }

    /// Whether bank 2's control register is unlocked (FLASH_KEYR2 sequence done).
    pub fn bank2_unlocked(&self) -> bool {
        self.bank2 == KeyState::Unlocked
    }

    fn read_word(&mut self, word: u32, site: Site) -> u32 {
        self.note_unmodelled(word, false, site);
        if (HSEM + 0x80..HSEM + 0x100).contains(&word) {
            let r = word - 0x80;
            let cur = self.stored(r);
            if cur & (1 << 31) == 0 {
                let taken = (1 << 31) | (HSEM_COREID_CM7 << 8);
                self.store.insert(r, taken);
                return taken;
            }
            return cur;
        }
        self.value(word)
    }

    /// The modelled value of a register word (no side effects).
    fn value(&self, word: u32) -> u32 {
        let v = self.stored(word);
        match word {
            RCC_CR => {
                let mut r = v | (1 << 5) | (1 << 14) | (1 << 15); // HSIDIVF, D1CKRDY, D2CKRDY
                for (on, rdy) in [
                    (0, 2),
                    (7, 8),
                    (12, 13),
                    (16, 17),
                    (24, 25),
                    (26, 27),
                    (28, 29),
                ] {
                    r = follow(r, on, rdy);
                }
                r
            }
            RCC_CFGR => (v & !(0b111 << 3)) | ((v & 0b111) << 3),
            RCC_BDCR | RCC_CSR => follow(v, 0, 1),
            PWR_CSR1 => {
                let vos = self.stored(PWR_D3CR) & (0b11 << 14);
                let ready = if self.supply_valid() {
                    PWR_CSR1_ACTVOSRDY
                } else {
                    0
                };
                (v & !(0b111 << 13)) | vos | ready
            }
            PWR_CR2 => follow(v, 0, 16),
            PWR_CR3 => follow(v, 24, 26),
            PWR_D3CR => {
                let ready = if self.supply_valid() {
                    PWR_D3CR_VOSRDY
                } else {
                    0
                };
                (v & !PWR_D3CR_VOSRDY) | ready
            }
            FLASH_CR1 => lock_bit(v, self.bank1),
            FLASH_CR2 => lock_bit(v, self.bank2),
            FLASH_OPTCR => lock_bit(v & !OPTCR_OPTSTART, self.options),
            FLASH_OPTSR_CUR => v & !OPTSR_OPT_BUSY,
            FLASH_SR1 | FLASH_SR2 => 0,
            SYSCFG_CCCSR => follow(v, 0, 8),
            w if (HSEM + 0x80..HSEM + 0x100).contains(&w) => self.stored(w - 0x80),
            w if USARTS.iter().any(|(b, _)| w == b + 0x1C) => {
                let cr1 = self.stored(w - 0x1C);
                let mut r = v | (1 << 7) | (1 << 6); // TXE/TXFNF, TC
                if cr1 & (1 << 3) != 0 {
                    r |= 1 << 21; // TEACK
                }
                if cr1 & (1 << 2) != 0 {
                    r |= 1 << 22; // REACK
                }
                r
            }
            _ => v,
        }
    }

    fn write_word(&mut self, word: u32, value: u32, site: Site) {
        self.note_unmodelled(word, true, site);
        if OPTION_REGISTERS.contains(&word) {
            let accepted = word == FLASH_OPTKEYR || self.options == KeyState::Unlocked;
            self.option_writes.push(OptionWrite {
                site,
                address: word,
                register: Self::register_name(word),
                value,
                accepted,
            });
        }
        match word {
            PWR_CR3 => {
                let latched = self.cr3_latched.is_none();
                self.cr3_writes.push(Cr3Write {
                    site,
                    value,
                    latched,
                });
                let supply = match self.cr3_latched {
                    Some(bits) => bits,
                    None => {
                        let bits = value & PWR_CR3_SUPPLY_MASK;
                        self.cr3_latched = Some(bits);
                        bits
                    }
                };
                self.store
                    .insert(word, (value & !PWR_CR3_SUPPLY_MASK) | supply);
            }
            // PLL configuration is write-protected while the PLL runs (RM0399 8.7.11/8.7.13):
            // DIVMx while PLLx is on, PLLSRC while any PLL is on, PLLxDIVR while PLLx is on.
            RCC_PLLCKSELR => {
                let on = self.pll_on();
                let old = self.stored(word);
                let mut keep = 0;
                if on.iter().any(|o| *o) {
                    keep |= 0b11;
                }
                for (i, shift) in [4, 12, 20].into_iter().enumerate() {
                    if on[i] {
                        keep |= 0x3F << shift;
                    }
                }
                self.store.insert(word, (old & keep) | (value & !keep));
            }
            w if [RCC + 0x30, RCC + 0x38, RCC + 0x40].contains(&w) => {
                let i = ((w - RCC - 0x30) / 8) as usize;
                if !self.pll_on()[i] {
                    self.store.insert(w, value);
                }
            }
            FLASH_KEYR1 => self.bank1 = self.bank1.feed(value, FLASH_KEY1, FLASH_KEY2),
            FLASH_KEYR2 => self.bank2 = self.bank2.feed(value, FLASH_KEY1, FLASH_KEY2),
            FLASH_OPTKEYR => self.options = self.options.feed(value, FLASH_OPTKEY1, FLASH_OPTKEY2),
            FLASH_CR1 | FLASH_CR2 => {
                let state = if word == FLASH_CR1 {
                    &mut self.bank1
                } else {
                    &mut self.bank2
                };
                if *state == KeyState::Unlocked {
                    if value & 1 != 0 {
                        *state = KeyState::Locked;
                    }
                    self.store.insert(word, value & !1);
                }
            }
            FLASH_OPTCR => {
                let unlocked = self.options == KeyState::Unlocked;
                if value & OPTCR_OPTSTART != 0 {
                    let start = OptionStart {
                        site,
                        optsr: self.stored(FLASH_OPTSR_PRG),
                        boot7: self.stored(FLASH_BOOT7_PRGR),
                        boot4: self.stored(FLASH_BOOT4_PRGR),
                        unlocked,
                    };
                    if unlocked {
                        self.store.insert(FLASH_OPTSR_CUR, start.optsr);
                        self.store.insert(FLASH_BOOT7_CURR, start.boot7);
                        self.store.insert(FLASH_BOOT4_CURR, start.boot4);
                    }
                    self.option_starts.push(start);
                }
                if unlocked {
                    if value & OPTCR_OPTLOCK != 0 {
                        self.options = KeyState::Locked;
                    }
                    self.store
                        .insert(word, value & !(OPTCR_OPTLOCK | OPTCR_OPTSTART));
                }
            }
            w if OPTION_REGISTERS.contains(&w) => {
                if self.options == KeyState::Unlocked {
                    self.store.insert(w, value);
                }
            }
            // Read-only identification and status registers.
            FDCAN1 | FDCAN2 | DBGMCU_IDCODE | SCB_CPUID | FLASH_OPTSR_CUR | FLASH_BOOT7_CURR
            | FLASH_BOOT4_CURR | PWR_CSR1 => {}
            w if w == FDCAN1 + 4 || w == FDCAN2 + 4 => {}
            FLASH_SR1 | FLASH_SR2 => {}
            w if (HSEM..HSEM + 0x80).contains(&w) => {
                let cur = self.stored(w);
                if value & (1 << 31) != 0 {
                    if cur & (1 << 31) == 0 {
                        self.store.insert(w, value);
                    }
                } else if cur & 0xFFFF == value & 0xFFFF {
                    self.store.insert(w, 0);
                }
            }
            _ => {
                self.store.insert(word, value);
            }
        }
    }
}

/// Sets bit `rdy` to bit `on`.
fn follow(v: u32, on: u32, rdy: u32) -> u32 {
    (v & !(1 << rdy)) | (((v >> on) & 1) << rdy)
}

fn lock_bit(v: u32, state: KeyState) -> u32 {
    if state == KeyState::Unlocked {
        v & !1
    } else {
        v | 1
    }
}

fn mask(size: usize) -> u32 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}

/// FLASH's +0x100 mirrors of the registers both banks share.
fn canonical(word: u32) -> u32 {
    if (FLASH + 0x100..FLASH + 0x200).contains(&word)
        && FLASH_SHARED.contains(&(word - FLASH - 0x100))
    {
        word - 0x100
    } else {
        word
    }
}

fn reset_value(word: u32) -> Option<u32> {
    NAMED
        .iter()
        .find(|(a, _, _)| *a == word)
        .map(|(_, _, reset)| *reset)
}

fn is_modelled(word: u32) -> bool {
    NAMED.iter().any(|(a, _, _)| *a == word)
        || FDCAN_MESSAGE_RAM.contains(&word)
        || (HSEM..HSEM + 0x100).contains(&word)
        || USARTS.iter().any(|(b, _)| word == b + 0x1C)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Site = Site {
        pc: 0x0800_0100,
        instruction: 7,
    };

    #[test]
    fn ready_bits_follow_enables() {
        let mut p = Peripherals::new(SupplyConfig::DirectSmps);
        assert_eq!(p.read(RCC_CR, 4, AT) & (1 << 17), 0, "HSERDY without HSEON");
        let cr = p.read(RCC_CR, 4, AT);
        p.write(RCC_CR, 4, cr | (1 << 16) | (1 << 24), AT);
        let cr = p.read(RCC_CR, 4, AT);
        assert_ne!(cr & (1 << 17), 0);
        assert_ne!(cr & (1 << 25), 0);
        assert_eq!(cr & (1 << 27), 0, "PLL2 stays off");
        p.write(RCC_CFGR, 4, 3, AT);
        assert_eq!((p.read(RCC_CFGR, 4, AT) >> 3) & 7, 3);
        // A byte write to the high byte (PLL1ON off) keeps the rest.
        p.write(RCC_CR + 3, 1, 0, AT);
        assert_eq!(p.read(RCC_CR, 4, AT) & (1 << 25), 0);
        assert_ne!(p.read(RCC_CR, 4, AT) & (1 << 17), 0);
    }

    #[test]
    fn cr3_latches_once_and_actvosrdy_follows_the_wiring() {
        let mut p = Peripherals::new(SupplyConfig::DirectSmps);
        assert!(p.supply_valid());
        p.write(PWR_CR3, 4, 0x02, AT);
        assert_eq!(p.read(PWR_CSR1, 4, AT) & PWR_CSR1_ACTVOSRDY, 0);
        p.write(PWR_CR3, 4, 0x04, AT);
        assert_eq!(p.read(PWR_CR3, 4, AT) & 0x3F, 0x02, "second write ignored");
        assert_eq!(p.cr3_writes.len(), 2);
        assert!(p.cr3_writes[0].latched && !p.cr3_writes[1].latched);

        let mut ok = Peripherals::new(SupplyConfig::DirectSmps);
        ok.write(PWR_CR3, 4, 0x04, AT);
        assert_ne!(ok.read(PWR_CSR1, 4, AT) & PWR_CSR1_ACTVOSRDY, 0);
        ok.write(PWR_D3CR, 4, 3 << 14, AT);
        assert_ne!(ok.read(PWR_D3CR, 4, AT) & PWR_D3CR_VOSRDY, 0);
        assert_eq!(ok.read(PWR_CSR1, 4, AT) >> 14 & 3, 3, "ACTVOS follows VOS");
    }

    #[test]
    fn option_bytes_need_the_keys_and_record_the_start() {
        let mut p = Peripherals::new(SupplyConfig::DirectSmps);
        p.write(FLASH_OPTSR_PRG, 4, OPTSR_DEFAULT & !OPTSR_BCM7, AT);
        assert_eq!(p.read(FLASH_OPTSR_PRG, 4, AT), OPTSR_DEFAULT, "locked");
        p.write(FLASH_OPTKEYR, 4, FLASH_OPTKEY1, AT);
        p.write(FLASH_OPTKEYR, 4, FLASH_OPTKEY2, AT);
        assert_eq!(p.read(FLASH_OPTCR, 4, AT) & OPTCR_OPTLOCK, 0);
        // Through the bank-2 mirror.
        p.write(FLASH_OPTSR_PRG + 0x100, 4, OPTSR_DEFAULT & !OPTSR_BCM7, AT);
        p.write(FLASH_OPTCR, 4, OPTCR_OPTSTART, AT);
        assert_eq!(p.option_starts.len(), 1);
        assert!(p.option_starts[0].disables_cm7_boot());
        assert_eq!(p.read(FLASH_OPTSR_CUR, 4, AT) & OPTSR_BCM7, 0);
        assert_eq!(p.option_writes.len(), 5);
        assert!(!p.option_writes[0].accepted);
    }

    #[test]
    fn identification_and_unmodelled_log() {
        let mut p = Peripherals::new(SupplyConfig::DirectSmps);
        assert_eq!(p.read(FDCAN1 + 4, 4, AT), 0x8765_4321);
        p.write(FDCAN1 + 4, 4, 0, AT);
        assert_eq!(p.read(FDCAN1 + 4, 4, AT), 0x8765_4321);
        assert_eq!(p.read(0x4000_0024, 4, AT), 0);
        assert_eq!(p.unmodelled[&0x4000_0024].reads, 1);
        assert!(!p.unmodelled.contains_key(&RCC_CR));
        assert_eq!(Peripherals::register_name(0x4000_0024), "TIM2+0x24");
        assert_eq!(Peripherals::register_name(PWR_CR3), "PWR_CR3");
        assert_eq!(Peripherals::register_name(0x4000_481C), "USART3_ISR");
    }
}
