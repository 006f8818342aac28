//! Every numeric field of a rig config outside its documented range is refused at load time,
//! with `file:line:column` at the field's own line and the range in the message.

mod common;

use std::path::Path;

use bench_config::{ranges::RIG_CONFIG_RANGES, RigConfig};

/// A hardware bench config with every numeric field set to a valid value.
const HARDWARE: &str = r#"name = "hw"
[board]
model = "NUCLEO-H755ZI-Q"
backend = "hardware"
wiring = "direct-smps"
[firmware]
kind = "flashed"
[can]
adapter = "slcan"
port = "/dev/ttyACM0"
bitrate = 500000
[pulse_meter]
analyzer = "sump"
port = "/dev/ttyACM1"
channel = 0
sample_rate_hz = 1000000
max_jitter_us = 50
[power]
switch = "lcus1"
port = "/dev/ttyUSB0"
channel = 1
off_ms = 500
settle_ms = 100
supply_rise_ms = 0
command_timeout_ms = 10000
recovery_line = { pin = "nrst", channel = 2 }
[telemetry]
port = "/dev/ttyACM2"
baud = 115200
[probe]
backend = "probe-rs"
attach_timeout_ms = 2000
speed_khz = 4000
[expect]
rdp_level = 0
boot7_address = 0x08000000
boot4_address = 0x08100000
"#;

/// The same bench powered by a SCPI supply (voltage and baud are its fields).
fn scpi() -> String {
    HARDWARE
        .replace(
            "switch = \"lcus1\"\nport = \"/dev/ttyUSB0\"\nchannel = 1\n",
            "switch = \"scpi\"\nport = \"/dev/ttyUSB0\"\nvoltage = 5.0\nbaud = 9600\n",
        )
        .replace("recovery_line = { pin = \"nrst\", channel = 2 }\n", "")
}

/// The simulated bench with a `[usb]` section.
fn simulated_usb() -> String {
    std::fs::read_to_string(common::repo("rig-config/sim.toml")).expect("sim.toml")
        + "\n[usb]\nstlink_enumeration_ms = 1000\n"
}

/// Loads `text` with `from` replaced by `to`; the error, and the line `to` is on.
fn refused(dir: &Path, text: &str, from: &str, to: &str) -> (bench_config::FileError, usize) {
    let at = text
        .find(from)
        .unwrap_or_else(|| panic!("no {from:?} in the template"));
    let edited = text.replacen(from, to, 1);
    // The line replacen changed: the first `from`'s.
    let line = text[..at].matches('\n').count() + 1;
    let path = common::write(dir, "rig.toml", &edited);
    let err = RigConfig::load(&path).expect_err(to);
    (err, line)
}

#[test]
fn every_numeric_field_out_of_range_points_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let hw = HARDWARE.to_string();
    let (scpi, usb) = (scpi(), simulated_usb());
    let faults = std::fs::read_to_string(common::repo("rig-config/sim.toml")).expect("sim.toml")
        + "\n[simulated_faults]\ntelemetry = { kind = \"slow\", after_ms = 10, delay_ms = 100, for_ms = 500 }\n";
    // (field, template, the valid line, an out-of-range line)
    let cases: [(&str, &str, &str, &str); 20] = [
        ("can.bitrate", &hw, "bitrate = 500000", "bitrate = 5000"),
        ("pulse_meter.channel", &hw, "channel = 0", "channel = 9"),
        (
            "pulse_meter.sample_rate_hz",
            &hw,
            "sample_rate_hz = 1000000",
            "sample_rate_hz = 0",
        ),
        (
            "pulse_meter.max_jitter_us",
            &hw,
            "max_jitter_us = 50",
            "max_jitter_us = -1",
        ),
        ("power.channel", &hw, "channel = 1", "channel = 0"),
        ("power.off_ms", &hw, "off_ms = 500", "off_ms = 0"),
        (
            "power.settle_ms",
            &hw,
            "settle_ms = 100",
            "settle_ms = 60001",
        ),
        (
            "power.supply_rise_ms",
            &hw,
            "supply_rise_ms = 0",
            "supply_rise_ms = 10001",
        ),
        (
            "power.command_timeout_ms",
            &hw,
            "command_timeout_ms = 10000",
            "command_timeout_ms = 0",
        ),
        (
            "power.recovery_line.channel",
            &hw,
            "recovery_line = { pin = \"nrst\", channel = 2 }",
            "recovery_line = { pin = \"nrst\", channel = 9 }",
        ),
        ("power.voltage", &scpi, "voltage = 5.0", "voltage = 61"),
        ("power.baud", &scpi, "baud = 9600", "baud = 300"),
        ("telemetry.baud", &hw, "baud = 115200", "baud = 300"),
        (
            "probe.attach_timeout_ms",
            &hw,
            "attach_timeout_ms = 2000",
            "attach_timeout_ms = 10",
        ),
        (
            "probe.speed_khz",
            &hw,
            "speed_khz = 4000",
            "speed_khz = 30000",
        ),
        ("expect.rdp_level", &hw, "rdp_level = 0", "rdp_level = 3"),
        (
            "usb.stlink_enumeration_ms",
            &usb,
            "stlink_enumeration_ms = 1000",
            "stlink_enumeration_ms = 30001",
        ),
        (
            "simulated_faults.after_ms",
            &faults,
            "after_ms = 10,",
            "after_ms = 3600001,",
        ),
        (
            "simulated_faults.delay_ms",
            &faults,
            "delay_ms = 100",
            "delay_ms = 0",
        ),
        (
            "simulated_faults.for_ms",
            &faults,
            "for_ms = 500",
            "for_ms = 3600001",
        ),
    ];
    for (field, template, from, to) in cases {
        let (err, line) = refused(dir.path(), template, from, to);
        assert_eq!(err.line, line, "{field}: {err}");
        assert!(
            err.message.starts_with(&format!("{field} = ")) && err.message.contains("..="),
            "{field}: {err}"
        );
    }
    // Every documented range has its case above.
    for r in RIG_CONFIG_RANGES {
        assert!(
            cases.iter().any(|(field, ..)| *field == r.field),
            "no out-of-range case for {}",
            r.field
        );
    }
    // The templates themselves load.
    for text in [&hw, &scpi, &usb, &faults] {
        RigConfig::load(&common::write(dir.path(), "ok.toml", text))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn a_rate_the_analyzer_cannot_divide_and_a_boot_address_off_its_grain_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (err, line) = refused(
        dir.path(),
        HARDWARE,
        "sample_rate_hz = 1000000",
        "sample_rate_hz = 3000000",
    );
    assert_eq!(err.line, line, "{err}");
    assert!(err.message.contains("divides 100000000"), "{err}");
    let (err, line) = refused(
        dir.path(),
        HARDWARE,
        "boot7_address = 0x08000000",
        "boot7_address = 0x08000100",
    );
    assert_eq!(err.line, line, "{err}");
    assert!(err.message.contains("multiple of 0x10000"), "{err}");
}

#[test]
fn simulated_faults_are_refused_where_they_cannot_apply() {
    let dir = tempfile::tempdir().unwrap();
    let sim = std::fs::read_to_string(common::repo("rig-config/sim.toml")).expect("sim.toml");
    for (section, says) in [
        ("can = { kind = \"slow\" }", "needs delay_ms"),
        (
            "can = { kind = \"silent\", delay_ms = 10 }",
            "applies to kind = \"slow\" only",
        ),
        ("probe = { kind = \"garbage\" }", "no wire to garble"),
        ("power = { kind = \"flaky\" }", "unknown variant"),
        (
            "can = { kind = \"vanish\", for_ms = 1000 }",
            "a vanished device stays gone",
        ),
        (
            "can = { kind = \"silent\", for_ms = 0 }",
            "simulated_faults.for_ms",
        ),
    ] {
        let text = format!("{sim}\n[simulated_faults]\n{section}\n");
        let err = RigConfig::load(&common::write(dir.path(), "f.toml", &text))
            .expect_err(section)
            .to_string();
        assert!(err.contains(says), "{section}: {err}");
        assert!(
            err.contains(&format!("f.toml:{}:", text.lines().count())),
            "{section}: {err}"
        );
    }
    let hw = HARDWARE.to_string() + "\n[simulated_faults]\ncan = { kind = \"vanish\" }\n";
    let err = RigConfig::load(&common::write(dir.path(), "hw.toml", &hw))
        .expect_err("hardware")
        .to_string();
    assert!(err.contains("needs board.backend = \"simulated\""), "{err}");
}
