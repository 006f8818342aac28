//! "The board" as the simulated bench sees it: a target with pins, a CAN controller, a UART and
//! a debug port. [`super::logic_board::LogicBoard`] runs the host-built firmware logic; an
//! emulator of the real ELF can implement the same trait.

use std::collections::VecDeque;

use gauge_logic::frame::CanFrame;

use rig_instruments::CoreSelect;
pub use rig_instruments::{EmulationStats, FirmwareIdentity};

/// The pins and buses a target drives or reads during one tick.
pub struct TargetIo<'a> {
    /// Frames on the bus for the target's CAN controller.
    pub can_rx: &'a mut VecDeque<CanFrame>,
    /// Frames the target transmits.
    pub can_tx: &'a mut Vec<CanFrame>,
    /// Bytes the target sends on its telemetry UART.
    pub uart_tx: &'a mut Vec<u8>,
}

/// Output pins after a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pins {
    /// Servo pulse width while the PWM timer runs.
    pub pwm_pulse_us: Option<u16>,
    pub red_led: bool,
}

/// Why a debug access failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DebugAccessError {
    #[error("no response from the access port")]
    NoResponse,
    #[error("address {0:#010x} is not modelled by the simulated board")]
    Unmapped(u32),
    /// The emulated board's emulator stopped (an emulated target only).
    #[error("the emulated board stopped: {0}")]
    Emulator(String),
}

/// Which side of an Arm debug port a transfer addresses (the APnDP bit of an SWD request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DapPort {
    Dp,
    Ap,
}

/// An SWD transfer that was not answered OK.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DapAck {
    /// No ACK at all: the chip is unpowered, dead (a supply that cut Vcore), or the line
    /// needs a reset first.
    #[error("no acknowledge from the SW-DP")]
    NoAck,
    #[error("FAULT from the SW-DP (a sticky error flag is set)")]
    Fault,
}

pub trait SimulatedTarget: Send {
    /// Power applied (a power-on reset).
    fn power_on(&mut self, now_us: u64);
    fn power_off(&mut self);
    /// System reset (NRST or a debugger reset): the PWR latch survives.
    fn reset(&mut self, now_us: u64);
    /// Advances the target to `now_us`.
    fn tick(&mut self, now_us: u64, io: &mut TargetIo<'_>) -> Pins;
    /// Whether the target cut its own power (a planned power cut during a flash write).
    fn power_cut_requested(&mut self) -> bool {
        false
    }
    fn debug_accessible(&self, core: CoreSelect) -> bool;
    fn debug_read_u32(&self, core: CoreSelect, address: u32) -> Result<u32, DebugAccessError>;
    fn identity(&self) -> FirmwareIdentity;
    /// Programs a new firmware image, as a debugger's flash download does; runs from the next reset.
    fn load_firmware(&mut self, image: &FirmwareImage) -> Result<(), String>;
    /// NRST held (true) or released (false). While held the core does not run; releasing it
    /// starts the firmware, as a reset does.
    fn set_reset_held(&mut self, held: bool, now_us: u64);
    /// The BOOT0 pin high (system bootloader) or low (flash), sampled at the next reset.
    fn set_boot0(&mut self, high: bool);
    /// Erases all flash: program, storage; the firmware becomes [`FirmwareImage::Blank`].
    fn mass_erase(&mut self);
    /// Programs segments into the program flash (bank 1), as a flash download does.
    fn load_program(&mut self, segments: &[rig_instruments::elf::Segment]) -> Result<(), String>;
    /// Cuts the supply after the next `n` bytes the firmware programs into its storage
    /// (`None`: no cut planned). Armed while off, it hits the boot-time record writes.
    fn arm_storage_power_cut(&mut self, n: Option<usize>);
    /// Bytes programmed into the storage flash so far (a cut's `n` ranges over these).
    fn storage_bytes_written(&self) -> usize;
    /// Speed of an emulated target.
    fn emulation(&self) -> Option<EmulationStats> {
        None
    }
    /// The fault on the board's CAN bus (what an adapter on it would see).
    fn can_bus_fault(&self) -> rig_instruments::CanBusFault {
        rig_instruments::CanBusFault::None
    }
    /// Puts a fault on the board's CAN bus; a board without a CAN controller model refuses.
    fn set_can_bus_fault(&mut self, fault: rig_instruments::CanBusFault) -> Result<(), String> {
        Err(format!(
            "this board has no CAN controller model, so a bus fault ({}) would test nothing: use the emulated board (rig-config/emulated.toml)",
            fault.name()
        ))
    }
    /// Whether the target has a register-level debug port ([`dap_read`](Self::dap_read)),
    /// as the emulated STM32H755 does; a probe speaking SWD needs one.
    fn has_debug_port(&self) -> bool {
        false
    }

    /// Writes a word through the debug port (a register such as FLASH_OPTKEYR).
    fn debug_write_u32(
        &mut self,
        core: CoreSelect,
        address: u32,
        value: u32,
        now_us: u64,
    ) -> Result<(), DebugAccessError> {
        let _ = (core, value, now_us);
        Err(DebugAccessError::Unmapped(address))
    }

    /// A line reset on SWCLK/SWDIO (and the JTAG-to-SWD switch).
    fn swd_line_reset(&mut self) {}

    /// Reads a DP register (`port` Dp, `addr` A[3:2] with the bank from DP SELECT) or an AP
    /// register (the AP and bank from DP SELECT), as a probe's DAP transfer does.
    fn dap_read(&mut self, port: DapPort, addr: u8, now_us: u64) -> Result<u32, DapAck> {
        let _ = (port, addr, now_us);
        Err(DapAck::NoAck)
    }

    fn dap_write(
        &mut self,
        port: DapPort,
        addr: u8,
        value: u32,
        now_us: u64,
    ) -> Result<(), DapAck> {
        let _ = (port, addr, value, now_us);
        Err(DapAck::NoAck)
    }

    /// Reads `buf.len()` bytes at `address` through the debug port.
    fn debug_read(
        &self,
        core: CoreSelect,
        address: u32,
        buf: &mut [u8],
    ) -> Result<(), DebugAccessError> {
        for (i, chunk) in buf.chunks_mut(4).enumerate() {
            let word = self
                .debug_read_u32(core, address + 4 * i as u32)?
                .to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(())
    }
}

/// A firmware image a simulated target can be loaded with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirmwareImage {
    /// The host-built gauge logic with its build options.
    Logic(super::logic_board::LogicFirmware),
    /// Erased flash: the core finds no vector table and runs nothing (PWR_CR3 untouched).
    Blank,
}
