//! The `rig` command's library: the bench assembly (a rig config -> drivers, the simulated
//! bench or the emulated board -> a ready [`rig_verify::rig::Rig`]) and every CLI command.
//! The only place outside `rig-sim` and `rig-emu` that names a simulated type is [`assembly`].

pub mod assembly;
pub mod commands;
