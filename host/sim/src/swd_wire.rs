//! The SWD wire between a debug probe and the simulated target: what any probe's firmware
//! drives, whatever its host protocol (probe-rs's register-level [`super::swd_probe`], the
//! ST-LINK's USB commands in `rig-usb`).
//!
//! Modelled where it matters to a bench run: NRST, the line reset, the target voltage the probe
//! measures (0 V when the bench has cut the board's power), and the time each transfer takes
//! at the SWD clock (46 clock cycles per transfer plus 8 idle: 13.5 us at 4 MHz), charged as
//! real time so that a halt lasts as long as the transfers that make it.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::{
    shared::{NrstDriver, Shared},
    target::{DapAck, DapPort},
};

/// The SWD clock when none is configured (kHz), an ST-LINK V3's default.
pub const DEFAULT_SPEED_KHZ: u32 = 4_000;
/// Clock cycles of one SWD transfer: 8 request, 1 turnaround, 3 ack, 1 turnaround, 32 data +
/// parity, then 8 idle cycles.
const CYCLES_PER_TRANSFER: u64 = 46 + 8;
/// The wire time owed is slept off in steps of this much.
const SLEEP_STEP: Duration = Duration::from_micros(500);
/// The target's VDD as a probe measures it while powered (the NUCLEO's 3.3 V rail).
pub const POWERED_VOLTS: f32 = 3.3;

/// Counters an attach or a download can be measured by.
#[derive(Debug, Default)]
pub struct SwdCounters {
    pub transfers: AtomicU64,
    pub wire_ns: AtomicU64,
}

pub struct SwdWire {
    shared: Arc<Shared>,
    pub speed_khz: u32,
    counters: Arc<SwdCounters>,
    /// Wire time not slept yet.
    owed: Duration,
    /// The probe drives NRST low.
    nrst_held: bool,
}

impl SwdWire {
    pub fn new(shared: Arc<Shared>, counters: Arc<SwdCounters>) -> Self {
        Self {
            shared,
            speed_khz: DEFAULT_SPEED_KHZ,
            counters,
            owed: Duration::ZERO,
            nrst_held: false,
        }
    }

    fn charge(&mut self) {
        let ns = CYCLES_PER_TRANSFER * 1_000_000 / u64::from(self.speed_khz.max(1));
        self.counters.transfers.fetch_add(1, Ordering::Relaxed);
        self.counters.wire_ns.fetch_add(ns, Ordering::Relaxed);
        self.owed += Duration::from_nanos(ns);
        if self.owed >= SLEEP_STEP {
            let start = Instant::now();
            std::thread::sleep(self.owed);
            self.owed = self.owed.saturating_sub(start.elapsed());
        }
    }

    /// One transfer: a read (`value` None) or a write. An unpowered target gives no ACK.
    pub fn transfer(&mut self, port: DapPort, addr: u8, value: Option<u32>) -> Result<u32, DapAck> {
        self.charge();
        let now = self.shared.now_us();
        let mut b = self.shared.board();
        if !b.powered {
            return Err(DapAck::NoAck);
        }
        match value {
            None => b.target.dap_read(port, addr, now),
            Some(v) => b.target.dap_write(port, addr, v, now).map(|()| 0),
        }
    }

    /// A line reset (50 or more ones on SWDIO) and the JTAG-to-SWD switch.
    pub fn line_reset(&mut self) {
        let mut b = self.shared.board();
        if b.powered {
            b.target.swd_line_reset();
        }
    }

    pub fn set_nrst(&mut self, held: bool) {
        self.nrst_held = held;
        self.shared.drive_nrst(NrstDriver::Probe, held);
    }

    pub fn nrst_held(&self) -> bool {
        self.nrst_held
    }

    /// The target's VDD as the probe's own supply measures it.
    pub fn target_volts(&self) -> f32 {
        if self.shared.board().powered {
            POWERED_VOLTS
        } else {
            0.0
        }
    }
}

impl Drop for SwdWire {
    /// A probe that is closed stops driving its pins: NRST goes back up (as an ST-LINK does
    /// when it leaves debug mode, and any probe when its USB handle is closed).
    fn drop(&mut self) {
        if self.nrst_held {
            self.set_nrst(false);
        }
    }
}
