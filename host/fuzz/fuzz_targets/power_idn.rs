//! A bench supply's answer to `*IDN?`: the SCPI supply's (`scpi::parse_idn_answer`,
//! `looks_like_idn`) and the Korad KA3005P's (`korad::parse_idn_answer`, `looks_like_korad`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rig_instruments::drivers::power::{korad, scpi};

fuzz_target!(|data: &[u8]| {
    match scpi::parse_idn_answer(data) {
        Ok(identity) => {
            assert!(data.ends_with(b"\n"));
            assert!(scpi::looks_like_idn(&identity));
            assert_eq!(identity.matches(',').count(), 3, "{identity:?}");
            assert_eq!(identity, identity.trim());
        }
        Err(reason) => assert!(reason.contains("*IDN?"), "{reason}"),
    }
    match korad::parse_idn_answer(data) {
        Ok(identity) => assert!(korad::looks_like_korad(&identity)),
        Err(reason) => assert!(reason.contains("*IDN?"), "{reason}"),
    }
    let text = String::from_utf8_lossy(data);
    let _ = (scpi::looks_like_idn(&text), korad::looks_like_korad(&text));
    // power.voltage comes from the rig config (0.1..=60 V); vset formats any number.
    if let Some(bytes) = data.get(..8) {
        let volts = f64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        assert!(korad::vset(volts).starts_with("VSET1:"));
    }
});
