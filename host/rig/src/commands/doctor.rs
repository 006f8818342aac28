//! `rig doctor`: is every instrument of a bench there and answering? Each one is opened and
//! identified on its own, so that one missing device does not hide the state of the others:
//!
//! | instrument | check |
//! |---|---|
//! | power | opened; switched on and given `power.settle_ms` (unless `--no-power`), so that the board can answer the next checks |
//! | can | slcan: opened (bitrate set, channel open) and its `V` version; socketcan: interface opened |
//! | pulse meter | SUMP: reset, ID (`1ALS`) and metadata |
//! | telemetry | one `GAUGE/1` status line within a timeout |
//! | probe | attach to the Cortex-M7, read PWR_CR3 (supply bits against `board.wiring`), PWR_CSR1 and FLASH_OPTSR_CUR (core boot bits against `board.option_bytes`) |
//!
//! On the simulated bench the simulators are started first; on a hardware bench the device
//! paths of the rig config are opened.

use std::{path::Path, process::ExitCode, time::Duration};

use stm32h755::supply::{
    SupplyConfig, PWR_CR3_ADDR, PWR_CR3_POWER_ON_DEFAULT, PWR_CR3_SUPPLY_MASK, PWR_CSR1_ACTVOSRDY,
    PWR_CSR1_ADDR,
};

use crate::assembly::{BenchPorts, BenchResources};
use bench_config::{AnalyzerKind, CanAdapterKind, ProbeBackend, RigConfig, SIM_PORT};
use rig_instruments::drivers::{
    self, probe_rs::ProbeRsProbe, slcan::SlcanAdapter, sump::SumpAnalyzer,
};
use rig_instruments::{CoreSelect, DebugProbe, InstrumentError, ProbeError};
use stm32h755::flash::{FLASH_OPTSR_CUR, OPTSR_BCM4, OPTSR_BCM7};

/// How long `doctor` waits for a status line (the firmware sends several a second).
pub const TELEMETRY_TIMEOUT: Duration = Duration::from_millis(2500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Fail,
    /// Not on this bench (e.g. `probe.backend = "none"`): not a failure.
    Skipped,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Fail => "FAIL",
            Status::Skipped => "skip",
        }
    }
}

/// One line of the doctor's table.
#[derive(Clone, Debug)]
pub struct Row {
    pub instrument: &'static str,
    pub device: String,
    pub status: Status,
    pub detail: String,
}

impl Row {
    fn ok(instrument: &'static str, device: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            instrument,
            device: device.into(),
            status: Status::Ok,
            detail: detail.into(),
        }
    }
    fn fail(
        instrument: &'static str,
        device: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            instrument,
            device: device.into(),
            status: Status::Fail,
            detail: detail.into(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct DoctorOptions {
    /// Switch the supply on (and wait `power.settle_ms`) before checking the board side.
    pub power_on: bool,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        Self { power_on: true }
    }
}

/// The device a serial instrument is opened at: the config's path, or the simulated bench's
/// pseudo-terminal for `"sim"`.
fn device(configured: &str, simulated: &str) -> String {
    if configured == SIM_PORT {
        simulated.to_string()
    } else {
        configured.to_string()
    }
}

/// Checks every instrument of the bench `config` describes.
pub fn doctor(config: &RigConfig, opts: DoctorOptions) -> Vec<Row> {
    let mut rows = Vec::new();
    // The simulated bench (kept alive until the checks are done), or the config's device paths.
    let resources = match BenchResources::start(config) {
        Ok(r) => r,
        Err(e) => {
            let (what, place) = match config.backend {
                bench_config::BoardBackend::Simulated => ("simulated bench", "(in process)"),
                bench_config::BoardBackend::Hardware => ("bench", config.path.as_str()),
            };
            rows.push(Row::fail(what, place, format!("cannot start: {e}")));
            return rows;
        }
    };
    if resources.is_simulated() {
        rows.push(Row::ok(
            "simulated bench",
            "(in process)",
            format!(
                "{} ({} wiring) and instrument simulators on pseudo-terminals started",
                // The bench starts the emulated board only for probe-rs (see BenchResources).
                if config.probe.backend == ProbeBackend::ProbeRs {
                    "emulated board running the ELF"
                } else {
                    "board model"
                },
                config.wiring.name()
            ),
        ));
    }
    let ports = resources.ports.clone();
    rows.push(check_power(config, &ports, opts));
    rows.push(check_can(config, &ports));
    rows.push(check_pulse_meter(config, &ports));
    rows.push(check_telemetry(config, &ports));
    rows.push(check_probe(config, &resources));
    drop(resources);
    rows
}

fn check_power(config: &RigConfig, ports: &BenchPorts, opts: DoctorOptions) -> Row {
    let p = &config.power;
    let port = ports.relay.clone();
    let shown = match (&p.port, &p.on_command, &p.sysfs_port) {
        (Some(configured), _, _) => device(configured, &port),
        (None, Some(argv), _) => argv.join(" "),
        (None, None, Some(sysfs)) => sysfs.clone(),
        (None, None, None) => "(none)".into(),
    };
    let mut switch = match drivers::open_power(p, &port) {
        Ok(s) => s,
        Err(e) => return Row::fail("power", shown, e.to_string()),
    };
    let name = switch.describe();
    if !opts.power_on {
        return Row::ok(
            "power",
            shown,
            format!("{name}: opened (left as it is: --no-power)"),
        );
    }
    match switch.set_power(true) {
        Ok(()) => {
            std::thread::sleep(Duration::from_millis(p.settle_ms));
            Row::ok(
                "power",
                shown,
                format!(
                    "{name}: opened, switched on, waited power.settle_ms = {} ms",
                    p.settle_ms
                ),
            )
        }
        Err(e) => Row::fail("power", shown, format!("{name}: cannot switch on: {e}")),
    }
}

fn check_can(config: &RigConfig, ports: &BenchPorts) -> Row {
    let can = &config.can;
    match can.adapter {
        CanAdapterKind::Slcan => {
            let port = match &can.port {
                Some(configured) => device(configured, &ports.slcan),
                None => return Row::fail("can", "(none)", "can.port is not set"),
            };
            match SlcanAdapter::open(&port, can.bitrate, can.s7_is_750k) {
                Ok(mut adapter) => {
                    let version = match adapter.version() {
                        Ok(v) => format!("version {v:?}"),
                        Err(e) => format!("no version ({e})"),
                    };
                    Row::ok(
                        "can",
                        port,
                        format!("slcan: channel open at {} bit/s, {version}", can.bitrate),
                    )
                }
                Err(e) => Row::fail("can", port, format!("slcan: {e}")),
            }
        }
        CanAdapterKind::Socketcan => {
            let interface = can.interface.clone().unwrap_or_default();
            match drivers::open_can(can, &interface) {
                Ok(a) => Row::ok("can", interface, format!("{}: opened", a.describe())),
                Err(e) => Row::fail("can", interface, e.to_string()),
            }
        }
    }
}

fn check_pulse_meter(config: &RigConfig, ports: &BenchPorts) -> Row {
    let pm = &config.pulse_meter;
    let port = device(&pm.port, &ports.sump);
    match pm.analyzer {
        AnalyzerKind::Sump => match SumpAnalyzer::open(&port, pm.channel, pm.sample_rate_hz) {
            Ok(a) => {
                let m = &a.metadata;
                let mut detail = format!("SUMP ID {:?}", a.id);
                if let Some(n) = &m.name {
                    detail.push_str(&format!(", name {n:?}"));
                }
                if let Some(p) = m.probes {
                    detail.push_str(&format!(", {p} channels"));
                }
                if let Some(mem) = m.sample_memory {
                    detail.push_str(&format!(", {mem} bytes sample memory"));
                }
                if let Some(r) = m.max_sample_rate {
                    detail.push_str(&format!(", max {r} Hz"));
                }
                detail.push_str(&format!(
                    "; servo on channel {} at {} Hz",
                    pm.channel, pm.sample_rate_hz
                ));
                Row::ok("pulse meter", port, detail)
            }
            Err(e) => Row::fail("pulse meter", port, e.to_string()),
        },
    }
}

fn check_telemetry(config: &RigConfig, ports: &BenchPorts) -> Row {
    let t = &config.telemetry;
    let port = device(&t.port, &ports.telemetry);
    let mut tele = match drivers::open_telemetry(t, &port) {
        Ok(x) => x,
        Err(e) => return Row::fail("telemetry", port, e.to_string()),
    };
    match tele.next_status(TELEMETRY_TIMEOUT) {
        Ok(line) => Row::ok("telemetry", port, format!("status line: {line}")),
        Err(e @ InstrumentError::Timeout { .. }) => Row::fail(
            "telemetry",
            port,
            format!("{e}: is the board powered and running the gauge firmware, and telemetry.baud ({}) its UART speed?", t.baud),
        ),
        Err(e) => Row::fail("telemetry", port, e.to_string()),
    }
}

/// The supply bits of PWR_CR3 against the board's wiring: (ok, text).
pub fn judge_supply(cr3: u32, csr1: u32, wiring: SupplyConfig) -> (bool, String) {
    let bits = cr3 & PWR_CR3_SUPPLY_MASK;
    let expected = wiring.cr3_bits();
    let actvosrdy = u8::from(csr1 & PWR_CSR1_ACTVOSRDY != 0);
    let found_name = SupplyConfig::from_cr3(cr3)
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| "no valid configuration".into());
    if bits == expected {
        (
            true,
            format!("PWR_CR3 = {cr3:#010x}: supply bits {bits:#04x} ({found_name}) match board.wiring ({}); ACTVOSRDY = {actvosrdy}", wiring.name()),
        )
    } else if bits == PWR_CR3_POWER_ON_DEFAULT {
        (
            true,
            format!("PWR_CR3 = {cr3:#010x}: supply not chosen yet since power-on (bits {bits:#04x}; board.wiring needs {expected:#04x}, {}); ACTVOSRDY = {actvosrdy}", wiring.name()),
        )
    } else {
        (
            false,
            format!("PWR_CR3 = {cr3:#010x}: supply bits {bits:#04x} ({found_name}) but board.wiring is {} ({expected:#04x}): the firmware selects the wrong supply and the board locks up after the next power cycle; ACTVOSRDY = {actvosrdy}", wiring.name()),
        )
    }
}

/// BCM7/BCM4 of FLASH_OPTSR_CUR against `board.option_bytes`: (ok, text).
pub fn judge_option_bytes(optsr: u32, bcm7: bool, bcm4: bool) -> (bool, String) {
    let has7 = optsr & OPTSR_BCM7 != 0;
    let has4 = optsr & OPTSR_BCM4 != 0;
    let ok = has7 == bcm7 && has4 == bcm4;
    let text = format!(
        "FLASH_OPTSR_CUR = {optsr:#010x}: BCM7 = {}, BCM4 = {} (expected {}, {})",
        u8::from(has7),
        u8::from(has4),
        u8::from(bcm7),
        u8::from(bcm4)
    );
    (ok, text)
}

fn check_probe(config: &RigConfig, resources: &BenchResources) -> Row {
    let mut notice = None;
    let mut probe: Box<dyn DebugProbe> = match (config.probe.backend, resources.bench_probe(config))
    {
        (ProbeBackend::None, _) => {
            return Row {
                instrument: "probe",
                device: "(none)".into(),
                status: Status::Skipped,
                detail: "probe.backend = \"none\": no probe on this bench".into(),
            }
        }
        (_, Some(Ok(Some(p)))) => p,
        (_, Some(Ok(None))) => {
            return Row::fail("probe", "(none)", "the simulated bench has no probe")
        }
        (_, Some(Err(e))) => return Row::fail("probe", "simulated bench", e.to_string()),
        (ProbeBackend::Simulated, None) => {
            return Row::fail(
                "probe",
                "simulated",
                "probe.backend = \"simulated\" needs the simulated bench",
            )
        }
        (ProbeBackend::ProbeRs, None) => match ProbeRsProbe::open(&config.probe) {
            Ok(p) => {
                notice = p.notice.clone();
                Box::new(p)
            }
            Err(e) => {
                let shown = config
                    .probe
                    .serial
                    .as_deref()
                    .map(|s| format!("probe-rs serial {s}"))
                    .unwrap_or_else(|| "probe-rs".into());
                return Row::fail("probe", shown, e.to_string());
            }
        },
    };
    let name = probe.describe();
    let attach_timeout = Duration::from_millis(config.probe.attach_timeout_ms);
    if let Err(e) =
        rig_instruments::attach_with_retry(probe.as_mut(), CoreSelect::Cm7, attach_timeout)
    {
        return Row::fail(
            "probe",
            name,
            format!("cannot attach to the Cortex-M7 within {attach_timeout:?}: {e}"),
        );
    }
    let reads = (|| -> Result<(u32, u32, u32), ProbeError> {
        Ok((
            probe.read_u32(PWR_CR3_ADDR)?,
            probe.read_u32(PWR_CSR1_ADDR)?,
            probe.read_u32(FLASH_OPTSR_CUR)?,
        ))
    })();
    probe.detach();
    let (cr3, csr1, optsr) = match reads {
        Ok(r) => r,
        Err(e) => return Row::fail("probe", name, format!("attached to the Cortex-M7 but {e}")),
    };
    let (supply_ok, supply) = judge_supply(cr3, csr1, config.wiring);
    let (ob_ok, ob) = judge_option_bytes(optsr, config.option_bytes.bcm7, config.option_bytes.bcm4);
    let mut detail = format!("Cortex-M7 attached; {supply}; {ob}");
    if let Some(n) = notice {
        detail.push_str(&format!("; NOTE: {n}"));
    }
    Row {
        instrument: "probe",
        device: name,
        status: if supply_ok && ob_ok {
            Status::Ok
        } else {
            Status::Fail
        },
        detail,
    }
}

/// The table.
pub fn render(rows: &[Row]) -> String {
    let w_inst = rows
        .iter()
        .map(|r| r.instrument.len())
        .chain(["instrument".len()])
        .max()
        .unwrap_or(10);
    let w_dev = rows
        .iter()
        .map(|r| r.device.len())
        .chain(["device".len()])
        .max()
        .unwrap_or(6);
    let mut out = format!(
        "{:<w_inst$}  {:<w_dev$}  {:<6}  detail\n",
        "instrument", "device", "status"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<w_inst$}  {:<w_dev$}  {:<6}  {}\n",
            r.instrument,
            r.device,
            r.status.label(),
            r.detail
        ));
    }
    out
}

/// Whether the bench is fit: no row failed.
pub fn all_ok(rows: &[Row]) -> bool {
    rows.iter().all(|r| r.status != Status::Fail)
}

/// `rig doctor`: 0 when every instrument is fine, 1 when one is not, 2 when the rig config
/// cannot be read.
pub fn cli(rig: &Path, opts: DoctorOptions) -> ExitCode {
    let _interrupt = super::signals::install("the doctor's checks");
    let config = match RigConfig::load(rig) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: rig config: {e}");
            return ExitCode::from(2);
        }
    };
    println!("rig: {} ({})", config.name, config.path);
    let rows = doctor(&config, opts);
    print!("{}", render(&rows));
    let failed = rows.iter().filter(|r| r.status == Status::Fail).count();
    if failed == 0 {
        println!("all instruments ok");
        ExitCode::SUCCESS
    } else {
        println!("{failed} of {} checks failed", rows.len());
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supply_bits_are_judged_against_the_wiring() {
        let smps = SupplyConfig::from_name("direct-smps").expect("direct-smps");
        let (ok, text) = judge_supply(0x0000_0004, PWR_CSR1_ACTVOSRDY, smps);
        assert!(ok, "{text}");
        assert!(text.contains("match board.wiring (direct-smps)"), "{text}");
        assert!(text.contains("ACTVOSRDY = 1"), "{text}");
        let (ok, text) = judge_supply(0x0000_0002, 0, smps);
        assert!(!ok, "{text}");
        assert!(text.contains("0x02"), "{text}");
        assert!(text.contains("locks up"), "{text}");
        let (ok, text) = judge_supply(PWR_CR3_POWER_ON_DEFAULT, 0, smps);
        assert!(ok, "{text}");
        assert!(text.contains("not chosen yet"), "{text}");
    }

    #[test]
    fn option_bytes_are_judged_against_the_config() {
        let both = OPTSR_BCM7 | OPTSR_BCM4 | 0xAA00;
        assert!(judge_option_bytes(both, true, true).0);
        let (ok, text) = judge_option_bytes(OPTSR_BCM4 | 0xAA00, true, true);
        assert!(!ok);
        assert!(text.contains("BCM7 = 0"), "{text}");
    }

    #[test]
    fn table_has_one_line_per_row_and_failures_count() {
        let rows = vec![
            Row::ok("power", "/dev/a", "fine"),
            Row::fail(
                "can",
                "/dev/serial/by-id/usb-missing-adapter",
                "cannot open",
            ),
        ];
        let text = render(&rows);
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().nth(2).is_some_and(
            |l| l.contains("FAIL") && l.contains("/dev/serial/by-id/usb-missing-adapter")
        ));
        assert!(!all_ok(&rows));
        assert!(all_ok(&rows[..1]));
    }
}
