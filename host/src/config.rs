//! Rig configuration: what is attached to a bench (resources), from a TOML file.
//!
//! See `rig-config/sim.toml` for a commented example. A serial `port` of `"sim"` means the
//! pseudo-terminal of the simulated bench's instrument.

use std::path::Path;

use gauge_logic::supply::SupplyConfig;
use serde::Deserialize;
use toml::Spanned;

use crate::source::{FileError, SourceFile};

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
    power: PowerConfig,
    telemetry: TelemetryConfig,
    probe: ProbeConfig,
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
    pub port: String,
    #[serde(default = "default_bitrate")]
    pub bitrate: u32,
    /// slcan `S7`: 750 kbit/s (CANable firmware) instead of LAWICEL's 800 kbit/s.
    #[serde(default)]
    pub s7_is_750k: bool,
}

fn default_bitrate() -> u32 {
    500_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CanAdapterKind {
    Slcan,
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
}

fn default_rate() -> u32 {
    1_000_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnalyzerKind {
    Sump,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PowerConfig {
    pub switch: PowerSwitchKind,
    pub port: String,
    #[serde(default = "one")]
    pub channel: u8,
    /// How long the supply stays off in a power cycle.
    #[serde(default = "default_off_ms")]
    pub off_ms: u64,
    /// Wait after power-on before talking to the board.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PowerSwitchKind {
    Lcus1,
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
}

fn default_attach_ms() -> u64 {
    2000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeBackend {
    Simulated,
    /// No probe on this bench: steps that need one are errors.
    None,
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
        let file = SourceFile::read(path)?;
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
        for (what, port) in [
            ("can.port", &raw.can.port),
            ("pulse_meter.port", &raw.pulse_meter.port),
            ("power.port", &raw.power.port),
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
        if raw.pulse_meter.channel > 7 {
            return Err(file.error_at(None, "pulse_meter.channel must be 0..=7 (channel group 0)"));
        }
        if (raw.probe.backend == ProbeBackend::Simulated) != simulated {
            return Err(file.error_at(None, "probe.backend = \"simulated\" goes with board.backend = \"simulated\" (and only there)"));
        }
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
            power: raw.power,
            telemetry: raw.telemetry,
            probe: raw.probe,
        })
    }
}
