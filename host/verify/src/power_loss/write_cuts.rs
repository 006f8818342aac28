//! Power cuts during the firmware's flash writes: one cut (at a chosen storage byte where the
//! bench can cut there, else a delay after power-on) and the sweep over every cut point.

use std::time::{Duration, Instant};

use gauge_logic::storage::BootRecords;
use rig_instruments::StoragePowerCut;

use super::power_cycle::flag;
use crate::{
    report::{Measurement, Outcome},
    session::{ms, Runner, ScenarioState, StepResult},
};

impl Runner<'_> {
    /// Cuts the supply while the firmware writes its boot records, then checks that nothing
    /// committed was lost. On a bench that can cut at a storage byte (capability
    /// `StoragePowerCut`, the simulated boards): after `after_bytes` programmed bytes (random if
    /// unset). Otherwise (hardware): `delay_ms` after power-on.
    pub(crate) fn power_cut_during_write(
        &mut self,
        after_bytes: Option<usize>,
        delay_ms: Option<u64>,
        state: &mut ScenarioState,
    ) -> StepResult {
        // Out of the rig for the step, so it can be driven beside the rig's instruments.
        let mut cutter = self.rig.storage_cut.take();
        let (r, _) =
            self.cut_during_write(cutter.as_deref_mut(), None, after_bytes, delay_ms, state);
        self.rig.storage_cut = cutter;
        r
    }

    /// One cut; `before`: the records as the last readback left them (a sweep's previous
    /// cut), else they are read first. Returns the records read after the cut.
    fn cut_during_write(
        &mut self,
        mut cutter: Option<&mut (dyn StoragePowerCut + 'static)>,
        before: Option<BootRecords>,
        after_bytes: Option<usize>,
        delay_ms: Option<u64>,
        state: &mut ScenarioState,
    ) -> (StepResult, Option<BootRecords>) {
        // Unset: a random byte among those one boot programs (measured by one clean boot, so
        // that the cut always lands inside the writes).
        let after_bytes = match (cutter.as_deref_mut(), after_bytes) {
            (Some(c), None) => {
                let w0 = c.storage_bytes_programmed();
                c.boot_with_cut(None);
                let per_boot = c.storage_bytes_programmed().saturating_sub(w0).max(1);
                let random =
                    Instant::now().elapsed().subsec_nanos() as usize ^ std::process::id() as usize;
                Some(random % per_boot)
            }
            (_, n) => n,
        };
        let before = match before.map_or_else(|| self.records_via_probe(), Ok) {
            Ok(r) => r,
            Err(e) => {
                return (
                    StepResult::error(format!(
                        "cannot read the storage records before the cut: {e}"
                    )),
                    None,
                )
            }
        };
        self.cut_and_read_back(cutter, &before, after_bytes, delay_ms, state)
    }

    fn cut_and_read_back(
        &mut self,
        cutter: Option<&mut (dyn StoragePowerCut + 'static)>,
        before: &BootRecords,
        after_bytes: Option<usize>,
        delay_ms: Option<u64>,
        state: &mut ScenarioState,
    ) -> (StepResult, Option<BootRecords>) {
        let off = Duration::from_millis(self.rig.config.power.off_ms);
        let mut m = Vec::new();
        let mut cut_hit_write = None;
        if let Err(e) = self.rig.power_off_confirmed() {
            // The switch or the probe, not the board; the supply goes back on.
            let _ = self.rig.switch_power(true);
            return (StepResult::error(e.to_string()), None);
        }
        self.sleep(off);
        if let Some(cutter) = cutter {
            let n = after_bytes.unwrap_or(0);
            m.push(Measurement::info("cut_after_bytes", n as f64, "bytes"));
            let written = cutter.storage_bytes_programmed();
            cutter.arm_cut_after_bytes(Some(n));
            if let Err(e) = self.rig.switch_power(true) {
                return (StepResult::error(e.to_string()), None);
            }
            // The board cuts its own supply at the planned byte; give it a moment. Still powered:
            // the boot programmed fewer bytes than `n`, and nothing was cut.
            self.sleep(Duration::from_millis(30));
            let hit = !cutter.board_powered();
            if !hit {
                m.push(Measurement::info(
                    "bytes_programmed_by_the_boot",
                    cutter.storage_bytes_programmed().saturating_sub(written) as f64,
                    "bytes",
                ));
            }
            cut_hit_write = Some(hit);
            cutter.arm_cut_after_bytes(None);
        } else {
            let delay = Duration::from_millis(delay_ms.unwrap_or(5));
            m.push(Measurement::info("cut_after_power_on", ms(delay), "ms"));
            if let Err(e) = self.rig.switch_power(true) {
                return (StepResult::error(e.to_string()), None);
            }
            std::thread::sleep(delay);
        }
        if let Err(e) = self.rig.power_off_confirmed() {
            return (StepResult::fail(Vec::new(), e.to_string()), None);
        }
        self.sleep(off);
        if let Err(e) = self.rig.switch_power(true) {
            return (StepResult::error(e.to_string()), None);
        }
        self.rig.powered_at = Some(Instant::now());
        state.forget_needle();
        std::thread::sleep(Duration::from_millis(self.rig.config.power.settle_ms));
        if let Some(hit) = cut_hit_write {
            m.push(flag("cut_hit_a_write", hit, true));
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
                (StepResult::judged(m), Some(after))
            }
            Err(e) => {
                m.push(flag("storage_readable", false, true));
                (
                    StepResult::fail(
                        m,
                        format!("storage unreadable after a power cut during a write: {e}"),
                    ),
                    None,
                )
            }
        }
    }

    /// Cuts the power at every byte of one boot's record writes in turn and counts cuts that
    /// lost a committed record or left storage unreadable (goal: zero). Needs a bench that can
    /// cut at a storage byte; otherwise the same question asked with time.
    pub(crate) fn power_cut_sweep(
        &mut self,
        max_delay_ms: u64,
        state: &mut ScenarioState,
    ) -> StepResult {
        let Some(mut cutter) = self.rig.storage_cut.take() else {
            return self.power_cut_delay_sweep(max_delay_ms, state);
        };
        let r = self.byte_cut_sweep(cutter.as_mut(), state);
        self.rig.storage_cut = Some(cutter);
        r
    }

    fn byte_cut_sweep(
        &mut self,
        cutter: &mut (dyn StoragePowerCut + 'static),
        state: &mut ScenarioState,
    ) -> StepResult {
        state.forget_needle();
        // How many bytes does one boot program?
        let w0 = cutter.storage_bytes_programmed();
        cutter.boot_with_cut(None);
        let per_boot = cutter.storage_bytes_programmed() - w0;
        let mut lost = 0;
        let mut unreadable = 0;
        let mut first_problem = None;
        let started = Instant::now();
        for n in 0..per_boot.max(1) {
            if self.interrupted() {
                return StepResult::error(format!("interrupted after {n} of {per_boot} cuts"));
            }
            let before = match self.records_via_probe() {
                Ok(r) => r,
                Err(e) => {
                    return StepResult::error(format!(
                        "sweep: storage unreadable before cut {n}: {e}"
                    ))
                }
            };
            cutter.boot_with_cut(Some(n));
            cutter.boot_with_cut(None);
            match self.records_via_probe() {
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
        let _ = self.rig.switch_power(true);
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
        // Each cut's readback is the next one's baseline: one probe session per cut.
        let mut records = None;
        for delay in 0..=max_delay_ms {
            if self.interrupted() {
                return StepResult::error(format!(
                    "interrupted after {tried} of {} cuts",
                    max_delay_ms + 1
                ));
            }
            let (r, after) = self.cut_during_write(None, records.take(), None, Some(delay), state);
            records = after;
            tried += 1;
            match r.outcome {
                Outcome::Pass => {}
                Outcome::Fail => {
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
