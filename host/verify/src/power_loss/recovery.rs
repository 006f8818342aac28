//! ST's recovery procedure for a supply lock-up, automated. Hold NRST while
//! applying power, connect under reset, mass-erase (only with an explicit confirmation),
//! power-cycle again (the bootloader or earlier firmware may have latched PWR_CR3), verify
//! PWR_CR3, and optionally flash a firmware and run the power-cycle check.
//!
//! Before that, the option bytes: a board whose Cortex-M7 boot is disabled (BCM7 = 0) answers
//! only on the Cortex-M4's port; with `--restore-boot` BCM7 is programmed back through it
//! (FLASH_OPTKEYR, FLASH_OPTSR_PRG, FLASH_OPTCR.OPTSTART by memory writes: probe-rs has no
//! option-byte command) and the board power-cycled.
//!
//! NRST stays held through every retry of the connect: a failed attach under reset lets go of
//! NRST (probe-rs's attempt ends with its probe), so each retry starts again from a power cut
//! with NRST held, and the firmware never runs in between.

use std::{
    path::PathBuf,
    sync::atomic::AtomicBool,
    time::{Duration, Instant},
};

use stm32h755::{
    flash::{
        FLASH_OPTCR, FLASH_OPTKEY1, FLASH_OPTKEY2, FLASH_OPTKEYR, FLASH_OPTSR_CUR, FLASH_OPTSR_PRG,
        OPTCR_OPTLOCK, OPTCR_OPTSTART, OPTSR_BCM4, OPTSR_BCM7, OPTSR_OPT_BUSY,
    },
    supply::{SupplyConfig, PWR_CR3_ADDR, PWR_CR3_POWER_ON_DEFAULT, PWR_CR3_SUPPLY_MASK},
};

use bench_config::{PowerTopology, RecoveryPin};

use crate::power_loss::power_cycle::PowerCycleCheck;
use crate::report::Outcome;
use crate::rig::Rig;
use crate::session::Runner;
use rig_instruments::{attach_with_retry, CoreSelect, DebugProbe, ProbeError};

/// What to flash once the board is back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlashImage {
    Elf(PathBuf),
    /// Simulated board: the host-built gauge logic selecting this supply (`logic:direct-smps`).
    Logic(SupplyConfig),
}

impl std::str::FromStr for FlashImage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.strip_prefix("logic:") {
            Some(name) => SupplyConfig::from_name(name)
                .map(FlashImage::Logic)
                .ok_or_else(|| {
                    let names: Vec<&str> = SupplyConfig::ALL.iter().map(|c| c.name()).collect();
                    format!("logic:{name}: unknown supply; one of {}", names.join(", "))
                }),
            None => Ok(FlashImage::Elf(PathBuf::from(s))),
        }
    }
}

pub struct RecoverOptions {
    /// Mass erase is destructive: only with this confirmation.
    pub erase: bool,
    pub flash: Option<FlashImage>,
    /// Program a disabled core's boot (BCM7/BCM4) back on through the core that answers.
    pub restore_boot: bool,
}

/// Connect attempts, each from a power cut with NRST held.
pub const CONNECT_ATTEMPTS: u32 = 3;
/// How long the board's supply may take to come up (NRST held meanwhile).
pub const VDD_TIMEOUT: Duration = Duration::from_secs(5);
/// The STM32H7 runs from 1.62 V.
pub const VDD_MIN_V: f32 = 1.62;

/// Waits, NRST held, until the probe measures the target supply; says what it saw.
fn wait_for_vdd(probe: &mut dyn DebugProbe, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        match probe.target_voltage() {
            Ok(Some(v)) if v >= VDD_MIN_V => {
                return format!("VDD {v:.2} V after {} ms", start.elapsed().as_millis())
            }
            Ok(None) => return "the probe cannot measure VDD: connecting after settle_ms".into(),
            Ok(Some(v)) if start.elapsed() > timeout => {
                return format!("VDD still {v:.2} V after {timeout:?}: connecting anyway")
            }
            Err(e) if start.elapsed() > timeout => {
                return format!("VDD unknown after {timeout:?} ({e}): connecting anyway")
            }
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Programs the option bytes so both cores boot, through whichever core `probe` is attached
/// to (RM0399 "option byte modification": unlock with the two OPTKEYR keys, write OPTSR_PRG,
/// set OPTCR.OPTSTART, wait for OPTSR_CUR.OPT_BUSY to clear, lock again). Takes effect at
/// the next power-on.
pub fn enable_both_boots(probe: &mut dyn DebugProbe) -> Result<String, ProbeError> {
    let before = probe.read_u32(FLASH_OPTSR_CUR)?;
    probe.write_u32(FLASH_OPTKEYR, FLASH_OPTKEY1)?;
    probe.write_u32(FLASH_OPTKEYR, FLASH_OPTKEY2)?;
    probe.write_u32(FLASH_OPTSR_PRG, before | OPTSR_BCM7 | OPTSR_BCM4)?;
    probe.write_u32(FLASH_OPTCR, OPTCR_OPTSTART)?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let after = loop {
        let v = probe.read_u32(FLASH_OPTSR_CUR)?;
        if v & OPTSR_OPT_BUSY == 0 {
            break v;
        }
        if Instant::now() > deadline {
            return Err(ProbeError::Other {
                probe: probe.describe(),
                reason: format!(
                    "FLASH_OPTSR_CUR.OPT_BUSY still set 2 s after OPTSTART ({v:#010x})"
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    probe.write_u32(FLASH_OPTCR, OPTCR_OPTLOCK)?;
    if after & (OPTSR_BCM7 | OPTSR_BCM4) != OPTSR_BCM7 | OPTSR_BCM4 {
        return Err(ProbeError::Other {
            probe: probe.describe(),
            reason: format!(
                "FLASH_OPTSR_CUR = {after:#010x} after OPTSTART: BCM7/BCM4 did not take (is RDP level 0 and OPTCR unlocked?)"
            ),
        });
    }
    Ok(format!(
        "FLASH_OPTSR_CUR {before:#010x} -> {after:#010x}: BCM7 = 1, BCM4 = 1"
    ))
}

/// Switches the relay channel on NRST or BOOT0, when the bench has one.
fn set_recovery_line(rig: &mut Rig, on: bool) -> Result<(), String> {
    match rig.recovery_line.as_mut() {
        Some((pin, relay)) => relay.set_power(on).map_err(|e| {
            format!(
                "recovery relay on {} ({}): {e}",
                pin.name(),
                relay.describe()
            )
        }),
        None => Ok(()),
    }
}

/// Holds NRST through a probe that is powered with the board, as soon as it is back on USB
/// (within `timeout`).
fn probe_holds_nrst(probe: &mut dyn DebugProbe, timeout: Duration) -> Result<(), ProbeError> {
    let start = Instant::now();
    loop {
        match probe.hold_reset(true) {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() >= timeout => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// One line of the procedure.
#[derive(Clone, Debug)]
pub struct RecoverStep {
    pub what: &'static str,
    pub ok: bool,
    pub detail: String,
}

pub struct Recovery {
    pub steps: Vec<RecoverStep>,
    pub outcome: Outcome,
}

impl Recovery {
    fn push(&mut self, what: &'static str, ok: bool, detail: impl Into<String>) -> bool {
        self.steps.push(RecoverStep {
            what,
            ok,
            detail: detail.into(),
        });
        if !ok {
            self.outcome = Outcome::Fail;
        }
        ok
    }
}

/// Step 0: with power on, which core answers; if only the Cortex-M4 does and the option bytes
/// disable the Cortex-M7's boot, restore it (with `--restore-boot`) and power-cycle. `false`
/// stops the procedure (the step says why).
fn option_bytes_step(
    rig: &mut Rig,
    opts: &RecoverOptions,
    settle: Duration,
    off: Duration,
    r: &mut Recovery,
) -> bool {
    if let Err(e) = rig.switch_power(true) {
        r.push("option bytes", false, format!("power on: {e}"));
        return false;
    }
    std::thread::sleep(settle);
    let Some(probe) = rig.probe.as_mut() else {
        return true;
    };
    // A probe powered with the board may still be enumerating.
    wait_for_vdd(probe.as_mut(), VDD_TIMEOUT);
    if probe.attach(CoreSelect::Cm7).is_ok() {
        probe.detach();
        return true;
    }
    let optsr = probe
        .attach(CoreSelect::Cm4)
        .and_then(|_| probe.read_u32(FLASH_OPTSR_CUR));
    let Ok(optsr) = optsr else {
        // Neither core answers: the supply procedure below is for that.
        probe.detach();
        return true;
    };
    if optsr & OPTSR_BCM7 != 0 {
        probe.detach();
        return true;
    }
    if !opts.restore_boot {
        probe.detach();
        r.push("option bytes", false, format!("FLASH_OPTSR_CUR = {optsr:#010x}: the Cortex-M7's boot is disabled (BCM7 = 0), read through the Cortex-M4 (access port 3). Rerun with --restore-boot to program BCM7 = 1 back through it"));
        return false;
    }
    let restored = enable_both_boots(probe.as_mut());
    probe.detach();
    match restored {
        Ok(detail) => {
            let cycled = rig.power_cycle(off);
            let ok = cycled.is_ok();
            r.push(
                "option bytes",
                ok,
                match cycled {
                    Ok(()) => {
                        format!("{detail}, through the Cortex-M4 (access port 3); power-cycled")
                    }
                    Err(e) => format!("{detail}; power cycle: {e}"),
                },
            );
            ok
        }
        Err(e) => {
            r.push(
                "option bytes",
                false,
                format!("restoring BCM7 through the Cortex-M4: {e}"),
            );
            false
        }
    }
}

/// What `power.topology = "stlink-usb"` asks of the person at the bench (ST's article on
/// recovering an H7 from a wrong supply has someone hold reset while plugging in).
pub const CN1_INSTRUCTION: &str = "the board is powered through the ST-LINK's USB port (CN1), so the ST-LINK starts with it and cannot hold NRST while power returns: hold the NUCLEO's reset button (B2) from before the relay switches on until the probe has attached, or power the board through E5V/VIN with the ST-LINK on its own USB (power.topology = \"target\"), or hold BOOT0 high (system bootloader) across the power-on";

/// Runs the procedure on `rig`, stopping at the first step that fails.
pub fn recover(rig: &mut Rig, opts: &RecoverOptions, abort: &AtomicBool) -> Recovery {
    let mut r = Recovery {
        steps: Vec::new(),
        outcome: Outcome::Pass,
    };
    let off = Duration::from_millis(rig.config.power.off_ms);
    let settle = Duration::from_millis(rig.config.power.settle_ms);
    let attach_timeout = Duration::from_millis(rig.config.probe.attach_timeout_ms);
    let wiring = rig.wiring();
    if rig.probe.is_none() {
        r.push(
            "debug probe",
            false,
            "this rig has no debug probe (probe.backend = \"none\"): recovery needs one",
        );
        return r;
    }

    // 0. The option bytes, when only the Cortex-M4 answers.
    if !option_bytes_step(rig, opts, settle, off, &mut r) {
        return r;
    }
    // A NUCLEO powered through its ST-LINK's USB port: the ST-LINK boots with the board, so it
    // cannot hold NRST while power returns, and the H7 latches PWR_CR3 microseconds after
    // reset. A relay channel on NRST or BOOT0 (power.recovery_line) does it, or a person.
    let probe_on_board_supply = rig.config.power.topology == PowerTopology::StlinkUsb;
    let line = rig.recovery_line.as_ref().map(|(pin, _)| *pin);
    match (line, probe_on_board_supply) {
        (Some(pin), _) => {
            let what = match pin {
                RecoveryPin::Nrst => "NRST across power-on",
                RecoveryPin::Boot0 => "BOOT0 across power-on",
            };
            let detail = match pin {
                RecoveryPin::Nrst => "held low by the relay channel on NRST (power.recovery_line) until the probe holds it",
                RecoveryPin::Boot0 => "held high by the relay channel on BOOT0 (power.recovery_line): the chip boots ST's system bootloader, not the flash, until after the erase",
            };
            r.push(what, true, detail);
        }
        (None, true) => {
            r.push("NRST across power-on", true, CN1_INSTRUCTION);
        }
        (None, false) => {}
    }
    // 1-2. Power off, hold NRST (or BOOT0), power on, connect under reset: the firmware never
    // runs, so it cannot latch PWR_CR3. A failed attempt starts over from a power cut.
    let power_on_step = if probe_on_board_supply && line.is_none() {
        "power on, then NRST" // nothing held it across the power-on
    } else {
        "power on with NRST held"
    };
    let mut last = String::new();
    let mut attached = false;
    for attempt in 1..=CONNECT_ATTEMPTS {
        let held = rig
            .power
            .set_power(false)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                std::thread::sleep(off);
                set_recovery_line(rig, true)?;
                if !probe_on_board_supply {
                    rig.probe
                        .as_mut()
                        .map_or(Ok(()), |p| p.hold_reset(true))
                        .map_err(|e| e.to_string())?;
                }
                rig.switch_power(true).map_err(|e| e.to_string())?;
                rig.powered_at = Some(Instant::now());
                std::thread::sleep(settle);
                Ok(())
            });
        if let Err(e) = held {
            let _ = set_recovery_line(rig, false);
            r.push(power_on_step, false, e);
            return r;
        }
        let Some(probe) = rig.probe.as_mut() else {
            return r;
        };
        // A probe powered with the board holds NRST once it is back on USB; the relay on NRST
        // then hands over to it (the attach below releases the probe's NRST with the reset
        // catch set, and the relay would keep the core in reset).
        let mut handed_over = String::new();
        if probe_on_board_supply {
            match probe_holds_nrst(probe.as_mut(), attach_timeout) {
                Ok(()) => {
                    let after = rig.powered_at.map_or(0, |t| t.elapsed().as_millis());
                    handed_over = format!("; the probe holds NRST {after} ms after power-on");
                }
                Err(e) => {
                    // The relay (if any) keeps holding: the next attempt starts from a cut.
                    last = format!(
                        "the probe did not come back to hold NRST within {attach_timeout:?}: {e}"
                    );
                    continue;
                }
            }
        }
        if line == Some(RecoveryPin::Nrst) {
            if let Err(e) = set_recovery_line(rig, false) {
                r.push(power_on_step, false, e);
                return r;
            }
        }
        let Some(probe) = rig.probe.as_mut() else {
            return r;
        };
        // Connect only once the board has power: a failed attach lets go of NRST, and the
        // firmware would run as soon as VDD arrives.
        let vdd = wait_for_vdd(probe.as_mut(), VDD_TIMEOUT);
        if attempt == 1 {
            r.push(
                power_on_step,
                true,
                format!("off {off:?}, settle {settle:?}; {vdd}{handed_over}"),
            );
        }
        match probe.attach_under_reset(CoreSelect::Cm7) {
            Ok(()) => {
                attached = true;
                if attempt > 1 {
                    last = format!(" (attempt {attempt} of {CONNECT_ATTEMPTS}, each from a power cut with NRST held; before: {last})");
                } else {
                    last.clear();
                }
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let Some(probe) = rig.probe.as_mut() else {
        return r;
    };
    if !attached {
        let _ = probe.hold_reset(false);
        let _ = set_recovery_line(rig, false);
        let next = if probe_on_board_supply && line.is_none() {
            CN1_INSTRUCTION
        } else {
            "Next: boot with BOOT0 high (system bootloader) and connect, or check the probe's NRST wire and the recovery relay's"
        };
        let held = if probe_on_board_supply && line.is_none() {
            "" // nothing could hold it
        } else {
            " with NRST held"
        };
        r.push(
            "connect under reset",
            false,
            format!("{last} ({CONNECT_ATTEMPTS} attempts, each from a power cut{held}). {next}"),
        );
        return r;
    }
    let cr3 = probe.read_u32(PWR_CR3_ADDR);
    r.push(
        "connect under reset",
        true,
        match cr3 {
            Ok(v) => {
                let latched = match SupplyConfig::from_cr3(v) {
                    _ if v & PWR_CR3_SUPPLY_MASK == PWR_CR3_POWER_ON_DEFAULT => {
                        "nothing latched yet".to_string()
                    }
                    Some(c) if line == Some(RecoveryPin::Boot0) => {
                        format!("{} latched by the system bootloader", c.name())
                    }
                    Some(c) => format!("{} latched", c.name()),
                    None => "an invalid combination latched".to_string(),
                };
                format!("attached to the Cortex-M7; PWR_CR3 = {v:#010x} ({latched}){last}")
            }
            Err(e) => format!("attached; PWR_CR3 unreadable: {e}{last}"),
        },
    );
    // 3. Mass erase, only when confirmed.
    if !opts.erase {
        let _ = probe.hold_reset(false);
        probe.detach();
        let _ = set_recovery_line(rig, false);
        r.push(
            "mass erase",
            false,
            "not confirmed: the firmware in flash would latch its supply again at the next power-on; rerun with --erase to mass-erase both banks",
        );
        return r;
    }
    let erased = probe.mass_erase();
    let _ = probe.hold_reset(false);
    probe.detach();
    // BOOT0 back low, so that the next power-on boots the flash again.
    let released = set_recovery_line(rig, false);
    if let Err(e) = released {
        r.push("mass erase", false, e);
        return r;
    }
    if !r.push(
        "mass erase",
        erased.is_ok(),
        erased
            .err()
            .map_or("both banks erased".into(), |e| e.to_string()),
    ) {
        return r;
    }
    // 4. Power-cycle again: whatever ran before may have latched PWR_CR3.
    let cycled = rig.power_cycle(off);
    if !r.push(
        "power cycle",
        cycled.is_ok(),
        cycled
            .err()
            .map_or(format!("off {off:?}"), |e| e.to_string()),
    ) {
        return r;
    }
    // 5. Verify PWR_CR3: power-on default (blank chip) or the board's wiring.
    let Some(probe) = rig.probe.as_mut() else {
        return r;
    };
    let verified = attach_with_retry(probe.as_mut(), CoreSelect::Cm7, attach_timeout)
        .and_then(|_| probe.read_u32(PWR_CR3_ADDR))
        .map_err(|e| e.to_string())
        .and_then(|cr3| {
            let bits = cr3 & PWR_CR3_SUPPLY_MASK;
            if bits == PWR_CR3_POWER_ON_DEFAULT & PWR_CR3_SUPPLY_MASK || bits == wiring.cr3_bits() {
                Ok(format!("PWR_CR3 = {cr3:#010x}: supply bits {bits:#04x} (power-on default {:#04x} or wiring {:#04x})", PWR_CR3_POWER_ON_DEFAULT, wiring.cr3_bits()))
            } else {
                Err(format!("PWR_CR3 = {cr3:#010x}: supply bits {bits:#04x}, neither the power-on default nor the wiring's {:#04x}", wiring.cr3_bits()))
            }
        });
    let ok = verified.is_ok();
    r.push("verify PWR_CR3", ok, verified.unwrap_or_else(|e| e));
    if !ok {
        probe.detach();
        return r;
    }
    // 6. Optionally flash and prove the board survives a power cycle with it.
    let Some(image) = &opts.flash else {
        probe.detach();
        return r;
    };
    let flashed = match image {
        FlashImage::Elf(path) => probe.flash_elf(path).map_err(|e| e.to_string()),
        FlashImage::Logic(supply) => {
            probe.detach();
            let elf = rig.config.firmware_elf.clone().filter(|p| p.exists());
            match rig.logic_loader.as_mut() {
                // The board ELF's bytes too, as bring-up does, so the image check has them.
                Some(loader) => loader.load_logic(*supply, elf.as_deref()),
                None => Err(
                    "logic:<supply> images exist only on the simulated bench; give an ELF path"
                        .into(),
                ),
            }
        }
    };
    if let Some(p) = rig.probe.as_mut() {
        p.detach();
    }
    if !r.push(
        "flash",
        flashed.is_ok(),
        flashed.err().unwrap_or_else(|| format!("{image:?}")),
    ) {
        return r;
    }
    match image {
        FlashImage::Logic(s) => rig.firmware.supply = Some(s.name().to_string()),
        // The check below verifies the flash against the image just flashed, not the rig
        // config's ELF.
        FlashImage::Elf(path) => {
            rig.config.firmware_elf = Some(path.clone());
            rig.firmware.sha256 = rig_instruments::elf::sha256_hex(path).ok();
            rig.firmware.name = path.display().to_string();
            rig.firmware.supply = None;
        }
    }
    let check = PowerCycleCheck {
        off,
        celsius: 40.0,
        pulse_us: 1000.0,
        tolerance_us: 4.0,
        settle_timeout: Duration::from_secs(3),
    };
    let mut runner = Runner { rig, abort };
    let step = runner.run_power_cycle_check(check);
    let detail = step.message.clone().unwrap_or_else(|| {
        step.measurements
            .iter()
            .filter(|m| m.name.contains("pwr") || m.name.contains("boot"))
            .map(|m| format!("{}={}", m.name, m.value))
            .collect::<Vec<_>>()
            .join(" ")
    });
    r.push(
        "power-cycle check",
        step.outcome == Outcome::Pass,
        match &step.diagnosis {
            Some(d) => format!("{detail}. {d}"),
            None => detail,
        },
    );
    r
}
