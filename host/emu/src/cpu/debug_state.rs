//! What a debugger does to the running core: halt it into debug state, step it, let it run
//! again, read and write its registers (DCRSR's register numbers) and write the bus as an
//! access port does.

use stm32h755::debug::armv7m::DFSR_HALTED;
use unicorn_engine::RegisterARM;

use super::{mmio_write, reg, Cpu, Halt, SliceEnd};

/// The core's debug state.
#[derive(Clone, Debug, Default)]
pub struct DebugState {
    /// In debug state: no instruction runs, the devices' time goes on.
    pub halted: bool,
    /// Locked up (why): no instruction runs until a reset or a debug halt.
    pub lockup: Option<String>,
    /// DHCSR.C_DEBUGEN: a BKPT halts the core instead of raising HardFault.
    pub enabled: bool,
    /// DFSR reasons of halts since the board last took them.
    pub(super) reasons: u32,
    /// Why the core was locked up when a debug halt took it out.
    pub(super) left_lockup: Option<String>,
    /// Virtual time the current halt began.
    pub(super) halted_since_ps: Option<u64>,
}

impl DebugState {
    pub(super) fn halt(&mut self, reason: u32) {
        self.halted = true;
        self.reasons |= reason;
    }

    /// The DFSR bits of the halts since the last call.
    pub fn take_reasons(&mut self) -> u32 {
        std::mem::take(&mut self.reasons)
    }
}

/// What a debugger's bus write made the chip do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DebugEffect {
    None,
    /// The write ended like a slice of the firmware would (a system reset request, a supply
    /// write that cut Vcore, a planned power cut).
    Stop(SliceEnd),
}

/// R0..R12 as unicorn numbers them.
fn general(n: u32) -> i32 {
    RegisterARM::R0 as i32 + n as i32
}

impl Cpu {
    /// Enters debug state (C_HALT): a halt also takes the core out of lock-up and WFI.
    pub fn debug_halt(&mut self, reason: u32) {
        // A debug halt is one of the two ways out of lock-up (the other is a reset).
        if let Some(why) = self.debug.lockup.take() {
            self.debug.left_lockup = Some(why);
        }
        self.sleep = None;
        if !self.debug.halted {
            self.debug.halted_since_ps = Some(self.now_ps());
        }
        self.debug.halt(reason);
    }

    /// Leaves debug state. A core halted out of lock-up whose PC the debugger left at the
    /// lock-up address faults again at once: it is locked up again.
    pub fn debug_resume(&mut self) {
        if !self.debug.halted {
            return;
        }
        self.debug.halted = false;
        if let Some(since) = self.debug.halted_since_ps.take() {
            let took = self.now_ps().saturating_sub(since);
            self.stats.debug_halts += 1;
            self.stats.debug_halted_ps += took;
            self.stats.longest_debug_halt_ps = self.stats.longest_debug_halt_ps.max(took);
        }
        if let Some(why) = self.debug.left_lockup.take() {
            if self.pc == super::LOCKUP_PC {
                self.debug.lockup = Some(why);
            }
        }
    }

    /// Runs one instruction from debug state and halts again.
    pub fn debug_step(&mut self) -> Result<(), String> {
        if !self.debug.halted {
            return Ok(());
        }
        let pc = self.pc;
        let d = self.uc_mut().get_data_mut();
        d.deadline = u64::MAX;
        d.halt = None;
        let before = d.instr;
        let result = self.uc_mut().emu_start(u64::from(pc | 1), 0, 0, 1);
        self.pc = reg(self.uc(), RegisterARM::PC);
        let d = self.uc_mut().get_data_mut();
        if d.instr == before {
            d.instr += 1;
        }
        d.halt = None;
        self.debug.halt(DFSR_HALTED);
        result.map_err(|e| format!("single step at {pc:#010x}: {e:?}"))
    }

    /// A core register by DCRSR.REGSEL; `None` for a number the core does not have.
    pub fn read_core_register(&self, regsel: u32) -> Option<u32> {
        let uc = self.uc();
        Some(match regsel {
            0..=12 => uc.reg_read(general(regsel)).ok()? as u32,
            13 => reg(uc, RegisterARM::SP),
            14 => reg(uc, RegisterARM::LR),
            15 => self.pc,
            16 => reg(uc, RegisterARM::XPSR) | (1 << 24),
            17 => reg(uc, RegisterARM::MSP),
            18 => reg(uc, RegisterARM::PSP),
            20 => {
                (reg(uc, RegisterARM::CONTROL) & 0x7) << 24
                    | (reg(uc, RegisterARM::FAULTMASK) & 1) << 16
                    | (reg(uc, RegisterARM::BASEPRI) & 0xFF) << 8
                    | reg(uc, RegisterARM::PRIMASK) & 1
            }
            33 => reg(uc, RegisterARM::FPSCR),
            64..=95 => uc
                .reg_read(RegisterARM::S0 as i32 + (regsel - 64) as i32)
                .ok()? as u32,
            _ => return None,
        })
    }

    pub fn write_core_register(&mut self, regsel: u32, value: u32) -> bool {
        let v = u64::from(value);
        let uc = self.uc_mut();
        match regsel {
            0..=12 => uc.reg_write(general(regsel), v).is_ok(),
            13 => uc.reg_write(RegisterARM::SP, v).is_ok(),
            14 => uc.reg_write(RegisterARM::LR, v).is_ok(),
            15 => {
                self.pc = value & !1;
                // The debugger moved the core: whatever it slept in is left.
                self.sleep = None;
                true
            }
            // The flags; the exception number and the Thumb bit are the core's own.
            16 => uc
                .reg_write(RegisterARM::XPSR_NZCVQG, u64::from(value & 0xF80F_0000))
                .is_ok(),
            17 => uc.reg_write(RegisterARM::MSP, v).is_ok(),
            18 => uc.reg_write(RegisterARM::PSP, v).is_ok(),
            20 => {
                uc.reg_write(RegisterARM::PRIMASK, u64::from(value & 1))
                    .is_ok()
                    && uc
                        .reg_write(RegisterARM::BASEPRI, u64::from((value >> 8) & 0xFF))
                        .is_ok()
                    && uc
                        .reg_write(RegisterARM::FAULTMASK, u64::from((value >> 16) & 1))
                        .is_ok()
                    && uc
                        .reg_write(RegisterARM::CONTROL, u64::from((value >> 24) & 0x7))
                        .is_ok()
            }
            33 => uc.reg_write(RegisterARM::FPSCR, v).is_ok(),
            64..=95 => uc
                .reg_write(RegisterARM::S0 as i32 + (regsel - 64) as i32, v)
                .is_ok(),
            _ => false,
        }
    }

    /// Writes `size` bytes (1, 2 or 4) of `value` at `address` as an access port does: RAM
    /// directly, registers with their side effects. `Err(address)` outside every memory.
    pub fn debug_write(
        &mut self,
        address: u32,
        size: usize,
        value: u32,
    ) -> Result<DebugEffect, u32> {
        if (super::BANK1..super::BANK1 + super::BANK1_SIZE).contains(&address) {
            // To the flash controller, as the core's own stores go.
            let now = self.now_ps();
            let effect = self.soc_mut().bank1_write(address, size, value, now);
            self.refresh_bank1().map_err(|_| address)?;
            return Ok(if effect.power_cut {
                DebugEffect::Stop(SliceEnd::PowerCut)
            } else {
                DebugEffect::None
            });
        }
        if !super::is_mmio(address, size as u32) {
            let bytes = value.to_le_bytes();
            return self
                .uc_mut()
                .mem_write(u64::from(address), &bytes[..size])
                .map(|_| DebugEffect::None)
                .map_err(|_| address);
        }
        let saved = self.uc_mut().get_data_mut().halt.take();
        mmio_write(self.uc_mut(), address, size, value);
        let d = self.uc_mut().get_data_mut();
        let effect = match std::mem::replace(&mut d.halt, saved) {
            Some(Halt::ResetRequested) => DebugEffect::Stop(SliceEnd::ResetRequested),
            Some(Halt::LockUp) => DebugEffect::Stop(SliceEnd::LockUp),
            Some(Halt::PowerCut) => DebugEffect::Stop(SliceEnd::PowerCut),
            Some(Halt::Unmapped { address, .. }) => return Err(address),
            _ => DebugEffect::None,
        };
        Ok(effect)
    }
}

impl Cpu {
    /// Makes the enabled FPB comparators' addresses the places the core halts at (before the
    /// instruction there executes, DFSR.BKPT).
    pub fn set_breakpoints(&mut self, addresses: &[u32]) -> Result<(), String> {
        let (keep, drop): (Vec<_>, Vec<_>) = std::mem::take(&mut self.breakpoints)
            .into_iter()
            .partition(|(a, _)| addresses.contains(a));
        for (_, hook) in drop {
            self.uc_mut()
                .remove_hook(hook)
                .map_err(|e| format!("removing a breakpoint: {e:?}"))?;
        }
        self.breakpoints = keep;
        for &a in addresses {
            if self.breakpoints.iter().any(|(b, _)| *b == a) {
                continue;
            }
            let hook = self
                .uc_mut()
                .add_code_hook(u64::from(a), u64::from(a), move |uc, _, _| {
                    // Over whatever else wants this instruction (a WFE hook): debug state first.
                    uc.get_data_mut().halt = Some(Halt::Breakpoint { pc: a });
                    let _ = uc.emu_stop();
                })
                .map_err(|e| format!("a breakpoint at {a:#010x}: {e:?}"))?;
            self.breakpoints.push((a, hook));
        }
        Ok(())
    }

    /// Sleeping in WFI/WFE (DHCSR.S_SLEEP).
    pub fn sleeping(&self) -> bool {
        matches!(self.sleep, Some(super::Sleep::Wfe | super::Sleep::Wfi))
    }
}
