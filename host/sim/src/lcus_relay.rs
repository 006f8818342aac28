//! LCUS-1 relay simulator: takes `A0 ch state sum` frames and switches the board's supply.

use std::sync::atomic::Ordering;

use serialport::TTYPort;

use crate::shared::{lock, Shared};

pub fn run(shared: &Shared, mut port: TTYPort, channel: u8) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 64];
    while !shared.stop.load(Ordering::Relaxed) {
        match std::io::Read::read(&mut port, &mut buf) {
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(_) => continue,
        }
        // Resynchronise on the 0xA0 start byte.
        while let Some(start) = pending.iter().position(|&b| b == 0xA0) {
            pending.drain(..start);
            if pending.len() < 4 {
                break;
            }
            let cmd: [u8; 4] = [pending[0], pending[1], pending[2], pending[3]];
            pending.drain(..4);
            let sum_ok = cmd[3] == cmd[0].wrapping_add(cmd[1]).wrapping_add(cmd[2]);
            let accepted = sum_ok && cmd[1] == channel && cmd[2] <= 1;
            lock(&shared.relay_log).push((cmd, accepted));
            if accepted {
                shared.set_power(cmd[2] == 1);
            } else {
                tracing::warn!(?cmd, "simulated relay ignored a malformed command");
            }
        }
        if !pending.contains(&0xA0) {
            pending.clear();
        }
    }
}
