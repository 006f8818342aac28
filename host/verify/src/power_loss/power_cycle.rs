//! The power-cycle check: cut the supply (confirmed), restore it, and verify through the
//! probe that the board came back whole: supply latch, option bytes, flash image, storage.

use std::time::{Duration, Instant};

use gauge_logic::storage::BootRecords;

use crate::power_loss::storage_readback::read_records;
use crate::{
    report::Measurement,
    scenario::TempSource,
    session::{ms, Runner, ScenarioState, StepResult},
};
use rig_instruments::elf;
use rig_instruments::{attach_with_retry, CoreSelect, DebugProbe};
use stm32h755::flash::{
    boot_address0, rdp_level, FLASH_ADDRESSES, FLASH_BOOT4_CURR, FLASH_BOOT7_CURR, FLASH_OPTSR_CUR,
    OPTSR_BCM4, OPTSR_BCM7,
};

/// What the power-cycle check sets and expects once the board is back.
#[derive(Clone, Copy, Debug)]
pub struct PowerCycleCheck {
    pub off: Duration,
    pub celsius: f64,
    pub pulse_us: f64,
    pub tolerance_us: f64,
    pub settle_timeout: Duration,
}

pub(crate) fn flag(name: &str, value: bool, want: bool) -> Measurement {
    let w = f64::from(u8::from(want));
    Measurement::limited(name, f64::from(u8::from(value)), "flag", Some(w), Some(w))
}

/// Compares the ELF's loadable segments with the chip's flash; returns (bytes compared, first mismatch).
pub(crate) fn compare_image(
    probe: &mut dyn DebugProbe,
    segments: &[elf::Segment],
) -> Result<(usize, Option<u32>), String> {
    let mut compared = 0;
    for seg in segments
        .iter()
        .filter(|s| FLASH_ADDRESSES.contains(&s.address))
    {
        let mut back = vec![0u8; seg.data.len()];
        probe
            .read_memory(seg.address, &mut back)
            .map_err(|e| e.to_string())?;
        compared += back.len();
        if let Some(i) = back.iter().zip(&seg.data).position(|(a, b)| a != b) {
            return Ok((compared, Some(seg.address + i as u32)));
        }
    }
    Ok((compared, None))
}

impl Runner<'_> {
    /// One power-cycle check outside any scenario (soak, recovery), as a step report.
    pub fn run_power_cycle_check(&mut self, check: PowerCycleCheck) -> crate::report::StepReport {
        let started = Instant::now();
        let mut state = ScenarioState::default();
        let r = self.power_cycle_check(check, &mut state);
        crate::report::StepReport {
            index: 1,
            line: 0,
            action: "power_cycle_check".into(),
            outcome: r.outcome,
            duration_ms: ms(started.elapsed()),
            measurements: r.measurements,
            message: r.message,
            diagnosis: r.diagnosis,
            trace: r.trace.map(|t| *t),
        }
    }

    /// Reads the firmware's storage records through the probe (attaching to CM7 for it).
    pub(crate) fn records_via_probe(&mut self) -> Result<BootRecords, String> {
        let timeout = Duration::from_millis(self.rig.config.probe.attach_timeout_ms);
        let probe = self
            .rig
            .probe
            .as_mut()
            .ok_or("this rig has no debug probe")?;
        // Either core's access port reaches the flash (the CM4's when CM7 boot is disabled).
        attach_with_retry(probe.as_mut(), CoreSelect::Cm7, timeout)
            .or_else(|_| probe.attach(CoreSelect::Cm4))
            .map_err(|e| e.to_string())?;
        let r = read_records(probe.as_mut());
        probe.detach();
        r
    }

    /// Cuts the supply, restores it and verifies that the board came back whole.
    pub(crate) fn power_cycle_check(
        &mut self,
        p: PowerCycleCheck,
        state: &mut ScenarioState,
    ) -> StepResult {
        if self.rig.probe.is_none() {
            return StepResult::error("this rig has no debug probe (probe.backend = \"none\"): power_cycle_check needs one");
        }
        // The baseline for persistence; a board whose firmware never ran has none, which the
        // checks below explain better than this read could.
        let before = self.records_via_probe();
        let halts_before = self.rig.emulation_stats();
        let (confirm, dark) = match self.rig.power_off_confirmed() {
            Ok(d) => d,
            // The switch or the probe, not the board; the supply goes back on, so the steps
            // after this one do not meet a board left dark.
            Err(e) => {
                let _ = self.rig.switch_power(true);
                return StepResult::error(e.to_string());
            }
        };
        self.sleep(p.off);
        if let Err(e) = self.rig.switch_power(true) {
            return StepResult::error(e.to_string());
        }
        let on = Instant::now();
        self.rig.powered_at = Some(on);
        state.forget_needle();
        let mut m = vec![
            Measurement::info("power_off_time", ms(p.off), "ms"),
            Measurement::info(dark.measurement(), ms(confirm), "ms"),
        ];

        // 1-2: the probe attaches to CM7; PWR_CR3 matches the wiring, ACTVOSRDY = 1.
        if let Err(r) = self.check_supply(&mut m, Some(on)) {
            return r;
        }
        let expect = self.rig.config.expect;
        let elf_path = self.rig.config.firmware_elf.clone();
        let probe = self.rig.probe.as_mut().expect("checked above");
        // 3: option bytes.
        let reads = (|| {
            Ok::<_, rig_instruments::ProbeError>((
                probe.read_u32(FLASH_OPTSR_CUR)?,
                probe.read_u32(FLASH_BOOT7_CURR)?,
                probe.read_u32(FLASH_BOOT4_CURR)?,
            ))
        })();
        let (optsr, boot7, boot4) = match reads {
            Ok(v) => v,
            Err(e) => {
                probe.detach();
                return StepResult::error(e.to_string());
            }
        };
        m.push(flag("optsr_bcm7", optsr & OPTSR_BCM7 != 0, expect.bcm7));
        m.push(flag("optsr_bcm4", optsr & OPTSR_BCM4 != 0, expect.bcm4));
        let rdp = f64::from(rdp_level(optsr));
        m.push(Measurement::limited(
            "rdp_level",
            rdp,
            "level",
            Some(f64::from(expect.rdp_level)),
            Some(f64::from(expect.rdp_level)),
        ));
        let b7 = f64::from(boot_address0(boot7));
        let b4 = f64::from(boot_address0(boot4));
        m.push(Measurement::limited(
            "boot7_address",
            b7,
            "address",
            Some(f64::from(expect.boot7_address)),
            Some(f64::from(expect.boot7_address)),
        ));
        m.push(Measurement::limited(
            "boot4_address",
            b4,
            "address",
            Some(f64::from(expect.boot4_address)),
            Some(f64::from(expect.boot4_address)),
        ));

        // 4: the flash holds exactly the ELF's loadable segments.
        let mut notes = Vec::new();
        match elf_path.as_deref().filter(|p| p.exists()) {
            Some(path) => match elf::load_segments(path)
                .map_err(|e| e.to_string())
                .and_then(|segs| compare_image(probe.as_mut(), &segs))
            {
                Ok((bytes, mismatch)) => {
                    m.push(Measurement::info(
                        "flash_image_bytes",
                        bytes as f64,
                        "bytes",
                    ));
                    m.push(flag("flash_image_match", mismatch.is_none(), true));
                    if let Some(at) = mismatch {
                        notes.push(format!(
                            "flash differs from {} at {at:#010x}",
                            path.display()
                        ));
                    }
                }
                Err(e) => {
                    probe.detach();
                    return StepResult::error(format!("flash image check: {e}"));
                }
            },
            None => notes.push(match &elf_path {
                Some(p) => format!(
                    "flash image not checked: {} not built (firmware/build.sh)",
                    p.display()
                ),
                None => "flash image not checked: no firmware.elf in the rig config".into(),
            }),
        }
        probe.detach();

        // 5: persistence, read with the firmware's own storage code through the probe.
        match (self.records_via_probe(), before) {
            (Ok(_), Err(e)) => {
                m.push(flag("records_before_cycle", false, true));
                notes.push(format!("no storage records before the power cycle: {e}"));
            }
            (Ok(after), Ok(before)) => {
                let delta = f64::from(after.boot_count) - f64::from(before.boot_count);
                m.push(Measurement::limited(
                    "boot_count_delta",
                    delta,
                    "boots",
                    Some(1.0),
                    Some(1.0),
                ));
                m.push(Measurement::info(
                    "boot_count",
                    f64::from(after.boot_count),
                    "boots",
                ));
                m.push(flag(
                    "calibration_unchanged",
                    after.calibration == before.calibration,
                    true,
                ));
            }
            (Err(e), _) => {
                m.push(flag("storage_readable", false, true));
                notes.push(e);
            }
        }

        // 6: the firmware works again. The needle gets its settle time from the first frame:
        // the probe's work since power-on (seconds through an ST-LINK's USB round trips) is
        // not the firmware's.
        let frames_from = Instant::now();
        if let Err(e) = self.rig.ecu.set_temperature(
            p.celsius,
            TempSource::Broadcast,
            Duration::from_millis(100),
            crate::ecu::ReplyTiming::default(),
        ) {
            return StepResult::error(e);
        }
        let mut trace = crate::report::PulseTrace::new(p.pulse_us, p.tolerance_us);
        match self.settle(
            p.pulse_us,
            p.tolerance_us,
            on,
            frames_from + p.settle_timeout,
            &mut trace,
        ) {
            Ok((mean, _, at)) => {
                state.set_needle(mean);
                m.push(Measurement::limited(
                    "pulse_width",
                    mean,
                    "us",
                    Some(p.pulse_us - p.tolerance_us),
                    Some(p.pulse_us + p.tolerance_us),
                ));
                m.push(Measurement::info(
                    "power_on_to_first_pulse",
                    ms(at.saturating_duration_since(on)),
                    "ms",
                ));
            }
            Err((last, problem)) => {
                if let Some(v) = last {
                    m.push(Measurement::limited(
                        "pulse_width",
                        v,
                        "us",
                        Some(p.pulse_us - p.tolerance_us),
                        Some(p.pulse_us + p.tolerance_us),
                    ));
                }
                notes.push(format!("no correct pulse after power-on: {problem}"));
            }
        }
        if let Some(t) = self.rig.probe.as_ref().and_then(|p| p.last_attach_time()) {
            // probe-rs halts every core while a session starts: this bounds the halt.
            m.push(Measurement::info("probe_attach_time", ms(t), "ms"));
        }
        if let (Some(a), Some(b)) = (halts_before, self.rig.emulation_stats()) {
            // On the emulated board the halts themselves are seen.
            let halts = b.debug_halts.saturating_sub(a.debug_halts);
            let halted = (b.debug_halted_ms - a.debug_halted_ms).max(0.0);
            m.push(Measurement::info("probe_halts", halts as f64, "halts"));
            m.push(Measurement::info("firmware_halted_by_probe", halted, "ms"));
            if halts > 0 {
                m.push(Measurement::info(
                    "halt_per_attach",
                    halted / halts as f64,
                    "ms",
                ));
            }
        }
        let mut r = StepResult::judged(m);
        if r.outcome != crate::report::Outcome::Pass && notes.is_empty() {
            notes.push("a measurement is outside its limits".into());
        }
        if !notes.is_empty() {
            r.message = Some(notes.join("; "));
        }
        r.with_trace(trace)
    }
}
