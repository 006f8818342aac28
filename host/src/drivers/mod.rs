//! Drivers that speak each instrument's real protocol over a serial port (a USB CDC device on
//! the bench, a pseudo-terminal on the simulated bench).

pub mod lcus;
pub mod pulse;
pub mod serial;
pub mod slcan;
pub mod sump;
pub mod telemetry;
