//! The rig process itself interrupted or starved: SIGTERM and Ctrl-C end a run cleanly with a
//! report, a second Ctrl-C quits at once, and a reports folder that cannot be written (or a
//! disk that fills mid-run) stops the run with the report shown instead of lost.

mod common;

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A scenario that spends a long time in a hold after one passing step.
fn long_hold(dir: &Path) -> std::path::PathBuf {
    common::write(
        dir,
        "long.toml",
        "name = \"long-hold\"\n\
         [[steps]]\naction = \"set_temperature\"\ncelsius = 90\n\n\
         [[steps]]\naction = \"expect_pulse\"\nus = 1455\n\n\
         [[steps]]\naction = \"hold\"\nms = 60000\n\n\
         [[steps]]\naction = \"expect_pulse\"\nus = 1455\n",
    )
}

fn rig_run(reports: &Path, scenario: &Path) -> Command {
    rig_run_on(&common::repo("rig-config/sim.toml"), reports, scenario)
}

fn rig_run_on(rig: &Path, reports: &Path, scenario: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rig"));
    c.arg("run")
        .arg("--rig")
        .arg(rig)
        .arg("--reports")
        .arg(reports)
        .arg(scenario)
        .current_dir(common::repo(""))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Waits until the run prints the step before the hold (it is then in the hold).
fn wait_for_hold(child: &mut Child) -> BufReader<std::process::ChildStdout> {
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).expect("stdout");
        assert!(
            n > 0 && Instant::now() < deadline,
            "the run ended before its hold"
        );
        if line.contains("expect_pulse") {
            std::thread::sleep(Duration::from_millis(300));
            return out;
        }
    }
}

fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid; no memory involved.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// The child's exit code, within `limit` of now.
fn exit_within(child: &mut Child, limit: Duration) -> (Option<i32>, Duration) {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return (status.code(), t.elapsed());
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("the rig did not exit within {limit:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn the_report(reports: &Path) -> serde_json::Value {
    let run = std::fs::read_dir(reports)
        .expect("reports folder")
        .filter_map(Result::ok)
        .find(|e| e.path().join("report.json").is_file())
        .expect("a run folder with report.json");
    serde_json::from_str(
        &std::fs::read_to_string(run.path().join("report.json")).expect("report.json"),
    )
    .expect("report.json parses")
}

/// SIGTERM (a CI runner's cancel) and SIGHUP (the terminal or SSH session closed) alike.
#[rstest::rstest]
#[case::sigterm(libc::SIGTERM)]
#[case::sighup(libc::SIGHUP)]
fn a_termination_signal_ends_the_run_at_once_with_a_report_and_the_bench_safe(#[case] sig: i32) {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let _bench = common::bench_lock();
    let mut child = rig_run(&reports, &long_hold(dir.path()))
        .spawn()
        .expect("rig runs");
    let _out = wait_for_hold(&mut child);
    signal(&child, sig);
    let (code, took) = exit_within(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(2), "an interrupted run exits 2");
    assert!(
        took < Duration::from_secs(3),
        "the hold was not cut short: {took:?}"
    );
    let report = the_report(&reports);
    assert_eq!(report["outcome"], "error");
    assert_eq!(report["error"], "run interrupted");
    let steps = report["scenarios"][0]["steps"].as_array().expect("steps");
    assert_eq!(steps[1]["outcome"], "pass", "the finished step is kept");
    assert_eq!(steps[3]["outcome"], "skipped", "{steps:#?}");
}

#[test]
fn a_second_ctrl_c_quits_at_once_and_keeps_every_finished_step() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    // After the first Ctrl-C the rig is still in a wait that no interrupt shortens (a
    // telemetry port that went silent: 2.5 s), so only the second can end it early.
    let base = std::fs::read_to_string(common::repo("rig-config/sim.toml")).expect("sim.toml");
    let rig = common::write(
        dir.path(),
        "rig.toml",
        &format!("{base}\n[simulated_faults]\ntelemetry = {{ kind = \"silent\" }}\n"),
    );
    let scenario = common::write(
        dir.path(),
        "silent.toml",
        "name = \"silent-telemetry\"\n\
         [[steps]]\naction = \"set_temperature\"\ncelsius = 90\n\n\
         [[steps]]\naction = \"expect_pulse\"\nus = 1455\n\n\
         [[steps]]\naction = \"expect_telemetry\"\ncelsius = 90\n",
    );
    let _bench = common::bench_lock();
    let mut child = rig_run_on(&rig, &reports, &scenario)
        .spawn()
        .expect("rig runs");
    let _out = wait_for_hold(&mut child);
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, libc::SIGINT);
    let (code, took) = exit_within(&mut child, Duration::from_secs(10));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(took < Duration::from_secs(2), "took {took:?}: {stderr}");
    assert!(stderr.contains("interrupted twice: quitting"), "{stderr}");
    // The per-step report holds what finished before the rig quit.
    let report = the_report(&reports);
    let steps = report["scenarios"][0]["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{report:#}");
    assert_eq!(steps[1]["action"], "expect_pulse");
    assert_eq!(steps[1]["outcome"], "pass");
    assert_eq!(report["scenarios"][0]["outcome"], "running");
}

#[test]
fn a_reports_folder_that_cannot_be_made_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write(dir.path(), "not-a-folder", "x");
    let reports = file.join("reports");
    let out = rig_run(&reports, &common::repo("scenarios/broadcast_basic.toml"))
        .output()
        .expect("rig runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&*file.to_string_lossy()) && stderr.contains("cannot write the report"),
        "{stderr}"
    );
}

/// Runs `cmd` with a fresh mount namespace in which `at` is a 32 KiB tmpfs (a disk that
/// fills after a few report writes). As root directly; otherwise in a user namespace.
fn with_small_disk(cmd: &mut Command, at: &Path) {
    use std::ffi::CString;
    let target = CString::new(at.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let uid_map = format!("0 {uid} 1");
    let gid_map = format!("0 {gid} 1");
    let write = |path: &[u8], text: &str| -> std::io::Result<()> {
        // Only syscalls after the fork: open/write/close on static paths.
        // SAFETY: NUL-terminated literal path; the buffer outlives the call.
        unsafe {
            let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, text.as_ptr().cast(), text.len());
            libc::close(fd);
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the closure makes only async-signal-safe syscalls (unshare, open, write, close,
    // mount) on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if uid == 0 {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else {
                if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                write(b"/proc/self/setgroups\0", "deny")?;
                write(b"/proc/self/uid_map\0", &uid_map)?;
                write(b"/proc/self/gid_map\0", &gid_map)?;
            }
            // Keep the mount out of the parent's namespace.
            let none = b"none\0";
            let root = b"/\0";
            if libc::mount(
                none.as_ptr().cast(),
                root.as_ptr().cast(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            let tmpfs = b"tmpfs\0";
            let size = b"size=32k\0";
            if libc::mount(
                tmpfs.as_ptr().cast(),
                target.as_ptr(),
                tmpfs.as_ptr().cast(),
                0,
                size.as_ptr().cast(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn a_disk_that_fills_mid_run_stops_it_and_the_report_is_shown_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    let _bench = common::bench_lock();
    let mut cmd = rig_run(&reports, &common::repo("scenarios"));
    with_small_disk(&mut cmd, &reports);
    let out = cmd.output().expect(
        "rig runs in a mount namespace (needs root or unprivileged user namespaces: sysctl kernel.unprivileged_userns_clone=1)",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("No space left on device") && stderr.contains("cannot write the report"),
        "{stderr}"
    );
    let (_, json) = stderr
        .split_once("the report that could not be written:\n")
        .unwrap_or_else(|| panic!("no report shown: {stderr}"));
    let shown: serde_json::Value =
        serde_json::from_str(json.trim()).expect("the shown report parses");
    assert!(
        shown["scenarios"][0]["steps"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{shown:#}"
    );
}

/// SIGKILL (no handler runs) during a scenario: `rig report` rebuilds the report from the
/// event log alone, with every finished step, the scenario under way `running` and the run
/// marked as stopped short.
#[test]
fn a_killed_run_is_rebuilt_from_its_event_log_with_every_finished_step() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    common::write(
        &scenarios,
        "a-short.toml",
        "name = \"short\"\n[[steps]]\naction = \"set_temperature\"\ncelsius = 40\n\n\
         [[steps]]\naction = \"expect_pulse\"\nus = 1000\n",
    );
    long_hold(&scenarios);
    let _bench = common::bench_lock();
    let mut child = rig_run(&reports, &scenarios).spawn().expect("rig runs");
    // In the long scenario's hold: its expect_pulse line has been printed.
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut line, mut in_long) = (String::new(), false);
    loop {
        line.clear();
        let n = out.read_line(&mut line).expect("stdout");
        assert!(n > 0 && Instant::now() < deadline, "the run ended early");
        in_long |= line.contains("scenario long-hold");
        if in_long && line.contains("expect_pulse") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let run = std::fs::read_dir(&reports)
        .expect("reports")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .next()
        .expect("a run folder");
    // Only the event log counts: the report written along the way goes.
    std::fs::remove_file(run.join("report.json")).expect("report.json was there");
    std::fs::remove_file(run.join("report.html")).expect("report.html was there");
    let rebuilt = Command::new(env!("CARGO_BIN_EXE_rig"))
        .arg("report")
        .arg(&run)
        .output()
        .expect("rig report runs");
    let stdout = String::from_utf8_lossy(&rebuilt.stdout);
    assert_eq!(
        rebuilt.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).expect("rebuilt"))
            .expect("parses");
    assert_eq!(report["outcome"], "running", "{report:#}");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("stopped before it finished")),
        "{report:#}"
    );
    let sc = report["scenarios"].as_array().expect("scenarios");
    assert_eq!(sc.len(), 2, "{report:#}");
    assert_eq!(sc[0]["outcome"], "pass");
    assert_eq!(sc[0]["steps"].as_array().map(Vec::len), Some(2));
    assert_eq!(sc[1]["outcome"], "running");
    let steps = sc[1]["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "both steps before the hold: {steps:#?}");
    assert!(steps.iter().all(|s| s["outcome"] == "pass"), "{steps:#?}");
    assert_eq!(report["summary"]["errors"], 1, "running counts as an error");
    let junit = std::fs::read_to_string(run.join("junit.xml")).expect("junit.xml rebuilt");
    assert!(
        junit.contains(r#"tests="2" failures="0" errors="1""#),
        "{junit}"
    );
    // The page too, with the finished expect_pulse's captures as its plot.
    let html = std::fs::read_to_string(run.join("report.html")).expect("report.html rebuilt");
    let traced = steps
        .iter()
        .chain(sc[0]["steps"].as_array().into_iter().flatten())
        .filter(|s| s["trace"].is_object())
        .count();
    assert!(traced >= 1, "{report:#}");
    assert_eq!(html.matches("<svg class=\"pulse-plot\"").count(), traced);
}
