//! The servo pin's waveform over time, recorded period by period so that the simulated
//! analyzer can sample any instant that has already happened.

use std::collections::VecDeque;

pub const PERIOD_US: u64 = 20_000;
/// How much history the analyzer can look back into.
const KEEP_US: u64 = 5_000_000;

#[derive(Debug, Default)]
pub struct PwmTimeline {
    /// (start of period, high time); high time 0 marks the timer stopping.
    periods: VecDeque<(u64, u64)>,
    next_period_us: Option<u64>,
    /// Everything before this instant is final.
    pub known_until_us: u64,
}

impl PwmTimeline {
    /// Records the pin up to `now_us`; `pulse` is the compare value loaded at each new period
    /// (the timer's preload), `None` while the timer is stopped.
    pub fn advance(&mut self, now_us: u64, pulse: Option<u16>) {
        match pulse {
            Some(p) => {
                let next = self.next_period_us.get_or_insert(now_us);
                while *next <= now_us {
                    self.periods.push_back((*next, u64::from(p)));
                    *next += PERIOD_US;
                }
            }
            None => {
                if self.next_period_us.take().is_some() {
                    self.periods.push_back((now_us, 0));
                }
            }
        }
        self.known_until_us = now_us;
        while self
            .periods
            .front()
            .is_some_and(|&(s, _)| s + KEEP_US < now_us)
        {
            self.periods.pop_front();
        }
    }

    /// The pin level at `t_us` (low outside any period or before history).
    pub fn level(&self, t_us: u64) -> bool {
        let idx = self.periods.partition_point(|&(s, _)| s <= t_us);
        if idx == 0 {
            return false;
        }
        let (start, high) = self.periods[idx - 1];
        let into = t_us - start;
        into < high && into < PERIOD_US
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_periods_on_a_fixed_grid_and_stops() {
        let mut t = PwmTimeline::default();
        t.advance(1000, Some(1500));
        t.advance(21_000 + 300, Some(1200)); // the thread ran late: the period at 21 000 still starts on the grid
        assert!(t.level(1000) && t.level(2499) && !t.level(2500));
        assert!(t.level(21_000 + 1199) && !t.level(21_000 + 1200));
        t.advance(30_000, None);
        assert!(!t.level(41_000 + 10));
        assert!(!t.level(999));
    }
}
