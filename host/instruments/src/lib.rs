//! The instruments of a bench: what the verification code needs from each (traits that know
//! no transport), the real drivers behind them (slcan, SocketCAN, SUMP, serial telemetry,
//! power switches, probe-rs), the capabilities only some benches offer, and the ELF segment
//! reader the probe drivers flash from.
//!
//! Each trait has a real driver in [`drivers`] (which the simulated bench also uses, over
//! pseudo-terminals and vcan) or, for the debug probe, an in-process simulation in `rig-sim`.

pub mod capabilities;
pub mod drivers;
pub mod elf;
mod instrument;
pub mod interrupt;
pub mod pulse;
pub mod usb_identity;

pub use capabilities::*;
pub use instrument::*;
