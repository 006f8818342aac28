//! A logic analyzer's samples (one byte per sample, chronological) through
//! `PulseCapture::decode` on any channel 0..=7 at any sample rate a rig config accepts
//! (100 kHz..=10 MHz, dividing the SUMP's 100 MHz clock), then `check_servo`, the jitter
//! check and the VCD export.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rig_instruments::{
    drivers::sump::{CLOCK_HZ, SERVO_PERIOD_US},
    pulse::{samples_to_vcd, PulseCapture},
};

/// Every rate `pulse_meter.sample_rate_hz` may be: in its documented range and a divisor of
/// the 100 MHz clock (10^8 = 2^8 * 5^8).
fn rates() -> &'static [u32] {
    static RATES: OnceLock<Vec<u32>> = OnceLock::new();
    RATES.get_or_init(|| {
        let range = bench_config::ranges::range_of("pulse_meter.sample_rate_hz").expect("listed");
        let mut rates: Vec<u32> = (0..=8)
            .flat_map(|a| (0..=8).map(move |b| 2u32.pow(a) * 5u32.pow(b)))
            .filter(|&r| {
                CLOCK_HZ.is_multiple_of(r) && (range.min..=range.max).contains(&f64::from(r))
            })
            .collect();
        rates.sort_unstable();
        rates
    })
}

fuzz_target!(|data: &[u8]| {
    let [channel, rate, min_pulses, jitter, samples @ ..] = data else {
        return;
    };
    let channel = channel % 8;
    let rates = rates();
    let rate = rates[usize::from(*rate) % rates.len()];
    let Ok(c) = PulseCapture::decode(samples, channel, rate) else {
        return;
    };
    assert_eq!(c.samples, samples.len());
    assert_eq!(c.periods, c.period_us.len());
    assert_eq!(c.high_us.len(), c.pulse_end_us.len());
    assert!(c.edges.windows(2).all(|w| w[0] < w[1]));
    assert!(c.edges.iter().all(|&e| e > 0 && e < samples.len()));
    assert!(c.high_us.iter().all(|&h| h.is_finite() && h > 0.0));
    assert!(c.period_us.iter().all(|&p| p.is_finite() && p > 0.0));
    match c.duty {
        Some(d) => assert!(c.periods > 0 && d > 0.0 && d < 1.0, "duty {d}"),
        None => assert_eq!(c.periods, 0),
    }
    if let (Some(j), Some(mean)) = (c.jitter_us(), c.mean_period_us()) {
        assert!(j >= 0.0 && mean > 0.0);
    }
    let _ = c.check_servo(usize::from(*min_pulses % 16), SERVO_PERIOD_US);
    let _ = c.check_jitter(f64::from(*jitter) * 10.0);
    assert_eq!(c.to_vcd(), samples_to_vcd(samples, channel, rate));
});
