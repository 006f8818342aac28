//! Rig config for real benches: the probe-rs backend's settings, which probe backend goes with
//! which board, and the shipped NUCLEO-H755ZI-Q bench description. Also the probe-rs backend
//! on a machine without probes.

mod common;

use bench_config::{BoardBackend, FirmwareKind, ProbeBackend, RigConfig, DEFAULT_CHIP};
use common::{repo, rig_variant, write};
use rig_instruments::drivers::probe_rs::{list_probes, ProbeRsProbe};
use rig_instruments::ProbeError;

const NUCLEO: &str = "rig-config/nucleo-h755zi-q.toml";

#[test]
fn nucleo_bench_config_loads_and_describes_a_real_bench() {
    let c = RigConfig::load(&repo(NUCLEO)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.backend, BoardBackend::Hardware);
    assert_eq!(c.firmware_kind, FirmwareKind::Flashed);
    assert_eq!(c.wiring.name(), "direct-smps");
    assert!(
        c.option_bytes.bcm7 && c.option_bytes.bcm4,
        "both cores boot"
    );
    assert_eq!(c.probe.backend, ProbeBackend::ProbeRs);
    assert_eq!(c.probe.chip, DEFAULT_CHIP);
    assert!(c.probe.serial.is_some(), "the probe is chosen by serial");
    // Stable device names only.
    for port in [
        c.can.port.clone().unwrap_or_default(),
        c.pulse_meter.port.clone(),
        c.power.port.clone().unwrap_or_default(),
        c.telemetry.port.clone(),
    ] {
        assert!(port.starts_with("/dev/serial/by-id/usb-"), "{port}");
    }
    // Long enough for the ST-LINK to enumerate again after its own USB port was switched.
    assert!(c.power.settle_ms >= 3000, "settle_ms {}", c.power.settle_ms);
}

#[test]
fn probe_rs_settings_parse_with_defaults() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rig = rig_variant(
        dir.path(),
        NUCLEO,
        &[
            ("chip = \"STM32H755ZITx\"", ""),
            ("speed_khz = 4000", ""),
            ("under_reset = false", ""),
        ],
    );
    let c = RigConfig::load(&rig).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.probe.chip, "STM32H755ZITx", "default chip");
    assert_eq!(c.probe.speed_khz, None);
    assert!(!c.probe.under_reset);
    let rig = rig_variant(
        dir.path(),
        NUCLEO,
        &[
            ("chip = \"STM32H755ZITx\"", "chip = \"STM32H745ZITx\""),
            ("speed_khz = 4000", "speed_khz = 1000"),
            ("under_reset = false", "under_reset = true"),
        ],
    );
    let c = RigConfig::load(&rig).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.probe.chip, "STM32H745ZITx");
    assert_eq!(c.probe.speed_khz, Some(1000));
    assert!(c.probe.under_reset);
}

fn load_err(dir: &std::path::Path, base: &str, edits: &[(&str, &str)]) -> String {
    let rig = rig_variant(dir, base, edits);
    match RigConfig::load(&rig) {
        Ok(_) => panic!("{base} with {edits:?} loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn probe_backend_must_fit_the_board() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The simulated probe only on the simulated board ...
    let e = load_err(
        dir.path(),
        NUCLEO,
        &[("backend = \"probe-rs\"", "backend = \"simulated\"")],
    );
    assert!(
        e.contains("goes only with board.backend = \"simulated\""),
        "{e}"
    );
    // ... and the simulated board only with it.
    let e = load_err(
        dir.path(),
        "rig-config/sim.toml",
        &[(
            "backend = \"simulated\"\nattach",
            "backend = \"probe-rs\"\nattach",
        )],
    );
    assert!(
        e.contains("needs the emulated board's debug port: firmware.kind = \"elf\""),
        "{e}"
    );
    // probe-rs on the emulated board's debug port is a bench of its own.
    #[cfg(feature = "emulator")]
    {
        let c = RigConfig::load(&repo("rig-config/emulated-probe-rs.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.probe.backend, ProbeBackend::ProbeRs);
    }
    // A hardware bench may have no probe.
    let rig = rig_variant(
        dir.path(),
        NUCLEO,
        &[("backend = \"probe-rs\"", "backend = \"none\"")],
    );
    let c = RigConfig::load(&rig).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.probe.backend, ProbeBackend::None);
}

#[test]
fn bad_probe_rs_settings_point_at_their_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let e = load_err(dir.path(), NUCLEO, &[("speed_khz = 4000", "speed_khz = 0")]);
    assert!(e.contains("probe.speed_khz = 0: must be 1..=24000"), "{e}");
    let line = std::fs::read_to_string(dir.path().join("rig.toml"))
        .expect("read")
        .lines()
        .position(|l| l.starts_with("speed_khz"))
        .expect("line")
        + 1;
    assert!(e.contains(&format!(":{line}:")), "line {line} in {e}");
    let e = load_err(
        dir.path(),
        NUCLEO,
        &[("chip = \"STM32H755ZITx\"", "chip = \" \"")],
    );
    assert!(e.contains("probe.chip is empty"), "{e}");
    let e = load_err(
        dir.path(),
        NUCLEO,
        &[("serial = \"REPLACE-ME\"", "serial = \"\"")],
    );
    assert!(e.contains("probe.serial is empty"), "{e}");
    let e = load_err(
        dir.path(),
        NUCLEO,
        &[("backend = \"probe-rs\"", "backend = \"openocd\"")],
    );
    assert!(e.contains("probe-rs"), "{e}");
}

#[test]
fn unknown_probe_field_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(repo(NUCLEO))
        .expect("read")
        .replace("speed_khz = 4000", "speed_khz = 4000\nspeed = 4000");
    let rig = write(dir.path(), "rig.toml", &text);
    let e = RigConfig::load(&rig).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("speed"), "{e}");
}

#[test]
fn opening_the_probe_rs_backend_without_probes_says_what_to_check() {
    match list_probes() {
        Ok(found) if !found.is_empty() => {
            common::skip(
                &format!("this machine has debug probes attached ({found:?})"),
                "run it on a machine without debug probes",
            );
            return;
        }
        Ok(_) => {}
        Err(e) => panic!("listing probes failed: {e}"),
    }
    let c = RigConfig::load(&repo(NUCLEO)).unwrap_or_else(|e| panic!("{e}"));
    let e = match ProbeRsProbe::open(&c.probe) {
        Ok(_) => panic!("opened a probe on a machine without probes"),
        Err(e) => ProbeError::from(e).to_string(),
    };
    for needle in [
        "no debug probe found",
        "USB cable",
        "udev rules",
        "probe-rs list",
        "rig list",
    ] {
        assert!(e.contains(needle), "{needle:?} missing: {e}");
    }
    // Without a serial too: nothing to fall back on.
    let mut probe = c.probe.clone();
    probe.serial = None;
    let e = ProbeRsProbe::open(&probe)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no debug probe found"), "{e}");
}

#[test]
fn the_usb_bench_guest_config_loads_with_the_cn1_topology() {
    use bench_config::PowerTopology;
    let guest =
        RigConfig::load(&repo("rig-config/usb-bench-guest.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(guest.power.topology, PowerTopology::StlinkUsb);
    assert_eq!(
        guest.probe.serial.as_deref(),
        Some("0030003A3433510237363934")
    );
    let sim = RigConfig::load(&repo("rig-config/sim.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sim.power.topology, PowerTopology::Target, "the default");
    assert!(sim.usb.is_none());
}

#[test]
fn a_usb_section_needs_a_simulated_bench_and_an_st_serial() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_err(dir.path(), NUCLEO, &[("[expect]", "[usb]\n\n[expect]")]);
    assert!(e.contains("[usb] serves a simulated bench"), "{e}");
    let rig = rig_variant(
        dir.path(),
        "rig-config/sim.toml",
        &[("[probe]", "[usb]\nstlink_enumeration_ms = 500\n\n[probe]")],
    );
    let usb = RigConfig::load(&rig)
        .unwrap_or_else(|e| panic!("{e}"))
        .usb
        .expect("[usb]");
    assert_eq!(
        (usb.stlink_serial.len(), usb.stlink_enumeration_ms),
        (24, 500)
    );
    let e = load_err(
        dir.path(),
        "rig-config/sim.toml",
        &[("[probe]", "[usb]\nstlink_serial = \"ABC\"\n\n[probe]")],
    );
    assert!(e.contains("24 hex digits"), "{e}");
}
