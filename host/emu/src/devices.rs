//! Peripherals of the emulated board that run in (virtual) time, on top of the register models
//! of [`super::peripherals`]:
//!
//! - [`Clocks`]: the clock tree as the firmware configured it in RCC (HSE 8 MHz from the
//!   ST-LINK, HSI, PLL1/PLL2, the D1/D2 prescalers, TIMPRE), which sets the core's
//!   instruction rate and every timer's tick.
//! - [`Timer`]: TIM1/TIM2 counters running from virtual time at their prescaled rate, update
//!   and compare flags, DIER, and the interrupt line (embassy's time driver on TIM2).
//! - [`Dma`]: DMA1 streams and DMAMUX1 requests, enough for a memory-to-USART3 transfer: the
//!   bytes leave at the UART's baud rate (BRR and its kernel clock), NDTR counts down, TCIF/HTIF
//!   and the stream's interrupt line.
//! - [`Fdcan`]: FDCAN1 with its message RAM: classic frames into RX FIFO 0/1 through the
//!   standard/extended filter lists and the global filter, fill/get/put indices, acknowledge,
//!   IR/IE/ILS/ILE and both interrupt lines; transmission from the TX buffers on TXBAR (TXBTO,
//!   IR.TC), frames arriving no faster than the bus carries them.
//! - [`FlashBank2`]: bank-2 programming with H7 semantics: PG with 32-byte flash words filled
//!   through the flash address space, program-once words, sector/bank erase to 0xFF, SR2/CCR2,
//!   on the non-volatile [`FlashModel`] (which can cut the power after N bytes).
//! - GPIO BSRR into ODR, and the pins the bench reads: TIM1 CH1's pulse and PB14.

use std::collections::VecDeque;

use futures::executor::block_on;
use gauge_logic::frame::CanFrame;

use super::peripherals::{Peripherals, FLASH_CR2, FLASH_SR2, RCC};
use rig_sim::flash::FlashModel;

/// The NUCLEO's HSE: the ST-LINK's 8 MHz MCO.
pub const HSE_HZ: u64 = 8_000_000;
const HSI_HZ: u64 = 64_000_000;
const CSI_HZ: u64 = 4_000_000;
pub const PS_PER_S: u64 = 1_000_000_000_000;

/// Interrupt numbers (STM32H755 CM7 vector table).
pub const IRQ_DMA1_STREAM0: u32 = 11;
pub const IRQ_FDCAN1_IT0: u32 = 19;
pub const IRQ_FDCAN1_IT1: u32 = 21;
pub const IRQ_TIM2: u32 = 28;

pub const TIM1: u32 = 0x4001_0000;
pub const TIM2: u32 = 0x4000_0000;
pub const DMA1: u32 = 0x4002_0000;
pub const DMAMUX1: u32 = 0x4002_0800;
pub const USART3: u32 = 0x4000_4800;
pub const USART3_TDR: u32 = USART3 + 0x28;
/// DMAMUX1 request line of USART3_TX.
pub const DMAREQ_USART3_TX: u32 = 46;
pub const GPIO: u32 = 0x5802_0000;
pub const GPIOB: u32 = 0x5802_0400;
pub const FDCAN1: u32 = 0x4000_A000;
pub const FDCAN_RAM: u32 = 0x4000_AC00;
/// 10 KiB of message RAM shared by the FDCANs.
pub const FDCAN_RAM_WORDS: usize = 2560;
/// Flash bank 2 (0x0810_0000..0x0820_0000), offsets from 0x0800_0000 as the flash driver counts.
pub use stm32h755::flash::{BANK2, BANK2_OFFSETS, BANK2_SIZE};
use stm32h755::flash::{FLASH_BASE, FLASH_CCR2};

// ---- clocks ----------------------------------------------------------------------------------

/// Frequencies derived from the RCC registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clocks {
    /// The Cortex-M7 (sys_ck / D1CPRE).
    pub cpu_hz: u64,
    pub hclk_hz: u64,
    pub pclk1_hz: u64,
    pub pclk2_hz: u64,
    /// Timer kernel clocks on APB1 (TIM2) and APB2 (TIM1).
    pub tim_apb1_hz: u64,
    pub tim_apb2_hz: u64,
    pub fdcan_hz: u64,
    pub usart234578_hz: u64,
}

fn ahb_div(bits: u32) -> u64 {
    match bits & 0xF {
        b if b < 8 => 1,
        b => [2, 4, 8, 16, 64, 128, 256, 512][(b - 8) as usize],
    }
}

fn apb_div(bits: u32) -> u64 {
    match bits & 7 {
        b if b < 4 => 1,
        b => [2, 4, 8, 16][(b - 4) as usize],
    }
}

impl Clocks {
    /// After reset: everything on HSI (64 MHz).
    pub const RESET: Clocks = Clocks {
        cpu_hz: HSI_HZ,
        hclk_hz: HSI_HZ,
        pclk1_hz: HSI_HZ,
        pclk2_hz: HSI_HZ,
        tim_apb1_hz: HSI_HZ,
        tim_apb2_hz: HSI_HZ,
        fdcan_hz: HSE_HZ,
        usart234578_hz: HSI_HZ,
    };

    /// The clock tree the RCC registers describe.
    pub fn from_rcc(p: &Peripherals) -> Self {
        let r = |off: u32| p.peek(RCC + off);
        let cr = r(0x00);
        let hsi = HSI_HZ >> ((cr >> 3) & 3);
        let pllcksel = r(0x28);
        let src = match pllcksel & 3 {
            0 => hsi,
            1 => CSI_HZ,
            2 => HSE_HZ,
            _ => 0,
        };
        // (P, Q) outputs of PLL n (1 or 2).
        let pll = |divm: u32, divr: u32| -> (u64, u64) {
            let m = u64::from(divm);
            if m == 0 || src == 0 {
                return (0, 0);
            }
            let vco = src / m * (u64::from(divr & 0x1FF) + 1);
            let p = u64::from((divr >> 9) & 0x7F) + 1;
            let q = u64::from((divr >> 16) & 0x7F) + 1;
            (vco / p, vco / q)
        };
        let (pll1p, pll1q) = pll((pllcksel >> 4) & 0x3F, r(0x30));
        let (_, pll2q) = pll((pllcksel >> 12) & 0x3F, r(0x38));
        let cfgr = r(0x10);
        let sys = match cfgr & 7 {
            0 => hsi,
            1 => CSI_HZ,
            2 => HSE_HZ,
            _ => pll1p,
        };
        let d1cfgr = r(0x18);
        let cpu = sys / ahb_div(d1cfgr >> 8);
        let hclk = cpu / ahb_div(d1cfgr);
        let d2cfgr = r(0x1C);
        let (div1, div2) = (apb_div(d2cfgr >> 4), apb_div(d2cfgr >> 8));
        let (pclk1, pclk2) = (hclk / div1, hclk / div2);
        let timpre = cfgr & (1 << 15) != 0;
        let tim = |pclk: u64, div: u64| match (timpre, div) {
            (false, 1) => pclk,
            (false, _) => 2 * pclk,
            (true, d) if d <= 4 => hclk,
            (true, _) => 4 * pclk,
        };
        let fdcan = match (r(0x50) >> 28) & 3 {
            0 => HSE_HZ,
            1 => pll1q,
            _ => pll2q,
        };
        let usart = match r(0x54) & 7 {
            3 => hsi,
            4 => CSI_HZ,
            _ => pclk1,
        };
        Self {
            cpu_hz: cpu.max(1),
            hclk_hz: hclk,
            pclk1_hz: pclk1,
            pclk2_hz: pclk2,
            tim_apb1_hz: tim(pclk1, div1).max(1),
            tim_apb2_hz: tim(pclk2, div2).max(1),
            fdcan_hz: fdcan,
            usart234578_hz: usart.max(1),
        }
    }
}

// ---- timers ----------------------------------------------------------------------------------

const CR1_CEN: u32 = 1;
const CR1_UDIS: u32 = 1 << 1;
const CR1_URS: u32 = 1 << 2;
const SR_UIF: u32 = 1;
const EGR_UG: u32 = 1;

/// A TIMx counter running up from virtual time (edge-aligned, upcounting: what embassy uses).
#[derive(Clone, Debug)]
pub struct Timer {
    pub base: u32,
    /// Register words 0x00..0x80 (plain storage for the ones not modelled).
    regs: [u32; 32],
    /// Prescaler in effect (PSC is preloaded: it takes effect at an update event).
    psc_active: u32,
    clock_hz: u64,
    tick_ps: u64,
    /// The counter's total ticks (wraps included) at `anchor_ps`.
    anchor_total: u64,
    anchor_ps: u64,
    /// Flags are up to date for every tick up to this total.
    synced_total: u64,
}

const T_CR1: usize = 0;
const T_DIER: usize = 3;
const T_SR: usize = 4;
const T_EGR: usize = 5;
const T_CCMR1: usize = 6;
const T_CCER: usize = 8;
const T_CNT: usize = 9;
const T_PSC: usize = 10;
const T_ARR: usize = 11;
const T_CCR1: usize = 13;
const T_BDTR: usize = 17;

impl Timer {
    pub fn new(base: u32, clock_hz: u64) -> Self {
        let mut regs = [0; 32];
        regs[T_ARR] = 0xFFFF;
        let mut t = Self {
            base,
            regs,
            psc_active: 0,
            clock_hz: clock_hz.max(1),
            tick_ps: 1,
            anchor_total: 0,
            anchor_ps: 0,
            synced_total: 0,
        };
        t.tick_ps = t.compute_tick_ps();
        t
    }

    pub fn handles(&self, addr: u32) -> bool {
        (self.base..self.base + 0x80).contains(&addr)
    }

    fn compute_tick_ps(&self) -> u64 {
        ((u64::from(self.psc_active) + 1) * PS_PER_S / self.clock_hz).max(1)
    }

    fn running(&self) -> bool {
        self.regs[T_CR1] & CR1_CEN != 0
    }

    fn period(&self) -> u64 {
        u64::from(self.regs[T_ARR]) + 1
    }

    fn total(&self, now_ps: u64) -> u64 {
        if self.running() && now_ps > self.anchor_ps {
            self.anchor_total + (now_ps - self.anchor_ps) / self.tick_ps
        } else {
            self.anchor_total
        }
    }

    /// Restarts the count at `total` ticks as of `now_ps`.
    fn anchor(&mut self, now_ps: u64, total: u64) {
        self.anchor_ps = now_ps;
        self.anchor_total = total;
        self.synced_total = total;
    }

    /// The kernel clock changed (RCC reconfigured).
    pub fn set_clock(&mut self, now_ps: u64, clock_hz: u64) {
        if clock_hz.max(1) == self.clock_hz {
            return;
        }
        self.sync(now_ps);
        let total = self.total(now_ps);
        self.clock_hz = clock_hz.max(1);
        self.tick_ps = self.compute_tick_ps();
        self.anchor(now_ps, total);
    }

    /// Sets the flags of every update and compare match up to `now_ps`.
    pub fn sync(&mut self, now_ps: u64) {
        let new = self.total(now_ps);
        let old = self.synced_total;
        if new <= old {
            return;
        }
        let period = self.period();
        if new / period > old / period && self.regs[T_CR1] & CR1_UDIS == 0 {
            self.regs[T_SR] |= SR_UIF;
        }
        for ch in 0..4 {
            let ccr = u64::from(self.regs[T_CCR1 + ch]);
            if ccr >= period {
                continue;
            }
            let mut m = old - old % period + ccr;
            if m <= old {
                m += period;
            }
            if m <= new {
                self.regs[T_SR] |= 1 << (ch + 1);
            }
        }
        self.synced_total = new;
    }

    /// When the next flag whose interrupt is enabled gets set (after `now_ps`).
    pub fn next_event(&self, now_ps: u64) -> Option<u64> {
        if !self.running() {
            return None;
        }
        let dier = self.regs[T_DIER];
        let cur = self.total(now_ps);
        let period = self.period();
        let mut best: Option<u64> = None;
        let mut consider = |total: u64| {
            let t = self.anchor_ps + (total - self.anchor_total) * self.tick_ps;
            best = Some(best.map_or(t, |b| b.min(t)));
        };
        if dier & 1 != 0 && self.regs[T_CR1] & CR1_UDIS == 0 {
            consider((cur / period + 1) * period);
        }
        for ch in 0..4 {
            let ccr = u64::from(self.regs[T_CCR1 + ch]);
            if dier & (1 << (ch + 1)) == 0 || ccr >= period {
                continue;
            }
            let mut m = cur - cur % period + ccr;
            if m <= cur {
                m += period;
            }
            consider(m);
        }
        best
    }

    /// The interrupt request: a flag set whose interrupt is enabled.
    pub fn line(&self) -> bool {
        self.regs[T_SR] & self.regs[T_DIER] & 0x5F != 0
    }

    pub fn read(&mut self, addr: u32, now_ps: u64) -> u32 {
        self.sync(now_ps);
        let i = ((addr - self.base) / 4) as usize;
        match i {
            T_CNT => (self.total(now_ps) % self.period()) as u32,
            T_EGR => 0,
            _ => self.regs[i],
        }
    }

    pub fn write(&mut self, addr: u32, value: u32, now_ps: u64) {
        self.sync(now_ps);
        let i = ((addr - self.base) / 4) as usize;
        let cnt = self.total(now_ps) % self.period();
        match i {
            T_CR1 => {
                let was = self.running();
                self.regs[T_CR1] = value;
                if !was && self.running() {
                    self.psc_active = self.regs[T_PSC];
                    self.tick_ps = self.compute_tick_ps();
                }
                self.anchor(now_ps, cnt);
            }
            T_SR => self.regs[T_SR] &= value,
            T_EGR => {
                if value & EGR_UG != 0 {
                    self.psc_active = self.regs[T_PSC];
                    self.tick_ps = self.compute_tick_ps();
                    self.anchor(now_ps, 0);
                    if self.regs[T_CR1] & CR1_URS == 0 {
                        self.regs[T_SR] |= SR_UIF;
                    }
                }
                self.regs[T_SR] |= value & 0x1E; // CCxG
            }
            T_CNT => self.anchor(now_ps, u64::from(value)),
            T_ARR => {
                self.regs[T_ARR] = value;
                let cnt = cnt % self.period();
                self.anchor(now_ps, cnt);
            }
            _ => self.regs[i] = value,
        }
    }

    /// CH1's pulse width in microseconds while it drives a PWM output: counter enabled, CC1E,
    /// main output enabled (advanced timers: BDTR.MOE), OC1M = PWM mode 1 or 2.
    pub fn ch1_pulse_us(&self, advanced: bool) -> Option<u16> {
        let oc1m = ((self.regs[T_CCMR1] >> 4) & 7) | ((self.regs[T_CCMR1] >> 13) & 8);
        let on = self.running()
            && self.regs[T_CCER] & 1 != 0
            && (!advanced || self.regs[T_BDTR] & (1 << 15) != 0)
            && matches!(oc1m, 6 | 7);
        if !on {
            return None;
        }
        let ccr = u64::from(self.regs[T_CCR1]).min(self.period());
        let ticks = ccr * (u64::from(self.regs[T_PSC]) + 1);
        let us = (ticks * 1_000_000 + self.clock_hz / 2) / self.clock_hz;
        Some(u16::try_from(us).unwrap_or(u16::MAX))
    }

    /// The PWM period in microseconds (for the pin report).
    pub fn period_us(&self) -> u64 {
        self.period() * (u64::from(self.regs[T_PSC]) + 1) * 1_000_000 / self.clock_hz
    }
}

// ---- DMA1 + USART3 ---------------------------------------------------------------------------

/// Stream register words: CR, NDTR, PAR, M0AR, M1AR, FCR.
#[derive(Clone, Copy, Debug, Default)]
struct Stream {
    cr: u32,
    ndtr: u32,
    par: u32,
    m0ar: u32,
    m1ar: u32,
    fcr: u32,
}

/// A memory-to-USART3 transfer in flight.
#[derive(Clone, Debug)]
struct UartTransfer {
    stream: usize,
    bytes: Vec<u8>,
    start_ps: u64,
    byte_ps: u64,
    /// Bytes already sent to the host.
    emitted: usize,
    done: bool,
}

/// DMA1 (8 streams), DMAMUX1 and USART3's transmitter.
#[derive(Clone, Debug, Default)]
pub struct Dma {
    streams: [Stream; 8],
    /// LISR, HISR.
    isr: [u32; 2],
    transfer: Option<UartTransfer>,
    /// Line of USART3 still being shifted out after the DMA finished.
    pub uart_busy_until_ps: u64,
    /// Transfers the model does not carry out (stream, PAR, request), for diagnosis.
    pub unmodelled: Vec<(usize, u32, u32)>,
}

/// What the caller must do after a DMA register write: read `len` bytes at `address` from
/// memory and hand them to [`Dma::begin`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaStart {
    pub stream: usize,
    pub address: u32,
    pub len: usize,
}

/// Flag bit offset of a stream in LISR/HISR.
fn flag_shift(stream: usize) -> u32 {
    [0, 6, 16, 22][stream % 4]
}

const DMA_TCIF: u32 = 1 << 5;
const DMA_HTIF: u32 = 1 << 4;
const DMA_TEIF: u32 = 1 << 3;
const DMA_DMEIF: u32 = 1 << 2;
const DMA_FEIF: u32 = 1;

impl Dma {
    pub fn handles(addr: u32) -> bool {
        (DMA1..DMA1 + 0xD0).contains(&addr)
    }

    fn flags(&self, stream: usize) -> u32 {
        (self.isr[stream / 4] >> flag_shift(stream)) & 0x3D
    }

    fn set_flags(&mut self, stream: usize, flags: u32) {
        self.isr[stream / 4] |= flags << flag_shift(stream);
    }

    /// The stream's interrupt line.
    pub fn line(&self, stream: usize) -> bool {
        let s = &self.streams[stream];
        let f = self.flags(stream);
        (f & DMA_TCIF != 0 && s.cr & (1 << 4) != 0)
            || (f & DMA_HTIF != 0 && s.cr & (1 << 3) != 0)
            || (f & DMA_TEIF != 0 && s.cr & (1 << 2) != 0)
            || (f & DMA_DMEIF != 0 && s.cr & (1 << 1) != 0)
            || (f & DMA_FEIF != 0 && s.fcr & (1 << 7) != 0)
    }

    fn taken(t: &UartTransfer, now_ps: u64) -> usize {
        if now_ps < t.start_ps {
            return 0;
        }
        (((now_ps - t.start_ps) / t.byte_ps) as usize + 1).min(t.bytes.len())
    }

    /// Advances the transfer to `now_ps`: bytes fully shifted out go to `out`; the last byte
    /// taken ends the transfer (EN cleared, TCIF).
    pub fn sync(&mut self, now_ps: u64, out: &mut Vec<u8>) {
        let Some(t) = self.transfer.as_mut() else {
            return;
        };
        // Byte k is on the line from start + k*byte_ps and done one byte time later.
        let sent = if now_ps < t.start_ps {
            0
        } else {
            (((now_ps - t.start_ps) / t.byte_ps) as usize).min(t.bytes.len())
        };
        if sent > t.emitted {
            out.extend_from_slice(&t.bytes[t.emitted..sent]);
            t.emitted = sent;
        }
        let n = t.bytes.len();
        let taken = Self::taken(t, now_ps);
        let stream = t.stream;
        let was_done = t.done;
        if !was_done && taken == n {
            t.done = true;
        }
        let finished = t.done && t.emitted == n;
        if !was_done {
            self.streams[stream].ndtr = (n - taken) as u32;
            if taken * 2 >= n {
                self.set_flags(stream, DMA_HTIF);
            }
            if taken == n {
                self.streams[stream].cr &= !1;
                self.set_flags(stream, DMA_TCIF);
            }
        }
        if finished {
            self.transfer = None;
        }
    }

    /// The transfer's completion, if its interrupt is enabled and it is still to come.
    pub fn next_event(&self, now_ps: u64) -> Option<u64> {
        let t = self.transfer.as_ref()?;
        if t.done {
            return None;
        }
        let end = t.start_ps + (t.bytes.len() as u64 - 1) * t.byte_ps;
        let half = t.start_ps + ((t.bytes.len() as u64).div_ceil(2) - 1) * t.byte_ps;
        let cr = self.streams[t.stream].cr;
        [(cr & (1 << 4) != 0, end), (cr & (1 << 3) != 0, half)]
            .into_iter()
            .filter(|(on, at)| *on && *at > now_ps)
            .map(|(_, at)| at)
            .min()
    }

    /// Whether USART3 is still shifting bytes out (ISR.TC = 0).
    pub fn uart_transmitting(&self) -> bool {
        self.transfer.is_some()
    }

    pub fn read(&mut self, addr: u32, now_ps: u64, out: &mut Vec<u8>) -> u32 {
        self.sync(now_ps, out);
        match addr - DMA1 {
            0x00 => self.isr[0],
            0x04 => self.isr[1],
            0x08 | 0x0C => 0,
            off => {
                let (s, reg) = (((off - 0x10) / 0x18) as usize, (off - 0x10) % 0x18);
                let st = &self.streams[s.min(7)];
                match reg {
                    0x00 => st.cr,
                    0x04 => st.ndtr,
                    0x08 => st.par,
                    0x0C => st.m0ar,
                    0x10 => st.m1ar,
                    _ => st.fcr | 0x20, // FS = empty
                }
            }
        }
    }

    /// A register write. `mux` is the DMAMUX1 channel register of each stream, `uart` the
    /// USART3 CR1/CR3 words: together they say whether a stream feeds USART3's TDR.
    pub fn write(
        &mut self,
        addr: u32,
        value: u32,
        now_ps: u64,
        mux: impl Fn(usize) -> u32,
        uart_dmat: bool,
        out: &mut Vec<u8>,
    ) -> Option<DmaStart> {
        self.sync(now_ps, out);
        match addr - DMA1 {
            0x00 | 0x04 => None,
            0x08 => {
                self.isr[0] &= !value;
                None
            }
            0x0C => {
                self.isr[1] &= !value;
                None
            }
            off => {
                let (s, reg) = (((off - 0x10) / 0x18) as usize, (off - 0x10) % 0x18);
                if s > 7 {
                    return None;
                }
                match reg {
                    0x00 => {
                        let was = self.streams[s].cr & 1 != 0;
                        self.streams[s].cr = value;
                        let en = value & 1 != 0;
                        if was && !en {
                            // Disabling a running stream stops it; TCIF tells it stopped.
                            if let Some(t) = self.transfer.as_mut().filter(|t| t.stream == s) {
                                if !t.done {
                                    let taken = Self::taken(t, now_ps);
                                    t.bytes.truncate(taken);
                                    t.done = true;
                                    self.set_flags(s, DMA_TCIF);
                                }
                            }
                        }
                        if en && !was {
                            let st = self.streams[s];
                            let dir = (st.cr >> 6) & 3;
                            let request = mux(s) & 0x7F;
                            if dir == 1
                                && st.par == USART3_TDR
                                && request == DMAREQ_USART3_TX
                                && uart_dmat
                                && st.ndtr > 0
                                && self.transfer.is_none()
                            {
                                return Some(DmaStart {
                                    stream: s,
                                    address: st.m0ar,
                                    len: st.ndtr as usize,
                                });
                            }
                            if self.unmodelled.len() < 16 {
                                self.unmodelled.push((s, st.par, request));
                            }
                        }
                        None
                    }
                    0x04 => {
                        self.streams[s].ndtr = value & 0xFFFF;
                        None
                    }
                    0x08 => {
                        self.streams[s].par = value;
                        None
                    }
                    0x0C => {
                        self.streams[s].m0ar = value;
                        None
                    }
                    0x10 => {
                        self.streams[s].m1ar = value;
                        None
                    }
                    _ => {
                        self.streams[s].fcr = value;
                        None
                    }
                }
            }
        }
    }

    /// Starts the transfer `start` asked for with the bytes read from memory; one byte takes
    /// `byte_ps` on the line.
    pub fn begin(&mut self, start: DmaStart, bytes: Vec<u8>, now_ps: u64, byte_ps: u64) {
        self.transfer = Some(UartTransfer {
            stream: start.stream,
            bytes,
            start_ps: now_ps,
            byte_ps: byte_ps.max(1),
            emitted: 0,
            done: false,
        });
    }
}

/// Time on the line of one 8N1 byte at the baud rate BRR sets (oversampling by 16).
pub fn uart_byte_ps(brr: u32, kernel_hz: u64) -> u64 {
    let brr = u64::from(brr.max(16));
    10 * brr * PS_PER_S / kernel_hz.max(1)
}

// ---- FDCAN1 ----------------------------------------------------------------------------------

const F_CCCR: usize = 0x18 / 4;
const F_NBTP: usize = 0x1C / 4;
const F_TSCC: usize = 0x20 / 4;
const F_TSCV: usize = 0x24 / 4;
const F_PSR: usize = 0x44 / 4;
const F_IR: usize = 0x50 / 4;
const F_IE: usize = 0x54 / 4;
const F_ILS: usize = 0x58 / 4;
const F_ILE: usize = 0x5C / 4;
const F_GFC: usize = 0x80 / 4;
const F_SIDFC: usize = 0x84 / 4;
const F_XIDFC: usize = 0x88 / 4;
const F_XIDAM: usize = 0x90 / 4;
const F_RXF0C: usize = 0xA0 / 4;
const F_RXF0S: usize = 0xA4 / 4;
const F_RXF0A: usize = 0xA8 / 4;
const F_RXF1C: usize = 0xB0 / 4;
const F_RXF1S: usize = 0xB4 / 4;
const F_RXF1A: usize = 0xB8 / 4;
const F_RXESC: usize = 0xBC / 4;
const F_TXBC: usize = 0xC0 / 4;
const F_TXFQS: usize = 0xC4 / 4;
const F_TXESC: usize = 0xC8 / 4;
const F_TXBRP: usize = 0xCC / 4;
const F_TXBAR: usize = 0xD0 / 4;
const F_TXBCR: usize = 0xD4 / 4;
const F_TXBTO: usize = 0xD8 / 4;
const F_TXBCF: usize = 0xDC / 4;
const F_TXBTIE: usize = 0xE0 / 4;

const CCCR_INIT: u32 = 1;
const CCCR_CCE: u32 = 1 << 1;
const CCCR_CSA: u32 = 1 << 3;
const CCCR_CSR: u32 = 1 << 4;
const CCCR_MON: u32 = 1 << 5;
const IR_TC: u32 = 1 << 9;

/// Bytes in a message RAM element's data field for a DS code (RXESC/TXESC).
fn data_field_bytes(code: u32) -> u32 {
    [8, 12, 16, 20, 24, 32, 48, 64][(code & 7) as usize]
}

#[derive(Clone, Copy, Debug, Default)]
struct RxFifo {
    get: u32,
    fill: u32,
    lost: bool,
}

/// Where a received frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Accept {
    Fifo { fifo: usize, filter: Option<u32> },
    Reject,
}

/// FDCAN1 and the message RAM.
#[derive(Clone, Debug)]
pub struct Fdcan {
    regs: [u32; 0x100 / 4],
    pub ram: Vec<u32>,
    fifo: [RxFifo; 2],
    /// Frames on the bus for this node, with their arrival times.
    bus: VecDeque<(u64, CanFrame)>,
    last_arrival_ps: u64,
    /// Frames this node transmitted, for the bench.
    pub tx_out: Vec<CanFrame>,
    pub received: u64,
    pub dropped: u64,
}

/// Bits of a classic data frame with `len` data bytes, before stuffing (SOF .. EOF + IFS).
fn frame_bits(f: &CanFrame) -> u64 {
    let header = if f.extended { 67 } else { 47 };
    header + 8 * u64::from(f.len.min(8))
}

impl Fdcan {
    pub fn new() -> Self {
        let mut regs = [0; 0x100 / 4];
        regs[0] = super::peripherals::FDCAN_CREL_VALUE;
        regs[1] = super::peripherals::FDCAN_ENDN_VALUE;
        regs[F_CCCR] = CCCR_INIT;
        regs[F_NBTP] = 0x0600_0A03;
        regs[F_PSR] = 0x707;
        regs[F_XIDAM] = 0x1FFF_FFFF;
        Self {
            regs,
            ram: vec![0; FDCAN_RAM_WORDS],
            fifo: [RxFifo::default(); 2],
            bus: VecDeque::new(),
            last_arrival_ps: 0,
            tx_out: Vec::new(),
            received: 0,
            dropped: 0,
        }
    }

    pub fn handles(addr: u32) -> bool {
        (FDCAN1..FDCAN1 + 0x100).contains(&addr)
            || (FDCAN_RAM..FDCAN_RAM + 4 * FDCAN_RAM_WORDS as u32).contains(&addr)
    }

    /// On the bus: CCCR.INIT and CSR clear, not in bus-monitoring mode for transmit.
    fn operating(&self) -> bool {
        self.regs[F_CCCR] & (CCCR_INIT | CCCR_CSR) == 0
    }

    /// One nominal bit time, from NBTP and the kernel clock.
    fn bit_ps(&self, kernel_hz: u64) -> u64 {
        let nbtp = self.regs[F_NBTP];
        let brp = u64::from((nbtp >> 16) & 0x1FF) + 1;
        let tq = 1 + (u64::from((nbtp >> 8) & 0xFF) + 1) + (u64::from(nbtp & 0x7F) + 1);
        (brp * tq * PS_PER_S / kernel_hz.max(1)).max(1)
    }

    /// A frame put on the bus by another node at `now_ps`: it arrives after the frames before
    /// it, one frame time apart at the configured bit rate.
    pub fn queue_frame(&mut self, frame: CanFrame, now_ps: u64, kernel_hz: u64) {
        if self.bus.len() >= 256 {
            self.dropped += 1;
            return;
        }
        let duration = frame_bits(&frame) * self.bit_ps(kernel_hz);
        let arrival = now_ps.max(self.last_arrival_ps) + duration;
        self.last_arrival_ps = arrival;
        self.bus.push_back((arrival, frame));
    }

    pub fn next_event(&self) -> Option<u64> {
        self.bus.front().map(|(t, _)| *t)
    }

    fn word(&self, byte_offset: u32) -> u32 {
        self.ram
            .get((byte_offset / 4) as usize)
            .copied()
            .unwrap_or(0)
    }

    fn set_word(&mut self, byte_offset: u32, v: u32) {
        if let Some(w) = self.ram.get_mut((byte_offset / 4) as usize) {
            *w = v;
        }
    }

    fn accept(&self, f: &CanFrame) -> Accept {
        let gfc = self.regs[F_GFC];
        let to = |code: u32, filter: Option<u32>| match code {
            1 | 5 => Accept::Fifo { fifo: 0, filter },
            2 | 6 => Accept::Fifo { fifo: 1, filter },
            _ => Accept::Reject,
        };
        if !f.extended {
            let sidfc = self.regs[F_SIDFC];
            let (start, count) = (sidfc & 0xFFFC, (sidfc >> 16) & 0xFF);
            for i in 0..count {
                let e = self.word(start + 4 * i);
                let (sft, sfec) = (e >> 30, (e >> 27) & 7);
                let (id1, id2) = ((e >> 16) & 0x7FF, e & 0x7FF);
                let id = f.id;
                let hit = match sft {
                    0 => id1 <= id && id <= id2,
                    1 => id == id1 || id == id2,
                    2 => id & id2 == id1 & id2,
                    _ => false,
                };
                if sfec != 0 && hit {
                    if sfec == 4 {
                        continue; // priority only: keep looking
                    }
                    return to(sfec, Some(i));
                }
            }
            match (gfc >> 4) & 3 {
                0 => Accept::Fifo {
                    fifo: 0,
                    filter: None,
                },
                1 => Accept::Fifo {
                    fifo: 1,
                    filter: None,
                },
                _ => Accept::Reject,
            }
        } else {
            let xidfc = self.regs[F_XIDFC];
            let (start, count) = (xidfc & 0xFFFC, (xidfc >> 16) & 0xFF);
            let masked = f.id & self.regs[F_XIDAM];
            for i in 0..count {
                let (f0, f1) = (self.word(start + 8 * i), self.word(start + 8 * i + 4));
                let (efec, id1, eft, id2) =
                    (f0 >> 29, f0 & 0x1FFF_FFFF, f1 >> 30, f1 & 0x1FFF_FFFF);
                let hit = match eft {
                    0 => id1 <= masked && masked <= id2,
                    1 => f.id == id1 || f.id == id2,
                    2 => f.id & id2 == id1 & id2,
                    _ => id1 <= f.id && f.id <= id2,
                };
                if efec != 0 && hit {
                    if efec == 4 {
                        continue;
                    }
                    return to(efec, Some(i));
                }
            }
            match (gfc >> 2) & 3 {
                0 => Accept::Fifo {
                    fifo: 0,
                    filter: None,
                },
                1 => Accept::Fifo {
                    fifo: 1,
                    filter: None,
                },
                _ => Accept::Reject,
            }
        }
    }

    fn fifo_config(&self, fifo: usize) -> (u32, u32, u32) {
        let c = self.regs[if fifo == 0 { F_RXF0C } else { F_RXF1C }];
        let ds = (self.regs[F_RXESC] >> (4 * fifo as u32)) & 7;
        (c & 0xFFFC, (c >> 16) & 0x7F, 8 + data_field_bytes(ds))
    }

    /// Stores the frames that have arrived by `now_ps` in the RX FIFOs.
    pub fn deliver_due(&mut self, now_ps: u64, kernel_hz: u64) {
        while self.bus.front().is_some_and(|(t, _)| *t <= now_ps) {
            let Some((at, frame)) = self.bus.pop_front() else {
                break;
            };
            if !self.operating() {
                self.dropped += 1;
                continue;
            }
            let Accept::Fifo { fifo, filter } = self.accept(&frame) else {
                continue;
            };
            let (start, size, element) = self.fifo_config(fifo);
            let q = &mut self.fifo[fifo];
            if size == 0 {
                self.dropped += 1;
                continue;
            }
            if q.fill >= size {
                // FIFO full (blocking mode): the frame is lost.
                q.lost = true;
                self.regs[F_IR] |= 1 << (4 * fifo + 3);
                self.dropped += 1;
                continue;
            }
            let put = (q.get + q.fill) % size;
            q.fill += 1;
            let addr = start + put * element;
            let id = if frame.extended {
                frame.id | (1 << 30)
            } else {
                frame.id << 18
            };
            let ts = ((at / self.bit_ps(kernel_hz)) & 0xFFFF) as u32;
            let fidx = match filter {
                Some(i) => (i & 0x7F) << 24,
                None => 1 << 31,
            };
            self.set_word(addr, id);
            self.set_word(addr + 4, ts | (u32::from(frame.len.min(8)) << 16) | fidx);
            let d = frame.data;
            self.set_word(addr + 8, u32::from_le_bytes([d[0], d[1], d[2], d[3]]));
            self.set_word(addr + 12, u32::from_le_bytes([d[4], d[5], d[6], d[7]]));
            self.regs[F_IR] |= 1 << (4 * fifo); // RFnN
            if self.fifo[fifo].fill >= size {
                self.regs[F_IR] |= 1 << (4 * fifo + 2); // RFnF
            }
            self.received += 1;
        }
    }

    /// Interrupt lines 0 and 1 (IR & IE routed by ILS, gated by ILE).
    pub fn lines(&self) -> (bool, bool) {
        let active = self.regs[F_IR] & self.regs[F_IE];
        let ils = self.regs[F_ILS];
        let ile = self.regs[F_ILE];
        (
            active & !ils != 0 && ile & 1 != 0,
            active & ils != 0 && ile & 2 != 0,
        )
    }

    fn txfqs(&self) -> u32 {
        let txbc = self.regs[F_TXBC];
        let ndtb = (txbc >> 16) & 0x3F;
        let tfqs = (txbc >> 24) & 0x3F;
        let pending = self.regs[F_TXBRP];
        let free = (ndtb..(ndtb + tfqs).min(32)).find(|i| pending & (1 << i) == 0);
        let free_count = (ndtb..(ndtb + tfqs).min(32))
            .filter(|i| pending & (1 << i) == 0)
            .count() as u32;
        match free {
            Some(i) => (i << 16) | (free_count & 0x3F),
            None => 1 << 21,
        }
    }

    fn transmit(&mut self, requested: u32) {
        let txbc = self.regs[F_TXBC];
        let start = txbc & 0xFFFC;
        let element = 8 + data_field_bytes(self.regs[F_TXESC]);
        for i in 0..32 {
            if requested & (1 << i) == 0 {
                continue;
            }
            let addr = start + i * element;
            let (t0, t1) = (self.word(addr), self.word(addr + 4));
            let extended = t0 & (1 << 30) != 0;
            let remote = t0 & (1 << 29) != 0;
            let len = ((t1 >> 16) & 0xF).min(8) as usize;
            let mut data = [0u8; 8];
            data[..4].copy_from_slice(&self.word(addr + 8).to_le_bytes());
            data[4..].copy_from_slice(&self.word(addr + 12).to_le_bytes());
            let frame = if extended {
                CanFrame::extended(t0 & 0x1FFF_FFFF, &data[..len])
            } else {
                u16::try_from((t0 >> 18) & 0x7FF)
                    .ok()
                    .and_then(|id| CanFrame::standard(id, &data[..len]))
            };
            if let (Some(f), false) = (frame, remote) {
                self.tx_out.push(f);
            }
            self.regs[F_TXBRP] &= !(1 << i);
            self.regs[F_TXBTO] |= 1 << i;
            if self.regs[F_TXBTIE] & (1 << i) != 0 {
                self.regs[F_IR] |= IR_TC;
            }
        }
    }

    pub fn read(&self, addr: u32, now_ps: u64, kernel_hz: u64) -> u32 {
        if addr >= FDCAN_RAM {
            return self.word(addr - FDCAN_RAM);
        }
        let i = ((addr - FDCAN1) / 4) as usize;
        match i {
            F_CCCR => {
                let v = self.regs[F_CCCR] & !CCCR_CSA;
                if v & CCCR_CSR != 0 {
                    v | CCCR_CSA
                } else {
                    v
                }
            }
            F_TSCV => {
                let tcp = u64::from((self.regs[F_TSCC] >> 16) & 0xF) + 1;
                if self.regs[F_TSCC] & 3 == 1 {
                    ((now_ps / self.bit_ps(kernel_hz) / tcp) & 0xFFFF) as u32
                } else {
                    0
                }
            }
            F_RXF0S | F_RXF1S => {
                let fifo = usize::from(i == F_RXF1S);
                let (_, size, _) = self.fifo_config(fifo);
                let q = self.fifo[fifo];
                let put = if size == 0 {
                    0
                } else {
                    (q.get + q.fill) % size
                };
                let mut v = q.fill | (q.get << 8) | (put << 16);
                if size > 0 && q.fill >= size {
                    v |= 1 << 24;
                }
                if q.lost {
                    v |= 1 << 25;
                }
                v
            }
            F_TXFQS => self.txfqs(),
            F_TXBAR => 0,
            _ => self.regs.get(i).copied().unwrap_or(0),
        }
    }

    pub fn write(&mut self, addr: u32, value: u32) {
        if addr >= FDCAN_RAM {
            self.set_word(addr - FDCAN_RAM, value);
            return;
        }
        let i = ((addr - FDCAN1) / 4) as usize;
        match i {
            0 | 1 => {}
            F_CCCR => {
                let mut v = value;
                if v & CCCR_INIT == 0 {
                    v &= !CCCR_CCE;
                }
                self.regs[F_CCCR] = v;
            }
            F_IR => self.regs[F_IR] &= !value,
            F_RXF0A | F_RXF1A => {
                let fifo = usize::from(i == F_RXF1A);
                let (_, size, _) = self.fifo_config(fifo);
                if size > 0 {
                    let q = &mut self.fifo[fifo];
                    let ack = value & 0x3F;
                    let n = (ack + size - q.get) % size + 1;
                    if n <= q.fill {
                        q.fill -= n;
                        q.get = (ack + 1) % size;
                        q.lost = false;
                    }
                }
            }
            F_RXF0S | F_RXF1S | F_TXFQS | F_TXBRP | F_TXBTO | F_TXBCF | F_PSR => {}
            F_TXBAR => {
                if self.operating() && self.regs[F_CCCR] & CCCR_MON == 0 {
                    self.regs[F_TXBRP] |= value;
                    self.regs[F_TXBTO] &= !value;
                    self.transmit(value);
                }
            }
            F_TXBCR => {
                let cancel = value & self.regs[F_TXBRP];
                self.regs[F_TXBRP] &= !cancel;
                self.regs[F_TXBCF] |= value;
            }
            _ => {
                if let Some(r) = self.regs.get_mut(i) {
                    *r = value;
                }
            }
        }
    }
}

impl Default for Fdcan {
    fn default() -> Self {
        Self::new()
    }
}

// ---- flash bank 2 ----------------------------------------------------------------------------

const CR_PG: u32 = 1 << 1;
const CR_SER: u32 = 1 << 2;
const CR_BER: u32 = 1 << 3;
const CR_START: u32 = 1 << 7;
const SR_EOP: u32 = 1 << 16;
const SR_WRPERR: u32 = 1 << 17;
const SR_PGSERR: u32 = 1 << 18;
const SR_INCERR: u32 = 1 << 21;
const SR_OPERR: u32 = 1 << 22;
const FLASH_WORD: u32 = 32;
const SECTOR: u32 = 0x2_0000;

/// Bank 2 of the flash: what the firmware's storage programs and erases.
#[derive(Clone, Debug)]
pub struct FlashBank2 {
    /// The bank's contents (non-volatile: the board keeps it across power cycles).
    pub flash: FlashModel,
    sr: u32,
    /// The 32-byte write buffer being filled: (flash word address, bytes, bytes written).
    buffer: Option<(u32, [u8; 32], u32)>,
    /// The planned power cut hit during a program or erase.
    pub power_cut: bool,
}

impl FlashBank2 {
    pub fn new(flash: FlashModel) -> Self {
        Self {
            flash,
            sr: 0,
            buffer: None,
            power_cut: false,
        }
    }

    pub fn handles(addr: u32) -> bool {
        (BANK2..BANK2 + BANK2_SIZE).contains(&addr)
    }

    /// A byte of bank 2 as read through the bus.
    pub fn read(&self, addr: u32, size: usize) -> u32 {
        let off = addr - FLASH_BASE;
        match self.flash.read_at(off, size) {
            Ok(b) => b
                .iter()
                .rev()
                .fold(0u32, |acc, byte| (acc << 8) | u32::from(*byte)),
            Err(_) => u32::MAX,
        }
    }

    pub fn sr(&self) -> u32 {
        self.sr
    }

    /// A write into bank 2's address space: a program step when PG is set.
    pub fn write_data(&mut self, addr: u32, size: usize, value: u32, cr2: u32, unlocked: bool) {
        if cr2 & CR_PG == 0 || !unlocked {
            self.sr |= SR_PGSERR;
            return;
        }
        let word_addr = addr & !(FLASH_WORD - 1);
        let (wa, mut bytes, mut filled) = match self.buffer.take() {
            Some((wa, b, f)) if wa == word_addr => (wa, b, f),
            Some(_) => {
                // A write to another flash word before this one was complete.
                self.sr |= SR_INCERR;
                return;
            }
            None => (word_addr, [0xFF; 32], 0),
        };
        for k in 0..size.min(4) {
            let at = (addr - wa) as usize + k;
            if at < 32 {
                bytes[at] = (value >> (8 * k)) as u8;
                filled |= 1 << at;
            }
        }
        if filled != u32::MAX {
            self.buffer = Some((wa, bytes, filled));
            return;
        }
        match block_on(embedded_storage_async::nor_flash::NorFlash::write(
            &mut self.flash,
            wa - FLASH_BASE,
            &bytes,
        )) {
            Ok(()) => self.sr |= SR_EOP,
            Err(rig_sim::flash::FlashError::PowerLost) => self.power_cut = true,
            // A word programmed twice: its ECC no longer matches (an error on the chip, too).
            Err(_) => self.sr |= SR_OPERR,
        }
    }

    /// After a write to FLASH_CR2 (already stored): START with SER or BER erases.
    pub fn control(&mut self, cr2: u32, unlocked: bool) -> bool {
        if cr2 & CR_START == 0 {
            return false;
        }
        if !unlocked {
            self.sr |= SR_WRPERR;
            return true;
        }
        let (from, to) = if cr2 & CR_BER != 0 {
            (BANK2_OFFSETS.start, BANK2_OFFSETS.end)
        } else if cr2 & CR_SER != 0 {
            let sector = (cr2 >> 8) & 7;
            let from = BANK2_OFFSETS.start + sector * SECTOR;
            (from, from + SECTOR)
        } else {
            self.sr |= SR_PGSERR;
            return true;
        };
        match block_on(embedded_storage_async::nor_flash::NorFlash::erase(
            &mut self.flash,
            from,
            to,
        )) {
            Ok(()) => self.sr |= SR_EOP,
            Err(rig_sim::flash::FlashError::PowerLost) => self.power_cut = true,
            Err(_) => self.sr |= SR_PGSERR,
        }
        true
    }

    /// FLASH_CCR2: clears the flags written 1.
    pub fn clear(&mut self, value: u32) {
        self.sr &= !(value & 0x1FFF_0000);
    }
}

/// GPIOx_BSRR: set bits 0..15, reset bits 16..31 (set wins), applied to ODR.
pub fn gpio_bsrr(odr: u32, value: u32) -> u32 {
    let set = value & 0xFFFF;
    let reset = (value >> 16) & !set;
    ((odr & !reset) | set) & 0xFFFF
}

/// Registers of the emulated board's timed devices, for [`super::soc`].
pub const FLASH_CR2_ADDR: u32 = FLASH_CR2;
pub const FLASH_SR2_ADDR: u32 = FLASH_SR2;
pub const FLASH_CCR2_ADDR: u32 = FLASH_CCR2;
pub const DMAMUX1_C0CR: u32 = DMAMUX1;

#[cfg(test)]
mod tests {
    use super::*;
    use stm32h755::supply::SupplyConfig;

    const US: u64 = 1_000_000;

    #[test]
    fn embassy_clock_tree() {
        // What the firmware's clock_config() writes: HSE 8 MHz, PLL1 /1 x100, P /2, Q /10,
        // sys = PLL1, AHB /2, APB /2.
        let mut p = Peripherals::new(SupplyConfig::DirectSmps);
        let site = Default::default();
        p.write(RCC + 0x28, 4, 2 | (1 << 4), site);
        p.write(RCC + 0x30, 4, 99 | (1 << 9) | (9 << 16), site);
        p.write(RCC + 0x10, 4, 3, site);
        p.write(RCC + 0x18, 4, 0b1000, site);
        p.write(RCC + 0x1C, 4, (0b100 << 4) | (0b100 << 8), site);
        p.write(RCC + 0x50, 4, 1 << 28, site);
        let c = Clocks::from_rcc(&p);
        assert_eq!(c.cpu_hz, 400_000_000);
        assert_eq!(c.hclk_hz, 200_000_000);
        assert_eq!(c.pclk1_hz, 100_000_000);
        assert_eq!(c.tim_apb1_hz, 200_000_000);
        assert_eq!(c.fdcan_hz, 80_000_000);
        assert_eq!(c.usart234578_hz, 100_000_000);
        assert_eq!(
            Clocks::from_rcc(&Peripherals::new(SupplyConfig::DirectSmps)).cpu_hz,
            64_000_000
        );
    }

    #[test]
    fn timer_counts_wraps_and_compares_like_embassys_time_driver() {
        let mut t = Timer::new(TIM2, 200_000_000);
        let w = |t: &mut Timer, off: u32, v: u32, now: u64| t.write(TIM2 + off, v, now);
        w(&mut t, 0x28, 199, 0); // PSC: 1 MHz
        w(&mut t, 0x2C, 0xFFFF, 0);
        w(&mut t, 0x00, CR1_URS, 0);
        w(&mut t, 0x14, EGR_UG, 0);
        w(&mut t, 0x00, 0, 0);
        w(&mut t, 0x34, 0x8000, 0); // CCR1 half-way
        w(&mut t, 0x0C, 1 | 2, 0); // UIE, CC1IE
        assert_eq!(t.read(TIM2 + 0x10, 0), 0, "UG with URS sets no flag");
        w(&mut t, 0x00, CR1_CEN, 0);
        assert_eq!(t.read(TIM2 + 0x24, 1234 * US), 1234);
        assert_eq!(t.next_event(1234 * US), Some(0x8000 * US));
        assert!(!t.line());
        t.sync(0x8000 * US);
        assert!(t.line());
        assert_eq!(t.read(TIM2 + 0x10, 0x8000 * US), 2);
        w(&mut t, 0x10, !2, 0x8000 * US);
        assert!(!t.line());
        assert_eq!(t.next_event(0x8000 * US), Some(0x1_0000 * US));
        t.sync(0x1_0005 * US);
        assert_eq!(t.read(TIM2 + 0x10, 0x1_0005 * US) & 1, 1, "UIF at the wrap");
        assert_eq!(t.read(TIM2 + 0x24, 0x1_0005 * US), 5);
        // An alarm in CCR2.
        w(&mut t, 0x38, 100, 0x1_0005 * US);
        w(&mut t, 0x0C, 1 | 2 | 4, 0x1_0005 * US);
        assert_eq!(t.next_event(0x1_0005 * US), Some(0x1_0064 * US));
    }

    #[test]
    fn pwm_pulse_of_simple_pwm_at_50_hz() {
        let mut t = Timer::new(TIM1, 200_000_000);
        t.write(TIM1 + 0x28, 61, 0);
        t.write(TIM1 + 0x2C, 64515, 0);
        t.write(TIM1 + 0x18, 6 << 4, 0);
        t.write(TIM1 + 0x34, 4693, 0);
        t.write(TIM1 + 0x20, 1, 0);
        assert_eq!(t.ch1_pulse_us(true), None, "no counter, no MOE");
        t.write(TIM1 + 0x44, 1 << 15, 0);
        t.write(TIM1, 1, 0);
        assert_eq!(t.ch1_pulse_us(true), Some(1455));
        assert_eq!(t.period_us(), 19_999);
    }

    #[test]
    fn dma_sends_at_the_baud_rate_and_completes() {
        let mut d = Dma::default();
        let mut out = Vec::new();
        let s0 = |off: u32| DMA1 + 0x10 + off;
        d.write(s0(0x08), USART3_TDR, 0, |_| 0, true, &mut out);
        d.write(s0(0x0C), 0x2400_0000, 0, |_| 0, true, &mut out);
        d.write(s0(0x04), 4, 0, |_| 0, true, &mut out);
        d.write(s0(0x00), (1 << 6) | (1 << 4), 0, |_| 0, true, &mut out);
        let start = d.write(
            s0(0x00),
            (1 << 6) | (1 << 4) | 1,
            0,
            |_| DMAREQ_USART3_TX,
            true,
            &mut out,
        );
        let start = start.expect("a USART3 TX transfer");
        assert_eq!((start.address, start.len), (0x2400_0000, 4));
        let byte = uart_byte_ps(868, 100_000_000);
        assert_eq!(byte / 1000, 86_800, "115200 baud");
        d.begin(start, b"GAUG".to_vec(), 0, byte);
        assert_eq!(d.read(s0(0x00), 0, &mut out) & 1, 1, "running");
        assert_eq!(d.next_event(0), Some(3 * byte));
        assert!(!d.line(0));
        d.sync(3 * byte, &mut out);
        assert_eq!(d.read(s0(0x00), 3 * byte, &mut out) & 1, 0, "done");
        assert!(d.line(0));
        assert_eq!(out, b"GAU");
        d.sync(4 * byte, &mut out);
        assert_eq!(out, b"GAUG");
        d.write(DMA1 + 0x08, 0x3D, 4 * byte, |_| 0, true, &mut out);
        assert!(!d.line(0));
    }

    fn configure_like_embassy(f: &mut Fdcan) {
        let w = |f: &mut Fdcan, off: u32, v: u32| f.write(FDCAN1 + off, v);
        w(f, 0x84, 28 << 16);
        w(f, 0x88, (8 << 16) | (28 * 4));
        w(f, 0xA0, (3 << 16) | (44 * 4));
        w(f, 0xB0, (3 << 16) | (98 * 4));
        w(f, 0xC0, (3 << 24) | (158 * 4) | (1 << 30));
        w(f, 0xBC, 0x777);
        w(f, 0xC8, 7);
        w(f, 0xE0, u32::MAX);
        w(f, 0x54, 1 | (1 << 4) | IR_TC);
        w(f, 0x5C, 3);
        w(f, 0x1C, (9 << 16) | (12 << 8) | 1); // 80 MHz / 10 / 16 tq = 500 kbit/s
        w(f, 0x80, (2 << 2) | 3); // standard into FIFO 0, extended rejected, no remote
        w(f, 0x18, 0);
    }

    #[test]
    fn fdcan_receives_into_fifo0_and_transmits() {
        let mut f = Fdcan::new();
        let frame = CanFrame::standard(0x156, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        f.queue_frame(frame, 0, 80_000_000);
        f.deliver_due(1_000 * US, 80_000_000);
        assert_eq!(
            f.read(FDCAN1 + 0xA4, 0, 80_000_000) & 0x7F,
            0,
            "dropped in INIT"
        );
        configure_like_embassy(&mut f);
        assert_eq!(f.bit_ps(80_000_000), 2 * US);
        f.queue_frame(frame, 0, 80_000_000);
        f.queue_frame(CanFrame::extended(0x18DB33F1, &[2]).unwrap(), 0, 80_000_000);
        let first = f.next_event().unwrap();
        // After the frame dropped in INIT (reset bit timing) left the bus at 22.2 us.
        assert_eq!(first, 22_200_000 + 111 * 2 * US, "one frame time later");
        f.deliver_due(first, 80_000_000);
        assert_eq!(f.lines(), (true, false));
        let s = f.read(FDCAN1 + 0xA4, 0, 80_000_000);
        assert_eq!((s & 0x7F, (s >> 8) & 0x3F), (1, 0));
        let el = FDCAN_RAM + 44 * 4;
        assert_eq!(f.read(el, 0, 80_000_000), 0x156 << 18);
        assert_eq!((f.read(el + 4, 0, 80_000_000) >> 16) & 0xF, 8);
        assert_eq!(f.read(el + 8, 0, 80_000_000), 0x0403_0201);
        f.write(FDCAN1 + 0x50, 1);
        f.write(FDCAN1 + 0xA8, 0);
        assert_eq!(f.read(FDCAN1 + 0xA4, 0, 80_000_000) & 0x7F, 0);
        f.deliver_due(u64::MAX, 80_000_000);
        assert_eq!(
            f.received, 1,
            "extended frame rejected by the global filter"
        );
        // Transmit from TX buffer 0.
        let txq = f.read(FDCAN1 + 0xC4, 0, 80_000_000);
        assert_eq!((txq >> 16) & 0x1F, 0);
        let tb = FDCAN_RAM + 158 * 4;
        f.write(tb, 0x7DF << 18);
        f.write(tb + 4, 8 << 16);
        f.write(tb + 8, 0x005C_0102);
        f.write(tb + 12, 0);
        f.write(FDCAN1 + 0xD0, 1);
        assert_eq!(f.tx_out.len(), 1);
        assert_eq!(f.tx_out[0].id, 0x7DF);
        assert_eq!(f.tx_out[0].payload(), &[2, 1, 0x5C, 0, 0, 0, 0, 0]);
        assert_eq!(f.read(FDCAN1 + 0xD8, 0, 80_000_000), 1, "TXBTO");
        assert_eq!(f.lines(), (true, false), "IR.TC");
    }

    #[test]
    fn bank2_program_once_erase_and_cut() {
        let mut b = FlashBank2::new(FlashModel::new(BANK2_OFFSETS));
        let at = 0x081C_0000;
        b.write_data(at, 4, 0x1234_5678, 0, true);
        assert_ne!(b.sr() & SR_PGSERR, 0, "no PG");
        b.clear(u32::MAX);
        for k in 0..8 {
            b.write_data(at + 4 * k, 4, k, CR_PG, true);
        }
        assert_ne!(b.sr() & SR_EOP, 0);
        assert_eq!(b.read(at + 4, 4), 1);
        for k in 0..8 {
            b.write_data(at + 4 * k, 4, 0, CR_PG, true);
        }
        assert_ne!(b.sr() & SR_OPERR, 0, "programmed twice");
        assert!(b.control(CR_SER | (6 << 8) | CR_START, true));
        assert_eq!(b.read(at, 4), u32::MAX);
        b.flash.cut_power_after(Some(40));
        for k in 0..16 {
            b.write_data(at + 4 * k, 4, 0, CR_PG, true);
        }
        assert!(b.power_cut);
        assert_eq!(gpio_bsrr(0, (1 << 14) | (1 << 30)), 1 << 14);
        assert_eq!(gpio_bsrr(1 << 14, 1 << 30), 0);
    }
}
