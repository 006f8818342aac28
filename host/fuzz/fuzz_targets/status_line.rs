//! The GAUGE/1 status line the board sends once a second, through `StatusLine::parse` (as the
//! telemetry driver does, on the line decoded lossily): what parses prints as a line that
//! parses to the same; and any status line the firmware can format parses back.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use gauge_logic::{
    gauge::Source,
    telemetry::{BusState, StatusLine},
    MilliCelsius,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(line) = StatusLine::parse(&text) {
        let printed = line.to_string();
        assert_eq!(
            StatusLine::parse(&printed),
            Ok(line),
            "{text:?} printed as {printed:?}"
        );
    }

    // The same bytes as the values of a line the firmware formats.
    let mut u = Unstructured::new(data);
    let Ok((uptime_ms, temp, source, pulse_us, pwr_cr3, boot_count, failsafe, broadcasts, bus)) =
        <(u64, Option<i32>, u8, u16, u32, u32, bool, Option<u32>, Option<u8>)>::arbitrary(&mut u)
    else {
        return;
    };
    let line = StatusLine {
        uptime_ms,
        temperature: temp.map(MilliCelsius),
        source: [Source::None, Source::Broadcast, Source::Obd][usize::from(source % 3)],
        pulse_us,
        pwr_cr3,
        boot_count,
        failsafe,
        broadcasts,
        bus: bus.map(|b| [BusState::Active, BusState::Passive, BusState::Off][usize::from(b % 3)]),
    };
    let printed = format!("{line}\r\n");
    // On the wire the temperature is rounded to 0.1 degC, half away from zero.
    let rounded = temp.map(|m| {
        let m = i64::from(m);
        let tenths = if m >= 0 {
            (m + 50) / 100
        } else {
            (m - 50) / 100
        };
        tenths * 100
    });
    let back = StatusLine::parse(&printed).unwrap_or_else(|e| panic!("{printed:?}: {e}"));
    assert_eq!(
        back.temperature.map(|t| i64::from(t.0)),
        rounded,
        "{printed:?}"
    );
    assert_eq!(
        StatusLine {
            temperature: line.temperature,
            ..back
        },
        line
    );
});
