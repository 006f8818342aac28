//! LCUS relay board simulator (LCUS-1, or a multi-channel LCUS-2/4): takes `A0 ch state sum`
//! frames and switches what each channel is wired to: the board's supply, and optionally NRST
//! (to GND) or BOOT0 (to VDD).

use std::sync::atomic::Ordering;

use crate::faults::DevicePort;

use bench_config::{RecoveryLine, RecoveryPin};

use crate::shared::{lock, NrstDriver, Shared};

/// What the relay's channels are wired to.
#[derive(Clone, Copy, Debug)]
pub struct RelayWiring {
    /// The channel in the board's supply.
    pub power: u8,
    pub recovery: Option<RecoveryLine>,
}

impl RelayWiring {
    /// Switches channel `ch`; `false` when nothing is wired to it.
    fn switch(&self, shared: &Shared, ch: u8, on: bool) -> bool {
        if ch == self.power {
            shared.set_power(on);
            return true;
        }
        match self.recovery {
            Some(RecoveryLine { channel, pin }) if channel == ch => {
                match pin {
                    RecoveryPin::Nrst => shared.drive_nrst(NrstDriver::Relay, on),
                    RecoveryPin::Boot0 => shared.set_boot0(on),
                }
                true
            }
            _ => false,
        }
    }
}

pub fn run(shared: &Shared, mut port: DevicePort, wiring: RelayWiring) {
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
            let accepted = sum_ok && cmd[2] <= 1 && wiring.switch(shared, cmd[1], cmd[2] == 1);
            lock(&shared.relay_log).push((cmd, accepted));
            if !accepted {
                tracing::warn!(?cmd, "simulated relay ignored a malformed command");
            }
        }
        if !pending.contains(&0xA0) {
            pending.clear();
        }
    }
}
