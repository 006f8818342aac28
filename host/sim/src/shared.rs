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
    /// Instrument faults to show after bring-up (`[simulated_faults]`).
    pub faults: std::sync::Arc<crate::faults::FaultPlan>,
}

/// Who pulls the board's NRST low. NRST is an open-drain line with a pull-up: it is held while
/// any of them holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NrstDriver {
    /// The debug probe's NRST pin.
    Probe,
    /// A relay channel wired from NRST to GND (`power.recovery_line`).
    Relay,
}

/// What powers the debug probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProbeSupply {
    /// Its own USB port: it stays up whatever the bench does to the board.
    #[default]
    OwnUsb,
    /// The board's supply (a NUCLEO powered through its ST-LINK's USB port CN1): the probe
    /// is gone while the supply is off, drives no pin then, and is back on USB this long
    /// after the supply is switched on (its boot and enumeration).
    BoardSupply { enumeration_us: u64 },
}

pub struct BoardSlot {
    pub target: Box<dyn SimulatedTarget>,
    pub powered: bool,
    /// Bench time (us) of the last on-command, while the supply is on or rising.
    pub switched_on_at: Option<u64>,
    pub probe_supply: ProbeSupply,
    nrst_by_probe: bool,
    nrst_by_relay: bool,
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
                switched_on_at: None,
                probe_supply: ProbeSupply::OwnUsb,
                nrst_by_probe: false,
                nrst_by_relay: false,
                can_rx: VecDeque::new(),
                rising_until: None,
                supply_rise_us: 0,
            }),
            pwm: Mutex::new(PwmTimeline::default()),
            board_tx: Mutex::new(VecDeque::new()),
            relay_log: Mutex::new(Vec::new()),
            faults: Default::default(),
        }
    }

    /// [`Self::new`] with instrument faults.
    pub fn with_faults(
        target: Box<dyn SimulatedTarget>,
        faults: std::sync::Arc<crate::faults::FaultPlan>,
    ) -> Self {
        Self {
            faults,
            ..Self::new(target)
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
        if on && b.switched_on_at.is_none() {
            b.switched_on_at = Some(now);
        } else if !on {
            b.switched_on_at = None;
            if matches!(b.probe_supply, ProbeSupply::BoardSupply { .. }) && b.nrst_by_probe {
                // A probe without power drives no pin: NRST goes back to its pull-up (or
                // stays with the relay).
                Self::drive(&mut b, NrstDriver::Probe, false, now);
            }
        }
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

    /// `who` holds (true) or lets go of (false) NRST; the board sees the wired result.
    pub fn drive_nrst(&self, who: NrstDriver, held: bool) {
        let now = self.now_us();
        Self::drive(&mut self.board(), who, held, now);
    }

    fn drive(b: &mut BoardSlot, who: NrstDriver, held: bool, now: u64) {
        match who {
            NrstDriver::Probe => b.nrst_by_probe = held,
            NrstDriver::Relay => b.nrst_by_relay = held,
        }
        let line_low = b.nrst_by_probe || b.nrst_by_relay;
        b.target.set_reset_held(line_low, now);
    }

    /// The BOOT0 pin, tied to VDD (true) by a relay or a jumper, or low; the chip samples it
    /// at its next reset.
    pub fn set_boot0(&self, high: bool) {
        self.board().target.set_boot0(high);
    }

    /// Whether the debug probe is up (on USB): always for a probe on its own USB port; for
    /// one powered with the board, from its enumeration delay after the on-command until the
    /// next off-command.
    pub fn probe_present(&self) -> bool {
        let now = self.now_us();
        let b = self.board();
        match b.probe_supply {
            ProbeSupply::OwnUsb => true,
            ProbeSupply::BoardSupply { enumeration_us } => {
                b.switched_on_at.is_some_and(|t| now >= t + enumeration_us)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic_board::{LogicBoard, LogicFirmware};
    use rig_instruments::CoreSelect;
    use stm32h755::supply::{SupplyConfig, PWR_CR3_ADDR, PWR_CR3_SUPPLY_MASK};

    /// A Direct-SMPS board with the seed's LDO build in flash: it locks up whenever that
    /// firmware runs after a power-on.
    fn ldo_bench() -> Shared {
        let board = LogicBoard::new(
            SupplyConfig::DirectSmps,
            LogicFirmware {
                supply: SupplyConfig::Ldo,
            },
        );
        Shared::new(Box::new(board))
    }

    /// Whether the core answers the debugger (a lock-up answers nothing).
    fn alive(s: &Shared) -> bool {
        s.board().target.debug_accessible(CoreSelect::Cm7)
    }

    #[test]
    fn nrst_is_held_while_either_the_probe_or_the_relay_holds_it() {
        let s = ldo_bench();
        s.drive_nrst(NrstDriver::Relay, true);
        s.set_power(true);
        assert!(alive(&s), "held in reset across power-on: nothing latched");
        s.drive_nrst(NrstDriver::Probe, true);
        s.drive_nrst(NrstDriver::Relay, false);
        assert!(alive(&s), "the probe still holds NRST");
        s.drive_nrst(NrstDriver::Probe, false);
        assert!(!alive(&s), "released: the LDO build ran and cut Vcore");
    }

    #[test]
    fn a_probe_powered_with_the_board_lets_go_of_nrst_at_a_power_cut() {
        let s = ldo_bench();
        s.board().probe_supply = ProbeSupply::BoardSupply {
            enumeration_us: 50_000,
        };
        assert!(!s.probe_present(), "no power, no probe");
        s.set_power(true);
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert!(s.probe_present());
        s.drive_nrst(NrstDriver::Probe, true);
        s.set_power(false);
        assert!(!s.probe_present());
        s.set_power(true);
        assert!(
            !alive(&s),
            "the probe drove nothing across the power-on: the firmware latched LDO"
        );
        assert!(!s.probe_present(), "still enumerating");
    }

    #[test]
    fn boot0_high_boots_the_system_bootloader_instead_of_the_flash() {
        let s = ldo_bench();
        s.set_boot0(true);
        s.set_power(true);
        assert!(alive(&s), "the LDO build in flash did not run");
        let cr3 = s
            .board()
            .target
            .debug_read_u32(CoreSelect::Cm7, PWR_CR3_ADDR)
            .expect("PWR_CR3");
        assert_eq!(
            cr3 & PWR_CR3_SUPPLY_MASK,
            SupplyConfig::DirectSmps.cr3_bits(),
            "the bootloader latched the board's own supply"
        );
        s.set_power(false);
        s.set_boot0(false);
        s.set_power(true);
        assert!(!alive(&s), "BOOT0 low: the flash's LDO build runs again");
    }
}
