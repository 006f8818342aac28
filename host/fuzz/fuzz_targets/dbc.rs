//! A DBC file's text through `OilTempEncoder::from_text` (what `OilTempEncoder::load` runs on
//! the file it reads): it loads only with the layout the firmware was built with, and then
//! encodes what the firmware decodes.
#![no_main]

use std::path::Path;

use gauge_logic::signal::{decode_broadcast, BroadcastReading, OIL_TEMP_SIGNAL};
use libfuzzer_sys::fuzz_target;
use rig_verify::dbc::OilTempEncoder;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    match OilTempEncoder::from_text(Path::new("fuzz.dbc"), text) {
        Ok(enc) => {
            assert_eq!(
                (enc.layout.frame_id, enc.layout.start_bit, enc.layout.size),
                (
                    OIL_TEMP_SIGNAL.frame_id,
                    OIL_TEMP_SIGNAL.start_bit,
                    OIL_TEMP_SIGNAL.size
                )
            );
            let frame = enc.encode(90.0).expect("90 degC is on the scale");
            assert_eq!(
                decode_broadcast(&OIL_TEMP_SIGNAL, &frame),
                BroadcastReading::Temperature(gauge_logic::MilliCelsius(90_000))
            );
        }
        Err(e) => {
            assert_eq!(e.path, "fuzz.dbc");
            assert!((1..=lines).contains(&e.line), "{e} ({lines} lines)");
        }
    }
});
