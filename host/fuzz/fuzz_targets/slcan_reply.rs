//! What an slcan adapter answers to `V`, `N` and `F` (with frames and late acknowledgements
//! mixed in): the bytes split at CR/BEL as the driver's query does, each line through
//! `classify_query_line`, answers through `parse_serial_number` and `parse_status_flags`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rig_instruments::drivers::slcan::{
    classify_query_line, decode_frame, parse_serial_number, parse_status_flags, QueryLine,
};

fuzz_target!(|data: &[u8]| {
    for text in data.split_inclusive(|&b| b == b'\r' || b == 0x07) {
        // The driver waits for the rest of an unterminated line.
        let Some((&end, body)) = text.split_last() else {
            continue;
        };
        if end != b'\r' && end != 0x07 {
            continue;
        }
        match classify_query_line(text) {
            QueryLine::Refused => assert_eq!(end, 0x07),
            QueryLine::Frame(f) => assert_eq!(decode_frame(body), Some(f)),
            QueryLine::Ack => assert!(matches!(body, b"" | b"z" | b"Z")),
            QueryLine::Answer(answer) => {
                assert!(!answer.is_empty() && answer != "z" && answer != "Z");
                // `N` + the serial number, or the number alone.
                let serial = parse_serial_number(&answer);
                assert!(answer == serial || answer == format!("N{serial}"));
                // `F` + two hex digits, or the two digits alone: the whole answer.
                if let Some(flags) = parse_status_flags(&answer) {
                    assert!(
                        answer.eq_ignore_ascii_case(&format!("F{flags:02X}"))
                            || answer.eq_ignore_ascii_case(&format!("{flags:02X}")),
                        "{answer:?} read as {flags:#04x}"
                    );
                }
            }
        }
    }
});
