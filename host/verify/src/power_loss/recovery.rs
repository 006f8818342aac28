//! ST's recovery procedure for a supply lock-up, automated. Hold NRST while
//! applying power, connect under reset, mass-erase (only with an explicit confirmation),
//! power-cycle again (the bootloader or earlier firmware may have latched PWR_CR3), verify
//! PWR_CR3, and optionally flash a firmware and run the power-cycle check.

use std::{
    path::PathBuf,
    sync::atomic::AtomicBool,
    time::{Duration, Instant},
};

use stm32h755::supply::{
    SupplyConfig, PWR_CR3_ADDR, PWR_CR3_POWER_ON_DEFAULT, PWR_CR3_SUPPLY_MASK,
};

use crate::power_loss::power_cycle::PowerCycleCheck;
use crate::report::Outcome;
use crate::rig::Rig;
use crate::session::Runner;
use rig_instruments::{attach_with_retry, CoreSelect};

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

    // 1. Power off, hold NRST, power on: the firmware never runs, so it cannot latch PWR_CR3.
    let held = rig
        .power
        .set_power(false)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            std::thread::sleep(off);
            rig.probe
                .as_mut()
                .map_or(Ok(()), |p| p.hold_reset(true))
                .map_err(|e| e.to_string())?;
            rig.power.set_power(true).map_err(|e| e.to_string())?;
            rig.powered_at = Some(Instant::now());
            std::thread::sleep(settle);
            Ok(())
        });
    if !r.push(
        "power on with NRST held",
        held.is_ok(),
        held.err()
            .unwrap_or_else(|| format!("off {off:?}, settle {settle:?}")),
    ) {
        return r;
    }
    let Some(probe) = rig.probe.as_mut() else {
        return r;
    };
    // 2. Connect under reset.
    let deadline = Instant::now() + attach_timeout;
    let attached = loop {
        match probe.attach_under_reset(CoreSelect::Cm7) {
            Ok(()) => break Ok(()),
            Err(e) if Instant::now() >= deadline => break Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    if let Err(e) = attached {
        let _ = probe.hold_reset(false);
        r.push("connect under reset", false, format!("{e}. Next: boot with BOOT0 high (system bootloader) and connect, or check the probe's NRST wire"));
        return r;
    }
    let cr3 = probe.read_u32(PWR_CR3_ADDR);
    r.push(
        "connect under reset",
        true,
        match cr3 {
            Ok(v) => {
                format!("attached to the Cortex-M7; PWR_CR3 = {v:#010x} (nothing latched yet)")
            }
            Err(e) => format!("attached; PWR_CR3 unreadable: {e}"),
        },
    );
    // 3. Mass erase, only when confirmed.
    if !opts.erase {
        let _ = probe.hold_reset(false);
        probe.detach();
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
    if let FlashImage::Logic(s) = image {
        rig.firmware.supply = Some(s.name().to_string());
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
