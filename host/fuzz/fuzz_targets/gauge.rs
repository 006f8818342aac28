//! The gauge's decision logic driven as the firmware drives it: `Gauge::new` with a
//! calibration read from flash (`Calibration::from_bytes`, the default when that refuses it),
//! then frames (`on_frame`) and 1 ms-or-longer ticks (`poll`) at rising times, any frame a bus
//! can carry. Checked against the contract (firmware/logic/src/lib.rs) at every poll: the needle
//! stays between the park position and the calibration's pulses and moves no faster than the
//! slew limit; the failsafe, the source and the temperature follow the last valid reading; an
//! OBD-II request goes out exactly when 500 ms passed without a broadcast and 100 ms since the
//! last request. Which OBD-II replies are readings follows the arbitration table, restated here
//! as a reference model of its own (not the firmware's `ObdArbiter`): none while a broadcast is
//! fresh, only within 50 ms of the gauge's request, one followed ECU (0x7E8 at once, else the
//! lowest ID of the window when it closes), one reply per request, given up after 3 requests
//! in a row without its answer.
#![no_main]

use arbitrary::Arbitrary;
use gauge_logic::{
    calibration::Calibration,
    frame::CanFrame,
    gauge::{Gauge, GaugeTiming, Source},
    obd,
    signal::{decode_broadcast, BroadcastReading, OIL_TEMP_SIGNAL},
    MilliCelsius,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Event {
    /// Any frame.
    Frame {
        after_ms: u8,
        id: u32,
        extended: bool,
        len: u8,
        data: [u8; 8],
    },
    /// The broadcast frame carrying `raw` (status codes 254, 255 included).
    Broadcast { after_ms: u8, raw: u8 },
    /// A single-frame reply from 0x7E8 + `ecu` with `a` (T = A - 40).
    ObdReply { after_ms: u8, ecu: u8, a: u8 },
    /// Time passes; the firmware polls every millisecond, a loaded board less often.
    Poll { after_ms: u16 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    calibration: [u8; 16],
    boot_ms: u32,
    events: Vec<Event>,
}

/// What the contract says the gauge knows.
struct Model {
    boot_ms: u64,
    last_broadcast_ms: Option<u64>,
    last_reading: Option<(u64, MilliCelsius, Source)>,
    last_request_ms: Option<u64>,
    /// The ECU whose replies count.
    followed: Option<u32>,
    /// The followed ECU answered the latest request.
    answered: bool,
    /// Requests in a row the followed ECU left unanswered.
    unanswered: u8,
    /// Replies heard in the latest request's window while no ECU was followed, in order.
    heard: Vec<(u32, MilliCelsius)>,
}

impl Model {
    fn broadcast_fresh(&self, now: u64, t: &GaugeTiming) -> bool {
        self.last_broadcast_ms
            .is_some_and(|b| now - b < t.broadcast_timeout_ms)
    }

    fn in_window(&self, now: u64, t: &GaugeTiming) -> bool {
        self.last_request_ms
            .is_some_and(|r| now - r <= t.obd_response_window_ms)
    }

    /// An OBD-II reply: the reading it is, if the contract takes it.
    fn reply(&mut self, now: u64, id: u32, temp: MilliCelsius, t: &GaugeTiming) -> bool {
        if self.broadcast_fresh(now, t) || !self.in_window(now, t) {
            return false;
        }
        match self.followed {
            Some(f) => {
                let counts = f == id && !self.answered;
                if counts {
                    self.answered = true;
                    self.unanswered = 0;
                }
                counts
            }
            None if id == 0x7E8 => {
                self.followed = Some(id);
                self.answered = true;
                self.unanswered = 0;
                self.heard.clear();
                true
            }
            None => {
                self.heard.push((id, temp));
                false
            }
        }
    }

    /// The window closed without a followed ECU: the lowest ID heard, its first reply.
    fn close_window(&mut self) -> Option<MilliCelsius> {
        if self.followed.is_some() {
            self.heard.clear();
            return None;
        }
        let lowest = self.heard.iter().map(|&(id, _)| id).min()?;
        let (_, temp) = *self.heard.iter().find(|&&(id, _)| id == lowest)?;
        self.heard.clear();
        self.followed = Some(lowest);
        self.answered = true;
        self.unanswered = 0;
        Some(temp)
    }

    fn request(&mut self, now: u64, t: &GaugeTiming) {
        if self.followed.is_some() && !self.answered {
            self.unanswered += 1;
            if self.unanswered >= t.obd_ecu_lost_after {
                self.followed = None;
                self.unanswered = 0;
            }
        }
        self.answered = false;
        self.heard.clear();
        self.last_request_ms = Some(now);
    }
}

fuzz_target!(|input: Input| {
    let t = GaugeTiming::DEFAULT;
    let cal = Calibration::from_bytes(&input.calibration).unwrap_or(Calibration::DEFAULT);
    assert!(cal.is_valid());
    let lowest = t.park_pulse_us.min(cal.low_pulse_us).min(cal.high_pulse_us);
    let highest = t.park_pulse_us.max(cal.low_pulse_us).max(cal.high_pulse_us);

    let mut now = u64::from(input.boot_ms);
    let mut gauge = Gauge::new(cal, t, now);
    let mut model = Model {
        boot_ms: now,
        last_broadcast_ms: None,
        last_reading: None,
        last_request_ms: None,
        followed: None,
        answered: false,
        unanswered: 0,
        heard: Vec::new(),
    };
    let (mut last_pulse, mut last_poll_ms) = (t.park_pulse_us, now);

    for event in input.events {
        let frame = match event {
            Event::Frame {
                after_ms,
                id,
                extended,
                len,
                data,
            } => {
                now += u64::from(after_ms);
                let id = id & if extended { 0x1FFF_FFFF } else { 0x7FF };
                Some(CanFrame {
                    id,
                    extended,
                    len: len % 16,
                    data,
                })
            }
            Event::Broadcast { after_ms, raw } => {
                now += u64::from(after_ms);
                let mut data = [0u8; 8];
                OIL_TEMP_SIGNAL
                    .insert_raw(&mut data, i64::from(raw))
                    .expect("8 bits fit");
                CanFrame::standard(0x156, &data)
            }
            Event::ObdReply { after_ms, ecu, a } => {
                now += u64::from(after_ms);
                let reply = obd::reply_payload(i32::from(a) - 40).expect("A is a byte");
                CanFrame::standard(0x7E8 + u16::from(ecu % 8), &reply)
            }
            Event::Poll { after_ms } => {
                now += u64::from(after_ms.max(1));
                None
            }
        };
        if let Some(frame) = frame {
            gauge.on_frame(now, &frame);
            if let BroadcastReading::Temperature(temp) = decode_broadcast(&OIL_TEMP_SIGNAL, &frame)
            {
                model.last_broadcast_ms = Some(now);
                model.last_reading = Some((now, temp, Source::Broadcast));
            } else if let Some((id, temp)) = obd::parse_reply_from(&frame) {
                if model.reply(now, id, temp, &t) {
                    model.last_reading = Some((now, temp, Source::Obd));
                }
            }
            continue;
        }

        // The window closes (on a later tick, or at the next request) before the poll decides.
        let quiet_ms = now - model.last_broadcast_ms.unwrap_or(model.boot_ms);
        let since_request = model.last_request_ms.map(|r| now - r);
        let due = quiet_ms >= t.broadcast_timeout_ms
            && since_request.is_none_or(|s| s >= t.obd_poll_interval_ms);
        if !model.in_window(now, &t) || due {
            if let Some(temp) = model.close_window() {
                if !model.broadcast_fresh(now, &t) {
                    model.last_reading = Some((now, temp, Source::Obd));
                }
            }
        }
        if due {
            model.request(now, &t);
        }

        let out = gauge.poll(now);

        // The needle: within the positions it can be sent to, at the slew limit at most
        // (2000 us/s is 2 us per ms; +1 for rounding to whole microseconds).
        assert!(
            (lowest..=highest).contains(&out.pulse_us),
            "pulse {} us outside {lowest}..={highest} with {cal:?}",
            out.pulse_us
        );
        let max_step = u64::from(t.slew_us_per_s) * (now - last_poll_ms) / 1000 + 1;
        assert!(
            u64::from(out.pulse_us.abs_diff(last_pulse)) <= max_step,
            "{last_pulse} -> {} us in {} ms",
            out.pulse_us,
            now - last_poll_ms
        );
        assert_eq!(out.pulse_us, gauge.pulse_us());
        (last_pulse, last_poll_ms) = (out.pulse_us, now);

        // The failsafe: no valid reading for 1000 ms (also from boot).
        let fresh = model
            .last_reading
            .filter(|&(at, _, _)| now - at < t.stale_after_ms);
        assert_eq!(out.failsafe, fresh.is_none(), "at {now} ms");
        assert_eq!(gauge.failsafe(), out.failsafe);
        match fresh {
            Some((_, temp, source)) => {
                assert_eq!(gauge.temperature(), Some(temp));
                assert_eq!(gauge.source(), source);
            }
            None => {
                assert_eq!(gauge.temperature(), None);
                assert_eq!(gauge.source(), Source::None);
            }
        }

        // OBD-II polling.
        assert_eq!(gauge.followed_ecu(), model.followed, "after the poll at {now} ms");
        assert_eq!(
            out.transmit.is_some(),
            due,
            "at {now} ms: {quiet_ms} ms without broadcast, {since_request:?} ms since the last request"
        );
        if let Some(request) = out.transmit {
            assert!(obd::is_request(&request));
            assert_eq!(request, obd::request_frame());
        }
    }
});
