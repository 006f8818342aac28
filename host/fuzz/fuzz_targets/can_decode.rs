//! The firmware's decoding of frames from the car's bus: the broadcast oil temperature
//! (`signal::decode_broadcast` with the layout generated from the DBC), OBD-II replies
//! (`obd::parse_reply`) and the request check (`obd::is_request`), on any frame a CAN
//! controller can deliver (any ID, either kind, DLC 0..=15 as a raw DLC field can hold).
#![no_main]

use gauge_logic::{
    frame::CanFrame,
    obd,
    signal::{decode_broadcast, BroadcastReading, OIL_TEMP_SIGNAL},
    MilliCelsius,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [flags, i0, i1, i2, i3, payload @ ..] = data else {
        return;
    };
    let extended = flags & 1 == 1;
    let id = u32::from_le_bytes([*i0, *i1, *i2, *i3]) & if extended { 0x1FFF_FFFF } else { 0x7FF };
    let mut data = [0u8; 8];
    let n = payload.len().min(8);
    data[..n].copy_from_slice(&payload[..n]);
    let frame = CanFrame {
        id,
        extended,
        len: flags >> 4,
        data,
    };

    match decode_broadcast(&OIL_TEMP_SIGNAL, &frame) {
        BroadcastReading::Temperature(MilliCelsius(t)) => {
            assert!((frame.id, frame.extended, frame.len) == (0x156, false, 8));
            // Raw 0..=253 at (1, -60): -60..=193 degC, and the raw value is the signal's.
            assert!((-60_000..=193_000).contains(&t), "{t}");
            assert_eq!(
                OIL_TEMP_SIGNAL.raw_for_physical_milli(i64::from(t)),
                OIL_TEMP_SIGNAL.extract_raw(frame.payload())
            );
        }
        BroadcastReading::Status(raw) => assert!(OIL_TEMP_SIGNAL.status_raw_values.contains(&raw)),
        BroadcastReading::Ignored => {}
    }
    if let Some(MilliCelsius(t)) = obd::parse_reply(&frame) {
        assert!(!frame.extended && obd::RESPONSE_IDS.contains(&frame.id));
        assert!((-40_000..=215_000).contains(&t) && t % 1000 == 0, "{t}");
        // An ECU's reply for that temperature reads the same.
        let reply = obd::reply_payload(t / 1000).expect("in the PID's range");
        let again = CanFrame::standard(frame.id as u16, &reply).expect("a standard ID");
        assert_eq!(obd::parse_reply(&again), Some(MilliCelsius(t)));
    }
    if obd::is_request(&frame) {
        assert!(!frame.extended && frame.id == u32::from(obd::REQUEST_ID));
        assert_eq!(&frame.data[..3], &obd::REQUEST_PAYLOAD[..3]);
    }
    assert!(obd::is_request(&obd::request_frame()));
});
