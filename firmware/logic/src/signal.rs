//! Bit layout of a DBC signal and the broadcast oil-temperature decoder.

use crate::{frame::CanFrame, MilliCelsius};

/// Where a signal sits in a frame and how its raw value scales (DBC `start|size@order sign (factor,offset)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalLayout {
    pub frame_id: u32,
    pub extended_id: bool,
    /// The frame's DLC from the DBC; frames of any other length are ignored.
    pub frame_len: u8,
    pub start_bit: u8,
    pub size: u8,
    /// Motorola (`@0`) when true, Intel (`@1`) when false.
    pub big_endian: bool,
    pub signed: bool,
    pub factor_milli: i64,
    pub offset_milli: i64,
    /// Raw values that are status codes (VAL_ entries such as "Fault"), not measurements.
    pub status_raw_values: &'static [i64],
}

include!(concat!(env!("OUT_DIR"), "/oil_temp_signal.rs"));

/// Bit positions of the signal, most significant first, in DBC bit numbering (byte * 8 + bit).
fn bit_positions(layout: &SignalLayout) -> impl Iterator<Item = u16> + '_ {
    let size = u16::from(layout.size);
    let start = u16::from(layout.start_bit);
    let mut pos = start;
    let mut first = true;
    (0..size).map(move |i| {
        if layout.big_endian {
            // Motorola: start is the MSB; walk down a byte, then jump to the next byte's bit 7.
            if !first {
                pos = if pos % 8 == 0 { pos + 15 } else { pos - 1 };
            }
            first = false;
            pos
        } else {
            // Intel: start is the LSB; MSB-first order is start + size - 1 down to start.
            start + size - 1 - i
        }
    })
}

impl SignalLayout {
    /// The raw value in `data`, or `None` if the layout reaches past the data.
    pub fn extract_raw(&self, data: &[u8]) -> Option<i64> {
        let mut raw: u64 = 0;
        for pos in bit_positions(self) {
            let byte = *data.get(usize::from(pos / 8))?;
            raw = (raw << 1) | u64::from((byte >> (pos % 8)) & 1);
        }
        let size = u32::from(self.size);
        if self.signed && size > 0 && size < 64 && raw & (1 << (size - 1)) != 0 {
            Some((raw | (u64::MAX << size)) as i64)
        } else {
            Some(raw as i64)
        }
    }

    /// Writes `raw` into `data`; `None` if it does not fit the signal or the data.
    pub fn insert_raw(&self, data: &mut [u8], raw: i64) -> Option<()> {
        let size = u32::from(self.size);
        let (min, max) = self.raw_range();
        if raw < min || raw > max {
            return None;
        }
        let bits = raw as u64;
        for (i, pos) in bit_positions(self).enumerate() {
            let bit = (bits >> (size - 1 - i as u32)) & 1;
            let byte = data.get_mut(usize::from(pos / 8))?;
            let mask = 1u8 << (pos % 8);
            *byte = if bit == 1 {
                *byte | mask
            } else {
                *byte & !mask
            };
        }
        Some(())
    }

    /// Smallest and largest raw value the field can hold.
    pub fn raw_range(&self) -> (i64, i64) {
        let size = u32::from(self.size).clamp(1, 63);
        if self.signed {
            (-(1i64 << (size - 1)), (1i64 << (size - 1)) - 1)
        } else {
            (0, (1i64 << size) - 1)
        }
    }

    /// The physical value (in milli-units) of a raw value.
    pub fn physical_milli(&self, raw: i64) -> i64 {
        raw * self.factor_milli + self.offset_milli
    }

    /// The raw value that encodes `milli` exactly, if there is one and it is not a status code.
    pub fn raw_for_physical_milli(&self, milli: i64) -> Option<i64> {
        if self.factor_milli == 0 {
            return None;
        }
        let delta = milli - self.offset_milli;
        if delta % self.factor_milli != 0 {
            return None;
        }
        let raw = delta / self.factor_milli;
        let (min, max) = self.raw_range();
        if raw < min || raw > max || self.status_raw_values.contains(&raw) {
            return None;
        }
        Some(raw)
    }
}

/// What a received frame means for the broadcast oil-temperature signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BroadcastReading {
    /// A valid temperature.
    Temperature(MilliCelsius),
    /// The right frame, but the signal carries a status code (e.g. 255 "Fault").
    Status(i64),
    /// Not our frame, or malformed (wrong DLC).
    Ignored,
}

/// Decodes the oil-temperature broadcast described by `layout`.
pub fn decode_broadcast(layout: &SignalLayout, frame: &CanFrame) -> BroadcastReading {
    if frame.id != layout.frame_id
        || frame.extended != layout.extended_id
        || frame.len != layout.frame_len
    {
        return BroadcastReading::Ignored;
    }
    let Some(raw) = layout.extract_raw(frame.payload()) else {
        return BroadcastReading::Ignored;
    };
    if layout.status_raw_values.contains(&raw) {
        return BroadcastReading::Status(raw);
    }
    match i32::try_from(layout.physical_milli(raw)) {
        Ok(milli) => BroadcastReading::Temperature(MilliCelsius(milli)),
        Err(_) => BroadcastReading::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbc_constants_match_the_shipped_layout() {
        assert_eq!(OIL_TEMP_SIGNAL.frame_id, 0x156);
        assert_eq!(OIL_TEMP_SIGNAL.frame_len, 8);
        const { assert!(OIL_TEMP_SIGNAL.big_endian) };
        assert_eq!(OIL_TEMP_SIGNAL.offset_milli, -60_000);
        assert_eq!(OIL_TEMP_SIGNAL.status_raw_values, &[254, 255]);
    }

    #[test]
    fn motorola_start_15_len_8_is_byte_1() {
        let mut data = [0u8; 8];
        OIL_TEMP_SIGNAL.insert_raw(&mut data, 0xA5).unwrap();
        assert_eq!(data, [0, 0xA5, 0, 0, 0, 0, 0, 0]);
        assert_eq!(OIL_TEMP_SIGNAL.extract_raw(&data), Some(0xA5));
    }

    #[test]
    fn motorola_signal_spanning_bytes() {
        let layout = SignalLayout {
            start_bit: 7,
            size: 12,
            ..OIL_TEMP_SIGNAL
        };
        let mut data = [0u8; 8];
        layout.insert_raw(&mut data, 0xABC).unwrap();
        assert_eq!(&data[..2], &[0xAB, 0xC0]);
        assert_eq!(layout.extract_raw(&data), Some(0xABC));
    }

    #[test]
    fn intel_signed_signal_round_trips() {
        let layout = SignalLayout {
            start_bit: 4,
            size: 10,
            big_endian: false,
            signed: true,
            ..OIL_TEMP_SIGNAL
        };
        let mut data = [0u8; 8];
        layout.insert_raw(&mut data, -3).unwrap();
        assert_eq!(layout.extract_raw(&data), Some(-3));
        assert_eq!(layout.insert_raw(&mut data, 600), None);
    }

    #[test]
    fn decodes_temperature_and_refuses_status_codes() {
        let mut data = [0u8; 8];
        data[1] = 150; // 150 - 60 = 90 degC
        let f = CanFrame::standard(0x156, &data).unwrap();
        assert_eq!(
            decode_broadcast(&OIL_TEMP_SIGNAL, &f),
            BroadcastReading::Temperature(MilliCelsius(90_000))
        );
        data[1] = 255;
        let f = CanFrame::standard(0x156, &data).unwrap();
        assert_eq!(
            decode_broadcast(&OIL_TEMP_SIGNAL, &f),
            BroadcastReading::Status(255)
        );
    }

    #[test]
    fn ignores_wrong_dlc_and_other_ids() {
        let f = CanFrame::standard(0x156, &[0, 150, 0]).unwrap();
        assert_eq!(
            decode_broadcast(&OIL_TEMP_SIGNAL, &f),
            BroadcastReading::Ignored
        );
        let f = CanFrame::standard(0x157, &[0, 150, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            decode_broadcast(&OIL_TEMP_SIGNAL, &f),
            BroadcastReading::Ignored
        );
        let f = CanFrame::extended(0x156, &[0, 150, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            decode_broadcast(&OIL_TEMP_SIGNAL, &f),
            BroadcastReading::Ignored
        );
    }

    #[test]
    fn physical_to_raw_respects_range_and_status_codes() {
        assert_eq!(OIL_TEMP_SIGNAL.raw_for_physical_milli(-60_000), Some(0));
        assert_eq!(OIL_TEMP_SIGNAL.raw_for_physical_milli(193_000), Some(253));
        assert_eq!(OIL_TEMP_SIGNAL.raw_for_physical_milli(194_000), None);
        assert_eq!(OIL_TEMP_SIGNAL.raw_for_physical_milli(90_500), None);
    }
}
