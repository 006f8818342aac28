//! The device functions a NUCLEO bench has on its USB ports.

pub mod cdc_acm;
pub mod ch340;
pub mod serial_bridge;
pub mod stlink;
