//! The board ELF on an emulated STM32H755 Cortex-M7 (feature `emulator`).
//!
//! [`machine`] runs the ELF's loadable segments in unicorn (M-profile, Cortex-M7 model) from
//! the reset vector with the register models of [`peripherals`]; [`preflight`] turns a run into
//! `rig preflight`'s verdict: the supply written to PWR_CR3 against the board's wiring, option
//! bytes that would disable the Cortex-M7's boot, and whether boot reaches the executor's idle
//! (the first WFI/WFE).
//!
//! No NVIC, timers or bus traffic yet: the run ends at the first idle instruction.

pub mod machine;
pub mod peripherals;
pub mod preflight;
pub mod symbols;

pub use machine::{Firmware, Limits, PollLoop, Run, Stop};
pub use preflight::{Board, Finding, Report};

use crate::elf::ElfError;

#[derive(Debug, thiserror::Error)]
pub enum EmuError {
    #[error("{0}")]
    Elf(#[from] ElfError),
    #[error("board {0:?}: {1}")]
    Board(String, String),
    #[error("emulator: cannot {what}: {error}")]
    Unicorn { what: &'static str, error: String },
}
