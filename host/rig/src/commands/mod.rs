//! Every `rig` command, a file each: `run` and `check` (scenarios), `report` (a run folder's
//! report rebuilt from its event log), `history` (runs recorded in SQLite), `list`, `doctor` and
//! `flash` (the bench and its board), `recover` and `soak` (power-loss procedures), `sim` (a
//! standalone simulated bench for other tools) and `preflight` (the emulator's verdict on an
//! ELF); `signals` is their Ctrl-C/SIGTERM handling.

pub mod check;
pub mod doctor;
pub mod flash;
pub mod history;
pub mod list;
pub mod preflight;
pub mod recover;
pub mod report;
pub mod run;
pub mod signals;
pub mod sim;
pub mod soak;
