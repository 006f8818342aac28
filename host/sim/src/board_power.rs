//! The board's power and reset, as both simulated boards (the logic board and the emulated
//! board) see them: supply on or off, NRST held or released, Vcore cut by a supply lock-up,
//! the Cortex-M7's boot gate from the option bytes, and the BOOT0 pin. One state machine, so
//! the two boards cannot disagree about when the core starts, stops or answers the debugger.

use rig_instruments::CoreSelect;
use stm32h755::flash::OPTSR_BCM7;

/// What the board must do with its core after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreAction {
    /// Start the firmware from its reset vector (power-on, reset, NRST released).
    Start,
    /// Stop the core and keep it in reset (NRST asserted).
    Hold,
    /// Nothing changes (no Vcore, NRST still held, ...).
    Nothing,
}

/// Why the core is not running its firmware although the board is powered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootGate {
    /// NRST is held: the core does not run; the debug port answers.
    HeldInReset,
    /// BCM7 = 0 in the option bytes: the Cortex-M7 does not boot (the Cortex-M4's port answers).
    Cm7Disabled,
    /// BOOT0 was high at the reset: the Cortex-M7 boots ST's system bootloader (system memory
    /// at BOOT_CM7_ADD1), not the flash, so the firmware cannot latch its supply. The
    /// bootloader writes PWR_CR3 itself (ST: power-cycle once more after a recovery).
    SystemMemory,
    /// The core may run the firmware.
    Open,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BoardPower {
    powered: bool,
    reset_held: bool,
    /// The supply choice cut Vcore: dead until the next power-on.
    locked_up: bool,
    /// The Cortex-M7 does not boot (BCM7 = 0): set at each start from the option bytes.
    cm7_disabled: bool,
    /// The BOOT0 pin is high (a jumper or a relay to VDD): sampled at each reset.
    boot0_high: bool,
}

impl BoardPower {
    /// Supply applied: a power-on reset. Clears a lock-up.
    pub fn power_on(&mut self) -> CoreAction {
        self.powered = true;
        self.locked_up = false;
        CoreAction::Start
    }

    /// Supply removed: by the bench, or by the board itself (a planned cut during a flash
    /// write). NRST keeps its level: a later power-on starts held if it is still held.
    pub fn power_off(&mut self) {
        self.powered = false;
        self.locked_up = false;
        self.cm7_disabled = false;
    }

    /// System reset (NRST pulse or debugger): the PWR latch survives it.
    pub fn reset(&self) -> CoreAction {
        if !self.powered || self.locked_up || self.reset_held {
            CoreAction::Nothing
        } else {
            CoreAction::Start
        }
    }

    /// NRST held or released.
    pub fn set_reset_held(&mut self, held: bool) -> CoreAction {
        let was = self.reset_held;
        self.reset_held = held;
        if !self.powered || self.locked_up {
            return CoreAction::Nothing; // no Vcore: NRST changes nothing until the next power-on
        }
        match (was, held) {
            (false, true) => CoreAction::Hold,
            (true, false) => CoreAction::Start,
            _ => CoreAction::Nothing,
        }
    }

    /// BOOT0 high or low: takes effect at the next reset or power-on, as the chip samples it
    /// only then.
    pub fn set_boot0(&mut self, high: bool) {
        self.boot0_high = high;
    }

    /// At a start: may the core run its firmware, given NRST, the option bytes (FLASH_OPTSR)
    /// and BOOT0?
    pub fn boot_gate(&mut self, optsr: u32) -> BootGate {
        self.cm7_disabled = optsr & OPTSR_BCM7 == 0;
        if self.reset_held {
            BootGate::HeldInReset
        } else if self.cm7_disabled {
            BootGate::Cm7Disabled
        } else if self.boot0_high {
            BootGate::SystemMemory
        } else {
            BootGate::Open
        }
    }

    /// The firmware's supply choice cut Vcore.
    pub fn lock_up(&mut self) {
        self.locked_up = true;
    }

    pub fn powered(&self) -> bool {
        self.powered
    }

    pub fn reset_held(&self) -> bool {
        self.reset_held
    }

    pub fn locked_up(&self) -> bool {
        self.locked_up
    }

    /// The last start found BCM7 = 0 in the option bytes (until the next start or power-off).
    pub fn cm7_disabled(&self) -> bool {
        self.cm7_disabled
    }

    /// Whether a core's access port answers: not without Vcore, and the Cortex-M7's not when
    /// it does not boot.
    pub fn debug_accessible(&self, core: CoreSelect) -> bool {
        self.powered
            && !self.locked_up
            && !(core == CoreSelect::Cm7 && self.cm7_disabled && !self.reset_held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stm32h755::flash::OPTSR_DEFAULT;

    #[test]
    fn nrst_and_lock_up_gate_the_core_as_on_the_chip() {
        let mut p = BoardPower::default();
        assert_eq!(p.reset(), CoreAction::Nothing, "unpowered");
        assert_eq!(p.set_reset_held(true), CoreAction::Nothing, "no Vcore");
        assert_eq!(p.power_on(), CoreAction::Start);
        assert_eq!(p.boot_gate(OPTSR_DEFAULT), BootGate::HeldInReset);
        assert_eq!(p.set_reset_held(false), CoreAction::Start);
        assert_eq!(p.boot_gate(OPTSR_DEFAULT), BootGate::Open);
        assert_eq!(p.reset(), CoreAction::Start);
        p.lock_up();
        assert_eq!(p.reset(), CoreAction::Nothing, "locked up until power-on");
        assert!(!p.debug_accessible(CoreSelect::Cm4));
        p.power_off();
        assert_eq!(p.power_on(), CoreAction::Start);
        assert_eq!(
            p.boot_gate(OPTSR_DEFAULT & !OPTSR_BCM7),
            BootGate::Cm7Disabled
        );
        assert!(p.cm7_disabled());
        assert!(!p.debug_accessible(CoreSelect::Cm7));
        assert!(p.debug_accessible(CoreSelect::Cm4));
        assert_eq!(p.set_reset_held(true), CoreAction::Hold);
        assert!(
            p.debug_accessible(CoreSelect::Cm7),
            "held: the CM7's port answers"
        );
        assert_eq!(p.set_reset_held(true), CoreAction::Nothing, "already held");
        assert_eq!(p.reset(), CoreAction::Nothing, "NRST still held");
        // NRST keeps its level across a power cycle: the next power-on starts held.
        p.power_off();
        assert!(!p.cm7_disabled() && !p.debug_accessible(CoreSelect::Cm4));
        assert_eq!(p.set_reset_held(true), CoreAction::Nothing, "no Vcore");
        assert_eq!(p.power_on(), CoreAction::Start);
        assert_eq!(p.boot_gate(OPTSR_DEFAULT), BootGate::HeldInReset);
        assert_eq!(p.set_reset_held(false), CoreAction::Start);
        assert_eq!(p.boot_gate(OPTSR_DEFAULT), BootGate::Open);
        // A lock-up ignores NRST but remembers its level.
        p.lock_up();
        assert_eq!(p.set_reset_held(true), CoreAction::Nothing, "locked up");
        assert!(p.reset_held());
    }

    #[test]
    fn boot0_is_sampled_at_the_next_start() {
        let mut p = BoardPower::default();
        assert_eq!(p.power_on(), CoreAction::Start);
        assert_eq!(p.boot_gate(OPTSR_DEFAULT), BootGate::Open);
        p.set_boot0(true);
        assert_eq!(p.boot_gate(OPTSR_DEFAULT), BootGate::SystemMemory);
        assert!(p.debug_accessible(CoreSelect::Cm7), "the bootloader runs");
        assert_eq!(p.set_reset_held(true), CoreAction::Hold);
        assert_eq!(
            p.boot_gate(OPTSR_DEFAULT),
            BootGate::HeldInReset,
            "NRST before BOOT0"
        );
        assert_eq!(p.set_reset_held(false), CoreAction::Start);
        p.set_boot0(false);
        assert_eq!(p.boot_gate(OPTSR_DEFAULT), BootGate::Open);
    }
}
