//! The rig's stand-in for the car: sends the oil-temperature broadcast, answers the gauge's
//! OBD-II requests, plays the rest of a car's bus (another tester, further ECUs) and injects bad
//! traffic, through whichever CAN adapter the rig has.

mod bus_load;
mod car_traffic;

pub use bus_load::{BusLoad, BUS_BIT_RATE, LOAD_IDS};
pub use car_traffic::{OtherEcu, ReplyTiming, Tester};

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime},
};

use gauge_logic::{frame::CanFrame, obd};

use crate::{
    dbc::OilTempEncoder,
    scenario::{Fault, TempSource},
};
use rig_instruments::CanAdapter;

/// A value faults carry so that accepting one would visibly move the needle (150 degC -> full scale).
const TEMPTING_CELSIUS: i32 = 150;
const ECU_REPLY_ID: u16 = car_traffic::ENGINE_REPLY_11BIT;

#[derive(Clone, Debug)]
struct ValidTraffic {
    source: TempSource,
    celsius: f64,
    frame: Option<CanFrame>,
    period: Duration,
    /// When the engine answers an OBD-II request.
    reply: ReplyTiming,
}

#[derive(Clone, Debug)]
struct FaultTraffic {
    fault: Fault,
    period: Duration,
    keep_valid: bool,
}

/// Which traffic a frame the rig sends belongs to (each is counted apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The set-point: the engine's replies to the gauge, and broadcast frames.
    Valid,
    Broadcast,
    Fault,
    Tester,
    OtherEcu,
    Load,
}

/// A frame due at a time (a delayed reply).
#[derive(Clone, Copy, Debug)]
struct Scheduled {
    at: Instant,
    frame: CanFrame,
    kind: Kind,
}

/// Frames the rig sent, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FramesSent {
    pub valid: u64,
    pub faults: u64,
    pub tester: u64,
    pub other_ecus: u64,
    /// Bus-load frames, and the bits they took on the wire.
    pub load: u64,
    pub load_bits: u64,
}

#[derive(Default)]
struct State {
    valid: Option<ValidTraffic>,
    fault: Option<FaultTraffic>,
    other_ecus: Vec<OtherEcu>,
    tester: Option<Tester>,
    next_tester: Option<Instant>,
    load: Option<BusLoad>,
    /// When each broadcast frame went out, newest last (bounded).
    broadcasts_sent: VecDeque<Instant>,
    /// The adapter's last word on the bus (slcan `F`), asked for once a second.
    adapter_status: Option<rig_instruments::AdapterBusStatus>,
    scheduled: Vec<Scheduled>,
    next_broadcast: Option<Instant>,
    next_fault: Option<Instant>,
    /// A new set-point waits for its first frame on the bus.
    setpoint_pending: bool,
    setpoint_sent_at: Option<Instant>,
    last_valid_sent_at: Option<Instant>,
    obd_requests: Vec<Instant>,
    sent: FramesSent,
    error: Option<String>,
    /// Every frame the adapter sent or received, newest last (bounded): a failed scenario's
    /// CAN log (`evidence`).
    traffic: VecDeque<Traffic>,
}

/// One frame on the bus as the rig's adapter saw it, sent or received.
#[derive(Clone, Copy, Debug)]
pub struct Traffic {
    pub at: SystemTime,
    pub frame: CanFrame,
}

/// How often the adapter is asked for its view of the bus.
const ADAPTER_STATUS_EVERY: Duration = Duration::from_secs(1);

/// Broadcast send times kept.
const BROADCASTS_KEPT: usize = 12_000;

/// Frames kept: about 4 minutes of the 100 Hz broadcast with the gauge's requests.
const TRAFFIC_KEPT: usize = 50_000;

fn record(s: &mut State, frame: CanFrame) {
    if s.traffic.len() >= TRAFFIC_KEPT {
        s.traffic.pop_front();
    }
    s.traffic.push_back(Traffic {
        at: SystemTime::now(),
        frame,
    });
}

/// Handle to the ECU thread.
pub struct Ecu {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    encoder: OilTempEncoder,
    adapter_name: String,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ecu {
    pub fn start(adapter: Box<dyn CanAdapter>, encoder: OilTempEncoder) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let adapter_name = adapter.describe();
        let (s, st, enc) = (state.clone(), stop.clone(), encoder.clone());
        let thread = std::thread::Builder::new()
            .name("ecu".into())
            .spawn(move || run(adapter, &s, &st, &enc))?;
        Ok(Self {
            state,
            stop,
            thread: Some(thread),
            encoder,
            adapter_name,
        })
    }

    pub fn adapter_name(&self) -> &str {
        &self.adapter_name
    }

    /// Starts sending `celsius`; the first frame goes out at once (broadcast) or at the next request (OBD-II).
    pub fn set_temperature(
        &self,
        celsius: f64,
        source: TempSource,
        period: Duration,
        reply: ReplyTiming,
    ) -> Result<(), String> {
        let frame = match source {
            TempSource::Broadcast => Some(self.encoder.encode(celsius)?),
            TempSource::Obd => {
                obd::reply_payload(celsius.round() as i32)
                    .ok_or_else(|| format!("{celsius} degC is outside OBD-II's -40..215"))?;
                None
            }
        };
        let mut s = lock(&self.state);
        s.valid = Some(ValidTraffic {
            source,
            celsius,
            frame,
            period,
            reply,
        });
        s.next_broadcast = Some(Instant::now());
        s.setpoint_pending = true;
        s.setpoint_sent_at = None;
        Ok(())
    }

    pub fn stop_sending(&self) {
        let mut s = lock(&self.state);
        s.valid = None;
        s.fault = None;
        s.other_ecus.clear();
        s.tester = None;
        s.load = None;
        s.scheduled.clear();
    }

    /// Fills `percent` of the bus with other ECUs' frames from now on; 0 ends the load.
    pub fn set_bus_load(&self, percent: u32) {
        lock(&self.state).load = (percent > 0).then(|| BusLoad::new(percent, Instant::now()));
    }

    /// What the adapter last said of the bus (adapters that can tell: slcan).
    pub fn adapter_status(&self) -> Option<rig_instruments::AdapterBusStatus> {
        lock(&self.state).adapter_status
    }

    /// The bus load the rig is asked to keep up, percent (0: none).
    pub fn bus_load_percent(&self) -> u32 {
        lock(&self.state).load.as_ref().map_or(0, |l| l.percent)
    }

    /// Broadcast frames sent within `from..=to` (as far back as the log goes: about two
    /// minutes of a 100 Hz broadcast).
    pub fn broadcasts_sent_between(&self, from: Instant, to: Instant) -> u64 {
        lock(&self.state)
            .broadcasts_sent
            .iter()
            .filter(|t| (from..=to).contains(*t))
            .count() as u64
    }

    /// Another ECU answers each of the gauge's oil-temperature requests from now on (replacing
    /// one with the same ID).
    pub fn add_ecu(&self, ecu: OtherEcu) -> Result<(), String> {
        car_traffic::other_ecu_reply(&ecu).ok_or_else(|| {
            format!(
                "ECU {:#x}: {} degC is outside OBD-II's -40..215",
                ecu.id, ecu.celsius
            )
        })?;
        let mut s = lock(&self.state);
        s.other_ecus.retain(|e| e.id != ecu.id);
        s.other_ecus.push(ecu);
        Ok(())
    }

    /// A tester polls from now on (replacing any earlier one); its first request goes out at once.
    pub fn start_tester(&self, tester: Tester) -> Result<(), String> {
        tester
            .request(0)
            .ok_or("a tester needs at least one PID to poll")?;
        let mut s = lock(&self.state);
        s.tester = Some(tester);
        s.next_tester = Some(Instant::now());
        Ok(())
    }

    pub fn inject(&self, fault: Fault, rate_hz: u32, keep_valid: bool) {
        let mut s = lock(&self.state);
        s.fault = Some(FaultTraffic {
            fault,
            period: Duration::from_secs_f64(1.0 / f64::from(rate_hz.max(1))),
            keep_valid,
        });
        s.next_fault = Some(Instant::now());
    }

    pub fn clear_faults(&self) {
        lock(&self.state).fault = None;
    }

    /// When the current set-point's first frame went out.
    pub fn setpoint_sent_at(&self) -> Option<Instant> {
        lock(&self.state).setpoint_sent_at
    }

    pub fn last_valid_sent_at(&self) -> Option<Instant> {
        lock(&self.state).last_valid_sent_at
    }

    /// OBD-II requests seen since `since`.
    pub fn obd_requests_since(&self, since: Instant) -> Vec<Instant> {
        lock(&self.state)
            .obd_requests
            .iter()
            .copied()
            .filter(|t| *t >= since)
            .collect()
    }

    pub fn frames_sent(&self) -> FramesSent {
        lock(&self.state).sent
    }

    /// The frames sent and received since `since` (as far back as the log goes).
    pub fn traffic_since(&self, since: SystemTime) -> Vec<Traffic> {
        lock(&self.state)
            .traffic
            .iter()
            .filter(|t| t.at >= since)
            .copied()
            .collect()
    }

    /// An adapter error since the last call, if any.
    pub fn take_error(&self) -> Option<String> {
        lock(&self.state).error.take()
    }
}

impl Drop for Ecu {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Small deterministic generator for garbage frames (reproducible runs).
struct XorShift(u32);

impl XorShift {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

fn fault_frame(fault: Fault, n: u64, rng: &mut XorShift, enc: &OilTempEncoder) -> CanFrame {
    let tempting = enc
        .encode(f64::from(TEMPTING_CELSIUS))
        .unwrap_or_else(|_| enc.frame_with_raw(0));
    let bcast_id = enc.layout.frame_id as u16;
    let a = (TEMPTING_CELSIUS + 40) as u8;
    let std = |id: u16, data: &[u8]| CanFrame::standard(id, data).unwrap_or(tempting);
    match fault {
        Fault::Garbage => {
            let mut id = (rng.next() & 0x7FF) as u16;
            let len = (rng.next() % 9) as usize;
            if obd::RESPONSE_IDS.contains(&u32::from(id))
                || (id == bcast_id && len == usize::from(enc.layout.frame_len))
            {
                id = 0x100;
            }
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            std(id, &data)
        }
        Fault::WrongDlc => {
            let len = (n % u64::from(enc.layout.frame_len)) as usize; // 0..DLC-1, never the DBC's DLC
            std(bcast_id, &tempting.data[..len])
        }
        Fault::StatusCode => {
            let statuses = enc.layout.status_raw_values;
            let raw = statuses
                .get((n as usize) % statuses.len().max(1))
                .copied()
                .unwrap_or(255);
            enc.frame_with_raw(raw)
        }
        Fault::ForeignIds => {
            let ids = [
                bcast_id.wrapping_sub(1),
                bcast_id + 1,
                0x7E0,
                obd::REQUEST_ID,
                0x7F0,
            ];
            std(
                ids[(n as usize) % ids.len()],
                &tempting.data[..usize::from(tempting.len)],
            )
        }
        Fault::MalformedObd => {
            let bodies: [[u8; 8]; 5] = [
                [0x10, 0x41, 0x5C, a, 0, 0, 0, 0], // first frame of a multi-frame
                [0x03, 0x41, 0x0C, a, 0, 0, 0, 0], // another PID
                [0x03, 0x7F, 0x01, 0x12, 0, 0, 0, 0], // negative response
                [0x02, 0x41, 0x5C, a, 0, 0, 0, 0], // length too short for the data
                [0x03, 0x42, 0x5C, a, 0, 0, 0, 0], // mode 02 reply
            ];
            let b = bodies[(n as usize) % bodies.len()];
            if n % 6 == 5 {
                std(ECU_REPLY_ID, &b[..3]) // truncated
            } else {
                std(ECU_REPLY_ID, &b)
            }
        }
    }
}

fn run(
    mut adapter: Box<dyn CanAdapter>,
    state: &Mutex<State>,
    stop: &AtomicBool,
    enc: &OilTempEncoder,
) {
    let mut rng = XorShift(0x1234_5678);
    let mut timing_rng = XorShift(0x9E37_79B9);
    let mut fault_n = 0u64;
    let mut tester_n = 0u64;
    let mut next_status_query = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_status_query {
            next_status_query = Instant::now() + ADAPTER_STATUS_EVERY;
            match adapter.bus_status() {
                Ok(status) => lock(state).adapter_status = status,
                Err(e) => lock(state).error = Some(e.to_string()),
            }
        }
        let received = match adapter.recv(Duration::from_millis(2)) {
            Ok(f) => f,
            Err(e) => {
                lock(state).error = Some(e.to_string());
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let now = Instant::now();
        let mut to_send: Vec<(CanFrame, Kind)> = Vec::new();
        {
            let mut s = lock(state);
            let valid_allowed = s.fault.as_ref().is_none_or(|f| f.keep_valid);
            if let Some(req) = received {
                record(&mut s, req);
                if obd::is_request(&req) {
                    s.obd_requests.push(now);
                    if s.obd_requests.len() > 10_000 {
                        s.obd_requests.drain(..5_000);
                    }
                    let mut replies: Vec<(CanFrame, ReplyTiming, Kind)> = Vec::new();
                    if let Some(v) = s
                        .valid
                        .as_ref()
                        .filter(|v| v.source == TempSource::Obd && valid_allowed)
                    {
                        if let Some(p) = obd::reply_payload(v.celsius.round() as i32) {
                            if let Some(f) = CanFrame::standard(ECU_REPLY_ID, &p) {
                                replies.push((f, v.reply, Kind::Valid));
                            }
                        }
                    }
                    for ecu in &s.other_ecus {
                        if let Some(f) = car_traffic::other_ecu_reply(ecu) {
                            replies.push((f, ecu.timing, Kind::OtherEcu));
                        }
                    }
                    for (frame, timing, kind) in replies {
                        let delay = timing.draw(timing_rng.next());
                        if delay.is_zero() {
                            to_send.push((frame, kind));
                        } else {
                            s.scheduled.push(Scheduled {
                                at: now + delay,
                                frame,
                                kind,
                            });
                        }
                    }
                }
            }
            if let Some(t) = s.tester.clone() {
                if s.next_tester.is_none_or(|at| now >= at) {
                    if let Some(req) = t.request(tester_n) {
                        to_send.push((req, Kind::Tester));
                        if let Some(reply) = t.engine_reply(req.data[2]) {
                            s.scheduled.push(Scheduled {
                                at: now + t.reply_delay,
                                frame: reply,
                                kind: Kind::Tester,
                            });
                        }
                    }
                    tester_n += 1;
                    s.next_tester = Some(now + t.period);
                }
            }
            // Delayed replies that are due, oldest first.
            s.scheduled.sort_by_key(|d| d.at);
            let due = s.scheduled.partition_point(|d| d.at <= now);
            to_send.extend(s.scheduled.drain(..due).map(|d| (d.frame, d.kind)));
            if let Some(v) = s
                .valid
                .clone()
                .filter(|v| v.source == TempSource::Broadcast && valid_allowed)
            {
                if s.next_broadcast.is_none_or(|t| now >= t) {
                    if let Some(f) = v.frame {
                        to_send.push((f, Kind::Broadcast));
                    }
                    s.next_broadcast = Some(now + v.period);
                }
            }
            if let Some(load) = s.load.as_mut() {
                to_send.extend(load.due(now).into_iter().map(|f| (f, Kind::Load)));
            }
            if let Some(f) = s.fault.clone() {
                if s.next_fault.is_none_or(|t| now >= t) {
                    to_send.push((fault_frame(f.fault, fault_n, &mut rng, enc), Kind::Fault));
                    fault_n += 1;
                    s.next_fault = Some(now + f.period);
                }
            }
        }
        for (frame, kind) in to_send {
            let result = adapter.send(&frame);
            let mut s = lock(state);
            match result {
                Ok(()) => {
                    record(&mut s, frame);
                    let t = Instant::now();
                    match kind {
                        Kind::Valid | Kind::Broadcast => {
                            s.sent.valid += 1;
                            s.last_valid_sent_at = Some(t);
                            if kind == Kind::Broadcast {
                                if s.broadcasts_sent.len() >= BROADCASTS_KEPT {
                                    s.broadcasts_sent.pop_front();
                                }
                                s.broadcasts_sent.push_back(t);
                            }
                            if s.setpoint_pending {
                                s.setpoint_pending = false;
                                s.setpoint_sent_at = Some(t);
                            }
                        }
                        Kind::Fault => s.sent.faults += 1,
                        Kind::Tester => s.sent.tester += 1,
                        Kind::OtherEcu => s.sent.other_ecus += 1,
                        Kind::Load => {
                            s.sent.load += 1;
                            s.sent.load_bits += u64::from(frame.bits_on_wire());
                        }
                    }
                }
                Err(e) => s.error = Some(e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gauge_logic::{
        signal::{decode_broadcast, BroadcastReading},
        MilliCelsius,
    };

    #[test]
    fn fault_frames_are_never_valid_readings() {
        let enc = OilTempEncoder::load(&crate::dbc::default_path()).unwrap();
        let mut rng = XorShift(1);
        for fault in [
            Fault::Garbage,
            Fault::WrongDlc,
            Fault::StatusCode,
            Fault::ForeignIds,
            Fault::MalformedObd,
        ] {
            for n in 0..200 {
                let f = fault_frame(fault, n, &mut rng, &enc);
                let bcast = decode_broadcast(&enc.layout, &f);
                assert!(
                    !matches!(bcast, BroadcastReading::Temperature(_)),
                    "{fault:?} {f:?}"
                );
                assert_eq!(obd::parse_reply(&f), None, "{fault:?} {f:?}");
            }
        }
        // ...while the tempting value itself would be accepted.
        let f = enc.encode(150.0).unwrap();
        assert_eq!(
            decode_broadcast(&enc.layout, &f),
            BroadcastReading::Temperature(MilliCelsius(150_000))
        );
    }
}
