//! The simulated bench's state, shared between its threads (board, instrument simulators)
//! and the in-process probe: the board slot (target, supply, CAN receive queue), the PWM
//! timeline the analyzer samples, the board's transmitted frames, the relay's log.

use std::{
    collections::VecDeque,
    sync::{atomic::AtomicBool, Mutex, MutexGuard},
    time::Instant,
};

use gauge_logic::frame::CanFrame;

use crate::{pwm::PwmTimeline, target::SimulatedTarget};

/// State shared between the bench's threads and the in-process probe.
pub struct Shared {
    epoch: Instant,
    pub(crate) stop: AtomicBool,
    board: Mutex<BoardSlot>,
    pub(crate) pwm: Mutex<PwmTimeline>,
    /// Frames the board transmitted, for the bus's adapter side: the slcan simulator, or the
    /// SocketCAN bridge when the bench has one (exactly one of them runs and drains this).
    pub(crate) board_tx: Mutex<VecDeque<CanFrame>>,
    /// Every 4-byte command the relay received, and whether it was accepted.
    pub relay_log: Mutex<Vec<([u8; 4], bool)>>,
}

pub struct BoardSlot {
    pub target: Box<dyn SimulatedTarget>,
    pub powered: bool,
    pub can_rx: VecDeque<CanFrame>,
    /// The supply was switched on and its voltage is still rising: VDD is valid at this
    /// bench time (us).
    pub rising_until: Option<u64>,
    /// How long the supply takes from the on-command to a valid VDD (a lab supply's soft
    /// start, a hub port's VBUS ramp); 0: at once.
    pub supply_rise_us: u64,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicked simulator thread must not take the rest of the bench down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// A bench around `target`, unpowered, its clock starting now.
    pub fn new(target: Box<dyn SimulatedTarget>) -> Self {
        Self {
            epoch: Instant::now(),
            stop: AtomicBool::new(false),
            board: Mutex::new(BoardSlot {
                target,
                powered: false,
                can_rx: VecDeque::new(),
                rising_until: None,
                supply_rise_us: 0,
            }),
            pwm: Mutex::new(PwmTimeline::default()),
            board_tx: Mutex::new(VecDeque::new()),
            relay_log: Mutex::new(Vec::new()),
        }
    }

    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    pub fn board(&self) -> MutexGuard<'_, BoardSlot> {
        lock(&self.board)
    }

    /// The switch's command: on (VDD valid after the supply's rise time) or off (at once).
    pub fn set_power(&self, on: bool) {
        let now = self.now_us();
        let mut b = self.board();
        if on && !b.powered {
            if b.supply_rise_us > 0 {
                if b.rising_until.is_none() {
                    b.rising_until = Some(now + b.supply_rise_us);
                }
                return;
            }
            Self::power_on(&mut b, now);
        } else if !on {
            b.rising_until = None;
            if b.powered {
                b.powered = false;
                b.target.power_off();
            }
        }
    }

    /// A rising supply that has reached a valid VDD by `now` powers the board.
    pub(crate) fn supply_settles(b: &mut BoardSlot, now: u64) {
        if b.rising_until.is_some_and(|t| now >= t) {
            b.rising_until = None;
            Self::power_on(b, now);
        }
    }

    fn power_on(b: &mut BoardSlot, now: u64) {
        b.powered = true;
        b.can_rx.clear();
        b.target.power_on(now);
    }

    /// A frame on the bus from the adapter's side.
    pub fn deliver_to_board(&self, frame: CanFrame) {
        let mut b = self.board();
        if b.powered && b.can_rx.len() < 64 {
            b.can_rx.push_back(frame);
        }
    }
}
