//! slcan receive lines (`tIIILDD..[TTTT]`, `TIIIIIIIILDD..[TTTT]`) as an adapter sends them,
//! through `decode_frame`; and frames the rig sends, through `encode_frame` and back.
#![no_main]

use gauge_logic::frame::CanFrame;
use libfuzzer_sys::fuzz_target;
use rig_instruments::drivers::slcan::{decode_frame, encode_frame};

fuzz_target!(|data: &[u8]| {
    if let Some(frame) = decode_frame(data) {
        assert!(frame.len <= 8);
        let max_id = if frame.extended { 0x1FFF_FFFF } else { 0x7FF };
        assert!(frame.id <= max_id, "{frame:?}");
        // The line is the frame's transmit command, up to the case of its hex digits, and
        // an optional 4-hex-digit timestamp.
        let line = encode_frame(&frame);
        assert!(
            data.len() == line.len() || data.len() == line.len() + 4,
            "{:?} decoded as {frame:?}",
            String::from_utf8_lossy(data)
        );
        assert!(
            data[..line.len()].eq_ignore_ascii_case(line.as_bytes()),
            "{:?} decoded as {frame:?}, which is {line:?}",
            String::from_utf8_lossy(data)
        );
        assert!(
            data[line.len()..].iter().all(u8::is_ascii_hexdigit),
            "timestamp of {:?}",
            String::from_utf8_lossy(data)
        );
        assert_eq!(decode_frame(line.as_bytes()), Some(frame));
    }

    // The same bytes as a frame the rig sends: decode(encode(frame)) == frame.
    if let [flags, i0, i1, i2, i3, payload @ ..] = data {
        let id = u32::from_le_bytes([*i0, *i1, *i2, *i3]);
        let len = usize::from(flags >> 4).min(8).min(payload.len());
        let frame = if flags & 1 == 1 {
            CanFrame::extended(id & 0x1FFF_FFFF, &payload[..len])
        } else {
            CanFrame::standard((id & 0x7FF) as u16, &payload[..len])
        };
        let frame = frame.expect("id and length fit");
        let line = encode_frame(&frame);
        assert_eq!(decode_frame(line.as_bytes()), Some(frame), "{line}");
        let mut with_timestamp = line.clone().into_bytes();
        with_timestamp.extend_from_slice(b"1a2B");
        assert_eq!(
            decode_frame(&with_timestamp),
            Some(frame),
            "{line} + timestamp"
        );
    }
});
