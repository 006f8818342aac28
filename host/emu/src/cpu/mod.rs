//! The Cortex-M7 of the emulated board, running continuously in virtual time.
//!
//! Unicorn (QEMU's TCG, Cortex-M7 model) executes the instructions; everything QEMU's missing
//! NVIC would do is done here, between runs of the engine:
//!
//! - **Virtual time from the instruction count**: one instruction is one cycle of the core
//!   clock the firmware configured in RCC (64 MHz HSI after reset, 400 MHz once embassy has set
//!   up PLL1), i.e. 2.5 ns at 400 MHz. A block hook counts instructions (Thumb-2 lengths decoded
//!   from the flash image) and ends a run at the next device event (a timer compare, a DMA
//!   completion, a CAN frame's arrival) or at the bench's time.
//! - **Sleep**: code hooks on the WFE/WFI (and SEV) instructions of the image. WFE with the event
//!   register set only clears it; otherwise the core sleeps and virtual time jumps to the next
//!   event. A `b .` loop (panic-halt, a default handler) is treated the same way: time jumps,
//!   interrupts are still taken.
//! - **Exceptions**: M-profile entry and return done by hand. Entry pushes the 8-word frame
//!   (the 26-word frame with S0-S15/FPSCR when CONTROL.FPCA is set), aligns the stack to 8
//!   bytes (xPSR bit 9), switches PSP to MSP for handlers, loads the vector from VTOR and sets
//!   LR to EXC_RETURN 0xFFFFFFF9/0xFFFFFFFD/0xFFFFFFF1 (0xFFFFFFE9/ED/E1 with an FP frame).
//!   QEMU is left in thread mode, so a handler's `bx lr` to EXC_RETURN is a fetch from
//!   0xFFFFFFF8..: the unmapped-fetch hook catches it and the return pops the frame. Priorities,
//!   PRIMASK and BASEPRI decide preemption; a block hook stops the engine as soon as a pending
//!   interrupt may be taken (MSR PRIMASK/CPSIE end QEMU's translation block, so unmasking is
//!   seen at once). IPSR reads 0 inside handlers (QEMU's view); nothing in the firmware reads it.
//! - Faults: an undefined instruction, BKPT or a usage fault enters HardFault as on the chip
//!   (the firmware's handler then loops); accesses outside every memory end the run with a
//!   diagnosis instead.

mod debug_state;

use std::time::{Duration, Instant};

use unicorn_engine::{
    uc_error, Arch, ArmCpuModel, HookType, MemType, Mode, Prot, RegisterARM, Unicorn,
};

pub use debug_state::{DebugEffect, DebugState};

use super::{
    devices::PS_PER_S,
    machine::MEMORIES,
    nvic::{HARD_FAULT, SCR_SEVONPEND, SVCALL},
    peripherals::{Site, PERIPH_BASE, PERIPH_SIZE, PPB_BASE, PPB_SIZE},
    soc::Soc,
    symbols::Symbols,
    EmuError,
};

/// Bank 1 of the flash: the program.
pub use stm32h755::flash::{BANK1, BANK1_SIZE};
/// Instructions per engine run at most, so the wall-clock budget is checked regularly.
const SLICE_INSTRUCTIONS: u64 = 2_000_000;
/// Where a locked-up core's PC points (ARMv7-M: 0xEFFFFFFE).
const LOCKUP_PC: u32 = 0xEFFF_FFFE;
/// EXC_RETURN values are fetched from here (the magic range 0xFFFFFF00..).
const EXC_RETURN_MIN: u64 = 0xFFFF_FF00;
/// QEMU's exception number for an exception return seen by its translator.
const EXCP_EXCEPTION_EXIT: u32 = 8;

/// Virtual time: picoseconds since the core left reset, from the instruction count.
#[derive(Clone, Copy, Debug)]
struct VClock {
    base_ps: u64,
    base_instr: u64,
    ps_per_instr: u64,
}

impl VClock {
    fn now(&self, instr: u64) -> u64 {
        self.base_ps.saturating_add(
            instr
                .saturating_sub(self.base_instr)
                .saturating_mul(self.ps_per_instr),
        )
    }

    /// Instructions from `instr` until `t_ps` (at least 1).
    fn instructions_until(&self, instr: u64, t_ps: u64) -> u64 {
        let now = self.now(instr);
        t_ps.saturating_sub(now).div_ceil(self.ps_per_instr).max(1)
    }

    fn rebase(&mut self, instr: u64, hz: u64) {
        self.base_ps = self.now(instr);
        self.base_instr = instr;
        self.ps_per_instr = (PS_PER_S / hz.max(1)).max(1);
    }

    /// Time passes without instructions (the core sleeps).
    fn jump(&mut self, instr: u64, t_ps: u64) {
        let now = self.now(instr);
        self.base_ps = t_ps.max(now);
        self.base_instr = instr;
    }
}

/// Why the engine stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Halt {
    /// The run's instruction budget (next event or bench time).
    Deadline,
    /// Something changed that needs the run loop (a pending interrupt may be taken, the clock
    /// changed).
    Resync,
    Sleep {
        pc: u32,
        size: u32,
        wfi: bool,
    },
    /// `b .` at `pc`.
    Spin {
        pc: u32,
    },
    ExceptionReturn {
        value: u32,
    },
    CpuException {
        number: u32,
        pc: u32,
    },
    Unmapped {
        pc: u32,
        address: u32,
        what: &'static str,
    },
    LockUp,
    PowerCut,
    ResetRequested,
    /// A read found a flash bank busy until `until`: the loop polling it can sleep until then.
    PollWait {
        until: u64,
    },
    /// An FPB comparator matched the instruction at `pc` (before it executes).
    Breakpoint {
        pc: u32,
    },
}

/// An exception being handled.
#[derive(Clone, Copy, Debug)]
struct Active {
    number: u32,
    priority: i32,
}

/// The engine's data, reachable from every hook.
struct Data {
    soc: Soc,
    program: Vec<u8>,
    clock: VClock,
    instr: u64,
    deadline: u64,
    halt: Option<Halt>,
    /// A pending interrupt exists: the block hook checks whether it can be taken.
    irq_armed: bool,
    event_register: bool,
    active: Vec<Active>,
    /// Block start of the last block, for diagnosis.
    pc: u32,
}

impl Data {
    fn now(&self) -> u64 {
        self.clock.now(self.instr)
    }

    fn site(&self) -> Site {
        Site {
            pc: self.pc,
            instruction: self.instr,
        }
    }

    fn arm(&mut self) {
        self.irq_armed = self.soc.nvic.highest_pending().is_some();
    }

    fn halt(&mut self, h: Halt) {
        if self.halt.is_none() {
            self.halt = Some(h);
        }
    }

    /// (instructions in the block, whether it is a `b .`).
    fn decode_block(&self, address: u32, size: u32) -> (u64, bool) {
        let Some(off) = address.checked_sub(BANK1).map(|o| o as usize) else {
            return ((u64::from(size) / 3).max(1), false);
        };
        let Some(code) = self.program.get(off..off + size as usize) else {
            return ((u64::from(size) / 3).max(1), false);
        };
        let mut n = 0;
        let mut i = 0;
        while i + 1 < code.len() {
            let hw = u16::from_le_bytes([code[i], code[i + 1]]);
            i += if hw >> 11 >= 0b11101 { 4 } else { 2 };
            n += 1;
        }
        let spin = matches!(code, [0xFE, 0xE7] | [0xFF, 0xF7, 0xFE, 0xBF]);
        (n.max(1), spin)
    }

    /// Group priority the core executes at (256: thread mode, nothing masked).
    fn execution_priority(&self, primask: bool, basepri: u32) -> i32 {
        let mut p = 256;
        for a in &self.active {
            p = p.min(self.soc.nvic.group_priority(a.priority));
        }
        if basepri & 0xF0 != 0 {
            p = p.min(self.soc.nvic.group_priority(basepri as i32 & 0xF0));
        }
        if primask {
            p = p.min(0);
        }
        p
    }
}

fn reg(uc: &Unicorn<'_, Data>, r: RegisterARM) -> u32 {
    uc.reg_read(r).map_or(0, |v| v as u32)
}

/// Whether the highest pending interrupt preempts what the core is doing now.
fn deliverable(uc: &Unicorn<'_, Data>) -> Option<u32> {
    let d = uc.get_data();
    let (n, prio) = d.soc.nvic.highest_pending()?;
    let primask = reg(uc, RegisterARM::PRIMASK) & 1 != 0;
    let basepri = reg(uc, RegisterARM::BASEPRI);
    (d.soc.nvic.group_priority(prio) < d.execution_priority(primask, basepri)).then_some(n)
}

/// Engine statistics.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuStats {
    pub instructions: u64,
    pub virtual_ps: u64,
    /// Wall time spent running the engine and the models.
    pub busy: Duration,
    pub runs: u64,
    pub exceptions: u64,
    /// Debug halts (a debugger's or a BKPT's) that ended, their total and longest duration.
    pub debug_halts: u64,
    pub debug_halted_ps: u64,
    pub longest_debug_halt_ps: u64,
}

/// How a call of [`Cpu::run_until`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SliceEnd {
    /// Virtual time reached the target.
    Reached,
    /// The wall-clock budget ran out first (virtual time lags).
    OutOfBudget,
    /// The first PWR_CR3 write cut Vcore: the chip is dead until a power cut.
    LockUp,
    /// The planned power cut during a flash write.
    PowerCut,
    /// The firmware asked for a system reset (AIRCR.SYSRESETREQ).
    ResetRequested,
    /// The emulation cannot go on (an access outside every memory, an engine error).
    Fault(String),
}

/// Unicorn's engine holds `Rc`s to its own state, so it is not `Send`. Every `Rc` clone lives
/// inside the engine (its hooks hold `Weak`s to the same allocation) and none escapes, and
/// unicorn keeps no thread-local state for an instance: moving the whole engine to another
/// thread is sound. The board using it sits behind the bench's mutex, so one thread at a time
/// touches it.
struct Engine(Unicorn<'static, Data>);

// SAFETY: see `Engine`: all reference counts move together, nothing is thread-local.
unsafe impl Send for Engine {}

/// The running core: engine, devices and exception state.
pub struct Cpu {
    engine: Engine,
    pub symbols: Symbols,
    /// Where execution resumes.
    pc: u32,
    sleep: Option<Sleep>,
    pub stats: CpuStats,
    /// Faults the firmware took (undefined instruction ...), newest last.
    pub faults: Vec<String>,
    /// Instructions at the last progress check (a run that makes none is a fault).
    stalled_runs: u32,
    /// Exceptions taken, by exception number.
    pub exception_counts: std::collections::BTreeMap<u32, u64>,
    /// Halted in debug state, locked up, what a debugger enabled.
    pub debug: DebugState,
    /// FPB breakpoints: address and the code hook that stops there.
    breakpoints: Vec<(u32, unicorn_engine::UcHookId)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sleep {
    Wfe,
    Wfi,
    Spin {
        pc: u32,
    },
    /// Polling a busy flash bank: wakes when the operation ends (or an interrupt is taken).
    Poll {
        until: u64,
    },
}

fn uc_err(what: &'static str) -> impl Fn(uc_error) -> EmuError {
    move |e| EmuError::Unicorn {
        what,
        error: format!("{e:?}"),
    }
}

/// Addresses of WFE/WFI/SEV instructions in the image (16- and 32-bit forms).
fn hint_instructions(program: &[u8]) -> Vec<(u32, u32, u8)> {
    let hw = |i: usize| {
        program
            .get(i..i + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < program.len() {
        let addr = BANK1 + i as u32;
        match hw(i) {
            Some(0xBF20) => out.push((addr, 2, b'e')),
            Some(0xBF30) => out.push((addr, 2, b'i')),
            Some(0xBF40) => out.push((addr, 2, b's')),
            Some(0xF3AF) => match hw(i + 2) {
                Some(0x8002) => out.push((addr, 4, b'e')),
                Some(0x8003) => out.push((addr, 4, b'i')),
                Some(0x8004) => out.push((addr, 4, b's')),
                _ => {}
            },
            _ => {}
        }
        i += 2;
    }
    out
}

impl Cpu {
    /// A core leaving reset with `program` (bank 1, 1 MiB) in flash and `soc` as its
    /// peripherals. Fails when the engine cannot be set up or there is no vector table; the
    /// peripherals (with the non-volatile flash) are handed back then.
    pub fn new(soc: Soc, symbols: Symbols) -> Result<Self, (EmuError, Box<Soc>)> {
        let vtor = soc.nvic.vtor;
        let cpu_hz = soc.clocks.cpu_hz;
        let program = soc.bank1.flash.contents().to_vec();
        // The engine is set up around a stand-in; the real peripherals move in at the end.
        let stand_in = Soc::new(
            super::peripherals::Peripherals::new(soc.periph.wiring()),
            rig_sim::flash::FlashModel::new(0..0),
            rig_sim::flash::FlashModel::new(0..0),
        );
        match Self::engine(program, stand_in, vtor, cpu_hz) {
            Ok((mut uc, boot)) => {
                uc.get_data_mut().soc = soc;
                // An erased vector table: the core locks up at once, as the chip does.
                let pc = *boot.as_ref().unwrap_or(&LOCKUP_PC);
                Ok(Self {
                    engine: Engine(uc),
                    symbols,
                    pc,
                    sleep: None,
                    stats: CpuStats::default(),
                    faults: Vec::new(),
                    stalled_runs: 0,
                    exception_counts: Default::default(),
                    debug: DebugState {
                        lockup: boot.err(),
                        ..DebugState::default()
                    },
                    breakpoints: Vec::new(),
                })
            }
            Err(e) => Err((e, Box::new(soc))),
        }
    }

    fn engine(
        program: Vec<u8>,
        soc: Soc,
        vtor: u32,
        cpu_hz: u64,
    ) -> Result<(Unicorn<'static, Data>, Result<u32, String>), EmuError> {
        let hints = hint_instructions(&program);
        let data = Data {
            soc,
            program,
            clock: VClock {
                base_ps: 0,
                base_instr: 0,
                ps_per_instr: (PS_PER_S / cpu_hz.max(1)).max(1),
            },
            instr: 0,
            deadline: 0,
            halt: None,
            irq_armed: false,
            event_register: false,
            active: Vec::new(),
            pc: 0,
        };
        let mut uc = Unicorn::new_with_data(Arch::ARM, Mode::MCLASS | Mode::THUMB, data)
            .map_err(uc_err("open an Arm M-profile engine"))?;
        uc.ctl_set_cpu_model(ArmCpuModel::CORTEX_M7 as i32)
            .map_err(uc_err("select the Cortex-M7 model"))?;
        for (base, size, name) in MEMORIES {
            if name == "flash" {
                continue;
            }
            uc.mem_map(u64::from(base), u64::from(size), Prot::ALL)
                .map_err(uc_err("map memory"))?;
        }
        uc.mem_map(
            u64::from(BANK1),
            u64::from(BANK1_SIZE),
            Prot::READ | Prot::EXEC,
        )
        .map_err(uc_err("map flash bank 1"))?;
        let image = uc.get_data().program.clone();
        uc.mem_write(u64::from(BANK1), &image)
            .map_err(uc_err("write the program"))?;
        drop(image);

        for (base, size) in [
            (super::devices::BANK2, super::devices::BANK2_SIZE),
            (PERIPH_BASE, PERIPH_SIZE),
            (PPB_BASE, PPB_SIZE),
        ] {
            uc.mmio_map(
                u64::from(base),
                u64::from(size),
                Some(
                    move |uc: &mut Unicorn<'_, Data>, offset: u64, size: usize| -> u64 {
                        let d = uc.get_data_mut();
                        let addr = base.wrapping_add(offset as u32);
                        let (now, site) = (d.now(), d.site());
                        let v = d.soc.read(addr, size, now, site);
                        if let Some(until) = d.soc.take_poll_wait() {
                            d.halt(Halt::PollWait { until });
                        }
                        d.arm();
                        u64::from(v)
                    },
                ),
                Some(
                    move |uc: &mut Unicorn<'_, Data>, offset: u64, size: usize, value: u64| {
                        mmio_write(uc, base.wrapping_add(offset as u32), size, value as u32);
                    },
                ),
            )
            .map_err(uc_err("map the peripherals"))?;
        }

        uc.add_block_hook(1, 0, |uc, address, size| {
            let pc = address as u32;
            if uc.get_data().halt.is_some() {
                // A stop requested during the previous block: this one does not run.
                let _ = uc.emu_stop();
                return;
            }
            let (n, spin) = uc.get_data().decode_block(pc, size);
            if uc.get_data().irq_armed && deliverable(uc).is_some() {
                uc.get_data_mut().halt(Halt::Resync);
                let _ = uc.emu_stop();
                return;
            }
            let d = uc.get_data_mut();
            d.pc = pc;
            if spin {
                d.halt(Halt::Spin { pc });
                let _ = uc.emu_stop();
                return;
            }
            if d.instr >= d.deadline {
                d.halt(Halt::Deadline);
                let _ = uc.emu_stop();
                return;
            }
            d.instr += n;
        })
        .map_err(uc_err("add the block hook"))?;

        for (addr, size, kind) in hints {
            uc.add_code_hook(u64::from(addr), u64::from(addr), move |uc, _, _| {
                let d = uc.get_data_mut();
                if kind == b's' {
                    d.event_register = true;
                    return;
                }
                d.halt(Halt::Sleep {
                    pc: addr,
                    size,
                    wfi: kind == b'i',
                });
                let _ = uc.emu_stop();
            })
            .map_err(uc_err("add a WFE/WFI/SEV hook"))?;
        }

        uc.add_mem_hook(
            HookType::MEM_READ_UNMAPPED
                | HookType::MEM_WRITE_UNMAPPED
                | HookType::MEM_FETCH_UNMAPPED
                | HookType::MEM_WRITE_PROT
                | HookType::MEM_FETCH_PROT,
            1,
            0,
            |uc, kind, address, size, value| {
                let d = uc.get_data_mut();
                if kind == MemType::WRITE_PROT
                    && (BANK1..BANK1 + BANK1_SIZE).contains(&(address as u32))
                {
                    // A store into bank 1 goes to the flash controller (a program step with
                    // PG set, else PGSERR). Unicorn still writes its copy of the page; the run
                    // loop puts the flash's contents back over it.
                    let now = d.now();
                    let effect = d.soc.bank1_write(address as u32, size, value as u32, now);
                    if effect.power_cut {
                        d.halt = Some(Halt::PowerCut);
                    }
                    return true;
                }
                let fetch = matches!(kind, MemType::FETCH_UNMAPPED | MemType::FETCH_PROT);
                if fetch && address >= EXC_RETURN_MIN && address <= u64::from(u32::MAX) {
                    d.halt(Halt::ExceptionReturn {
                        value: address as u32 | 1,
                    });
                } else {
                    let what = match kind {
                        MemType::WRITE_UNMAPPED => "write",
                        MemType::WRITE_PROT => "write to read-only flash",
                        MemType::FETCH_UNMAPPED | MemType::FETCH_PROT => "instruction fetch",
                        _ => "read",
                    };
                    let pc = d.pc;
                    d.halt(Halt::Unmapped {
                        pc,
                        address: address as u32,
                        what,
                    });
                }
                false
            },
        )
        .map_err(uc_err("add the memory-fault hook"))?;

        // An undefined instruction (UDF, or one the model lacks) stops unicorn through this hook
        // rather than the interrupt hook: the run loop then enters HardFault.
        uc.add_insn_invalid_hook(|uc| {
            let pc = reg(uc, RegisterARM::PC);
            uc.get_data_mut().halt(Halt::CpuException { number: 1, pc });
            false
        })
        .map_err(uc_err("add the invalid-instruction hook"))?;

        uc.add_intr_hook(|uc, number| {
            let pc = reg(uc, RegisterARM::PC);
            // QEMU's translator treats every branch to 0xFF000000.. as a possible exception
            // return (EXCP_EXCEPTION_EXIT, 8) and leaves the magic value in PC (bit 0 cleared).
            let halt = if number == EXCP_EXCEPTION_EXIT && u64::from(pc) >= EXC_RETURN_MIN {
                Halt::ExceptionReturn { value: pc | 1 }
            } else {
                Halt::CpuException { number, pc }
            };
            uc.get_data_mut().halt(halt);
            let _ = uc.emu_stop();
        })
        .map_err(uc_err("add the exception hook"))?;

        // Reset: SP and PC from the vector table at the boot address.
        let mut v = [0u8; 8];
        uc.mem_read(u64::from(vtor), &mut v)
            .map_err(uc_err("read the vector table"))?;
        let sp = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
        let reset = u32::from_le_bytes([v[4], v[5], v[6], v[7]]);
        if reset == u32::MAX || reset & 1 == 0 {
            return Ok((
                uc,
                Err(format!(
                    "no vector table at {vtor:#010x} (reset vector {reset:#010x}): locked up"
                )),
            ));
        }
        uc.reg_write(RegisterARM::SP, u64::from(sp))
            .map_err(uc_err("set the initial stack pointer"))?;
        Ok((uc, Ok(reset & !1)))
    }

    fn uc(&self) -> &Unicorn<'static, Data> {
        &self.engine.0
    }

    fn uc_mut(&mut self) -> &mut Unicorn<'static, Data> {
        &mut self.engine.0
    }

    pub fn soc(&self) -> &Soc {
        &self.uc().get_data().soc
    }

    pub fn soc_mut(&mut self) -> &mut Soc {
        &mut self.uc_mut().get_data_mut().soc
    }

    /// Virtual time since reset.
    pub fn now_ps(&self) -> u64 {
        self.uc().get_data().now()
    }

    pub fn instructions(&self) -> u64 {
        self.uc().get_data().instr
    }

    /// Where the core is: "0x08001234 in some::function (sleeping in WFE)".
    pub fn describe(&self) -> String {
        let at = self.symbols.describe(self.pc);
        if let Some(why) = &self.debug.lockup {
            return format!("{at}: {why}");
        }
        if self.debug.halted {
            return format!("{at} (halted by the debugger)");
        }
        match self.sleep {
            Some(Sleep::Wfe) => format!("{at} (sleeping in WFE)"),
            Some(Sleep::Wfi) => format!("{at} (sleeping in WFI)"),
            Some(Sleep::Spin { .. }) => format!("{at} (endless `b .` loop)"),
            Some(Sleep::Poll { .. }) => format!("{at} (polling a busy flash bank)"),
            None => at,
        }
    }

    /// Reads memory through the bus (RAM, flash, peripherals without side effects).
    pub fn debug_read(&self, address: u32, buf: &mut [u8]) -> Result<(), u32> {
        // Memory-mapped registers are never read through the engine: its read callbacks have
        // side effects and need the engine's data mutably.
        if !is_mmio(address, buf.len() as u32) {
            return self
                .uc()
                .mem_read(u64::from(address), buf)
                .map_err(|_| address);
        }
        let soc = self.soc();
        for (i, b) in buf.iter_mut().enumerate() {
            let at = address.wrapping_add(i as u32);
            if !is_mmio(at, 1) {
                let mut one = [0u8];
                self.uc()
                    .mem_read(u64::from(at), &mut one)
                    .map_err(|_| at)?;
                *b = one[0];
            } else {
                *b = (soc.peek(at & !3, self.now_ps()) >> ((at & 3) * 8)) as u8;
            }
        }
        Ok(())
    }

    /// Runs the firmware until virtual time `target_ps` or until the wall clock passes
    /// `wall_deadline`, whichever comes first.
    pub fn run_until(&mut self, target_ps: u64, wall_deadline: Instant) -> SliceEnd {
        let started = Instant::now();
        let instr0 = self.instructions();
        let t0 = self.now_ps();
        let outcome = self.run_loop(target_ps, wall_deadline);
        self.stats.busy += started.elapsed();
        self.stats.instructions += self.instructions() - instr0;
        self.stats.virtual_ps += self.now_ps().saturating_sub(t0);
        outcome
    }

    fn run_loop(&mut self, target_ps: u64, wall_deadline: Instant) -> SliceEnd {
        loop {
            let now = self.now_ps();
            self.soc_mut().sync(now);
            if let Err(e) = self.refresh_bank1() {
                return SliceEnd::Fault(e);
            }
            if matches!(self.sleep, Some(Sleep::Poll { until }) if now >= until) {
                self.sleep = None;
            }
            if self.debug.halted || self.debug.lockup.is_some() {
                // No instructions run; the devices' time goes on (DBGMCU freeze bits aside).
                if now >= target_ps {
                    return SliceEnd::Reached;
                }
                if Instant::now() >= wall_deadline {
                    return SliceEnd::OutOfBudget;
                }
                let next = self
                    .soc()
                    .next_event(now)
                    .map_or(target_ps, |t| t.min(target_ps));
                let d = self.uc_mut().get_data_mut();
                let instr = d.instr;
                d.clock.jump(instr, next);
                continue;
            }
            if let Err(e) = self.take_interrupts() {
                return SliceEnd::Fault(e);
            }
            if self.sleep.is_some() && self.wakes() {
                self.sleep = None;
            }
            let next = self
                .soc()
                .next_event(now)
                .map_or(target_ps, |t| t.min(target_ps));
            if self.sleep.is_some() {
                if now >= target_ps {
                    return SliceEnd::Reached;
                }
                if Instant::now() >= wall_deadline {
                    return SliceEnd::OutOfBudget;
                }
                let d = self.uc_mut().get_data_mut();
                let instr = d.instr;
                d.clock.jump(instr, next);
                continue;
            }
            if now >= target_ps {
                return SliceEnd::Reached;
            }
            if Instant::now() >= wall_deadline {
                return SliceEnd::OutOfBudget;
            }
            let d = self.uc_mut().get_data_mut();
            let slice = d
                .clock
                .instructions_until(d.instr, next)
                .min(SLICE_INSTRUCTIONS);
            d.deadline = d.instr + slice;
            d.halt = None;
            d.arm();
            let before = d.instr;
            let pc = self.pc;
            let result = self.uc_mut().emu_start(u64::from(pc | 1), 0, 0, 0);
            self.stats.runs += 1;
            let resume = reg(self.uc(), RegisterARM::PC);
            let d = self.uc_mut().get_data_mut();
            let progressed = d.instr != before;
            let halt = d.halt.take();
            self.pc = resume;
            match (halt, result) {
                (Some(Halt::Deadline | Halt::Resync), _) => {}
                (Some(Halt::Sleep { pc, size, wfi }), _) => {
                    self.pc = pc.wrapping_add(size);
                    let d = self.uc_mut().get_data_mut();
                    if !wfi && d.event_register {
                        d.event_register = false;
                    } else {
                        self.sleep = Some(if wfi { Sleep::Wfi } else { Sleep::Wfe });
                    }
                }
                (Some(Halt::Spin { pc }), _) => {
                    self.pc = pc;
                    self.sleep = Some(Sleep::Spin { pc });
                }
                (Some(Halt::PollWait { until }), _) => self.sleep = Some(Sleep::Poll { until }),
                (Some(Halt::Breakpoint { pc }), _) => {
                    self.pc = pc;
                    self.debug_halt(stm32h755::debug::armv7m::DFSR_BKPT);
                }
                (Some(Halt::ExceptionReturn { value }), _) => {
                    if let Err(e) = self.exception_return(value) {
                        return SliceEnd::Fault(e);
                    }
                }
                (Some(Halt::CpuException { number, pc }), _) => {
                    if let Err(e) = self.cpu_exception(number, pc) {
                        return SliceEnd::Fault(e);
                    }
                }
                (Some(Halt::Unmapped { pc, address, what }), _) => {
                    return SliceEnd::Fault(format!(
                        "{what} of {address:#010x}, outside every memory and peripheral, near {}",
                        self.symbols.describe(pc)
                    ));
                }
                (Some(Halt::LockUp), _) => return SliceEnd::LockUp,
                (Some(Halt::PowerCut), _) => return SliceEnd::PowerCut,
                (Some(Halt::ResetRequested), _) => return SliceEnd::ResetRequested,
                (None, Err(e)) => {
                    return SliceEnd::Fault(format!(
                        "the emulator stopped near {}: {e:?}",
                        self.symbols.describe(resume)
                    ))
                }
                (None, Ok(())) => {}
            }
            if progressed || self.sleep.is_some() {
                self.stalled_runs = 0;
            } else {
                self.stalled_runs += 1;
                if self.stalled_runs > 1000 {
                    return SliceEnd::Fault(format!(
                        "no progress at {} (the engine stops without executing)",
                        self.symbols.describe(self.pc)
                    ));
                }
            }
        }
    }

    /// Puts what the flash controller changed in bank 1 into the engine's copy of it.
    fn refresh_bank1(&mut self) -> Result<(), String> {
        let changed = self.soc_mut().bank1.take_changed();
        for r in changed {
            let bytes = self
                .soc()
                .bank1
                .flash
                .read_at(r.start - BANK1, (r.end - r.start) as usize)
                .map(<[u8]>::to_vec)
                .map_err(|e| format!("bank 1 at {:#010x}: {e:?}", r.start))?;
            self.uc_mut()
                .mem_write(u64::from(r.start), &bytes)
                .map_err(|e| format!("bank 1 copy at {:#010x}: {e:?}", r.start))?;
        }
        Ok(())
    }

    /// Whether a sleeping core wakes up now (an interrupt was taken, or SEVONPEND).
    fn wakes(&self) -> bool {
        let d = self.uc().get_data();
        d.soc.nvic.scr & SCR_SEVONPEND != 0 && d.soc.nvic.any_pending()
    }

    /// Takes every pending interrupt that preempts, highest first (nesting).
    fn take_interrupts(&mut self) -> Result<(), String> {
        // WFI also wakes for a pending interrupt that PRIMASK keeps from being taken.
        if self.sleep == Some(Sleep::Wfi) {
            let d = self.uc().get_data();
            if let Some((_, prio)) = d.soc.nvic.highest_pending() {
                let basepri = reg(self.uc(), RegisterARM::BASEPRI);
                if d.soc.nvic.group_priority(prio) < d.execution_priority(false, basepri) {
                    self.sleep = None;
                }
            }
        }
        for _ in 0..8 {
            let Some(n) = deliverable(self.uc()) else {
                return Ok(());
            };
            self.enter_exception(n)?;
            self.uc_mut().get_data_mut().soc.nvic.activate(n);
            // Exception entry wakes a sleeping core; a `b .` is found again after the return.
            self.sleep = None;
        }
        Ok(())
    }

    fn cpu_exception(&mut self, number: u32, pc: u32) -> Result<(), String> {
        let what = match number {
            2 => {
                // SVC: the return address is the next instruction (already in PC).
                self.enter_exception(SVCALL)?;
                self.uc_mut().get_data_mut().soc.nvic.raise(SVCALL);
                return Ok(());
            }
            1 => "undefined instruction",
            3 => "prefetch abort",
            4 => "data abort",
            7 if self.debug.enabled => {
                // With C_DEBUGEN a BKPT enters debug state at the instruction.
                self.pc = pc;
                self.debug_halt(stm32h755::debug::armv7m::DFSR_BKPT);
                return Ok(());
            }
            7 => "BKPT",
            17 => "NOCP usage fault (FPU disabled)",
            18 => "INVSTATE usage fault",
            22 => "unaligned access",
            n => {
                return Err(format!(
                    "CPU exception {n} near {}",
                    self.symbols.describe(pc)
                ))
            }
        };
        let text = format!("{what} at {}: HardFault", self.symbols.describe(pc));
        if self
            .uc()
            .get_data()
            .active
            .iter()
            .any(|a| a.number == HARD_FAULT)
        {
            return Err(format!("{text} inside the HardFault handler (lockup)"));
        }
        self.faults.push(text);
        self.pc = pc;
        self.enter_exception(HARD_FAULT)?;
        self.uc_mut().get_data_mut().soc.nvic.raise(HARD_FAULT);
        Ok(())
    }

    fn read_u32(&self, addr: u32) -> Result<u32, String> {
        let mut b = [0u8; 4];
        self.uc()
            .mem_read(u64::from(addr), &mut b)
            .map_err(|e| format!("stack read at {addr:#010x}: {e:?}"))?;
        Ok(u32::from_le_bytes(b))
    }

    fn write_regs(&mut self, regs: &[(RegisterARM, u32)]) -> Result<(), String> {
        for (r, v) in regs {
            self.uc_mut()
                .reg_write(*r, u64::from(*v))
                .map_err(|e| format!("register write: {e:?}"))?;
        }
        Ok(())
    }

    const FRAME_REGS: [RegisterARM; 8] = [
        RegisterARM::R0,
        RegisterARM::R1,
        RegisterARM::R2,
        RegisterARM::R3,
        RegisterARM::R12,
        RegisterARM::LR,
        RegisterARM::PC,
        RegisterARM::XPSR,
    ];

    /// Exception entry: stacks the context at `self.pc` and branches to the handler.
    fn enter_exception(&mut self, number: u32) -> Result<(), String> {
        let uc = self.uc();
        let d = uc.get_data();
        let in_handler = !d.active.is_empty();
        let ipsr = d.active.last().map_or(0, |a| a.number);
        let vtor = d.soc.nvic.vtor;
        let priority = d.soc.nvic.priority(number);
        let control = reg(uc, RegisterARM::CONTROL);
        let fp = control & 4 != 0;
        let use_psp = !in_handler && control & 2 != 0;
        let sp = reg(uc, RegisterARM::SP);
        let frame_size = if fp { 0x68 } else { 0x20 };
        let realign = sp & 4 != 0;
        let frame = sp.wrapping_sub(frame_size) & !4;
        let mut words: Vec<u32> = Self::FRAME_REGS.iter().map(|r| reg(uc, *r)).collect();
        words[6] = self.pc;
        words[7] = (words[7] & !(0x1FF | (1 << 9))) | ipsr | (u32::from(realign) << 9) | (1 << 24);
        if fp {
            for k in 0..16 {
                words.push(
                    uc.reg_read(RegisterARM::S0 as i32 + k)
                        .map_or(0, |v| v as u32),
                );
            }
            words.push(reg(uc, RegisterARM::FPSCR));
            words.push(0);
        }
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut vector = [0u8; 4];
        uc.mem_read(u64::from(vtor.wrapping_add(4 * number)), &mut vector)
            .map_err(|e| {
                format!(
                    "vector {number} at {:#010x}: {e:?}",
                    vtor.wrapping_add(4 * number)
                )
            })?;
        let handler = u32::from_le_bytes(vector);
        self.uc_mut()
            .mem_write(u64::from(frame), &bytes)
            .map_err(|e| {
                format!("exception entry: the stack at {frame:#010x} is not writable: {e:?}")
            })?;
        let mut exc_return: u32 = match (in_handler, use_psp) {
            (true, _) => 0xFFFF_FFF1,
            (false, false) => 0xFFFF_FFF9,
            (false, true) => 0xFFFF_FFFD,
        };
        if fp {
            exc_return &= !0x10;
        }
        if use_psp {
            self.write_regs(&[(RegisterARM::PSP, frame)])?;
        }
        let new_control = control & !(if use_psp { 2 } else { 0 }) & !4;
        self.write_regs(&[(RegisterARM::CONTROL, new_control)])?;
        if !use_psp {
            self.write_regs(&[(RegisterARM::SP, frame)])?;
        }
        self.write_regs(&[
            (RegisterARM::LR, exc_return),
            (RegisterARM::XPSR, 1 << 24),
            (RegisterARM::PC, handler | 1),
        ])?;
        if handler & 1 == 0 || handler == u32::MAX {
            return Err(format!(
                "exception {number}: vector {handler:#010x} at {:#010x} is not a Thumb handler",
                vtor.wrapping_add(4 * number)
            ));
        }
        self.pc = handler & !1;
        self.stats.exceptions += 1;
        *self.exception_counts.entry(number).or_insert(0) += 1;
        let d = self.uc_mut().get_data_mut();
        d.active.push(Active { number, priority });
        d.soc.active_exception = number;
        d.soc.rettobase = d.active.len() == 1;
        Ok(())
    }

    /// Exception return through `value` (EXC_RETURN).
    fn exception_return(&mut self, value: u32) -> Result<(), String> {
        let Some(top) = self.uc_mut().get_data_mut().active.pop() else {
            return Err(format!(
                "exception return ({value:#010x}) in thread mode near {}",
                self.symbols.describe(self.uc().get_data().pc)
            ));
        };
        let fp = value & 0x10 == 0;
        let to_psp = value & 0xF == 0xD;
        if !matches!(value & 0xF, 0x1 | 0x9 | 0xD) {
            return Err(format!("invalid EXC_RETURN {value:#010x}"));
        }
        let control = reg(self.uc(), RegisterARM::CONTROL);
        let mut new_control = if fp { control | 4 } else { control & !4 };
        if to_psp {
            new_control |= 2;
        }
        self.write_regs(&[(RegisterARM::CONTROL, new_control)])?;
        let sp = reg(self.uc(), RegisterARM::SP);
        let count = if fp { 26 } else { 8 };
        let mut words = Vec::with_capacity(count);
        for k in 0..count as u32 {
            words.push(self.read_u32(sp.wrapping_add(4 * k))?);
        }
        let xpsr = words[7];
        let mut new_sp = sp.wrapping_add(4 * count as u32);
        if xpsr & (1 << 9) != 0 {
            new_sp |= 4;
        }
        let pc = words[6];
        for (r, v) in Self::FRAME_REGS[..6].iter().zip(&words) {
            self.write_regs(&[(*r, *v)])?;
        }
        if fp {
            for k in 0..16 {
                self.uc_mut()
                    .reg_write(RegisterARM::S0 as i32 + k, u64::from(words[8 + k as usize]))
                    .map_err(|e| format!("register write: {e:?}"))?;
            }
            self.write_regs(&[(RegisterARM::FPSCR, words[24])])?;
        }
        self.write_regs(&[
            (RegisterARM::SP, new_sp),
            (RegisterARM::XPSR_NZCVQG, xpsr & !(0x1FF | (1 << 9))),
            (RegisterARM::PC, pc | 1),
        ])?;
        self.pc = pc & !1;
        let d = self.uc_mut().get_data_mut();
        d.soc.nvic.deactivate(top.number);
        d.soc.active_exception = d.active.last().map_or(0, |a| a.number);
        d.soc.rettobase = d.active.len() == 1;
        d.soc.update_lines();
        Ok(())
    }
}

/// Whether `[address, address+len)` touches memory-mapped registers (or bank 2).
fn is_mmio(address: u32, len: u32) -> bool {
    let end = address.saturating_add(len);
    let overlaps = |base: u32, size: u32| address < base.saturating_add(size) && end > base;
    overlaps(PERIPH_BASE, PERIPH_SIZE)
        || overlaps(PPB_BASE, PPB_SIZE)
        || overlaps(super::devices::BANK2, super::devices::BANK2_SIZE)
}

/// A bus write from the engine. It never stops the engine itself: unicorn would then replay the
/// store after the restart (the callback runs before the instruction retires), so a TXBAR
/// write would send its frame twice. The halt it records takes effect at the next block.
fn mmio_write(uc: &mut Unicorn<'_, Data>, addr: u32, size: usize, value: u32) {
    let d = uc.get_data_mut();
    let (now, site) = (d.now(), d.site());
    let effect = d.soc.write(addr, size, value, now, site);
    d.arm();
    if effect.clocks_changed {
        let hz = d.soc.clocks.cpu_hz;
        let instr = d.instr;
        d.clock.rebase(instr, hz);
        d.halt(Halt::Resync);
    }
    if let Some(start) = effect.dma {
        let mut bytes = vec![0u8; start.len];
        let ok = uc.mem_read(u64::from(start.address), &mut bytes).is_ok();
        let d = uc.get_data_mut();
        if ok {
            d.soc.dma_begin(start, bytes, now);
        } else {
            let pc = d.pc;
            d.halt(Halt::Unmapped {
                pc,
                address: start.address,
                what: "DMA read",
            });
        }
    }
    let d = uc.get_data_mut();
    let stop = if effect.lockup {
        Some(Halt::LockUp)
    } else if effect.power_cut {
        Some(Halt::PowerCut)
    } else if effect.reset_requested {
        Some(Halt::ResetRequested)
    } else {
        None
    };
    if let Some(h) = stop {
        d.halt = Some(h);
    }
    // A newly pending interrupt that may preempt: back to the run loop at the next block.
    if uc.get_data().irq_armed && deliverable(uc).is_some() {
        uc.get_data_mut().halt(Halt::Resync);
    }
}
