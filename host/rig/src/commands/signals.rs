//! Ctrl-C, SIGTERM and SIGHUP for every command that drives a bench: the first ends the work
//! cleanly (the current wait ends early, the rest is skipped, the report is written, the bench
//! is left in its safe state); a second quits at once (exit 130), except while the flash is
//! being erased or programmed: then the rig says what it waits for and for how long, and quits
//! when that is done.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use rig_instruments::interrupt::{self, OnSignal};

/// The exit code of a rig that quit on a second interrupt (128 + SIGINT, as shells report it).
pub const QUIT_EXIT_CODE: i32 = 130;

/// Installs the handler; the returned flag is set at the first signal. `what` names the work
/// for the first message ("the run", "the soak").
pub fn install(what: &'static str) -> Arc<AtomicBool> {
    let abort = Arc::new(AtomicBool::new(false));
    let flag = abort.clone();
    let count = AtomicU32::new(0);
    let installed = ctrlc::set_handler(move || {
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        flag.store(true, Ordering::SeqCst);
        interrupt::request();
        match interrupt::on_signal(n, interrupt::critical_now().as_ref()) {
            OnSignal::Finish => eprintln!(
                "\ninterrupted: ending {what} now (the step under way stops at its next wait, the rest is skipped, the report is written); interrupt again to quit at once"
            ),
            OnSignal::QuitNow => {
                eprintln!("interrupted twice: quitting; the report holds every step that finished");
                std::process::exit(QUIT_EXIT_CODE);
            }
            OnSignal::WaitFor { what, at_most } => {
                eprintln!(
                    "interrupted twice, but {what} is under way: waiting for it to end (at most {:.0} s more) before quitting; cut short, it would leave the flash half-written and the board unbootable",
                    at_most.as_secs_f64()
                );
                let until = Instant::now() + at_most;
                while interrupt::critical_now().is_some() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(20));
                }
                eprintln!("quitting");
                std::process::exit(QUIT_EXIT_CODE);
            }
        }
    });
    if let Err(e) = installed {
        eprintln!(
            "warning: cannot catch Ctrl-C ({e}); an interrupted run leaves only its last report"
        );
    }
    abort
}
