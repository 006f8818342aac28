//! The documented range of every numeric field a person writes in a rig config or a scenario,
//! checked when the file is loaded, before anything runs. Each range says why it is what it is;
//! `rig-config/README.md` and `scenarios/README.md` list them (a test keeps them in step).

/// A numeric field's allowed values, inclusive at both ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FieldRange {
    /// As written in the file: `section.key` (rig config) or `action.key` (scenario step).
    pub field: &'static str,
    pub min: f64,
    pub max: f64,
    pub why: &'static str,
}

impl FieldRange {
    /// `Err` (the message for the file error) unless `value` is a number within the range.
    pub fn check(&self, value: f64) -> Result<(), String> {
        if value.is_finite() && (self.min..=self.max).contains(&value) {
            Ok(())
        } else {
            Err(format!(
                "{} = {}: must be {}..={} ({})",
                self.field,
                number(value),
                number(self.min),
                number(self.max),
                self.why
            ))
        }
    }

    /// The key as written in the file (the part after the section or action).
    pub fn key(&self) -> &'static str {
        self.field.rsplit('.').next().unwrap_or(self.field)
    }
}

/// Whole numbers without a fraction, others as Rust prints them.
pub fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The range of `field`. Every field the loaders check is in [`RIG_CONFIG_RANGES`] or
/// [`SCENARIO_RANGES`] (a unit test asks for each).
pub fn range_of(field: &str) -> Option<&'static FieldRange> {
    RIG_CONFIG_RANGES
        .iter()
        .chain(SCENARIO_RANGES)
        .find(|r| r.field == field)
}

const fn r(field: &'static str, min: f64, max: f64, why: &'static str) -> FieldRange {
    FieldRange {
        field,
        min,
        max,
        why,
    }
}

/// A rig config's numeric fields.
pub const RIG_CONFIG_RANGES: &[FieldRange] = &[
    r("can.bitrate", 10_000.0, 1_000_000.0, "classic CAN runs at 10 kbit/s to 1 Mbit/s; the gauge's bus is 500000"),
    r("pulse_meter.channel", 0.0, 7.0, "the analyzer's channel group 0"),
    r("pulse_meter.sample_rate_hz", 100_000.0, 10_000_000.0, "at least 10 us per sample for a servo pulse; at most what a SUMP read count of 262144 samples holds over two 20 ms servo periods"),
    r("pulse_meter.max_jitter_us", 0.0, 2_000.0, "a spread wider than a servo's whole pulse range checks nothing"),
    r("power.channel", 1.0, 8.0, "LCUS relay boards number their 1, 2, 4 or 8 channels from 1"),
    r("power.off_ms", 1.0, 60_000.0, "0 is no power cut; a minute drains any board"),
    r("power.settle_ms", 0.0, 60_000.0, "a wait after power-on; the probe's attach retries cover longer boots"),
    r("power.supply_rise_ms", 0.0, 10_000.0, "a simulated supply's soft start"),
    r("power.command_timeout_ms", 1.0, 600_000.0, "a switch command that runs 10 minutes is stuck"),
    r("power.recovery_line.channel", 1.0, 8.0, "LCUS relay boards number their channels from 1"),
    r("power.voltage", 0.1, 60.0, "bench supplies of this kind give up to 60 V; the NUCLEO wants 5 V"),
    r("power.baud", 1_200.0, 115_200.0, "serial bench supplies talk at 1200 to 115200 baud"),
    r("telemetry.baud", 1_200.0, 4_000_000.0, "a UART's speeds; the firmware sends at 115200"),
    r("probe.attach_timeout_ms", 100.0, 120_000.0, "time for a probe to come back after power-on (an ST-LINK re-enumerates in seconds)"),
    r("probe.speed_khz", 1.0, 24_000.0, "SWD clocks up to an ST-LINK V3's 24 MHz"),
    r("expect.rdp_level", 0.0, 2.0, "read-out protection levels 0, 1 and 2"),
    r("usb.stlink_enumeration_ms", 0.0, 30_000.0, "an ST-LINK boots and enumerates within seconds"),
    r("simulated_faults.after_ms", 0.0, 3_600_000.0, "from bring-up to the fault; an hour outlasts any shipped run"),
    r("simulated_faults.delay_ms", 1.0, 600_000.0, "how late a slow device answers; 10 minutes is a dead one"),
    r("simulated_faults.for_ms", 1.0, 3_600_000.0, "how long a transient fault lasts; an hour outlasts any shipped run"),
];

/// A scenario's numeric fields, by step action (`defaults.*` for the `[defaults]` table).
pub const SCENARIO_RANGES: &[FieldRange] = &[
    r(
        "defaults.tolerance_us",
        0.01,
        500.0,
        "above 0; wider than 500 us accepts a needle a quarter of the scale off",
    ),
    r(
        "defaults.settle_timeout_ms",
        100.0,
        600_000.0,
        "a needle settles in seconds; 10 minutes is a hang",
    ),
    r(
        "set_temperature.celsius",
        -60.0,
        215.0,
        "the broadcast signal's and OBD-II PID 0x5C's ranges together",
    ),
    r(
        "set_temperature.period_ms",
        1.0,
        10_000.0,
        "a broadcast period; the gauge's failsafe fires after 1 s without data",
    ),
    r(
        "set_temperature.reply_delay_ms",
        0.0,
        1_000.0,
        "ISO 15765-4 gives an ECU 50 ms (P2CAN); later replies test the gauge's response window",
    ),
    r(
        "set_temperature.reply_jitter_ms",
        0.0,
        1_000.0,
        "spread of the reply delay; with other ECUs it varies the order of their replies",
    ),
    r(
        "add_ecu.id",
        2025.0,
        2031.0,
        "the 11-bit OBD-II reply IDs 0x7E9..0x7EF; 0x7E8 is the engine, which set_temperature plays",
    ),
    r(
        "add_ecu.celsius",
        -40.0,
        215.0,
        "what OBD-II PID 0x5C carries",
    ),
    r(
        "add_ecu.reply_delay_ms",
        0.0,
        1_000.0,
        "ISO 15765-4 gives an ECU 50 ms (P2CAN); later replies test the gauge's response window",
    ),
    r(
        "add_ecu.reply_jitter_ms",
        0.0,
        1_000.0,
        "spread of the reply delay; it varies the order of the ECUs' replies",
    ),
    r(
        "other_tester.period_ms",
        1.0,
        10_000.0,
        "one request per period; a data logger polls every few ms at the most",
    ),
    r(
        "other_tester.celsius",
        -40.0,
        215.0,
        "what OBD-II PID 0x5C carries",
    ),
    r(
        "other_tester.reply_delay_ms",
        0.0,
        1_000.0,
        "ISO 15765-4 gives an ECU 50 ms (P2CAN) to answer",
    ),
    r(
        "bus_load.percent",
        0.0,
        90.0,
        "share of the 500 kbit/s bus; above 90 % the gauge's own frames hardly get on",
    ),
    r(
        "expect_broadcast_received.over_ms",
        2_100.0,
        600_000.0,
        "two status lines (one a second) apart at least; longer than 10 minutes: split the scenario",
    ),
    r(
        "expect_broadcast_received.max_lost",
        0.0,
        1_000_000.0,
        "frames the gauge may miss in the window",
    ),
    r(
        "inject.rate_hz",
        1.0,
        2_000.0,
        "bad frames per second; 2000 is a quarter of a 500 kbit/s bus",
    ),
    r(
        "hold.ms",
        0.0,
        600_000.0,
        "longer than 10 minutes: split the scenario",
    ),
    r(
        "expect_pulse.us",
        400.0,
        2_600.0,
        "a hobby servo's pulse range",
    ),
    r(
        "expect_pulse.tolerance_us",
        0.01,
        500.0,
        "above 0; wider than 500 us accepts a needle a quarter of the scale off",
    ),
    r(
        "expect_pulse.settle_timeout_ms",
        100.0,
        600_000.0,
        "a needle settles in seconds; 10 minutes is a hang",
    ),
    r(
        "expect_steady.us",
        400.0,
        2_600.0,
        "a hobby servo's pulse range",
    ),
    r(
        "expect_steady.tolerance_us",
        0.01,
        500.0,
        "above 0; wider than 500 us accepts a needle a quarter of the scale off",
    ),
    r(
        "expect_steady.over_ms",
        100.0,
        600_000.0,
        "five servo periods at least; longer than 10 minutes: split the scenario",
    ),
    r(
        "expect_failsafe.within_ms",
        1.0,
        60_000.0,
        "the failsafe fires about 1 s after the last valid data",
    ),
    r(
        "expect_failsafe.tolerance_us",
        0.01,
        500.0,
        "above 0; wider than 500 us accepts a needle a quarter of the scale off",
    ),
    r(
        "expect_telemetry.celsius",
        -60.0,
        215.0,
        "what the gauge can report",
    ),
    r(
        "expect_obd_polling.interval_ms",
        1.0,
        10_000.0,
        "the gauge polls every 100 ms",
    ),
    r(
        "expect_obd_polling.tolerance_ms",
        0.0,
        10_000.0,
        "must also be below interval_ms, or any interval passes",
    ),
    r(
        "expect_obd_polling.over_ms",
        1.0,
        600_000.0,
        "must also span two intervals, to see one",
    ),
    r(
        "power_cycle.off_ms",
        1.0,
        60_000.0,
        "0 is no power cut; a minute drains any board",
    ),
    r(
        "expect_boot_count.by",
        0.0,
        1_000.0,
        "boots since the last status line a scenario read",
    ),
    r(
        "power_cycle_check.off_ms",
        1.0,
        60_000.0,
        "0 is no power cut; a minute drains any board",
    ),
    r(
        "power_cycle_check.celsius",
        -60.0,
        193.0,
        "it is sent on the broadcast frame, whose signal spans -60..193 degC",
    ),
    r(
        "power_cycle_check.us",
        400.0,
        2_600.0,
        "a hobby servo's pulse range",
    ),
    r(
        "power_cycle_check.tolerance_us",
        0.01,
        500.0,
        "above 0; wider than 500 us accepts a needle a quarter of the scale off",
    ),
    r(
        "power_cut_during_write.after_bytes",
        0.0,
        65_536.0,
        "a byte of one boot's storage writes (the step fails when the boot programs fewer)",
    ),
    r(
        "power_cut_during_write.delay_ms",
        0.0,
        10_000.0,
        "the boot-time writes happen within the first milliseconds",
    ),
    r(
        "power_cut_sweep.max_delay_ms",
        0.0,
        1_000.0,
        "each millisecond is a power cycle of its own on hardware",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_say_the_range_and_why() {
        let r = range_of("pulse_meter.sample_rate_hz").expect("listed");
        assert!(r.check(1_000_000.0).is_ok());
        let e = r.check(0.0).unwrap_err();
        assert!(
            e.starts_with("pulse_meter.sample_rate_hz = 0: must be 100000..=10000000 ("),
            "{e}"
        );
        assert!(r.check(f64::NAN).is_err());
        assert!(range_of("expect_pulse.tolerance_us")
            .expect("listed")
            .check(f64::INFINITY)
            .is_err());
        assert_eq!(r.key(), "sample_rate_hz");
    }

    /// The docs' tables (rig-config/README.md, scenarios/README.md) say what the code checks.
    #[test]
    fn the_docs_list_every_range() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for (doc, ranges) in [
            ("rig-config/README.md", RIG_CONFIG_RANGES),
            ("scenarios/README.md", SCENARIO_RANGES),
        ] {
            let text = std::fs::read_to_string(root.join(doc)).expect(doc);
            for r in ranges {
                let row = format!("| `{}` | {}..={} |", r.field, number(r.min), number(r.max));
                assert!(text.contains(&row), "{doc} lacks the row {row}");
            }
        }
    }

    #[test]
    fn every_range_is_a_real_interval_and_listed_once() {
        for (i, r) in RIG_CONFIG_RANGES.iter().chain(SCENARIO_RANGES).enumerate() {
            assert!(r.min <= r.max && !r.why.is_empty(), "{r:?}");
            assert_eq!(
                RIG_CONFIG_RANGES
                    .iter()
                    .chain(SCENARIO_RANGES)
                    .position(|o| o.field == r.field),
                Some(i),
                "{} listed twice",
                r.field
            );
        }
    }
}
