//! The SocketCAN backend on a real (virtual) CAN interface.
//!
//! Tests that need one read its name from `GAUGE_VCAN` (e.g. `vcan0`, up) and skip with a
//! message when it is unset: `.ci/vcan-tests` runs them for real, in a QEMU guest when this
//! machine's kernel has no CAN support. The rig-config checks at the end run everywhere.

mod common;

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use bench_config::RigConfig;
use gauge_logic::frame::CanFrame;
use rig_instruments::drivers::socketcan::SocketCanAdapter;
use rig_instruments::{CanAdapter, InstrumentError};
use rig_verify::report::Outcome;

/// The vcan interface to test on, or `None` after recording why the test is skipped.
fn vcan() -> Option<String> {
    match std::env::var("GAUGE_VCAN") {
        Ok(name) if !name.is_empty() => Some(name),
        _ => {
            common::skip(
                "GAUGE_VCAN is not set (no vcan interface to test on)",
                "run .ci/vcan-tests (a QEMU guest with CAN support), or set GAUGE_VCAN to an up vcan interface",
            );
            None
        }
    }
}

fn open(interface: &str, fd: bool) -> SocketCanAdapter {
    SocketCanAdapter::open(interface, fd, 500_000)
        .unwrap_or_else(|e| panic!("open {interface} (fd {fd}): {e}"))
}

/// The next frame on `rx` within a second.
fn next(rx: &mut SocketCanAdapter) -> CanFrame {
    let end = Instant::now() + Duration::from_secs(1);
    loop {
        if let Some(f) = rx.recv(Duration::from_millis(100)).expect("recv") {
            return f;
        }
        assert!(
            Instant::now() < end,
            "no frame within 1 s on {}",
            rx.interface()
        );
    }
}

fn frames() -> Vec<CanFrame> {
    vec![
        CanFrame::standard(0x156, &[0x00, 0x96, 0, 0, 0, 0, 0, 0]).unwrap(),
        CanFrame::standard(0x7DF, &[0x02, 0x01, 0x5C]).unwrap(),
        CanFrame::standard(0x001, &[]).unwrap(),
        CanFrame::extended(0x18DB_33F1, &[0x02, 0x01, 0x5C, 0, 0, 0, 0, 0]).unwrap(),
        CanFrame::extended(0x0000_0156, &[0xAB]).unwrap(),
        CanFrame::extended(0x1FFF_FFFF, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap(),
    ]
}

#[test]
fn driver_round_trip_between_two_sockets() {
    let Some(vcan) = vcan() else {
        return;
    };
    let _bus = common::bench_lock();
    let mut a = open(&vcan, false);
    let mut b = open(&vcan, false);
    assert_eq!(
        b.recv(Duration::from_millis(50)).unwrap(),
        None,
        "quiet bus"
    );
    for f in frames() {
        a.send(&f).unwrap();
        assert_eq!(next(&mut b), f);
    }
    for f in frames().into_iter().rev() {
        b.send(&f).unwrap();
        assert_eq!(next(&mut a), f);
    }
    // A sender does not hear itself (no CAN_RAW_RECV_OWN_MSGS): the receive times out in time.
    let t = Instant::now();
    assert_eq!(a.recv(Duration::from_millis(100)).unwrap(), None);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(90) && waited < Duration::from_millis(600),
        "{waited:?}"
    );
    assert!(a.describe().contains(&vcan), "{}", a.describe());
}

#[test]
fn fd_socket_exchanges_classic_frames() {
    let Some(vcan) = vcan() else {
        return;
    };
    let _bus = common::bench_lock();
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{vcan}/mtu")).unwrap_or_default();
    if mtu.trim() != "72" {
        common::skip(
            &format!("{vcan} has MTU {mtu:?}, not CAN FD's 72"),
            &format!("ip link set {vcan} mtu 72"),
        );
        return;
    }
    let mut classic = open(&vcan, false);
    let mut fd = open(&vcan, true);
    assert!(fd.describe().contains("FD"), "{}", fd.describe());
    for f in frames() {
        classic.send(&f).unwrap();
        assert_eq!(next(&mut fd), f);
        fd.send(&f).unwrap();
        assert_eq!(next(&mut classic), f);
    }
}

#[test]
fn missing_interface_is_named_with_what_to_check() {
    if vcan().is_none() {
        return;
    }
    for fd in [false, true] {
        let e = SocketCanAdapter::open("gaugenone7", fd, 500_000)
            .err()
            .expect("no such interface");
        assert!(matches!(e, InstrumentError::CanBus { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.starts_with("gaugenone7: "), "{text}");
        assert!(
            text.contains("no network interface named \"gaugenone7\""),
            "{text}"
        );
        assert!(text.contains("ip link show gaugenone7"), "{text}");
    }
}

/// A second vcan interface, left down, is refused at open with the bitrate advice.
#[test]
fn interface_down_is_explained() {
    if vcan().is_none() {
        return;
    }
    let name = "gaugedown0";
    let made = Command::new("ip")
        .args(["link", "add", "dev", name, "type", "vcan"])
        .status();
    if !matches!(made, Ok(s) if s.success()) {
        common::skip(
            &format!("cannot create {name} (needs root and the vcan module)"),
            "run as root with vcan loaded (.ci/vcan-tests does)",
        );
        return;
    }
    let e = SocketCanAdapter::open(name, false, 250_000);
    let _ = Command::new("ip")
        .args(["link", "del", "dev", name])
        .status();
    let text = e.err().expect("a down interface is refused").to_string();
    assert!(text.contains("gaugedown0 is down"), "{text}");
    assert!(text.contains("bitrate 250000"), "{text}");
    assert!(text.contains("ip link show gaugedown0"), "{text}");
}

fn socketcan_rig(dir: &Path, interface: &str) -> std::path::PathBuf {
    common::rig_variant(
        dir,
        "rig-config/sim.toml",
        &[(
            "adapter = \"slcan\"",
            &format!("adapter = \"socketcan\"\ninterface = \"{interface}\""),
        )],
    )
}

/// The whole rig on the simulated board, with the CAN side on the interface: the rig's
/// SocketCAN driver on one socket, the bench's bridge to the board on another.
#[test]
fn scenarios_pass_on_the_simulated_board_through_vcan() {
    let Some(vcan) = vcan() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rig = socketcan_rig(dir.path(), &vcan);
    let scenarios = [
        common::repo("scenarios/broadcast_basic.toml"),
        common::repo("scenarios/obd_only.toml"),
    ];
    let (result, _reports) = common::run(&rig, &scenarios);
    let report = &result.report;
    let summary: Vec<String> = report
        .scenarios
        .iter()
        .map(|s| {
            let failed: Vec<String> = s
                .steps
                .iter()
                .filter(|st| st.outcome != Outcome::Pass)
                .map(|st| format!("step {} {}: {:?}", st.index, st.action, st.message))
                .collect();
            format!("{}: {:?} {failed:?} {:?}", s.name, s.outcome, s.error)
        })
        .collect();
    assert_eq!(
        report.outcome,
        Outcome::Pass,
        "{:?} / {summary:#?}",
        report.error
    );
    assert_eq!(report.scenarios.len(), 2);
    assert!(report.scenarios.iter().all(|s| s.outcome == Outcome::Pass));
    let instruments = &report.rig.as_ref().expect("rig info").instruments;
    assert!(
        instruments
            .iter()
            .any(|i| i.starts_with("SocketCAN") && i.contains(&vcan)),
        "{instruments:?}"
    );
    assert!(
        !instruments.iter().any(|i| i.contains("slcan")),
        "{instruments:?}"
    );
}

// --- rig config (no interface needed) ---------------------------------------------------------

fn load(dir: &Path, edits: &[(&str, &str)]) -> Result<RigConfig, String> {
    let rig = common::rig_variant(dir, "rig-config/sim.toml", edits);
    RigConfig::load(&rig).map_err(|e| e.to_string())
}

fn line_of(dir: &Path, starts: &str) -> usize {
    std::fs::read_to_string(dir.join("rig.toml"))
        .unwrap()
        .lines()
        .position(|l| l.starts_with(starts))
        .unwrap()
        + 1
}

#[test]
fn socketcan_rig_config_loads_with_an_interface() {
    let dir = tempfile::tempdir().unwrap();
    let edit = [(
        "adapter = \"slcan\"",
        "adapter = \"socketcan\"\ninterface = \"vcan0\"\nfd = true",
    )];
    let config = load(dir.path(), &edit).unwrap();
    assert_eq!(config.can.interface.as_deref(), Some("vcan0"));
    assert!(config.can.fd);
    // The simulated bench then bridges the board to vcan0 instead of the slcan pty.
    let bench = rig::assembly::simulated_bench_config(&config);
    assert_eq!(bench.can_interface.as_deref(), Some("vcan0"));
    // The shipped slcan config is unchanged: no interface, no bridge.
    let sim = RigConfig::load(&common::repo("rig-config/sim.toml")).unwrap();
    assert_eq!(sim.can.port.as_deref(), Some("sim"));
    assert!(!sim.can.fd && sim.can.interface.is_none());
    assert_eq!(
        rig::assembly::simulated_bench_config(&sim).can_interface,
        None
    );
}

#[test]
fn socketcan_without_interface_is_a_file_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = load(
        dir.path(),
        &[("adapter = \"slcan\"", "adapter = \"socketcan\"")],
    )
    .unwrap_err();
    let line = line_of(dir.path(), "adapter = \"socketcan\"");
    assert!(e.contains(&format!("rig.toml:{line}:")), "{e}");
    assert!(e.contains("needs can.interface"), "{e}");
}

#[test]
fn can_section_mistakes_point_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    // slcan has no interface...
    let e = load(
        dir.path(),
        &[(
            "adapter = \"slcan\"",
            "adapter = \"slcan\"\ninterface = \"can0\"",
        )],
    )
    .unwrap_err();
    let line = line_of(dir.path(), "interface =");
    assert!(
        e.contains(&format!("rig.toml:{line}:")) && e.contains("socketcan setting"),
        "{e}"
    );
    // ...and needs a port (the existing rule: "sim" on the simulated bench).
    let e = load(dir.path(), &[("port = \"sim\"\nbitrate", "bitrate")]).unwrap_err();
    assert!(e.contains("needs can.port"), "{e}");
    let e = load(
        dir.path(),
        &[(
            "port = \"sim\"\nbitrate",
            "port = \"/dev/ttyACM0\"\nbitrate",
        )],
    )
    .unwrap_err();
    let line = line_of(dir.path(), "port = \"/dev/ttyACM0\"");
    assert!(
        e.contains(&format!("rig.toml:{line}:")) && e.contains("write \"sim\""),
        "{e}"
    );
    // A bad interface name.
    let e = load(
        dir.path(),
        &[(
            "adapter = \"slcan\"",
            "adapter = \"socketcan\"\ninterface = \"/dev/can0\"",
        )],
    )
    .unwrap_err();
    let line = line_of(dir.path(), "interface =");
    assert!(
        e.contains(&format!("rig.toml:{line}:")) && e.contains("not a network interface name"),
        "{e}"
    );
}
