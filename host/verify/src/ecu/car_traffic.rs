//! What a car's bus carries besides the gauge's own traffic: another tester polling PIDs (in
//! 11-bit or 29-bit OBD-II addressing) with the engine's replies to it, and further ECUs that
//! answer the functional oil-temperature request with their own values.

use std::time::Duration;

use gauge_logic::{frame::CanFrame, obd};

use crate::scenario::ObdAddressing;

/// 29-bit functional request ID (ISO 15765-4: priority 0x18, DB, target 0x33, tester 0xF1).
pub const FUNCTIONAL_REQUEST_29BIT: u32 = 0x18DB_33F1;
/// 29-bit physical reply ID from the engine ECU (address 0x10) to the tester (0xF1).
pub const ENGINE_REPLY_29BIT: u32 = 0x18DA_F110;
/// The engine ECU's 11-bit reply ID.
pub const ENGINE_REPLY_11BIT: u16 = 0x7E8;

/// When an ECU answers a request: `delay` plus a uniform share of `jitter`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplyTiming {
    pub delay: Duration,
    pub jitter: Duration,
}

impl ReplyTiming {
    pub fn from_ms(delay_ms: u64, jitter_ms: u64) -> Self {
        Self {
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::from_millis(jitter_ms),
        }
    }

    /// The delay for one reply; `random` is any 32-bit draw.
    pub fn draw(&self, random: u32) -> Duration {
        let jitter_us = self.jitter.as_micros() as u64;
        let extra = if jitter_us == 0 {
            0
        } else {
            u64::from(random) % (jitter_us + 1)
        };
        self.delay + Duration::from_micros(extra)
    }
}

/// Another ECU on the bus that answers mode 01 PID 0x5C with its own value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OtherEcu {
    /// 11-bit response ID, 0x7E9..=0x7EF.
    pub id: u16,
    pub celsius: i32,
    pub timing: ReplyTiming,
}

/// A scan tool or data logger polling PIDs in turn.
#[derive(Clone, Debug, PartialEq)]
pub struct Tester {
    pub pids: Vec<u8>,
    pub period: Duration,
    /// The oil temperature the engine tells this tester (PID 0x5C).
    pub celsius: i32,
    pub addressing: ObdAddressing,
    pub reply_delay: Duration,
}

impl Tester {
    /// The tester's `n`-th request (PIDs in turn).
    pub fn request(&self, n: u64) -> Option<CanFrame> {
        let pid = *self.pids.get((n as usize) % self.pids.len().max(1))?;
        let data = [
            0x02,
            obd::MODE_CURRENT_DATA,
            pid,
            0x55,
            0x55,
            0x55,
            0x55,
            0x55,
        ];
        match self.addressing {
            ObdAddressing::Standard11 => CanFrame::standard(obd::REQUEST_ID, &data),
            ObdAddressing::Extended29 => CanFrame::extended(FUNCTIONAL_REQUEST_29BIT, &data),
        }
    }

    /// The engine's positive reply to a request for `pid`, with plausible data for the common
    /// PIDs and this tester's oil temperature for PID 0x5C.
    pub fn engine_reply(&self, pid: u8) -> Option<CanFrame> {
        let data = pid_data(pid, self.celsius);
        let mut payload = [0xAA; 8];
        payload[0] = 2 + data.len() as u8;
        payload[1] = obd::MODE_CURRENT_DATA + 0x40;
        payload[2] = pid;
        payload[3..3 + data.len()].copy_from_slice(&data);
        match self.addressing {
            ObdAddressing::Standard11 => CanFrame::standard(ENGINE_REPLY_11BIT, &payload),
            ObdAddressing::Extended29 => CanFrame::extended(ENGINE_REPLY_29BIT, &payload),
        }
    }
}

/// Data bytes of a mode-01 reply for `pid` (SAE J1979 lengths for the PIDs a logger polls most).
fn pid_data(pid: u8, oil_celsius: i32) -> Vec<u8> {
    let byte = |v: i32| v.clamp(0, 255) as u8;
    match pid {
        // Supported-PID bitmaps.
        0x00 | 0x20 | 0x40 | 0x60 | 0x80 | 0xA0 | 0xC0 => vec![0xBE, 0x1F, 0xA8, 0x13],
        // Engine speed, 1/4 rpm: 2400 rpm.
        0x0C => (2400u16 * 4).to_be_bytes().to_vec(),
        // Coolant temperature, A - 40: 88 degC.
        0x05 => vec![byte(88 + 40)],
        // Vehicle speed: 72 km/h.
        0x0D => vec![72],
        // Engine oil temperature, A - 40.
        obd::PID_OIL_TEMP => vec![byte(oil_celsius + 40)],
        _ => vec![0x00],
    }
}

/// `ecu`'s reply to an oil-temperature request.
pub fn other_ecu_reply(ecu: &OtherEcu) -> Option<CanFrame> {
    CanFrame::standard(ecu.id, &obd::reply_payload(ecu.celsius)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tester(addressing: ObdAddressing) -> Tester {
        Tester {
            pids: vec![0x0C, obd::PID_OIL_TEMP],
            period: Duration::from_millis(100),
            celsius: 150,
            addressing,
            reply_delay: Duration::from_millis(5),
        }
    }

    #[test]
    fn an_11bit_tester_asks_what_the_gauge_asks_and_gets_a_reply_the_gauge_could_take() {
        let t = tester(ObdAddressing::Standard11);
        assert_eq!(t.request(0).map(|f| f.data[2]), Some(0x0C));
        let oil = t.request(1).unwrap();
        assert!(obd::is_request(&oil), "the same request as the gauge's");
        let reply = t.engine_reply(obd::PID_OIL_TEMP).unwrap();
        assert_eq!(
            obd::parse_reply(&reply),
            Some(gauge_logic::MilliCelsius::from_degrees(150))
        );
        let rpm = t.engine_reply(0x0C).unwrap();
        assert_eq!(rpm.payload()[..5], [0x04, 0x41, 0x0C, 0x25, 0x80]);
        assert_eq!(obd::parse_reply(&rpm), None);
    }

    #[test]
    fn a_29bit_tester_uses_the_iso_15765_4_extended_ids() {
        let t = tester(ObdAddressing::Extended29);
        let req = t.request(1).unwrap();
        assert!(req.extended && req.id == 0x18DB_33F1);
        let reply = t.engine_reply(obd::PID_OIL_TEMP).unwrap();
        assert!(reply.extended && reply.id == 0x18DA_F110);
        assert_eq!(reply.payload()[..4], [0x03, 0x41, 0x5C, 190]);
    }

    #[test]
    fn reply_delays_stay_within_delay_plus_jitter() {
        let timing = ReplyTiming::from_ms(5, 10);
        let draws: Vec<Duration> = (0..1000u32)
            .map(|i| timing.draw(i.wrapping_mul(2_654_435_761)))
            .collect();
        assert!(draws
            .iter()
            .all(|d| (Duration::from_millis(5)..=Duration::from_millis(15)).contains(d)));
        assert!(draws.iter().any(|d| *d < Duration::from_millis(7)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(13)));
        assert_eq!(
            ReplyTiming::from_ms(3, 0).draw(99),
            Duration::from_millis(3)
        );
    }
}
