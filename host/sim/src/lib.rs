//! The simulated bench: a simulated board and instrument simulators that speak the real
//! protocols (slcan, SUMP, LCUS-1, the telemetry UART) over pseudo-terminals, so the host
//! drivers that talk to real devices are what talk to the simulation.

pub mod bench;
pub mod board_power;
pub mod capabilities;
pub mod fault_control;
pub mod faults;
pub mod flash;
pub mod lcus_relay;
pub mod logic_board;
pub mod probe;
pub mod pwm;
pub mod pwr;
pub mod shared;
pub mod slcan_adapter;
pub mod socketcan_bridge;
pub mod sump_analyzer;
pub mod swd_probe;
pub mod swd_wire;
pub mod target;

pub use bench::{SimulatedBench, SimulatedBenchConfig};
pub use capabilities::BenchControl;
