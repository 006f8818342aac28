//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    sync::{atomic::AtomicBool, Mutex, MutexGuard},
};

use rig_verify::job::{Quiet, RunResult};

/// Benches run in real time: one at a time per test binary keeps their timing honest on 2 cores.
static BENCH: Mutex<()> = Mutex::new(());

pub fn bench_lock() -> MutexGuard<'static, ()> {
    BENCH.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// Runs `scenarios` on `rig` with reports in a temporary folder.
pub fn run(rig: &Path, scenarios: &[PathBuf]) -> (RunResult, tempfile::TempDir) {
    let reports = tempfile::tempdir().expect("temp dir");
    let abort = AtomicBool::new(false);
    let _guard = bench_lock();
    let result = rig::commands::run::run(
        rig.to_path_buf(),
        scenarios.to_vec(),
        reports.path().to_path_buf(),
        rig_verify::dbc::default_path(),
        &abort,
        &mut Quiet,
    )
    .expect("report written");
    (result, reports)
}

/// A copy of a shipped rig config with `edits` (from, to) applied, in `dir`.
pub fn rig_variant(dir: &Path, base: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(repo(base)).expect("rig config");
    for (from, to) in edits {
        assert!(text.contains(from), "{base} has no {from:?}");
        text = text.replacen(from, to, 1);
    }
    let p = dir.join("rig.toml");
    std::fs::write(&p, text).expect("write rig");
    p
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// The shipped board ELFs (built by `firmware/build.sh` and `firmware/build.sh --ldo`).
pub const DIRECT_SMPS_ELF: &str = "firmware/target/thumbv7em-none-eabihf/release/firmware";
pub const LDO_ELF: &str = "firmware/target/ldo/thumbv7em-none-eabihf/release/firmware";

/// The ELF at `rel`, or None (with a message) when firmware/build.sh has not been run.
pub fn shipped(rel: &str) -> Option<PathBuf> {
    let p = repo(rel);
    if p.is_file() {
        Some(p)
    } else {
        println!(
            "SKIP: {} is not built (firmware/build.sh{})",
            p.display(),
            if rel.contains("/ldo/") { " --ldo" } else { "" }
        );
        None
    }
}
