//! The supply check: PWR_CR3 against the board's wiring and ACTVOSRDY, read through the probe
//! (with a diagnosis when the Cortex-M7 does not answer or the supply is wrong).

use std::time::{Duration, Instant};

use stm32h755::supply::{
    SupplyConfig, PWR_CR3_ADDR, PWR_CR3_SUPPLY_MASK, PWR_CSR1_ACTVOSRDY, PWR_CSR1_ADDR,
};

use rig_instruments::{CoreSelect, ProbeError};

use super::diagnosis;
use crate::{
    report::Measurement,
    session::{ms, Runner, StepResult},
};

impl Runner<'_> {
    pub(crate) fn diagnosis_context(&self) -> diagnosis::Context {
        diagnosis::Context {
            wiring: self.rig.wiring(),
            rig_path: self.rig.config.path.clone(),
            firmware_supply: self
                .rig
                .firmware
                .supply
                .as_deref()
                .and_then(SupplyConfig::from_name),
        }
    }

    /// PWR_CR3 supply bits against the wiring and ACTVOSRDY, with a diagnosis when the probe
    /// cannot see the CM7. Returns the measurements so far and whether the supply is right.
    pub(crate) fn check_supply(
        &mut self,
        m: &mut Vec<Measurement>,
        attach_from: Option<Instant>,
    ) -> Result<(), StepResult> {
        let ctx = self.diagnosis_context();
        let expected = self.rig.wiring().cr3_bits();
        let attach_timeout = Duration::from_millis(self.rig.config.probe.attach_timeout_ms);
        let Some(probe) = self.rig.probe.as_mut() else {
            return Err(StepResult::error(
                "this rig has no debug probe (probe.backend = \"none\"): supply checks need one",
            ));
        };
        if let Err(cm7_error) =
            rig_instruments::attach_with_retry(probe.as_mut(), CoreSelect::Cm7, attach_timeout)
        {
            // Before the board is blamed, the probe proves itself: one gone from USB, or one
            // that cannot even read its target-voltage pin, says nothing about the board.
            let probe_failed = match &cm7_error {
                ProbeError::Gone { .. } => Some(cm7_error.to_string()),
                _ => probe.target_voltage().err().map(|e| e.to_string()),
            };
            if let Some(why) = probe_failed {
                return Err(StepResult::error(format!(
                    "{why} (no attach to the Cortex-M7 within {attach_timeout:?}: {cm7_error}): the debug probe failed, not the board. Check its USB cable, that `rig list` shows it, and probe.serial"
                )));
            }
            let diagnosis = ctx.no_cm7(probe.as_mut());
            let mut r = StepResult::fail(
                std::mem::take(m),
                format!(
                    "probe cannot attach to the Cortex-M7 within {attach_timeout:?}: {cm7_error}"
                ),
            );
            r.diagnosis = Some(diagnosis);
            return Err(r);
        }
        if let Some(t) = attach_from {
            m.push(Measurement::limited(
                "boot_to_attach",
                ms(t.elapsed()),
                "ms",
                None,
                Some(ms(attach_timeout)),
            ));
        }
        let reads = probe
            .read_u32(PWR_CR3_ADDR)
            .and_then(|cr3| Ok((cr3, probe.read_u32(PWR_CSR1_ADDR)?)));
        let (cr3, csr1) = match reads {
            Ok(v) => v,
            Err(e) => {
                probe.detach();
                return Err(StepResult::error(e.to_string()));
            }
        };
        let found = cr3 & PWR_CR3_SUPPLY_MASK;
        let actvosrdy = csr1 & PWR_CSR1_ACTVOSRDY != 0;
        m.push(Measurement::limited(
            "pwr_cr3_supply_bits",
            f64::from(found),
            "bits",
            Some(f64::from(expected)),
            Some(f64::from(expected)),
        ));
        m.push(Measurement::limited(
            "pwr_csr1_actvosrdy",
            f64::from(u8::from(actvosrdy)),
            "flag",
            Some(1.0),
            Some(1.0),
        ));
        m.push(Measurement::info("pwr_cr3", f64::from(cr3), "register"));
        if found != expected || !actvosrdy {
            probe.detach();
            let mut r = StepResult::judged(std::mem::take(m));
            r.diagnosis = Some(ctx.wrong_supply(cr3, actvosrdy));
            return Err(r);
        }
        Ok(())
    }

    pub(crate) fn expect_supply(&mut self) -> StepResult {
        let mut m = Vec::new();
        let result = self.check_supply(&mut m, None);
        if let Some(p) = self.rig.probe.as_mut() {
            p.detach();
        }
        if let Some(t) = self.rig.powered_at {
            m.push(Measurement::info(
                "power_on_to_check",
                ms(t.elapsed()),
                "ms",
            ));
        }
        match result {
            Ok(()) => StepResult::judged(m),
            Err(r) => r,
        }
    }
}
