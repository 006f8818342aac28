//! An in-process debug probe for probe-rs: a register-level SWD probe (probe-rs's
//! [`RawDapAccess`], the level a CMSIS-DAP probe works at) wired to the simulated target's
//! SW-DP, so that unmodified probe-rs - its ARM debug interface, its STM32H7 sequences, its
//! flash loader - drives the emulated board through the rig's real `ProbeRsProbe` driver.
//!
//! The wire (NRST, line reset, target voltage, transfer time) is [`SwdWire`]. The USB latency
//! of a real probe's command batching is not modelled.

use std::{sync::Arc, time::Duration};

use probe_rs::{
    architecture::arm::{
        sequences::ArmDebugSequence, ArmCommunicationInterface, ArmDebugInterface, ArmError,
        DapError, DapProbe, RawDapAccess, RegisterAddress,
    },
    probe::{DebugProbe, DebugProbeError, Probe, WireProtocol},
    CoreStatus,
};

pub use crate::swd_wire::{SwdCounters, SwdWire, DEFAULT_SPEED_KHZ};
use crate::{
    shared::Shared,
    target::{DapAck, DapPort},
};

pub struct SwdProbe {
    wire: SwdWire,
}

impl std::fmt::Debug for SwdProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwdProbe")
            .field("speed_khz", &self.wire.speed_khz)
            .finish()
    }
}

/// The name the probe reports.
pub const SWD_PROBE_NAME: &str = "in-process SWD probe (emulated board)";

impl SwdProbe {
    pub fn new(shared: Arc<Shared>, counters: Arc<SwdCounters>) -> Self {
        Self {
            wire: SwdWire::new(shared, counters),
        }
    }

    /// A probe-rs [`Probe`] around a new one.
    pub fn probe(shared: Arc<Shared>, counters: Arc<SwdCounters>) -> Probe {
        Probe::from_specific_probe(Box::new(Self::new(shared, counters)))
    }

    /// Opens it as a host opens a probe on USB: not found while a probe powered with the
    /// board is off USB (the board is off, or the probe is still enumerating).
    pub fn open(shared: Arc<Shared>, counters: Arc<SwdCounters>) -> Result<Probe, probe_rs::Error> {
        if !shared.probe_present() {
            return Err(probe_rs::probe::DebugProbeError::ProbeCouldNotBeCreated(
                probe_rs::probe::ProbeCreationError::NotFound,
            )
            .into());
        }
        Ok(Self::probe(shared, counters))
    }

    fn set_nrst(&mut self, held: bool) {
        self.wire.set_nrst(held);
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
        self.wire
            .transfer(port_of(address), address.lsb(), value)
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
            self.wire.line_reset();
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
        Ok(if self.wire.nrst_held() { 0 } else { NRESET })
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
        self.wire.speed_khz
    }

    fn set_speed(&mut self, speed_khz: u32) -> Result<u32, DebugProbeError> {
        if speed_khz == 0 {
            return Err(DebugProbeError::UnsupportedSpeed(speed_khz));
        }
        self.wire.speed_khz = speed_khz;
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
        Ok(Some(self.wire.target_volts()))
    }
}

impl DapProbe for SwdProbe {}
