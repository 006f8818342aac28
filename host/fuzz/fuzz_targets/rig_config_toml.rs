//! A rig config's text through `RigConfig::from_text` (what `RigConfig::load` runs on the file
//! it reads): an error names a line and column inside the text.
#![no_main]

use std::path::Path;

use bench_config::RigConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    match RigConfig::from_text(Path::new("rig-config/fuzz.toml"), text) {
        Ok(config) => {
            // What the SUMP driver divides by and shifts with is in range.
            let rate = config.pulse_meter.sample_rate_hz;
            assert!(
                rate > 0 && 100_000_000u32.is_multiple_of(rate),
                "sample_rate_hz = {rate}"
            );
            assert!(config.pulse_meter.channel <= 7);
            if let Some(elf) = &config.firmware_elf {
                assert!(elf.starts_with("rig-config"), "{}", elf.display());
            }
        }
        Err(e) => {
            assert_eq!(e.path, "rig-config/fuzz.toml");
            assert!((1..=lines).contains(&e.line), "{e} ({lines} lines)");
            assert!(e.column >= 1, "{e}");
        }
    }
});
