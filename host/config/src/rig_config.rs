//! Rig configuration: what is attached to a bench (resources), from a TOML file.
//!
//! See `rig-config/sim.toml` for a commented example. A serial `port` of `"sim"` means the
//! pseudo-terminal of the simulated bench's instrument.

use std::path::Path;

use serde::Deserialize;
use stm32h755::supply::SupplyConfig;
use toml::Spanned;

use crate::source_file::{FileError, SourceFile};

pub const SIM_PORT: &str = "sim";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRig {
    name: String,
    description: Option<String>,
    board: RawBoard,
    firmware: RawFirmware,
    can: CanConfig,
    pulse_meter: PulseMeterConfig,
    power: Spanned<PowerConfig>,
    telemetry: TelemetryConfig,
    probe: ProbeConfig,
    #[serde(default)]
    expect: ExpectConfig,
    #[serde(default)]
    usb: Option<UsbConfig>,
    #[serde(default)]
    simulated_faults: Option<SimulatedFaults>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoard {
    model: String,
    backend: BoardBackend,
    wiring: Spanned<String>,
    #[serde(default)]
    option_bytes: OptionBytesConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFirmware {
    kind: FirmwareKind,
    /// The board ELF: flashed and verified by the power-cycle check (relative to the config file).
    elf: Option<String>,
    /// `kind = "elf"`: the ELF already in flash when the bench powers up [default: `elf`].
    preloaded_elf: Option<String>,
    supply: Option<Spanned<String>>,
    preloaded_supply: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BoardBackend {
    /// The simulated board on the simulated bench (pseudo-terminal instruments).
    Simulated,
    /// A real board reached through real instruments.
    Hardware,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FirmwareKind {
    /// The gauge logic built for the host (simulated board only).
    Logic,
    /// The board ELF, already flashed (hardware).
    Flashed,
    /// The board ELF (`firmware.elf`) running on the emulated board (simulated bench, feature
    /// `emulator`).
    Elf,
}

/// `[firmware]` checks of `kind = "elf"` (the emulated board).
fn check_elf_kind(file: &SourceFile, fw: &RawFirmware, simulated: bool) -> Result<(), FileError> {
    if fw.kind != FirmwareKind::Elf {
        if fw.preloaded_elf.is_some() {
            return Err(file.error_at(
                None,
                "firmware.preloaded_elf goes with kind = \"elf\" (the emulated board); remove it",
            ));
        }
        return Ok(());
    }
    if !simulated {
        return Err(file.error_at(None, "firmware.kind = \"elf\" runs the board ELF on the emulated board of board.backend = \"simulated\"; use \"flashed\" for hardware"));
    }
    if fw.elf.is_none() {
        return Err(file.error_at(None, "firmware.kind = \"elf\" needs firmware.elf: the board ELF to run (e.g. \"../firmware/target/thumbv7em-none-eabihf/release/firmware\", from firmware/build.sh)"));
    }
    if !cfg!(feature = "emulator") {
        return Err(file.error_at(None, "firmware.kind = \"elf\" runs the board ELF on the emulated board, which this build of rig does not include: build with the emulator (`cargo run --features emulator -- ...`, `cargo test -p rig --features emulator`; needs cmake and libclang-dev)"));
    }
    Ok(())
}

/// Option bytes the board has (simulated board) or is expected to have (hardware).
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OptionBytesConfig {
    #[serde(default = "yes")]
    pub bcm7: bool,
    #[serde(default = "yes")]
    pub bcm4: bool,
}

fn yes() -> bool {
    true
}

impl Default for OptionBytesConfig {
    fn default() -> Self {
        Self {
            bcm7: true,
            bcm4: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CanConfig {
    pub adapter: CanAdapterKind,
    /// slcan: the adapter's serial device (`"sim"` on the simulated bench). Not used by
    /// socketcan (only `"sim"` is accepted there, on the simulated bench).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// The bus bitrate. slcan sets it; for socketcan the system sets it (`ip link set can0 type
    /// can bitrate 500000`) and the rig names it in its advice.
    #[serde(default = "default_bitrate")]
    pub bitrate: u32,
    /// slcan `S7`: 750 kbit/s (CANable firmware) instead of LAWICEL's 800 kbit/s.
    #[serde(default)]
    pub s7_is_750k: bool,
    /// slcan: ask for receive timestamps (`Z1`); adapters without it (early CANable firmware)
    /// are used without.
    #[serde(default)]
    pub timestamps: bool,
    /// socketcan: the CAN network interface, e.g. `"can0"` (on the simulated bench a virtual
    /// one such as `"vcan0"`, which the bench bridges to the simulated board).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// socketcan: open a CAN FD socket (the interface must be FD-capable; classic frames still
    /// work).
    #[serde(default)]
    pub fd: bool,
}

fn default_bitrate() -> u32 {
    500_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CanAdapterKind {
    /// LAWICEL ASCII over a serial port (CANable stock firmware, USBtin...).
    Slcan,
    /// A Linux CAN network interface (can0, vcan0) through SocketCAN.
    Socketcan,
}

/// `[can]` checks that depend on the adapter kind.
fn check_can(file: &SourceFile, can: &CanConfig, simulated: bool) -> Result<(), FileError> {
    let err = |key: &str, msg: String| Err(file.error_at(file.key_span("can", key), msg));
    match can.adapter {
        CanAdapterKind::Slcan => {
            if can.port.is_none() {
                return err("adapter", format!("can.adapter = \"slcan\" needs can.port: the adapter's serial device (e.g. /dev/serial/by-id/...), or \"{SIM_PORT}\" on the simulated bench"));
            }
            if can.interface.is_some() || can.fd {
                let key = if can.fd { "fd" } else { "interface" };
                return err(
                    key,
                    format!(
                        "can.{key} is a socketcan setting; an slcan adapter is named by can.port"
                    ),
                );
            }
        }
        CanAdapterKind::Socketcan => {
            let Some(interface) = &can.interface else {
                return err("adapter", "can.adapter = \"socketcan\" needs can.interface: the CAN network interface, e.g. \"can0\" (`ip -brief link` lists them), or a vcan interface such as \"vcan0\" on the simulated bench".into());
            };
            if interface.is_empty() || interface.len() > 15 || interface.contains(['/', ' ']) {
                return err("interface", format!("can.interface = {interface:?} is not a network interface name (at most 15 characters, no '/': e.g. \"can0\")"));
            }
            if can.s7_is_750k {
                return err("s7_is_750k", "can.s7_is_750k is an slcan setting; a SocketCAN interface's bitrate is set by the system (`ip link set can0 type can bitrate 500000`)".into());
            }
            if can.port.is_some() && !simulated {
                return err("port", "can.port is not used by adapter = \"socketcan\": remove it (the interface is can.interface)".into());
            }
        }
    }
    if let Some(port) = &can.port {
        if (port == SIM_PORT) != simulated {
            let msg = if simulated {
                format!("can.port = {port:?}: the simulated bench provides its own ports; write \"{SIM_PORT}\"")
            } else {
                format!("can.port = \"{SIM_PORT}\" needs board.backend = \"simulated\"; give the device path (e.g. /dev/serial/by-id/...)")
            };
            return err("port", msg);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PulseMeterConfig {
    pub analyzer: AnalyzerKind,
    pub port: String,
    #[serde(default)]
    pub channel: u8,
    #[serde(default = "default_rate")]
    pub sample_rate_hz: u32,
    /// Ask the analyzer for run-length encoded samples (OLS protocol: flags bit 8) when it
    /// offers them: far fewer bytes per capture, but channel 7 carries the count flag.
    #[serde(default)]
    pub rle: bool,
    /// Captures whose servo periods differ by more than this (peak to peak) are rejected.
    #[serde(default = "default_max_jitter_us")]
    pub max_jitter_us: f64,
}

fn default_rate() -> u32 {
    1_000_000
}
fn default_max_jitter_us() -> f64 {
    50.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnalyzerKind {
    Sump,
}

/// What a bench's power switch feeds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PowerTopology {
    /// The target's supply alone (E5V/VIN or a lab supply): the ST-LINK stays powered.
    #[default]
    Target,
    /// The NUCLEO's ST-LINK USB port (CN1): cutting it removes the probe and the VCP from USB
    /// with the target; both come back after the ST-LINK boots and enumerates.
    StlinkUsb,
}

/// The boot pin a recovery relay channel drives while it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryPin {
    /// NRST pulled to GND: the chip stays in reset (ST's "connect under reset").
    Nrst,
    /// BOOT0 tied to VDD: the chip boots ST's system bootloader instead of the flash.
    Boot0,
}

impl RecoveryPin {
    pub fn name(self) -> &'static str {
        match self {
            Self::Nrst => "NRST",
            Self::Boot0 => "BOOT0",
        }
    }
}

/// `power.recovery_line`: which relay channel drives which boot pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryLine {
    pub pin: RecoveryPin,
    pub channel: u8,
}

/// Simulated bench only: faults its instruments show from a moment after bring-up on, so that
/// what the rig does when a bench device misbehaves is tested through the same drivers.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedFaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can: Option<DeviceFault>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulse_meter: Option<DeviceFault>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<DeviceFault>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<DeviceFault>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<DeviceFault>,
}

/// One instrument's fault.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceFault {
    pub kind: FaultKind,
    /// From the end of the rig's bring-up (power on, firmware loaded) to the fault.
    #[serde(default)]
    pub after_ms: u64,
    /// `kind = "slow"`: how late each answer comes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// How long the fault lasts before the device behaves again (a transient fault: a
    /// brown-out of the analyzer, noise on a cable); unset, it lasts. Not for `vanish`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_ms: Option<u64>,
}

/// What a faulty device does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// Leaves for good: its port hangs up and its path is gone (a USB device unplugged).
    Vanish,
    /// Stays present but answers nothing and ignores what it is sent.
    Silent,
    /// Answers with bytes of the right count but wrong values (a wrong baud rate, noise).
    Garbage,
    /// Answers correctly, `delay_ms` late.
    Slow,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Vanish => "vanish",
            FaultKind::Silent => "silent",
            FaultKind::Garbage => "garbage",
            FaultKind::Slow => "slow",
        }
    }
}

impl SimulatedFaults {
    /// Each configured fault with its device's key in the table.
    pub fn each(&self) -> impl Iterator<Item = (&'static str, DeviceFault)> + '_ {
        [
            ("can", self.can),
            ("pulse_meter", self.pulse_meter),
            ("power", self.power),
            ("telemetry", self.telemetry),
            ("probe", self.probe),
        ]
        .into_iter()
        .filter_map(|(k, f)| f.map(|f| (k, f)))
    }
}

/// Simulated bench only: its instruments served as USB devices over USB/IP (`rig sim --usbip`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UsbConfig {
    /// The emulated ST-LINK's serial number (24 hex digits, as ST's are).
    #[serde(default = "default_stlink_serial")]
    pub stlink_serial: String,
    /// Time from power-on to the ST-LINK on USB (its boot and enumeration), with
    /// `power.topology = "stlink-usb"`.
    #[serde(default = "default_stlink_enumeration_ms")]
    pub stlink_enumeration_ms: u64,
}

impl Default for UsbConfig {
    fn default() -> Self {
        Self {
            stlink_serial: default_stlink_serial(),
            stlink_enumeration_ms: default_stlink_enumeration_ms(),
        }
    }
}

fn default_stlink_serial() -> String {
    "0030003A3433510237363934".into()
}

fn default_stlink_enumeration_ms() -> u64 {
    1000
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PowerConfig {
    pub switch: PowerSwitchKind,
    /// Serial port of a `lcus1`, `ka3005p` or `scpi` switch (`"sim"` on the simulated bench);
    /// absent for `command` and `sysfs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(default = "one")]
    pub channel: u8,
    /// How long the supply stays off in a power cycle.
    #[serde(default = "default_off_ms")]
    pub off_ms: u64,
    /// Wait after power-on before talking to the board.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// What the switch powers: only the target (the ST-LINK stays on USB) or the whole NUCLEO
    /// through the ST-LINK's USB port CN1 (probe, virtual COM port and target go dark together).
    #[serde(default)]
    pub topology: PowerTopology,
    /// A relay channel of its own, on the same relay board, wired to the board's NRST (to GND)
    /// or BOOT0 (to VDD): `rig recover` switches it on across the power-on, which a probe
    /// powered with the board (`topology = "stlink-usb"`) cannot do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_line: Option<RecoveryLine>,
    /// Simulated bench only: how long the simulated supply takes from the on-command to a
    /// valid VDD (a lab supply's soft start); 0: at once.
    #[serde(default)]
    pub supply_rise_ms: u64,
    /// `switch = "command"`: program and arguments that switch the supply on (run without a
    /// shell), e.g. `["uhubctl", "-l", "1-1", "-p", "2", "-a", "on"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_command: Option<Vec<String>>,
    /// `switch = "command"`: the same for off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_command: Option<Vec<String>>,
    /// `switch = "command"`: a command still running after this long is killed (an error).
    #[serde(default = "default_command_timeout_ms")]
    pub command_timeout_ms: u64,
    /// `switch = "sysfs"`: the USB port's `disable` attribute ("1" = off, "0" = on), e.g.
    /// `/sys/bus/usb/devices/1-1/1-1:1.0/../port/disable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysfs_port: Option<String>,
    /// `ka3005p` / `scpi`: output voltage set when the supply is opened (volts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voltage: Option<f64>,
    /// `ka3005p` / `scpi`: serial speed [default 9600].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baud: Option<u32>,
}

fn one() -> u8 {
    1
}
fn default_off_ms() -> u64 {
    500
}
fn default_settle_ms() -> u64 {
    100
}
fn default_command_timeout_ms() -> u64 {
    10_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PowerSwitchKind {
    /// LCUS-1 USB relay (serial).
    Lcus1,
    /// External programs (e.g. uhubctl), one for on and one for off.
    Command,
    /// Linux sysfs USB port `disable` attribute.
    Sysfs,
    /// Korad KA3005P bench supply (and its clones) over serial.
    Ka3005p,
    /// A SCPI bench supply over serial (`OUTPut ON|OFF`).
    Scpi,
}

impl PowerSwitchKind {
    /// The name a rig config uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lcus1 => "lcus1",
            Self::Command => "command",
            Self::Sysfs => "sysfs",
            Self::Ka3005p => "ka3005p",
            Self::Scpi => "scpi",
        }
    }

    /// Whether the switch is a serial device named by `power.port`.
    pub fn uses_port(self) -> bool {
        matches!(self, Self::Lcus1 | Self::Ka3005p | Self::Scpi)
    }
}

/// Per-kind checks of `[power]`: each switch has its required fields and no foreign ones.
fn check_power(
    file: &SourceFile,
    power: &Spanned<PowerConfig>,
    simulated: bool,
) -> Result<(), FileError> {
    let p = power.get_ref();
    let kind = p.switch.name();
    let at = |key: &str| file.key_span("power", key).or(Some(power.span()));
    if simulated && p.switch != PowerSwitchKind::Lcus1 {
        return Err(file.error_at(
            at("switch"),
            format!("power.switch = \"{kind}\": the simulated bench has an LCUS-1 relay simulator only; write switch = \"lcus1\" and port = \"{SIM_PORT}\""),
        ));
    }
    match (&p.port, p.switch.uses_port()) {
        (None, true) => {
            let example = if simulated {
                format!("\"{SIM_PORT}\"")
            } else {
                "\"/dev/serial/by-id/...\"".to_string()
            };
            return Err(file.error_at(
                Some(power.span()),
                format!("power.port is missing: switch = \"{kind}\" needs its serial port, e.g. port = {example}"),
            ));
        }
        (Some(_), false) => {
            return Err(file.error_at(
                at("port"),
                format!("power.port is not used by switch = \"{kind}\"; remove it"),
            ));
        }
        (Some(port), true) if (port == SIM_PORT) != simulated => {
            let msg = if simulated {
                format!("power.port = {port:?}: the simulated bench provides its own ports; write \"{SIM_PORT}\"")
            } else {
                format!("power.port = \"{SIM_PORT}\" needs board.backend = \"simulated\"; give the device path (e.g. /dev/serial/by-id/...)")
            };
            return Err(file.error_at(at("port"), msg));
        }
        _ => {}
    }
    let only_for = |key: &str, present: bool, kinds: &[PowerSwitchKind]| {
        if present && !kinds.contains(&p.switch) {
            let names: Vec<String> = kinds.iter().map(|k| format!("\"{}\"", k.name())).collect();
            return Err(file.error_at(
                at(key),
                format!(
                    "power.{key} is not used by switch = \"{kind}\" (only by switch = {}); remove it",
                    names.join(" or ")
                ),
            ));
        }
        Ok(())
    };
    use PowerSwitchKind::{Command, Ka3005p, Scpi, Sysfs};
    only_for("on_command", p.on_command.is_some(), &[Command])?;
    only_for("off_command", p.off_command.is_some(), &[Command])?;
    only_for("sysfs_port", p.sysfs_port.is_some(), &[Sysfs])?;
    only_for("voltage", p.voltage.is_some(), &[Ka3005p, Scpi])?;
    only_for("baud", p.baud.is_some(), &[Ka3005p, Scpi])?;
    if p.switch == Command {
        for (key, argv) in [
            ("on_command", &p.on_command),
            ("off_command", &p.off_command),
        ] {
            match argv {
                None => {
                    return Err(file.error_at(
                        Some(power.span()),
                        format!("power.{key} is missing: switch = \"command\" needs the program and its arguments, e.g. {key} = [\"uhubctl\", \"-l\", \"1-1\", \"-p\", \"2\", \"-a\", \"{}\"]", if key == "on_command" { "on" } else { "off" }),
                    ))
                }
                Some(v) if v.first().is_none_or(|p| p.trim().is_empty()) => {
                    return Err(file.error_at(
                        at(key),
                        format!("power.{key} must start with the program to run"),
                    ))
                }
                Some(_) => {}
            }
        }
    }
    if let Some(line) = &p.recovery_line {
        if p.switch != PowerSwitchKind::Lcus1 {
            return Err(file.error_at(
                at("recovery_line"),
                format!("power.recovery_line needs a relay board with channels (switch = \"lcus1\", e.g. an LCUS-2); switch = \"{kind}\" has none. Without it, say nothing and `rig recover` tells the person at the bench what to hold"),
            ));
        }
        if line.channel == p.channel {
            return Err(file.error_at(
                at("recovery_line"),
                format!("power.recovery_line.channel = {}: give the relay channel wired to {}, not power.channel = {} (the board's supply)", line.channel, line.pin.name(), p.channel),
            ));
        }
    }
    if p.switch == Sysfs && p.sysfs_port.as_deref().is_none_or(|s| s.trim().is_empty()) {
        return Err(file.error_at(
            at("sysfs_port"),
            "power.sysfs_port is missing: switch = \"sysfs\" needs the USB port's disable attribute, e.g. sysfs_port = \"/sys/bus/usb/devices/1-1/1-1:1.0/../port/disable\"",
        ));
    }
    Ok(())
}

/// Every numeric field against its documented range ([`crate::ranges`]), each error at the
/// field's line.
fn check_ranges(file: &SourceFile, raw: &RawRig) -> Result<(), FileError> {
    let (can, meter, power) = (&raw.can, &raw.pulse_meter, raw.power.get_ref());
    let lcus = power.switch == PowerSwitchKind::Lcus1;
    let values: [(&str, Option<f64>); 17] = [
        ("can.bitrate", Some(f64::from(can.bitrate))),
        ("pulse_meter.channel", Some(f64::from(meter.channel))),
        (
            "pulse_meter.sample_rate_hz",
            Some(f64::from(meter.sample_rate_hz)),
        ),
        ("pulse_meter.max_jitter_us", Some(meter.max_jitter_us)),
        // Only a relay board numbers its outputs.
        ("power.channel", lcus.then_some(f64::from(power.channel))),
        ("power.off_ms", Some(power.off_ms as f64)),
        ("power.settle_ms", Some(power.settle_ms as f64)),
        ("power.supply_rise_ms", Some(power.supply_rise_ms as f64)),
        (
            "power.command_timeout_ms",
            Some(power.command_timeout_ms as f64),
        ),
        (
            "power.recovery_line.channel",
            power.recovery_line.map(|l| f64::from(l.channel)),
        ),
        ("power.voltage", power.voltage),
        ("power.baud", power.baud.map(f64::from)),
        ("telemetry.baud", Some(f64::from(raw.telemetry.baud))),
        (
            "probe.attach_timeout_ms",
            Some(raw.probe.attach_timeout_ms as f64),
        ),
        ("probe.speed_khz", raw.probe.speed_khz.map(f64::from)),
        ("expect.rdp_level", Some(f64::from(raw.expect.rdp_level))),
        (
            "usb.stlink_enumeration_ms",
            raw.usb.as_ref().map(|u| u.stlink_enumeration_ms as f64),
        ),
    ];
    for (field, value) in values {
        let Some(value) = value else { continue };
        let Some(range) = crate::ranges::range_of(field) else {
            continue; // every field above is listed (unit test)
        };
        if let Err(message) = range.check(value) {
            // `section.key`; `power.recovery_line.channel` is written on the recovery_line line.
            let mut parts = field.split('.');
            let (section, key) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            return Err(file.error_at(file.key_span(section, key), message));
        }
    }
    for (key, address) in [
        ("boot7_address", raw.expect.boot7_address),
        ("boot4_address", raw.expect.boot4_address),
    ] {
        // BOOT_CMx_ADD0 holds address bits 31:16: other bits can never match.
        if address & 0xFFFF != 0 {
            return Err(file.error_at(
                file.key_span("expect", key),
                format!("expect.{key} = {address:#010x}: a boot address is a multiple of 0x10000 (the option bytes hold bits 31:16), e.g. 0x08000000"),
            ));
        }
    }
    Ok(())
}

/// `[simulated_faults]`: simulated bench only; `delay_ms` with `slow` and only there; both
/// times within their documented ranges (errors at the device's line).
fn check_faults(
    file: &SourceFile,
    faults: Option<&SimulatedFaults>,
    simulated: bool,
) -> Result<(), FileError> {
    let Some(faults) = faults else { return Ok(()) };
    for (device, fault) in faults.each() {
        let span = file.key_span("simulated_faults", device);
        if !simulated {
            return Err(file.error_at(span, format!("simulated_faults.{device}: faults are injected by the simulated bench's instruments; it needs board.backend = \"simulated\"")));
        }
        if device == "probe" && matches!(fault.kind, FaultKind::Garbage | FaultKind::Slow) {
            return Err(file.error_at(span, format!("simulated_faults.probe: kind = {:?}: the in-process probe has no wire to garble or slow down; it can \"vanish\" (leave USB) or fall \"silent\" (its USB transfers time out)", fault.kind.name())));
        }
        match (fault.kind, fault.delay_ms) {
            (FaultKind::Slow, None) => {
                return Err(file.error_at(span, format!("simulated_faults.{device}: kind = \"slow\" needs delay_ms (how late each answer comes)")))
            }
            (kind, Some(_)) if kind != FaultKind::Slow => {
                return Err(file.error_at(span, format!("simulated_faults.{device}: delay_ms applies to kind = \"slow\" only, not {:?}", kind.name())))
            }
            _ => {}
        }
        if fault.kind == FaultKind::Vanish && fault.for_ms.is_some() {
            return Err(file.error_at(span, format!("simulated_faults.{device}: for_ms does not apply to kind = \"vanish\" (a vanished device stays gone); a transient fault is \"silent\", \"garbage\" or \"slow\"")));
        }
        for (field, value) in [
            ("simulated_faults.after_ms", Some(fault.after_ms)),
            ("simulated_faults.delay_ms", fault.delay_ms),
            ("simulated_faults.for_ms", fault.for_ms),
        ] {
            let (Some(value), Some(range)) = (value, crate::ranges::range_of(field)) else {
                continue;
            };
            if let Err(message) = range.check(value as f64) {
                return Err(file.error_at(span, format!("{message} (the {device} fault)")));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    pub port: String,
    #[serde(default = "default_baud")]
    pub baud: u32,
}

fn default_baud() -> u32 {
    115_200
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    pub backend: ProbeBackend,
    /// Serial number of the probe (hardware), so two ST-LINKs on one bench are never confused.
    pub serial: Option<String>,
    /// How long to keep trying to attach after power-on.
    #[serde(default = "default_attach_ms")]
    pub attach_timeout_ms: u64,
    /// `probe-rs`: the chip name probe-rs knows the target by.
    #[serde(default = "default_chip")]
    pub chip: String,
    /// `probe-rs`: SWD clock in kHz [default: the probe's own].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_khz: Option<u32>,
    /// `probe-rs`: `rig flash` connects under reset (NRST held while attaching) right away
    /// instead of only after a normal attach failed.
    #[serde(default)]
    pub under_reset: bool,
}

fn default_attach_ms() -> u64 {
    2000
}

/// The chip on a NUCLEO-H755ZI-Q, as probe-rs names it.
pub const DEFAULT_CHIP: &str = "STM32H755ZITx";

fn default_chip() -> String {
    DEFAULT_CHIP.to_string()
}

/// `[probe]` checks: which backend goes with which board, and the probe-rs settings.
fn check_probe(
    file: &SourceFile,
    probe: &ProbeConfig,
    simulated: bool,
    firmware: FirmwareKind,
) -> Result<(), FileError> {
    let err = |key: &str, msg: &str| Err(file.error_at(file.key_span("probe", key), msg));
    match (probe.backend, simulated) {
        (ProbeBackend::Simulated, true) | (ProbeBackend::ProbeRs | ProbeBackend::None, false) => {}
        // probe-rs on the emulated board's debug port.
        (ProbeBackend::ProbeRs, true) if firmware == FirmwareKind::Elf => {}
        (ProbeBackend::ProbeRs, true) => {
            return err("backend", "probe.backend = \"probe-rs\" on the simulated bench needs the emulated board's debug port: firmware.kind = \"elf\" (the logic board has none); else use probe.backend = \"simulated\"");
        }
        (ProbeBackend::Simulated, false) => {
            return err("backend", "probe.backend = \"simulated\" goes only with board.backend = \"simulated\"; a hardware bench uses \"probe-rs\" (or \"none\")");
        }
        (_, true) => {
            return err("backend", "board.backend = \"simulated\" needs probe.backend = \"simulated\" (or \"probe-rs\" with firmware.kind = \"elf\"): the simulated board has no USB debug probe");
        }
    }
    if probe.backend == ProbeBackend::ProbeRs {
        if probe.chip.trim().is_empty() {
            return err("chip", "probe.chip is empty: give the chip name probe-rs knows (e.g. \"STM32H755ZITx\"; `probe-rs chip list` lists them)");
        }
        if probe.serial.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return err("serial", "probe.serial is empty: give the probe's serial number (`rig list` shows it) or leave the line out");
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeBackend {
    Simulated,
    /// A real probe (ST-LINK, CMSIS-DAP, J-Link...) through the probe-rs library.
    ProbeRs,
    /// No probe on this bench: steps that need one are errors.
    None,
}

/// What the power-cycle check expects of the option bytes.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectConfig {
    #[serde(default = "yes")]
    pub bcm7: bool,
    #[serde(default = "yes")]
    pub bcm4: bool,
    #[serde(default = "default_boot7")]
    pub boot7_address: u32,
    #[serde(default = "default_boot4")]
    pub boot4_address: u32,
    /// 0, 1 or 2.
    #[serde(default)]
    pub rdp_level: u8,
}

fn default_boot7() -> u32 {
    stm32h755::flash::boot_address0(stm32h755::flash::BOOT7_DEFAULT)
}
fn default_boot4() -> u32 {
    stm32h755::flash::boot_address0(stm32h755::flash::BOOT4_DEFAULT)
}

impl Default for ExpectConfig {
    fn default() -> Self {
        Self {
            bcm7: true,
            bcm4: true,
            boot7_address: default_boot7(),
            boot4_address: default_boot4(),
            rdp_level: 0,
        }
    }
}

/// A validated rig description.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RigConfig {
    pub path: String,
    pub name: String,
    pub description: Option<String>,
    pub board_model: String,
    pub backend: BoardBackend,
    #[serde(serialize_with = "ser_supply")]
    pub wiring: SupplyConfig,
    pub option_bytes: OptionBytesConfig,
    pub firmware_kind: FirmwareKind,
    #[serde(serialize_with = "ser_supply")]
    pub firmware_supply: SupplyConfig,
    #[serde(serialize_with = "ser_supply")]
    pub preloaded_supply: SupplyConfig,
    pub can: CanConfig,
    pub pulse_meter: PulseMeterConfig,
    pub power: PowerConfig,
    pub telemetry: TelemetryConfig,
    pub probe: ProbeConfig,
    pub expect: ExpectConfig,
    /// Simulated bench only: serve it over USB/IP.
    pub usb: Option<UsbConfig>,
    /// Simulated bench only: instrument faults to show after bring-up.
    pub simulated_faults: Option<SimulatedFaults>,
    /// The board ELF, resolved against the config file's folder.
    pub firmware_elf: Option<std::path::PathBuf>,
    /// `kind = "elf"`: the ELF in flash when the bench starts, resolved like `firmware_elf`.
    pub preloaded_elf: Option<std::path::PathBuf>,
}

fn ser_supply<S: serde::Serializer>(s: &SupplyConfig, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.name())
}

fn supply(
    file: &SourceFile,
    value: &Spanned<String>,
    what: &str,
) -> Result<SupplyConfig, FileError> {
    SupplyConfig::from_name(value.get_ref()).ok_or_else(|| {
        let names: Vec<&str> = SupplyConfig::ALL.iter().map(|s| s.name()).collect();
        file.error_at(
            Some(value.span()),
            format!(
                "{what} {:?} is not a supply configuration; one of: {}",
                value.get_ref(),
                names.join(", ")
            ),
        )
    })
}

impl RigConfig {
    pub fn load(path: &Path) -> Result<Self, FileError> {
        Self::from_file(path, SourceFile::read(path)?)
    }

    /// [`Self::load`] of a rig config's `text`, as if read from `path` (errors name it; ELF
    /// paths in the text stay relative to its folder; nothing is read from it).
    pub fn from_text(path: &Path, text: impl Into<String>) -> Result<Self, FileError> {
        let file = SourceFile {
            path: path.display().to_string(),
            text: text.into(),
        };
        Self::from_file(path, file)
    }

    fn from_file(path: &Path, file: SourceFile) -> Result<Self, FileError> {
        let raw: RawRig = file.parse()?;
        let wiring = supply(&file, &raw.board.wiring, "board.wiring")?;
        let firmware_supply = match &raw.firmware.supply {
            Some(s) => supply(&file, s, "firmware.supply")?,
            None => gauge_logic::supply::FIRMWARE_SUPPLY,
        };
        let preloaded_supply = match &raw.firmware.preloaded_supply {
            Some(s) => supply(&file, s, "firmware.preloaded_supply")?,
            None => wiring,
        };
        let simulated = raw.board.backend == BoardBackend::Simulated;
        if raw.firmware.kind == FirmwareKind::Logic && !simulated {
            return Err(file.error_at(None, "firmware.kind = \"logic\" runs only on board.backend = \"simulated\"; use \"flashed\" for hardware"));
        }
        check_elf_kind(&file, &raw.firmware, simulated)?;
        for (what, port) in [
            ("pulse_meter.port", &raw.pulse_meter.port),
            ("telemetry.port", &raw.telemetry.port),
        ] {
            if (port == SIM_PORT) != simulated {
                let msg = if simulated {
                    format!("{what} = {port:?}: the simulated bench provides its own ports; write \"{SIM_PORT}\"")
                } else {
                    format!("{what} = \"{SIM_PORT}\" needs board.backend = \"simulated\"; give the device path (e.g. /dev/serial/by-id/...)")
                };
                let needle = format!("{port:?}");
                let span = file.text.find(&needle).map(|i| i..i + needle.len());
                return Err(file.error_at(span, msg));
            }
        }
        check_can(&file, &raw.can, simulated)?;
        check_power(&file, &raw.power, simulated)?;
        check_ranges(&file, &raw)?;
        if raw.pulse_meter.rle && raw.pulse_meter.channel > 6 {
            return Err(file.error_at(file.key_span("pulse_meter", "channel"), "pulse_meter.rle = true: bit 7 of each sample is the run-length count flag, so the servo must be on channel 0..=6"));
        }
        if 100_000_000 % raw.pulse_meter.sample_rate_hz != 0 {
            return Err(file.error_at(file.key_span("pulse_meter", "sample_rate_hz"), format!("pulse_meter.sample_rate_hz = {}: a SUMP analyzer divides its 100 MHz clock by a whole number, so give a rate that divides 100000000 (e.g. 1000000, 2000000, 5000000)", raw.pulse_meter.sample_rate_hz)));
        }
        check_probe(&file, &raw.probe, simulated, raw.firmware.kind)?;
        if let Some(usb) = &raw.usb {
            if !simulated {
                return Err(file.error_at(file.key_span("usb", "stlink_serial"), "[usb] serves a simulated bench over USB/IP: it needs board.backend = \"simulated\" (on a real bench the devices are on USB already)"));
            }
            if usb.stlink_serial.len() < 24
                || !usb.stlink_serial.chars().all(|c| c.is_ascii_hexdigit())
            {
                return Err(file.error_at(file.key_span("usb", "stlink_serial"), format!("usb.stlink_serial = {:?}: give 24 hex digits, as an ST-LINK's serial number has (probe-rs re-encodes shorter ones)", usb.stlink_serial)));
            }
        }
        check_faults(&file, raw.simulated_faults.as_ref(), simulated)?;
        Ok(Self {
            path: path.display().to_string(),
            name: raw.name,
            description: raw.description,
            board_model: raw.board.model,
            backend: raw.board.backend,
            wiring,
            option_bytes: raw.board.option_bytes,
            firmware_kind: raw.firmware.kind,
            firmware_supply,
            preloaded_supply,
            can: raw.can,
            pulse_meter: raw.pulse_meter,
            power: raw.power.into_inner(),
            telemetry: raw.telemetry,
            probe: raw.probe,
            expect: raw.expect,
            usb: raw.usb,
            simulated_faults: raw.simulated_faults,
            firmware_elf: raw
                .firmware
                .elf
                .as_ref()
                .map(|e| path.parent().unwrap_or(Path::new(".")).join(e)),
            preloaded_elf: raw
                .firmware
                .preloaded_elf
                .as_ref()
                .map(|e| path.parent().unwrap_or(Path::new(".")).join(e)),
        })
    }
}
