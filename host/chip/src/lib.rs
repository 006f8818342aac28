//! STM32H755 facts (RM0399), in one place for everything that reads or models the chip:
//! the rig's hardware checks and diagnoses, the simulated board, the emulator, preflight and
//! the firmware's own decision logic. Addresses and field decoders only: no behaviour.
#![no_std]

pub mod debug;
pub mod flash;
pub mod supply;
