//! The one-line-per-second status report on the ST-LINK virtual COM port.
//!
//! Format (ASCII, fields separated by one space, terminated by `\r\n`):
//!
//! ```text
//! GAUGE/1 up=<ms since boot> temp=<degC, 1 decimal | none> src=<bcast|obd|none> pw=<us> cr3=0x<8 hex> boots=<n> fs=<0|1> [bc=<n>] [bus=<active|passive|off>]
//! GAUGE/1 up=12000 temp=90.0 src=bcast pw=1455 cr3=0x00000004 boots=7 fs=0 bc=1180
//! ```
//!
//! `bus` (optional) is the CAN controller's fault-confinement state: `active`, `passive`
//! (error passive: 128 or more errors counted) or `off` (bus-off, waiting to rejoin).
//! `bc` (optional, newer firmware) counts the valid broadcast frames the gauge took since boot
//! (wrapping at 2^32): against the frames the rig sent, it tells frames lost on the way.
//!
//! Unknown `key=value` fields are ignored by the parser so the format can grow.

/// The status line's UART rate (USART3, 8N1): what the board sends at and a host must set.
pub const BAUD: u32 = 115_200;

use core::fmt;

use crate::{gauge::Source, MilliCelsius};

pub const PREFIX: &str = "GAUGE/1";

/// The CAN controller's fault-confinement state (ISO 11898-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusState {
    Active,
    Passive,
    Off,
}

impl BusState {
    pub fn name(self) -> &'static str {
        match self {
            BusState::Active => "active",
            BusState::Passive => "passive",
            BusState::Off => "off",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [BusState::Active, BusState::Passive, BusState::Off]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusLine {
    pub uptime_ms: u64,
    /// Rounded to 0.1 degC on the wire.
    pub temperature: Option<MilliCelsius>,
    pub source: Source,
    pub pulse_us: u16,
    pub pwr_cr3: u32,
    pub boot_count: u32,
    pub failsafe: bool,
    /// Valid broadcast frames taken since boot; `None` from firmware that does not say.
    pub broadcasts: Option<u32>,
    /// The CAN controller's state; `None` from firmware (or a board) that does not say.
    pub bus: Option<BusState>,
}

impl fmt::Display for StatusLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX} up={} temp=", self.uptime_ms)?;
        match self.temperature {
            Some(MilliCelsius(m)) => {
                // In i64: `m + 50` overflows an i32 near its ends.
                let m = i64::from(m);
                let tenths = if m >= 0 {
                    (m + 50) / 100
                } else {
                    (m - 50) / 100
                };
                let sign = if tenths < 0 { "-" } else { "" };
                write!(f, "{sign}{}.{}", (tenths / 10).abs(), (tenths % 10).abs())?;
            }
            None => f.write_str("none")?,
        }
        write!(
            f,
            " src={} pw={} cr3={:#010x} boots={} fs={}",
            self.source.name(),
            self.pulse_us,
            self.pwr_cr3,
            self.boot_count,
            u8::from(self.failsafe)
        )?;
        if let Some(n) = self.broadcasts {
            write!(f, " bc={n}")?;
        }
        match self.bus {
            Some(b) => write!(f, " bus={}", b.name()),
            None => Ok(()),
        }
    }
}

/// Why a line is not a status line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    NotAStatusLine,
    Missing(&'static str),
    BadValue(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotAStatusLine => write!(f, "line does not start with {PREFIX}"),
            ParseError::Missing(k) => write!(f, "field {k}= is missing"),
            ParseError::BadValue(k) => write!(f, "field {k}= has a bad value"),
        }
    }
}

fn parse_temperature(v: &str) -> Option<Option<MilliCelsius>> {
    if v == "none" {
        return Some(None);
    }
    let (neg, digits) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    if frac.len() != 1 {
        return None;
    }
    let milli = whole
        .parse::<i32>()
        .ok()?
        .checked_mul(1000)?
        .checked_add(frac.parse::<i32>().ok()? * 100)?;
    Some(Some(MilliCelsius(if neg {
        milli.checked_neg()?
    } else {
        milli
    })))
}

impl StatusLine {
    /// Parses one line (with or without its line ending).
    pub fn parse(line: &str) -> Result<Self, ParseError> {
        let mut fields = line
            .trim_end_matches(['\r', '\n'])
            .split(' ')
            .filter(|s| !s.is_empty());
        if fields.next() != Some(PREFIX) {
            return Err(ParseError::NotAStatusLine);
        }
        let (mut up, mut temp, mut src, mut pw, mut cr3, mut boots, mut fs, mut bc, mut bus) =
            (None, None, None, None, None, None, None, None, None);
        for field in fields {
            let Some((k, v)) = field.split_once('=') else {
                continue;
            };
            match k {
                "up" => up = Some(v.parse::<u64>().map_err(|_| ParseError::BadValue("up"))?),
                "temp" => temp = Some(parse_temperature(v).ok_or(ParseError::BadValue("temp"))?),
                "src" => {
                    src = Some(match v {
                        "bcast" => Source::Broadcast,
                        "obd" => Source::Obd,
                        "none" => Source::None,
                        _ => return Err(ParseError::BadValue("src")),
                    })
                }
                "pw" => pw = Some(v.parse::<u16>().map_err(|_| ParseError::BadValue("pw"))?),
                "cr3" => {
                    let hex = v.strip_prefix("0x").ok_or(ParseError::BadValue("cr3"))?;
                    cr3 = Some(
                        u32::from_str_radix(hex, 16).map_err(|_| ParseError::BadValue("cr3"))?,
                    )
                }
                "boots" => {
                    boots = Some(
                        v.parse::<u32>()
                            .map_err(|_| ParseError::BadValue("boots"))?,
                    )
                }
                "fs" => {
                    fs = Some(match v {
                        "0" => false,
                        "1" => true,
                        _ => return Err(ParseError::BadValue("fs")),
                    })
                }
                "bc" => bc = Some(v.parse::<u32>().map_err(|_| ParseError::BadValue("bc"))?),
                "bus" => bus = Some(BusState::from_name(v).ok_or(ParseError::BadValue("bus"))?),
                _ => {}
            }
        }
        Ok(Self {
            uptime_ms: up.ok_or(ParseError::Missing("up"))?,
            temperature: temp.ok_or(ParseError::Missing("temp"))?,
            source: src.ok_or(ParseError::Missing("src"))?,
            pulse_us: pw.ok_or(ParseError::Missing("pw"))?,
            pwr_cr3: cr3.ok_or(ParseError::Missing("cr3"))?,
            boot_count: boots.ok_or(ParseError::Missing("boots"))?,
            failsafe: fs.ok_or(ParseError::Missing("fs"))?,
            broadcasts: bc,
            bus,
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    fn line(temp: Option<i32>) -> StatusLine {
        StatusLine {
            uptime_ms: 12_000,
            temperature: temp.map(MilliCelsius),
            source: Source::Broadcast,
            pulse_us: 1455,
            pwr_cr3: 0x0000_0004,
            boot_count: 7,
            failsafe: false,
            broadcasts: None,
            bus: None,
        }
    }

    #[test]
    fn formats_the_documented_example() {
        assert_eq!(
            line(Some(90_000)).to_string(),
            "GAUGE/1 up=12000 temp=90.0 src=bcast pw=1455 cr3=0x00000004 boots=7 fs=0"
        );
        assert_eq!(
            line(Some(-40_000)).to_string().split(' ').nth(2),
            Some("temp=-40.0")
        );
        assert_eq!(
            line(Some(-250)).to_string().split(' ').nth(2),
            Some("temp=-0.3")
        );
    }

    #[test]
    fn the_broadcast_count_is_optional_and_round_trips() {
        let l = StatusLine {
            broadcasts: Some(1180),
            bus: Some(BusState::Passive),
            ..line(Some(90_000))
        };
        let text = l.to_string();
        assert!(text.ends_with(" fs=0 bc=1180 bus=passive"), "{text}");
        assert_eq!(StatusLine::parse(&text), Ok(l));
        assert_eq!(
            StatusLine::parse("GAUGE/1 up=1 temp=none src=none pw=900 cr3=0x4 boots=1 fs=1 bc=x"),
            Err(ParseError::BadValue("bc"))
        );
        assert_eq!(
            StatusLine::parse(
                "GAUGE/1 up=1 temp=none src=none pw=900 cr3=0x4 boots=1 fs=1 bus=gone"
            ),
            Err(ParseError::BadValue("bus"))
        );
    }

    #[test]
    fn round_trips() {
        for t in [Some(90_000), Some(-40_000), Some(215_000), Some(-500), None] {
            let l = line(t);
            assert_eq!(StatusLine::parse(&(l.to_string() + "\r\n")), Ok(l));
        }
    }

    /// Temperatures at the ends of the i32 milli-degree range (found by the fuzz target
    /// status_line; inputs in host/fuzz/regressions/status_line/): the parser's sum and the
    /// formatter's rounding overflowed. Now a bad value, or printed as is.
    #[test]
    fn temperatures_at_the_ends_of_the_range_do_not_overflow() {
        assert_eq!(
            StatusLine::parse("GAUGE/1 up=1 temp=2147483.9 src=obd pw=1 cr3=0x4 boots=1 fs=0"),
            Err(ParseError::BadValue("temp"))
        );
        let l = StatusLine::parse("GAUGE/1 up=1 temp=2147483.6 src=obd pw=1 cr3=0x4 boots=1 fs=0")
            .unwrap();
        assert_eq!(l.temperature, Some(MilliCelsius(2_147_483_600)));
        assert_eq!(l.to_string().split(' ').nth(2), Some("temp=2147483.6"));
        assert_eq!(
            line(Some(i32::MAX)).to_string().split(' ').nth(2),
            Some("temp=2147483.6")
        );
        assert_eq!(
            line(Some(i32::MIN)).to_string().split(' ').nth(2),
            Some("temp=-2147483.6")
        );
    }

    #[test]
    fn rejects_garbage_with_the_field_named() {
        assert_eq!(StatusLine::parse("hello"), Err(ParseError::NotAStatusLine));
        assert_eq!(
            StatusLine::parse("GAUGE/1 up=1"),
            Err(ParseError::Missing("temp"))
        );
        assert_eq!(
            StatusLine::parse("GAUGE/1 up=1 temp=9x src=obd pw=1 cr3=0x4 boots=1 fs=0"),
            Err(ParseError::BadValue("temp"))
        );
    }
}
