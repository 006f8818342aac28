//! One rig process per bench: a second `rig` on a bench in use stops before touching anything,
//! naming the holder; once the holder lets go, the bench is free.

mod common;

use std::process::Command;

use bench_config::RigConfig;

/// A hardware bench whose devices do not exist (nothing here is opened before the lock).
fn bench(dir: &std::path::Path) -> std::path::PathBuf {
    common::write(
        dir,
        "hw.toml",
        "name = \"hw\"\n\
         [board]\nmodel = \"NUCLEO-H755ZI-Q\"\nbackend = \"hardware\"\nwiring = \"direct-smps\"\n\
         [firmware]\nkind = \"flashed\"\n\
         [can]\nadapter = \"slcan\"\nport = \"/dev/serial/by-id/no-such-canable\"\n\
         [pulse_meter]\nanalyzer = \"sump\"\nport = \"/dev/serial/by-id/no-such-sump\"\n\
         [power]\nswitch = \"lcus1\"\nport = \"/dev/serial/by-id/no-such-relay\"\n\
         [telemetry]\nport = \"/dev/serial/by-id/no-such-vcp\"\n\
         [probe]\nbackend = \"probe-rs\"\nserial = \"0030003A3433510237363934\"\n",
    )
}

fn rig(lock_dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(args)
        .env("GAUGE_RIG_LOCK_DIR", lock_dir)
        .output()
        .expect("rig runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn a_second_rig_on_a_bench_in_use_names_the_holder_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let locks = dir.path().join("locks");
    let hw = bench(dir.path());
    let config = RigConfig::load(&hw).unwrap_or_else(|e| panic!("{e}"));
    let held = rig::assembly::bench_lock::acquire_in(&locks, &config).expect("free bench");
    assert_eq!(held.len(), 5, "4 serial devices and the probe");
    let hw_path = hw.to_string_lossy().to_string();
    let reports = dir.path().join("reports").to_string_lossy().to_string();
    let holder = format!("pid {} (`", std::process::id());
    for args in [
        vec!["run", "--rig", &hw_path, "--reports", &reports],
        vec!["doctor", "--rig", &hw_path],
        vec!["recover", "--rig", &hw_path],
    ] {
        let (code, text) = rig(&locks, &args);
        assert!(
            text.contains("bench in use: ") && text.contains(&holder),
            "{args:?}: {text}"
        );
        assert!(
            !text.contains("No such file"),
            "{args:?} tried a device: {text}"
        );
        assert_ne!(code, Some(0), "{args:?}: {text}");
    }
    drop(held);
    // Free again: doctor now gets as far as the devices, which do not exist.
    let (_, text) = rig(&locks, &["doctor", "--rig", &hw_path]);
    assert!(!text.contains("bench in use"), "{text}");
    assert!(text.contains("No such file"), "{text}");
}

/// A holder killed outright (SIGKILL: no cleanup at all) leaves the bench free at once: the
/// locks are flocks, which the kernel drops with the process. The power command it had started
/// (a process group of its own, still running) does not inherit them.
#[test]
fn a_killed_holder_leaves_the_bench_free() {
    let dir = tempfile::tempdir().unwrap();
    let locks = dir.path().join("locks");
    let text = std::fs::read_to_string(bench(dir.path()))
        .unwrap()
        .replace(
            "switch = \"lcus1\"\nport = \"/dev/serial/by-id/no-such-relay\"",
            "switch = \"command\"\non_command = [\"sleep\", \"30\"]\noff_command = [\"true\"]\ncommand_timeout_ms = 60000",
        );
    let hw = common::write(dir.path(), "hw-command.toml", &text);
    let config = RigConfig::load(&hw).unwrap_or_else(|e| panic!("{e}"));
    let mut holder = Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(["doctor", "--rig", &hw.to_string_lossy()])
        .env("GAUGE_RIG_LOCK_DIR", &locks)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("rig runs");
    // The holder has the bench once a lock attempt here fails (it then sits in its power-on
    // command for 30 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match rig::assembly::bench_lock::acquire_in(&locks, &config) {
            Err(e) if e.to_string().contains("bench in use") => break,
            Err(e) => panic!("unexpected lock error: {e}"),
            Ok(free) => drop(free),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the holder never took the bench"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    holder.kill().expect("SIGKILL the holder");
    let status = holder.wait().expect("holder reaped");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let free = rig::assembly::bench_lock::acquire_in(&locks, &config)
        .unwrap_or_else(|e| panic!("a killed holder's bench is still locked: {e}"));
    assert_eq!(free.len(), 5, "4 devices and the probe");
}
