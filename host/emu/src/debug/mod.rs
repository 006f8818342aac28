//! The STM32H755's debug port as a debugger sees it on the wire (ADIv5.2 SW-DP, MEM-APs) and
//! the ARMv7-M debug registers of its two cores.
//!
//! - [`dp`]: the SW-DP (DPIDR, CTRL/STAT with the power-up handshake, SELECT, RDBUFF, ABORT,
//!   sticky errors, the line reset) and the four access ports behind it.
//! - [`mem_ap`]: one MEM-AP (CSW, TAR with auto-increment and its 1 KiB wrap, DRW, BD0-3, CFG,
//!   BASE, IDR); what it reaches is the board's [`ApBus`].
//! - [`core_debug`]: DHCSR, DCRSR/DCRDR, DEMCR, DFSR, the FPB, and what a debugger's write asks
//!   the core to do (halt, step, resume, a system reset).
//!
//! The access ports are those of RM0399's debug infrastructure: AP 0 the Cortex-M7's AHB-AP
//! (the whole system through the core's AHBD port), AP 1 the D3 domain's AHB-AP, AP 2 the
//! APB-AP to the debug components (DBGMCU, ROM tables, trace), AP 3 the Cortex-M4's AHB-AP.

pub mod core_debug;
pub mod dp;
pub mod mem_ap;

pub use core_debug::{CoreDebug, CoreRequest, CoreView};
pub use dp::{DapAck, DapPort, DebugPort};
pub use mem_ap::{AccessSize, MemAp};

/// A MEM-AP's bus transfer that failed (the AP sets STICKYERR; the debugger sees FAULT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusFault {
    pub ap: u8,
    pub address: u32,
    pub reason: String,
}

/// What the access ports reach: the board routes each AP's transfers to its bus.
pub trait ApBus {
    fn read(&mut self, ap: u8, address: u32, size: AccessSize) -> Result<u32, BusFault>;
    fn write(&mut self, ap: u8, address: u32, size: AccessSize, value: u32)
        -> Result<(), BusFault>;
}
