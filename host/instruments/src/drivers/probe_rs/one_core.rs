//! A probe-rs target description with one of a dual-core chip's cores.
//!
//! probe-rs 0.32 starts a session on every core of the chip, and on an attach under reset it
//! also waits for every core to halt. On an STM32H755 whose option bytes hold one core's boot
//! (BCM4 = 0 or BCM7 = 0), that core's access port does not answer once NRST is released, so
//! the whole attach fails even when the rig wants only the other core; and the failed
//! session's teardown clears C_DEBUGEN and lets the caught core run its firmware (seen on the
//! emulated board: PWR_CR3 latched by the time the rig attached again). A copy of the chip's
//! description that lists only the wanted core (its memory regions and flash algorithms
//! narrowed to it) lets probe-rs attach to that core alone. The name keeps the chip's prefix,
//! so probe-rs picks the same debug sequence (STM32H7: DBGMCU through AP 2).

use ::probe_rs::config::{MemoryRegion, Registry};

/// The registry with a one-core copy of `chip` (keeping the core named `core`, e.g. "cm7"),
/// and that copy's chip name.
pub fn one_core_registry(chip: &str, core: &str) -> Result<(Registry, String), String> {
    let mut registry = Registry::from_builtin_families();
    let (mut family, mut variant) = registry
        .families()
        .iter()
        .find_map(|f| {
            f.variants
                .iter()
                .find(|c| {
                    c.name.eq_ignore_ascii_case(chip)
                        || c.package_variants
                            .iter()
                            .any(|p| p.eq_ignore_ascii_case(chip))
                })
                .map(|c| (f.clone(), c.clone()))
        })
        .ok_or_else(|| format!("probe-rs knows no chip {chip:?}"))?;
    if !variant.cores.iter().any(|c| c.name == core) {
        let names: Vec<&str> = variant.cores.iter().map(|c| c.name.as_str()).collect();
        return Err(format!("{chip} has no core {core:?} (it has {names:?})"));
    }
    let keep = |cores: &mut Vec<String>| cores.retain(|c| c == core);
    variant.cores.retain(|c| c.name == core);
    // The package's name (STM32H755ZITx) with the core: what the rig attaches to.
    variant.name = format!("{chip}-{}", core.to_uppercase());
    variant.package_variants.clear();
    for region in &mut variant.memory_map {
        match region {
            MemoryRegion::Ram(r) => keep(&mut r.cores),
            MemoryRegion::Nvm(r) => keep(&mut r.cores),
            MemoryRegion::Generic(r) => keep(&mut r.cores),
        }
    }
    variant.memory_map.retain(|r| !r.cores().is_empty());
    // An algorithm that names no cores runs on any.
    for algorithm in family
        .flash_algorithms
        .iter_mut()
        .filter(|a| !a.cores.is_empty())
    {
        keep(&mut algorithm.cores);
        if algorithm.cores.is_empty() {
            algorithm.name.clear();
        }
    }
    family
        .flash_algorithms
        .retain(|a| !a.name.is_empty() && variant.flash_algorithms.contains(&a.name));
    variant
        .flash_algorithms
        .retain(|name| family.flash_algorithms.iter().any(|a| &a.name == name));
    family.name = format!("{} ({} only)", family.name, core);
    let name = variant.name.clone();
    family.variants = vec![variant];
    family.chip_detection.clear();
    registry
        .add_target_family(family)
        .map_err(|e| format!("one-core description of {chip}: {e}"))?;
    Ok((registry, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_h755_with_only_its_cortex_m7_is_a_valid_target() {
        let (registry, name) = one_core_registry("STM32H755ZITx", "cm7").expect("registry");
        assert_eq!(name, "STM32H755ZITx-CM7");
        let target = registry.get_target_by_name(&name).expect("target");
        assert_eq!(target.cores.len(), 1);
        assert_eq!(target.cores[0].name, "cm7");
        assert!(!target.flash_algorithms.is_empty());
        assert!(one_core_registry("STM32H755ZITx", "cm33").is_err());
    }
}
