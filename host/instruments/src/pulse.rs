//! Servo pulse measurement from logic-analyzer samples, and VCD export of a capture.

use std::{fmt::Write as _, path::Path};

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
    /// Number of complete periods (rising edge to rising edge): `period_us.len()`.
    pub periods: usize,
    /// Mean duty cycle (0..1) over the complete periods; `None` without one.
    pub duty: Option<f64>,
    /// Level of the first sample.
    pub initial_high: bool,
    /// Sample indices at which the level changes (the waveform, for [`Self::export_vcd`]).
    pub edges: Vec<usize>,
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
    #[error("period jitter {jitter_us:.1} us (periods {min_us:.1}..{max_us:.1} us over {periods} periods) exceeds the {limit_us:.1} us limit (pulse_meter.max_jitter_us): unstable timer clock or a noisy probe")]
    Jitter {
        jitter_us: f64,
        min_us: f64,
        max_us: f64,
        periods: usize,
        limit_us: f64,
    },
}

impl PulseCapture {
    /// Decodes channel `channel` of `samples` (chronological, one byte per sample).
    pub fn decode(samples: &[u8], channel: u8, sample_rate_hz: u32) -> Result<Self, PulseError> {
        let us_per_sample = 1e6 / f64::from(sample_rate_hz);
        let level = |i: usize| samples[i] >> channel & 1 == 1;
        let mut rising = Vec::new();
        let mut falling = Vec::new();
        let mut edges = Vec::new();
        for i in 1..samples.len() {
            match (level(i - 1), level(i)) {
                (false, true) => rising.push(i),
                (true, false) => falling.push(i),
                _ => continue,
            }
            edges.push(i);
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
        let initial_high = level(0);
        if initial_high {
            rising.insert(0, 0);
        }
        let mut high_us = Vec::new();
        let mut pulse_end_us = Vec::new();
        // Both edge lists are in order: one walk finds each rising edge's next falling edge
        // (a search from the start for each was quadratic: 28 s on a toggling 262144-sample
        // capture, the SUMP's largest).
        let mut next_fall = 0;
        for &r in &rising {
            while falling.get(next_fall).is_some_and(|&f| f <= r) {
                next_fall += 1;
            }
            if let Some(&f) = falling.get(next_fall) {
                high_us.push((f - r) as f64 * us_per_sample);
                pulse_end_us.push(f as f64 * us_per_sample);
            }
        }
        let period_us: Vec<f64> = rising
            .windows(2)
            .map(|w| (w[1] - w[0]) as f64 * us_per_sample)
            .collect();
        // Every rising edge followed by another has its falling edge in between, so the first
        // `period_us.len()` high times belong to those periods.
        let duty = (!period_us.is_empty()).then(|| {
            high_us
                .iter()
                .zip(&period_us)
                .map(|(h, p)| h / p)
                .sum::<f64>()
                / period_us.len() as f64
        });
        Ok(Self {
            sample_rate_hz,
            high_us,
            periods: period_us.len(),
            period_us,
            pulse_end_us,
            samples: samples.len(),
            duty,
            initial_high,
            edges,
        })
    }

    /// Peak-to-peak spread of the periods, microseconds (`None` without a complete period).
    pub fn jitter_us(&self) -> Option<f64> {
        let min = self.period_us.iter().copied().reduce(f64::min)?;
        let max = self.period_us.iter().copied().reduce(f64::max)?;
        Some(max - min)
    }

    /// Rejects a capture whose periods spread more than `limit_us` peak to peak.
    pub fn check_jitter(&self, limit_us: f64) -> Result<(), PulseError> {
        let Some(jitter_us) = self.jitter_us() else {
            return Ok(());
        };
        if jitter_us > limit_us {
            return Err(PulseError::Jitter {
                jitter_us,
                min_us: self.period_us.iter().copied().fold(f64::INFINITY, f64::min),
                max_us: self
                    .period_us
                    .iter()
                    .copied()
                    .fold(f64::NEG_INFINITY, f64::max),
                periods: self.periods,
                limit_us,
            });
        }
        Ok(())
    }

    /// The capture as a Value Change Dump (one wire, `servo`) that GTKWave and PulseView open.
    pub fn to_vcd(&self) -> String {
        vcd(
            self.initial_high,
            &self.edges,
            self.samples,
            self.sample_rate_hz,
        )
    }

    /// Writes [`Self::to_vcd`] to `path`.
    pub fn export_vcd(&self, path: &Path) -> std::io::Result<()> {
        write_vcd(path, &self.to_vcd())
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

/// Raw samples (chronological, one byte per sample) of `channel` as a VCD.
pub fn samples_to_vcd(samples: &[u8], channel: u8, sample_rate_hz: u32) -> String {
    let level = |b: u8| b >> channel & 1 == 1;
    let initial = samples.first().is_some_and(|&b| level(b));
    let edges: Vec<usize> = (1..samples.len())
        .filter(|&i| level(samples[i]) != level(samples[i - 1]))
        .collect();
    vcd(initial, &edges, samples.len(), sample_rate_hz)
}

/// Writes VCD `text` to `path`, naming the file in errors.
pub fn write_vcd(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot write VCD file {}: {e}", path.display()),
        )
    })
}

/// The VCD timescale for a sample rate, and the time of sample `i` in that unit.
fn timescale(sample_rate_hz: u32) -> (&'static str, Box<dyn Fn(usize) -> u128>) {
    const UNITS: [(u128, &str); 7] = [
        (1_000_000, "1 us"),
        (100_000, "100 ns"),
        (10_000, "10 ns"),
        (1_000, "1 ns"),
        (100, "100 ps"),
        (10, "10 ps"),
        (1, "1 ps"),
    ];
    let rate = u128::from(sample_rate_hz.max(1));
    const PS_PER_S: u128 = 1_000_000_000_000;
    if PS_PER_S.is_multiple_of(rate) {
        let period_ps = PS_PER_S / rate;
        for (unit_ps, name) in UNITS {
            if period_ps.is_multiple_of(unit_ps) {
                let step = period_ps / unit_ps;
                return (name, Box::new(move |i| i as u128 * step));
            }
        }
    }
    // A rate that does not divide a second into whole picoseconds: round to 1 ps.
    (
        "1 ps",
        Box::new(move |i| (i as u128 * PS_PER_S + rate / 2) / rate),
    )
}

fn vcd(initial_high: bool, edges: &[usize], samples: usize, sample_rate_hz: u32) -> String {
    let (unit, time) = timescale(sample_rate_hz);
    let bit = |high: bool| if high { '1' } else { '0' };
    let mut out = String::new();
    let _ = write!(
        out,
        "$version gauge-rig {} $end\n\
         $comment servo channel, {samples} samples at {sample_rate_hz} Hz $end\n\
         $timescale {unit} $end\n\
         $scope module rig $end\n\
         $var wire 1 ! servo $end\n\
         $upscope $end\n\
         $enddefinitions $end\n\
         #0\n\
         $dumpvars\n\
         {}!\n\
         $end\n",
        env!("CARGO_PKG_VERSION"),
        bit(initial_high)
    );
    let mut high = initial_high;
    for &e in edges {
        high = !high;
        let _ = writeln!(out, "#{}\n{}!", time(e), bit(high));
    }
    // The end of the capture, so viewers show its full length.
    let _ = writeln!(out, "#{}", time(samples));
    out
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

    /// A capture of the SUMP's largest read count (262144 samples) toggling at every sample, as
    /// a floating probe can give: the pulse search was quadratic and took 28 s (release) on it
    /// (fuzz target pulse_decode; host/fuzz/regressions/pulse_decode/ holds a 64 Ki-sample one).
    #[test]
    fn a_toggling_capture_of_the_largest_size_decodes_in_linear_time() {
        // No time limit here (speed belongs in benchmarks): the quadratic search made this
        // test run for minutes, the edge walk in a blink; what it asserts is the decode.
        let samples: Vec<u8> = (0..262_144).map(|i| (i % 2) as u8).collect();
        let c = PulseCapture::decode(&samples, 0, 10_000_000).unwrap();
        assert_eq!(c.high_us.len(), 131_071);
        assert_eq!(c.periods, 131_071);
        assert!(c.high_us.iter().all(|&h| (h - 0.1).abs() < 1e-9));
    }

    #[test]
    fn reports_duty_and_periods() {
        let c = PulseCapture::decode(&waveform(&[1000, 3000, 2000], 20_000), 0, 1_000_000).unwrap();
        assert_eq!(c.periods, 2);
        // (1000 + 3000) / 2 / 20000 over the two complete periods.
        let duty = c.duty.unwrap();
        assert!((duty - 0.1).abs() < 1e-12, "{duty}");
        let one = PulseCapture::decode(&waveform(&[1500], 20_000), 0, 1_000_000).unwrap();
        assert_eq!((one.periods, one.duty), (0, None));
    }

    #[test]
    fn rejects_period_jitter_above_the_limit() {
        let mut s = waveform(&[1500], 20_000);
        s.extend(waveform(&[1500], 20_080));
        s.extend(waveform(&[1500, 1500], 20_000));
        let c = PulseCapture::decode(&s, 0, 1_000_000).unwrap();
        assert_eq!(c.period_us, vec![20_000.0, 20_080.0, 20_000.0]);
        assert_eq!(c.jitter_us(), Some(80.0));
        c.check_jitter(100.0).unwrap();
        let e = c.check_jitter(50.0).unwrap_err();
        assert!(
            matches!(e, PulseError::Jitter { jitter_us, periods: 3, .. } if jitter_us == 80.0),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("80.0 us")
                && text.contains("20000.0..20080.0")
                && text.contains("50.0 us"),
            "{text}"
        );
    }

    #[test]
    fn exports_a_vcd_with_value_changes_only() {
        let mut s = vec![0u8; 5];
        s.extend(waveform(&[1455, 1455], 20_000));
        let c = PulseCapture::decode(&s, 0, 1_000_000).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("servo.vcd");
        c.export_vcd(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let header_end = text.find("$enddefinitions $end\n").unwrap();
        let header = &text[..header_end];
        assert!(header.contains("$timescale 1 us $end"), "{header}");
        assert!(header.contains("$var wire 1 ! servo $end"), "{header}");
        let body: Vec<&str> = text[header_end..].lines().skip(1).collect();
        assert_eq!(
            body,
            [
                "#0",
                "$dumpvars",
                "0!",
                "$end",
                "#5",
                "1!",
                "#1460",
                "0!",
                "#20005",
                "1!",
                "#21460",
                "0!",
                "#40005"
            ]
        );
        assert_eq!(text, samples_to_vcd(&s, 0, 1_000_000));
        // Other rates pick a unit that keeps times whole.
        let fast = PulseCapture::decode(&s, 0, 2_000_000).unwrap().to_vcd();
        assert!(fast.contains("$timescale 100 ns $end") && fast.contains("#7300\n0!"));
        assert!(samples_to_vcd(&s, 0, 3_000_000).contains("$timescale 1 ps $end"));
        let missing = dir.path().join("no/such/dir/x.vcd");
        let e = c.export_vcd(&missing).unwrap_err();
        assert!(e.to_string().contains("no/such/dir/x.vcd"), "{e}");
    }
}
