//! The ARMv7-M debug registers of one core (ARMv7-M ARM, C1.6): DHCSR, DCRSR/DCRDR, DEMCR,
//! DFSR and the Flash Patch and Breakpoint unit, kept by the board because a system reset
//! leaves them alone (only a power-on resets the debug logic).
//!
//! The core's run state (halted, locked up, sleeping) and its registers are the core's: a
//! [`CoreView`] shows them. A write that asks the core to change (halt, step, run, reset)
//! comes back as a [`CoreRequest`] for the board to carry out.

use stm32h755::debug::armv7m::{
    C_DEBUGEN, C_HALT, C_MASKINTS, C_STEP, DBGKEY, DCRDR, DCRSR, DEMCR, DFSR, DHCSR, FP_COMP0,
    FP_CTRL, FP_REMAP, REGWNR, S_HALT, S_LOCKUP, S_REGRDY, S_RESET_ST, S_RETIRE_ST, S_SLEEP,
};

/// What the debug registers see of the core.
pub trait CoreView {
    fn halted(&self) -> bool;
    fn locked_up(&self) -> bool;
    fn sleeping(&self) -> bool;
    /// A register by DCRSR.REGSEL (0-12 R0-R12, 13 SP, 14 LR, 15 DebugReturnAddress,
    /// 16 xPSR, 17 MSP, 18 PSP, 20 CONTROL/FAULTMASK/BASEPRI/PRIMASK, 33 FPSCR, 64-95
    /// S0-S31); `None` for one the core does not have.
    fn read_register(&mut self, regsel: u32) -> Option<u32>;
    fn write_register(&mut self, regsel: u32, value: u32) -> bool;
}

/// A change of the core a debugger's write asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreRequest {
    Halt,
    Resume,
    Step,
}

/// Which FPB the core has: the Cortex-M7's (FPB v2: 8 instruction comparators) or the
/// Cortex-M4's (v1: 6 instruction + 2 literal comparators).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fpb {
    V2Cm7,
    V1Cm4,
}

impl Fpb {
    /// Comparators: the M7's 8 instruction ones, the M4's 6 instruction + 2 literal ones.
    fn comparators(self) -> usize {
        8
    }

    fn ctrl_id(self) -> u32 {
        match self {
            // REV 1, NUM_CODE 8.
            Self::V2Cm7 => (1 << 28) | (8 << 4),
            // REV 0, NUM_LIT 2, NUM_CODE 6.
            Self::V1Cm4 => (2 << 8) | (6 << 4),
        }
    }
}

const DEMCR_WRITABLE: u32 = 0x0100_07F1 | (0xF << 16);
const FP_COMP_LAST: u32 = FP_COMP0 + 4 * 7;

/// One core's debug registers.
#[derive(Clone, Debug)]
pub struct CoreDebug {
    fpb: Fpb,
    /// DHCSR control bits as last written (C_DEBUGEN, C_HALT, C_STEP, C_MASKINTS).
    control: u32,
    pub demcr: u32,
    pub dfsr: u32,
    dcrdr: u32,
    /// S_RESET_ST and S_RETIRE_ST: set by the core, cleared by a DHCSR read.
    reset_seen: bool,
    retired: bool,
    fp_enable: bool,
    fp_comp: [u32; 8],
    fp_remap: u32,
}

impl CoreDebug {
    pub fn new(fpb: Fpb) -> Self {
        Self {
            fpb,
            control: 0,
            demcr: 0,
            dfsr: 0,
            dcrdr: 0,
            reset_seen: false,
            retired: false,
            fp_enable: false,
            fp_comp: [0; 8],
            fp_remap: 0,
        }
    }

    pub fn debug_enabled(&self) -> bool {
        self.control & C_DEBUGEN != 0
    }

    pub fn masks_interrupts(&self) -> bool {
        self.control & (C_DEBUGEN | C_MASKINTS) == C_DEBUGEN | C_MASKINTS
    }

    /// DEMCR.VC_CORERESET with debug enabled: the core halts at its reset vector.
    pub fn catches_reset(&self) -> bool {
        self.debug_enabled() && self.demcr & stm32h755::debug::armv7m::VC_CORERESET != 0
    }

    /// The core left reset (S_RESET_ST until the next DHCSR read). A reset ends a halt
    /// request (a debugger's reset runs the core unless the reset is caught); C_DEBUGEN and
    /// the rest of the debug logic stay.
    pub fn core_reset(&mut self) {
        self.reset_seen = true;
        self.control &= !(C_HALT | C_STEP);
    }

    /// The core executed instructions (S_RETIRE_ST).
    pub fn core_ran(&mut self) {
        self.retired = true;
    }

    /// The core entered debug state for `reason` (DFSR bits; 0: it did not). Entering debug
    /// state for any reason sets C_HALT, so a debugger's read-modify-write keeps it halted.
    pub fn core_halted(&mut self, reason: u32) {
        if reason != 0 {
            self.dfsr |= reason;
            self.control |= C_HALT;
        }
    }

    /// Enabled FPB instruction comparators: the addresses a breakpoint halts at.
    pub fn breakpoints(&self) -> Vec<u32> {
        if !self.fp_enable || !self.debug_enabled() {
            return Vec::new();
        }
        self.fp_comp
            .iter()
            .take(self.fpb.comparators())
            .filter(|c| *c & 1 != 0)
            .map(|c| match self.fpb {
                Fpb::V2Cm7 => c & !1,
                _ => {
                    // FPB v1: COMP[28:2] and REPLACE (31:30) picks the halfword.
                    let word = c & 0x1FFF_FFFC;
                    if c >> 30 == 0b10 {
                        word + 2
                    } else {
                        word
                    }
                }
            })
            .collect()
    }

    /// Reads a debug register; `None` when `address` is not one.
    pub fn read(&mut self, address: u32, core: &mut dyn CoreView) -> Option<u32> {
        Some(match address {
            DHCSR => {
                let mut v = self.control & (C_DEBUGEN | C_HALT | C_STEP | C_MASKINTS);
                if core.halted() {
                    v |= S_HALT | S_REGRDY;
                }
                if core.locked_up() {
                    v |= S_LOCKUP;
                }
                if core.sleeping() {
                    v |= S_SLEEP;
                }
                if std::mem::take(&mut self.reset_seen) {
                    v |= S_RESET_ST;
                }
                if std::mem::take(&mut self.retired) {
                    v |= S_RETIRE_ST;
                }
                v
            }
            DCRSR => 0,
            DCRDR => self.dcrdr,
            DEMCR => self.demcr,
            DFSR => self.dfsr,
            FP_CTRL => self.fpb.ctrl_id() | u32::from(self.fp_enable),
            FP_REMAP => self.fp_remap,
            a @ FP_COMP0..=FP_COMP_LAST if a & 3 == 0 => {
                self.fp_comp[((a - FP_COMP0) / 4) as usize]
            }
            _ => return None,
        })
    }

    /// Writes a debug register; `None` when `address` is not one, else what the core must do.
    pub fn write(
        &mut self,
        address: u32,
        value: u32,
        core: &mut dyn CoreView,
    ) -> Option<Option<CoreRequest>> {
        match address {
            DHCSR => {
                if value & 0xFFFF_0000 != DBGKEY {
                    // Without the key the write is ignored.
                    return Some(None);
                }
                let mut control = value & (C_DEBUGEN | C_HALT | C_STEP | C_MASKINTS);
                if control & C_DEBUGEN == 0 {
                    control = 0;
                }
                self.control = control;
                let request = match (control & C_HALT != 0, control & C_STEP != 0) {
                    _ if control & C_DEBUGEN == 0 => core.halted().then_some(CoreRequest::Resume),
                    (true, _) if !core.halted() => Some(CoreRequest::Halt),
                    (false, true) if core.halted() => Some(CoreRequest::Step),
                    (false, false) if core.halted() => Some(CoreRequest::Resume),
                    _ => None,
                };
                return Some(request);
            }
            DCRSR => {
                // Register transfers need debug state (S_REGRDY).
                if core.halted() {
                    let regsel = value & 0x7F;
                    if value & REGWNR != 0 {
                        core.write_register(regsel, self.dcrdr);
                    } else if let Some(v) = core.read_register(regsel) {
                        self.dcrdr = v;
                    }
                }
            }
            DCRDR => self.dcrdr = value,
            DEMCR => self.demcr = value & DEMCR_WRITABLE,
            // Write one to clear.
            DFSR => self.dfsr &= !value,
            FP_CTRL => {
                // KEY (bit 1) must be set for ENABLE to change.
                if value & 2 != 0 {
                    self.fp_enable = value & 1 != 0;
                }
            }
            FP_REMAP => {}
            a @ FP_COMP0..=FP_COMP_LAST if a & 3 == 0 => {
                self.fp_comp[((a - FP_COMP0) / 4) as usize] = value;
            }
            _ => return None,
        }
        Some(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stm32h755::debug::armv7m::{DFSR_HALTED, VC_CORERESET};

    #[derive(Default)]
    struct Core {
        halted: bool,
        regs: [u32; 21],
    }

    impl CoreView for Core {
        fn halted(&self) -> bool {
            self.halted
        }
        fn locked_up(&self) -> bool {
            false
        }
        fn sleeping(&self) -> bool {
            false
        }
        fn read_register(&mut self, regsel: u32) -> Option<u32> {
            self.regs.get(regsel as usize).copied()
        }
        fn write_register(&mut self, regsel: u32, value: u32) -> bool {
            match self.regs.get_mut(regsel as usize) {
                Some(r) => {
                    *r = value;
                    true
                }
                None => false,
            }
        }
    }

    #[test]
    fn dhcsr_needs_the_key_and_asks_for_halt_step_and_resume() {
        let mut d = CoreDebug::new(Fpb::V2Cm7);
        let mut core = Core::default();
        assert_eq!(d.write(DHCSR, C_DEBUGEN | C_HALT, &mut core), Some(None));
        assert!(!d.debug_enabled());
        assert_eq!(
            d.write(DHCSR, DBGKEY | C_DEBUGEN | C_HALT, &mut core),
            Some(Some(CoreRequest::Halt))
        );
        core.halted = true;
        let dhcsr = d.read(DHCSR, &mut core).unwrap();
        assert_eq!(
            dhcsr & (S_HALT | S_REGRDY | C_DEBUGEN),
            S_HALT | S_REGRDY | C_DEBUGEN
        );
        assert_eq!(
            d.write(DHCSR, DBGKEY | C_DEBUGEN | C_STEP, &mut core),
            Some(Some(CoreRequest::Step))
        );
        assert_eq!(
            d.write(DHCSR, DBGKEY | C_DEBUGEN, &mut core),
            Some(Some(CoreRequest::Resume))
        );
    }

    #[test]
    fn register_transfers_work_only_halted() {
        let mut d = CoreDebug::new(Fpb::V2Cm7);
        let mut core = Core::default();
        core.regs[15] = 0x0800_0400;
        d.write(DCRSR, 15, &mut core);
        assert_eq!(d.read(DCRDR, &mut core), Some(0));
        core.halted = true;
        d.write(DCRSR, 15, &mut core);
        assert_eq!(d.read(DCRDR, &mut core), Some(0x0800_0400));
        d.write(DCRDR, 0x2400_0021, &mut core);
        d.write(DCRSR, REGWNR | 15, &mut core);
        assert_eq!(core.regs[15], 0x2400_0021);
    }

    #[test]
    fn sticky_status_clears_on_read_and_reset_catch_needs_debugen() {
        let mut d = CoreDebug::new(Fpb::V2Cm7);
        let mut core = Core::default();
        d.write(DEMCR, VC_CORERESET, &mut core);
        assert!(!d.catches_reset());
        d.write(DHCSR, DBGKEY | C_DEBUGEN, &mut core);
        assert!(d.catches_reset());
        d.core_reset();
        assert_ne!(d.read(DHCSR, &mut core).unwrap() & S_RESET_ST, 0);
        assert_eq!(d.read(DHCSR, &mut core).unwrap() & S_RESET_ST, 0);
        d.core_halted(DFSR_HALTED);
        d.write(DFSR, DFSR_HALTED, &mut core);
        assert_eq!(d.read(DFSR, &mut core), Some(0));
    }

    #[test]
    fn fpb_comparators_become_breakpoints_when_enabled() {
        let mut d = CoreDebug::new(Fpb::V2Cm7);
        let mut core = Core::default();
        d.write(DHCSR, DBGKEY | C_DEBUGEN, &mut core);
        d.write(FP_COMP0 + 4, 0x0800_1235, &mut core);
        assert!(d.breakpoints().is_empty());
        d.write(FP_CTRL, 3, &mut core);
        assert_eq!(d.breakpoints(), [0x0800_1234]);
        assert_eq!(d.read(FP_CTRL, &mut core).unwrap() & 0xF0, 0x80);
    }
}
