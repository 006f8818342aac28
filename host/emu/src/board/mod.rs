//! The emulated board: the real board ELF running for the whole scenario on the emulated
//! STM32H755's Cortex-M7 ([`super::cpu`]), behind the simulated bench's [`SimulatedTarget`]
//! trait, so the same host instruments (slcan and SUMP over pseudo-terminals, the telemetry
//! port, the in-process probe) drive it as they drive the model that runs the host-built logic.
//!
//! - Time: each bench tick runs the core until its virtual time reaches the bench's time since
//!   the core left reset, within a wall-clock budget per tick; a slow emulator lags and catches
//!   up, and [`SimulatedTarget::emulation`] reports the speed and the real-time factor.
//! - Non-volatile state survives power cuts: flash bank 1 (the program, as downloaded) and
//!   bank 2 (the storage records; a cut can be planned after N programmed bytes), the option
//!   bytes. RAM and peripherals start over at every reset.
//! - PWR: the supply bits latched by the first PWR_CR3 write stay until power is removed; a
//!   reset keeps them. A choice that cuts Vcore on this board's wiring kills the chip (no debug
//!   access) until the next power cycle.
//! - An emulator failure (an access outside every memory, an engine error) leaves the board in
//!   an error state: reads through the probe fail with the reason and `identity()` carries it;
//!   nothing panics.

mod cortex_m4;
mod debug_access;

pub use cortex_m4::{Cm4, Cm4Run};
pub use debug_access::{DebugSide, HeldCoreDebug};

use std::{
    path::Path,
    time::{Duration, Instant},
};

use stm32h755::{
    debug::armv7m::DFSR_VCATCH,
    flash::{boot_address0, OPTSR_BCM4},
    supply::SupplyConfig,
};

use super::{
    cpu::{Cpu, CpuStats, DebugEffect, SliceEnd, BANK1, BANK1_SIZE},
    devices::Bank,
    devices::{BANK2, BANK2_OFFSETS, BANK2_SIZE, PS_PER_S},
    machine::Firmware,
    peripherals::{Peripherals, BOOT4_DEFAULT, BOOT7_DEFAULT},
    soc::Soc,
    symbols::Symbols,
    EmuError,
};
use rig_instruments::CoreSelect;
use rig_sim::{
    board_power::{BoardPower, BootGate, CoreAction},
    flash::FlashModel,
    logic_board::OptionBytes,
    target::{
        DapAck, DapPort, DebugAccessError, EmulationStats, FirmwareIdentity, FirmwareImage, Pins,
        SimulatedTarget, TargetIo,
    },
};

/// The flash interface's registers (keys, CR/SR, option bytes).
const FLASH_REGISTERS: u32 = stm32h755::flash::FLASH;
/// Where a debugger's register write comes from, for the models that log writers.
const DEBUGGER_SITE: crate::peripherals::Site = crate::peripherals::Site {
    pc: 0,
    instruction: 0,
};

/// Wall-clock budget of one bench tick (the bench ticks every millisecond).
pub const TICK_BUDGET: Duration = Duration::from_millis(4);
/// Virtual time run at once when the core leaves reset, and its wall-clock budget.
const BOOT_RUN_PS: u64 = 1_000_000_000;
const BOOT_BUDGET: Duration = Duration::from_millis(200);

/// An ELF the board knows by its segments (for names and symbols in diagnoses).
#[derive(Clone, Debug)]
pub struct KnownImage {
    pub name: String,
    pub firmware: Firmware,
    pub sha256: Option<String>,
}

impl KnownImage {
    pub fn load(path: &Path) -> Result<Self, EmuError> {
        Ok(Self {
            name: path.display().to_string(),
            firmware: Firmware::load(path)?,
            sha256: rig_instruments::elf::sha256_hex(path).ok(),
        })
    }
}

/// What the core does. Whether it may run at all (supply, NRST, a lock-up, the CM7 boot gate)
/// is [`BoardPower`]'s to say.
enum State {
    /// Not running: powered off, NRST held, Vcore cut by the supply choice (dead until the
    /// next power-on), or BCM7 = 0 ([`EmulatedBoard::power`] says which).
    Stopped,
    Running(Box<Cpu>),
    /// The emulator could not go on.
    Faulted(String),
}

pub struct EmulatedBoard {
    wiring: SupplyConfig,
    pub option_bytes: OptionBytes,
    /// Flash bank 1 (the program) while the core is not running (while it runs, the core's
    /// flash controller holds it).
    bank1: FlashModel,
    /// Bank 2 while the core is not running (while it runs, the core's model holds it).
    bank2: FlashModel,
    known: Vec<KnownImage>,
    /// Index in `known` of the image in bank 1.
    loaded: Option<usize>,
    /// Supply, NRST, lock-up and the CM7 boot gate (shared with the logic board).
    power: BoardPower,
    /// The firmware asked for a system reset: done at the next tick.
    reset_pending: bool,
    /// Supply bits latched since the last power-on.
    latched: Option<u32>,
    state: State,
    /// Bench time the core left reset.
    epoch_us: u64,
    last_tick_us: u64,
    power_cut: bool,
    /// Stats of the cores before the current one.
    finished: CpuStats,
    /// The FDCAN counters of cores that stopped: received, filtered, overruns, dropped, lost
    /// to a bus fault, error passive and bus-off events.
    finished_can: [u64; 7],
    /// The fault the bench put on the CAN bus: a property of the bus, kept across resets.
    can_bus_fault: rig_instruments::CanBusFault,
    wall_us: u64,
    /// How the last core ended, when it did not simply stop (lock-up, fault).
    pub last_stop: Option<String>,
    pub tick_budget: Duration,
    /// The debug port and both cores' debug registers (a power-on resets them).
    pub debug: DebugSide,
    /// The peripherals while the Cortex-M7 does not run (NRST held, BCM7 = 0): reset values,
    /// and the flash interface's registers a debugger writes through AP 3 (option bytes).
    idle: Option<Peripherals>,
}

fn empty_flash() -> FlashModel {
    FlashModel::new(BANK2_OFFSETS.start..BANK2_OFFSETS.start)
}

/// The option bytes as `p` holds them: what OPTSTART programmed becomes the board's and
/// survives power cycles.
fn option_bytes_in(p: &Peripherals) -> OptionBytes {
    OptionBytes {
        optsr: p.peek(stm32h755::flash::FLASH_OPTSR_CUR),
        boot7: p.peek(stm32h755::flash::FLASH_BOOT7_CURR) & 0xFFFF,
        boot4: p.peek(stm32h755::flash::FLASH_BOOT4_CURR) & 0xFFFF,
    }
}

/// Bank 1 with its program/erase counters at zero, so a core's changes can be told apart.
fn counted_from_now(mut bank1: FlashModel) -> FlashModel {
    bank1.bytes_written = 0;
    bank1.erases = 0;
    bank1
}

fn add_can(total: &mut [u64; 7], f: &crate::devices::fdcan::Fdcan) {
    for (t, n) in total.iter_mut().zip([
        f.received,
        f.filtered,
        f.overruns,
        f.dropped,
        f.lost_to_bus_fault,
        f.error_passive_events,
        f.bus_off_events,
    ]) {
        *t += n;
    }
}

fn add_stats(a: &mut CpuStats, b: &CpuStats) {
    a.instructions += b.instructions;
    a.virtual_ps += b.virtual_ps;
    a.busy += b.busy;
    a.runs += b.runs;
    a.exceptions += b.exceptions;
    a.debug_halts += b.debug_halts;
    a.debug_halted_ps += b.debug_halted_ps;
    a.longest_debug_halt_ps = a.longest_debug_halt_ps.max(b.longest_debug_halt_ps);
}

impl EmulatedBoard {
    /// A board wired as `wiring` with `known` ELFs (the first is preloaded in flash).
    pub fn new(wiring: SupplyConfig, option_bytes: OptionBytes, known: Vec<KnownImage>) -> Self {
        let mut board = Self {
            wiring,
            option_bytes,
            bank1: FlashModel::new(Bank::One.offsets()),
            bank2: FlashModel::new(BANK2_OFFSETS),
            known,
            loaded: None,
            power: BoardPower::default(),
            reset_pending: false,
            latched: None,
            state: State::Stopped,
            epoch_us: 0,
            last_tick_us: 0,
            power_cut: false,
            finished: CpuStats::default(),
            finished_can: [0; 7],
            can_bus_fault: rig_instruments::CanBusFault::None,
            wall_us: 0,
            last_stop: None,
            tick_budget: TICK_BUDGET,
            debug: DebugSide::new(HeldCoreDebug::default()),
            idle: None,
        };
        if let Some(first) = board.known.first() {
            let segments = first.firmware.segments.clone();
            // Segments outside bank 1 (none in the shipped ELF) are simply not preloaded.
            let _ = board.load_program(&segments);
        }
        board
    }

    /// Loads the ELFs at `paths` (the first preloaded).
    pub fn from_elfs(
        wiring: SupplyConfig,
        option_bytes: OptionBytes,
        paths: &[&Path],
    ) -> Result<Self, EmuError> {
        let known = paths
            .iter()
            .map(|p| KnownImage::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(wiring, option_bytes, known))
    }

    fn symbols(&self) -> Symbols {
        self.loaded
            .and_then(|i| self.known.get(i))
            .map(|k| k.firmware.symbols.clone())
            .unwrap_or_default()
    }

    /// Peripherals as a reset leaves them: PWR latch and option bytes carried over.
    fn reset_peripherals(&self) -> Peripherals {
        let mut p = Peripherals::after_reset(self.wiring, self.latched);
        p.set_option_bytes(
            self.option_bytes.optsr,
            (BOOT7_DEFAULT & 0xFFFF_0000) | (self.option_bytes.boot7 & 0xFFFF),
            (BOOT4_DEFAULT & 0xFFFF_0000) | (self.option_bytes.boot4 & 0xFFFF),
        );
        p
    }

    /// Stops the core (if it runs): keeps its latch, flash and statistics.
    fn stop_core(&mut self) {
        if let State::Running(core) = &mut self.state {
            if let Some(bits) = core.soc().periph.latched_supply_bits() {
                self.latched = Some(bits);
            }
            self.option_bytes = option_bytes_in(&core.soc().periph);
            self.bank2 = std::mem::replace(&mut core.soc_mut().bank2.flash, empty_flash());
            self.bank1 = std::mem::replace(&mut core.soc_mut().bank1.flash, empty_flash());
            add_stats(&mut self.finished, &core.stats);
            add_can(&mut self.finished_can, &core.soc().fdcan);
            self.wall_us += self.last_tick_us.saturating_sub(self.epoch_us);
            self.state = State::Stopped;
            if self.bank1.bytes_written + self.bank1.erases > 0 {
                // A debugger's flash algorithm changed the program: which ELF is it now?
                self.loaded = self.known_image_in_flash();
            }
        }
        self.state = State::Stopped;
    }

    /// Does what [`BoardPower`] decided for the core.
    fn act(&mut self, action: CoreAction, now_us: u64) {
        match action {
            CoreAction::Start => self.start(now_us),
            CoreAction::Hold => self.stop_core(),
            CoreAction::Nothing => {}
        }
    }

    /// Starts the firmware from its reset vector (power-on or reset).
    fn start(&mut self, now_us: u64) {
        self.stop_core();
        self.idle = None;
        self.reset_pending = false;
        self.epoch_us = now_us;
        self.last_tick_us = now_us;
        let gate = self.power.boot_gate(self.option_bytes.optsr);
        self.reset_cm4(gate == BootGate::HeldInReset);
        self.debug.cm7.core_reset();
        match gate {
            // NRST held, or BCM7 = 0: the core stays stopped.
            BootGate::HeldInReset | BootGate::Cm7Disabled => return,
            // BOOT0 high: ST's bootloader runs instead of the ELF (not emulated: the core stays
            // stopped). It chooses a supply of its own, modelled as the board's wiring.
            BootGate::SystemMemory => {
                self.latched.get_or_insert(self.wiring.cr3_bits());
                return;
            }
            BootGate::Open => {}
        }
        let bank1 = std::mem::replace(&mut self.bank1, empty_flash());
        let bank2 = std::mem::replace(&mut self.bank2, empty_flash());
        let soc = Soc::new(self.reset_peripherals(), counted_from_now(bank1), bank2);
        match Cpu::new(soc, self.symbols()) {
            Ok(mut core) => {
                core.debug.enabled = self.debug.cm7.debug_enabled();
                if let Err(e) = core.set_breakpoints(&self.debug.cm7.breakpoints()) {
                    // The firmware runs on without them; say why a debugger saw no halt.
                    self.last_stop = Some(e);
                }
                // Reset catch (DEMCR.VC_CORERESET): debug state at the reset vector, before the
                // first instruction.
                let halt = self.debug.cm7.catches_reset().then_some(DFSR_VCATCH);
                if let Some(reason) = halt {
                    core.debug_halt(reason);
                    self.debug.cm7.core_halted(core.debug.take_reasons());
                }
                self.state = State::Running(Box::new(core));
                if halt.is_none() {
                    // The chip's first moments: reset, clock and supply setup, the storage
                    // records. On the board they take microseconds, less than any probe needs
                    // to attach; the bench only ticks every millisecond.
                    self.run_core(BOOT_RUN_PS, Instant::now() + BOOT_BUDGET);
                }
            }
            Err((e, mut soc)) => {
                self.bank1 = std::mem::replace(&mut soc.bank1.flash, empty_flash());
                self.bank2 = std::mem::replace(&mut soc.bank2.flash, empty_flash());
                self.fault(format!("cannot start the core: {e}"));
            }
        }
    }

    /// The Cortex-M4 leaves reset (or stays in it): BCM4 and its boot address decide.
    fn reset_cm4(&mut self, nrst_held: bool) {
        let boots = !nrst_held && self.option_bytes.optsr & OPTSR_BCM4 != 0;
        let boot =
            boot_address0((BOOT4_DEFAULT & 0xFFFF_0000) | (self.option_bytes.boot4 & 0xFFFF));
        let mut words = [0u8; 8];
        let vectors = match self.system_read(boot, &mut words) {
            Ok(()) => [
                u32::from_le_bytes([words[0], words[1], words[2], words[3]]),
                u32::from_le_bytes([words[4], words[5], words[6], words[7]]),
            ],
            Err(_) => [u32::MAX; 2],
        };
        let d = &mut self.debug;
        d.cm4.reset(boots, vectors, &mut d.cm4_debug);
    }

    /// A system reset (AIRCR.SYSRESETREQ of either core, or a probe's): as NRST pulsed.
    pub(crate) fn system_reset(&mut self, now_us: u64) {
        let action = self.power.reset();
        self.act(action, now_us);
    }

    /// Runs the core to `target_ps` (virtual) within `deadline` (wall) and acts on how it
    /// stopped.
    fn run_core(&mut self, target_ps: u64, deadline: Instant) {
        let State::Running(core) = &mut self.state else {
            return;
        };
        let before = core.instructions();
        let outcome = core.run_until(target_ps, deadline);
        if core.instructions() != before {
            self.debug.cm7.core_ran();
        }
        self.debug.cm7.core_halted(core.debug.take_reasons());
        if let Some(bits) = core.soc().periph.latched_supply_bits() {
            self.latched = Some(bits);
        }
        match outcome {
            SliceEnd::Reached | SliceEnd::OutOfBudget => {}
            SliceEnd::LockUp => {
                self.stop_core();
                self.last_stop = Some("the first PWR_CR3 write cut Vcore (lock-up)".into());
                self.power.lock_up();
            }
            SliceEnd::PowerCut => {
                self.stop_core();
                self.power.power_off();
                self.power_cut = true;
            }
            // A system reset: the next tick restarts the firmware.
            SliceEnd::ResetRequested => self.reset_pending = true,
            SliceEnd::Fault(reason) => self.fault(reason),
        }
    }

    fn fault(&mut self, reason: String) {
        self.stop_core();
        self.last_stop = Some(reason.clone());
        self.state = State::Faulted(reason);
    }

    /// Bank 1 as it is now (the running core's flash controller holds it).
    fn bank1(&self) -> &FlashModel {
        match &self.state {
            State::Running(core) => &core.soc().bank1.flash,
            _ => &self.bank1,
        }
    }

    fn bank1_mut(&mut self) -> &mut FlashModel {
        match &mut self.state {
            State::Running(core) => &mut core.soc_mut().bank1.flash,
            _ => &mut self.bank1,
        }
    }

    /// The known ELF whose segments bank 1 holds, if any.
    fn known_image_in_flash(&self) -> Option<usize> {
        let flash = self.bank1();
        self.known.iter().position(|k| {
            k.firmware.segments.iter().all(|s| {
                flash
                    .read_at(s.address.wrapping_sub(BANK1), s.data.len())
                    .is_ok_and(|b| b == s.data.as_slice())
            })
        })
    }

    fn flash(&self) -> &FlashModel {
        match &self.state {
            State::Running(core) => &core.soc().bank2.flash,
            _ => &self.bank2,
        }
    }

    fn flash_mut(&mut self) -> &mut FlashModel {
        match &mut self.state {
            State::Running(core) => &mut core.soc_mut().bank2.flash,
            _ => &mut self.bank2,
        }
    }

    /// Totals over every core since the board was made.
    pub fn stats(&self) -> EmulationStats {
        let mut total = self.finished;
        let mut can = self.finished_can;
        let mut wall_us = self.wall_us;
        let mut lag_ms = 0.0;
        let state = match &self.state {
            State::Running(core) => {
                add_stats(&mut total, &core.stats);
                add_can(&mut can, &core.soc().fdcan);
                let elapsed = self.last_tick_us.saturating_sub(self.epoch_us);
                wall_us += elapsed;
                lag_ms = (elapsed as f64 * 1e6 - core.now_ps() as f64).max(0.0) / 1e9;
                match core.debug.lockup {
                    Some(_) => format!("locked up, at {}", core.describe()),
                    None => format!("running, at {}", core.describe()),
                }
            }
            State::Stopped if !self.power.powered() => "off".into(),
            State::Stopped if self.power.locked_up() => {
                "locked up: the supply choice cut Vcore".into()
            }
            State::Stopped if self.power.reset_held() => "held in reset".into(),
            State::Stopped if self.power.cm7_disabled() => {
                "Cortex-M7 boot disabled (BCM7 = 0)".into()
            }
            State::Stopped => "stopped".into(),
            State::Faulted(reason) => format!("emulator stopped: {reason}"),
        };
        let busy = total.busy.as_secs_f64();
        let virtual_s = total.virtual_ps as f64 / PS_PER_S as f64;
        let wall_s = wall_us as f64 / 1e6;
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        EmulationStats {
            instructions: total.instructions,
            virtual_s,
            busy_s: busy,
            wall_s,
            instructions_per_s: ratio(total.instructions as f64, busy),
            speed_factor: ratio(virtual_s, busy),
            real_time_factor: ratio(virtual_s, wall_s),
            lag_ms,
            exceptions: total.exceptions,
            debug_halts: total.debug_halts,
            debug_halted_ms: total.debug_halted_ps as f64 / 1e9,
            longest_debug_halt_ms: total.longest_debug_halt_ps as f64 / 1e9,
            state,
            can_frames_received: can[0],
            can_frames_filtered: can[1],
            can_fifo_overruns: can[2],
            can_frames_dropped: can[3],
            can_frames_lost_to_bus_fault: can[4],
            can_error_passive_events: can[5],
            can_bus_off_events: can[6],
        }
    }

    /// Faults the firmware itself took (HardFault entries) on the current core.
    pub fn firmware_faults(&self) -> Vec<String> {
        match &self.state {
            State::Running(core) => core.faults.clone(),
            _ => Vec::new(),
        }
    }

    /// A register the debug port reads while the core is not running.
    fn idle_register(&self, address: u32) -> Result<u32, DebugAccessError> {
        if (0x4000_0000..0x6000_0000).contains(&address) {
            Ok(match &self.idle {
                Some(p) => p.peek(address),
                None => self.reset_peripherals().peek(address),
            })
        } else {
            Err(DebugAccessError::Unmapped(address))
        }
    }

    /// A debugger's write while the core is not running: the flash interface's registers
    /// answer (keys, option bytes: the way back from BCM7 = 0 through the Cortex-M4's port);
    /// nothing else is modelled then.
    pub(crate) fn idle_write(&mut self, address: u32, value: u32) -> Result<(), DebugAccessError> {
        if !(FLASH_REGISTERS..FLASH_REGISTERS + 0x1000).contains(&address) {
            return Err(DebugAccessError::Unmapped(address));
        }
        let mut p = self.idle.take().unwrap_or_else(|| self.reset_peripherals());
        p.write(address, 4, value, DEBUGGER_SITE);
        self.option_bytes = option_bytes_in(&p);
        self.idle = Some(p);
        Ok(())
    }
}

impl SimulatedTarget for EmulatedBoard {
    fn power_on(&mut self, now_us: u64) {
        self.latched = None;
        self.debug = DebugSide::new(self.debug.held_core);
        self.power_cut = false;
        let action = self.power.power_on();
        self.act(action, now_us);
    }

    fn power_off(&mut self) {
        self.stop_core();
        self.idle = None;
        self.power.power_off();
        self.flash_mut().cut_power_after(None);
    }

    fn reset(&mut self, now_us: u64) {
        // Nothing without Vcore or while NRST is held.
        let action = self.power.reset();
        self.act(action, now_us);
    }

    fn tick(&mut self, now_us: u64, io: &mut TargetIo<'_>) -> Pins {
        if std::mem::take(&mut self.reset_pending) {
            // The firmware's system reset, gated like any other.
            let action = self.power.reset();
            self.act(action, now_us);
        }
        let State::Running(core) = &mut self.state else {
            io.can_rx.clear();
            return Pins::default();
        };
        self.last_tick_us = now_us;
        let target_ps = now_us
            .saturating_sub(self.epoch_us)
            .saturating_mul(1_000_000);
        let fdcan_hz = core.soc().clocks.fdcan_hz;
        let at = core.now_ps();
        core.soc_mut().fdcan.bus_fault = self.can_bus_fault;
        for frame in io.can_rx.drain(..) {
            core.soc_mut().fdcan.queue_frame(frame, at, fdcan_hz);
        }
        self.run_core(target_ps, Instant::now() + self.tick_budget);
        let State::Running(core) = &mut self.state else {
            return Pins::default();
        };
        let soc = core.soc_mut();
        io.uart_tx.append(&mut soc.uart_out);
        io.can_tx.append(&mut soc.fdcan.tx_out);
        soc.pins()
    }

    fn power_cut_requested(&mut self) -> bool {
        std::mem::take(&mut self.power_cut)
    }

    fn debug_accessible(&self, core: CoreSelect) -> bool {
        self.power.debug_accessible(core)
    }

    fn debug_read_u32(&self, core: CoreSelect, address: u32) -> Result<u32, DebugAccessError> {
        let mut b = [0u8; 4];
        self.debug_read(core, address, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn debug_read(
        &self,
        core: CoreSelect,
        address: u32,
        buf: &mut [u8],
    ) -> Result<(), DebugAccessError> {
        if !self.debug_accessible(core) {
            return Err(DebugAccessError::NoResponse);
        }
        self.system_read(address, buf)
    }

    fn has_debug_port(&self) -> bool {
        true
    }

    fn debug_write_u32(
        &mut self,
        core: CoreSelect,
        address: u32,
        value: u32,
        now_us: u64,
    ) -> Result<(), DebugAccessError> {
        if !self.debug_accessible(core) {
            return Err(DebugAccessError::NoResponse);
        }
        let State::Running(cpu) = &mut self.state else {
            return self.idle_write(address, value);
        };
        match cpu.debug_write(address, 4, value) {
            Ok(DebugEffect::None) => Ok(()),
            Ok(DebugEffect::Stop(end)) => {
                self.after_debug_stop(end, now_us);
                Ok(())
            }
            Err(at) => Err(DebugAccessError::Unmapped(at)),
        }
    }

    fn swd_line_reset(&mut self) {
        self.debug.dp.line_reset();
    }

    fn dap_read(&mut self, port: DapPort, addr: u8, now_us: u64) -> Result<u32, DapAck> {
        self.dap_transfer(port, addr, None, now_us)
    }

    fn dap_write(
        &mut self,
        port: DapPort,
        addr: u8,
        value: u32,
        now_us: u64,
    ) -> Result<(), DapAck> {
        self.dap_transfer(port, addr, Some(value), now_us)
            .map(|_| ())
    }

    fn identity(&self) -> FirmwareIdentity {
        let image = self.loaded.and_then(|i| self.known.get(i));
        let s = self.stats();
        FirmwareIdentity {
            name: format!(
                "{} on the emulated STM32H755 (unicorn Cortex-M7)",
                image.map_or("board ELF", |k| k.name.as_str())
            ),
            version: format!(
                "{}; {:.1} M instructions/s, {:.1}x real time; {}",
                env!("CARGO_PKG_VERSION"),
                s.instructions_per_s / 1e6,
                s.speed_factor,
                s.state
            ),
            supply: self
                .latched
                .and_then(SupplyConfig::from_cr3)
                .map(|c| format!("latched {}", c.name())),
            sha256: image.and_then(|k| k.sha256.clone()),
            ..FirmwareIdentity::default()
        }
    }

    fn load_firmware(&mut self, image: &FirmwareImage) -> Result<(), String> {
        match image {
            FirmwareImage::Logic(_) => Err(
                "the emulated board runs the board ELF, not the host-built logic: download the \
                 ELF through the probe (firmware.kind = \"elf\")"
                    .into(),
            ),
            FirmwareImage::Blank => {
                *self.bank1_mut() = FlashModel::new(Bank::One.offsets());
                self.loaded = None;
                Ok(())
            }
        }
    }

    fn set_reset_held(&mut self, held: bool, now_us: u64) {
        // Without Vcore the level is only recorded: it applies at the next power-on.
        let action = self.power.set_reset_held(held);
        self.act(action, now_us);
    }

    fn set_boot0(&mut self, high: bool) {
        self.power.set_boot0(high);
    }

    fn mass_erase(&mut self) {
        *self.bank1_mut() = FlashModel::new(Bank::One.offsets());
        self.loaded = None;
        *self.flash_mut() = FlashModel::new(BANK2_OFFSETS);
    }

    fn load_program(&mut self, segments: &[rig_instruments::elf::Segment]) -> Result<(), String> {
        for s in segments {
            let end = u64::from(s.address) + s.data.len() as u64;
            if s.address < BANK1 || end > u64::from(BANK1 + BANK1_SIZE) {
                return Err(format!(
                    "segment at {:#010x} ({} bytes) is outside flash bank 1",
                    s.address,
                    s.data.len()
                ));
            }
        }
        // A download erases the sectors it programs; the image replaces bank 1.
        let mut program = vec![0xFF; BANK1_SIZE as usize];
        for s in segments {
            let off = (s.address - BANK1) as usize;
            program[off..off + s.data.len()].copy_from_slice(&s.data);
        }
        *self.bank1_mut() = FlashModel::with_contents(Bank::One.offsets(), program);
        self.loaded = self
            .known
            .iter()
            .position(|k| k.firmware.segments.as_slice() == segments);
        Ok(())
    }

    fn arm_storage_power_cut(&mut self, n: Option<usize>) {
        self.flash_mut().cut_power_after(n);
    }

    fn storage_bytes_written(&self) -> usize {
        self.flash().bytes_written + self.flash().erases
    }

    fn can_bus_fault(&self) -> rig_instruments::CanBusFault {
        self.can_bus_fault
    }

    fn set_can_bus_fault(&mut self, fault: rig_instruments::CanBusFault) -> Result<(), String> {
        self.can_bus_fault = fault;
        Ok(())
    }

    fn emulation(&self) -> Option<EmulationStats> {
        Some(self.stats())
    }
}

impl EmulatedBoard {
    /// Reads memory as the system bus shows it to a debugger (the flash whatever the core
    /// does; RAM and registers of the running core; reset values while it is stopped).
    fn system_read(&self, address: u32, buf: &mut [u8]) -> Result<(), DebugAccessError> {
        let len = buf.len() as u32;
        let end = address.saturating_add(len);
        let within = |base: u32, size: u32| address >= base && end <= base + size;
        // The flash answers whatever the core does.
        if within(BANK1, BANK1_SIZE) {
            let bytes = self
                .bank1()
                .read_at(address - BANK1, buf.len())
                .map_err(|_| DebugAccessError::Unmapped(address))?;
            buf.copy_from_slice(bytes);
            return Ok(());
        }
        if within(BANK2, BANK2_SIZE) {
            let bytes = self
                .flash()
                .read_at(address - BANK1, buf.len())
                .map_err(|_| DebugAccessError::Unmapped(address))?;
            buf.copy_from_slice(bytes);
            return Ok(());
        }
        match &self.state {
            State::Running(c) => c
                .debug_read(address, buf)
                .map_err(DebugAccessError::Unmapped),
            State::Faulted(reason) => Err(DebugAccessError::Emulator(reason.clone())),
            _ => {
                for (i, chunk) in buf.chunks_mut(4).enumerate() {
                    let word = self.idle_register((address & !3) + 4 * i as u32)?;
                    let bytes = word.to_le_bytes();
                    let skip = if i == 0 { (address & 3) as usize } else { 0 };
                    for (k, b) in chunk.iter_mut().enumerate() {
                        *b = bytes.get(skip + k).copied().unwrap_or(0);
                    }
                }
                Ok(())
            }
        }
    }

    /// A worn cell in flash at bus address `address`: `bit` stays 1 whatever is programmed.
    pub fn stick_flash_bit(&mut self, address: u32, bit: u8) -> Result<(), String> {
        let flash = if (BANK1..BANK1 + BANK1_SIZE).contains(&address) {
            self.bank1_mut()
        } else {
            self.flash_mut()
        };
        flash
            .stick_at_one(address - BANK1, bit)
            .map_err(|e| format!("{address:#010x}: {e:?}"))
    }

    /// The running core (tests and diagnostics).
    pub fn core(&self) -> Option<&Cpu> {
        match &self.state {
            State::Running(c) => Some(c),
            _ => None,
        }
    }
}
