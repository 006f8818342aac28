//! A SUMP analyzer's metadata reply (command 0x04) through `parse_metadata`, which the driver
//! calls on every read until it answers: a reply once parsed stays the same however many more
//! bytes arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rig_instruments::drivers::sump::parse_metadata;

fuzz_target!(|data: &[u8]| {
    let whole = parse_metadata(data);
    if let Some(m) = &whole {
        for extra in [&[0u8][..], &[0x01, b'x', 0], &[0x20, 1, 2, 3, 4], &[0xFF]] {
            let mut longer = data.to_vec();
            longer.extend_from_slice(extra);
            assert_eq!(parse_metadata(&longer).as_ref(), Some(m));
        }
    }
    // What a partial read returns is final: the whole reply parses to the same.
    for cut in [data.len() / 2, data.len().saturating_sub(1)] {
        if let Some(part) = parse_metadata(&data[..cut]) {
            assert_eq!(whole.as_ref(), Some(&part), "cut at {cut}");
        }
    }
});
