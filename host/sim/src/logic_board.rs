//! A NUCLEO-H755ZI-Q model running the gauge's host-built decision logic.

use futures::executor::block_on;
use gauge_logic::{
    calibration::Calibration,
    gauge::{Gauge, GaugeTiming},
    storage::{Records, STORAGE_OFFSETS},
    supply::{SupplyConfig, PWR_CR3_ADDR, PWR_CSR1_ACTVOSRDY, PWR_CSR1_ADDR},
    telemetry::StatusLine,
};

use super::{
    board_power::{BoardPower, BootGate, CoreAction},
    flash::FlashModel,
    pwr::{PwrLatch, SupplyOutcome},
    target::{DebugAccessError, FirmwareIdentity, FirmwareImage, Pins, SimulatedTarget, TargetIo},
};
use rig_instruments::CoreSelect;

use stm32h755::{
    debug::DBGMCU_IDCODE,
    flash::{
        BANK1, BANK1_SIZE, FLASH_BOOT4_CURR, FLASH_BOOT7_CURR, FLASH_OPTSR_CUR, OPTSR_BCM4,
        OPTSR_BCM7,
    },
};

/// Flash bank 1, where the program is downloaded.
const BANK1_ADDRESSES: std::ops::Range<u32> = BANK1..BANK1 + BANK1_SIZE;
/// Time from reset to the main loop (clock setup, storage scan).
const BOOT_TIME_US: u64 = 5_000;

/// The firmware loaded into a [`LogicBoard`]: the gauge logic plus its build options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogicFirmware {
    pub supply: SupplyConfig,
}

/// Option bytes as read back from FLASH_OPTSR_CUR / BOOT7 / BOOT4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionBytes {
    pub optsr: u32,
    pub boot7: u32,
    pub boot4: u32,
}

impl Default for OptionBytes {
    /// Out of the box: RDP level 0 (0xAA), both cores boot; CM7 from 0x0800_0000, CM4 from 0x0810_0000.
    fn default() -> Self {
        Self {
            optsr: (0xAA << 8) | OPTSR_BCM7 | OPTSR_BCM4,
            boot7: 0x0800,
            boot4: 0x0810,
        }
    }
}

/// What the core does. Whether it may run at all (supply, NRST, a lock-up, the CM7 boot gate)
/// is [`BoardPower`]'s to say.
enum CoreState {
    /// Not running: powered off, NRST held, Vcore cut by the supply choice, or CM7 boot
    /// disabled in the option bytes ([`LogicBoard::power`] says which).
    Stopped,
    /// Erased flash: nothing runs, PWR_CR3 keeps its power-on default.
    Blank,
    /// Spinning on ACTVOSRDY (embassy waits forever).
    WaitingForVoltage,
    Booting {
        main_at_us: u64,
        boot_count: u32,
        calibration: Calibration,
    },
    Running(Box<Running>),
}

struct Running {
    gauge: Gauge,
    boot_us: u64,
    boot_count: u32,
    next_telemetry_ms: u64,
    pins: Pins,
}

pub struct LogicBoard {
    wiring: SupplyConfig,
    pub option_bytes: OptionBytes,
    /// `None`: flash erased.
    firmware: Option<LogicFirmware>,
    /// Program flash (bank 1) as downloaded: (address, bytes).
    program: Vec<rig_instruments::elf::Segment>,
    /// Supply, NRST, lock-up and the CM7 boot gate (shared with the emulated board).
    power: BoardPower,
    pwr: PwrLatch,
    pub flash: FlashModel,
    core: CoreState,
    power_cut: bool,
    /// How the last boot's storage step went (for the rig's diagnosis).
    pub last_storage_error: Option<String>,
}

impl LogicBoard {
    pub fn new(wiring: SupplyConfig, firmware: LogicFirmware) -> Self {
        Self {
            wiring,
            option_bytes: OptionBytes::default(),
            firmware: Some(firmware),
            program: Vec::new(),
            power: BoardPower::default(),
            pwr: PwrLatch::power_on(),
            flash: FlashModel::new(STORAGE_OFFSETS),
            core: CoreState::Stopped,
            power_cut: false,
            last_storage_error: None,
        }
    }

    pub fn firmware(&self) -> Option<LogicFirmware> {
        self.firmware
    }

    /// A byte of the program flash (erased: 0xFF).
    fn program_byte(&self, at: u32) -> u8 {
        self.program
            .iter()
            .find(|s| (s.address..s.address + s.data.len() as u32).contains(&at))
            .map_or(0xFF, |s| s.data[(at - s.address) as usize])
    }

    /// Does what [`BoardPower`] decided for the core.
    fn act(&mut self, action: CoreAction, now_us: u64) {
        match action {
            CoreAction::Start => self.start_firmware(now_us),
            CoreAction::Hold => self.core = CoreState::Stopped,
            CoreAction::Nothing => {}
        }
    }

    /// Runs the firmware from its reset vector up to the main loop.
    fn start_firmware(&mut self, now_us: u64) {
        match self.power.boot_gate(self.option_bytes.optsr) {
            BootGate::HeldInReset | BootGate::Cm7Disabled => {
                self.core = CoreState::Stopped;
                return;
            }
            BootGate::SystemMemory => {
                // ST's bootloader chooses a supply of its own; modelled as the one the board
                // is wired for (ST's recovery by BOOT0 works on these boards), so it latches.
                self.pwr.write_cr3(self.wiring.cr3_bits(), self.wiring);
                self.core = CoreState::Stopped;
                return;
            }
            BootGate::Open => {}
        }
        let Some(firmware) = self.firmware else {
            self.core = CoreState::Blank;
            return;
        };
        // embassy's init: the supply first, then it waits for ACTVOSRDY.
        self.pwr.write_cr3(firmware.supply.cr3_bits(), self.wiring);
        match self.pwr.outcome {
            SupplyOutcome::LockUp => {
                self.power.lock_up();
                self.core = CoreState::Stopped;
                return;
            }
            SupplyOutcome::VoltageInvalid => {
                self.core = CoreState::WaitingForVoltage;
                return;
            }
            SupplyOutcome::Ok => {}
        }
        let mut records = match Records::new(&mut self.flash, STORAGE_OFFSETS) {
            Ok(r) => r,
            Err(e) => {
                self.last_storage_error = Some(format!("{e:?}"));
                self.core = CoreState::Booting {
                    main_at_us: now_us + BOOT_TIME_US,
                    boot_count: 0,
                    calibration: Calibration::DEFAULT,
                };
                return;
            }
        };
        let result = block_on(records.on_boot());
        if self.flash.power_was_cut() {
            self.power_cut = true;
            self.power.power_off();
            self.core = CoreState::Stopped;
            return;
        }
        let (boot_count, calibration) = match result {
            Ok(r) => {
                self.last_storage_error = None;
                (r.boot_count, r.calibration)
            }
            Err(e) => {
                // Like the board binary: carry on with defaults.
                self.last_storage_error = Some(format!("{e:?}"));
                (0, Calibration::DEFAULT)
            }
        };
        self.core = CoreState::Booting {
            main_at_us: now_us + BOOT_TIME_US,
            boot_count,
            calibration,
        };
    }
}

impl SimulatedTarget for LogicBoard {
    fn power_on(&mut self, now_us: u64) {
        self.pwr = PwrLatch::power_on();
        self.power_cut = false;
        let action = self.power.power_on();
        self.act(action, now_us);
    }

    fn power_off(&mut self) {
        self.power.power_off();
        self.core = CoreState::Stopped;
        self.flash.cut_power_after(None);
    }

    fn reset(&mut self, now_us: u64) {
        // Nothing without Vcore or while NRST is held.
        let action = self.power.reset();
        self.act(action, now_us);
    }

    fn tick(&mut self, now_us: u64, io: &mut TargetIo<'_>) -> Pins {
        if let CoreState::Booting {
            main_at_us,
            boot_count,
            calibration,
        } = self.core
        {
            if now_us < main_at_us {
                io.can_rx.clear();
                return Pins::default();
            }
            let gauge = Gauge::new(calibration, GaugeTiming::DEFAULT, 0);
            self.core = CoreState::Running(Box::new(Running {
                gauge,
                boot_us: main_at_us,
                boot_count,
                next_telemetry_ms: 1000,
                pins: Pins::default(),
            }));
        }
        let CoreState::Running(run) = &mut self.core else {
            io.can_rx.clear();
            return Pins::default();
        };
        let now_ms = (now_us - run.boot_us) / 1000;
        while let Some(frame) = io.can_rx.pop_front() {
            run.gauge.on_frame(now_ms, &frame);
        }
        let out = run.gauge.poll(now_ms);
        if let Some(frame) = out.transmit {
            io.can_tx.push(frame);
        }
        run.pins = Pins {
            pwm_pulse_us: Some(out.pulse_us),
            red_led: out.failsafe,
        };
        if now_ms >= run.next_telemetry_ms {
            run.next_telemetry_ms += 1000;
            let line = StatusLine {
                uptime_ms: now_ms,
                temperature: run.gauge.temperature(),
                source: run.gauge.source(),
                pulse_us: out.pulse_us,
                pwr_cr3: self.pwr.cr3,
                boot_count: run.boot_count,
                failsafe: out.failsafe,
                broadcasts: Some(run.gauge.broadcasts()),
                // No CAN controller is modelled here: nothing to say.
                bus: None,
            };
            io.uart_tx
                .extend_from_slice(format!("{line}\r\n").as_bytes());
        }
        run.pins
    }

    fn power_cut_requested(&mut self) -> bool {
        std::mem::take(&mut self.power_cut)
    }

    fn debug_accessible(&self, core: CoreSelect) -> bool {
        self.power.debug_accessible(core)
    }

    fn debug_read_u32(&self, core: CoreSelect, address: u32) -> Result<u32, DebugAccessError> {
        if !self.debug_accessible(core) {
            return Err(DebugAccessError::NoResponse);
        }
        let storage = gauge_logic::storage::STORAGE_ADDRESSES;
        Ok(match address {
            PWR_CR3_ADDR => self.pwr.cr3,
            // ACTVOS[15:14] report VOS1 once valid.
            PWR_CSR1_ADDR => {
                if self.pwr.actvosrdy() {
                    PWR_CSR1_ACTVOSRDY | (0b11 << 14)
                } else {
                    0
                }
            }
            FLASH_OPTSR_CUR => self.option_bytes.optsr,
            FLASH_BOOT7_CURR => self.option_bytes.boot7,
            FLASH_BOOT4_CURR => self.option_bytes.boot4,
            DBGMCU_IDCODE => 0x1000_6450,
            a if BANK1_ADDRESSES.contains(&a) => {
                u32::from_le_bytes([0, 1, 2, 3].map(|i| self.program_byte(a + i)))
            }
            a if storage.contains(&a) && a % 4 == 0 => {
                let offset = a - storage.start + STORAGE_OFFSETS.start;
                let b = self
                    .flash
                    .read_at(offset, 4)
                    .map_err(|_| DebugAccessError::Unmapped(a))?;
                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
            a => return Err(DebugAccessError::Unmapped(a)),
        })
    }

    fn identity(&self) -> FirmwareIdentity {
        FirmwareIdentity {
            name: "gauge-logic (host build, simulated board)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            supply: self.firmware.map(|f| f.supply.name().into()),
            sha256: None,
            ..FirmwareIdentity::default()
        }
    }

    fn load_firmware(&mut self, image: &FirmwareImage) -> Result<(), String> {
        match image {
            FirmwareImage::Logic(fw) => {
                self.firmware = Some(*fw);
                Ok(())
            }
            FirmwareImage::Blank => {
                self.firmware = None;
                Ok(())
            }
        }
    }

    fn set_reset_held(&mut self, held: bool, now_us: u64) {
        // Without Vcore the level is only recorded: it applies at the next power-on.
        let action = self.power.set_reset_held(held);
        self.act(action, now_us);
    }

    fn set_boot0(&mut self, high: bool) {
        self.power.set_boot0(high);
    }

    fn debug_read(
        &self,
        core: CoreSelect,
        address: u32,
        buf: &mut [u8],
    ) -> Result<(), DebugAccessError> {
        if !self.debug_accessible(core) {
            return Err(DebugAccessError::NoResponse);
        }
        let storage = gauge_logic::storage::STORAGE_ADDRESSES;
        for (i, b) in buf.iter_mut().enumerate() {
            let at = address.wrapping_add(i as u32);
            *b = if BANK1_ADDRESSES.contains(&at) {
                self.program_byte(at)
            } else if storage.contains(&at) {
                self.flash
                    .read_at(at - storage.start + STORAGE_OFFSETS.start, 1)
                    .map_err(|_| DebugAccessError::Unmapped(at))?[0]
            } else {
                self.debug_read_u32(core, at & !3)?.to_le_bytes()[(at & 3) as usize]
            };
        }
        Ok(())
    }

    fn arm_storage_power_cut(&mut self, n: Option<usize>) {
        self.flash.cut_power_after(n);
    }

    fn storage_bytes_written(&self) -> usize {
        self.flash.bytes_written + self.flash.erases
    }

    fn mass_erase(&mut self) {
        self.flash = FlashModel::new(STORAGE_OFFSETS);
        self.program.clear();
        self.firmware = None;
    }

    fn load_program(&mut self, segments: &[rig_instruments::elf::Segment]) -> Result<(), String> {
        for s in segments {
            let end = s.address as u64 + s.data.len() as u64;
            if s.address < BANK1 || end > u64::from(BANK1 + BANK1_SIZE) {
                return Err(format!(
                    "segment at {:#010x} ({} bytes) is outside flash bank 1",
                    s.address,
                    s.data.len()
                ));
            }
        }
        self.program = segments.to_vec();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use gauge_logic::storage::STORAGE_ADDRESSES;

    use super::*;

    fn run_until_main(board: &mut LogicBoard, from_us: u64) -> Pins {
        let (mut rx, mut tx, mut uart) = (VecDeque::new(), Vec::new(), Vec::new());
        let mut io = TargetIo {
            can_rx: &mut rx,
            can_tx: &mut tx,
            uart_tx: &mut uart,
        };
        board.tick(from_us + BOOT_TIME_US + 1000, &mut io)
    }

    fn boot_count(board: &LogicBoard) -> u32 {
        let mut records = Records::new(board.flash.clone(), STORAGE_OFFSETS).unwrap();
        block_on(records.boot_count()).unwrap().unwrap_or(0)
    }

    #[test]
    fn boot_counter_survives_power_cycles_and_counts_resets() {
        let mut b = LogicBoard::new(
            SupplyConfig::DirectSmps,
            LogicFirmware {
                supply: SupplyConfig::DirectSmps,
            },
        );
        for cycle in 1..=5u32 {
            b.power_on(0);
            assert!(run_until_main(&mut b, 0).pwm_pulse_us.is_some());
            b.power_off();
            assert_eq!(boot_count(&b), cycle);
        }
        b.power_on(0);
        b.reset(10);
        assert_eq!(boot_count(&b), 7);
        assert_eq!(b.last_storage_error, None);
    }

    #[test]
    fn wrong_supply_is_latched_only_at_power_on() {
        let mut b = LogicBoard::new(
            SupplyConfig::DirectSmps,
            LogicFirmware {
                supply: SupplyConfig::DirectSmps,
            },
        );
        b.power_on(0);
        b.load_firmware(&FirmwareImage::Logic(LogicFirmware {
            supply: SupplyConfig::Ldo,
        }))
        .unwrap();
        b.reset(100);
        assert!(
            run_until_main(&mut b, 100).pwm_pulse_us.is_some(),
            "runs after reset: latch holds Direct SMPS"
        );
        assert_eq!(b.debug_read_u32(CoreSelect::Cm7, PWR_CR3_ADDR), Ok(0x04));
        b.power_off();
        b.power_on(0);
        assert_eq!(run_until_main(&mut b, 0).pwm_pulse_us, None, "locked up");
        assert!(!b.debug_accessible(CoreSelect::Cm7) && !b.debug_accessible(CoreSelect::Cm4));
    }

    #[test]
    fn bcm7_cleared_leaves_only_the_cm4_reachable() {
        let mut b = LogicBoard::new(
            SupplyConfig::DirectSmps,
            LogicFirmware {
                supply: SupplyConfig::DirectSmps,
            },
        );
        b.option_bytes.optsr &= !OPTSR_BCM7;
        b.power_on(0);
        assert!(!b.debug_accessible(CoreSelect::Cm7));
        assert_eq!(
            b.debug_read_u32(CoreSelect::Cm4, FLASH_OPTSR_CUR)
                .map(|v| v & OPTSR_BCM7),
            Ok(0)
        );
    }

    #[test]
    fn power_cut_mid_boot_write_keeps_every_committed_count() {
        // Cut the supply after n bytes of the boot-time writes, for many n: the count read back
        // afterwards is never below what was committed before.
        let mut b = LogicBoard::new(
            SupplyConfig::DirectSmps,
            LogicFirmware {
                supply: SupplyConfig::DirectSmps,
            },
        );
        b.power_on(0);
        b.power_off();
        let mut committed = boot_count(&b);
        for n in (0..200).step_by(7) {
            b.flash.cut_power_after(Some(n));
            b.power_on(0);
            let cut = b.power_cut_requested();
            b.power_off();
            let now = boot_count(&b);
            assert!(
                now >= committed,
                "cut after {n} bytes lost a committed count: {now} < {committed}"
            );
            assert!(now <= committed + 1);
            if !cut {
                assert_eq!(now, committed + 1);
            }
            committed = now;
        }
        let word = b.debug_read_u32(CoreSelect::Cm7, STORAGE_ADDRESSES.start);
        assert_eq!(word, Err(DebugAccessError::NoResponse), "powered off");
    }
}
