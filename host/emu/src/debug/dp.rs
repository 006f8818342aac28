//! The SW-DP (ADIv5.2 chapter B2/B4, DPv2) and the access ports behind it.
//!
//! A transfer here is what a probe's DAP command does: it returns the register's value (the
//! posted-read pipeline of the wire is the probe firmware's business, as CMSIS-DAP and ST-LINK
//! hide it). What the wire shows is kept: after a line reset only a DPIDR read is answered;
//! an AP access before the debug power-up handshake, or a bus error behind a MEM-AP, sets
//! STICKYERR, and from then on every transfer except DPIDR and CTRL/STAT reads and ABORT
//! writes gets FAULT until ABORT.STKERRCLR.

use stm32h755::debug::{
    AHB_AP_IDR, APB_AP_IDR, CM4_ROM_TABLE, CM7_ROM_TABLE, DPIDR_VALUE, SYSTEM_ROM_TABLE,
};

use super::{mem_ap::MemAp, ApBus, BusFault};

pub use rig_sim::target::{DapAck, DapPort};

// DP register addresses (A[3:2]).
const DPIDR: u8 = 0x0;
const ABORT: u8 = 0x0;
const CTRL_STAT: u8 = 0x4;
const SELECT: u8 = 0x8;
const RESEND: u8 = 0x8;
const RDBUFF: u8 = 0xC;

// CTRL/STAT.
const STICKYORUN: u32 = 1 << 1;
const STICKYCMP: u32 = 1 << 4;
const STICKYERR: u32 = 1 << 5;
const READOK: u32 = 1 << 6;
const WDATAERR: u32 = 1 << 7;
const CDBGRSTREQ: u32 = 1 << 26;
const CDBGRSTACK: u32 = 1 << 27;
const CDBGPWRUPREQ: u32 = 1 << 28;
const CDBGPWRUPACK: u32 = 1 << 29;
const CSYSPWRUPREQ: u32 = 1 << 30;
const CSYSPWRUPACK: u32 = 1 << 31;
/// What a debugger writes and reads back: ORUNDETECT, TRNMODE, MASKLANE, TRNCNT and the
/// three requests.
const CTRL_WRITABLE: u32 =
    0x1 | (0b11 << 2) | (0xF << 8) | (0xFFF << 12) | CDBGRSTREQ | CDBGPWRUPREQ | CSYSPWRUPREQ;
const STICKY: u32 = STICKYORUN | STICKYCMP | STICKYERR | WDATAERR;

// ABORT.
const STKCMPCLR: u32 = 1 << 1;
const STKERRCLR: u32 = 1 << 2;
const WDERRCLR: u32 = 1 << 3;
const ORUNERRCLR: u32 = 1 << 4;

/// The SW-DP with its access ports, as a power-on leaves it.
#[derive(Clone, Debug)]
pub struct DebugPort {
    ctrl: u32,
    select: u32,
    rdbuff: u32,
    /// A line reset happened and DPIDR has not been read since.
    awaiting_dpidr: bool,
    aps: [MemAp; 4],
    /// The last AP bus error, for diagnosis.
    pub last_fault: Option<BusFault>,
}

impl Default for DebugPort {
    fn default() -> Self {
        Self {
            ctrl: 0,
            select: 0,
            rdbuff: 0,
            awaiting_dpidr: true,
            aps: [
                MemAp::new(0, AHB_AP_IDR, CM7_ROM_TABLE),
                // The D3 AHB-AP has no ROM table of its own.
                MemAp::new(1, AHB_AP_IDR, 0),
                MemAp::new(2, APB_AP_IDR, SYSTEM_ROM_TABLE),
                MemAp::new(3, AHB_AP_IDR, CM4_ROM_TABLE),
            ],
            last_fault: None,
        }
    }
}

impl DebugPort {
    /// A line reset (50+ clocks with SWDIO high), including the JTAG-to-SWD switch.
    pub fn line_reset(&mut self) {
        self.awaiting_dpidr = true;
    }

    /// Whether the debug power domain is up (the debugger's CDBGPWRUPREQ was granted).
    pub fn powered_up(&self) -> bool {
        self.ctrl & CDBGPWRUPACK != 0
    }

    fn dp_bank(&self) -> u32 {
        self.select & 0xF
    }

    fn ap_select(&self) -> (u8, u8) {
        ((self.select >> 24) as u8, (self.select & 0xF0) as u8)
    }

    fn check(&self, port: DapPort, addr: u8, write: bool) -> Result<(), DapAck> {
        let always = matches!(
            (port, addr, write),
            (DapPort::Dp, DPIDR, false)
                | (DapPort::Dp, CTRL_STAT, false)
                | (DapPort::Dp, ABORT, true)
        );
        if self.awaiting_dpidr && !matches!((port, addr, write), (DapPort::Dp, DPIDR, false)) {
            return Err(DapAck::NoAck);
        }
        if self.ctrl & STICKY != 0 && !always {
            return Err(DapAck::Fault);
        }
        Ok(())
    }

    /// An AP access needs the debug power domain up.
    fn ap_powered(&mut self) -> Result<(), DapAck> {
        if self.powered_up() {
            return Ok(());
        }
        Err(self.ap_fault(BusFault {
            ap: self.ap_select().0,
            address: 0,
            reason: "AP access before the debug power-up (CDBGPWRUPREQ)".into(),
        }))
    }

    fn ap_fault(&mut self, fault: BusFault) -> DapAck {
        self.ctrl |= STICKYERR;
        self.ctrl &= !READOK;
        self.last_fault = Some(fault);
        DapAck::Fault
    }

    pub fn read(&mut self, port: DapPort, addr: u8, bus: &mut dyn ApBus) -> Result<u32, DapAck> {
        let addr = addr & 0xC;
        self.check(port, addr, false)?;
        match port {
            DapPort::Dp => Ok(match (addr, self.dp_bank()) {
                (DPIDR, 0) => {
                    self.awaiting_dpidr = false;
                    DPIDR_VALUE
                }
                // DLCR, TARGETID (designer ST 0x020, part 0x450), DLPIDR, EVENTSTAT.
                (DPIDR, 1) => 0x0000_0040,
                (DPIDR, 2) => 0x0450_0041,
                (DPIDR, 3) => 0x0000_0001,
                (DPIDR, _) => 0,
                (CTRL_STAT, 0) => self.ctrl,
                (CTRL_STAT, _) => 0,
                (RESEND, _) => self.rdbuff,
                (RDBUFF, _) => {
                    self.ctrl |= READOK;
                    self.rdbuff
                }
                _ => 0,
            }),
            DapPort::Ap => {
                self.ap_powered()?;
                let (ap, bank) = self.ap_select();
                let Some(mem_ap) = self.aps.get_mut(usize::from(ap)) else {
                    // No AP there: IDR reads as zero, which ends a debugger's AP scan.
                    self.rdbuff = 0;
                    return Ok(0);
                };
                match mem_ap.read(bank | addr, bus) {
                    Ok(v) => {
                        self.rdbuff = v;
                        self.ctrl |= READOK;
                        Ok(v)
                    }
                    Err(f) => Err(self.ap_fault(f)),
                }
            }
        }
    }

    pub fn write(
        &mut self,
        port: DapPort,
        addr: u8,
        value: u32,
        bus: &mut dyn ApBus,
    ) -> Result<(), DapAck> {
        let addr = addr & 0xC;
        self.check(port, addr, true)?;
        match port {
            DapPort::Dp => match addr {
                ABORT => {
                    let mut clear = 0;
                    for (bit, flag) in [
                        (STKCMPCLR, STICKYCMP),
                        (STKERRCLR, STICKYERR),
                        (WDERRCLR, WDATAERR),
                        (ORUNERRCLR, STICKYORUN),
                    ] {
                        if value & bit != 0 {
                            clear |= flag;
                        }
                    }
                    self.ctrl &= !clear;
                }
                CTRL_STAT if self.dp_bank() == 0 => {
                    let mut ctrl = (self.ctrl & !CTRL_WRITABLE) | (value & CTRL_WRITABLE);
                    // The power controller grants requests at once and drops the acks with
                    // them.
                    for (req, ack) in [
                        (CDBGPWRUPREQ, CDBGPWRUPACK),
                        (CSYSPWRUPREQ, CSYSPWRUPACK),
                        (CDBGRSTREQ, CDBGRSTACK),
                    ] {
                        if ctrl & req != 0 {
                            ctrl |= ack;
                        } else {
                            ctrl &= !ack;
                        }
                    }
                    self.ctrl = ctrl;
                }
                SELECT => self.select = value,
                // DLCR and the other banks, TARGETSEL: nothing to model.
                _ => {}
            },
            DapPort::Ap => {
                self.ap_powered()?;
                let (ap, bank) = self.ap_select();
                if let Some(mem_ap) = self.aps.get_mut(usize::from(ap)) {
                    if let Err(f) = mem_ap.write(bank | addr, value, bus) {
                        return Err(self.ap_fault(f));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debug::AccessSize;

    struct Faulting;
    impl ApBus for Faulting {
        fn read(&mut self, ap: u8, address: u32, _: AccessSize) -> Result<u32, BusFault> {
            if address == 0xDEAD_0000 {
                return Err(BusFault {
                    ap,
                    address,
                    reason: "nothing there".into(),
                });
            }
            Ok(address)
        }
        fn write(&mut self, _: u8, _: u32, _: AccessSize, _: u32) -> Result<(), BusFault> {
            Ok(())
        }
    }

    fn powered() -> DebugPort {
        let mut dp = DebugPort::default();
        dp.read(DapPort::Dp, DPIDR, &mut Faulting).unwrap();
        dp.write(
            DapPort::Dp,
            CTRL_STAT,
            CDBGPWRUPREQ | CSYSPWRUPREQ,
            &mut Faulting,
        )
        .unwrap();
        dp
    }

    #[test]
    fn a_line_reset_wants_dpidr_first() {
        let mut dp = DebugPort::default();
        assert_eq!(
            dp.read(DapPort::Dp, CTRL_STAT, &mut Faulting),
            Err(DapAck::NoAck)
        );
        assert_eq!(dp.read(DapPort::Dp, DPIDR, &mut Faulting), Ok(0x6BA0_2477));
        assert_eq!(dp.read(DapPort::Dp, CTRL_STAT, &mut Faulting), Ok(0));
        dp.line_reset();
        assert_eq!(
            dp.write(DapPort::Dp, SELECT, 0, &mut Faulting),
            Err(DapAck::NoAck)
        );
    }

    #[test]
    fn power_up_is_acknowledged_and_gates_the_aps() {
        let mut dp = DebugPort::default();
        dp.read(DapPort::Dp, DPIDR, &mut Faulting).unwrap();
        assert_eq!(dp.read(DapPort::Ap, 0xC, &mut Faulting), Err(DapAck::Fault));
        dp.write(DapPort::Dp, ABORT, STKERRCLR, &mut Faulting)
            .unwrap();
        dp.write(
            DapPort::Dp,
            CTRL_STAT,
            CDBGPWRUPREQ | CSYSPWRUPREQ,
            &mut Faulting,
        )
        .unwrap();
        let ctrl = dp.read(DapPort::Dp, CTRL_STAT, &mut Faulting).unwrap();
        assert_eq!(
            ctrl & (CDBGPWRUPACK | CSYSPWRUPACK),
            CDBGPWRUPACK | CSYSPWRUPACK
        );
    }

    #[test]
    fn a_bus_error_is_sticky_until_abort() {
        let mut dp = powered();
        dp.write(DapPort::Dp, SELECT, 0, &mut Faulting).unwrap();
        dp.write(DapPort::Ap, 0x4, 0xDEAD_0000, &mut Faulting)
            .unwrap();
        assert_eq!(dp.read(DapPort::Ap, 0xC, &mut Faulting), Err(DapAck::Fault));
        assert_eq!(
            dp.write(DapPort::Dp, SELECT, 0, &mut Faulting),
            Err(DapAck::Fault)
        );
        let ctrl = dp.read(DapPort::Dp, CTRL_STAT, &mut Faulting).unwrap();
        assert_ne!(ctrl & STICKYERR, 0);
        dp.write(DapPort::Dp, ABORT, STKERRCLR, &mut Faulting)
            .unwrap();
        dp.write(DapPort::Ap, 0x4, 0x2000_0000, &mut Faulting)
            .unwrap();
        assert_eq!(dp.read(DapPort::Ap, 0xC, &mut Faulting), Ok(0x2000_0000));
        assert_eq!(dp.read(DapPort::Dp, RDBUFF, &mut Faulting), Ok(0x2000_0000));
    }

    #[test]
    fn aps_answer_by_select_and_absent_ones_read_zero() {
        let mut dp = powered();
        let idr = |dp: &mut DebugPort, ap: u32| {
            dp.write(DapPort::Dp, SELECT, (ap << 24) | 0xF0, &mut Faulting)
                .unwrap();
            dp.read(DapPort::Ap, 0xC, &mut Faulting).unwrap()
        };
        assert_eq!(idr(&mut dp, 0), AHB_AP_IDR);
        assert_eq!(idr(&mut dp, 2), APB_AP_IDR);
        assert_eq!(idr(&mut dp, 3), AHB_AP_IDR);
        assert_eq!(idr(&mut dp, 4), 0);
    }
}
