//! `rig doctor`, `rig list` and `rig flash` as a user runs them: the `rig` binary.

mod common;

use std::process::{Command, Output};

use common::{bench_lock, repo, rig_variant};

fn rig(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("run rig")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Table rows (after the header line) as (instrument, status) pairs, by the known statuses.
fn rows(stdout: &str) -> Vec<(String, String)> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("instrument"));
    lines.next();
    lines
        .take_while(|l| {
            !l.trim().is_empty()
                && !l.contains("checks failed")
                && !l.starts_with("all instruments")
        })
        .map(|l| {
            let status = ["ok", "FAIL", "skip"]
                .iter()
                .find(|s| l.split_whitespace().any(|w| w == **s))
                .map(|s| s.to_string())
                .unwrap_or_default();
            (
                l.split("  ").next().unwrap_or("").trim().to_string(),
                status,
            )
        })
        .collect()
}

#[test]
fn doctor_on_the_simulated_bench_finds_every_instrument_ok() {
    let _g = bench_lock();
    let rig_path = repo("rig-config/sim.toml");
    let out = rig(&["doctor", "--rig", rig_path.to_str().expect("utf-8")]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let rows = rows(&stdout);
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "simulated bench",
        "power",
        "can",
        "pulse meter",
        "telemetry",
        "probe",
    ] {
        assert!(names.contains(&want), "no {want} row in:\n{stdout}");
    }
    assert!(rows.iter().all(|(_, s)| s == "ok"), "not all ok:\n{stdout}");
    // What each instrument said about itself.
    for needle in [
        "slcan: channel open at 500000 bit/s, version \"V1013\"",
        "SUMP ID \"1ALS\"",
        "status line: GAUGE/1",
        "supply bits 0x04 (direct-smps) match board.wiring (direct-smps)",
        "BCM7 = 1, BCM4 = 1 (expected 1, 1)",
        "all instruments ok",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing:\n{stdout}");
    }
}

#[test]
fn doctor_on_a_bench_with_a_missing_adapter_fails_and_names_its_port() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = "/dev/serial/by-id/usb-missing-adapter";
    let rig_path = rig_variant(
        dir.path(),
        "rig-config/nucleo-h755zi-q.toml",
        &[(
            "port = \"/dev/serial/by-id/usb-Protofusion_Labs_CANable_REPLACE-ME-if00\"",
            &format!("port = \"{missing}\""),
        )],
    );
    let out = rig(&["doctor", "--rig", rig_path.to_str().expect("utf-8")]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let can = stdout
        .lines()
        .find(|l| l.starts_with("can "))
        .unwrap_or_else(|| panic!("no can row:\n{stdout}"));
    assert!(can.contains(missing) && can.contains("FAIL"), "{can}");
    assert!(can.contains("cannot open"), "{can}");
    // Every other instrument still got its own row (one failure does not hide the rest).
    for name in ["power", "pulse meter", "telemetry", "probe"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(name)),
            "no {name} row:\n{stdout}"
        );
    }
    assert!(stdout.contains("checks failed"), "{stdout}");
}

#[test]
fn doctor_with_an_unreadable_rig_config_exits_2() {
    let out = rig(&["doctor", "--rig", "/nonexistent/rig.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("/nonexistent/rig.toml"));
}

#[test]
fn list_works_with_nothing_attached() {
    let out = rig(&["list"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("USB serial ports"), "{stdout}");
    assert!(stdout.contains("Debug probes"), "{stdout}");
}

const FIRMWARE_ELF: &str = "firmware/target/thumbv7em-none-eabihf/release/firmware";

#[test]
fn flash_on_the_simulated_bench_downloads_verifies_and_resets() {
    let elf = repo(FIRMWARE_ELF);
    if !elf.exists() {
        common::skip(
            &format!("{} is not built", elf.display()),
            "run firmware/build.sh",
        );
        return;
    }
    let _g = bench_lock();
    let rig_path = repo("rig-config/sim.toml");
    let out = rig(&[
        "flash",
        "--rig",
        rig_path.to_str().expect("utf-8"),
        elf.to_str().expect("utf-8"),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for needle in [
        "preflight: ok",
        "switched on",
        "probe: simulated ST-LINK",
        "attached to the Cortex-M7",
        "verified, target reset",
        "flashed",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing:\n{stdout}");
    }
    // Under reset on request.
    let out = rig(&[
        "flash",
        "--under-reset",
        "--rig",
        rig_path.to_str().expect("utf-8"),
        elf.to_str().expect("utf-8"),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("attached to the Cortex-M7 under reset"),
        "{stdout}"
    );
}

#[test]
fn flash_of_a_missing_elf_fails_before_touching_the_bench() {
    let rig_path = repo("rig-config/sim.toml");
    let out = rig(&[
        "flash",
        "--rig",
        rig_path.to_str().expect("utf-8"),
        "/nonexistent/firmware.elf",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("/nonexistent/firmware.elf"), "{stderr}");
    assert!(stderr.contains("firmware/build.sh"), "{stderr}");
    assert!(!stdout.contains("switched on"), "{stdout}");
}

#[test]
fn flash_on_a_bench_without_probes_says_so() {
    let elf = repo(FIRMWARE_ELF);
    if !elf.exists() {
        common::skip(
            &format!("{} is not built", elf.display()),
            "run firmware/build.sh",
        );
        return;
    }
    // No power switch on this machine either: --no-power leaves it alone.
    let out = rig(&[
        "flash",
        "--no-power",
        "--rig",
        repo("rig-config/nucleo-h755zi-q.toml")
            .to_str()
            .expect("utf-8"),
        elf.to_str().expect("utf-8"),
    ]);
    let (stdout, stderr) = text(&out);
    if stdout.contains("probe: probe-rs") {
        common::skip(
            "a debug probe is attached to this machine",
            "run it on a machine without debug probes",
        );
        return;
    }
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("REPLACE-ME") || stderr.contains("no debug probe found"),
        "{stderr}"
    );
}
