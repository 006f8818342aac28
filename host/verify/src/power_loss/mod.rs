//! Power-loss verification, the reason the rig exists: the supply check, the power-cycle check,
//! power cuts during the firmware's flash writes, the storage records read back through the
//! probe, the diagnoses of a board that does not come back, and the recovery and soak
//! procedures built on them.

pub mod diagnosis;
pub mod power_cycle;
pub mod recovery;
pub mod soak;
pub mod storage_readback;
mod supply_check;
mod write_cuts;

pub use power_cycle::PowerCycleCheck;
