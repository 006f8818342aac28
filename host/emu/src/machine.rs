//! The emulated Cortex-M7: unicorn in M-profile Thumb mode with the STM32H755's memories
//! mapped as RAM and its peripheral space backed by [`Peripherals`].
//!
//! One code hook runs before every instruction: it counts instructions, spots the idle
//! instruction (WFI 0xBF30 / WFE 0xBF20, or their 32-bit forms) and branches to themselves,
//! and enforces the bounds. MMIO read callbacks feed a polling-loop detector: the same
//! peripheral address read again and again with the same value from a small PC range.

use std::{
    collections::VecDeque,
    path::Path,
    time::{Duration, Instant},
};

use stm32h755::supply::SupplyConfig;
use unicorn_engine::{
    uc_error, Arch, ArmCpuModel, HookType, MemType, Mode, Prot, RegisterARM, Unicorn,
};

use super::{
    peripherals::{Peripherals, Site, PERIPH_BASE, PERIPH_SIZE, PPB_BASE, PPB_SIZE},
    symbols::Symbols,
    EmuError,
};
use rig_instruments::elf::{self, Segment};

/// RAM-like memories of the STM32H755 (base, size, name). Flash starts erased (0xFF).
pub const MEMORIES: [(u32, u32, &str); 7] = [
    (0x0000_0000, 0x1_0000, "ITCM"),
    (FLASH_BASE, FLASH_SIZE, "flash"),
    (0x2000_0000, 0x2_0000, "DTCM"),
    (0x2400_0000, 0x8_0000, "AXI SRAM"),
    (0x3000_0000, 0x4_8000, "SRAM1-3"),
    (0x3800_0000, 0x1_0000, "SRAM4"),
    (0x3880_0000, 0x1000, "backup SRAM"),
];
pub use stm32h755::flash::{FLASH_BASE, FLASH_SIZE};

/// A poll counts as one loop while its reads come from a PC range this small.
pub const SMALL_LOOP_BYTES: u32 = 256;
/// MMIO reads kept for the diagnosis of a run that hit a limit.
const RECENT_READS: usize = 256;

/// The board ELF, ready to run.
#[derive(Clone, Debug)]
pub struct Firmware {
    pub segments: Vec<Segment>,
    /// Word 0 of the vector table at 0x0800_0000.
    pub initial_sp: u32,
    /// Word 1 of the vector table (Thumb bit set).
    pub reset: u32,
    pub symbols: Symbols,
}

impl Firmware {
    pub fn load(path: &Path) -> Result<Self, EmuError> {
        let bytes = std::fs::read(path).map_err(|e| {
            EmuError::Elf(elf::ElfError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        })?;
        Self::parse(&bytes).map_err(|reason| {
            EmuError::Elf(elf::ElfError::Parse {
                path: path.display().to_string(),
                reason,
            })
        })
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let segments = elf::parse_segments(bytes)?;
        for s in &segments {
            let end = u64::from(s.address) + s.data.len() as u64;
            let inside = MEMORIES.iter().any(|(base, size, _)| {
                u64::from(s.address) >= u64::from(*base)
                    && end <= u64::from(*base) + u64::from(*size)
            });
            if !inside {
                return Err(format!(
                    "segment at {:#010x} ({} bytes) is outside the STM32H755's memories",
                    s.address,
                    s.data.len()
                ));
            }
        }
        let word = |addr: u32| -> Option<u32> {
            segments.iter().find_map(|s| {
                let off = addr.checked_sub(s.address)? as usize;
                let b = s.data.get(off..off + 4)?;
                Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            })
        };
        let (Some(initial_sp), Some(reset)) = (word(FLASH_BASE), word(FLASH_BASE + 4)) else {
            return Err("no vector table at 0x08000000 (the Cortex-M7 boot address)".into());
        };
        if reset & 1 == 0 {
            return Err(format!(
                "reset vector {reset:#010x} has no Thumb bit: not a Cortex-M vector table"
            ));
        }
        Ok(Self {
            segments,
            initial_sp,
            reset,
            symbols: Symbols::parse(bytes),
        })
    }
}

/// Bounds of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_instructions: u64,
    pub wall_clock: Duration,
    /// Stop as soon as one register has been polled this many times in a row from a small
    /// PC range with the same value (0: only the limits stop a spin).
    pub spin_reads: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_instructions: 50_000_000,
            wall_clock: Duration::from_secs(20),
            spin_reads: 100_000,
        }
    }
}

/// A loop reading one peripheral register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollLoop {
    pub address: u32,
    /// The value it keeps reading.
    pub value: u32,
    pub reads: u64,
    /// Range of the instructions executed in the loop.
    pub pc_lo: u32,
    pub pc_hi: u32,
    /// The load instruction.
    pub read_pc: u32,
}

/// One MMIO read (for diagnosis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioRead {
    pub address: u32,
    pub value: u32,
    pub pc: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    Read,
    Write,
    Fetch,
}

/// Why a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The first WFI/WFE: the executor's idle.
    Idle {
        pc: u32,
        wfe: bool,
    },
    /// One register polled `Limits::spin_reads` times without change.
    Spinning(PollLoop),
    /// `b .`: an empty endless loop (panic-halt, or a loop waiting for an interrupt).
    BranchToSelf {
        pc: u32,
    },
    InstructionLimit {
        pc: u32,
        poll: Option<PollLoop>,
    },
    TimeLimit {
        pc: u32,
        poll: Option<PollLoop>,
    },
    /// A CPU exception (QEMU's EXCP_* number: 1 undefined instruction, 7 BKPT, 17 NOCP ...).
    Exception {
        pc: u32,
        number: u32,
    },
    /// An access outside every mapped memory and peripheral.
    Unmapped {
        pc: u32,
        address: u32,
        kind: AccessKind,
    },
    /// Unicorn stopped with an error the hooks did not explain.
    Emulator {
        pc: u32,
        error: String,
    },
}

impl Stop {
    pub fn pc(&self) -> u32 {
        match self {
            Stop::Idle { pc, .. }
            | Stop::BranchToSelf { pc }
            | Stop::InstructionLimit { pc, .. }
            | Stop::TimeLimit { pc, .. }
            | Stop::Exception { pc, .. }
            | Stop::Unmapped { pc, .. }
            | Stop::Emulator { pc, .. } => *pc,
            Stop::Spinning(p) => p.read_pc,
        }
    }

    pub fn reached_idle(&self) -> bool {
        matches!(self, Stop::Idle { .. })
    }

    /// The polling loop the run ended in, if any.
    pub fn poll(&self) -> Option<&PollLoop> {
        match self {
            Stop::Spinning(p) => Some(p),
            Stop::InstructionLimit { poll, .. } | Stop::TimeLimit { poll, .. } => poll.as_ref(),
            _ => None,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Run {
    pub stop: Stop,
    /// Instructions executed (the idle instruction itself not counted).
    pub instructions: u64,
    pub elapsed: Duration,
    pub peripherals: Peripherals,
    /// The last MMIO reads, oldest first.
    pub recent_reads: Vec<MmioRead>,
}

impl Run {
    pub fn instructions_per_second(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.instructions as f64 / s
        } else {
            0.0
        }
    }
}

struct State {
    periph: Peripherals,
    /// Copy of the flash image, to look at instructions without a call into unicorn.
    flash: Vec<u8>,
    limits: Limits,
    started: Instant,
    instructions: u64,
    pc: u32,
    /// Range of PCs executed since the last MMIO read.
    exec_lo: u32,
    exec_hi: u32,
    poll: PollLoop,
    recent: VecDeque<MmioRead>,
    stop: Option<Stop>,
}

impl State {
    fn site(&self) -> Site {
        Site {
            pc: self.pc,
            instruction: self.instructions,
        }
    }

    fn flash_code(&self, pc: u32, size: u32) -> Option<u32> {
        let off = pc.checked_sub(FLASH_BASE)? as usize;
        let b = self.flash.get(off..off + size as usize)?;
        Some(match b {
            [a, b] => u32::from(u16::from_le_bytes([*a, *b])),
            [a, b, c, d] => u32::from_le_bytes([*a, *b, *c, *d]),
            _ => return None,
        })
    }

    fn current_poll(&self) -> Option<PollLoop> {
        (self.poll.reads >= 16).then_some(self.poll)
    }

    /// Before each instruction: the stop it causes, if any.
    fn before(&mut self, pc: u32, size: u32, code: u32) -> Option<Stop> {
        self.pc = pc;
        self.exec_lo = self.exec_lo.min(pc);
        self.exec_hi = self.exec_hi.max(pc);
        let (hw0, hw1) = (code & 0xFFFF, code >> 16);
        let idle = match (size, hw0, hw1) {
            (2, 0xBF30, _) | (4, 0xF3AF, 0x8003) => Some(false),
            (2, 0xBF20, _) | (4, 0xF3AF, 0x8002) => Some(true),
            _ => None,
        };
        if let Some(wfe) = idle {
            return Some(Stop::Idle { pc, wfe });
        }
        if matches!((size, hw0, hw1), (2, 0xE7FE, _) | (4, 0xF7FF, 0xBFFE)) {
            return Some(Stop::BranchToSelf { pc });
        }
        if self.instructions >= self.limits.max_instructions {
            return Some(Stop::InstructionLimit {
                pc,
                poll: self.current_poll(),
            });
        }
        if self.instructions & 0xFFFF == 0 && self.started.elapsed() >= self.limits.wall_clock {
            return Some(Stop::TimeLimit {
                pc,
                poll: self.current_poll(),
            });
        }
        self.instructions += 1;
        None
    }

    /// After an MMIO read: true when it completes a spin.
    fn observe_read(&mut self, address: u32, value: u32) -> bool {
        let pc = self.pc;
        let (lo, hi) = (self.exec_lo.min(pc), self.exec_hi.max(pc));
        self.exec_lo = u32::MAX;
        self.exec_hi = 0;
        if self.recent.len() == RECENT_READS {
            self.recent.pop_front();
        }
        self.recent.push_back(MmioRead { address, value, pc });
        let p = &mut self.poll;
        if p.reads > 0 && p.address == address && p.value == value {
            let (nlo, nhi) = (p.pc_lo.min(lo), p.pc_hi.max(hi));
            if nhi - nlo <= SMALL_LOOP_BYTES {
                p.pc_lo = nlo;
                p.pc_hi = nhi;
                p.reads += 1;
                return self.limits.spin_reads > 0 && p.reads >= self.limits.spin_reads;
            }
        }
        *p = PollLoop {
            address,
            value,
            reads: 1,
            pc_lo: pc,
            pc_hi: pc,
            read_pc: pc,
        };
        false
    }
}

fn uc_err(what: &'static str) -> impl Fn(uc_error) -> EmuError {
    move |e| EmuError::Unicorn {
        what,
        error: format!("{e:?}"),
    }
}

/// Runs `firmware` from its reset vector on a chip whose supply is wired as `wiring`, until
/// the first WFI/WFE or a bound.
pub fn run(firmware: &Firmware, wiring: SupplyConfig, limits: &Limits) -> Result<Run, EmuError> {
    let mut flash = vec![0xFF_u8; FLASH_SIZE as usize];
    for s in &firmware.segments {
        if let Some(off) = s.address.checked_sub(FLASH_BASE) {
            let off = off as usize;
            if let Some(dst) = flash.get_mut(off..off + s.data.len()) {
                dst.copy_from_slice(&s.data);
            }
        }
    }
    let state = State {
        periph: Peripherals::new(wiring),
        flash,
        limits: *limits,
        started: Instant::now(),
        instructions: 0,
        pc: firmware.reset & !1,
        exec_lo: u32::MAX,
        exec_hi: 0,
        poll: PollLoop {
            address: 0,
            value: 0,
            reads: 0,
            pc_lo: 0,
            pc_hi: 0,
            read_pc: 0,
        },
        recent: VecDeque::with_capacity(RECENT_READS),
        stop: None,
    };
    let mut uc = Unicorn::new_with_data(Arch::ARM, Mode::MCLASS | Mode::THUMB, state)
        .map_err(uc_err("open an Arm M-profile engine"))?;
    uc.ctl_set_cpu_model(ArmCpuModel::CORTEX_M7 as i32)
        .map_err(uc_err("select the Cortex-M7 model"))?;

    for (base, size, _) in MEMORIES {
        uc.mem_map(u64::from(base), u64::from(size), Prot::ALL)
            .map_err(uc_err("map memory"))?;
    }
    let image = uc.get_data().flash.clone();
    uc.mem_write(u64::from(FLASH_BASE), &image)
        .map_err(uc_err("write the flash image"))?;
    drop(image);
    for s in &firmware.segments {
        if !(FLASH_BASE..FLASH_BASE + FLASH_SIZE).contains(&s.address) {
            uc.mem_write(u64::from(s.address), &s.data)
                .map_err(uc_err("write a RAM segment"))?;
        }
    }

    for (base, size) in [(PERIPH_BASE, PERIPH_SIZE), (PPB_BASE, PPB_SIZE)] {
        uc.mmio_map(
            u64::from(base),
            u64::from(size),
            Some(
                move |uc: &mut Unicorn<'_, State>, offset: u64, size: usize| -> u64 {
                    let s = uc.get_data_mut();
                    let addr = base.wrapping_add(offset as u32);
                    let site = s.site();
                    let value = s.periph.read(addr, size, site);
                    if s.observe_read(addr, value) && s.stop.is_none() {
                        s.stop = Some(Stop::Spinning(s.poll));
                        let _ = uc.emu_stop();
                    }
                    u64::from(value)
                },
            ),
            Some(
                move |uc: &mut Unicorn<'_, State>, offset: u64, size: usize, value: u64| {
                    let s = uc.get_data_mut();
                    let site = s.site();
                    s.periph
                        .write(base.wrapping_add(offset as u32), size, value as u32, site);
                },
            ),
        )
        .map_err(uc_err("map the peripherals"))?;
    }

    uc.add_code_hook(1, 0, |uc, address, size| {
        let pc = address as u32;
        if uc.get_data().stop.is_some() {
            let _ = uc.emu_stop();
            return;
        }
        let code = match uc.get_data().flash_code(pc, size) {
            Some(c) => c,
            None => {
                let mut b = [0u8; 4];
                let n = (size as usize).min(4);
                if uc.mem_read(address, &mut b[..n]).is_err() {
                    return;
                }
                u32::from_le_bytes(b)
            }
        };
        let s = uc.get_data_mut();
        if let Some(stop) = s.before(pc, size, code) {
            s.stop = Some(stop);
            let _ = uc.emu_stop();
        }
    })
    .map_err(uc_err("add the code hook"))?;

    uc.add_mem_hook(
        HookType::MEM_READ_UNMAPPED | HookType::MEM_WRITE_UNMAPPED | HookType::MEM_FETCH_UNMAPPED,
        1,
        0,
        |uc, kind, address, _size, _value| {
            let s = uc.get_data_mut();
            if s.stop.is_none() {
                let kind = match kind {
                    MemType::WRITE_UNMAPPED => AccessKind::Write,
                    MemType::FETCH_UNMAPPED => AccessKind::Fetch,
                    _ => AccessKind::Read,
                };
                s.stop = Some(Stop::Unmapped {
                    pc: s.pc,
                    address: address as u32,
                    kind,
                });
            }
            false
        },
    )
    .map_err(uc_err("add the unmapped-access hook"))?;

    uc.add_intr_hook(|uc, number| {
        let s = uc.get_data_mut();
        if s.stop.is_none() {
            s.stop = Some(Stop::Exception { pc: s.pc, number });
        }
        let _ = uc.emu_stop();
    })
    .map_err(uc_err("add the exception hook"))?;

    uc.reg_write(RegisterARM::SP, u64::from(firmware.initial_sp))
        .map_err(uc_err("set the initial stack pointer"))?;

    let started = Instant::now();
    uc.get_data_mut().started = started;
    let timeout_us = u64::try_from(limits.wall_clock.as_micros()).unwrap_or(u64::MAX);
    let result = uc.emu_start(u64::from(firmware.reset | 1), 0, timeout_us, 0);
    let elapsed = started.elapsed();

    let pc = uc
        .reg_read(RegisterARM::PC)
        .map(|p| p as u32)
        .unwrap_or(uc.get_data().pc);
    let s = uc.get_data_mut();
    let stop = match (s.stop.take(), result) {
        (Some(stop), _) => stop,
        (None, Err(e)) => Stop::Emulator {
            pc: s.pc,
            error: format!("{e:?}"),
        },
        (None, Ok(())) if elapsed >= limits.wall_clock => Stop::TimeLimit {
            pc,
            poll: s.current_poll(),
        },
        (None, Ok(())) => Stop::Emulator {
            pc,
            error: "emulation ended without a reason (a WFI the code hook did not see?)".into(),
        },
    };
    Ok(Run {
        stop,
        instructions: s.instructions,
        elapsed,
        peripherals: s.periph.clone(),
        recent_reads: s.recent.iter().copied().collect(),
    })
}
