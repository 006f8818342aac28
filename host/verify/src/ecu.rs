//! The rig's stand-in for the car: sends the oil-temperature broadcast, answers the gauge's
//! OBD-II requests and injects bad traffic, through whichever CAN adapter the rig has.

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
const ECU_REPLY_ID: u16 = 0x7E8;

#[derive(Clone, Debug)]
struct ValidTraffic {
    source: TempSource,
    celsius: f64,
    frame: Option<CanFrame>,
    period: Duration,
}

#[derive(Clone, Debug)]
struct FaultTraffic {
    fault: Fault,
    period: Duration,
    keep_valid: bool,
}

#[derive(Default)]
struct State {
    valid: Option<ValidTraffic>,
    fault: Option<FaultTraffic>,
    next_broadcast: Option<Instant>,
    next_fault: Option<Instant>,
    /// A new set-point waits for its first frame on the bus.
    setpoint_pending: bool,
    setpoint_sent_at: Option<Instant>,
    last_valid_sent_at: Option<Instant>,
    obd_requests: Vec<Instant>,
    frames_sent: u64,
    fault_frames_sent: u64,
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

    pub fn frames_sent(&self) -> (u64, u64) {
        let s = lock(&self.state);
        (s.frames_sent, s.fault_frames_sent)
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
    let mut fault_n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let received = match adapter.recv(Duration::from_millis(2)) {
            Ok(f) => f,
            Err(e) => {
                lock(state).error = Some(e.to_string());
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let now = Instant::now();
        let mut to_send: Vec<(CanFrame, bool)> = Vec::new();
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
                    if let Some(v) = s
                        .valid
                        .as_ref()
                        .filter(|v| v.source == TempSource::Obd && valid_allowed)
                    {
                        if let Some(p) = obd::reply_payload(v.celsius.round() as i32) {
                            if let Some(f) = CanFrame::standard(ECU_REPLY_ID, &p) {
                                to_send.push((f, true));
                            }
                        }
                    }
                }
            }
            if let Some(v) = s
                .valid
                .clone()
                .filter(|v| v.source == TempSource::Broadcast && valid_allowed)
            {
                if s.next_broadcast.is_none_or(|t| now >= t) {
                    if let Some(f) = v.frame {
                        to_send.push((f, true));
                    }
                    s.next_broadcast = Some(now + v.period);
                }
            }
            if let Some(f) = s.fault.clone() {
                if s.next_fault.is_none_or(|t| now >= t) {
                    to_send.push((fault_frame(f.fault, fault_n, &mut rng, enc), false));
                    fault_n += 1;
                    s.next_fault = Some(now + f.period);
                }
            }
        }
        for (frame, valid) in to_send {
            let result = adapter.send(&frame);
            let mut s = lock(state);
            match result {
                Ok(()) => {
                    record(&mut s, frame);
                    let t = Instant::now();
                    if valid {
                        s.frames_sent += 1;
                        s.last_valid_sent_at = Some(t);
                        if s.setpoint_pending {
                            s.setpoint_pending = false;
                            s.setpoint_sent_at = Some(t);
                        }
                    } else {
                        s.fault_frames_sent += 1;
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
