//! TIM1/TIM2 model: an upcounter in virtual time at the prescaled kernel clock, update and
//! compare flags, DIER and the interrupt line, and CH1's PWM pulse.

use super::PS_PER_S;

const CR1_CEN: u32 = 1;
const CR1_UDIS: u32 = 1 << 1;
const CR1_URS: u32 = 1 << 2;
const SR_UIF: u32 = 1;
const EGR_UG: u32 = 1;

/// A TIMx counter running up from virtual time (edge-aligned, upcounting: what embassy uses).
#[derive(Clone, Debug)]
pub struct Timer {
    pub base: u32,
    /// Register words 0x00..0x80 (plain storage for the ones not modelled).
    regs: [u32; 32],
    /// Prescaler in effect (PSC is preloaded: it takes effect at an update event).
    psc_active: u32,
    clock_hz: u64,
    tick_ps: u64,
    /// The counter's total ticks (wraps included) at `anchor_ps`.
    anchor_total: u64,
    anchor_ps: u64,
    /// Flags are up to date for every tick up to this total.
    synced_total: u64,
}

const T_CR1: usize = 0;
const T_DIER: usize = 3;
const T_SR: usize = 4;
const T_EGR: usize = 5;
const T_CCMR1: usize = 6;
const T_CCER: usize = 8;
const T_CNT: usize = 9;
const T_PSC: usize = 10;
const T_ARR: usize = 11;
const T_CCR1: usize = 13;
const T_BDTR: usize = 17;

impl Timer {
    pub fn new(base: u32, clock_hz: u64) -> Self {
        let mut regs = [0; 32];
        regs[T_ARR] = 0xFFFF;
        let mut t = Self {
            base,
            regs,
            psc_active: 0,
            clock_hz: clock_hz.max(1),
            tick_ps: 1,
            anchor_total: 0,
            anchor_ps: 0,
            synced_total: 0,
        };
        t.tick_ps = t.compute_tick_ps();
        t
    }

    pub fn handles(&self, addr: u32) -> bool {
        (self.base..self.base + 0x80).contains(&addr)
    }

    fn compute_tick_ps(&self) -> u64 {
        ((u64::from(self.psc_active) + 1) * PS_PER_S / self.clock_hz).max(1)
    }

    fn running(&self) -> bool {
        self.regs[T_CR1] & CR1_CEN != 0
    }

    fn period(&self) -> u64 {
        u64::from(self.regs[T_ARR]) + 1
    }

    fn total(&self, now_ps: u64) -> u64 {
        if self.running() && now_ps > self.anchor_ps {
            self.anchor_total + (now_ps - self.anchor_ps) / self.tick_ps
        } else {
            self.anchor_total
        }
    }

    /// Restarts the count at `total` ticks as of `now_ps`.
    fn anchor(&mut self, now_ps: u64, total: u64) {
        self.anchor_ps = now_ps;
        self.anchor_total = total;
        self.synced_total = total;
    }

    /// The kernel clock changed (RCC reconfigured).
    pub fn set_clock(&mut self, now_ps: u64, clock_hz: u64) {
        if clock_hz.max(1) == self.clock_hz {
            return;
        }
        self.sync(now_ps);
        let total = self.total(now_ps);
        self.clock_hz = clock_hz.max(1);
        self.tick_ps = self.compute_tick_ps();
        self.anchor(now_ps, total);
    }

    /// Sets the flags of every update and compare match up to `now_ps`.
    pub fn sync(&mut self, now_ps: u64) {
        let new = self.total(now_ps);
        let old = self.synced_total;
        if new <= old {
            return;
        }
        let period = self.period();
        if new / period > old / period && self.regs[T_CR1] & CR1_UDIS == 0 {
            self.regs[T_SR] |= SR_UIF;
        }
        for ch in 0..4 {
            let ccr = u64::from(self.regs[T_CCR1 + ch]);
            if ccr >= period {
                continue;
            }
            let mut m = old - old % period + ccr;
            if m <= old {
                m += period;
            }
            if m <= new {
                self.regs[T_SR] |= 1 << (ch + 1);
            }
        }
        self.synced_total = new;
    }

    /// When the next flag whose interrupt is enabled gets set (after `now_ps`).
    pub fn next_event(&self, now_ps: u64) -> Option<u64> {
        if !self.running() {
            return None;
        }
        let dier = self.regs[T_DIER];
        let cur = self.total(now_ps);
        let period = self.period();
        let mut best: Option<u64> = None;
        let mut consider = |total: u64| {
            let t = self.anchor_ps + (total - self.anchor_total) * self.tick_ps;
            best = Some(best.map_or(t, |b| b.min(t)));
        };
        if dier & 1 != 0 && self.regs[T_CR1] & CR1_UDIS == 0 {
            consider((cur / period + 1) * period);
        }
        for ch in 0..4 {
            let ccr = u64::from(self.regs[T_CCR1 + ch]);
            if dier & (1 << (ch + 1)) == 0 || ccr >= period {
                continue;
            }
            let mut m = cur - cur % period + ccr;
            if m <= cur {
                m += period;
            }
            consider(m);
        }
        best
    }

    /// The interrupt request: a flag set whose interrupt is enabled.
    pub fn line(&self) -> bool {
        self.regs[T_SR] & self.regs[T_DIER] & 0x5F != 0
    }

    pub fn read(&mut self, addr: u32, now_ps: u64) -> u32 {
        self.sync(now_ps);
        let i = ((addr - self.base) / 4) as usize;
        match i {
            T_CNT => (self.total(now_ps) % self.period()) as u32,
            T_EGR => 0,
            _ => self.regs[i],
        }
    }

    pub fn write(&mut self, addr: u32, value: u32, now_ps: u64) {
        self.sync(now_ps);
        let i = ((addr - self.base) / 4) as usize;
        let cnt = self.total(now_ps) % self.period();
        match i {
            T_CR1 => {
                let was = self.running();
                self.regs[T_CR1] = value;
                if !was && self.running() {
                    self.psc_active = self.regs[T_PSC];
                    self.tick_ps = self.compute_tick_ps();
                }
                self.anchor(now_ps, cnt);
            }
            T_SR => self.regs[T_SR] &= value,
            T_EGR => {
                if value & EGR_UG != 0 {
                    self.psc_active = self.regs[T_PSC];
                    self.tick_ps = self.compute_tick_ps();
                    self.anchor(now_ps, 0);
                    if self.regs[T_CR1] & CR1_URS == 0 {
                        self.regs[T_SR] |= SR_UIF;
                    }
                }
                self.regs[T_SR] |= value & 0x1E; // CCxG
            }
            T_CNT => self.anchor(now_ps, u64::from(value)),
            T_ARR => {
                self.regs[T_ARR] = value;
                let cnt = cnt % self.period();
                self.anchor(now_ps, cnt);
            }
            _ => self.regs[i] = value,
        }
    }

    /// CH1's pulse width in microseconds while it drives a PWM output: counter enabled, CC1E,
    /// main output enabled (advanced timers: BDTR.MOE), OC1M = PWM mode 1 or 2.
    pub fn ch1_pulse_us(&self, advanced: bool) -> Option<u16> {
        let oc1m = ((self.regs[T_CCMR1] >> 4) & 7) | ((self.regs[T_CCMR1] >> 13) & 8);
        let on = self.running()
            && self.regs[T_CCER] & 1 != 0
            && (!advanced || self.regs[T_BDTR] & (1 << 15) != 0)
            && matches!(oc1m, 6 | 7);
        if !on {
            return None;
        }
        let ccr = u64::from(self.regs[T_CCR1]).min(self.period());
        let ticks = ccr * (u64::from(self.regs[T_PSC]) + 1);
        let us = (ticks * 1_000_000 + self.clock_hz / 2) / self.clock_hz;
        Some(u16::try_from(us).unwrap_or(u16::MAX))
    }

    /// The PWM period in microseconds (for the pin report).
    pub fn period_us(&self) -> u64 {
        self.period() * (u64::from(self.regs[T_PSC]) + 1) * 1_000_000 / self.clock_hz
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{TIM1, TIM2, US};

    #[test]
    fn timer_counts_wraps_and_compares_like_embassys_time_driver() {
        let mut t = Timer::new(TIM2, 200_000_000);
        let w = |t: &mut Timer, off: u32, v: u32, now: u64| t.write(TIM2 + off, v, now);
        w(&mut t, 0x28, 199, 0); // PSC: 1 MHz
        w(&mut t, 0x2C, 0xFFFF, 0);
        w(&mut t, 0x00, CR1_URS, 0);
        w(&mut t, 0x14, EGR_UG, 0);
        w(&mut t, 0x00, 0, 0);
        w(&mut t, 0x34, 0x8000, 0); // CCR1 half-way
        w(&mut t, 0x0C, 1 | 2, 0); // UIE, CC1IE
        assert_eq!(t.read(TIM2 + 0x10, 0), 0, "UG with URS sets no flag");
        w(&mut t, 0x00, CR1_CEN, 0);
        assert_eq!(t.read(TIM2 + 0x24, 1234 * US), 1234);
        assert_eq!(t.next_event(1234 * US), Some(0x8000 * US));
        assert!(!t.line());
        t.sync(0x8000 * US);
        assert!(t.line());
        assert_eq!(t.read(TIM2 + 0x10, 0x8000 * US), 2);
        w(&mut t, 0x10, !2, 0x8000 * US);
        assert!(!t.line());
        assert_eq!(t.next_event(0x8000 * US), Some(0x1_0000 * US));
        t.sync(0x1_0005 * US);
        assert_eq!(t.read(TIM2 + 0x10, 0x1_0005 * US) & 1, 1, "UIF at the wrap");
        assert_eq!(t.read(TIM2 + 0x24, 0x1_0005 * US), 5);
        // An alarm in CCR2.
        w(&mut t, 0x38, 100, 0x1_0005 * US);
        w(&mut t, 0x0C, 1 | 2 | 4, 0x1_0005 * US);
        assert_eq!(t.next_event(0x1_0005 * US), Some(0x1_0064 * US));
    }

    #[test]
    fn pwm_pulse_of_simple_pwm_at_50_hz() {
        let mut t = Timer::new(TIM1, 200_000_000);
        t.write(TIM1 + 0x28, 61, 0);
        t.write(TIM1 + 0x2C, 64515, 0);
        t.write(TIM1 + 0x18, 6 << 4, 0);
        t.write(TIM1 + 0x34, 4693, 0);
        t.write(TIM1 + 0x20, 1, 0);
        assert_eq!(t.ch1_pulse_us(true), None, "no counter, no MOE");
        t.write(TIM1 + 0x44, 1 << 15, 0);
        t.write(TIM1, 1, 0);
        assert_eq!(t.ch1_pulse_us(true), Some(1455));
        assert_eq!(t.period_us(), 19_999);
    }
}
