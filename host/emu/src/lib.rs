//! The board ELF on an emulated STM32H755 Cortex-M7 (feature `emulator`).
//!
//! [`machine`] runs the ELF's loadable segments in unicorn (M-profile, Cortex-M7 model) from
//! the reset vector with the register models of [`peripherals`]; [`preflight`] turns a run into
//! `rig preflight`'s verdict: the supply written to PWR_CR3 against the board's wiring, option
//! bytes that would disable the Cortex-M7's boot, and whether boot reaches the executor's idle
//! (the first WFI/WFE).
//!
//! The preflight run ends at the first idle instruction. [`board`] runs the ELF for whole
//! scenarios instead: [`cpu`] keeps the core going in virtual time (instruction count at the
//! configured core clock, WFE/WFI sleep, M-profile exception entry and return with the NVIC and
//! SCB of [`nvic`]), [`soc`] routes the bus to the timed devices of [`devices`] (TIM1/TIM2, DMA1
//! with USART3, FDCAN1, flash bank 2, GPIO) on top of the register models of [`peripherals`].

pub mod board;
pub mod cpu;
pub mod debug;
pub mod devices;
pub mod machine;
pub mod nvic;
pub mod peripherals;
pub mod preflight;
pub mod soc;
pub mod symbols;

pub use machine::{Firmware, Limits, PollLoop, Run, Stop};
pub use preflight::{Board, Finding, Report};

use rig_instruments::elf::ElfError;

#[derive(Debug, thiserror::Error)]
pub enum EmuError {
    #[error("{0}")]
    Elf(#[from] ElfError),
    #[error("board {0:?}: {1}")]
    Board(String, String),
    #[error("emulator: cannot {what}: {error}")]
    Unicorn { what: &'static str, error: String },
}
