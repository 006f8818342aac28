//! The STM32H7 PWR supply latch: PWR_CR3's supply bits are written once per power-on.

use stm32h755::supply::{SupplyConfig, PWR_CR3_POWER_ON_DEFAULT, PWR_CR3_SUPPLY_MASK};

/// What a supply choice does to a board with a given wiring (a model of RM0399 and the NUCLEO's
/// solder bridges, coarse on purpose).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SupplyOutcome {
    /// The choice matches the wiring: ACTVOSRDY sets, the core runs.
    Ok,
    /// The choice cuts the only Vcore source (e.g. LDO on a Direct-SMPS board): the chip is
    /// dead to the debugger until the next power-on.
    LockUp,
    /// The choice is refused by the SMPS over-voltage protection or is not a valid
    /// combination: ACTVOSRDY stays 0, the core waits in limited mode, debug access works.
    VoltageInvalid,
}

pub fn supply_outcome(wiring: SupplyConfig, chosen: Option<SupplyConfig>) -> SupplyOutcome {
    use SupplyConfig::*;
    match chosen {
        None => SupplyOutcome::VoltageInvalid,
        Some(c) if c == wiring => SupplyOutcome::Ok,
        Some(Ldo | ExternalSource | Smps1v8ExternalBypass | Smps2v5ExternalBypass)
            if wiring == DirectSmps =>
        {
            SupplyOutcome::LockUp
        }
        Some(Smps1v8FeedsLdo | Smps2v5FeedsLdo | Smps1v8ExternalAndLdo | Smps2v5ExternalAndLdo)
            if wiring == DirectSmps =>
        {
            SupplyOutcome::VoltageInvalid
        }
        Some(_) => SupplyOutcome::LockUp,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PwrLatch {
    pub cr3: u32,
    pub latched: bool,
    pub outcome: SupplyOutcome,
}

impl PwrLatch {
    /// After a power-on reset: default bits, nothing latched, voltage valid.
    pub fn power_on() -> Self {
        Self {
            cr3: PWR_CR3_POWER_ON_DEFAULT,
            latched: false,
            outcome: SupplyOutcome::Ok,
        }
    }

    /// A write of PWR_CR3 by the firmware. Ignored once latched; the first write latches,
    /// even an invalid combination (which leaves the bits unchanged).
    pub fn write_cr3(&mut self, value: u32, wiring: SupplyConfig) {
        if self.latched {
            return;
        }
        self.latched = true;
        let chosen = SupplyConfig::from_cr3(value);
        if chosen.is_some() {
            self.cr3 = (self.cr3 & !PWR_CR3_SUPPLY_MASK) | (value & PWR_CR3_SUPPLY_MASK);
        }
        self.outcome = supply_outcome(wiring, chosen);
    }

    pub fn actvosrdy(&self) -> bool {
        self.outcome == SupplyOutcome::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SupplyConfig::*;

    #[test]
    fn first_write_latches_until_power_on() {
        let mut p = PwrLatch::power_on();
        assert_eq!(p.cr3, 0x06);
        p.write_cr3(DirectSmps.cr3_bits(), DirectSmps);
        p.write_cr3(Ldo.cr3_bits(), DirectSmps); // ignored: latched
        assert_eq!((p.cr3 & 0x3F, p.outcome), (0x04, SupplyOutcome::Ok));
        let mut p = PwrLatch::power_on();
        p.write_cr3(Ldo.cr3_bits(), DirectSmps);
        assert_eq!((p.cr3 & 0x3F, p.outcome), (0x02, SupplyOutcome::LockUp));
        assert!(!p.actvosrdy());
    }

    #[test]
    fn invalid_combination_latches_default_bits_with_voltage_invalid() {
        let mut p = PwrLatch::power_on();
        p.write_cr3(0x3F, DirectSmps);
        assert_eq!((p.cr3, p.outcome), (0x06, SupplyOutcome::VoltageInvalid));
        let mut p = PwrLatch::power_on();
        p.write_cr3(Smps1v8FeedsLdo.cr3_bits(), DirectSmps);
        assert_eq!(p.outcome, SupplyOutcome::VoltageInvalid);
    }
}
