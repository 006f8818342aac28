//! Bridges the simulated board's bus to a real SocketCAN interface (e.g. `vcan0`), in place of
//! the slcan adapter simulator.
//!
//! The bridge has its own raw socket on the interface. The kernel hands every frame sent on a
//! vcan interface to the other sockets on it (not back to the sender), so the host's SocketCAN
//! driver and the bridge talk through the kernel: frames the bridge receives go to the board
//! ([`Shared::deliver_to_board`]), frames the board transmits ([`Shared::board_tx`]) go out on
//! the interface. Only the board's side of the bus is simulated here; the host side is the real
//! driver on a real interface.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use rig_instruments::drivers::socketcan::SocketCanAdapter;
use rig_instruments::{CanAdapter, InstrumentError};

use crate::shared::{lock, Shared};

/// How long one receive waits before the bridge forwards the board's frames (and checks for
/// stop): the board ticks every millisecond.
const POLL: Duration = Duration::from_millis(1);
/// At most one log line per problem this often.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Opens the bridge's socket (a classic CAN socket: the board speaks classic CAN).
pub fn open(interface: &str) -> std::io::Result<SocketCanAdapter> {
    // The bitrate only appears in advice text; a vcan interface has none.
    SocketCanAdapter::open(interface, false, 500_000)
        .map_err(|e| std::io::Error::other(format!("SocketCAN bridge to the board: {e}")))
}

/// Rate-limited warnings: a broken interface must not flood the log at 1 kHz.
struct Warn {
    last: Option<Instant>,
}

impl Warn {
    fn warn(&mut self, what: &str, e: &InstrumentError) {
        if self.last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            self.last = Some(Instant::now());
            tracing::warn!(error = %e, "simulated bench, SocketCAN bridge: {what}");
        }
    }
}

pub fn run(shared: &Shared, mut socket: SocketCanAdapter) {
    let mut warn = Warn { last: None };
    while !shared.stop.load(Ordering::Relaxed) {
        match socket.recv(POLL) {
            Ok(Some(frame)) => shared.deliver_to_board(frame),
            Ok(None) => {}
            Err(e) => {
                warn.warn("receive", &e);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let frames: Vec<_> = lock(&shared.board_tx).drain(..).collect();
        for f in &frames {
            if let Err(e) = socket.send(f) {
                warn.warn("send", &e);
            }
        }
    }
}
