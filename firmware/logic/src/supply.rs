//! The supply configuration this firmware build selects. The chip's facts (PWR_CR3 bits,
//! the registers a debugger reads) live in the `stm32h755` crate and are re-exported here.

pub use stm32h755::supply::*;

/// The supply this firmware build selects. The NUCLEO-H755ZI-Q is wired for Direct SMPS;
/// the `supply-ldo` feature produces the deliberately wrong build for the rig's tests.
pub const FIRMWARE_SUPPLY: SupplyConfig = if cfg!(feature = "supply-ldo") {
    SupplyConfig::Ldo
} else {
    SupplyConfig::DirectSmps
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_build_selects_direct_smps() {
        assert_eq!(
            FIRMWARE_SUPPLY.cr3_bits(),
            if cfg!(feature = "supply-ldo") {
                0x02
            } else {
                0x04
            }
        );
    }
}
