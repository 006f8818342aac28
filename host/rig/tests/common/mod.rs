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
    run_choosing(rig, scenarios, rig::commands::run::RunChoices::default())
}

/// [`run`] with `rig run`'s choices (retries, evidence).
pub fn run_choosing(
    rig: &Path,
    scenarios: &[PathBuf],
    choices: rig::commands::run::RunChoices,
) -> (RunResult, tempfile::TempDir) {
    let reports = tempfile::tempdir().expect("temp dir");
    let abort = AtomicBool::new(false);
    let _guard = bench_lock();
    let result = rig::commands::run::run_with(
        rig.to_path_buf(),
        scenarios.to_vec(),
        reports.path().to_path_buf(),
        rig_verify::dbc::default_path(),
        choices,
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

/// The ELF at `rel`, or None (a recorded [`skip`]) when firmware/build.sh has not been run.
pub fn shipped(rel: &str) -> Option<PathBuf> {
    let p = repo(rel);
    if p.is_file() {
        Some(p)
    } else {
        skip(
            &format!("{} is not built", p.display()),
            &format!(
                "run firmware/build.sh{}",
                if rel.contains("/ldo/") { " --ldo" } else { "" }
            ),
        );
        None
    }
}

/// The environment variable naming the file every skip is appended to (one line each: test,
/// reason). CI sets it and compares what it finds with the skips the step expects.
pub const SKIP_LEDGER: &str = "GAUGE_SKIP_LEDGER";

/// The running test as `binary::test` (the test harness names each test's thread after it).
pub fn test_name() -> String {
    let binary = std::env::args()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    // Cargo names an integration test's binary `name-<hash>`.
    let binary = match binary.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
        _ => binary,
    };
    let thread = std::thread::current();
    format!("{binary}::{}", thread.name().unwrap_or("?"))
}

/// Records that the running test did not test what it is for: on stderr with the reason and
/// what to do, and in the skip ledger when [`SKIP_LEDGER`] names one. The test then returns
/// early and passes, so a fresh machine's `cargo test` stays green while saying what it left
/// out; CI fails on any skip a step does not expect (`.ci/lib/skips.sh`).
pub fn skip(reason: &str, to_run_it: &str) {
    use std::io::Write;
    let test = test_name();
    // Straight to the stderr stream: the test harness captures eprintln! of a passing test.
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIP {test}: {reason}; to run it: {to_run_it}"
    );
    let Some(ledger) = std::env::var_os(SKIP_LEDGER) else {
        return;
    };
    // One short line per append: concurrent test binaries do not interleave.
    let line = format!("{test}\t{reason}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&ledger)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        // A skip that cannot be recorded must not pass unseen.
        panic!(
            "cannot record the skip in {}: {e}",
            Path::new(&ledger).display()
        );
    }
}
