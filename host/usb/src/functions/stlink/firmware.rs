//! The ST-LINK V3's firmware: the USB command protocol (16-byte command blocks on the debug
//! interface's bulk OUT endpoint, a data phase for memory writes, replies on bulk IN) turned
//! into SWD transfers on the wire to the target's SW-DP.
//!
//! Built to the protocol, not to one client: every command carries its own reply length and
//! status byte as the firmware defines them (`DEBUG_OK` 0x80, the SWD_AP/DP fault codes,
//! GETLASTRWSTATUS2 after memory transfers); the firmware owns the debug port as real
//! ST-LINKs do: entering SWD does the line reset, reads DPIDR, clears the sticky errors and
//! powers up the debug domain; DP SELECT is cached and written only when a transfer needs
//! another AP or bank; memory transfers program CSW and TAR themselves (TAR again at every
//! 1 KiB auto-increment boundary) and clear sticky errors after a fault.

use rig_sim::{
    swd_wire::SwdWire,
    target::{DapAck, DapPort},
};

// Top-level commands.
const GET_VERSION: u8 = 0xF1;
const DEBUG_COMMAND: u8 = 0xF2;
const DFU_COMMAND: u8 = 0xF3;
const SWIM_COMMAND: u8 = 0xF4;
const GET_CURRENT_MODE: u8 = 0xF5;
const GET_TARGET_VOLTAGE: u8 = 0xF7;
const GET_VERSION_EXT: u8 = 0xFB;

// DEBUG_COMMAND sub-commands.
const READMEM_32BIT: u8 = 0x07;
const WRITEMEM_32BIT: u8 = 0x08;
const READMEM_8BIT: u8 = 0x0C;
const WRITEMEM_8BIT: u8 = 0x0D;
const JTAG_EXIT: u8 = 0x21;
const READ_CORE_ID: u8 = 0x22;
const JTAG_ENTER2: u8 = 0x30;
const READ_IDCODES: u8 = 0x31;
const WRITE_DEBUG_REG: u8 = 0x35;
const READ_DEBUG_REG: u8 = 0x36;
const DRIVE_NRST: u8 = 0x3C;
const GET_LAST_RW_STATUS2: u8 = 0x3E;
const START_TRACE_RX: u8 = 0x40;
const STOP_TRACE_RX: u8 = 0x41;
const GET_TRACE_NB: u8 = 0x42;
const READ_DAP_REG: u8 = 0x45;
const WRITE_DAP_REG: u8 = 0x46;
const READMEM_16BIT: u8 = 0x47;
const WRITEMEM_16BIT: u8 = 0x48;
const INIT_AP: u8 = 0x4B;
const CLOSE_AP_DBG: u8 = 0x4C;
const SET_COM_FREQ: u8 = 0x61;
const GET_COM_FREQ: u8 = 0x62;

const DFU_EXIT: u8 = 0x07;
const ENTER_SWD: u8 = 0xA3;

/// Status codes (first reply byte).
pub mod status {
    pub const OK: u8 = 0x80;
    pub const GET_IDCODE_ERROR: u8 = 0x09;
    pub const ALIGNMENT_ERROR: u8 = 0x0A;
    pub const DBG_POWER_ERROR: u8 = 0x0B;
    pub const CMD_ERROR: u8 = 0x08;
    pub const SWD_AP_FAULT: u8 = 0x11;
    pub const SWD_DP_FAULT: u8 = 0x15;
    pub const SWD_DP_ERROR: u8 = 0x16;
    pub const SWD_AP_ERROR: u8 = 0x12;
    pub const UNKNOWN_COMMAND: u8 = 0x42;
    pub const FREQ_NOT_SUPPORTED: u8 = 0x41;
}

/// GET_CURRENT_MODE values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Mass storage / idle: what a freshly booted ST-LINK reports.
    Idle = 1,
    Debug = 2,
}

/// SWD clocks a V3 offers (kHz, highest first), as its GET_COM_FREQ lists them.
pub const SWD_FREQUENCIES_KHZ: [u32; 7] = [24_000, 8_000, 3_300, 1_000, 200, 50, 5];
/// The clock after boot.
const BOOT_FREQUENCY_KHZ: u32 = 1_000;

/// Firmware version this ST-LINK reports: V3J15M7B4S1 (J: the SWD/JTAG API version; hosts
/// need J >= 3 on a V3).
const VERSION_EXT: [u8; 6] = [3, 1, 15, 7, 4, 0];

// DP registers and bits the firmware drives.
const DP_ABORT: u8 = 0x0;
const DP_IDR: u8 = 0x0;
const DP_CTRL_STAT: u8 = 0x4;
const DP_SELECT: u8 = 0x8;
const ABORT_CLEAR_ALL: u32 = 0x1E;
const POWER_UP_REQ: u32 = (1 << 30) | (1 << 28);
const POWER_UP_ACK: u32 = (1 << 31) | (1 << 29);
// MEM-AP registers.
const AP_CSW: u8 = 0x00;
const AP_TAR: u8 = 0x04;
const AP_DRW: u8 = 0x0C;
/// CSW for a memory transfer: DbgSwEnable, HPROT data + privileged, single increment; the
/// size bits are the transfer's.
const CSW_BASE: u32 = 0x8300_0000 | (1 << 4);
/// TAR auto-increment stays inside 1 KiB.
const TAR_WRAP: u32 = 1024;
/// The longest memory transfer taken in one command (a V3's buffer).
const MAX_TRANSFER: usize = 65_532;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Width {
    Byte = 1,
    Half = 2,
    Word = 4,
}

impl Width {
    fn csw_size(self) -> u32 {
        match self {
            Width::Byte => 0,
            Width::Half => 1,
            Width::Word => 2,
        }
    }
}

struct PendingWrite {
    width: Width,
    address: u32,
    ap: u8,
    length: usize,
    data: Vec<u8>,
}

pub struct StlinkFirmware {
    wire: SwdWire,
    vendor_id: u16,
    product_id: u16,
    mode: Mode,
    /// DP SELECT as last written (None: unknown, write it before the next use).
    select: Option<u32>,
    /// Status and fault address of the last memory transfer.
    last_rw: (u8, u32),
    pending: Option<PendingWrite>,
    /// Commands answered, for counters.
    pub commands: u64,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A reply with a status byte and zero padding.
fn status_reply(status: u8, len: usize) -> Vec<u8> {
    let mut r = vec![0; len];
    r[0] = status;
    r
}

impl StlinkFirmware {
    pub fn new(wire: SwdWire, vendor_id: u16, product_id: u16) -> Self {
        let mut wire = wire;
        wire.speed_khz = BOOT_FREQUENCY_KHZ;
        Self {
            wire,
            vendor_id,
            product_id,
            mode: Mode::Idle,
            select: None,
            last_rw: (status::OK, 0),
            pending: None,
            commands: 0,
        }
    }

    /// A power-on of the ST-LINK: idle, NRST released, nothing known of the target.
    pub fn reboot(&mut self) {
        if self.wire.nrst_held() {
            self.wire.set_nrst(false);
        }
        self.wire.speed_khz = BOOT_FREQUENCY_KHZ;
        self.mode = Mode::Idle;
        self.select = None;
        self.last_rw = (status::OK, 0);
        self.pending = None;
    }

    /// One bulk OUT transfer from the host: a command block, or (part of) the data phase of
    /// the memory write before it. Returns the replies to queue on the IN endpoint.
    pub fn receive(&mut self, mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut replies = Vec::new();
        while !bytes.is_empty() {
            if let Some(p) = self.pending.as_mut() {
                let take = (p.length - p.data.len()).min(bytes.len());
                p.data.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if p.data.len() == p.length {
                    if let Some(p) = self.pending.take() {
                        self.last_rw = self.write_memory(p.ap, p.address, p.width, &p.data);
                    }
                }
                continue;
            }
            // A command block is 16 bytes; hosts pad it with zeros.
            let n = bytes.len().min(16);
            let mut cdb = [0u8; 16];
            cdb[..n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            self.commands += 1;
            if let Some(reply) = self.command(&cdb) {
                replies.push(reply);
            }
        }
        replies
    }

    fn command(&mut self, cdb: &[u8; 16]) -> Option<Vec<u8>> {
        tracing::trace!(cdb = ?&cdb[..10], "ST-LINK command");
        let (vid, pid) = (self.vendor_id.to_le_bytes(), self.product_id.to_le_bytes());
        match cdb[0] {
            // hw version 3 in bits 15..12, J and S zero: the host asks GET_VERSION_EXT.
            GET_VERSION => Some(vec![0x30, 0x00, vid[0], vid[1], pid[0], pid[1]]),
            GET_VERSION_EXT => {
                let mut r = VERSION_EXT.to_vec();
                r.extend_from_slice(&[0, 0, vid[0], vid[1], pid[0], pid[1]]);
                Some(r)
            }
            GET_CURRENT_MODE => Some(vec![self.mode as u8, 0]),
            GET_TARGET_VOLTAGE => {
                // ADC counts: the 1.2 V reference and VAPP/2 (host: V = 2 * a1 * 1.2 / a0).
                let reference = 1200u32;
                let half = (self.wire.target_volts() / 2.4 * reference as f32).round() as u32;
                let mut r = reference.to_le_bytes().to_vec();
                r.extend_from_slice(&half.to_le_bytes());
                Some(r)
            }
            DFU_COMMAND if cdb[1] == DFU_EXIT => None,
            SWIM_COMMAND => None,
            DEBUG_COMMAND => self.debug_command(cdb),
            other => {
                tracing::warn!("ST-LINK: unknown command {other:#04x}: no reply");
                None
            }
        }
    }

    fn debug_command(&mut self, cdb: &[u8; 16]) -> Option<Vec<u8>> {
        let ok = status::OK;
        Some(match cdb[1] {
            JTAG_EXIT => {
                self.mode = Mode::Idle;
                return None;
            }
            JTAG_ENTER2 => {
                let s = if cdb[2] == ENTER_SWD {
                    self.enter_swd()
                } else {
                    // JTAG: this ST-LINK's target is wired for SWD only.
                    status::CMD_ERROR
                };
                status_reply(s, 2)
            }
            GET_COM_FREQ => {
                let mut r = status_reply(ok, 4);
                r.extend_from_slice(&self.wire.speed_khz.to_le_bytes());
                r.extend_from_slice(&(SWD_FREQUENCIES_KHZ.len() as u32).to_le_bytes());
                for f in SWD_FREQUENCIES_KHZ {
                    r.extend_from_slice(&f.to_le_bytes());
                }
                r.resize(52, 0);
                r
            }
            SET_COM_FREQ => {
                let want = le32(cdb, 4);
                match SWD_FREQUENCIES_KHZ.iter().find(|&&f| f <= want) {
                    Some(&f) => {
                        self.wire.speed_khz = f;
                        let mut r = status_reply(ok, 4);
                        r.extend_from_slice(&f.to_le_bytes());
                        r
                    }
                    None => status_reply(status::FREQ_NOT_SUPPORTED, 8),
                }
            }
            DRIVE_NRST => {
                match cdb[2] {
                    0 => self.wire.set_nrst(true),
                    1 => self.wire.set_nrst(false),
                    _ => {
                        self.wire.set_nrst(true);
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        self.wire.set_nrst(false);
                    }
                }
                status_reply(ok, 2)
            }
            INIT_AP | CLOSE_AP_DBG => status_reply(self.in_debug().err().unwrap_or(ok), 2),
            READ_DAP_REG => {
                let (port, addr) = (le16(cdb, 2), le16(cdb, 4));
                match self
                    .in_debug()
                    .and_then(|()| self.dap_register(port, addr, None))
                {
                    Ok(v) => {
                        let mut r = status_reply(ok, 4);
                        r.extend_from_slice(&v.to_le_bytes());
                        r
                    }
                    Err(s) => status_reply(s, 8),
                }
            }
            WRITE_DAP_REG => {
                let (port, addr, value) = (le16(cdb, 2), le16(cdb, 4), le32(cdb, 6));
                let s = self
                    .in_debug()
                    .and_then(|()| self.dap_register(port, addr, Some(value)))
                    .map_or_else(|s| s, |_| ok);
                status_reply(s, 2)
            }
            READ_CORE_ID => match self.in_debug().and_then(|()| self.dp(DP_IDR, None)) {
                Ok(id) => id.to_le_bytes().to_vec(),
                Err(_) => vec![0; 4],
            },
            READ_IDCODES => match self.in_debug().and_then(|()| self.dp(DP_IDR, None)) {
                Ok(id) => {
                    let mut r = status_reply(ok, 4);
                    r.extend_from_slice(&id.to_le_bytes());
                    r.resize(12, 0);
                    r
                }
                Err(s) => status_reply(s, 12),
            },
            READMEM_32BIT | READMEM_16BIT | READMEM_8BIT => {
                let width = match cdb[1] {
                    READMEM_32BIT => Width::Word,
                    READMEM_16BIT => Width::Half,
                    _ => Width::Byte,
                };
                let (address, length, ap) = (le32(cdb, 2), usize::from(le16(cdb, 6)), cdb[8]);
                let (data, result) = self.read_memory(ap, address, width, length);
                self.last_rw = result;
                data
            }
            WRITEMEM_32BIT | WRITEMEM_16BIT | WRITEMEM_8BIT => {
                let width = match cdb[1] {
                    WRITEMEM_32BIT => Width::Word,
                    WRITEMEM_16BIT => Width::Half,
                    _ => Width::Byte,
                };
                let length = usize::from(le16(cdb, 6));
                if length > 0 {
                    self.pending = Some(PendingWrite {
                        width,
                        address: le32(cdb, 2),
                        ap: cdb[8],
                        length,
                        data: Vec::with_capacity(length),
                    });
                }
                return None;
            }
            GET_LAST_RW_STATUS2 => {
                let (s, address) = self.last_rw;
                let mut r = status_reply(s, 4);
                r.extend_from_slice(&address.to_le_bytes());
                r.resize(12, 0);
                r
            }
            READ_DEBUG_REG => {
                let (data, (s, _)) = self.read_memory(cdb[6], le32(cdb, 2), Width::Word, 4);
                let mut r = status_reply(s, 4);
                r.extend_from_slice(&data);
                r
            }
            WRITE_DEBUG_REG => {
                let value = le32(cdb, 6).to_le_bytes();
                let (s, _) = self.write_memory(cdb[10], le32(cdb, 2), Width::Word, &value);
                status_reply(s, 2)
            }
            // SWO is not wired to anything on this bench: trace starts, and never has data.
            START_TRACE_RX | STOP_TRACE_RX => status_reply(ok, 2),
            GET_TRACE_NB => vec![0, 0],
            other => {
                tracing::warn!("ST-LINK: unknown debug command {other:#04x}");
                status_reply(status::UNKNOWN_COMMAND, 2)
            }
        })
    }

    fn in_debug(&self) -> Result<(), u8> {
        if self.mode == Mode::Debug {
            Ok(())
        } else {
            Err(status::CMD_ERROR)
        }
    }

    /// The firmware's SWD connect: line reset, DPIDR, clear sticky errors, debug power-up.
    fn enter_swd(&mut self) -> u8 {
        self.wire.line_reset();
        self.select = None;
        if self.wire.transfer(DapPort::Dp, DP_IDR, None).is_err() {
            return status::GET_IDCODE_ERROR;
        }
        let steps = [
            (DP_ABORT, ABORT_CLEAR_ALL),
            (DP_SELECT, 0),
            (DP_CTRL_STAT, POWER_UP_REQ),
        ];
        for (reg, value) in steps {
            if self.wire.transfer(DapPort::Dp, reg, Some(value)).is_err() {
                return status::SWD_DP_ERROR;
            }
        }
        self.select = Some(0);
        match self.wire.transfer(DapPort::Dp, DP_CTRL_STAT, None) {
            Ok(ctrl) if ctrl & POWER_UP_ACK == POWER_UP_ACK => {
                self.mode = Mode::Debug;
                status::OK
            }
            Ok(_) => status::DBG_POWER_ERROR,
            Err(_) => status::SWD_DP_ERROR,
        }
    }

    /// Writes DP SELECT when `value` differs from what the DP holds.
    fn select(&mut self, value: u32) -> Result<(), u8> {
        if self.select == Some(value) {
            return Ok(());
        }
        self.select = None;
        self.dp_raw(DP_SELECT, Some(value))?;
        self.select = Some(value);
        Ok(())
    }

    fn fault_status(&mut self, ack: DapAck, port: DapPort) -> u8 {
        match ack {
            DapAck::NoAck => {
                // Nothing answers: the DP's state is unknown from here on.
                self.select = None;
                status::SWD_DP_ERROR
            }
            DapAck::Fault => {
                // Clear the sticky flags so the next command starts clean.
                let _ = self
                    .wire
                    .transfer(DapPort::Dp, DP_ABORT, Some(ABORT_CLEAR_ALL));
                match port {
                    DapPort::Ap => status::SWD_AP_FAULT,
                    DapPort::Dp => status::SWD_DP_FAULT,
                }
            }
        }
    }

    fn dp_raw(&mut self, reg: u8, value: Option<u32>) -> Result<u32, u8> {
        self.wire
            .transfer(DapPort::Dp, reg, value)
            .map_err(|ack| self.fault_status(ack, DapPort::Dp))
    }

    /// A DP register, its bank selected first for the banked ones (CTRL/STAT's bank and
    /// DPIDR's: DLCR, TARGETID, DLPIDR, EVENTSTAT).
    fn dp(&mut self, addr: u8, value: Option<u32>) -> Result<u32, u8> {
        let reg = addr & 0x0C;
        let bank = u32::from(addr >> 4);
        let banked = reg == DP_CTRL_STAT || (reg == DP_IDR && value.is_none());
        if banked {
            let current = self.select.unwrap_or(0);
            self.select((current & !0xF) | bank)?;
        }
        let result = self.dp_raw(reg, value);
        if reg == DP_SELECT && value.is_some() {
            self.select = value;
        }
        result
    }

    fn ap(&mut self, ap: u8, addr: u8, value: Option<u32>) -> Result<u32, u8> {
        self.select(u32::from(ap) << 24 | u32::from(addr & 0xF0))?;
        self.wire
            .transfer(DapPort::Ap, addr & 0x0C, value)
            .map_err(|ack| self.fault_status(ack, DapPort::Ap))
    }

    /// READ/WRITE_DAP_REG: port 0xFFFF is the DP, anything else an AP number.
    fn dap_register(&mut self, port: u16, addr: u16, value: Option<u32>) -> Result<u32, u8> {
        if port == 0xFFFF {
            self.dp(addr as u8, value)
        } else if port > 0xFF {
            Err(status::SWD_AP_ERROR)
        } else {
            self.ap(port as u8, addr as u8, value)
        }
    }

    fn start_transfer(&mut self, ap: u8, width: Width) -> Result<(), u8> {
        self.in_debug()?;
        self.ap(ap, AP_CSW, Some(CSW_BASE | width.csw_size()))
            .map(|_| ())
    }

    /// A memory read through MEM-AP `ap`: always `length` bytes of data (zeros after a fault;
    /// two for a one-byte read), and the transfer's status for GETLASTRWSTATUS2.
    fn read_memory(
        &mut self,
        ap: u8,
        address: u32,
        width: Width,
        length: usize,
    ) -> (Vec<u8>, (u8, u32)) {
        let mut data = vec![0u8; length.max(if width == Width::Byte { 2 } else { 0 })];
        let length = length.min(MAX_TRANSFER);
        if !address.is_multiple_of(width as u32) {
            return (data, (status::ALIGNMENT_ERROR, address));
        }
        if let Err(s) = self.start_transfer(ap, width) {
            return (data, (s, address));
        }
        let mut offset = 0;
        while offset + width as usize <= length {
            let at = address.wrapping_add(offset as u32);
            if offset == 0 || at.is_multiple_of(TAR_WRAP) {
                if let Err(s) = self.ap(ap, AP_TAR, Some(at)) {
                    return (data, (s, at));
                }
            }
            let word = match self.ap(ap, AP_DRW, None) {
                Ok(w) => w,
                Err(s) => return (data, (s, at)),
            };
            // The byte lanes of the addressed bytes.
            let lane = (at & 3) * 8;
            let bytes = (word >> lane).to_le_bytes();
            data[offset..offset + width as usize].copy_from_slice(&bytes[..width as usize]);
            offset += width as usize;
        }
        (data, (status::OK, 0))
    }

    fn write_memory(&mut self, ap: u8, address: u32, width: Width, data: &[u8]) -> (u8, u32) {
        if !address.is_multiple_of(width as u32) {
            return (status::ALIGNMENT_ERROR, address);
        }
        if let Err(s) = self.start_transfer(ap, width) {
            return (s, address);
        }
        for (i, chunk) in data.chunks_exact(width as usize).enumerate() {
            let at = address.wrapping_add((i * width as usize) as u32);
            if i == 0 || at.is_multiple_of(TAR_WRAP) {
                if let Err(s) = self.ap(ap, AP_TAR, Some(at)) {
                    return (s, at);
                }
            }
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            let value = u32::from_le_bytes(word) << ((at & 3) * 8);
            if let Err(s) = self.ap(ap, AP_DRW, Some(value)) {
                return (s, at);
            }
        }
        (status::OK, 0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gauge_logic::supply::SupplyConfig;
    use rig_sim::{
        logic_board::{LogicBoard, LogicFirmware},
        shared::Shared,
        swd_wire::SwdCounters,
    };

    use super::*;

    /// An ST-LINK on a board without a register-level debug port (the logic board), powered
    /// or not: the protocol's framing and status codes, whatever the target answers.
    fn stlink(powered: bool) -> StlinkFirmware {
        let board = LogicBoard::new(
            SupplyConfig::DirectSmps,
            LogicFirmware {
                supply: SupplyConfig::DirectSmps,
            },
        );
        let shared = Arc::new(Shared::new(Box::new(board)));
        shared.set_power(powered);
        let wire = SwdWire::new(shared, Arc::new(SwdCounters::default()));
        StlinkFirmware::new(wire, 0x0483, 0x374E)
    }

    fn one(fw: &mut StlinkFirmware, cdb: &[u8]) -> Vec<u8> {
        let mut r = fw.receive(cdb);
        assert_eq!(r.len(), 1, "one reply to {cdb:02x?}");
        r.remove(0)
    }

    #[test]
    fn versions_mode_and_clock_list_have_their_lengths() {
        let mut fw = stlink(true);
        assert_eq!(one(&mut fw, &[0xF1]), [0x30, 0x00, 0x83, 0x04, 0x4E, 0x37]);
        let ext = one(&mut fw, &[0xFB]);
        assert_eq!((ext.len(), ext[0], ext[2]), (12, 3, 15));
        assert_eq!(one(&mut fw, &[0xF5]), [1, 0], "idle after boot");
        let freq = one(&mut fw, &[0xF2, 0x62, 0x00]);
        assert_eq!(freq.len(), 52);
        assert_eq!(
            (freq[0], le32(&freq, 8), le32(&freq, 12)),
            (0x80, 7, 24_000)
        );
        let set = one(&mut fw, &[0xF2, 0x61, 0x00, 0x00, 0xA0, 0x0F, 0, 0]);
        assert_eq!(
            (set[0], le32(&set, 4)),
            (0x80, 3_300),
            "4000 kHz asked, 3300 given"
        );
        assert_eq!(
            one(&mut fw, &[0xF2, 0x61, 0, 0, 1, 0, 0, 0])[0],
            status::FREQ_NOT_SUPPORTED
        );
    }

    #[test]
    fn the_target_voltage_follows_the_supply() {
        let volts = |r: Vec<u8>| 2.0 * le32(&r, 4) as f32 * 1.2 / le32(&r, 0) as f32;
        assert!((volts(one(&mut stlink(true), &[0xF7])) - 3.3).abs() < 0.01);
        assert_eq!(volts(one(&mut stlink(false), &[0xF7])), 0.0);
    }

    #[test]
    fn a_silent_target_fails_the_swd_entry_and_memory_still_completes_its_data_phases() {
        let mut fw = stlink(false);
        assert_eq!(
            one(&mut fw, &[0xF2, 0x30, 0xA3, 0x00]),
            [status::GET_IDCODE_ERROR, 0]
        );
        assert_eq!(one(&mut fw, &[0xF5]), [1, 0], "still idle");
        // A read outside debug mode: all its data, then the error in GETLASTRWSTATUS2.
        let data = one(&mut fw, &[0xF2, 0x07, 0, 0, 0, 0x08, 0x10, 0x00, 0]);
        assert_eq!(data, vec![0; 16]);
        let rw = one(&mut fw, &[0xF2, 0x3E]);
        assert_eq!((rw.len(), rw[0]), (12, status::CMD_ERROR));
        // A one-byte read answers two bytes.
        assert_eq!(one(&mut fw, &[0xF2, 0x0C, 0, 0, 0, 0x08, 1, 0, 0]).len(), 2);
        // A write's data phase is taken whole and answered with nothing, even split in two
        // transfers; the next command block is a command again.
        let mut cdb = [0u8; 16];
        cdb[..9].copy_from_slice(&[0xF2, 0x08, 0, 0, 0, 0x24, 8, 0, 0]);
        assert!(fw.receive(&cdb).is_empty());
        assert!(fw.receive(&[1, 2, 3]).is_empty());
        assert!(fw.receive(&[4, 5, 6, 7, 8]).is_empty());
        assert_eq!(one(&mut fw, &[0xF5]), [1, 0]);
        // No reply to leaving debug mode; an unknown debug command says so.
        assert!(fw.receive(&[0xF2, 0x21]).is_empty());
        assert_eq!(one(&mut fw, &[0xF2, 0x99]), [status::UNKNOWN_COMMAND, 0]);
    }

    #[test]
    fn nrst_is_driven_and_released_by_a_reboot() {
        let mut fw = stlink(true);
        assert_eq!(one(&mut fw, &[0xF2, 0x3C, 0x00]), [0x80, 0]);
        assert!(fw.wire.nrst_held());
        fw.reboot();
        assert!(
            !fw.wire.nrst_held(),
            "an ST-LINK that lost power drives no pin"
        );
    }
}
