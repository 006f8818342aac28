//! The bench's own probe-rs path end to end: the rig's `ProbeRsProbe` driver (the code a
//! NUCLEO bench runs) on an in-process SWD probe wired to the emulated STM32H755's debug port.
//! Needs the `emulator` feature and the shipped ELFs (firmware/build.sh, --ldo):
//! `cargo test -p rig --features emulator --test probe_rs_emulated`.
#![cfg(feature = "emulator")]

mod common;

use std::path::PathBuf;

use common::{repo, run, DIRECT_SMPS_ELF, LDO_ELF};
use rig_verify::report::Outcome;

/// The shipped ELF at `rel`; these tests need it (firmware/build.sh builds it).
fn elf(rel: &str) -> PathBuf {
    let p = repo(rel);
    assert!(
        p.is_file(),
        "{} is not built: run firmware/build.sh{} first",
        p.display(),
        if rel.contains("/ldo/") { " --ldo" } else { "" }
    );
    p
}

/// A copy of shipped rig config `base` in a temporary folder, its relative paths made
/// absolute, with `edits` (from, to) applied and `probe.backend = "probe-rs"`.
fn probe_rs_variant(base: &str, edits: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let firmware = format!("{}/", repo("firmware").display());
    let mut text = std::fs::read_to_string(repo(base))
        .expect("rig config")
        .replace("../firmware/", &firmware);
    let mut all = vec![(
        "[probe]\nbackend = \"simulated\"",
        "[probe]\nbackend = \"probe-rs\"",
    )];
    all.extend_from_slice(edits);
    for (from, to) in all {
        if from.starts_with("[probe]") && text.contains("backend = \"probe-rs\"") {
            continue;
        }
        assert!(text.contains(from), "{base} has no {from:?}");
        text = text.replacen(from, to, 1);
    }
    let p = dir.path().join("rig.toml");
    std::fs::write(&p, text).expect("write rig");
    (dir, p)
}

fn scenario(name: &str) -> PathBuf {
    repo(&format!("scenarios/{name}.toml"))
}

fn print_failures(result: &rig_verify::job::RunResult) {
    if let Some(e) = &result.report.error {
        println!("run error: {e}");
    }
    for sc in &result.report.scenarios {
        for st in sc.steps.iter().filter(|s| s.outcome != Outcome::Pass) {
            println!(
                "{}: {} {:?} {:?} {:?}",
                sc.name, st.action, st.outcome, st.message, st.diagnosis
            );
        }
    }
}

#[test]
fn every_shipped_scenario_passes_through_the_real_probe_rs_driver() {
    elf(DIRECT_SMPS_ELF);
    let scenarios: Vec<PathBuf> = [
        "bad_frames",
        "broadcast_basic",
        "obd_only",
        "power_loss",
        "stale_failsafe",
        "supply_configuration",
        "sweep",
    ]
    .iter()
    .map(|s| scenario(s))
    .collect();
    let (result, _reports) = run(&repo("rig-config/emulated-probe-rs.toml"), &scenarios);
    print_failures(&result);
    assert_eq!(result.report.outcome, Outcome::Pass);
    assert_eq!(result.report.scenarios.len(), scenarios.len());
    // Nothing went around the real driver: the rig's probe is probe-rs on the emulated port.
    let rig = result.report.rig.as_ref().expect("rig info");
    let probe = rig
        .instruments
        .iter()
        .find(|i| i.contains("probe"))
        .expect("a probe in the rig info");
    assert!(
        probe.contains("probe-rs in-process SWD probe"),
        "{:?}",
        rig.instruments
    );
    assert!(!probe.contains("simulated ST-LINK"), "{probe}");
    // Power-off is confirmed by the probe's target-voltage reading, and the check says how
    // long the probe's attaches halted the firmware.
    let power_loss = &result.report.scenarios[3];
    let check = &power_loss.steps[0];
    let value = |name: &str| {
        check
            .measurements
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
            .unwrap_or_else(|| panic!("no {name} in {:?}", check.measurements))
    };
    assert!(value("off_command_to_target_below_0v8") < 100.0);
    assert!(value("probe_attach_time") > 0.0);
    assert!(value("probe_halts") >= 1.0);
    let per_attach = value("halt_per_attach");
    println!("the firmware halted {per_attach:.3} ms per probe-rs halt");
    assert!(per_attach > 0.0 && value("firmware_halted_by_probe") > 0.0);
}

/// The expect_supply failure after the LDO ELF's power cycle, on `rig`.
fn ldo_diagnosis(rig: &std::path::Path) -> String {
    let (result, _reports) = run(rig, &[scenario("supply_configuration")]);
    print_failures(&result);
    assert_eq!(result.report.outcome, Outcome::Fail);
    let sc = &result.report.scenarios[0];
    let supply = sc
        .steps
        .iter()
        .filter(|s| s.action == "expect_supply")
        .nth(1)
        .expect("a second expect_supply");
    assert_eq!(supply.outcome, Outcome::Fail);
    supply.diagnosis.clone().expect("diagnosis")
}

#[test]
fn the_ldo_elf_gets_the_same_diagnosis_through_probe_rs_as_through_the_simulated_probe() {
    elf(DIRECT_SMPS_ELF);
    elf(LDO_ELF);
    let simulated = ldo_diagnosis(&repo("rig-config/emulated-ldo.toml"));
    let (_dir, rig) = probe_rs_variant("rig-config/emulated-ldo.toml", &[]);
    let through_probe_rs = ldo_diagnosis(&rig);
    println!("simulated probe: {simulated}\nprobe-rs: {through_probe_rs}");
    for needle in [
        "PWR_CR3",
        "expected supply bits 0x04",
        "selects ldo (0x02)",
        "mass-erase",
    ] {
        assert!(
            through_probe_rs.contains(needle),
            "{needle:?}: {through_probe_rs}"
        );
    }
    // The same words, but for the rig config's path.
    let simulated = simulated.replace(
        &repo("rig-config/emulated-ldo.toml").display().to_string(),
        &rig.display().to_string(),
    );
    assert_eq!(simulated, through_probe_rs);
}

#[test]
fn a_board_with_cm7_boot_disabled_is_diagnosed_through_access_port_3() {
    elf(DIRECT_SMPS_ELF);
    let (_dir, rig) = probe_rs_variant(
        "rig-config/emulated.toml",
        &[(
            "option_bytes = { bcm7 = true, bcm4 = true }",
            "option_bytes = { bcm7 = false, bcm4 = true }",
        )],
    );
    let (result, _reports) = run(&rig, &[scenario("power_loss")]);
    print_failures(&result);
    let text = result
        .report
        .error
        .clone()
        .or_else(|| {
            result.report.scenarios.first().and_then(|s| {
                s.steps
                    .iter()
                    .find_map(|st| st.diagnosis.clone().or(st.message.clone()))
            })
        })
        .expect("an error or a diagnosis");
    assert!(
        text.contains("Cortex-M7 boot disabled (BCM7 = 0)") && text.contains("access port 3"),
        "{text}"
    );
}

fn recover_on(
    rig: &std::path::Path,
    opts: &rig_verify::power_loss::recovery::RecoverOptions,
) -> Vec<String> {
    let _g = common::bench_lock();
    let mut opened = rig::assembly::open_path(rig, false).expect("rig opens");
    let abort = std::sync::atomic::AtomicBool::new(false);
    let r = rig_verify::power_loss::recovery::recover(&mut opened, opts, &abort);
    let lines: Vec<String> = r
        .steps
        .iter()
        .map(|s| {
            format!(
                "{} {}: {}",
                if s.ok { "ok" } else { "FAIL" },
                s.what,
                s.detail
            )
        })
        .collect();
    println!("{}", lines.join("\n"));
    assert_eq!(r.outcome, Outcome::Pass, "{lines:#?}");
    lines
}

/// The probe-rs rig with the LDO build in flash at power-on (the chip locks up and answers
/// nothing), and `edits`; recovered with `rig recover --erase --flash <good ELF>`.
fn recover_locked_board(edits: &[(&str, &str)]) -> Vec<String> {
    let good = elf(DIRECT_SMPS_ELF);
    let ldo = elf(LDO_ELF);
    let preload = format!("preloaded_elf = \"{}\"\n# was: \"", ldo.display());
    let mut all = vec![("preloaded_elf = \"", preload.as_str())];
    all.extend_from_slice(edits);
    let (_dir, rig) = probe_rs_variant("rig-config/emulated-ldo.toml", &all);
    recover_on(
        &rig,
        &rig_verify::power_loss::recovery::RecoverOptions {
            erase: true,
            flash: Some(rig_verify::power_loss::recovery::FlashImage::Elf(good)),
            restore_boot: false,
        },
    )
}

#[test]
fn recover_erase_flash_brings_a_locked_board_back_through_probe_rs() {
    let lines = recover_locked_board(&[]);
    assert!(
        lines.iter().any(|l| l.starts_with("ok mass erase")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("ok power-cycle check")),
        "{lines:#?}"
    );
}

#[test]
fn recover_restores_the_cortex_m7_boot_through_access_port_3() {
    let good = elf(DIRECT_SMPS_ELF);
    let (_dir, rig) = probe_rs_variant(
        "rig-config/emulated.toml",
        &[(
            "option_bytes = { bcm7 = true, bcm4 = true }",
            "option_bytes = { bcm7 = false, bcm4 = true }",
        )],
    );
    let lines = recover_on(
        &rig,
        &rig_verify::power_loss::recovery::RecoverOptions {
            erase: true,
            flash: Some(rig_verify::power_loss::recovery::FlashImage::Elf(good)),
            restore_boot: true,
        },
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ok option bytes") && l.contains("access port 3")),
        "{lines:#?}"
    );
}

#[test]
fn nrst_stays_held_until_the_board_has_power_so_a_slow_supply_cannot_let_the_firmware_latch() {
    // The supply takes 150 ms to come up, longer than settle_ms: the first attach under reset
    // finds no VDD. If NRST is let go then, the firmware runs once VDD arrives and latches LDO
    // (a lock-up that no later attempt gets past).
    let lines =
        recover_locked_board(&[("settle_ms = 20 ", "settle_ms = 20\nsupply_rise_ms = 150 ")]);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ok connect under reset") && l.contains("0x00000006")),
        "{lines:#?}"
    );
}

#[test]
fn a_cn1_powered_bench_recovers_through_a_relay_on_nrst_with_probe_rs() {
    // The probe is powered with the board (off USB while it is off, back 300 ms after power
    // returns): only the relay holds NRST across the power-on, then hands it to the probe.
    let lines = recover_locked_board(&[(
        "[power]\n",
        "[usb]\nstlink_enumeration_ms = 300\n\n[power]\ntopology = \"stlink-usb\"\nrecovery_line = { pin = \"nrst\", channel = 2 }\n",
    )]);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ok power on with NRST held")
                && l.contains("the probe holds NRST")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ok connect under reset") && l.contains("nothing latched yet")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("ok power-cycle check")),
        "{lines:#?}"
    );
}

#[test]
fn rig_flash_downloads_and_verifies_the_shipped_elf_through_probe_rs() {
    let good = elf(DIRECT_SMPS_ELF);
    let _g = common::bench_lock();
    let config = bench_config::RigConfig::load(&repo("rig-config/emulated-probe-rs.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let r = rig::commands::flash::flash(
        &config,
        &good,
        rig::commands::flash::FlashOptions {
            under_reset: false,
            no_power: false,
            no_preflight: false,
        },
        &mut out,
    );
    let text = String::from_utf8_lossy(&out);
    println!("{text}");
    r.unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(
        text.contains("probe: probe-rs in-process SWD probe"),
        "{text}"
    );
    assert!(text.contains("verified"), "{text}");
}

#[test]
fn a_flash_cell_that_no_longer_holds_a_zero_fails_the_download_verify() {
    use rig_instruments::CoreSelect;
    let good = elf(DIRECT_SMPS_ELF);
    let _g = common::bench_lock();
    let config = bench_config::RigConfig::load(&repo("rig-config/emulated-probe-rs.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut board = rig_emu::board::EmulatedBoard::from_elfs(
        config.wiring,
        rig_sim::logic_board::OptionBytes::default(),
        &[&good],
    )
    .expect("board");
    // Byte 0x1000 of the image has bit 0 clear (a Thumb instruction) ... the cell keeps a 1.
    let image = rig_instruments::elf::load_segments(&good).expect("segments");
    let (address, bit) = image
        .iter()
        .flat_map(|s| {
            s.data
                .iter()
                .enumerate()
                .map(move |(i, b)| (s.address + i as u32, *b))
        })
        .skip(0x1000)
        .find_map(|(a, b)| (0..8).find(|k| b & (1 << k) == 0).map(|k| (a, k)))
        .expect("a 0 bit in the image");
    board.stick_flash_bit(address, bit).expect("in flash");
    let bench = rig_sim::SimulatedBench::start_with_target(
        rig::assembly::simulated_bench_config(&config),
        Box::new(board),
    )
    .expect("bench");
    bench.shared.set_power(true);
    let mut probe = rig::assembly::bench_probe(&config, &bench)
        .expect("probe")
        .expect("a probe");
    probe.attach(CoreSelect::Cm7).expect("attach");
    let e = probe
        .flash_elf(&good)
        .expect_err("verify must fail")
        .to_string();
    println!("{e}");
    assert!(e.to_lowercase().contains("verif"), "{e}");
}

/// A bench on the probe-rs rig config with these option bytes, powered, and its probe.
fn bench_with(
    bcm7: bool,
    bcm4: bool,
) -> (
    rig_sim::SimulatedBench,
    Box<dyn rig_instruments::DebugProbe>,
) {
    let good = elf(DIRECT_SMPS_ELF);
    let config = bench_config::RigConfig::load(&repo("rig-config/emulated-probe-rs.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ob = rig_sim::logic_board::OptionBytes::default();
    if !bcm7 {
        ob.optsr &= !stm32h755::flash::OPTSR_BCM7;
    }
    if !bcm4 {
        ob.optsr &= !stm32h755::flash::OPTSR_BCM4;
    }
    let board =
        rig_emu::board::EmulatedBoard::from_elfs(config.wiring, ob, &[&good]).expect("board");
    let mut bench_config = rig::assembly::simulated_bench_config(&config);
    bench_config.option_bytes = ob;
    let bench =
        rig_sim::SimulatedBench::start_with_target(bench_config, Box::new(board)).expect("bench");
    let probe = rig::assembly::bench_probe(&config, &bench)
        .expect("probe")
        .expect("a probe");
    (bench, probe)
}

#[test]
fn attach_under_reset_works_with_either_core_boot_disabled() {
    use rig_instruments::CoreSelect;
    let _g = common::bench_lock();
    for (bcm7, bcm4, core) in [
        (true, false, CoreSelect::Cm7),
        (false, true, CoreSelect::Cm4),
    ] {
        let (bench, mut probe) = bench_with(bcm7, bcm4);
        probe.hold_reset(true).expect("NRST");
        bench.shared.set_power(true);
        let attached = probe.attach_under_reset(core);
        let cr3 = attached
            .as_ref()
            .ok()
            .map(|_| probe.read_u32(stm32h755::supply::PWR_CR3_ADDR));
        let optsr = probe.read_u32(stm32h755::flash::FLASH_OPTSR_CUR);
        println!(
            "BCM7={bcm7} BCM4={bcm4} {core:?}: {attached:?}, PWR_CR3 {cr3:x?}, OPTSR {optsr:x?}"
        );
        attached.unwrap_or_else(|e| panic!("BCM7={bcm7} BCM4={bcm4}: {e}"));
        // The firmware never ran: nothing latched in PWR_CR3.
        if core == CoreSelect::Cm7 {
            assert_eq!(cr3.map(|r| r.ok()), Some(Some(0x06)));
        }
        let optsr = optsr.expect("OPTSR_CUR readable");
        assert_eq!(optsr & stm32h755::flash::OPTSR_BCM7 != 0, bcm7);
        assert_eq!(optsr & stm32h755::flash::OPTSR_BCM4 != 0, bcm4);
        probe.detach();
    }
}

fn probe_config() -> bench_config::ProbeConfig {
    bench_config::RigConfig::load(&repo("rig-config/emulated-probe-rs.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .probe
}

/// The rig's driver on a probe `open` makes.
fn driver_with(
    open: impl Fn() -> Result<probe_rs::probe::Probe, probe_rs::Error> + Send + Sync + 'static,
) -> rig_instruments::drivers::probe_rs::ProbeRsProbe {
    rig_instruments::drivers::probe_rs::ProbeRsProbe::in_process(
        &probe_config(),
        "test probe",
        std::sync::Arc::new(open),
    )
}

#[test]
fn the_driver_reports_an_unpowered_board_a_missing_attach_and_an_unknown_chip() {
    use rig_instruments::{CoreSelect, DebugProbe, ProbeError};
    let _g = common::bench_lock();
    let (bench, mut probe) = bench_with(true, true);
    // Not attached: reads say so.
    assert!(matches!(
        probe.read_u32(0x2000_0000),
        Err(ProbeError::NotAttached { .. })
    ));
    // No supply: the attach fails, and the probe measures 0 V.
    let started = std::time::Instant::now();
    let e = probe
        .attach(CoreSelect::Cm7)
        .expect_err("no power, no attach");
    println!("unpowered: {e} ({:?})", started.elapsed());
    assert_eq!(probe.target_voltage().expect("voltage"), Some(0.0));
    // Powered: NRST held and released through the probe, a reset, a write and a read back.
    bench.shared.set_power(true);
    std::thread::sleep(std::time::Duration::from_millis(20));
    probe.hold_reset(true).expect("NRST low");
    let held = bench
        .shared
        .board()
        .target
        .emulation()
        .expect("emulated")
        .state;
    assert!(held.contains("held in reset"), "{held}");
    probe.hold_reset(false).expect("NRST released");
    probe.attach(CoreSelect::Cm7).expect("attach");
    assert!(probe.last_attach_time().is_some());
    probe.write_u32(0x2400_0100, 0x1234_5678).expect("write");
    assert_eq!(probe.read_u32(0x2400_0100).expect("read"), 0x1234_5678);
    let mut words = [0u8; 8];
    probe
        .read_memory(0x0800_0000, &mut words)
        .expect("read flash");
    assert_ne!(words, [0xFF; 8], "the vector table is there");
    probe.reset().expect("reset");
    probe.detach();
    // An unknown chip name is an error that names probe.chip.
    let mut config = probe_config();
    config.chip = "NOSUCHCHIP".into();
    let shared = bench.shared.clone();
    let mut unknown = rig_instruments::drivers::probe_rs::ProbeRsProbe::in_process(
        &config,
        "test probe",
        std::sync::Arc::new(move || {
            Ok(rig_sim::swd_probe::SwdProbe::probe(
                shared.clone(),
                Default::default(),
            ))
        }),
    );
    let e = unknown
        .attach(CoreSelect::Cm7)
        .expect_err("unknown chip")
        .to_string();
    assert!(e.contains("probe.chip"), "{e}");
    // Dropping the driver while it holds NRST lets go of it.
    probe.hold_reset(true).expect("NRST low");
    drop(probe);
    let after = bench
        .shared
        .board()
        .target
        .emulation()
        .expect("emulated")
        .state;
    assert!(!after.contains("held in reset"), "{after}");
}

#[test]
fn a_probe_that_hangs_panics_or_is_gone_gives_a_bounded_error() {
    use rig_instruments::{CoreSelect, DebugProbe, ProbeError};
    // Gone from USB: target_voltage says so (a NUCLEO's ST-LINK powered with the board).
    let mut gone = driver_with(|| {
        Err(probe_rs::Error::Probe(
            probe_rs::probe::DebugProbeError::ProbeCouldNotBeCreated(
                probe_rs::probe::ProbeCreationError::NotFound,
            ),
        ))
    });
    assert!(matches!(
        gone.target_voltage(),
        Err(ProbeError::Gone { .. })
    ));
    let e = gone.attach(CoreSelect::Cm7).expect_err("gone").to_string();
    assert!(e.contains("no longer on USB"), "{e}");
    // A panic inside probe-rs is an error, not a crash.
    let mut panics = driver_with(|| panic!("probe-rs bug"));
    let e = panics.hold_reset(true).expect_err("panicked").to_string();
    assert!(e.contains("panicked"), "{e}");
    // A call that hangs is cut off at its bound; the probe is unusable afterwards.
    let mut hangs = driver_with(|| {
        std::thread::sleep(std::time::Duration::from_secs(8));
        Err(probe_rs::Error::Other("late".into()))
    });
    let started = std::time::Instant::now();
    let e = hangs.hold_reset(true).expect_err("hangs").to_string();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(7),
        "bounded"
    );
    assert!(e.contains("did not finish within"), "{e}");
    let e = hangs.attach(CoreSelect::Cm7).expect_err("lost").to_string();
    assert!(e.contains("unusable since"), "{e}");
}
