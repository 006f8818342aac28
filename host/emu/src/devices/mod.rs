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
//! - [`FlashBank`]: programming of either flash bank with H7 semantics: PG with 32-byte flash
//!   words filled through the bank's address space, program-once words, sector/bank erase to
//!   0xFF, CR/SR/CCR with BSY/QW for the datasheet's operation times, on the non-volatile
//!   [`FlashModel`](rig_sim::flash::FlashModel) (which can cut the power after N bytes).
//! - GPIO BSRR into ODR, and the pins the bench reads: TIM1 CH1's pulse and PB14.
//!
//! One file per peripheral; this module keeps what they share: the time base, HSE, interrupt
//! numbers and base addresses.

pub mod clocks;
pub mod dma;
pub mod fdcan;
pub mod flash_bank;
pub mod gpio;
pub mod timer;

pub use clocks::Clocks;
pub use dma::{uart_byte_ps, Dma, DmaStart, DMAMUX1_C0CR};
pub use fdcan::Fdcan;
pub use flash_bank::{Bank, FlashBank, FlashTiming};
pub use gpio::gpio_bsrr;
pub use timer::Timer;

/// The NUCLEO's HSE: the ST-LINK's 8 MHz MCO.
pub const HSE_HZ: u64 = 8_000_000;
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

/// One microsecond in picoseconds, for the tests.
#[cfg(test)]
const US: u64 = 1_000_000;
