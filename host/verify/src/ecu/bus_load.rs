//! Bus load: the periodic frames of a car's other ECUs, filling a chosen share of the
//! 500 kbit/s bus, on IDs both below the broadcast's 0x156 (they win arbitration over it) and
//! above it. Each ID repeats at one period, as a car's message matrix does, with its phase
//! staggered against the others; the data changes every frame, so its stuff bits (and so its
//! length on the wire) do too.

use std::time::{Duration, Instant};

use gauge_logic::frame::CanFrame;

/// The classic bit rate the gauge's bus runs at.
pub const BUS_BIT_RATE: u32 = 500_000;

/// Load IDs: eight that outrank the broadcast (0x156) and eight that it outranks; none of
/// them is an OBD-II ID (0x7DF, 0x7E0..0x7EF) or in the gauge's DBC.
pub const LOAD_IDS: [u16; 16] = [
    0x080, 0x0A0, 0x0C8, 0x0F0, 0x100, 0x120, 0x140, 0x150, 0x1A0, 0x200, 0x280, 0x2F0, 0x380,
    0x420, 0x4B0, 0x5A0,
];

/// Bits an 8-byte 11-bit frame of random data takes on average, stuffing included (about 115
/// of them; the exact bits of each frame sent are counted, this only sets the period).
const MEAN_FRAME_BITS: f64 = 115.0;

/// The load generator's state: each ID's next due time and a data counter.
#[derive(Clone, Debug)]
pub struct BusLoad {
    pub percent: u32,
    period: Duration,
    next: Vec<Instant>,
    n: u64,
}

impl BusLoad {
    /// A load of `percent` of the bus, its first frames due from `now` on.
    pub fn new(percent: u32, now: Instant) -> Self {
        let frames_per_s = f64::from(percent) / 100.0 * f64::from(BUS_BIT_RATE) / MEAN_FRAME_BITS;
        let period = Duration::from_secs_f64(LOAD_IDS.len() as f64 / frames_per_s.max(1.0));
        let step = period / LOAD_IDS.len() as u32;
        let next = (0..LOAD_IDS.len() as u32).map(|i| now + step * i).collect();
        Self {
            percent,
            period,
            next,
            n: 0,
        }
    }

    /// Each ID's period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The frames due at `now`: each ID's frames whose time has come, so that the rate holds
    /// when the caller's loop runs late by a period or two. An ID more than `CATCH_UP`
    /// periods behind (the adapter could not keep up) starts again from `now` rather than
    /// sending a burst.
    pub fn due(&mut self, now: Instant) -> Vec<CanFrame> {
        const CATCH_UP: u32 = 4;
        let mut frames = Vec::new();
        for (i, next) in self.next.iter_mut().enumerate() {
            if *next + self.period * CATCH_UP < now {
                *next = now;
            }
            while *next <= now {
                *next += self.period;
                self.n += 1;
                let data = load_data(LOAD_IDS[i], self.n);
                if let Some(f) = CanFrame::standard(LOAD_IDS[i], &data) {
                    frames.push(f);
                }
            }
        }
        frames
    }
}

/// Eight bytes that change every frame: a rolling counter and a hash of it (well mixed, so
/// the stuff bits vary as a real signal's do).
fn load_data(id: u16, n: u64) -> [u8; 8] {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(id);
    x ^= x >> 31;
    let mut data = x.to_le_bytes();
    data[0] = n as u8;
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_ids_lie_on_both_sides_of_the_broadcast_and_clear_of_obd() {
        let broadcast = gauge_logic::signal::OIL_TEMP_SIGNAL.frame_id as u16;
        assert_eq!(LOAD_IDS.iter().filter(|&&id| id < broadcast).count(), 8);
        assert_eq!(LOAD_IDS.iter().filter(|&&id| id > broadcast).count(), 8);
        assert!(LOAD_IDS.iter().all(|&id| id < 0x7DF));
    }

    #[test]
    fn the_frames_sent_fill_the_share_asked_for() {
        for percent in [30u32, 60, 80] {
            let t0 = Instant::now();
            let mut load = BusLoad::new(percent, t0);
            let mut bits = 0u64;
            // One simulated second in 1 ms ticks, as the ECU thread's loop runs.
            for ms in 0..1000u64 {
                for f in load.due(t0 + Duration::from_millis(ms)) {
                    bits += u64::from(f.bits_on_wire());
                }
            }
            let share = bits as f64 / f64::from(BUS_BIT_RATE) * 100.0;
            assert!(
                (share - f64::from(percent)).abs() < 0.06 * f64::from(percent),
                "{percent} % asked, {share:.1} % sent"
            );
        }
    }

    #[test]
    fn a_late_caller_gets_the_frames_it_missed_but_no_burst_after_a_stall() {
        let t0 = Instant::now();
        let mut load = BusLoad::new(60, t0);
        let p = load.period();
        // Two periods late: each ID's frames of those periods, so the rate holds.
        let n = load.due(t0 + p * 2).len();
        assert!(
            (2 * LOAD_IDS.len()..=3 * LOAD_IDS.len()).contains(&n),
            "{n}"
        );
        // A stall of many periods: one frame per ID, then on at the period.
        let late = t0 + p * 40;
        assert_eq!(load.due(late).len(), LOAD_IDS.len(), "one frame per ID");
        assert!(load.due(late).is_empty());
    }
}
