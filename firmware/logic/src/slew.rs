//! Rate limit for the needle: moves toward a target at most `rate` microseconds of pulse per second.

/// Needle position with sub-microsecond resolution so that slow rates accumulate exactly.
#[derive(Clone, Copy, Debug)]
pub struct SlewLimiter {
    /// Position in nanoseconds of pulse width (1/1000 us).
    position_ns: i64,
    rate_us_per_s: i64,
    last_ms: u64,
}

impl SlewLimiter {
    pub const fn new(start_us: u16, rate_us_per_s: u32, now_ms: u64) -> Self {
        Self {
            position_ns: start_us as i64 * 1000,
            rate_us_per_s: rate_us_per_s as i64,
            last_ms: now_ms,
        }
    }

    /// Advances to `now_ms` toward `target_us` and returns the pulse width to output.
    pub fn step(&mut self, now_ms: u64, target_us: u16) -> u16 {
        let dt = now_ms.saturating_sub(self.last_ms) as i64;
        self.last_ms = now_ms.max(self.last_ms);
        // rate [us/s] * dt [ms] = rate * dt nanoseconds of pulse.
        let max_step = self.rate_us_per_s.saturating_mul(dt);
        let delta = i64::from(target_us) * 1000 - self.position_ns;
        self.position_ns += delta.clamp(-max_step, max_step);
        self.pulse_us()
    }

    pub fn pulse_us(&self) -> u16 {
        ((self.position_ns + 500) / 1000) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_scale_takes_half_a_second_at_2000_us_per_s() {
        let mut s = SlewLimiter::new(1000, 2000, 0);
        assert_eq!(s.step(100, 2000), 1200);
        assert_eq!(s.step(499, 2000), 1998);
        assert_eq!(s.step(500, 2000), 2000);
        assert_eq!(s.step(600, 2000), 2000);
    }

    #[test]
    fn moves_down_and_accumulates_small_steps() {
        let mut s = SlewLimiter::new(1500, 3, 0); // 3 us/s: 0.003 us per ms
        for ms in 1..=1000 {
            s.step(ms, 1000);
        }
        assert_eq!(s.pulse_us(), 1497);
    }

    #[test]
    fn time_going_backwards_does_not_move() {
        let mut s = SlewLimiter::new(1500, 2000, 100);
        assert_eq!(s.step(50, 2000), 1500);
    }
}
