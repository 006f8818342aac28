//! The process's interrupt (Ctrl-C, SIGTERM): requested once, seen by every wait that could
//! outlast a person's patience, and the operations a second Ctrl-C must not cut short (a
//! flash erase or program: a board left half-erased does not boot).
//!
//! Process-wide on purpose: a signal is. The `rig` binary's handler requests it; waits here
//! and in the verification code end early when it is set.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// An operation under way that must run to its end (what, since, how long it may take).
#[derive(Clone, Debug, PartialEq)]
pub struct Critical {
    pub what: String,
    pub since: Instant,
    pub bound: Duration,
}

static CRITICAL: Mutex<Option<Critical>> = Mutex::new(None);

/// Asks every interruptible wait to end.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Sleeps `d`, or less when an interrupt comes; `false` if it came.
pub fn sleep(d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if requested() {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

/// Marks an operation that must not be cut short until the guard drops.
pub fn critical(what: impl Into<String>, bound: Duration) -> CriticalGuard {
    let c = Critical {
        what: what.into(),
        since: Instant::now(),
        bound,
    };
    *CRITICAL.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
    CriticalGuard(())
}

/// The operation under way that must run to its end, if any.
pub fn critical_now() -> Option<Critical> {
    CRITICAL.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

pub struct CriticalGuard(());

impl Drop for CriticalGuard {
    fn drop(&mut self) {
        *CRITICAL.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// What a signal does: the first ends the run cleanly, a second quits at once, except while a
/// critical operation runs: then the rig says what it waits for and how long, and quits after.
#[derive(Debug, PartialEq)]
pub enum OnSignal {
    Finish,
    QuitNow,
    WaitFor { what: String, at_most: Duration },
}

pub fn on_signal(count: u32, critical: Option<&Critical>) -> OnSignal {
    match (count, critical) {
        (0 | 1, _) => OnSignal::Finish,
        (_, Some(c)) => OnSignal::WaitFor {
            what: c.what.clone(),
            at_most: c.bound.saturating_sub(c.since.elapsed()),
        },
        (_, None) => OnSignal::QuitNow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_signal_quits_unless_the_flash_is_being_written() {
        assert_eq!(on_signal(1, None), OnSignal::Finish);
        assert_eq!(on_signal(2, None), OnSignal::QuitNow);
        let c = Critical {
            what: "a flash download".into(),
            since: Instant::now(),
            bound: Duration::from_secs(60),
        };
        match on_signal(2, Some(&c)) {
            OnSignal::WaitFor { what, at_most } => {
                assert_eq!(what, "a flash download");
                assert!(at_most <= Duration::from_secs(60) && at_most > Duration::from_secs(59));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            on_signal(1, Some(&c)),
            OnSignal::Finish,
            "the first still finishes"
        );
    }

    #[test]
    fn the_critical_mark_goes_with_its_guard() {
        {
            let _g = critical("a mass erase", Duration::from_secs(30));
            assert_eq!(critical_now().map(|c| c.what), Some("a mass erase".into()));
        }
        assert_eq!(critical_now(), None);
    }
}
