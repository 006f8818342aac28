//! The Cortex-M7's NVIC and the parts of the SCB the firmware and the exception model need:
//! enable/pending/active bits and priorities of the external interrupts (NVIC_ISER/ICER/ISPR/
//! ICPR/IABR/IPR), PendSV and SysTick pending bits (ICSR), VTOR, AIRCR (PRIGROUP,
//! SYSRESETREQ), SCR (SEVONPEND) and the system handler priorities (SHPR1-3).
//!
//! Interrupt lines are level-sensitive, as the STM32's peripherals drive them: a line that is
//! high pends its interrupt while the interrupt is not active, and is sampled again after the
//! handler returns. Unicorn has no NVIC: [`super::cpu`] takes the exceptions this model
//! selects.

/// External interrupts of the STM32H755 (IRQ 0..=149).
pub const IRQS: usize = 150;
/// Exception number of IRQ 0.
pub const IRQ_BASE: u32 = 16;
pub const HARD_FAULT: u32 = 3;
pub const SVCALL: u32 = 11;
pub const PENDSV: u32 = 14;
pub const SYSTICK: u32 = 15;

pub const NVIC_ISER: u32 = 0xE000_E100;
pub const NVIC_ICER: u32 = 0xE000_E180;
pub const NVIC_ISPR: u32 = 0xE000_E200;
pub const NVIC_ICPR: u32 = 0xE000_E280;
pub const NVIC_IABR: u32 = 0xE000_E300;
pub const NVIC_IPR: u32 = 0xE000_E400;
pub const NVIC_STIR: u32 = 0xE000_EF00;
pub const SCB_ICSR: u32 = 0xE000_ED04;
pub const SCB_VTOR: u32 = 0xE000_ED08;
pub const SCB_AIRCR: u32 = 0xE000_ED0C;
pub const SCB_SCR: u32 = 0xE000_ED10;
pub const SCB_CCR: u32 = 0xE000_ED14;
pub const SCB_SHPR1: u32 = 0xE000_ED18;
pub const SCB_SHCSR: u32 = 0xE000_ED24;

/// ICSR bits.
const ICSR_PENDSVSET: u32 = 1 << 28;
const ICSR_PENDSVCLR: u32 = 1 << 27;
const ICSR_PENDSTSET: u32 = 1 << 26;
const ICSR_PENDSTCLR: u32 = 1 << 25;
const ICSR_RETTOBASE: u32 = 1 << 11;
/// SCR.SEVONPEND.
pub const SCR_SEVONPEND: u32 = 1 << 4;
/// AIRCR: write key, SYSRESETREQ, PRIGROUP.
const AIRCR_VECTKEY: u32 = 0x05FA;
const AIRCR_SYSRESETREQ: u32 = 1 << 2;
/// The STM32H7 implements the top 4 bits of each priority byte.
const PRIORITY_MASK: u8 = 0xF0;
/// CCR reset value on the Cortex-M7: STKALIGN, BP/IC/DC off.
const CCR_RESET: u32 = 0x0000_0200;

/// What a write to the NVIC/SCB asks of the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NvicEffect {
    /// AIRCR.SYSRESETREQ with the right key: a system reset.
    pub reset_requested: bool,
}

/// NVIC + SCB state.
#[derive(Clone, Debug)]
pub struct Nvic {
    enabled: [bool; IRQS],
    pending: [bool; IRQS],
    active: [bool; IRQS],
    /// Line levels last sampled (level-sensitive interrupts).
    level: [bool; IRQS],
    priority: [u8; IRQS],
    pendsv: bool,
    systick_pending: bool,
    /// System handler priorities, exceptions 4..=15 (SHPR1-3 bytes).
    shpr: [u8; 12],
    pub vtor: u32,
    prigroup: u32,
    pub scr: u32,
    ccr: u32,
    shcsr: u32,
    /// Active system exceptions (PendSV, SysTick, SVCall, HardFault), by number.
    system_active: [bool; 16],
}

impl Nvic {
    /// After reset: VTOR at the Cortex-M7's boot address (FLASH_BOOT7 ADD0).
    pub fn new(vtor: u32) -> Self {
        Self {
            enabled: [false; IRQS],
            pending: [false; IRQS],
            active: [false; IRQS],
            level: [false; IRQS],
            priority: [0; IRQS],
            pendsv: false,
            systick_pending: false,
            shpr: [0; 12],
            vtor,
            prigroup: 0,
            scr: 0,
            ccr: CCR_RESET,
            shcsr: 0,
            system_active: [false; 16],
        }
    }

    /// Whether `addr` is an NVIC/SCB register this model answers.
    pub fn handles(addr: u32) -> bool {
        (NVIC_ISER..NVIC_IPR + IRQS as u32).contains(&addr)
            || addr == NVIC_STIR
            || (SCB_ICSR..SCB_SHCSR + 4).contains(&addr)
    }

    /// The level of interrupt line `irq` (a peripheral's request).
    pub fn set_line(&mut self, irq: u32, high: bool) {
        let Some(i) = usize::try_from(irq).ok().filter(|i| *i < IRQS) else {
            return;
        };
        self.level[i] = high;
        if high && !self.active[i] {
            self.pending[i] = true;
        }
    }

    pub fn is_pending(&self, exception: u32) -> bool {
        match exception {
            PENDSV => self.pendsv,
            SYSTICK => self.systick_pending,
            n if n >= IRQ_BASE => self.pending.get((n - IRQ_BASE) as usize) == Some(&true),
            _ => false,
        }
    }

    pub fn is_enabled(&self, irq: u32) -> bool {
        self.enabled.get(irq as usize) == Some(&true)
    }

    /// Priority of an exception (0 = highest configurable). HardFault: -1.
    pub fn priority(&self, exception: u32) -> i32 {
        match exception {
            HARD_FAULT => -1,
            4..=15 => i32::from(self.shpr[(exception - 4) as usize]),
            n if n >= IRQ_BASE => self
                .priority
                .get((n - IRQ_BASE) as usize)
                .map_or(256, |p| i32::from(*p)),
            _ => 256,
        }
    }

    /// The group priority of `priority` under AIRCR.PRIGROUP (what decides preemption).
    pub fn group_priority(&self, priority: i32) -> i32 {
        if priority < 0 {
            return priority;
        }
        let sub_bits = self.prigroup + 1;
        (priority >> sub_bits) << sub_bits
    }

    /// The pending and enabled exception that would be taken next and its priority: lowest
    /// priority value, then lowest number.
    pub fn highest_pending(&self) -> Option<(u32, i32)> {
        let mut best: Option<(u32, i32)> = None;
        let mut consider = |n: u32, p: i32| {
            if best.is_none_or(|(_, bp)| p < bp) {
                best = Some((n, p));
            }
        };
        if self.pendsv {
            consider(PENDSV, self.priority(PENDSV));
        }
        if self.systick_pending {
            consider(SYSTICK, self.priority(SYSTICK));
        }
        for i in 0..IRQS {
            if self.pending[i] && self.enabled[i] {
                let n = IRQ_BASE + i as u32;
                consider(n, self.priority(n));
            }
        }
        best
    }

    /// Any pending interrupt, enabled or not (WFE with SEVONPEND).
    pub fn any_pending(&self) -> bool {
        self.pendsv || self.systick_pending || self.pending.iter().any(|p| *p)
    }

    /// Exception entry: `exception` goes from pending to active.
    pub fn activate(&mut self, exception: u32) {
        match exception {
            PENDSV => self.pendsv = false,
            SYSTICK => self.systick_pending = false,
            n if n >= IRQ_BASE => {
                if let Some(i) = usize::try_from(n - IRQ_BASE).ok().filter(|i| *i < IRQS) {
                    self.pending[i] = false;
                    self.active[i] = true;
                }
            }
            _ => {}
        }
        if exception < 16 {
            self.system_active[exception as usize] = true;
        }
    }

    /// Exception return: `exception` is no longer active; a line still high pends it again.
    pub fn deactivate(&mut self, exception: u32) {
        if exception < 16 {
            self.system_active[exception as usize] = false;
        } else if let Some(i) = usize::try_from(exception - IRQ_BASE)
            .ok()
            .filter(|i| *i < IRQS)
        {
            self.active[i] = false;
            if self.level[i] {
                self.pending[i] = true;
            }
        }
    }

    /// An exception raised by the core itself (HardFault, SVCall) is taken at once.
    pub fn raise(&mut self, exception: u32) {
        if exception < 16 {
            self.system_active[exception as usize] = true;
        }
    }

    fn irq_word(&self, bits: &[bool; IRQS], word: usize) -> u32 {
        (0..32).fold(0, |acc, b| {
            let i = word * 32 + b;
            if i < IRQS && bits[i] {
                acc | (1 << b)
            } else {
                acc
            }
        })
    }

    fn for_bits(word: usize, value: u32, mut f: impl FnMut(usize)) {
        for b in 0..32 {
            let i = word * 32 + b;
            if value & (1 << b) != 0 && i < IRQS {
                f(i);
            }
        }
    }

    /// Reads the 32-bit register holding `addr`. `active` is the number of the exception being
    /// handled (0 in thread mode) and `rettobase` whether it is the only active one.
    pub fn read(&self, addr: u32, active: u32, rettobase: bool) -> u32 {
        let word = addr & !3;
        let index = |base: u32| ((word - base) / 4) as usize;
        match word {
            w if (NVIC_ISER..NVIC_ISER + 0x20).contains(&w) => {
                self.irq_word(&self.enabled, index(NVIC_ISER))
            }
            w if (NVIC_ICER..NVIC_ICER + 0x20).contains(&w) => {
                self.irq_word(&self.enabled, index(NVIC_ICER))
            }
            w if (NVIC_ISPR..NVIC_ISPR + 0x20).contains(&w) => {
                self.irq_word(&self.pending, index(NVIC_ISPR))
            }
            w if (NVIC_ICPR..NVIC_ICPR + 0x20).contains(&w) => {
                self.irq_word(&self.pending, index(NVIC_ICPR))
            }
            w if (NVIC_IABR..NVIC_IABR + 0x20).contains(&w) => {
                self.irq_word(&self.active, index(NVIC_IABR))
            }
            w if (NVIC_IPR..NVIC_IPR + IRQS as u32).contains(&w) => {
                let i = (w - NVIC_IPR) as usize;
                (0..4).fold(0, |acc, k| {
                    acc | u32::from(self.priority.get(i + k).copied().unwrap_or(0)) << (8 * k)
                })
            }
            SCB_ICSR => {
                let pending = self.highest_pending().map_or(0, |(n, _)| n);
                let mut v = (active & 0x1FF) | ((pending & 0x1FF) << 12);
                if rettobase {
                    v |= ICSR_RETTOBASE;
                }
                if self.pendsv {
                    v |= ICSR_PENDSVSET;
                }
                if self.systick_pending {
                    v |= ICSR_PENDSTSET;
                }
                if self.pending.iter().any(|p| *p) {
                    v |= 1 << 22; // ISRPENDING
                }
                v
            }
            SCB_VTOR => self.vtor,
            SCB_AIRCR => (0xFA05 << 16) | (self.prigroup << 8),
            SCB_SCR => self.scr,
            SCB_CCR => self.ccr,
            w if (SCB_SHPR1..SCB_SHPR1 + 12).contains(&w) => {
                let i = (w - SCB_SHPR1) as usize;
                (0..4).fold(0, |acc, k| acc | u32::from(self.shpr[i + k]) << (8 * k))
            }
            SCB_SHCSR => self.shcsr,
            _ => 0,
        }
    }

    /// Writes `size` bytes of `value` at `addr`.
    pub fn write(&mut self, addr: u32, size: usize, value: u32) -> NvicEffect {
        let mut effect = NvicEffect::default();
        let word = addr & !3;
        let shift = (addr & 3) * 8;
        // Byte-addressable priority registers.
        if (NVIC_IPR..NVIC_IPR + IRQS as u32).contains(&word)
            || (SCB_SHPR1..SCB_SHPR1 + 12).contains(&word)
        {
            for k in 0..size.min(4) {
                let byte = (value >> (8 * k)) as u8 & PRIORITY_MASK;
                let at = addr + k as u32;
                if (NVIC_IPR..NVIC_IPR + IRQS as u32).contains(&at) {
                    self.priority[(at - NVIC_IPR) as usize] = byte;
                } else if (SCB_SHPR1..SCB_SHPR1 + 12).contains(&at) {
                    self.shpr[(at - SCB_SHPR1) as usize] = byte;
                }
            }
            return effect;
        }
        let value = value << shift;
        let index = |base: u32| ((word - base) / 4) as usize;
        match word {
            w if (NVIC_ISER..NVIC_ISER + 0x20).contains(&w) => {
                Self::for_bits(index(NVIC_ISER), value, |i| self.enabled[i] = true)
            }
            w if (NVIC_ICER..NVIC_ICER + 0x20).contains(&w) => {
                Self::for_bits(index(NVIC_ICER), value, |i| self.enabled[i] = false)
            }
            w if (NVIC_ISPR..NVIC_ISPR + 0x20).contains(&w) => {
                Self::for_bits(index(NVIC_ISPR), value, |i| self.pending[i] = true)
            }
            w if (NVIC_ICPR..NVIC_ICPR + 0x20).contains(&w) => {
                Self::for_bits(index(NVIC_ICPR), value, |i| self.pending[i] = false)
            }
            NVIC_STIR => {
                if let Some(i) = usize::try_from(value & 0x1FF).ok().filter(|i| *i < IRQS) {
                    self.pending[i] = true;
                }
            }
            SCB_ICSR => {
                if value & ICSR_PENDSVSET != 0 {
                    self.pendsv = true;
                }
                if value & ICSR_PENDSVCLR != 0 {
                    self.pendsv = false;
                }
                if value & ICSR_PENDSTSET != 0 {
                    self.systick_pending = true;
                }
                if value & ICSR_PENDSTCLR != 0 {
                    self.systick_pending = false;
                }
            }
            SCB_VTOR => self.vtor = value & 0xFFFF_FF80,
            SCB_AIRCR if value >> 16 == AIRCR_VECTKEY => {
                self.prigroup = (value >> 8) & 7;
                if value & AIRCR_SYSRESETREQ != 0 {
                    effect.reset_requested = true;
                }
            }
            SCB_SCR => self.scr = value & 0x16,
            SCB_CCR => self.ccr = value,
            SCB_SHCSR => self.shcsr = value,
            _ => {}
        }
        effect
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_pend_priority_and_level_lines() {
        let mut n = Nvic::new(0x0800_0000);
        n.write(NVIC_ISER, 4, 1 << 28); // TIM2
        assert!(n.is_enabled(28));
        assert_eq!(n.read(NVIC_ISER, 0, false), 1 << 28);
        n.write(NVIC_IPR + 28, 1, 0x5F);
        assert_eq!(n.priority(IRQ_BASE + 28), 0x50, "4 implemented bits");
        assert_eq!(n.highest_pending(), None);
        n.set_line(28, true);
        assert_eq!(n.highest_pending(), Some((IRQ_BASE + 28, 0x50)));
        n.activate(IRQ_BASE + 28);
        assert_eq!(n.read(NVIC_IABR, 0, false), 1 << 28);
        n.set_line(28, true);
        assert_eq!(n.highest_pending(), None, "no re-pend while active");
        n.deactivate(IRQ_BASE + 28);
        assert!(n.is_pending(IRQ_BASE + 28), "line still high after return");
        n.set_line(28, false);
        n.write(NVIC_ICPR, 4, 1 << 28);
        assert!(!n.is_pending(IRQ_BASE + 28));
        // A pending but disabled interrupt is not taken.
        n.write(NVIC_ISPR + 4, 4, 1 << 3); // IRQ 35
        assert_eq!(n.highest_pending(), None);
        assert!(n.any_pending());
    }

    #[test]
    fn scb_registers() {
        let mut n = Nvic::new(0x0800_0000);
        assert_eq!(n.read(SCB_VTOR, 0, false), 0x0800_0000);
        n.write(SCB_VTOR, 4, 0x2400_0000);
        assert_eq!(n.vtor, 0x2400_0000);
        assert!(!n.write(SCB_AIRCR, 4, 4).reset_requested, "no key");
        assert!(n.write(SCB_AIRCR, 4, 0x05FA_0004).reset_requested);
        n.write(SCB_ICSR, 4, ICSR_PENDSVSET);
        assert_eq!(n.highest_pending(), Some((PENDSV, 0)));
        n.write(SCB_SHPR1 + 10, 1, 0xF0); // PendSV priority
        assert_eq!(n.priority(PENDSV), 0xF0);
        assert_eq!(n.read(SCB_ICSR, 0, false) >> 12 & 0x1FF, PENDSV);
        n.write(SCB_AIRCR, 4, 0x05FA_0500);
        assert_eq!(n.group_priority(0x70), 0x40, "PRIGROUP 5: 2 group bits");
    }
}
