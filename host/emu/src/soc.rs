//! The emulated STM32H755 as the Cortex-M7 sees it on its buses: every peripheral access goes
//! through [`Soc::read`]/[`Soc::write`], which route the timed devices of [`super::devices`]
//! and the NVIC/SCB of [`super::nvic`], and leave the rest to the register models of
//! [`super::peripherals`] (RCC, PWR with the supply latch, FLASH keys and option bytes, ...).

use stm32h755::supply::{SupplyConfig, PWR_CR3_ADDR};

use super::{
    devices::{
        gpio_bsrr, uart_byte_ps, Bank, Clocks, Dma, DmaStart, Fdcan, FlashBank, FlashTiming, Timer,
        DMAMUX1_C0CR, GPIO, GPIOB, IRQ_DMA1_STREAM0, IRQ_FDCAN1_IT0, IRQ_FDCAN1_IT1, IRQ_TIM2,
        TIM1, TIM2, USART3, USART3_TDR,
    },
    nvic::Nvic,
    peripherals::{Peripherals, Site, FLASH_BOOT7_CURR, RCC},
};
use rig_sim::{
    flash::FlashModel,
    pwr::{supply_outcome, SupplyOutcome},
    target::Pins,
};

/// Bank 2's operation times. Instant: the firmware's storage scenarios (power cuts by byte,
/// the soak) were measured that way; bank 1 takes the datasheet's times.
pub const BANK2_TIMING: FlashTiming = FlashTiming::INSTANT;

/// What a bus write asks of the core beyond changing registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effect {
    /// A DMA transfer that needs the bytes in memory.
    pub dma: Option<DmaStart>,
    /// The core clock changed: time per instruction is different from now on.
    pub clocks_changed: bool,
    /// AIRCR.SYSRESETREQ.
    pub reset_requested: bool,
    /// The first PWR_CR3 write chose a supply that cuts Vcore on this board.
    pub lockup: bool,
    /// The planned power cut hit a flash program/erase.
    pub power_cut: bool,
}

/// Peripherals and interrupt controller of the emulated chip.
pub struct Soc {
    pub periph: Peripherals,
    pub nvic: Nvic,
    pub tim1: Timer,
    pub tim2: Timer,
    pub dma: Dma,
    pub fdcan: Fdcan,
    /// Bank 1 (the program: what a debugger's flash algorithm programs) and bank 2 (the
    /// firmware's storage records).
    pub bank1: FlashBank,
    pub bank2: FlashBank,
    pub clocks: Clocks,
    /// Bytes USART3 has shifted out, for the bench's telemetry port.
    pub uart_out: Vec<u8>,
    /// The exception being handled (IPSR) and whether it is the only one (ICSR.RETTOBASE).
    pub active_exception: u32,
    pub rettobase: bool,
    wiring: SupplyConfig,
}

const USART3_CR1: u32 = USART3;
const USART3_CR3: u32 = USART3 + 0x08;
const USART3_BRR: u32 = USART3 + 0x0C;
const USART3_ISR: u32 = USART3 + 0x1C;

fn mask(size: usize) -> u32 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => u32::MAX,
    }
}

impl Soc {
    /// A chip after reset: `periph` carries what survives a reset (the supply latch, option
    /// bytes), `bank1` and `bank2` are the flash banks' non-volatile contents.
    pub fn new(periph: Peripherals, bank1: FlashModel, bank2: FlashModel) -> Self {
        let wiring = periph.wiring();
        let clocks = Clocks::from_rcc(&periph);
        let boot = (periph.peek(FLASH_BOOT7_CURR) & 0xFFFF) << 16;
        Self {
            nvic: Nvic::new(boot),
            tim1: Timer::new(TIM1, clocks.tim_apb2_hz),
            tim2: Timer::new(TIM2, clocks.tim_apb1_hz),
            dma: Dma::default(),
            fdcan: Fdcan::new(),
            bank1: FlashBank::new(Bank::One, bank1, FlashTiming::DATASHEET),
            bank2: FlashBank::new(Bank::Two, bank2, BANK2_TIMING),
            clocks,
            uart_out: Vec::new(),
            active_exception: 0,
            rettobase: false,
            periph,
            wiring,
        }
    }

    /// Advances the timed devices to `now_ps` and samples the interrupt lines.
    pub fn sync(&mut self, now_ps: u64) {
        self.tim2.sync(now_ps);
        self.tim1.sync(now_ps);
        self.dma.sync(now_ps, &mut self.uart_out);
        self.fdcan.deliver_due(now_ps, self.clocks.fdcan_hz);
        self.bank1.sync(now_ps);
        self.bank2.sync(now_ps);
        self.update_lines();
    }

    /// A read of a busy flash bank's SR: the core may sleep until this time.
    pub fn take_poll_wait(&mut self) -> Option<u64> {
        let a = self.bank1.take_poll_wait();
        let b = self.bank2.take_poll_wait();
        a.into_iter().chain(b).min()
    }

    /// A store into bank 1's address space (the core's own, or a debugger's).
    pub fn bank1_write(&mut self, addr: u32, size: usize, value: u32, now_ps: u64) -> Effect {
        let cr = self.periph.peek(Bank::One.cr());
        let unlocked = self.periph.bank1_unlocked();
        self.bank1
            .write_data(addr, size, value, cr, unlocked, now_ps);
        Effect {
            power_cut: self.bank1.power_cut,
            ..Effect::default()
        }
    }

    /// The next instant a device raises an interrupt flag or a frame arrives.
    pub fn next_event(&self, now_ps: u64) -> Option<u64> {
        [
            self.tim2.next_event(now_ps),
            self.dma.next_event(now_ps),
            self.fdcan.next_event(self.clocks.fdcan_hz),
            self.bank1.next_event(),
            self.bank2.next_event(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn update_lines(&mut self) {
        self.nvic.set_line(IRQ_TIM2, self.tim2.line());
        self.nvic.set_line(IRQ_DMA1_STREAM0, self.dma.line(0));
        let (l0, l1) = self.fdcan.lines();
        self.nvic.set_line(IRQ_FDCAN1_IT0, l0);
        self.nvic.set_line(IRQ_FDCAN1_IT1, l1);
    }

    /// The servo and LED pins.
    pub fn pins(&self) -> Pins {
        let moder = self.periph.peek(GPIOB);
        let odr = self.periph.peek(GPIOB + 0x14);
        Pins {
            pwm_pulse_us: self.tim1.ch1_pulse_us(true),
            red_led: (moder >> 28) & 3 == 1 && odr & (1 << 14) != 0,
        }
    }

    /// A bus read of `size` bytes at `addr` at virtual time `now_ps`.
    pub fn read(&mut self, addr: u32, size: usize, now_ps: u64, site: Site) -> u32 {
        let shift = (addr & 3) * 8;
        let word = addr & !3;
        let full = if Nvic::handles(word) {
            self.nvic.read(word, self.active_exception, self.rettobase)
        } else if self.tim2.handles(word) {
            self.tim2.read(word, now_ps)
        } else if self.tim1.handles(word) {
            self.tim1.read(word, now_ps)
        } else if Dma::handles(word) {
            self.dma.read(word, now_ps, &mut self.uart_out)
        } else if Fdcan::handles(word) {
            self.fdcan.deliver_due(now_ps, self.clocks.fdcan_hz);
            self.fdcan.read(word, now_ps, self.clocks.fdcan_hz)
        } else if self.bank2.handles(addr) {
            return self.bank2.read(addr, size);
        } else if word == Bank::Two.sr() {
            self.bank2.read_sr(now_ps)
        } else if word == Bank::One.sr() {
            self.bank1.read_sr(now_ps)
        } else if word == USART3_ISR {
            self.dma.sync(now_ps, &mut self.uart_out);
            let v = self.periph.read(word, 4, site);
            if self.dma.uart_transmitting() {
                v & !(1 << 6)
            } else {
                v
            }
        } else {
            return self.periph.read(addr, size, site);
        };
        self.update_lines();
        (full >> shift) & mask(size)
    }

    /// A register read for a debug probe: no side effects.
    pub fn peek(&self, addr: u32, now_ps: u64) -> u32 {
        let word = addr & !3;
        if Nvic::handles(word) {
            self.nvic.read(word, self.active_exception, self.rettobase)
        } else if self.tim2.handles(word) {
            self.tim2.clone().read(word, now_ps)
        } else if self.tim1.handles(word) {
            self.tim1.clone().read(word, now_ps)
        } else if Dma::handles(word) {
            self.dma.clone().read(word, now_ps, &mut Vec::new())
        } else if Fdcan::handles(word) {
            self.fdcan.read(word, now_ps, self.clocks.fdcan_hz)
        } else if self.bank2.handles(addr) {
            self.bank2.read(word, 4)
        } else if self.bank1.handles(addr) {
            self.bank1.read(word, 4)
        } else if word == Bank::Two.sr() {
            self.bank2.sr_at(now_ps)
        } else if word == Bank::One.sr() {
            self.bank1.sr_at(now_ps)
        } else {
            self.periph.peek(addr)
        }
    }

    /// A bus write of `size` bytes of `value` at `addr` at virtual time `now_ps`.
    pub fn write(&mut self, addr: u32, size: usize, value: u32, now_ps: u64, site: Site) -> Effect {
        let mut effect = Effect::default();
        let shift = (addr & 3) * 8;
        let word = addr & !3;
        let m = mask(size) << shift;
        let placed = (value << shift) & m;
        if Nvic::handles(word) {
            effect.reset_requested = self.nvic.write(addr, size, value).reset_requested;
        } else if self.tim2.handles(word) || self.tim1.handles(word) {
            let t = if self.tim2.handles(word) {
                &mut self.tim2
            } else {
                &mut self.tim1
            };
            let v = if word - t.base == 0x10 {
                placed | !m // SR is rc_w0: unwritten bytes keep their flags
            } else {
                (t.read(word, now_ps) & !m) | placed
            };
            t.write(word, v, now_ps);
        } else if Dma::handles(word) {
            let cur = self.dma.read(word, now_ps, &mut self.uart_out);
            let v = if matches!(word - super::devices::DMA1, 0x08 | 0x0C) {
                placed
            } else {
                (cur & !m) | placed
            };
            let periph = &self.periph;
            let dmat = periph.peek(USART3_CR3) & (1 << 7) != 0
                && periph.peek(USART3_CR1) & 0b1001 == 0b1001;
            effect.dma = self.dma.write(
                word,
                v,
                now_ps,
                |s| periph.peek(DMAMUX1_C0CR + 4 * s as u32),
                dmat,
                &mut self.uart_out,
            );
        } else if Fdcan::handles(word) {
            self.fdcan.deliver_due(now_ps, self.clocks.fdcan_hz);
            let w1c = word >= super::devices::FDCAN1
                && matches!(
                    word - super::devices::FDCAN1,
                    0x50 | 0xA8 | 0xB8 | 0xD0 | 0xD4
                );
            let v = if w1c || size == 4 {
                placed
            } else {
                (self.fdcan.read(word, now_ps, self.clocks.fdcan_hz) & !m) | placed
            };
            self.fdcan.write(word, v);
        } else if self.bank2.handles(addr) {
            let cr2 = self.periph.peek(Bank::Two.cr());
            let unlocked = self.periph.bank2_unlocked();
            self.bank2
                .write_data(addr, size, value, cr2, unlocked, now_ps);
            effect.power_cut = self.bank2.power_cut;
        } else if self.bank1.handles(addr) {
            effect = self.bank1_write(addr, size, value, now_ps);
        } else if word == Bank::One.cr() || word == Bank::Two.cr() {
            self.periph.write(addr, size, value, site);
            let cr = self.periph.peek(word);
            let (bank, unlocked) = if word == Bank::One.cr() {
                (&mut self.bank1, self.periph.bank1_unlocked())
            } else {
                (&mut self.bank2, self.periph.bank2_unlocked())
            };
            if bank.control(cr, unlocked, now_ps) {
                // START clears itself (the operation is under way).
                self.periph.poke(word, cr & !(1 << 7));
            }
            effect.power_cut = bank.power_cut;
        } else if word == Bank::Two.ccr() {
            self.bank2.clear(placed);
        } else if word == Bank::One.ccr() {
            self.bank1.clear(placed);
        } else if (GPIO..GPIO + 11 * 0x400).contains(&word) && word & 0x3FF == 0x18 {
            let odr = word - 0x18 + 0x14;
            let cur = self.periph.peek(odr);
            self.periph.poke(odr, gpio_bsrr(cur, placed));
        } else if word == USART3_TDR {
            if self.periph.peek(USART3_CR1) & 0b1001 == 0b1001 {
                self.uart_out.push(value as u8);
            }
        } else if word == PWR_CR3_ADDR {
            let before = self.periph.cr3_writes.len();
            self.periph.write(addr, size, value, site);
            if let Some(w) = self.periph.cr3_writes.get(before).filter(|w| w.latched) {
                if supply_outcome(self.wiring, w.supply()) == SupplyOutcome::LockUp {
                    effect.lockup = true;
                }
            }
        } else if (RCC..RCC + 0x400).contains(&word) {
            self.periph.write(addr, size, value, site);
            let clocks = Clocks::from_rcc(&self.periph);
            if clocks != self.clocks {
                effect.clocks_changed = clocks.cpu_hz != self.clocks.cpu_hz;
                self.tim2.set_clock(now_ps, clocks.tim_apb1_hz);
                self.tim1.set_clock(now_ps, clocks.tim_apb2_hz);
                self.clocks = clocks;
            }
        } else {
            self.periph.write(addr, size, value, site);
        }
        self.update_lines();
        effect
    }

    /// Starts a DMA transfer with the bytes the core read from memory.
    pub fn dma_begin(&mut self, start: DmaStart, bytes: Vec<u8>, now_ps: u64) {
        let byte_ps = uart_byte_ps(
            self.periph.peek(USART3_BRR) & 0xFFFF,
            self.clocks.usart234578_hz,
        );
        self.dma.begin(start, bytes, now_ps, byte_ps);
        self.update_lines();
    }
}
