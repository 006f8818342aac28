//! A firmware ELF's bytes through `elf::parse_segments` (what `load_segments` runs on the file
//! it reads) and the segments through `check_download`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rig_instruments::elf::{check_download, parse_segments, Segment};

fuzz_target!(|data: &[u8]| {
    if let Ok(segments) = parse_segments(data) {
        assert!(!segments.is_empty());
        for s in &segments {
            assert!(!s.data.is_empty() && s.data.len() <= data.len());
        }
        let _ = check_download(&segments);
    }
    // Segments at any address and of any length: the bounds check itself cannot overflow.
    if let [a0, a1, a2, a3, l0, l1, ..] = data {
        let segment = Segment {
            address: u32::from_le_bytes([*a0, *a1, *a2, *a3]),
            data: vec![0; usize::from(u16::from_le_bytes([*l0, *l1]))],
        };
        let _ = check_download(&[segment]);
    }
});
