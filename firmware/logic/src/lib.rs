//! Decision logic of the CAN-driven oil-temperature gauge (NUCLEO-H755ZI-Q firmware).
//!
//! `no_std` and hardware-free so that the same code runs on the board (via the thin
//! embassy glue in `firmware/`) and inside the rig's simulated board, and is unit-tested
//! on the host. Time is passed in as milliseconds since boot.
//!
//! # The gauge contract
//!
//! | What | Behaviour |
//! |---|---|
//! | Supply | Direct SMPS (PWR_CR3 low byte 0x04 under mask 0x3F), VOS1, HSE 8 MHz bypass, 400 MHz; feature `supply-ldo` builds the deliberately wrong LDO variant |
//! | CAN | FDCAN1 PD0/PD1, 500 kbit/s, classic frames |
//! | Broadcast | [`signal::OIL_TEMP_SIGNAL`], generated from `scenarios/oil_temp.dbc`: ID 0x156, DLC 8, `EngOil_Te_Actl 15\|8@0+ (1,-60)`; raw 254/255 are status codes and ignored |
//! | OBD-II | no valid broadcast for 500 ms -> request `7DF: 02 01 5C 00 00 00 00 00` every 100 ms; single-frame replies `03 41 5C A` from 0x7E8..=0x7EF, T = A - 40 degC |
//! | Ignored | other IDs, wrong DLC, extended IDs, remote frames, malformed or negative replies |
//! | Needle | TIM1_CH1 PE9, 50 Hz; 40 degC -> 1000 us, 150 degC -> 2000 us, linear, clamped |
//! | Slew | at most 2000 us per second, also when parking |
//! | Failsafe | no valid reading for 1000 ms (also from boot) -> needle target 900 us, red LED PB14 on |
//! | Telemetry | one [`telemetry::StatusLine`] per second on USART3 (PD8/PD9, 115200 8N1) |
//! | Storage | boot counter (+1 every boot) and calibration in a [`sequential_storage`] map in bank 2, sectors 6-7 |
#![no_std]

pub mod calibration;
pub mod frame;
pub mod gauge;
pub mod obd;
pub mod signal;
pub mod slew;
pub mod storage;
pub mod supply;
pub mod telemetry;

/// A temperature in thousandths of a degree Celsius (exact for every DBC factor we use).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MilliCelsius(pub i32);

impl MilliCelsius {
    pub const fn from_degrees(deg: i32) -> Self {
        Self(deg * 1000)
    }
}
