//! Call timeouts and the worker thread every blocking probe-rs call runs on.

use std::{sync::mpsc, time::Duration};

/// Listing the probes on USB.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(5);
/// One attach (open the USB device, connect, select the core); at least the config's
/// `attach_timeout_ms`.
pub const ATTACH_CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// One memory read, reset or NRST change.
pub const ACCESS_TIMEOUT: Duration = Duration::from_secs(5);
/// Erasing both flash banks (ST gives up to a few seconds per bank; probe-rs allows 40 s).
pub const ERASE_TIMEOUT: Duration = Duration::from_secs(90);
/// Downloading and verifying an image (2 MiB of flash at the slowest ST-LINK clock fits).
pub const FLASH_TIMEOUT: Duration = Duration::from_secs(300);
/// Ending a session (probe-rs clears breakpoints and stops debug on each core).
pub const DETACH_TIMEOUT: Duration = Duration::from_secs(5);
/// The core's halt after an attach under reset.
pub const HALT_TIMEOUT: Duration = Duration::from_millis(500);

/// Why a bounded call returned no result.
pub(super) enum Unfinished {
    Elapsed,
    Panicked,
    NoThread(String),
}

/// Runs `f` on its own thread and waits at most `timeout` for it. A call that overruns keeps
/// running (and keeps whatever it owns) until it returns on its own.
pub(super) fn bounded<R: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, Unfinished> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("probe-rs call".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| Unfinished::NoThread(e.to_string()))?;
    match rx.recv_timeout(timeout) {
        Ok(r) => Ok(r),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(Unfinished::Elapsed),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Unfinished::Panicked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_calls_return_or_time_out() {
        assert!(matches!(bounded(Duration::from_secs(5), || 7), Ok(7)));
        let slow = bounded(Duration::from_millis(20), || {
            std::thread::sleep(Duration::from_millis(300));
        });
        assert!(matches!(slow, Err(Unfinished::Elapsed)));
    }
}
