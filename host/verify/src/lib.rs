//! What the rig proves and how: scenario files, the stand-in ECU on the gauge's bus, the runner
//! (step dispatch, settle detection, telemetry), power-loss verification (supply and
//! power-cycle checks, cuts during flash writes, storage read back through the probe,
//! diagnoses, recovery and soak), and the JSON run report.
//!
//! Depends on the instrument traits and capabilities (`rig-instruments`), the bench config and
//! the chip facts only: it cannot name a simulator, so what a check measures is what it
//! measures on hardware.

pub mod dbc;
pub mod ecu;
pub mod evidence;
pub mod job;
mod needle;
pub mod power_loss;
pub mod provenance;
pub mod report;
pub mod rig;
pub mod runner;
pub mod scenario;
pub mod session;
#[cfg(test)]
mod test_probe;
