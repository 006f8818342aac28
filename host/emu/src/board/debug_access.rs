//! The board's debug port: the SW-DP and its four access ports wired to what each reaches.
//!
//! - AP 0 (Cortex-M7 AHB-AP): the M7's private peripheral bus (its debug registers, SCS, FPB,
//!   its ROM table) and, through the M7's AHBD port, the whole system.
//! - AP 1 (D3 AHB-AP): the D3 domain only: SRAM4, backup SRAM, the D3 peripherals (PWR, RCC...).
//! - AP 2 (APB-AP): the debug components: the system ROM table, DBGMCU (IDC, CR, the freeze
//!   registers), trace components (read as zero here).
//! - AP 3 (Cortex-M4 AHB-AP): the M4's private peripheral bus and the system.
//!
//! Bus faults, as the chip gives them: a system access while NRST holds the chip in reset, a
//! D3 access outside D3, an address where nothing is, and (by default, see [`HeldCoreDebug`])
//! any access through a core's port while that core's boot is disabled.

use stm32h755::{
    debug::{
        armv7m::{AIRCR, CPUID, CPUID_CM4, CPUID_CM7, DFSR_HALTED, SYSRESETREQ, VECTKEY},
        CM4_ROM_TABLE, CM7_ROM_TABLE, DBGMCU_APB, DBGMCU_CR_OFFSET, DBGMCU_IDCODE_VALUE,
        SYSTEM_ROM_TABLE,
    },
    flash::OPTSR_BCM4,
};

use super::{cortex_m4::Cm4, EmulatedBoard, State};
use crate::{
    cpu::{Cpu, DebugEffect, SliceEnd},
    debug::{
        core_debug::{CoreDebug, Fpb},
        AccessSize, ApBus, BusFault, CoreRequest, CoreView, DapAck, DapPort, DebugPort,
    },
};

/// How a core whose boot the option bytes disable (BCM7 = 0 or BCM4 = 0) answers on its
/// access port. RM0399 says the core is clock-gated (the M7) or held in reset (the M4) but not
/// what its AHB-AP then does; this is the model's assumption, one switch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeldCoreDebug {
    /// Every transfer through its AP is a bus error (FAULT): the port's bus has no clock.
    #[default]
    Faults,
    /// Its debug registers answer (the core shows as in reset, halts do nothing) and its AP
    /// reaches the system.
    Answers,
}

/// The debug logic: reset by a power-on only, not by NRST or a system reset.
#[derive(Clone, Debug)]
pub struct DebugSide {
    pub dp: DebugPort,
    pub cm7: CoreDebug,
    pub cm4_debug: CoreDebug,
    pub cm4: Cm4,
    /// DBGMCU_CR and the freeze registers (+0x34..+0x54), in the APB-AP's view.
    pub dbgmcu: [u32; 0x58 / 4],
    pub held_core: HeldCoreDebug,
}

impl DebugSide {
    pub fn new(held_core: HeldCoreDebug) -> Self {
        Self {
            dp: DebugPort::default(),
            cm7: CoreDebug::new(Fpb::V2Cm7),
            cm4_debug: CoreDebug::new(Fpb::V1Cm4),
            cm4: Cm4::default(),
            dbgmcu: [0; 0x58 / 4],
            held_core,
        }
    }
}

const PPB: std::ops::Range<u32> = 0xE000_0000..0xE010_0000;
const ROM_TABLE_SIZE: u32 = 0x1000;

/// A ROM table's identification registers (CIDR: class 1, ROM table) and its entries.
fn rom_table_word(base: u32, address: u32) -> Option<u32> {
    if !(base..base + ROM_TABLE_SIZE).contains(&address) {
        return None;
    }
    let offset = address - base;
    Some(match offset {
        0xFF0 => 0x0D,
        0xFF4 => 0x10,
        0xFF8 => 0x05,
        0xFFC => 0xB1,
        // PIDR: JEP106 ST (0x20), part 0x450.
        0xFE0 => 0x50,
        0xFE4 => 0x04,
        0xFE8 => 0x0A,
        0xFD0 => 0x00,
        // No entries: a debugger's scan ends at the first word.
        _ => 0,
    })
}

/// The core an AP belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Port {
    Cm7,
    D3,
    Apb,
    Cm4,
}

fn port(ap: u8) -> Port {
    match ap {
        0 => Port::Cm7,
        1 => Port::D3,
        2 => Port::Apb,
        _ => Port::Cm4,
    }
}

/// The M7's view for its debug registers: the running core, if any.
struct Cm7View<'a>(Option<&'a mut Cpu>);

impl CoreView for Cm7View<'_> {
    fn halted(&self) -> bool {
        self.0.as_ref().is_some_and(|c| c.debug.halted)
    }
    fn locked_up(&self) -> bool {
        self.0.as_ref().is_some_and(|c| c.debug.lockup.is_some())
    }
    fn sleeping(&self) -> bool {
        self.0.as_ref().is_some_and(|c| c.sleeping())
    }
    fn read_register(&mut self, regsel: u32) -> Option<u32> {
        self.0.as_ref()?.read_core_register(regsel)
    }
    fn write_register(&mut self, regsel: u32, value: u32) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| c.write_core_register(regsel, value))
    }
}

/// The board as the access ports reach it, for one transfer.
struct BoardBus<'a> {
    board: &'a mut EmulatedBoard,
    debug: &'a mut DebugSide,
    /// What the transfer set off, done once it completed (the debug logic is back in place).
    after: Option<SliceEnd>,
}

fn fault(ap: u8, address: u32, reason: impl Into<String>) -> BusFault {
    BusFault {
        ap,
        address,
        reason: reason.into(),
    }
}

fn extract(word: u32, address: u32, size: AccessSize) -> u32 {
    match size {
        AccessSize::Word => word,
        AccessSize::Half => (word >> ((address & 2) * 8)) & 0xFFFF,
        AccessSize::Byte => (word >> ((address & 3) * 8)) & 0xFF,
    }
}

impl BoardBus<'_> {
    fn running(&mut self) -> Option<&mut Cpu> {
        match &mut self.board.state {
            State::Running(c) => Some(c),
            _ => None,
        }
    }

    /// Whether a core's port has a clock (its boot enabled, or the switch says it answers).
    fn port_clocked(&self, ap: u8) -> Result<(), BusFault> {
        if self.debug.held_core == HeldCoreDebug::Answers {
            return Ok(());
        }
        let optsr = self.board.option_bytes.optsr;
        match port(ap) {
            Port::Cm7 if self.board.power.cm7_disabled() && !self.board.power.reset_held() => {
                Err(fault(
                    ap,
                    0,
                    "the Cortex-M7 is clock-gated (BCM7 = 0): its access port's bus has no clock",
                ))
            }
            Port::Cm4 if optsr & OPTSR_BCM4 == 0 && !self.board.power.reset_held() => Err(fault(
                ap,
                0,
                "the Cortex-M4 is held (BCM4 = 0): its access port's bus has no clock",
            )),
            _ => Ok(()),
        }
    }

    fn system_read(&mut self, ap: u8, address: u32, size: AccessSize) -> Result<u32, BusFault> {
        if self.board.power.reset_held() {
            return Err(fault(
                ap,
                address,
                "the system bus is held in reset (NRST low)",
            ));
        }
        let n = size.bytes() as usize;
        let mut buf = [0u8; 4];
        self.board
            .system_read(address, &mut buf[..n])
            .map_err(|e| fault(ap, address, e.to_string()))?;
        Ok(u32::from_le_bytes(buf))
    }

    fn system_write(
        &mut self,
        ap: u8,
        address: u32,
        size: AccessSize,
        value: u32,
    ) -> Result<(), BusFault> {
        if self.board.power.reset_held() {
            return Err(fault(
                ap,
                address,
                "the system bus is held in reset (NRST low)",
            ));
        }
        let Some(cpu) = self.running() else {
            return self.board.idle_write(address, value).map_err(|_| {
                fault(
                    ap,
                    address,
                    "nothing answers there while the Cortex-M7 is stopped (only the flash interface's registers)",
                )
            });
        };
        match cpu.debug_write(address, size.bytes() as usize, value) {
            Ok(DebugEffect::None) => Ok(()),
            Ok(DebugEffect::Stop(end)) => {
                self.after = Some(end);
                Ok(())
            }
            Err(at) => Err(fault(ap, at, "no memory or peripheral there")),
        }
    }

    /// A write to a core's private peripheral bus other than its debug registers.
    fn ppb_write(&mut self, ap: u8, address: u32, value: u32) -> Result<(), BusFault> {
        if address == AIRCR && value & 0xFFFF_0000 == VECTKEY && value & SYSRESETREQ != 0 {
            // Either core's SYSRESETREQ resets the whole system.
            self.after = Some(SliceEnd::ResetRequested);
            return Ok(());
        }
        if port(ap) == Port::Cm7 {
            if let Some(cpu) = self.running() {
                return cpu
                    .debug_write(address, 4, value)
                    .map(|_| ())
                    .map_err(|at| fault(ap, at, "nothing there in the PPB"));
            }
        }
        Ok(())
    }

    fn act_cm7(&mut self, request: CoreRequest) {
        let Some(cpu) = self.running() else {
            return;
        };
        match request {
            CoreRequest::Halt => cpu.debug_halt(DFSR_HALTED),
            CoreRequest::Resume => cpu.debug_resume(),
            CoreRequest::Step => {
                if let Err(e) = cpu.debug_step() {
                    self.board.fault(e);
                }
            }
        }
        if let Some(cpu) = self.running() {
            let reasons = cpu.debug.take_reasons();
            self.debug.cm7.core_halted(reasons);
        }
    }
}

impl ApBus for BoardBus<'_> {
    fn read(&mut self, ap: u8, address: u32, size: AccessSize) -> Result<u32, BusFault> {
        self.port_clocked(ap)?;
        let aligned = address & !3;
        match port(ap) {
            Port::Apb => {
                let word = if let Some(w) = rom_table_word(SYSTEM_ROM_TABLE, aligned) {
                    w
                } else if (DBGMCU_APB..DBGMCU_APB + 0x58).contains(&aligned) {
                    match aligned - DBGMCU_APB {
                        0 => DBGMCU_IDCODE_VALUE,
                        off => self.debug.dbgmcu[(off / 4) as usize],
                    }
                } else if (0xE00E_0000..0xE010_0000).contains(&aligned) {
                    // Trace components (TPIU, SWO, funnels, ETF): not modelled, read as zero.
                    0
                } else {
                    return Err(fault(ap, address, "outside the debug APB (0xE00E0000..)"));
                };
                Ok(extract(word, address, size))
            }
            Port::D3 => {
                if !in_d3(address) {
                    return Err(fault(ap, address, "outside the D3 domain"));
                }
                self.system_read(ap, address, size)
            }
            p @ (Port::Cm7 | Port::Cm4) if PPB.contains(&address) => {
                let word = if p == Port::Cm7 {
                    let debug = &mut self.debug.cm7;
                    let view = &mut Cm7View(match &mut self.board.state {
                        State::Running(c) => Some(c),
                        _ => None,
                    });
                    match debug.read(aligned, view) {
                        Some(w) => w,
                        None if aligned == CPUID => CPUID_CM7,
                        None => match rom_table_word(CM7_ROM_TABLE, aligned) {
                            Some(w) => w,
                            None => match self.running() {
                                Some(cpu) => {
                                    let mut b = [0u8; 4];
                                    cpu.debug_read(aligned, &mut b)
                                        .map_err(|at| fault(ap, at, "nothing there"))?;
                                    u32::from_le_bytes(b)
                                }
                                None => 0,
                            },
                        },
                    }
                } else {
                    match self.debug.cm4_debug.read(aligned, &mut self.debug.cm4) {
                        Some(w) => w,
                        None if aligned == CPUID => CPUID_CM4,
                        None => rom_table_word(CM4_ROM_TABLE, aligned).unwrap_or(0),
                    }
                };
                Ok(extract(word, address, size))
            }
            _ => self.system_read(ap, address, size),
        }
    }

    fn write(
        &mut self,
        ap: u8,
        address: u32,
        size: AccessSize,
        value: u32,
    ) -> Result<(), BusFault> {
        self.port_clocked(ap)?;
        let aligned = address & !3;
        match port(ap) {
            Port::Apb => {
                if (DBGMCU_APB + DBGMCU_CR_OFFSET..DBGMCU_APB + 0x58).contains(&aligned) {
                    self.debug.dbgmcu[((aligned - DBGMCU_APB) / 4) as usize] = value;
                    Ok(())
                } else if (0xE00E_0000..0xE010_0000).contains(&aligned) {
                    Ok(())
                } else {
                    Err(fault(ap, address, "outside the debug APB (0xE00E0000..)"))
                }
            }
            Port::D3 => {
                if !in_d3(address) {
                    return Err(fault(ap, address, "outside the D3 domain"));
                }
                self.system_write(ap, address, size, value)
            }
            Port::Cm7 if PPB.contains(&address) => {
                let request = {
                    let debug = &mut self.debug.cm7;
                    let view = &mut Cm7View(match &mut self.board.state {
                        State::Running(c) => Some(c),
                        _ => None,
                    });
                    debug.write(aligned, value, view)
                };
                let enabled = self.debug.cm7.debug_enabled();
                let breakpoints = self.debug.cm7.breakpoints();
                if let Some(cpu) = self.running() {
                    cpu.debug.enabled = enabled;
                    if let Err(e) = cpu.set_breakpoints(&breakpoints) {
                        self.board.fault(e);
                    }
                }
                match request {
                    Some(Some(r)) => {
                        self.act_cm7(r);
                        Ok(())
                    }
                    Some(None) => Ok(()),
                    None => self.ppb_write(ap, aligned, value),
                }
            }
            Port::Cm4 if PPB.contains(&address) => {
                let d = &mut *self.debug;
                match d.cm4_debug.write(aligned, value, &mut d.cm4) {
                    Some(Some(r)) => {
                        d.cm4.act(r, &mut d.cm4_debug);
                        Ok(())
                    }
                    Some(None) => Ok(()),
                    None => self.ppb_write(ap, aligned, value),
                }
            }
            _ => self.system_write(ap, address, size, value),
        }
    }
}

/// The D3 domain: SRAM4, backup SRAM, the AHB4/APB4 peripherals.
fn in_d3(address: u32) -> bool {
    (0x3800_0000..0x3801_0000).contains(&address)
        || (0x3880_0000..0x3880_1000).contains(&address)
        || (0x5800_0000..0x5803_0000).contains(&address)
}

impl EmulatedBoard {
    pub(super) fn dap_transfer(
        &mut self,
        port: DapPort,
        addr: u8,
        write: Option<u32>,
        now_us: u64,
    ) -> Result<u32, DapAck> {
        // No Vcore (off, or cut by the supply choice): nothing answers on SWD.
        if !self.power.powered() || self.power.locked_up() {
            return Err(DapAck::NoAck);
        }
        let held_core = self.debug.held_core;
        let mut debug = std::mem::replace(&mut self.debug, DebugSide::new(held_core));
        let mut dp = std::mem::take(&mut debug.dp);
        let (result, after) = {
            let mut bus = BoardBus {
                board: self,
                debug: &mut debug,
                after: None,
            };
            let r = match write {
                Some(v) => dp.write(port, addr, v, &mut bus).map(|_| 0),
                None => dp.read(port, addr, &mut bus),
            };
            (r, bus.after)
        };
        debug.dp = dp;
        self.debug = debug;
        if let Some(end) = after {
            self.after_debug_stop(end, now_us);
        }
        result
    }

    /// After a debugger's write ended like a firmware slice can (a reset request, a supply
    /// write that cut Vcore, the planned power cut).
    pub(super) fn after_debug_stop(&mut self, end: SliceEnd, now_us: u64) {
        match end {
            SliceEnd::ResetRequested => self.system_reset(now_us),
            SliceEnd::LockUp => {
                self.stop_core();
                self.last_stop = Some("a debugger's PWR_CR3 write cut Vcore (lock-up)".into());
                self.power.lock_up();
            }
            SliceEnd::PowerCut => {
                self.stop_core();
                self.power.power_off();
                self.power_cut = true;
            }
            _ => {}
        }
    }
}
