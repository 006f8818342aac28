//! OBD-II mode 01 PID 0x5C (engine oil temperature) over ISO 15765-4 single frames.

use crate::{frame::CanFrame, MilliCelsius};

/// Functional (broadcast) request ID.
pub const REQUEST_ID: u16 = 0x7DF;
/// ECU response IDs.
pub const RESPONSE_IDS: core::ops::RangeInclusive<u32> = 0x7E8..=0x7EF;
pub const MODE_CURRENT_DATA: u8 = 0x01;
pub const PID_OIL_TEMP: u8 = 0x5C;
/// The request payload: single frame, 2 bytes, mode 01, PID 5C, padded to 8.
pub const REQUEST_PAYLOAD: [u8; 8] = [0x02, MODE_CURRENT_DATA, PID_OIL_TEMP, 0, 0, 0, 0, 0];

/// The request frame the gauge sends while broadcast data is missing.
pub fn request_frame() -> CanFrame {
    CanFrame {
        id: u32::from(REQUEST_ID),
        extended: false,
        len: 8,
        data: REQUEST_PAYLOAD,
    }
}

/// A positive single-frame reply to mode 01 PID 5C, if `frame` is one.
pub fn parse_reply(frame: &CanFrame) -> Option<MilliCelsius> {
    parse_reply_from(frame).map(|(_, t)| t)
}

/// [`parse_reply`] with the replying ECU's ID.
pub fn parse_reply_from(frame: &CanFrame) -> Option<(u32, MilliCelsius)> {
    if frame.extended || !RESPONSE_IDS.contains(&frame.id) {
        return None;
    }
    let p = frame.payload();
    let pci = *p.first()?;
    // Single frame: PCI high nibble 0, length 3..=7 and present in the frame.
    let len = usize::from(pci & 0x0F);
    if pci & 0xF0 != 0 || !(3..=7).contains(&len) || p.len() < 1 + len {
        return None;
    }
    if p[1] != MODE_CURRENT_DATA + 0x40 || p[2] != PID_OIL_TEMP {
        return None;
    }
    Some((frame.id, MilliCelsius::from_degrees(i32::from(p[3]) - 40)))
}

/// The reply an ECU gives for `degrees` (-40..=215), used by the rig's ECU simulation.
pub fn reply_payload(degrees: i32) -> Option<[u8; 8]> {
    let a = u8::try_from(degrees + 40).ok()?;
    Some([
        0x03,
        MODE_CURRENT_DATA + 0x40,
        PID_OIL_TEMP,
        a,
        0xAA,
        0xAA,
        0xAA,
        0xAA,
    ])
}

/// Whether `frame` is the gauge's oil-temperature request.
pub fn is_request(frame: &CanFrame) -> bool {
    !frame.extended
        && frame.id == u32::from(REQUEST_ID)
        && frame.len >= 3
        && frame.data[0] == 0x02
        && frame.data[1] == MODE_CURRENT_DATA
        && frame.data[2] == PID_OIL_TEMP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_reference_example() {
        // 90 degC -> A = 0x82
        let f = CanFrame::standard(0x7E8, &[0x03, 0x41, 0x5C, 0x82, 0, 0, 0, 0]).unwrap();
        assert_eq!(parse_reply(&f), Some(MilliCelsius(90_000)));
        let f = CanFrame::standard(0x7EF, &reply_payload(-40).unwrap()).unwrap();
        assert_eq!(parse_reply(&f), Some(MilliCelsius(-40_000)));
        let f = CanFrame::standard(0x7E9, &reply_payload(215).unwrap()).unwrap();
        assert_eq!(parse_reply(&f), Some(MilliCelsius(215_000)));
    }

    #[test]
    fn refuses_malformed_and_foreign_replies() {
        let bad: &[(u16, &[u8])] = &[
            (0x7E7, &[0x03, 0x41, 0x5C, 0x82, 0, 0, 0, 0]), // below response range
            (0x7F0, &[0x03, 0x41, 0x5C, 0x82, 0, 0, 0, 0]), // above
            (0x7E8, &[0x03, 0x41, 0x0C, 0x82, 0, 0, 0, 0]), // other PID
            (0x7E8, &[0x03, 0x7F, 0x01, 0x12, 0, 0, 0, 0]), // negative response
            (0x7E8, &[0x10, 0x41, 0x5C, 0x82, 0, 0, 0, 0]), // first frame of multi-frame
            (0x7E8, &[0x02, 0x41, 0x5C, 0x82, 0, 0, 0, 0]), // length too short for data
            (0x7E8, &[0x03, 0x41, 0x5C]),                   // truncated
            (0x7E8, &[]),
        ];
        for (id, data) in bad {
            let f = CanFrame::standard(*id, data).unwrap();
            assert_eq!(parse_reply(&f), None, "{id:#x} {data:02x?}");
        }
        let f = CanFrame::extended(0x7E8, &[0x03, 0x41, 0x5C, 0x82, 0, 0, 0, 0]).unwrap();
        assert_eq!(parse_reply(&f), None);
    }

    #[test]
    fn request_is_the_documented_bytes() {
        let f = request_frame();
        assert_eq!(f.id, 0x7DF);
        assert_eq!(f.payload(), &[0x02, 0x01, 0x5C, 0, 0, 0, 0, 0]);
        assert!(is_request(&f));
        assert_eq!(reply_payload(216), None);
        assert_eq!(reply_payload(-41), None);
    }
}
