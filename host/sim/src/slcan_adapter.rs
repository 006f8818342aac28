//! slcan (LAWICEL) USB-CAN adapter simulator on the simulated bus.
//!
//! Supports `S0..S8`, `O`, `L`, `C`, `V`, `N`, `F`, `Z0/Z1`, `t`, `T`, `r`, `R`. Frames reach the
//! board only while the channel is open at the board's 500 kbit/s; `S7` means 800 kbit/s here.

use std::{io::Write, sync::atomic::Ordering};

use crate::faults::DevicePort;
use gauge_logic::frame::CanFrame;

use crate::shared::{lock, Shared};

const BOARD_BITRATE_CODE: u8 = b'6';

struct Adapter {
    bitrate_code: Option<u8>,
    open: bool,
    listen_only: bool,
    timestamps: bool,
}

fn hex(bytes: &[u8]) -> Option<u32> {
    u32::from_str_radix(std::str::from_utf8(bytes).ok()?, 16).ok()
}

/// Parses the body of a `t`/`T` command (after the letter).
fn parse_transmit(extended: bool, body: &[u8]) -> Option<CanFrame> {
    let id_len = if extended { 8 } else { 3 };
    let id = hex(body.get(..id_len)?)?;
    let len = usize::from(body.get(id_len)?.checked_sub(b'0')?);
    if len > 8 || body.len() != id_len + 1 + 2 * len {
        return None;
    }
    let mut data = Vec::with_capacity(len);
    for i in 0..len {
        data.push(hex(&body[id_len + 1 + 2 * i..id_len + 3 + 2 * i])? as u8);
    }
    if extended {
        CanFrame::extended(id, &data)
    } else {
        CanFrame::standard(u16::try_from(id).ok()?, &data)
    }
}

impl Adapter {
    /// Handles one command line; returns the reply bytes.
    fn handle(&mut self, shared: &Shared, line: &[u8]) -> Vec<u8> {
        const OK: &[u8] = b"\r";
        const ERR: &[u8] = b"\x07";
        let Some(&cmd) = line.first() else {
            return OK.to_vec();
        };
        let arg = &line[1..];
        match cmd {
            b'S' if !self.open && arg.len() == 1 && (b'0'..=b'8').contains(&arg[0]) => {
                self.bitrate_code = Some(arg[0]);
                OK.to_vec()
            }
            b'O' | b'L' if !self.open && arg.is_empty() && self.bitrate_code.is_some() => {
                self.open = true;
                self.listen_only = cmd == b'L';
                OK.to_vec()
            }
            b'C' if arg.is_empty() && self.open => {
                self.open = false;
                OK.to_vec()
            }
            b'V' => b"V1013\r".to_vec(),
            b'N' => b"NSIM1\r".to_vec(),
            // The adapter's controller on the board's bus: a short is a bus error in error
            // passive; alone with the board it sees no acknowledgement (error passive).
            b'F' if self.open => match shared.board().target.can_bus_fault() {
                rig_instruments::CanBusFault::None => b"F00\r".to_vec(),
                rig_instruments::CanBusFault::NoAck => b"F20\r".to_vec(),
                rig_instruments::CanBusFault::Short => b"FA0\r".to_vec(),
            },
            b'Z' if !self.open && (arg == b"0" || arg == b"1") => {
                self.timestamps = arg == b"1";
                OK.to_vec()
            }
            b't' | b'T' if self.open && !self.listen_only => match parse_transmit(cmd == b'T', arg)
            {
                Some(frame) => {
                    if self.bitrate_code == Some(BOARD_BITRATE_CODE) {
                        shared.deliver_to_board(frame);
                    }
                    if cmd == b't' {
                        b"z\r".to_vec()
                    } else {
                        b"Z\r".to_vec()
                    }
                }
                None => ERR.to_vec(),
            },
            // Remote frames: acknowledged, the gauge has no use for them.
            b'r' | b'R' if self.open && !self.listen_only => {
                if cmd == b'r' {
                    b"z\r".to_vec()
                } else {
                    b"Z\r".to_vec()
                }
            }
            _ => ERR.to_vec(),
        }
    }

    fn frame_line(&self, f: &CanFrame, now_ms: u64) -> Vec<u8> {
        let mut s = if f.extended {
            format!("T{:08X}{}", f.id, f.len)
        } else {
            format!("t{:03X}{}", f.id, f.len)
        };
        for b in f.payload() {
            s.push_str(&format!("{b:02X}"));
        }
        if self.timestamps {
            s.push_str(&format!("{:04X}", now_ms % 60_000));
        }
        s.push('\r');
        s.into_bytes()
    }
}

pub fn run(shared: &Shared, mut port: DevicePort) {
    let mut a = Adapter {
        bitrate_code: None,
        open: false,
        listen_only: false,
        timestamps: false,
    };
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    while !shared.stop.load(Ordering::Relaxed) {
        let n = std::io::Read::read(&mut port, &mut buf).unwrap_or(0);
        let mut out = Vec::new();
        for &b in &buf[..n] {
            if b == b'\r' {
                out.extend(a.handle(shared, &line));
                line.clear();
            } else if b != b'\n' && line.len() < 64 {
                line.push(b);
            }
        }
        let frames: Vec<CanFrame> = lock(&shared.board_tx).drain(..).collect();
        if a.open && a.bitrate_code == Some(BOARD_BITRATE_CODE) {
            let now_ms = shared.now_us() / 1000;
            for f in &frames {
                out.extend(a.frame_line(f, now_ms));
            }
        }
        if !out.is_empty() {
            let _ = port.write_all(&out);
            let _ = port.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transmit_bodies() {
        let f = parse_transmit(false, b"7DF802015C0000000000").unwrap();
        assert_eq!((f.id, f.len), (0x7DF, 8));
        assert!(parse_transmit(false, b"7DF802015C").is_none());
        assert!(parse_transmit(true, b"1ABCDEF00").unwrap().extended);
    }
}
