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
//! | OBD-II | no valid broadcast for 500 ms -> request `7DF: 02 01 5C 00 00 00 00 00` every 100 ms; single-frame replies `03 41 5C A` from 0x7E8..=0x7EF, T = A - 40 degC, counted as the arbitration below says |
//! | Ignored | other IDs, wrong DLC, extended IDs, remote frames, malformed or negative replies |
//! | Needle | TIM1_CH1 PE9, 50 Hz; 40 degC -> 1000 us, 150 degC -> 2000 us, linear, clamped |
//! | Slew | at most 2000 us per second, also when parking |
//! | Failsafe | no valid reading for 1000 ms (also from boot) -> needle target 900 us, red LED PB14 on |
//! | Telemetry | one [`telemetry::StatusLine`] per second on USART3 (PD8/PD9, 115200 8N1) |
//! | Storage | boot counter (+1 every boot) and calibration in a [`sequential_storage`] map in bank 2, sectors 6-7 |
//!
//! ## Source arbitration ([`arbitration`], [`gauge::Gauge::on_frame`])
//!
//! | Case on the bus | What the gauge does | Why |
//! |---|---|---|
//! | Valid broadcast within the last 500 ms | The broadcast is the source; every OBD-II reply is ignored, whoever asked | The broadcast is the car's own periodic value; replies then answer another tester (a scan tool, a logger), and a tester may ask for any reason |
//! | OBD-II reply more than 50 ms after the gauge's own request, or with no request | Ignored | ISO 15765-4 gives an ECU 50 ms (P2CAN) to answer; a later reply answers someone else or nobody |
//! | Another tester's request for PID 0x5C, answered inside the gauge's window | Taken like an answer to the gauge | It cannot be told apart on the bus, and one engine gives every tester the same value |
//! | Several ECUs answer one request | The gauge follows one ECU: 0x7E8 (the engine, ISO 15765-4's first reply ID) as soon as it answers; without it, the lowest reply ID heard in the window, chosen when the window closes | A needle that followed the last reply flips between ECUs; choosing at window close makes the reply order irrelevant |
//! | The followed ECU answers again | Its first reply per request moves the needle; others are ignored, also a later-appearing 0x7E8 | No flip between sources while the followed one works |
//! | The followed ECU misses 3 requests in a row | Given up; the next window chooses again (one change of value) | One lost reply is a busy bus, three are an ECU that is gone; a real reading beats parking |
//! | 29-bit OBD-II (0x18DB33F1 requests, 0x18DAF1xx replies) | Never a reading: the gauge asks and listens in 11-bit only (the FDCAN drops extended frames) | A car answers in the addressing it was asked in; a car with 29-bit OBD-II only leaves the gauge on the broadcast or parked |
//! | No valid reading for 1000 ms | Failsafe (table above) | Whatever the source |
//! | Other IDs on the bus, standard or extended, at any load | Never reach the firmware: the board's FDCAN acceptance filters store only 0x156 and 0x7E8..0x7EF (one ID/mask pair) in RX FIFO 0 and reject the rest, extended and remote frames included | A loaded bus (3,000+ frames/s at 80 %) then costs the firmware nothing, and no other ID can fill the FIFO ahead of the broadcast; gauge-logic still checks every frame it gets |
//! | The bus fails: nobody acknowledges the gauge's requests (error passive), or a short takes the controller bus-off | No frames, so the failsafe above parks the needle; the status line says `bus=passive` or `bus=off`. The board glue leaves bus-off recovery on (embassy clears CCCR.INIT; the controller rejoins after 129 x 11 recessive bits), so the needle follows the first valid reading after the bus is good again | A gauge that stayed off the bus after one fault would read nothing until the next power-on; parking says "no data" as for any other loss |
#![no_std]

pub mod arbitration;
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
