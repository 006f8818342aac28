//! The gauge rig's host side: instruments (traits), their drivers, the simulated bench,
//! scenarios, the runner and reports.

pub mod app;
pub mod checks;
pub mod commands;
pub mod config;
pub mod dbc;
pub mod diagnosis;
pub mod drivers;
pub mod ecu;
pub mod elf;
#[cfg(feature = "emulator")]
pub mod emu;
pub mod instruments;
pub mod probe_flash;
pub mod recover;
pub mod report;
pub mod rig;
pub mod runner;
pub mod scenario;
pub mod sim;
pub mod sim_cmd;
pub mod soak;
pub mod source;
