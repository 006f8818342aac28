//! The rig's side of the broadcast frame: reads the shipped DBC with `can-dbc` and encodes
//! temperatures with the same bit layout code the firmware decodes with.

use std::path::{Path, PathBuf};

use gauge_logic::{
    frame::CanFrame,
    signal::{SignalLayout, OIL_TEMP_SIGNAL},
};

use bench_config::source_file::{FileError, SourceFile};

pub const MESSAGE: &str = "EngineData_6";
pub const SIGNAL: &str = "EngOil_Te_Actl";

/// The DBC shipped with the scenarios.
pub fn default_path() -> PathBuf {
    bench_config::bench_folder::default_dbc()
}

#[derive(Debug, Clone)]
pub struct OilTempEncoder {
    pub layout: SignalLayout,
    pub path: String,
}

impl OilTempEncoder {
    pub fn load(path: &Path) -> Result<Self, FileError> {
        Self::from_file(SourceFile::read(path)?)
    }

    /// [`Self::load`] of a DBC's `text`, as if read from `path` (errors name it; nothing is
    /// read from it).
    pub fn from_text(path: &Path, text: impl Into<String>) -> Result<Self, FileError> {
        Self::from_file(SourceFile {
            path: path.display().to_string(),
            text: text.into(),
        })
    }

    fn from_file(file: SourceFile) -> Result<Self, FileError> {
        let dbc = can_dbc::Dbc::try_from(file.text.as_str())
            .map_err(|e| file.error_at(None, format!("not a valid DBC: {e:?}")))?;
        let message = dbc
            .messages
            .iter()
            .find(|m| m.name == MESSAGE)
            .ok_or_else(|| file.error_at(None, format!("no message {MESSAGE}")))?;
        let signal = message
            .signals
            .iter()
            .find(|s| s.name == SIGNAL)
            .ok_or_else(|| {
                file.error_at(None, format!("message {MESSAGE} has no signal {SIGNAL}"))
            })?;
        let (frame_id, extended_id) = match message.id {
            can_dbc::MessageId::Standard(id) => (u32::from(id), false),
            can_dbc::MessageId::Extended(id) => (id, true),
        };
        let mut got_statuses: Vec<i64> = dbc
            .value_descriptions_for_signal(message.id, SIGNAL)
            .map(|v| v.iter().map(|d| d.id).collect())
            .unwrap_or_default();
        got_statuses.sort_unstable();
        let layout = SignalLayout {
            frame_id,
            extended_id,
            frame_len: u8::try_from(message.size)
                .map_err(|_| file.error_at(None, "message size does not fit a CAN frame"))?,
            start_bit: u8::try_from(signal.start_bit)
                .map_err(|_| file.error_at(None, "start bit out of range"))?,
            size: u8::try_from(signal.size)
                .map_err(|_| file.error_at(None, "signal size out of range"))?,
            big_endian: matches!(signal.byte_order, can_dbc::ByteOrder::BigEndian),
            signed: matches!(signal.value_type, can_dbc::ValueType::Signed),
            factor_milli: (signal.factor * 1000.0).round() as i64,
            offset_milli: (signal.offset * 1000.0).round() as i64,
            // Compared without the status codes first; once they equal the firmware's, its
            // static list is the layout's (no list leaked per load to keep SignalLayout `Copy`:
            // the fuzz target dbc found that leak).
            status_raw_values: &[],
        };
        let mut expected_statuses = OIL_TEMP_SIGNAL.status_raw_values.to_vec();
        expected_statuses.sort_unstable();
        let same_bits = layout
            == SignalLayout {
                status_raw_values: &[],
                ..OIL_TEMP_SIGNAL
            };
        if !same_bits || expected_statuses != got_statuses {
            return Err(file.error_at(
                None,
                format!("{MESSAGE}.{SIGNAL} differs from the layout the firmware logic was built with ({OIL_TEMP_SIGNAL:?}); rebuild the firmware so both use this DBC"),
            ));
        }
        Ok(Self {
            layout: SignalLayout {
                status_raw_values: OIL_TEMP_SIGNAL.status_raw_values,
                ..layout
            },
            path: file.path,
        })
    }

    /// Range of temperatures the signal can carry, in degC.
    pub fn range_celsius(&self) -> (f64, f64) {
        let (lo, hi) = self.layout.raw_range();
        let valid: Vec<i64> = (lo..=hi)
            .filter(|r| !self.layout.status_raw_values.contains(r))
            .collect();
        let first = valid.first().copied().unwrap_or(lo);
        let last = valid.last().copied().unwrap_or(hi);
        (
            self.layout.physical_milli(first) as f64 / 1000.0,
            self.layout.physical_milli(last) as f64 / 1000.0,
        )
    }

    /// The broadcast frame for `celsius`, or why it cannot be encoded.
    pub fn encode(&self, celsius: f64) -> Result<CanFrame, String> {
        let milli = (celsius * 1000.0).round() as i64;
        let raw = self.layout.raw_for_physical_milli(milli).ok_or_else(|| {
            let (lo, hi) = self.range_celsius();
            format!(
                "{celsius} degC cannot be sent in {MESSAGE}.{SIGNAL} (range {lo}..{hi} degC, resolution {} degC; raw {:?} are status codes) per {}",
                self.layout.factor_milli as f64 / 1000.0,
                self.layout.status_raw_values,
                self.path
            )
        })?;
        Ok(self.frame_with_raw(raw))
    }

    /// The broadcast frame carrying `raw` as is (status codes included).
    pub fn frame_with_raw(&self, raw: i64) -> CanFrame {
        let mut data = [0u8; 8];
        let _ = self.layout.insert_raw(&mut data, raw);
        let len = usize::from(self.layout.frame_len.min(8));
        if self.layout.extended_id {
            CanFrame::extended(self.layout.frame_id, &data[..len]).unwrap_or_else(unreachable_frame)
        } else {
            CanFrame::standard(self.layout.frame_id as u16, &data[..len])
                .unwrap_or_else(unreachable_frame)
        }
    }
}

fn unreachable_frame() -> CanFrame {
    // The DBC check in `load` bounds id and length; keep a harmless frame rather than panic.
    CanFrame {
        id: 0,
        extended: false,
        len: 0,
        data: [0; 8],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gauge_logic::{
        signal::{decode_broadcast, BroadcastReading},
        MilliCelsius,
    };

    #[test]
    fn shipped_dbc_encodes_what_the_firmware_decodes() {
        let enc = OilTempEncoder::load(&default_path()).unwrap();
        for deg in [-60, -40, 0, 90, 193] {
            let f = enc.encode(f64::from(deg)).unwrap();
            assert_eq!(
                decode_broadcast(&OIL_TEMP_SIGNAL, &f),
                BroadcastReading::Temperature(MilliCelsius(deg * 1000))
            );
        }
        assert_eq!(enc.range_celsius(), (-60.0, 193.0));
        let e = enc.encode(215.0).unwrap_err();
        assert!(e.contains("range -60..193"), "{e}");
        assert!(enc.encode(90.5).is_err());
    }

    /// Each load leaked its status-code list (`Box::leak`), which LeakSanitizer reported on the
    /// shipped DBC (fuzz target dbc; host/fuzz/regressions/dbc/): the layout now holds the
    /// firmware's own static list, the same codes.
    #[test]
    fn loading_leaks_no_status_list() {
        let enc = OilTempEncoder::load(&default_path()).unwrap();
        assert!(std::ptr::eq(
            enc.layout.status_raw_values,
            OIL_TEMP_SIGNAL.status_raw_values
        ));
        assert_eq!(enc.layout, OIL_TEMP_SIGNAL);
    }

    #[test]
    fn a_dbc_that_disagrees_with_the_firmware_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(default_path())
            .unwrap()
            .replace("(1,-60)", "(1,-40)");
        let p = dir.path().join("changed.dbc");
        std::fs::write(&p, text).unwrap();
        let e = OilTempEncoder::load(&p).unwrap_err();
        assert!(e.message.contains("rebuild the firmware"), "{e}");
    }
}
