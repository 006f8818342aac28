//! Explaining a board that does not answer or runs with the wrong supply: what was found,
//! what it means, how to recover (ST's procedures, see `shared/seeds`).

use stm32h755::supply::{SupplyConfig, PWR_CR3_SUPPLY_MASK};

use rig_instruments::{CoreSelect, DebugProbe};
use stm32h755::flash::{FLASH_OPTSR_CUR, OPTSR_BCM7};

pub const SUPPLY_RECOVERY: &str = "Recovery (ST's procedure for a supply lock-up, automated by `rig recover --erase`): 1) hold NRST (or boot with BOOT0 high into the system bootloader) while applying power, and connect under reset (hardware reset mode); 2) mass-erase the flash; 3) power-cycle once more, because the bootloader or earlier firmware may have latched PWR_CR3; 4) fix the supply choice in the firmware (Direct SMPS on a NUCLEO-H755ZI-Q: embassy `config.rcc.supply_config = SupplyConfig::DirectSMPS`, gauge-logic `FIRMWARE_SUPPLY`) and flash it again.";

pub const M7_BOOT_RECOVERY: &str = "Recovery: `rig recover --restore-boot` sets BCM7 in the option bytes (FLASH_OPTSR_PRG bit 23) through access port 3 (Cortex-M4) and power-cycles (or use STM32CubeProgrammer); keep both cores' boot enabled during development.";

/// What the rig knows when it explains a failure.
pub struct Context {
    pub wiring: SupplyConfig,
    pub rig_path: String,
    /// The supply the firmware under test selects, if known.
    pub firmware_supply: Option<SupplyConfig>,
}

impl Context {
    fn firmware_note(&self) -> String {
        match self.firmware_supply {
            Some(s) => format!(
                "The firmware in flash selects {} ({:#04x}).",
                s.name(),
                s.cr3_bits()
            ),
            None => {
                "The firmware's own supply choice is unknown to the rig (run preflight on its ELF)."
                    .into()
            }
        }
    }

    /// The Cortex-M7 did not answer: ask the Cortex-M4 (AP 3) to tell "M7 boot disabled" from "supply lock-up".
    pub fn no_cm7(&self, probe: &mut dyn DebugProbe) -> String {
        probe.detach();
        let found = probe
            .attach(CoreSelect::Cm4)
            .and_then(|_| probe.read_u32(FLASH_OPTSR_CUR));
        probe.detach();
        match found {
            Ok(optsr) if optsr & OPTSR_BCM7 == 0 => format!(
                "Cortex-M7 boot disabled (BCM7 = 0): the probe reaches the Cortex-M4 (AP 3) but not the Cortex-M7 (AP 0), and FLASH_OPTSR_CUR = {optsr:#010x} has BCM7 = 0. {M7_BOOT_RECOVERY}"
            ),
            Ok(optsr) => format!(
                "The Cortex-M7 does not answer although BCM7 = 1 (FLASH_OPTSR_CUR = {optsr:#010x}) and the Cortex-M4 does: the CM7 firmware may be stuck with debug disabled. Connect under reset and mass-erase."
            ),
            Err(_) => format!(
                "Supply lock-up suspected: neither core answers the probe after power-on. PWR_CR3 could not be read: expected supply bits {:#04x} ({}, the board's wiring in {}), found: unreadable (no debug access). {} A supply choice that does not match the wiring is latched at the first write after power-on, so it shows only after a power cycle. {SUPPLY_RECOVERY}",
                self.wiring.cr3_bits(),
                self.wiring.name(),
                self.rig_path,
                self.firmware_note()
            ),
        }
    }

    /// PWR_CR3 / ACTVOSRDY read back but wrong.
    pub fn wrong_supply(&self, cr3: u32, actvosrdy: bool) -> String {
        let found = cr3 & PWR_CR3_SUPPLY_MASK;
        let found_name = SupplyConfig::from_cr3(found).map_or(
            "no valid configuration (power-on default or an invalid combination)",
            |s| s.name(),
        );
        format!(
            "PWR_CR3 = {cr3:#010x}: supply bits expected {:#04x} ({}, the board's wiring), found {found:#04x} ({found_name}); PWR_CSR1.ACTVOSRDY = {}. {} The firmware writes PWR_CR3 in its clock/PWR init before anything else. {SUPPLY_RECOVERY}",
            self.wiring.cr3_bits(),
            self.wiring.name(),
            u8::from(actvosrdy),
            self.firmware_note(),
        )
    }
}
