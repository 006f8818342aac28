//! An in-process debug probe for probe-rs: a register-level SWD probe (probe-rs's
//! [`RawDapAccess`], the level a CMSIS-DAP probe works at) wired to the simulated target's
//! SW-DP, so that unmodified probe-rs - its ARM debug interface, its STM32H7 sequences, its
//! flash loader - drives the emulated board through the rig's real `ProbeRsProbe` driver.
//!
//! What the wire does is modelled where it matters to a bench run: NRST (probe-rs's
//! `swj_pins`), the line reset (`swj_sequence`), the target voltage the probe measures
//! (0 V when the bench has cut the board's power), and the time each transfer takes on the
//! wire at the probe's SWD clock (46 clock cycles per transfer plus 8 idle: 13.5 us at 4 MHz),
//! charged as real time so that a halt lasts as long as the transfers that make it. The USB
//! latency of a real probe's command batching is not modelled.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use probe_rs::{
    architecture::arm::{
        sequences::ArmDebugSequence, ArmCommunicationInterface, ArmDebugInterface, ArmError,
        DapError, DapProbe, RawDapAccess, RegisterAddress,
    },
    probe::{DebugProbe, DebugProbeError, Probe, WireProtocol},
    CoreStatus,
};

use crate::{
    shared::Shared,
    target::{DapAck, DapPort},
};

/// The SWD clock when none is configured (kHz), an ST-LINK V3's default.
pub const DEFAULT_SPEED_KHZ: u32 = 4_000;
/// Clock cycles of one SWD transfer: 8 request, 1 turnaround, 3 ack, 1 turnaround, 32 data +
/// parity, then 8 idle cycles probe-rs asks for.
const CYCLES_PER_TRANSFER: u64 = 46 + 8;
/// The wire time owed is slept off in steps of this much.
const SLEEP_STEP: Duration = Duration::from_micros(500);

/// Counters an attach or a download can be measured by.
#[derive(Debug, Default)]
pub struct SwdCounters {
    pub transfers: AtomicU64,
    pub wire_ns: AtomicU64,
}

pub struct SwdProbe {
    shared: Arc<Shared>,
    speed_khz: u32,
    counters: Arc<SwdCounters>,
    /// Wire time not slept yet.
    owed: Duration,
    /// The probe drives NRST low.
    nrst_held: bool,
}

impl std::fmt::Debug for SwdProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwdProbe")
            .field("speed_khz", &self.speed_khz)
            .finish()
    }
}

/// The name the probe reports.
pub const SWD_PROBE_NAME: &str = "in-process SWD probe (emulated board)";

impl SwdProbe {
    pub fn new(shared: Arc<Shared>, counters: Arc<SwdCounters>) -> Self {
        Self {
            shared,
            speed_khz: DEFAULT_SPEED_KHZ,
            counters,
            owed: Duration::ZERO,
            nrst_held: false,
        }
    }

    /// A probe-rs [`Probe`] around a new one.
    pub fn probe(shared: Arc<Shared>, counters: Arc<SwdCounters>) -> Probe {
        Probe::from_specific_probe(Box::new(Self::new(shared, counters)))
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

    fn set_nrst(&mut self, held: bool) {
        self.nrst_held = held;
        let now = self.shared.now_us();
        self.shared.board().target.set_reset_held(held, now);
    }
}

fn port_of(address: RegisterAddress) -> DapPort {
    if address.is_ap() {
        DapPort::Ap
    } else {
        DapPort::Dp
    }
}

fn arm_error(ack: DapAck) -> ArmError {
    match ack {
        DapAck::NoAck => ArmError::Dap(DapError::NoAcknowledge),
        DapAck::Fault => ArmError::Dap(DapError::FaultResponse),
    }
}

impl SwdProbe {
    /// One transfer on the wire: a read (`value` None) or a write. An unpowered target gives
    /// no ACK.
    fn transfer(&mut self, address: RegisterAddress, value: Option<u32>) -> Result<u32, ArmError> {
        self.charge();
        let now = self.shared.now_us();
        let mut b = self.shared.board();
        if !b.powered {
            return Err(arm_error(DapAck::NoAck));
        }
        let (port, addr) = (port_of(address), address.lsb());
        match value {
            None => b.target.dap_read(port, addr, now),
            Some(v) => b.target.dap_write(port, addr, v, now).map(|()| 0),
        }
        .map_err(arm_error)
    }
}

impl RawDapAccess for SwdProbe {
    fn raw_read_register(&mut self, address: RegisterAddress) -> Result<u32, ArmError> {
        self.transfer(address, None)
    }

    fn raw_write_register(&mut self, address: RegisterAddress, value: u32) -> Result<(), ArmError> {
        self.transfer(address, Some(value)).map(|_| ())
    }

    fn jtag_sequence(&mut self, _cycles: u8, _tms: bool, _tdi: u64) -> Result<(), DebugProbeError> {
        Err(DebugProbeError::UnsupportedProtocol(WireProtocol::Jtag))
    }

    fn swj_sequence(&mut self, bit_len: u8, bits: u64) -> Result<(), DebugProbeError> {
        // 50 or more ones in a row: a line reset.
        let mut ones = 0;
        let mut reset = false;
        for i in 0..u32::from(bit_len.min(64)) {
            if bits >> i & 1 == 1 {
                ones += 1;
                reset |= ones >= 50;
            } else {
                ones = 0;
            }
        }
        if reset {
            let mut b = self.shared.board();
            if b.powered {
                b.target.swd_line_reset();
            }
        }
        Ok(())
    }

    fn swj_pins(
        &mut self,
        pin_out: u32,
        pin_select: u32,
        _pin_wait: u32,
    ) -> Result<u32, DebugProbeError> {
        const NRESET: u32 = 1 << 7;
        if pin_select & NRESET != 0 {
            self.set_nrst(pin_out & NRESET == 0);
        }
        // Read back: only the probe drives NRST (the board has a pull-up).
        Ok(if self.nrst_held { 0 } else { NRESET })
    }

    fn into_probe(self: Box<Self>) -> Box<dyn DebugProbe> {
        self
    }

    fn core_status_notification(&mut self, _state: CoreStatus) -> Result<(), DebugProbeError> {
        Ok(())
    }
}

impl DebugProbe for SwdProbe {
    fn get_name(&self) -> &str {
        SWD_PROBE_NAME
    }

    fn speed_khz(&self) -> u32 {
        self.speed_khz
    }

    fn set_speed(&mut self, speed_khz: u32) -> Result<u32, DebugProbeError> {
        if speed_khz == 0 {
            return Err(DebugProbeError::UnsupportedSpeed(speed_khz));
        }
        self.speed_khz = speed_khz;
        Ok(speed_khz)
    }

    fn attach(&mut self) -> Result<(), DebugProbeError> {
        Ok(())
    }

    fn detach(&mut self) -> Result<(), probe_rs::Error> {
        Ok(())
    }

    fn target_reset(&mut self) -> Result<(), DebugProbeError> {
        self.set_nrst(true);
        std::thread::sleep(Duration::from_millis(1));
        self.set_nrst(false);
        Ok(())
    }

    fn target_reset_assert(&mut self) -> Result<(), DebugProbeError> {
        self.set_nrst(true);
        Ok(())
    }

    fn target_reset_deassert(&mut self) -> Result<(), DebugProbeError> {
        self.set_nrst(false);
        Ok(())
    }

    fn select_protocol(&mut self, protocol: WireProtocol) -> Result<(), DebugProbeError> {
        match protocol {
            WireProtocol::Swd => Ok(()),
            other => Err(DebugProbeError::UnsupportedProtocol(other)),
        }
    }

    fn active_protocol(&self) -> Option<WireProtocol> {
        Some(WireProtocol::Swd)
    }

    fn has_arm_interface(&self) -> bool {
        true
    }

    fn try_get_arm_debug_interface<'probe>(
        self: Box<Self>,
        sequence: Arc<dyn ArmDebugSequence>,
    ) -> Result<Box<dyn ArmDebugInterface + 'probe>, (Box<dyn DebugProbe>, ArmError)> {
        Ok(ArmCommunicationInterface::create(self, sequence, false))
    }

    fn into_probe(self: Box<Self>) -> Box<dyn DebugProbe> {
        self
    }

    fn try_as_dap_probe(&mut self) -> Option<&mut dyn DapProbe> {
        Some(self)
    }

    fn get_target_voltage(&mut self) -> Result<Option<f32>, DebugProbeError> {
        // The probe has its own supply: it measures the board's VDD.
        Ok(Some(if self.shared.board().powered {
            3.3
        } else {
            0.0
        }))
    }
}

impl DapProbe for SwdProbe {}

impl Drop for SwdProbe {
    /// A probe that is closed stops driving its pins: NRST goes back up (as an ST-LINK does
    /// when it leaves debug mode, and any probe when its USB handle is closed).
    fn drop(&mut self) {
        if self.nrst_held {
            self.set_nrst(false);
        }
    }
}
