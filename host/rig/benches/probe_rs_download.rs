//! The bench's probe-rs path on the emulated board: how long the rig's `ProbeRsProbe` takes to
//! download and verify the shipped ELF (probe-rs's STM32H7 flash algorithm running on the
//! emulated Cortex-M7, with the flash times the model takes from the datasheet), and how long
//! one attach halts the firmware (probe-rs halts every core at session start).
//! Run: `cargo bench -p rig --features emulator --bench probe_rs_download` (needs the ELF from
//! firmware/build.sh). Aim: 5 s of wall time or less for the ELF and the sector erases it needs.

use std::{path::Path, time::Instant};

use rig_emu::devices::FlashTiming;
use rig_instruments::CoreSelect;

fn fail(what: &str) -> ! {
    eprintln!("probe_rs_download: {what}");
    std::process::exit(2)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let elf = root.join("firmware/target/thumbv7em-none-eabihf/release/firmware");
    if !elf.exists() {
        fail(&format!(
            "{} not built; run firmware/build.sh first",
            elf.display()
        ));
    }
    let config = bench_config::RigConfig::load(&root.join("rig-config/emulated-probe-rs.toml"))
        .unwrap_or_else(|e| fail(&e.to_string()));
    let bench =
        rig::assembly::start_simulated_bench(&config).unwrap_or_else(|e| fail(&e.to_string()));
    bench.shared.set_power(true);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mut probe = match rig::assembly::bench_probe(&config, &bench) {
        Ok(Some(p)) => p,
        Ok(None) => fail("the rig config has no probe"),
        Err(e) => fail(&e.to_string()),
    };
    let stats = || bench.shared.board().target.emulation().unwrap_or_default();

    // One attach, and how long the firmware stood still for it.
    let before = stats();
    let started = Instant::now();
    probe
        .attach(CoreSelect::Cm7)
        .unwrap_or_else(|e| fail(&e.to_string()));
    let attach = started.elapsed();
    probe.detach();
    let after = stats();
    let halts = after.debug_halts - before.debug_halts;
    let halted = after.debug_halted_ms - before.debug_halted_ms;
    println!(
        "probe_rs_download: attach {:.1} ms wall; the firmware was halted {halts} time(s) for {halted:.3} ms of emulated time ({:.3} ms each)",
        attach.as_secs_f64() * 1e3,
        if halts > 0 { halted / halts as f64 } else { 0.0 }
    );

    // Download with verify, and a reset.
    let segments =
        rig_instruments::elf::load_segments(&elf).unwrap_or_else(|e| fail(&e.to_string()));
    let bytes: usize = segments.iter().map(|s| s.data.len()).sum();
    let words = bytes.div_ceil(32);
    let sectors = {
        let mut s: Vec<u32> = segments
            .iter()
            .flat_map(|g| {
                let first = (g.address - 0x0800_0000) / 0x2_0000;
                let last = (g.address + g.data.len() as u32 - 1 - 0x0800_0000) / 0x2_0000;
                first..=last
            })
            .collect();
        s.dedup();
        s.len()
    };
    // probe-rs's stm32h7x_2048 algorithm programs with PSIZE = x8.
    let t = FlashTiming::DATASHEET;
    let flash_s = words as f64 * t.word_program_ps[0] as f64 / 1e12
        + sectors as f64 * t.sector_erase_ps[0] as f64 / 1e12;
    probe
        .attach(CoreSelect::Cm7)
        .unwrap_or_else(|e| fail(&e.to_string()));
    let started = Instant::now();
    probe
        .flash_elf(&elf)
        .unwrap_or_else(|e| fail(&e.to_string()));
    let took = started.elapsed().as_secs_f64();
    probe.detach();
    println!(
        "probe_rs_download: {bytes} bytes ({words} flash words, {sectors} sector(s)) downloaded, verified and reset in {took:.2} s wall; of it {flash_s:.2} s is the flash itself (DS12919 typical x8: {} us per word, {:.1} s per 128 KiB sector); aim <= 5 s: {}",
        t.word_program_ps[0] / 1_000_000,
        t.sector_erase_ps[0] as f64 / 1e12,
        if took <= 5.0 { "met" } else { "MISSED" }
    );
}
