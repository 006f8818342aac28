//! What only some benches can do, declared beside the instrument traits so that the simulated
//! bench and the emulator implement them without knowing the verification code, and asked for
//! like an instrument: a step that needs one says so when the bench does not offer it. No
//! check on hardware changes what it measures because a capability is there.

use std::path::Path;

use stm32h755::supply::SupplyConfig;

/// Cuts the board's supply at a chosen byte of the firmware's storage writes, and counts those
/// bytes (the simulated boards: their flash models see every programmed byte).
pub trait StoragePowerCut: Send {
    /// Bytes the firmware has programmed into its storage sectors so far.
    fn storage_bytes_programmed(&self) -> usize;
    /// Arms a supply cut after the next `bytes` programmed storage bytes (`None`: disarms).
    /// Armed while the board is off, it strikes the boot-time record writes.
    fn arm_cut_after_bytes(&mut self, bytes: Option<usize>);
    /// Whether the board's supply is on (false once an armed cut struck).
    fn board_powered(&self) -> bool;
    /// One whole boot at the board's own supply, without the power switch: off, arm
    /// `cut` (if any), on, then disarm; the board stays dark if the cut struck.
    fn boot_with_cut(&mut self, cut: Option<usize>);
}

/// Loads the host-built gauge logic into the simulated board (a `logic:<supply>` image).
pub trait LogicImageLoader: Send {
    /// Programs the logic selecting `supply`, and the board ELF's bytes (if `elf` is given) so
    /// that the flash-image check has them; runs from the next reset.
    fn load_logic(&mut self, supply: SupplyConfig, elf: Option<&Path>) -> Result<(), String>;
}

/// A fault on the board's CAN bus.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanBusFault {
    /// The bus as it should be.
    #[default]
    None,
    /// No other node on the bus: the board's frames go unacknowledged and nothing reaches it.
    NoAck,
    /// CANH shorted to CANL (or the bus held dominant): every transmission fails.
    Short,
}

impl CanBusFault {
    pub fn name(self) -> &'static str {
        match self {
            CanBusFault::None => "none",
            CanBusFault::NoAck => "no_ack",
            CanBusFault::Short => "short",
        }
    }
}

/// Puts a fault on the board's CAN bus (the emulated board: its FDCAN model's fault
/// confinement sees it). A bench of real hardware would need a relay across CANH/CANL or on
/// the adapter's lines, which the rig does not drive yet.
pub trait CanBusFaults: Send {
    fn set_can_bus_fault(&mut self, fault: CanBusFault) -> Result<(), String>;
}

/// How an emulated board keeps up with the bench.
pub trait EmulationMonitor: Send {
    /// `None` for boards that are not emulated.
    fn emulation(&self) -> Option<EmulationStats>;
}

/// How fast an emulated target runs (targets that run host code have none).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EmulationStats {
    /// Instructions the emulated core executed.
    pub instructions: u64,
    /// Emulated (virtual) time, seconds.
    pub virtual_s: f64,
    /// Wall time spent emulating, seconds.
    pub busy_s: f64,
    /// Bench time the core was out of reset, seconds.
    pub wall_s: f64,
    /// Instructions per second of emulation work.
    pub instructions_per_s: f64,
    /// Emulated seconds per second of emulation work: how much faster than real time the
    /// emulator can run (above 1: faster).
    pub speed_factor: f64,
    /// Emulated seconds per bench second: 1.0 when the board kept up with the bench.
    pub real_time_factor: f64,
    /// How far virtual time is behind the bench now, milliseconds.
    pub lag_ms: f64,
    pub exceptions: u64,
    /// Times a debugger halted the core (probe-rs halts every core at each session start),
    /// how long it stayed halted in all (emulated ms) and the longest single halt.
    pub debug_halts: u64,
    pub debug_halted_ms: f64,
    pub longest_debug_halt_ms: f64,
    /// Where the core is ("running", "sleeping in WFE at ...", a fault).
    pub state: String,
    /// CAN frames the emulated FDCAN stored in an RX FIFO, rejected by its acceptance filters,
    /// lost to a full FIFO, and not taken at all (controller not operating).
    #[serde(default)]
    pub can_frames_received: u64,
    #[serde(default)]
    pub can_frames_filtered: u64,
    #[serde(default)]
    pub can_fifo_overruns: u64,
    #[serde(default)]
    pub can_frames_dropped: u64,
    /// Bench frames a bus fault kept from the board; times its FDCAN went error passive, and
    /// bus-off.
    #[serde(default)]
    pub can_frames_lost_to_bus_fault: u64,
    #[serde(default)]
    pub can_error_passive_events: u64,
    #[serde(default)]
    pub can_bus_off_events: u64,
}

/// What the rig knows about the firmware loaded into the board.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FirmwareIdentity {
    pub name: String,
    pub version: String,
    /// The supply configuration the firmware selects, when known (from the build, or from
    /// preflight of an ELF).
    pub supply: Option<String>,
    /// SHA-256 of the image, when there is a file.
    pub sha256: Option<String>,
    /// The ELF's provenance as its build embedded it (firmware/build.rs): git commit, whether
    /// the firmware's sources differed from it, and the GNU build id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_dirty: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// The board's flash read back through the probe at bring-up against the ELF:
    /// `matches the ELF (N bytes)`, `differs from the ELF at 0x...`, or why it was not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_board: Option<String>,
}
