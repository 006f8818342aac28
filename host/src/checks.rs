//! Power-loss verification steps: the power-cycle check, power cuts during the firmware's
//! flash writes, and the exhaustive power-cut sweep of the simulated bench.

use std::time::{Duration, Instant};

use gauge_logic::storage::BootRecords;

use crate::{
    elf,
    instruments::{attach_with_retry, CoreSelect, DebugProbe},
    probe_flash::read_records,
    report::Measurement,
    runner::{ms, Runner, ScenarioState, StepResult},
    scenario::TempSource,
    sim::logic_board::{FLASH_BOOT4_CUR, FLASH_BOOT7_CUR, FLASH_OPTSR_CUR, OPTSR_BCM4, OPTSR_BCM7},
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

/// RDP level from FLASH_OPTSR's RDP byte: 0xAA level 0, 0xCC level 2, anything else level 1.
pub fn rdp_level(optsr: u32) -> u8 {
    match (optsr >> 8) & 0xFF {
        0xAA => 0,
        0xCC => 2,
        _ => 1,
    }
}

fn flag(name: &str, value: bool, want: bool) -> Measurement {
    let w = f64::from(u8::from(want));
    Measurement::limited(name, f64::from(u8::from(value)), "flag", Some(w), Some(w))
}

/// Compares the ELF's loadable segments with the chip's flash; returns (bytes compared, first mismatch).
fn compare_image(
    probe: &mut dyn DebugProbe,
    segments: &[elf::Segment],
) -> Result<(usize, Option<u32>), String> {
    let mut compared = 0;
    for seg in segments
        .iter()
        .filter(|s| (0x0800_0000..0x0820_0000).contains(&s.address))
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
        }
    }

    /// Reads the firmware's storage records through the probe (attaching to CM7 for it).
    fn records_via_probe(&mut self) -> Result<BootRecords, String> {
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
        let confirm = match self.rig.power_off_confirmed() {
            Ok(d) => d,
            Err(e) => return StepResult::fail(Vec::new(), e.to_string()),
        };
        self.sleep(p.off);
        if let Err(e) = self.rig.power.set_power(true) {
            return StepResult::error(e.to_string());
        }
        let on = Instant::now();
        self.rig.powered_at = Some(on);
        state.forget_needle();
        let mut m = vec![
            Measurement::info("power_off_time", ms(p.off), "ms"),
            Measurement::info("off_command_to_dark", ms(confirm), "ms"),
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
            Ok::<_, crate::instruments::ProbeError>((
                probe.read_u32(FLASH_OPTSR_CUR)?,
                probe.read_u32(FLASH_BOOT7_CUR)?,
                probe.read_u32(FLASH_BOOT4_CUR)?,
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
        let b7 = f64::from((boot7 & 0xFFFF) << 16);
        let b4 = f64::from((boot4 & 0xFFFF) << 16);
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

        // 6: the firmware works again.
        if let Err(e) = self.rig.ecu.set_temperature(
            p.celsius,
            TempSource::Broadcast,
            Duration::from_millis(100),
        ) {
            return StepResult::error(e);
        }
        match self.settle(p.pulse_us, p.tolerance_us, on, on + p.settle_timeout) {
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
        let mut r = StepResult::judged(m);
        if r.outcome != crate::report::Outcome::Pass && notes.is_empty() {
            notes.push("a measurement is outside its limits".into());
        }
        if !notes.is_empty() {
            r.message = Some(notes.join("; "));
        }
        r
    }

    /// Cuts the supply while the firmware writes its boot records, then checks that nothing
    /// committed was lost. Simulated bench: after `after_bytes` programmed bytes (random if
    /// unset). Hardware: `delay_ms` after power-on.
    pub(crate) fn power_cut_during_write(
        &mut self,
        after_bytes: Option<usize>,
        delay_ms: Option<u64>,
        state: &mut ScenarioState,
    ) -> StepResult {
        let before = match self.records_via_probe() {
            Ok(r) => r,
            Err(e) => {
                return StepResult::error(format!(
                    "cannot read the storage records before the cut: {e}"
                ))
            }
        };
        let off = Duration::from_millis(self.rig.config.power.off_ms);
        let mut m = Vec::new();
        let mut cut_hit_write = None;
        if let Err(e) = self.rig.power_off_confirmed() {
            return StepResult::fail(Vec::new(), e.to_string());
        }
        self.sleep(off);
        if let Some(bench) = &self.rig.bench {
            let n = after_bytes.unwrap_or_else(|| {
                (Instant::now().elapsed().subsec_nanos() as usize ^ std::process::id() as usize)
                    % 64
            });
            m.push(Measurement::info("cut_after_bytes", n as f64, "bytes"));
            let written = bench.shared.board().target.storage_bytes_written();
            bench.shared.board().target.arm_storage_power_cut(Some(n));
            if let Err(e) = self.rig.power.set_power(true) {
                return StepResult::error(e.to_string());
            }
            // The board cuts its own supply at the planned byte; give it a moment.
            self.sleep(Duration::from_millis(30));
            let b = bench.shared.board();
            cut_hit_write = Some(!b.powered || b.target.storage_bytes_written() < written + n);
            drop(b);
            bench.shared.board().target.arm_storage_power_cut(None);
        } else {
            let delay = Duration::from_millis(delay_ms.unwrap_or(5));
            m.push(Measurement::info("cut_after_power_on", ms(delay), "ms"));
            if let Err(e) = self.rig.power.set_power(true) {
                return StepResult::error(e.to_string());
            }
            std::thread::sleep(delay);
        }
        if let Err(e) = self.rig.power_off_confirmed() {
            return StepResult::fail(Vec::new(), e.to_string());
        }
        self.sleep(off);
        if let Err(e) = self.rig.power.set_power(true) {
            return StepResult::error(e.to_string());
        }
        self.rig.powered_at = Some(Instant::now());
        state.forget_needle();
        std::thread::sleep(Duration::from_millis(self.rig.config.power.settle_ms));
        if let Some(hit) = cut_hit_write {
            m.push(flag("cut_hit_a_write", hit, hit));
        }
        match self.records_via_probe() {
            Ok(after) => {
                m.push(flag("storage_readable", true, true));
                m.push(Measurement::info(
                    "boot_count_before",
                    f64::from(before.boot_count),
                    "boots",
                ));
                // The clean boot always counts; the cut one may or may not have committed.
                let b = f64::from(before.boot_count);
                m.push(Measurement::limited(
                    "boot_count_after",
                    f64::from(after.boot_count),
                    "boots",
                    Some(b + 1.0),
                    Some(b + 2.0),
                ));
                m.push(flag(
                    "calibration_unchanged",
                    after.calibration == before.calibration,
                    true,
                ));
                StepResult::judged(m)
            }
            Err(e) => {
                m.push(flag("storage_readable", false, true));
                StepResult::fail(
                    m,
                    format!("storage unreadable after a power cut during a write: {e}"),
                )
            }
        }
    }

    /// Simulated bench only: cuts the power at every byte of one boot's record writes in turn
    /// and counts cuts that lost a committed record or left storage unreadable (goal: zero).
    pub(crate) fn power_cut_sweep(
        &mut self,
        max_delay_ms: u64,
        state: &mut ScenarioState,
    ) -> StepResult {
        let Some(bench) = self.rig.bench.as_ref() else {
            return self.power_cut_delay_sweep(max_delay_ms, state);
        };
        let shared = bench.shared.clone();
        let boot = |cut: Option<usize>| {
            shared.set_power(false);
            shared.board().target.arm_storage_power_cut(cut);
            shared.set_power(true);
            // A planned cut switches the board off from inside; reflect it now.
            let mut b = shared.board();
            if b.target.power_cut_requested() {
                b.powered = false;
                b.target.power_off();
            }
            b.target.arm_storage_power_cut(None);
        };
        state.forget_needle();
        // How many bytes does one boot program?
        let w0 = shared.board().target.storage_bytes_written();
        boot(None);
        let per_boot = shared.board().target.storage_bytes_written() - w0;
        let mut probe = crate::sim::probe::SimulatedProbe::new(shared.clone());
        let read = |probe: &mut crate::sim::probe::SimulatedProbe| -> Result<BootRecords, String> {
            probe.attach(CoreSelect::Cm7).map_err(|e| e.to_string())?;
            let r = read_records(probe);
            probe.detach();
            r
        };
        let mut lost = 0;
        let mut unreadable = 0;
        let mut first_problem = None;
        let started = Instant::now();
        for n in 0..per_boot.max(1) {
            let before = match read(&mut probe) {
                Ok(r) => r,
                Err(e) => {
                    return StepResult::error(format!(
                        "sweep: storage unreadable before cut {n}: {e}"
                    ))
                }
            };
            boot(Some(n));
            boot(None);
            match read(&mut probe) {
                Ok(after)
                    if after.boot_count > before.boot_count
                        && after.calibration == before.calibration => {}
                Ok(after) => {
                    lost += 1;
                    first_problem.get_or_insert(format!(
                        "cut after {n} bytes: boot count {} -> {}",
                        before.boot_count, after.boot_count
                    ));
                }
                Err(e) => {
                    unreadable += 1;
                    first_problem.get_or_insert(format!("cut after {n} bytes: {e}"));
                }
            }
        }
        // Leave the board powered through the relay's view of the world.
        let _ = self.rig.power.set_power(true);
        self.rig.powered_at = Some(Instant::now());
        let m = vec![
            Measurement::info("bytes_per_boot", per_boot as f64, "bytes"),
            Measurement::info("cuts_tried", per_boot.max(1) as f64, "cuts"),
            Measurement::limited(
                "cuts_losing_a_record",
                f64::from(lost),
                "cuts",
                None,
                Some(0.0),
            ),
            Measurement::limited(
                "cuts_leaving_storage_unreadable",
                f64::from(unreadable),
                "cuts",
                None,
                Some(0.0),
            ),
            Measurement::info("sweep_time", ms(started.elapsed()), "ms"),
        ];
        let r = StepResult::judged(m);
        match first_problem {
            Some(p) => r.with_message(p),
            None => r,
        }
    }

    /// Hardware: the same question asked with time instead of bytes: a cut at every
    /// millisecond from power-on to `max_delay_ms`.
    fn power_cut_delay_sweep(
        &mut self,
        max_delay_ms: u64,
        state: &mut ScenarioState,
    ) -> StepResult {
        let started = Instant::now();
        let (mut tried, mut bad) = (0u32, 0u32);
        let mut first_problem = None;
        for delay in 0..=max_delay_ms {
            let r = self.power_cut_during_write(None, Some(delay), state);
            tried += 1;
            match r.outcome {
                crate::report::Outcome::Pass => {}
                crate::report::Outcome::Fail => {
                    bad += 1;
                    first_problem.get_or_insert(format!(
                        "cut {delay} ms after power-on: {}",
                        r.message.unwrap_or_default()
                    ));
                }
                _ => return r,
            }
        }
        let m = vec![
            Measurement::info("cuts_tried", f64::from(tried), "cuts"),
            Measurement::limited(
                "cuts_losing_or_corrupting",
                f64::from(bad),
                "cuts",
                None,
                Some(0.0),
            ),
            Measurement::info("sweep_time", ms(started.elapsed()), "ms"),
        ];
        let r = StepResult::judged(m);
        match first_problem {
            Some(p) => r.with_message(p),
            None => r,
        }
    }
}
