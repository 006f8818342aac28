//! Temperature -> servo pulse width: linear between two points, clamped outside.

use crate::MilliCelsius;

/// Two calibration points; stored in flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibration {
    pub low_temp: MilliCelsius,
    pub low_pulse_us: u16,
    pub high_temp: MilliCelsius,
    pub high_pulse_us: u16,
}

impl Calibration {
    /// 40 degC -> 1000 us, 150 degC -> 2000 us.
    pub const DEFAULT: Self = Self {
        low_temp: MilliCelsius::from_degrees(40),
        low_pulse_us: 1000,
        high_temp: MilliCelsius::from_degrees(150),
        high_pulse_us: 2000,
    };

    /// A calibration is usable when its temperatures rise and its pulses stay in a servo's 500..2500 us.
    pub fn is_valid(&self) -> bool {
        self.high_temp > self.low_temp
            && (500..=2500).contains(&self.low_pulse_us)
            && (500..=2500).contains(&self.high_pulse_us)
    }

    /// Pulse width in microseconds for `t`, rounded to the nearest microsecond.
    pub fn pulse_us(&self, t: MilliCelsius) -> u16 {
        let (t0, t1) = (i64::from(self.low_temp.0), i64::from(self.high_temp.0));
        let (p0, p1) = (i64::from(self.low_pulse_us), i64::from(self.high_pulse_us));
        if t1 <= t0 {
            return self.low_pulse_us;
        }
        let t = i64::from(t.0).clamp(t0, t1);
        let num = (t - t0) * (p1 - p0);
        let den = t1 - t0;
        // Round half away from zero so rising and falling calibrations behave alike.
        let offset = if num >= 0 {
            (num + den / 2) / den
        } else {
            (num - den / 2) / den
        };
        (p0 + offset) as u16
    }

    /// Serialised form: 4 little-endian i32 (low temp, low pulse, high temp, high pulse).
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.low_temp.0.to_le_bytes());
        b[4..8].copy_from_slice(&i32::from(self.low_pulse_us).to_le_bytes());
        b[8..12].copy_from_slice(&self.high_temp.0.to_le_bytes());
        b[12..16].copy_from_slice(&i32::from(self.high_pulse_us).to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let word = |i: usize| -> Option<i32> {
            Some(i32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
        };
        let cal = Self {
            low_temp: MilliCelsius(word(0)?),
            low_pulse_us: u16::try_from(word(4)?).ok()?,
            high_temp: MilliCelsius(word(8)?),
            high_pulse_us: u16::try_from(word(12)?).ok()?,
        };
        cal.is_valid().then_some(cal)
    }
}

impl Default for Calibration {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(deg: i32) -> MilliCelsius {
        MilliCelsius::from_degrees(deg)
    }

    #[test]
    fn default_points_and_midpoint() {
        let cal = Calibration::DEFAULT;
        assert_eq!(cal.pulse_us(c(40)), 1000);
        assert_eq!(cal.pulse_us(c(150)), 2000);
        assert_eq!(cal.pulse_us(c(95)), 1500);
        // 90 degC: 1000 + 50 * 1000 / 110 = 1454.5 -> 1455
        assert_eq!(cal.pulse_us(c(90)), 1455);
    }

    #[test]
    fn clamps_outside_the_points() {
        let cal = Calibration::DEFAULT;
        assert_eq!(cal.pulse_us(c(-40)), 1000);
        assert_eq!(cal.pulse_us(c(215)), 2000);
    }

    #[test]
    fn bytes_round_trip_and_invalid_is_refused() {
        let cal = Calibration {
            low_temp: c(20),
            low_pulse_us: 800,
            high_temp: c(130),
            high_pulse_us: 2200,
        };
        assert_eq!(Calibration::from_bytes(&cal.to_bytes()), Some(cal));
        let bad = Calibration {
            high_temp: c(10),
            ..cal
        };
        assert_eq!(Calibration::from_bytes(&bad.to_bytes()), None);
        assert_eq!(Calibration::from_bytes(&[0u8; 3]), None);
    }
}
