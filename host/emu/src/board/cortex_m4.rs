//! The Cortex-M4 as its access port (AP 3) shows it. The bench emulates only the Cortex-M7:
//! the M4 executes nothing here, but it is a present core with the states RM0399 gives it.
//!
//! - BCM4 = 1 (the default): it boots from BOOT4's address (0x0810_0000, bank 2 sector 0).
//!   Erased there, as on a NUCLEO with no M4 image, it reads an all-ones vector table and locks
//!   up (S_LOCKUP). With a vector table it would run code the bench does not emulate: it shows
//!   as running, and halts where a debugger stops it.
//! - BCM4 = 0: it is held in reset until the M7 releases it (RCC_GCR.BOOT_C2); how its debug
//!   registers answer then is the board's [`HeldCoreDebug`](super::HeldCoreDebug) switch.

use stm32h755::debug::armv7m::{DFSR_HALTED, DFSR_VCATCH};

use crate::debug::{CoreDebug, CoreRequest, CoreView};

/// Where a locked-up core's PC points.
const LOCKUP_PC: u32 = 0xEFFF_FFFE;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cm4Run {
    /// BCM4 = 0: held in reset.
    Held,
    LockedUp,
    /// Running code the bench does not emulate.
    Unemulated,
    Halted,
}

/// The M4's run state and registers (its debug registers are a [`CoreDebug`] of the board's).
#[derive(Clone, Debug)]
pub struct Cm4 {
    pub run: Cm4Run,
    /// R0-R15, xPSR, MSP, PSP, (19 unused), CONTROL/.../PRIMASK, as DCRSR numbers them.
    regs: [u32; 21],
    /// Its boot flash holds a vector table.
    has_image: bool,
}

impl Default for Cm4 {
    fn default() -> Self {
        Self {
            run: Cm4Run::Held,
            regs: [0; 21],
            has_image: false,
        }
    }
}

impl Cm4 {
    /// A reset: with `boots` (BCM4) and the first two words at its boot address.
    pub fn reset(&mut self, boots: bool, vectors: [u32; 2], debug: &mut CoreDebug) {
        debug.core_reset();
        self.regs = [0; 21];
        let [sp, pc] = vectors;
        self.has_image = pc != u32::MAX && pc & 1 == 1;
        if !boots {
            self.run = Cm4Run::Held;
            return;
        }
        self.regs[16] = 1 << 24;
        if debug.catches_reset() {
            self.regs[13] = sp;
            self.regs[17] = sp;
            self.regs[15] = pc & !1;
            self.run = Cm4Run::Halted;
            debug.core_halted(DFSR_VCATCH);
        } else if self.has_image {
            self.regs[15] = pc & !1;
            self.run = Cm4Run::Unemulated;
        } else {
            // All-ones vectors: the reset handler address faults, HardFault's too.
            self.regs[15] = LOCKUP_PC;
            self.run = Cm4Run::LockedUp;
        }
    }

    /// Does what a debugger's write asked for.
    pub fn act(&mut self, request: CoreRequest, debug: &mut CoreDebug) {
        match (request, self.run) {
            (_, Cm4Run::Held) => {}
            (CoreRequest::Halt, _) => {
                self.run = Cm4Run::Halted;
                debug.core_halted(DFSR_HALTED);
            }
            // Nothing the bench could run: an image runs unemulated, no image locks up again.
            (CoreRequest::Resume | CoreRequest::Step, Cm4Run::Halted) => {
                self.run = if self.has_image {
                    Cm4Run::Unemulated
                } else {
                    self.regs[15] = LOCKUP_PC;
                    Cm4Run::LockedUp
                };
                if request == CoreRequest::Step {
                    self.run = Cm4Run::Halted;
                }
            }
            _ => {}
        }
    }

    pub fn describe(&self) -> &'static str {
        match self.run {
            Cm4Run::Held => "held in reset (BCM4 = 0)",
            Cm4Run::LockedUp => "locked up (no vector table at its boot address)",
            Cm4Run::Unemulated => "running (not emulated)",
            Cm4Run::Halted => "halted by the debugger",
        }
    }
}

impl CoreView for Cm4 {
    fn halted(&self) -> bool {
        self.run == Cm4Run::Halted
    }
    fn locked_up(&self) -> bool {
        self.run == Cm4Run::LockedUp
    }
    fn sleeping(&self) -> bool {
        false
    }
    fn read_register(&mut self, regsel: u32) -> Option<u32> {
        match regsel {
            0..=18 | 20 => Some(self.regs[regsel as usize]),
            _ => None,
        }
    }
    fn write_register(&mut self, regsel: u32, value: u32) -> bool {
        match regsel {
            0..=18 | 20 => {
                self.regs[regsel as usize] = value;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debug::core_debug::Fpb;

    #[test]
    fn erased_boot_flash_locks_up_and_a_halt_takes_it_out() {
        let mut debug = CoreDebug::new(Fpb::V1Cm4);
        let mut cm4 = Cm4::default();
        cm4.reset(true, [u32::MAX; 2], &mut debug);
        assert_eq!(cm4.run, Cm4Run::LockedUp);
        assert_eq!(cm4.read_register(15), Some(LOCKUP_PC));
        cm4.act(CoreRequest::Halt, &mut debug);
        assert!(cm4.halted());
        cm4.act(CoreRequest::Resume, &mut debug);
        assert_eq!(cm4.run, Cm4Run::LockedUp);
        cm4.reset(false, [u32::MAX; 2], &mut debug);
        cm4.act(CoreRequest::Halt, &mut debug);
        assert_eq!(cm4.run, Cm4Run::Held);
    }
}
