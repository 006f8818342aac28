//! Supply configuration (PWR_CR3, written once per power-on) and the registers a debugger
//! reads to check it.

/// PWR_CR3: supply configuration, written once per power-on.
pub const PWR_CR3_ADDR: u32 = 0x5802_480C;
/// PWR_CSR1: ACTVOSRDY (bit 13) says the voltage levels are valid.
pub const PWR_CSR1_ADDR: u32 = 0x5802_4804;
pub const PWR_CSR1_ACTVOSRDY: u32 = 1 << 13;
/// The supply bits of PWR_CR3 (BYPASS, LDOEN, SMPSEN, SMPSEXTHP, SMPSLEVEL).
pub const PWR_CR3_SUPPLY_MASK: u32 = 0x3F;
/// PWR_CR3 after a power-on reset: SMPSEN + LDOEN, nothing chosen yet.
pub const PWR_CR3_POWER_ON_DEFAULT: u32 = 0x06;

/// The supply configurations of an STM32H7 with internal SMPS (RM0399 table "supply configurations").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SupplyConfig {
    Ldo,
    DirectSmps,
    Smps1v8FeedsLdo,
    Smps2v5FeedsLdo,
    Smps1v8ExternalAndLdo,
    Smps2v5ExternalAndLdo,
    Smps1v8ExternalBypass,
    Smps2v5ExternalBypass,
    ExternalSource,
}

impl SupplyConfig {
    pub const ALL: [SupplyConfig; 9] = [
        Self::Ldo,
        Self::DirectSmps,
        Self::Smps1v8FeedsLdo,
        Self::Smps2v5FeedsLdo,
        Self::Smps1v8ExternalAndLdo,
        Self::Smps2v5ExternalAndLdo,
        Self::Smps1v8ExternalBypass,
        Self::Smps2v5ExternalBypass,
        Self::ExternalSource,
    ];

    /// The low bits of PWR_CR3 that select this configuration (under [`PWR_CR3_SUPPLY_MASK`]).
    pub const fn cr3_bits(self) -> u32 {
        match self {
            Self::Ldo => 0x02,
            Self::DirectSmps => 0x04,
            Self::Smps1v8FeedsLdo => 0x16,
            Self::Smps2v5FeedsLdo => 0x26,
            Self::Smps1v8ExternalAndLdo => 0x1E,
            Self::Smps2v5ExternalAndLdo => 0x2E,
            Self::Smps1v8ExternalBypass => 0x1D,
            Self::Smps2v5ExternalBypass => 0x2D,
            Self::ExternalSource => 0x01,
        }
    }

    /// The configuration whose bits `cr3` holds, if any.
    pub fn from_cr3(cr3: u32) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.cr3_bits() == cr3 & PWR_CR3_SUPPLY_MASK)
    }

    /// Stable lower-case name used in configs, telemetry and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ldo => "ldo",
            Self::DirectSmps => "direct-smps",
            Self::Smps1v8FeedsLdo => "smps-1v8-feeds-ldo",
            Self::Smps2v5FeedsLdo => "smps-2v5-feeds-ldo",
            Self::Smps1v8ExternalAndLdo => "smps-1v8-external-and-ldo",
            Self::Smps2v5ExternalAndLdo => "smps-2v5-external-and-ldo",
            Self::Smps1v8ExternalBypass => "smps-1v8-external-bypass",
            Self::Smps2v5ExternalBypass => "smps-2v5-external-bypass",
            Self::ExternalSource => "external-source",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cr3_bits_round_trip_and_default_is_not_a_choice() {
        for c in SupplyConfig::ALL {
            assert_eq!(SupplyConfig::from_cr3(c.cr3_bits() | 0x0100_0000), Some(c));
            assert_eq!(SupplyConfig::from_name(c.name()), Some(c));
        }
        assert_eq!(SupplyConfig::from_cr3(PWR_CR3_POWER_ON_DEFAULT), None);
    }
}
