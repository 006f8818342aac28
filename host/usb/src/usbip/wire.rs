//! The USB/IP wire format (the kernel's `Documentation/usb/usbip_protocol.rst`): the two
//! operations a client sends before import (OP_REQ_DEVLIST, OP_REQ_IMPORT) and the URB traffic
//! after it (USBIP_CMD_SUBMIT / RET_SUBMIT, CMD_UNLINK / RET_UNLINK). Every field is big-endian;
//! URB headers are 48 bytes.

pub use crate::device::{Setup, Speed};

/// Protocol version both sides send (1.1.1).
pub const VERSION: u16 = 0x0111;
pub const OP_REQ_DEVLIST: u16 = 0x8005;
pub const OP_REP_DEVLIST: u16 = 0x0005;
pub const OP_REQ_IMPORT: u16 = 0x8003;
pub const OP_REP_IMPORT: u16 = 0x0003;

pub const CMD_SUBMIT: u32 = 1;
pub const CMD_UNLINK: u32 = 2;
pub const RET_SUBMIT: u32 = 3;
pub const RET_UNLINK: u32 = 4;

/// Length of every URB header (command and reply).
pub const URB_HEADER_LEN: usize = 48;
/// Length of an operation header (version, code, status).
pub const OP_HEADER_LEN: usize = 8;
/// Length of the bus id field of OP_REQ_IMPORT and of a device record.
pub const BUSID_LEN: usize = 32;
/// Length of a device record without its interface list (OP_REP_IMPORT carries just this).
pub const DEVICE_RECORD_LEN: usize = 256 + BUSID_LEN + 12 + 6 + 6;

/// Status of an URB that completed (negative errno values otherwise).
pub const STATUS_OK: i32 = 0;
/// The endpoint stalled (a request the device does not support).
pub const STATUS_STALL: i32 = -libc::EPIPE;
/// An unlinked URB that had not completed yet.
pub const STATUS_UNLINKED: i32 = -libc::ECONNRESET;

/// Malformed input from the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("USB/IP operation with protocol version {0:#06x} (this server speaks {VERSION:#06x})")]
    Version(u16),
    #[error("unknown USB/IP operation code {0:#06x}")]
    UnknownOperation(u16),
    #[error("unknown USB/IP command {0:#x}")]
    UnknownCommand(u32),
    #[error("USB/IP submit of {0} bytes is longer than this server accepts ({MAX_TRANSFER})")]
    TooLong(u32),
    #[error("isochronous transfers are not supported (number_of_packets {0})")]
    Isochronous(u32),
}

/// The longest transfer buffer accepted in one URB (cdc_acm and usbfs stay far below).
pub const MAX_TRANSFER: u32 = 1 << 20;

/// An operation header before import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    DevList,
    Import,
}

pub fn parse_op_header(bytes: &[u8; OP_HEADER_LEN]) -> Result<Operation, WireError> {
    let version = u16::from_be_bytes([bytes[0], bytes[1]]);
    let code = u16::from_be_bytes([bytes[2], bytes[3]]);
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    match code {
        OP_REQ_DEVLIST => Ok(Operation::DevList),
        OP_REQ_IMPORT => Ok(Operation::Import),
        other => Err(WireError::UnknownOperation(other)),
    }
}

/// The bus id of an OP_REQ_IMPORT (NUL-padded).
pub fn parse_busid(bytes: &[u8; BUSID_LEN]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(BUSID_LEN);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// An operation header (version, code, status): a request's whole, a reply's start.
pub fn op_header(code: u16, status: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(OP_HEADER_LEN);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&status.to_be_bytes());
    out
}

/// What a device record says about one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// A sysfs-like path (shown by `usbip list`).
    pub path: String,
    pub busid: String,
    pub busnum: u32,
    pub devnum: u32,
    pub speed: Speed,
    pub vendor_id: u16,
    pub product_id: u16,
    pub bcd_device: u16,
    pub class: u8,
    pub subclass: u8,
    pub protocol: u8,
    pub configuration_value: u8,
    pub num_configurations: u8,
    /// (class, subclass, protocol) of each interface.
    pub interfaces: Vec<(u8, u8, u8)>,
}

fn padded(out: &mut Vec<u8>, text: &str, len: usize) {
    let bytes = text.as_bytes();
    let n = bytes.len().min(len - 1);
    out.extend_from_slice(&bytes[..n]);
    out.resize(out.len() + len - n, 0);
}

impl DeviceRecord {
    /// The record without the interface list (OP_REP_IMPORT).
    pub fn encode(&self, out: &mut Vec<u8>) {
        padded(out, &self.path, 256);
        padded(out, &self.busid, BUSID_LEN);
        out.extend_from_slice(&self.busnum.to_be_bytes());
        out.extend_from_slice(&self.devnum.to_be_bytes());
        out.extend_from_slice(&(self.speed as u32).to_be_bytes());
        out.extend_from_slice(&self.vendor_id.to_be_bytes());
        out.extend_from_slice(&self.product_id.to_be_bytes());
        out.extend_from_slice(&self.bcd_device.to_be_bytes());
        out.extend_from_slice(&[
            self.class,
            self.subclass,
            self.protocol,
            self.configuration_value,
            self.num_configurations,
            self.interfaces.len() as u8,
        ]);
    }

    /// The record with its interface list (OP_REP_DEVLIST).
    pub fn encode_with_interfaces(&self, out: &mut Vec<u8>) {
        self.encode(out);
        for &(class, subclass, protocol) in &self.interfaces {
            out.extend_from_slice(&[class, subclass, protocol, 0]);
        }
    }
}

/// The OP_REP_DEVLIST answer.
pub fn devlist_reply(devices: &[DeviceRecord]) -> Vec<u8> {
    let mut out = op_header(OP_REP_DEVLIST, 0);
    out.extend_from_slice(&(devices.len() as u32).to_be_bytes());
    for d in devices {
        d.encode_with_interfaces(&mut out);
    }
    out
}

/// The OP_REP_IMPORT answer: the record, or status 1 and nothing when the bus id is not
/// exported (or already imported).
pub fn import_reply(device: Option<&DeviceRecord>) -> Vec<u8> {
    match device {
        Some(d) => {
            let mut out = op_header(OP_REP_IMPORT, 0);
            d.encode(&mut out);
            out
        }
        None => op_header(OP_REP_IMPORT, 1),
    }
}

/// A URB command from the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrbCommand {
    Submit(Submit),
    Unlink { seqnum: u32, unlink_seqnum: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submit {
    pub seqnum: u32,
    pub devid: u32,
    /// Device to host.
    pub direction_in: bool,
    /// Endpoint number (0-15), without the direction bit.
    pub endpoint: u8,
    pub transfer_flags: u32,
    pub length: u32,
    pub setup: [u8; 8],
    /// OUT data (read after the header).
    pub data: Vec<u8>,
}

impl Submit {
    /// The endpoint address as a USB descriptor writes it (0x81 for IN 1).
    pub fn address(&self) -> u8 {
        self.endpoint | if self.direction_in { 0x80 } else { 0 }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A parsed URB header, and how many OUT data bytes follow it.
pub fn parse_urb_header(h: &[u8; URB_HEADER_LEN]) -> Result<(UrbCommand, usize), WireError> {
    let command = be32(h, 0);
    let seqnum = be32(h, 4);
    match command {
        CMD_SUBMIT => {
            let direction_in = be32(h, 12) == 1;
            let length = be32(h, 24);
            let packets = be32(h, 32);
            if length > MAX_TRANSFER {
                return Err(WireError::TooLong(length));
            }
            // 0xffffffff (or 0) on a non-isochronous transfer.
            if packets != 0 && packets != u32::MAX {
                return Err(WireError::Isochronous(packets));
            }
            let mut setup = [0u8; 8];
            setup.copy_from_slice(&h[40..48]);
            let out_len = if direction_in { 0 } else { length as usize };
            Ok((
                UrbCommand::Submit(Submit {
                    seqnum,
                    devid: be32(h, 8),
                    direction_in,
                    endpoint: (be32(h, 16) & 0x0f) as u8,
                    transfer_flags: be32(h, 20),
                    length,
                    setup,
                    data: Vec::new(),
                }),
                out_len,
            ))
        }
        CMD_UNLINK => Ok((
            UrbCommand::Unlink {
                seqnum,
                unlink_seqnum: be32(h, 20),
            },
            0,
        )),
        other => Err(WireError::UnknownCommand(other)),
    }
}

/// A RET_SUBMIT: `data` is the IN data (empty for OUT); `actual_length` what was moved.
pub fn ret_submit(seqnum: u32, status: i32, actual_length: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(URB_HEADER_LEN + data.len());
    for word in [RET_SUBMIT, seqnum, 0, 0, 0] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(&status.to_be_bytes());
    out.extend_from_slice(&actual_length.to_be_bytes());
    // start_frame, number_of_packets, error_count, then 8 bytes of padding.
    out.resize(URB_HEADER_LEN, 0);
    out.extend_from_slice(data);
    out
}

pub fn ret_unlink(seqnum: u32, status: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(URB_HEADER_LEN);
    for word in [RET_UNLINK, seqnum, 0, 0, 0] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(&status.to_be_bytes());
    out.resize(URB_HEADER_LEN, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(words: [u32; 10], setup: [u8; 8]) -> [u8; URB_HEADER_LEN] {
        let mut h = [0u8; URB_HEADER_LEN];
        for (i, w) in words.iter().enumerate() {
            h[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
        h[40..].copy_from_slice(&setup);
        h
    }

    #[test]
    fn a_bulk_out_submit_announces_its_data() {
        let h = header(
            [CMD_SUBMIT, 7, 0x0001_0002, 0, 1, 0, 16, 0, u32::MAX, 0],
            [0; 8],
        );
        let (cmd, out_len) = parse_urb_header(&h).unwrap();
        let UrbCommand::Submit(s) = cmd else {
            panic!("not a submit")
        };
        assert_eq!(
            (s.seqnum, s.endpoint, s.address(), out_len),
            (7, 1, 0x01, 16)
        );
    }

    #[test]
    fn an_in_submit_has_no_data_and_unlink_names_its_target() {
        let h = header([CMD_SUBMIT, 8, 0, 1, 1, 0, 64, 0, 0, 0], [0; 8]);
        let (UrbCommand::Submit(s), 0) = parse_urb_header(&h).unwrap() else {
            panic!("IN submit with data")
        };
        assert_eq!(s.address(), 0x81);
        let h = header([CMD_UNLINK, 9, 0, 0, 0, 8, 0, 0, 0, 0], [0; 8]);
        assert_eq!(
            parse_urb_header(&h).unwrap().0,
            UrbCommand::Unlink {
                seqnum: 9,
                unlink_seqnum: 8
            }
        );
    }

    #[test]
    fn bad_headers_are_refused() {
        let iso = header([CMD_SUBMIT, 1, 0, 1, 1, 0, 64, 0, 3, 0], [0; 8]);
        assert_eq!(parse_urb_header(&iso), Err(WireError::Isochronous(3)));
        let long = header(
            [CMD_SUBMIT, 1, 0, 0, 1, 0, MAX_TRANSFER + 1, 0, 0, 0],
            [0; 8],
        );
        assert!(matches!(
            parse_urb_header(&long),
            Err(WireError::TooLong(_))
        ));
        let unknown = header([9, 1, 0, 0, 0, 0, 0, 0, 0, 0], [0; 8]);
        assert_eq!(
            parse_urb_header(&unknown),
            Err(WireError::UnknownCommand(9))
        );
        assert_eq!(
            parse_op_header(&[0x01, 0x06, 0x80, 0x05, 0, 0, 0, 0]),
            Err(WireError::Version(0x0106))
        );
    }

    #[test]
    fn records_have_the_kernels_sizes() {
        let d = DeviceRecord {
            path: "/sys/devices/rig/usb1/1-1".into(),
            busid: "1-1".into(),
            busnum: 1,
            devnum: 2,
            speed: Speed::High,
            vendor_id: 0x0483,
            product_id: 0x374e,
            bcd_device: 0x0100,
            class: 0xef,
            subclass: 2,
            protocol: 1,
            configuration_value: 1,
            num_configurations: 1,
            interfaces: vec![(0xff, 0, 0), (2, 2, 1)],
        };
        assert_eq!(
            import_reply(Some(&d)).len(),
            OP_HEADER_LEN + DEVICE_RECORD_LEN
        );
        assert_eq!(DEVICE_RECORD_LEN, 312);
        let list = devlist_reply(&[d]);
        assert_eq!(list.len(), OP_HEADER_LEN + 4 + DEVICE_RECORD_LEN + 8);
        assert_eq!(
            &list[OP_HEADER_LEN + 4 + 256..OP_HEADER_LEN + 4 + 259],
            b"1-1"
        );
        assert_eq!(
            ret_submit(1, STATUS_OK, 3, b"abc").len(),
            URB_HEADER_LEN + 3
        );
        assert_eq!(
            &ret_unlink(5, STATUS_UNLINKED)[20..24],
            &(-104i32).to_be_bytes()
        );
    }
}
