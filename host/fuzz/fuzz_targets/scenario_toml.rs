//! A scenario file's text through `Scenario::from_text` (what `Scenario::load` runs on the
//! file it reads), with the shipped DBC's encoder and without: an error names a line and
//! column inside the text.
#![no_main]

use std::{path::Path, sync::OnceLock};

use libfuzzer_sys::fuzz_target;
use rig_verify::{dbc::OilTempEncoder, scenario::Scenario};

const DBC: &str = include_str!("../../../scenarios/oil_temp.dbc");

fn encoder() -> &'static OilTempEncoder {
    static ENCODER: OnceLock<OilTempEncoder> = OnceLock::new();
    ENCODER.get_or_init(|| {
        OilTempEncoder::from_text(Path::new("scenarios/oil_temp.dbc"), DBC)
            .expect("the shipped DBC loads")
    })
}

fuzz_target!(|data: &[u8]| {
    // A file that is not UTF-8 is refused before parsing (SourceFile::read).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    for enc in [Some(encoder()), None] {
        match Scenario::from_text(Path::new("fuzz.toml"), text, enc) {
            Ok(s) => {
                assert!(!s.steps.is_empty());
                assert!(s.steps.windows(2).all(|w| w[0].line < w[1].line));
                assert!(s.steps.iter().all(|st| (1..=lines).contains(&st.line)));
            }
            Err(e) => {
                assert_eq!(e.path, "fuzz.toml");
                assert!((1..=lines).contains(&e.line), "{e} ({lines} lines)");
                assert!(e.column >= 1, "{e}");
            }
        }
    }
});
