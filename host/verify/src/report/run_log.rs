//! The rig's own log in the run folder (`rig.log`): the binary's tracing subscriber writes
//! through [`writer`] as well as to stderr, and a run's [`super::ReportWriter`] points it at
//! its folder while the run lasts. Nothing is written while no run folder is open.

use std::{
    fs::File,
    io::Write,
    path::Path,
    sync::{Mutex, MutexGuard},
};

static RUN_LOG: Mutex<Option<File>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<File>> {
    RUN_LOG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts `rig.log` in `dir` (appending: a re-render keeps what was there).
pub(super) fn open_in(dir: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("rig.log"))?;
    *lock() = Some(file);
    Ok(())
}

/// Stops writing to the run folder.
pub(super) fn close() {
    if let Some(mut f) = lock().take() {
        let _ = f.flush();
    }
}

/// A writer for the tracing subscriber (`.with_writer(rig_verify::report::run_log::writer)`):
/// each event goes to the open run's `rig.log`, or nowhere.
pub fn writer() -> RunLogWriter {
    RunLogWriter
}

pub struct RunLogWriter;

impl Write for RunLogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(f) = lock().as_mut() {
            // A full disk must not take the log line's caller down with it.
            let _ = f.write_all(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if let Some(f) = lock().as_mut() {
            let _ = f.flush();
        }
        Ok(())
    }
}
