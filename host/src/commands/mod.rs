//! Bench commands beside `run`: `list` (what is plugged in), `doctor` (is every instrument of a
//! bench there and answering) and `flash` (put a firmware ELF on the board).

pub mod doctor;
pub mod flash;
pub mod list;
