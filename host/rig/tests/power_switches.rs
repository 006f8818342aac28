//! Power switches other than the LCUS-1 relay: bench supplies against fake devices on
//! pseudo-terminals (exact bytes checked), external commands as real child processes (exact
//! argv checked), the sysfs attribute as a temporary file, and their rig config validation.

mod common;

use std::{
    io::{Read, Write},
    path::Path,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use bench_config::{PowerSwitchKind, RigConfig};
use rig_instruments::drivers::{
    self,
    power::{
        command::{self, CommandSwitch},
        korad::Ka3005p,
        scpi::ScpiSupply,
        sysfs::SysfsPort,
    },
};
use rig_instruments::{InstrumentError, PowerSwitch};
use serialport::{SerialPort, TTYPort};

/// A fake serial device: records every byte for `listen`, answering `*IDN?` (however it is
/// terminated) with `idn` when given.
fn fake_device(
    idn_query: &'static [u8],
    idn: Option<&'static [u8]>,
    listen: Duration,
) -> (String, TTYPort, JoinHandle<Vec<u8>>) {
    let (mut fake, slave) = TTYPort::pair().expect("pty pair");
    fake.set_timeout(Duration::from_millis(5)).expect("timeout");
    let path = slave.name().expect("pty name");
    let device = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let end = Instant::now() + listen;
        let mut buf = [0u8; 64];
        let mut answered = false;
        while Instant::now() < end {
            if let Ok(n) = fake.read(&mut buf) {
                seen.extend_from_slice(&buf[..n]);
                if !answered && seen.ends_with(idn_query) {
                    answered = true;
                    if let Some(reply) = idn {
                        fake.write_all(reply).expect("answer");
                    }
                }
            }
        }
        seen
    });
    (path, slave, device)
}

#[test]
fn ka3005p_identifies_sets_voltage_and_switches_with_exact_bytes() {
    let (path, _slave, device) = fake_device(
        b"*IDN?",
        Some(b"KORADKA3005PV2.0"),
        Duration::from_millis(1500),
    );
    let mut psu = Ka3005p::open(&path, 9600, Some(5.0)).expect("identified");
    assert_eq!(psu.identity, "KORADKA3005PV2.0");
    psu.set_power(true).unwrap();
    psu.set_power(false).unwrap();
    assert!(psu.describe().contains("KORADKA3005PV2.0") && psu.describe().contains(&path));
    let seen = device.join().unwrap();
    // No terminators: the supply takes a command as complete when the line goes quiet.
    assert_eq!(String::from_utf8_lossy(&seen), "*IDN?VSET1:5.00OUT1OUT0");
}

#[test]
fn ka3005p_refuses_a_device_that_answers_something_else() {
    let (path, _slave, device) = fake_device(
        b"*IDN?",
        Some(b"HELLO FROM A MODEM"),
        Duration::from_millis(800),
    );
    let err = Ka3005p::open(&path, 9600, Some(5.0))
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(matches!(err, InstrumentError::Protocol { .. }), "{text}");
    assert!(
        text.contains(&path) && text.contains("HELLO FROM A MODEM"),
        "{text}"
    );
    // Nothing is switched or set on a device that is not a Korad.
    assert_eq!(device.join().unwrap(), b"*IDN?");
}

#[test]
fn ka3005p_that_stays_silent_times_out_naming_the_device() {
    let (path, _slave, device) = fake_device(b"*IDN?", None, Duration::from_millis(1500));
    let t = Instant::now();
    let err = Ka3005p::open(&path, 9600, None).err().expect("timeout");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let text = err.to_string();
    assert!(matches!(err, InstrumentError::Timeout { .. }), "{text}");
    assert!(text.contains(&path) && text.contains("*IDN?"), "{text}");
    drop(device.join());
}

#[test]
fn scpi_supply_identifies_and_switches_with_exact_lines() {
    let (path, _slave, device) = fake_device(
        b"*IDN?\n",
        Some(b"RIGOL TECHNOLOGIES,DP832,DP8C0001,00.01.14\r\n"),
        Duration::from_millis(1000),
    );
    let mut psu = ScpiSupply::open(&path, 9600, Some(5.0)).expect("identified");
    assert_eq!(psu.identity, "RIGOL TECHNOLOGIES,DP832,DP8C0001,00.01.14");
    psu.set_power(true).unwrap();
    psu.set_power(false).unwrap();
    let seen = device.join().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&seen),
        "*IDN?\nVOLTage 5.000\nOUTPut ON\nOUTPut OFF\n"
    );
}

#[test]
fn scpi_supply_refuses_an_identity_that_is_not_ieee_488_2() {
    let (path, _slave, device) = fake_device(b"*IDN?\n", Some(b"OK\n"), Duration::from_millis(800));
    let err = ScpiSupply::open(&path, 9600, None).err().expect("refused");
    let text = err.to_string();
    assert!(text.contains(&path) && text.contains("\"OK\\n\""), "{text}");
    assert_eq!(device.join().unwrap(), b"*IDN?\n");
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn commands_get_their_exact_argv_without_a_shell() {
    // printf prints each argument between bars: spaces, quotes, `$` and globs arrive as typed.
    let out = command::run(
        &argv(&["printf", "%s|", "a b", "$HOME", "'q'", "*", ";true"]),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(out.stdout, "a b|$HOME|'q'|*|;true|");

    let dir = tempfile::tempdir().unwrap();
    let on_file = dir.path().join("board on");
    let odd_file = dir.path().join("$(reboot);x");
    let p = |f: &Path| f.display().to_string();
    let mut switch = CommandSwitch::new(
        vec!["touch".into(), p(&on_file), p(&odd_file)],
        vec!["rm".into(), p(&on_file)],
        Duration::from_secs(5),
    )
    .unwrap();
    switch.set_power(true).unwrap();
    assert!(on_file.exists() && odd_file.exists());
    switch.set_power(false).unwrap();
    assert!(!on_file.exists() && odd_file.exists());
    assert!(switch.describe().contains("'board on'") || switch.describe().contains("board on"));
}

#[test]
fn command_failures_name_the_command_and_show_stderr() {
    let missing = command::run(
        &argv(&["/nonexistent/uhubctl", "-a", "on"]),
        Duration::from_secs(5),
    )
    .unwrap_err()
    .to_string();
    assert!(
        missing.contains("/nonexistent/uhubctl -a on") && missing.contains("not found"),
        "{missing}"
    );

    let failed = command::run(
        &argv(&["ls", "/nonexistent-gauge-rig-dir"]),
        Duration::from_secs(5),
    )
    .unwrap_err()
    .to_string();
    assert!(
        failed.contains("ls /nonexistent-gauge-rig-dir")
            && failed.contains("stderr")
            && failed.contains("nonexistent-gauge-rig-dir")
            && failed.contains("exit status"),
        "{failed}"
    );

    let t = Instant::now();
    let slow = command::run(&argv(&["sleep", "10"]), Duration::from_millis(300))
        .unwrap_err()
        .to_string();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(
        slow.contains("sleep 10") && slow.contains("killed"),
        "{slow}"
    );
}

/// A command that outlives its timeout is killed with everything it started: a script's
/// background child (here a `sleep` that records its pid) goes with it.
#[test]
fn a_timed_out_power_command_is_killed_with_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
    let err = command::run(&argv(&["sh", "-c", &script]), Duration::from_millis(500))
        .unwrap_err()
        .to_string();
    assert!(err.contains("killed"), "{err}");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("the script recorded its child")
        .trim()
        .parse()
        .expect("a pid");
    // Killed (and reaped by init once its parent is gone): /proc/<pid> goes, or shows a zombie.
    let end = Instant::now() + Duration::from_secs(3);
    let alive =
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
    while alive() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(), "the command's child {pid} still runs");
}

#[test]
fn sysfs_port_writes_1_for_off_and_0_for_on() {
    let dir = tempfile::tempdir().unwrap();
    let attr = dir.path().join("disable");
    std::fs::write(&attr, "0\n").unwrap();
    let path = attr.display().to_string();
    let mut port = SysfsPort::open(&path).unwrap();
    port.set_power(false).unwrap();
    assert_eq!(std::fs::read_to_string(&attr).unwrap(), "1");
    port.set_power(true).unwrap();
    assert_eq!(std::fs::read_to_string(&attr).unwrap(), "0");

    let missing = dir.path().join("1-1/port/disable").display().to_string();
    let err = SysfsPort::open(&missing)
        .err()
        .expect("missing")
        .to_string();
    assert!(
        err.contains(&missing) && err.contains("does not exist"),
        "{err}"
    );

    // Permissions only bind a non-root user (root writes anything).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&attr, std::fs::Permissions::from_mode(0o444)).unwrap();
    if std::fs::OpenOptions::new().write(true).open(&attr).is_err() {
        let err = SysfsPort::open(&path)
            .err()
            .expect("not writable")
            .to_string();
        assert!(err.contains("udev rule"), "{err}");
    }
}

/// A hardware rig config with `power` as the body of its `[power]` section.
fn hardware_rig(dir: &Path, power: &str) -> std::path::PathBuf {
    common::write(
        dir,
        "hw.toml",
        &format!(
            "name = \"hw\"\n\
             [board]\nmodel = \"NUCLEO-H755ZI-Q\"\nbackend = \"hardware\"\nwiring = \"direct-smps\"\n\
             [firmware]\nkind = \"flashed\"\n\
             [can]\nadapter = \"slcan\"\nport = \"/dev/ttyACM0\"\n\
             [pulse_meter]\nanalyzer = \"sump\"\nport = \"/dev/ttyACM1\"\n\
             [power]\n{power}\n\
             [telemetry]\nport = \"/dev/ttyACM2\"\n\
             [probe]\nbackend = \"none\"\n"
        ),
    )
}

/// Line (1-based) of the first line of `path`'s `[power]` section that starts with `prefix`.
fn line_of(path: &Path, prefix: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let header = text
        .lines()
        .position(|l| l.starts_with("[power]"))
        .unwrap_or_else(|| panic!("no [power] in {text}"));
    text.lines()
        .enumerate()
        .skip(header)
        .find(|(_, l)| l.starts_with(prefix))
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("no {prefix:?} in [power] of {text}"))
}

#[test]
fn rig_configs_open_command_and_sysfs_switches_without_a_port() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("on");
    let rig = hardware_rig(
        dir.path(),
        &format!(
            "switch = \"command\"\non_command = [\"touch\", {:?}]\noff_command = [\"rm\", \"-f\", {:?}]\ncommand_timeout_ms = 2000",
            flag.display().to_string(),
            flag.display().to_string()
        ),
    );
    let config = RigConfig::load(&rig).unwrap();
    assert_eq!(config.power.switch, PowerSwitchKind::Command);
    assert_eq!(config.power.port, None);
    let mut power = drivers::open_power(&config.power, "").unwrap();
    power.set_power(true).unwrap();
    assert!(flag.exists());
    power.set_power(false).unwrap();
    assert!(!flag.exists());

    let attr = dir.path().join("disable");
    std::fs::write(&attr, "0").unwrap();
    let rig = hardware_rig(
        dir.path(),
        &format!(
            "switch = \"sysfs\"\nsysfs_port = {:?}",
            attr.display().to_string()
        ),
    );
    let config = RigConfig::load(&rig).unwrap();
    let mut power = drivers::open_power(&config.power, "").unwrap();
    power.set_power(false).unwrap();
    assert_eq!(std::fs::read_to_string(&attr).unwrap(), "1");
}

#[test]
fn rig_configs_name_the_line_of_a_missing_or_foreign_power_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 10] = [
        // (power section, line the error points at, words in the message)
        (
            "switch = \"command\"\non_command = [\"uhubctl\", \"-a\", \"on\"]",
            "[power]",
            "power.off_command is missing",
        ),
        ("switch = \"sysfs\"", "[power]", "power.sysfs_port is missing"),
        ("switch = \"ka3005p\"\nvoltage = 5.0", "[power]", "power.port is missing"),
        (
            "switch = \"command\"\nport = \"/dev/ttyUSB0\"\non_command = [\"a\"]\noff_command = [\"b\"]",
            "port =",
            "power.port is not used by switch = \"command\"",
        ),
        (
            "switch = \"lcus1\"\nport = \"/dev/ttyUSB0\"\non_command = [\"a\"]",
            "on_command",
            "power.on_command is not used by switch = \"lcus1\"",
        ),
        (
            "switch = \"command\"\non_command = []\noff_command = [\"b\"]",
            "on_command",
            "must start with the program",
        ),
        (
            "switch = \"scpi\"\nport = \"/dev/ttyUSB0\"\nvoltage = -3.0",
            "voltage",
            "power.voltage = -3",
        ),
        (
            "switch = \"scpi\"\nport = \"/dev/ttyUSB0\"\nrecovery_line = { pin = \"nrst\", channel = 2 }",
            "recovery_line",
            "power.recovery_line needs a relay board with channels",
        ),
        (
            "switch = \"lcus1\"\nport = \"/dev/ttyUSB0\"\nrecovery_line = { pin = \"boot0\", channel = 1 }",
            "recovery_line",
            "not power.channel = 1",
        ),
        (
            "switch = \"lcus1\"\nport = \"/dev/ttyUSB0\"\nrecovery_line = { pin = \"reset\", channel = 2 }",
            "recovery_line",
            "unknown variant",
        ),
    ];
    for (power, at, words) in cases {
        let rig = hardware_rig(dir.path(), power);
        let err = RigConfig::load(&rig).expect_err(power);
        assert_eq!(err.line, line_of(&rig, at), "{power}: {err}");
        assert!(err.message.contains(words), "{power}: {err}");
    }
    // The simulated bench has only the LCUS-1 relay simulator.
    let rig = common::rig_variant(
        dir.path(),
        "rig-config/sim.toml",
        &[(
            "switch = \"lcus1\"\nport = \"sim\"",
            "switch = \"sysfs\"\nsysfs_port = \"/x\"",
        )],
    );
    let err = RigConfig::load(&rig).expect_err("refused");
    assert_eq!(err.line, line_of(&rig, "switch = \"sysfs\""), "{err}");
    assert!(err.message.contains("LCUS-1 relay simulator"), "{err}");
}
