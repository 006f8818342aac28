//! Servo pulse measurement from logic-analyzer samples.

/// High times and periods seen in one capture of one channel.
#[derive(Clone, Debug, PartialEq)]
pub struct PulseCapture {
    pub sample_rate_hz: u32,
    /// Complete high pulses (rising to falling edge), in capture order, microseconds.
    pub high_us: Vec<f64>,
    /// Rising-to-rising intervals, microseconds.
    pub period_us: Vec<f64>,
    /// Offset of each complete high pulse's falling edge from the first sample, microseconds.
    pub pulse_end_us: Vec<f64>,
    pub samples: usize,
}

/// Why a capture cannot be used as a servo measurement.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PulseError {
    #[error("no edges in {samples} samples ({ms:.1} ms): the signal stayed {level}")]
    NoEdges {
        samples: usize,
        ms: f64,
        level: &'static str,
    },
    #[error("only {seen} complete pulses, {wanted} needed")]
    TooFewPulses { seen: usize, wanted: usize },
    #[error("period {period_us:.0} us is far from the servo's {expected_us:.0} us")]
    BadPeriod { period_us: f64, expected_us: f64 },
}

impl PulseCapture {
    /// Decodes channel `channel` of `samples` (chronological, one byte per sample).
    pub fn decode(samples: &[u8], channel: u8, sample_rate_hz: u32) -> Result<Self, PulseError> {
        let us_per_sample = 1e6 / f64::from(sample_rate_hz);
        let level = |i: usize| samples[i] >> channel & 1 == 1;
        let mut rising = Vec::new();
        let mut falling = Vec::new();
        for i in 1..samples.len() {
            match (level(i - 1), level(i)) {
                (false, true) => rising.push(i),
                (true, false) => falling.push(i),
                _ => {}
            }
        }
        if rising.is_empty() && falling.is_empty() {
            return Err(PulseError::NoEdges {
                samples: samples.len(),
                ms: samples.len() as f64 * us_per_sample / 1000.0,
                level: if samples.first().is_some_and(|_| level(0)) {
                    "high"
                } else {
                    "low"
                },
            });
        }
        // A capture triggered on a rising edge starts high at sample 0: count that edge.
        if level(0) {
            rising.insert(0, 0);
        }
        let mut high_us = Vec::new();
        let mut pulse_end_us = Vec::new();
        for &r in &rising {
            if let Some(&f) = falling.iter().find(|&&f| f > r) {
                high_us.push((f - r) as f64 * us_per_sample);
                pulse_end_us.push(f as f64 * us_per_sample);
            }
        }
        let period_us = rising
            .windows(2)
            .map(|w| (w[1] - w[0]) as f64 * us_per_sample)
            .collect();
        Ok(Self {
            sample_rate_hz,
            high_us,
            period_us,
            pulse_end_us,
            samples: samples.len(),
        })
    }

    /// Checks the capture looks like a servo signal: at least `min_pulses` pulses and periods
    /// within 10 % of `expected_period_us`.
    pub fn check_servo(
        &self,
        min_pulses: usize,
        expected_period_us: f64,
    ) -> Result<(), PulseError> {
        if self.high_us.len() < min_pulses {
            return Err(PulseError::TooFewPulses {
                seen: self.high_us.len(),
                wanted: min_pulses,
            });
        }
        if let Some(&p) = self
            .period_us
            .iter()
            .find(|&&p| (p - expected_period_us).abs() > expected_period_us * 0.1)
        {
            return Err(PulseError::BadPeriod {
                period_us: p,
                expected_us: expected_period_us,
            });
        }
        Ok(())
    }

    pub fn mean_period_us(&self) -> Option<f64> {
        (!self.period_us.is_empty())
            .then(|| self.period_us.iter().sum::<f64>() / self.period_us.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A servo waveform at 1 MHz starting at a rising edge.
    fn waveform(highs: &[usize], period: usize) -> Vec<u8> {
        let mut s = Vec::new();
        for &h in highs {
            s.extend(std::iter::repeat_n(1u8, h));
            s.extend(std::iter::repeat_n(0u8, period - h));
        }
        s
    }

    #[test]
    fn measures_high_time_and_period() {
        let c = PulseCapture::decode(&waveform(&[1455, 1455, 1455], 20_000), 0, 1_000_000).unwrap();
        assert_eq!(c.high_us, vec![1455.0; 3]);
        assert_eq!(c.period_us, vec![20_000.0; 2]);
        assert_eq!(c.pulse_end_us[1], 21_455.0);
        c.check_servo(3, 20_000.0).unwrap();
    }

    #[test]
    fn uses_the_requested_channel_only() {
        let s: Vec<u8> = waveform(&[1000, 1000], 20_000)
            .into_iter()
            .map(|b| (b << 2) | 0b1)
            .collect();
        let c = PulseCapture::decode(&s, 2, 1_000_000).unwrap();
        assert_eq!(c.high_us, vec![1000.0; 2]);
        assert!(matches!(
            PulseCapture::decode(&s, 0, 1_000_000),
            Err(PulseError::NoEdges { level: "high", .. })
        ));
    }

    #[test]
    fn rejects_flat_and_wrong_period_signals() {
        assert!(matches!(
            PulseCapture::decode(&[0u8; 1000], 0, 1_000_000),
            Err(PulseError::NoEdges { level: "low", .. })
        ));
        let c = PulseCapture::decode(&waveform(&[1000, 1000, 1000], 10_000), 0, 1_000_000).unwrap();
        assert!(matches!(
            c.check_servo(2, 20_000.0),
            Err(PulseError::BadPeriod { .. })
        ));
        let c = PulseCapture::decode(&waveform(&[1000], 20_000), 0, 1_000_000).unwrap();
        assert!(matches!(
            c.check_servo(2, 20_000.0),
            Err(PulseError::TooFewPulses { seen: 1, wanted: 2 })
        ));
    }
}
