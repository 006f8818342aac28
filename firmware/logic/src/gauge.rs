//! The gauge state machine: frames in, needle pulse / LED / OBD requests out.

use crate::{
    arbitration::ObdArbiter,
    calibration::Calibration,
    frame::CanFrame,
    obd,
    signal::{decode_broadcast, BroadcastReading, SignalLayout, OIL_TEMP_SIGNAL},
    slew::SlewLimiter,
    MilliCelsius,
};

/// Timing and positions of the contract (see the crate docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GaugeTiming {
    /// Start polling OBD-II when no valid broadcast was seen for this long.
    pub broadcast_timeout_ms: u64,
    pub obd_poll_interval_ms: u64,
    /// Park the needle when no valid reading arrived for this long.
    pub stale_after_ms: u64,
    pub park_pulse_us: u16,
    pub slew_us_per_s: u32,
    /// An OBD-II reply counts only this long after the gauge's own request (ISO 15765-4 P2CAN).
    pub obd_response_window_ms: u64,
    /// The followed ECU is given up after this many of the gauge's requests in a row it left
    /// unanswered.
    pub obd_ecu_lost_after: u8,
}

impl GaugeTiming {
    pub const DEFAULT: Self = Self {
        broadcast_timeout_ms: 500,
        obd_poll_interval_ms: 100,
        stale_after_ms: 1000,
        park_pulse_us: 900,
        slew_us_per_s: 2000,
        obd_response_window_ms: 50,
        obd_ecu_lost_after: 3,
    };
}

/// Where the current temperature came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    None,
    Broadcast,
    Obd,
}

impl Source {
    pub const fn name(self) -> &'static str {
        match self {
            Source::None => "none",
            Source::Broadcast => "bcast",
            Source::Obd => "obd",
        }
    }
}

/// What the board should do after a [`Gauge::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GaugeOutput {
    pub pulse_us: u16,
    pub failsafe: bool,
    /// A frame to transmit (the OBD-II request), if one is due.
    pub transmit: Option<CanFrame>,
}

/// The gauge's decision logic.
#[derive(Clone, Debug)]
pub struct Gauge {
    calibration: Calibration,
    timing: GaugeTiming,
    layout: SignalLayout,
    boot_ms: u64,
    last_broadcast_ms: Option<u64>,
    /// Valid broadcast frames taken since boot (wrapping), for the status line.
    broadcasts: u32,
    last_reading_ms: Option<u64>,
    last_poll_ms: Option<u64>,
    obd: ObdArbiter,
    temperature: Option<MilliCelsius>,
    source: Source,
    slew: SlewLimiter,
    failsafe: bool,
    pulse_us: u16,
}

impl Gauge {
    /// A gauge that boots at `now_ms` with the needle parked.
    pub fn new(calibration: Calibration, timing: GaugeTiming, now_ms: u64) -> Self {
        Self {
            calibration,
            timing,
            layout: OIL_TEMP_SIGNAL,
            boot_ms: now_ms,
            last_broadcast_ms: None,
            broadcasts: 0,
            last_reading_ms: None,
            last_poll_ms: None,
            obd: ObdArbiter::new(timing.obd_response_window_ms, timing.obd_ecu_lost_after),
            temperature: None,
            source: Source::None,
            slew: SlewLimiter::new(timing.park_pulse_us, timing.slew_us_per_s, now_ms),
            failsafe: true,
            pulse_us: timing.park_pulse_us,
        }
    }

    /// Feeds one received frame. A valid broadcast always counts; an OBD-II reply only while
    /// the broadcast is missing, as an answer to the gauge's own request (see [`crate::arbitration`]).
    pub fn on_frame(&mut self, now_ms: u64, frame: &CanFrame) {
        if let BroadcastReading::Temperature(t) = decode_broadcast(&self.layout, frame) {
            self.last_broadcast_ms = Some(now_ms);
            self.broadcasts = self.broadcasts.wrapping_add(1);
            self.accept(now_ms, t, Source::Broadcast);
        } else if let Some((ecu, t)) = obd::parse_reply_from(frame) {
            if self.broadcast_fresh(now_ms) {
                return;
            }
            if let Some(t) = self.obd.on_reply(now_ms, ecu, t) {
                self.accept(now_ms, t, Source::Obd);
            }
        }
    }

    /// A valid broadcast arrived within the broadcast timeout: it is the source.
    fn broadcast_fresh(&self, now_ms: u64) -> bool {
        self.last_broadcast_ms
            .is_some_and(|b| now_ms.saturating_sub(b) < self.timing.broadcast_timeout_ms)
    }

    fn accept(&mut self, now_ms: u64, t: MilliCelsius, source: Source) {
        self.temperature = Some(t);
        self.source = source;
        self.last_reading_ms = Some(now_ms);
    }

    fn since(now_ms: u64, then: Option<u64>, boot_ms: u64) -> u64 {
        now_ms.saturating_sub(then.unwrap_or(boot_ms))
    }

    /// Advances time: decides the OBD poll, the failsafe and the needle position.
    pub fn poll(&mut self, now_ms: u64) -> GaugeOutput {
        let t = self.timing;
        let mut transmit = None;
        let mut obd_reading = self.obd.on_tick(now_ms);
        if Self::since(now_ms, self.last_broadcast_ms, self.boot_ms) >= t.broadcast_timeout_ms {
            let due = match self.last_poll_ms {
                None => true,
                Some(p) => now_ms.saturating_sub(p) >= t.obd_poll_interval_ms,
            };
            if due {
                self.last_poll_ms = Some(now_ms);
                obd_reading = obd_reading.or(self.obd.on_request(now_ms));
                transmit = Some(obd::request_frame());
            }
        }
        if let Some(temp) = obd_reading.filter(|_| !self.broadcast_fresh(now_ms)) {
            self.accept(now_ms, temp, Source::Obd);
        }
        self.failsafe = Self::since(now_ms, self.last_reading_ms, self.boot_ms) >= t.stale_after_ms
            || self.temperature.is_none();
        let target = match (self.failsafe, self.temperature) {
            (false, Some(temp)) => self.calibration.pulse_us(temp),
            _ => t.park_pulse_us,
        };
        if self.failsafe {
            self.source = Source::None;
        }
        self.pulse_us = self.slew.step(now_ms, target);
        GaugeOutput {
            pulse_us: self.pulse_us,
            failsafe: self.failsafe,
            transmit,
        }
    }

    /// The temperature shown, `None` while in failsafe.
    pub fn temperature(&self) -> Option<MilliCelsius> {
        if self.failsafe {
            None
        } else {
            self.temperature
        }
    }

    pub fn source(&self) -> Source {
        self.source
    }

    /// The ECU whose OBD-II replies the gauge follows, by reply ID.
    pub fn followed_ecu(&self) -> Option<u32> {
        self.obd.followed()
    }

    pub fn pulse_us(&self) -> u16 {
        self.pulse_us
    }

    /// Valid broadcast frames taken since boot, wrapping at 2^32 (the status line's `bc=`).
    pub fn broadcasts(&self) -> u32 {
        self.broadcasts
    }

    pub fn failsafe(&self) -> bool {
        self.failsafe
    }

    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bcast(deg: i32) -> CanFrame {
        let mut data = [0u8; 8];
        OIL_TEMP_SIGNAL
            .insert_raw(&mut data, i64::from(deg + 60))
            .unwrap();
        CanFrame::standard(0x156, &data).unwrap()
    }

    fn gauge() -> Gauge {
        Gauge::new(Calibration::DEFAULT, GaugeTiming::DEFAULT, 0)
    }

    /// Runs the gauge with 1 ms ticks from `from` to `to` (inclusive), returning the last output
    /// and the number of OBD requests sent.
    fn run(g: &mut Gauge, from: u64, to: u64) -> (GaugeOutput, usize) {
        let mut last = g.poll(from);
        let mut requests = usize::from(last.transmit.is_some());
        for ms in from + 1..=to {
            last = g.poll(ms);
            requests += usize::from(last.transmit.is_some());
        }
        (last, requests)
    }

    #[test]
    fn boots_parked_in_failsafe() {
        let mut g = gauge();
        let out = g.poll(0);
        assert_eq!(out.pulse_us, 900);
        assert!(out.failsafe);
    }

    #[test]
    fn broadcast_moves_needle_with_slew_limit() {
        let mut g = gauge();
        g.on_frame(0, &bcast(150));
        let (out, requests) = run(&mut g, 0, 100);
        assert!(!out.failsafe);
        assert_eq!(out.pulse_us, 1100); // 900 + 2 us/ms * 100 ms
        assert_eq!(requests, 0);
        for ms in (100..=600).step_by(100) {
            g.on_frame(ms, &bcast(150));
            run(&mut g, ms, ms + 99);
        }
        assert_eq!(g.pulse_us(), 2000);
        assert_eq!(g.source(), Source::Broadcast);
    }

    #[test]
    fn polls_obd_after_500_ms_without_broadcast_every_100_ms() {
        let mut g = gauge();
        g.on_frame(0, &bcast(90));
        let (_, requests) = run(&mut g, 0, 499);
        assert_eq!(requests, 0);
        let (_, requests) = run(&mut g, 500, 999);
        assert_eq!(requests, 5); // at 500, 600, 700, 800, 900
    }

    #[test]
    fn obd_reply_is_a_reading_and_keeps_the_failsafe_away() {
        let mut g = gauge();
        for ms in (0..3000).step_by(100) {
            let out = g.poll(ms);
            if out.transmit.is_some() {
                let f = CanFrame::standard(0x7E8, &obd::reply_payload(95).unwrap()).unwrap();
                g.on_frame(ms + 5, &f);
            }
        }
        let out = g.poll(3000);
        assert!(!out.failsafe);
        assert_eq!(out.pulse_us, 1500);
        assert_eq!(g.source(), Source::Obd);
        assert_eq!(g.temperature(), Some(MilliCelsius(95_000)));
    }

    fn reply(id: u16, deg: i32) -> CanFrame {
        CanFrame::standard(id, &obd::reply_payload(deg).unwrap()).unwrap()
    }

    #[test]
    fn a_scan_tools_replies_never_take_the_needle_from_a_fresh_broadcast() {
        let mut g = gauge();
        for ms in 0..3000u64 {
            if ms % 100 == 0 {
                g.on_frame(ms, &bcast(90));
            }
            // Another tester's request and the engine's answer to it, every 20 ms.
            if ms % 20 == 7 {
                g.on_frame(ms, &obd::request_frame());
                g.on_frame(ms + 3, &reply(0x7E8, 150));
            }
            assert_eq!(
                g.poll(ms).transmit,
                None,
                "no polling while the broadcast flows"
            );
        }
        assert_eq!(g.source(), Source::Broadcast);
        assert_eq!(g.temperature(), Some(MilliCelsius(90_000)));
        assert_eq!(g.pulse_us(), 1455);
    }

    #[test]
    fn replies_count_only_within_the_window_after_the_gauges_own_request() {
        let mut g = gauge();
        let mut late = 0;
        for ms in 0..3000u64 {
            if g.poll(ms).transmit.is_some() {
                late += 1;
            }
            // The engine answers 60 ms after each request: outside the 50 ms window.
            if ms >= 560 && (ms - 560) % 100 == 0 {
                g.on_frame(ms, &reply(0x7E8, 120));
            }
        }
        assert!(late >= 20);
        assert!(g.failsafe(), "late replies are no readings");
        assert_eq!(g.pulse_us(), 900);
    }

    #[test]
    fn several_ecus_the_needle_follows_the_engine_and_never_flips() {
        let mut g = gauge();
        let mut changes = 0;
        let mut last = None;
        for ms in 0..4000u64 {
            let out = g.poll(ms);
            if out.transmit.is_some() {
                // Replies in an order that changes from request to request.
                let k = (ms / 100) % 3;
                let mut order = [(0x7E9, 60), (0x7E8, 90), (0x7EA, 120)];
                order.rotate_left(k as usize);
                for (i, (id, deg)) in order.iter().enumerate() {
                    g.on_frame(ms + 1 + i as u64, &reply(*id, *deg));
                }
            }
            if g.temperature() != last {
                changes += 1;
                last = g.temperature();
            }
        }
        assert_eq!(g.followed_ecu(), Some(0x7E8));
        assert_eq!(g.temperature(), Some(MilliCelsius(90_000)));
        assert_eq!(changes, 1, "from none to 90 degC, once");
    }

    #[test]
    fn stale_data_parks_after_1000_ms() {
        let mut g = gauge();
        g.on_frame(0, &bcast(95));
        run(&mut g, 0, 999);
        assert!(!g.failsafe());
        let (out, _) = run(&mut g, 1000, 1000);
        assert!(out.failsafe);
        assert_eq!(g.temperature(), None);
        let (out, _) = run(&mut g, 1001, 2000);
        assert_eq!(out.pulse_us, 900);
    }

    #[test]
    fn status_codes_and_foreign_frames_are_not_readings() {
        let mut g = gauge();
        let mut fault = [0u8; 8];
        fault[1] = 255;
        g.on_frame(0, &CanFrame::standard(0x156, &fault).unwrap());
        g.on_frame(0, &CanFrame::standard(0x123, &[1, 2, 3]).unwrap());
        g.on_frame(0, &CanFrame::standard(0x156, &[0, 150]).unwrap()); // wrong DLC
        let out = g.poll(10);
        assert!(out.failsafe);
        assert_eq!(g.temperature(), None);
        assert_eq!(g.broadcasts(), 0, "none of them is a valid broadcast");
        g.on_frame(20, &bcast(90));
        g.on_frame(30, &bcast(91));
        assert_eq!(g.broadcasts(), 2);
    }
}
