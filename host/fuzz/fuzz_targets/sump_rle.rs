//! Run-length encoded SUMP memory entries (chronological) through `rle_decode`, then the decoded
//! samples through the pulse decoder as an RLE capture does (channels 0..=6: bit 7 is the flag).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rig_instruments::{
    drivers::sump::{rle_decode, RLE_COUNT_FLAG, SERVO_PERIOD_US},
    pulse::PulseCapture,
};

fuzz_target!(|data: &[u8]| {
    let Some((&channel, entries)) = data.split_first() else {
        return;
    };
    let samples = rle_decode(entries);
    let values = entries.iter().filter(|&&e| e & RLE_COUNT_FLAG == 0).count();
    assert!(samples.iter().all(|&s| s & RLE_COUNT_FLAG == 0));
    // Each value is one sample, each count up to 127 more (several counts may follow one
    // value: the decoder repeats it for each).
    assert!(samples.len() >= values && samples.len() <= values + 127 * (entries.len() - values));
    if values == entries.len() {
        assert_eq!(samples, entries, "raw samples decode to themselves");
    }
    if let Ok(capture) = PulseCapture::decode(&samples, channel % 7, 1_000_000) {
        let _ = capture.check_servo(2, SERVO_PERIOD_US);
        let _ = capture.check_jitter(50.0);
    }
});
