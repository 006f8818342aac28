//! `rig preflight`: the shipped board ELFs and hand-assembled Thumb programs on the emulated
//! STM32H755 Cortex-M7. Needs the `emulator` feature (cmake + libclang-dev to build unicorn):
//! `cargo test -p rig --features emulator --test preflight`.
#![cfg(feature = "emulator")]

mod common;

use std::{path::PathBuf, process::Command, time::Duration};

use common::{repo, shipped, DIRECT_SMPS_ELF, LDO_ELF};
use gauge_logic::supply::SupplyConfig;
use rig_emu::{
    machine::{self, Firmware},
    preflight::preflight,
    Board, Finding, Limits, Stop,
};

fn sim_board() -> Board {
    match Board::resolve(&repo("rig-config/sim.toml").display().to_string()) {
        Ok(b) => b,
        Err(e) => panic!("rig-config/sim.toml: {e}"),
    }
}

// ---- a tiny Thumb assembler and ELF writer for crafted firmware ------------------------------

const FLASH: u32 = 0x0800_0000;
const RCC_CR: u32 = 0x5802_4400;

/// Thumb code placed right after an 8-byte vector table at 0x0800_0000.
#[derive(Default)]
struct Thumb {
    h: Vec<u16>,
}

impl Thumb {
    /// Address of the next instruction.
    fn here(&self) -> u32 {
        FLASH + 8 + 2 * self.h.len() as u32
    }
    fn movw_movt(&mut self, top: u16, rd: u16, imm: u16) {
        let (imm4, i, imm3, imm8) = (imm >> 12, (imm >> 11) & 1, (imm >> 8) & 7, imm & 0xFF);
        self.h.push(top | (i << 10) | imm4);
        self.h.push((imm3 << 12) | (rd << 8) | imm8);
    }
    /// movw rd, #lo; movt rd, #hi
    fn mov32(&mut self, rd: u16, value: u32) {
        self.movw_movt(0xF240, rd, value as u16);
        self.movw_movt(0xF2C0, rd, (value >> 16) as u16);
    }
    fn ldr(&mut self, rt: u16, rn: u16) {
        self.h.push(0x6800 | (rn << 3) | rt);
    }
    fn str(&mut self, rt: u16, rn: u16) {
        self.h.push(0x6000 | (rn << 3) | rt);
    }
    fn lsls(&mut self, rd: u16, rm: u16, imm: u16) {
        self.h.push((imm << 6) | (rm << 3) | rd);
    }
    fn subs1(&mut self, rdn: u16) {
        self.h.push(0x3801 | (rdn << 8));
    }
    /// b<cond> back to `target` (cond: 1 NE, 5 PL).
    fn b_cond(&mut self, cond: u16, target: u32) {
        let off = (target as i64 - (self.here() as i64 + 4)) / 2;
        self.h.push(0xD000 | (cond << 8) | (off as i8 as u8 as u16));
    }
    fn wfi(&mut self) {
        self.h.push(0xBF30);
    }
    fn b_self(&mut self) {
        self.h.push(0xE7FE);
    }
    /// Vector table (SP in AXI SRAM, reset = first instruction) + code.
    fn image(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0x2400_1000_u32.to_le_bytes());
        out.extend_from_slice(&((FLASH + 8) | 1).to_le_bytes());
        for h in &self.h {
            out.extend_from_slice(&h.to_le_bytes());
        }
        out
    }
}

/// A minimal ELF32 (ARM, EABI5 hard-float) with one PT_LOAD at 0x0800_0000 and function
/// symbols (name, start address, size).
fn elf(image: &[u8], functions: &[(&str, u32, u32)]) -> Vec<u8> {
    fn u16le(v: &mut Vec<u8>, x: u16) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    fn u32le(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    let text_off = 0x100_u32;
    let mut strtab = vec![0u8];
    let mut symtab = vec![0u8; 16];
    for (name, addr, size) in functions {
        let name_off = strtab.len() as u32;
        strtab.extend_from_slice(name.as_bytes());
        strtab.push(0);
        u32le(&mut symtab, name_off);
        u32le(&mut symtab, addr | 1);
        u32le(&mut symtab, *size);
        symtab.push(0x12); // GLOBAL FUNC
        symtab.push(0);
        u16le(&mut symtab, 1); // .text
    }
    let shstrtab = b"\0.text\0.symtab\0.strtab\0.shstrtab\0".to_vec();
    let sym_off = text_off + image.len() as u32;
    let sym_off = (sym_off + 3) & !3;
    let str_off = sym_off + symtab.len() as u32;
    let shstr_off = str_off + strtab.len() as u32;
    let sh_off = (shstr_off + shstrtab.len() as u32 + 3) & !3;

    let mut f = Vec::new();
    f.extend_from_slice(&[0x7F, b'E', b'L', b'F', 1, 1, 1, 0]);
    f.extend_from_slice(&[0; 8]);
    u16le(&mut f, 2); // ET_EXEC
    u16le(&mut f, 40); // EM_ARM
    u32le(&mut f, 1);
    u32le(&mut f, (FLASH + 8) | 1); // entry
    u32le(&mut f, 52); // phoff
    u32le(&mut f, sh_off);
    u32le(&mut f, 0x0500_0400); // EABI5, hard float
    u16le(&mut f, 52);
    u16le(&mut f, 32);
    u16le(&mut f, 1);
    u16le(&mut f, 40);
    u16le(&mut f, 5);
    u16le(&mut f, 4);
    // PT_LOAD
    for x in [
        1,
        text_off,
        FLASH,
        FLASH,
        image.len() as u32,
        image.len() as u32,
        5,
        4,
    ] {
        u32le(&mut f, x);
    }
    f.resize(text_off as usize, 0);
    f.extend_from_slice(image);
    f.resize(sym_off as usize, 0);
    f.extend_from_slice(&symtab);
    f.extend_from_slice(&strtab);
    f.extend_from_slice(&shstrtab);
    f.resize(sh_off as usize, 0);
    // Section headers: name, type, flags, addr, offset, size, link, info, align, entsize.
    let sections: [[u32; 10]; 5] = [
        [0; 10],
        [1, 1, 6, FLASH, text_off, image.len() as u32, 0, 0, 4, 0],
        [7, 2, 0, 0, sym_off, symtab.len() as u32, 3, 1, 4, 16],
        [15, 3, 0, 0, str_off, strtab.len() as u32, 0, 0, 1, 0],
        [23, 3, 0, 0, shstr_off, shstrtab.len() as u32, 0, 0, 1, 0],
    ];
    for s in sections {
        for x in s {
            u32le(&mut f, x);
        }
    }
    f
}

fn write_elf(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    if let Err(e) = std::fs::write(&p, bytes) {
        panic!("write {}: {e}", p.display());
    }
    p
}

fn run_crafted(code: &Thumb, functions: &[(&str, u32, u32)], wiring: SupplyConfig) -> machine::Run {
    let bytes = elf(&code.image(), functions);
    let fw = match Firmware::parse(&bytes) {
        Ok(f) => f,
        Err(e) => panic!("crafted ELF: {e}"),
    };
    match machine::run(&fw, wiring, &Limits::default()) {
        Ok(r) => r,
        Err(e) => panic!("emulator: {e}"),
    }
}

/// Polls RCC_CR.HSERDY; with `enable`, sets HSEON first.
fn hse_poll(enable: bool) -> (Thumb, u32, u32) {
    let mut t = Thumb::default();
    let start = t.here();
    t.mov32(0, RCC_CR);
    if enable {
        t.mov32(1, 1 << 16);
        t.str(1, 0);
    }
    let lp = t.here();
    t.ldr(1, 0);
    t.lsls(1, 1, 14); // HSERDY (bit 17) -> N
    t.b_cond(5, lp); // bpl
    t.wfi();
    t.b_self();
    let end = t.here();
    (t, start, end - start)
}

// ---- the shipped ELFs ------------------------------------------------------------------------

#[test]
fn shipped_direct_smps_elf_boots_to_idle_on_the_sim_rig() {
    let Some(elf) = shipped(DIRECT_SMPS_ELF) else {
        return;
    };
    let board = sim_board();
    assert_eq!(board.wiring, SupplyConfig::DirectSmps);
    let report = match preflight(&elf, &board, &Limits::default()) {
        Ok(r) => r,
        Err(e) => panic!("preflight: {e}"),
    };
    let run = &report.run;
    println!(
        "shipped ELF: idle after {} instructions in {:.1} ms ({:.2} M instructions/s, incl. translation)",
        run.instructions,
        run.elapsed.as_secs_f64() * 1e3,
        run.instructions_per_second() / 1e6
    );
    assert!(report.passed(), "findings: {:?}", report.findings);
    assert!(
        matches!(run.stop, Stop::Idle { .. }),
        "stop: {:?}",
        run.stop
    );
    // The executor's idle is a WFE inside embassy's thread-mode executor.
    let idle = report.describe(run.stop.pc());
    assert!(idle.contains("embassy_executor"), "idle at {idle}");
    // embassy's init writes PWR_CR3 exactly once, with Direct SMPS, before idle.
    let writes = &run.peripherals.cr3_writes;
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].supply_bits(), 0x04);
    assert!(writes[0].latched);
    assert!(run.peripherals.option_writes.is_empty());
    assert!(
        run.instructions > 5_000,
        "{} instructions",
        run.instructions
    );
    let text = report.summary(false).join("\n");
    assert!(text.contains("reached idle"), "{text}");
    assert!(text.contains("direct-smps"), "{text}");
}

#[test]
fn shipped_ldo_elf_is_refused_with_the_pwr_cr3_values() {
    let Some(elf) = shipped(LDO_ELF) else {
        return;
    };
    let report = match preflight(&elf, &sim_board(), &Limits::default()) {
        Ok(r) => r,
        Err(e) => panic!("preflight: {e}"),
    };
    assert!(!report.passed());
    let first = report.findings[0].to_string();
    println!("{first}");
    assert!(
        matches!(report.findings[0], Finding::SupplyMismatch { .. }),
        "{first}"
    );
    for needle in ["PWR_CR3", "expected 0x04 (direct-smps)", "found 0x02 (ldo)"] {
        assert!(first.contains(needle), "{needle:?} not in: {first}");
    }
    // ...and, as on the chip, embassy then waits forever for valid voltage levels.
    let Some(Finding::NoIdle { stop, register, .. }) = report.findings.get(1) else {
        panic!("no NoIdle finding: {:?}", report.findings);
    };
    let Stop::Spinning(p) = stop else {
        panic!("stop: {stop:?}");
    };
    assert_eq!(p.address, 0x5802_4804);
    assert_eq!(p.value & (1 << 13), 0, "ACTVOSRDY must read 0");
    assert_eq!(register.as_deref(), Some("PWR_CSR1"));
    let second = report.findings[1].to_string();
    assert!(second.contains("0x58024804"), "{second}");
}

#[test]
fn direct_smps_elf_is_refused_on_an_ldo_wired_board() {
    let Some(elf) = shipped(DIRECT_SMPS_ELF) else {
        return;
    };
    let board = Board {
        name: "LDO-WIRED".into(),
        wiring: SupplyConfig::Ldo,
        source: "test".into(),
    };
    let report = match preflight(&elf, &board, &Limits::default()) {
        Ok(r) => r,
        Err(e) => panic!("preflight: {e}"),
    };
    let text = report.findings[0].to_string();
    assert!(text.contains("expected 0x02 (ldo)"), "{text}");
    assert!(text.contains("found 0x04 (direct-smps)"), "{text}");
}

// ---- crafted programs ------------------------------------------------------------------------

#[test]
fn a_ready_bit_that_never_comes_is_reported_with_register_pc_and_function() {
    let (code, start, len) = hse_poll(false);
    let run = run_crafted(
        &code,
        &[("wait_for_hse", start, len)],
        SupplyConfig::DirectSmps,
    );
    let Stop::Spinning(p) = &run.stop else {
        panic!("stop: {:?}", run.stop);
    };
    assert_eq!(p.address, RCC_CR);
    assert_eq!(p.value & (1 << 17), 0);
    assert!(
        (start..start + len).contains(&p.read_pc),
        "read at {:#x}",
        p.read_pc
    );
    assert!(
        p.pc_hi - p.pc_lo <= 8,
        "loop {:#x}..{:#x}",
        p.pc_lo,
        p.pc_hi
    );
    assert_eq!(p.reads, Limits::default().spin_reads);

    // Through preflight's judgement: the message names the register, its address, the PC and
    // the function symbol.
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let path = write_elf(
        &dir,
        "hse.elf",
        &elf(&code.image(), &[("wait_for_hse", start, len)]),
    );
    let board = Board::named("nucleo-h755zi-q").unwrap_or_else(|| panic!("named board"));
    let report = match preflight(&path, &board, &Limits::default()) {
        Ok(r) => r,
        Err(e) => panic!("preflight: {e}"),
    };
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    let text = report.findings[0].to_string();
    println!("{text}");
    for needle in [
        "RCC_CR",
        "0x58024400",
        "wait_for_hse",
        &format!("{:#010x}", p.read_pc),
    ] {
        assert!(text.contains(needle), "{needle:?} not in: {text}");
    }
}

#[test]
fn the_same_poll_finishes_once_hseon_is_set() {
    let (code, start, len) = hse_poll(true);
    let run = run_crafted(
        &code,
        &[("start_hse", start, len)],
        SupplyConfig::DirectSmps,
    );
    assert!(
        matches!(run.stop, Stop::Idle { wfe: false, .. }),
        "stop: {:?}",
        run.stop
    );
    // movw/movt x2, str, ldr, lsls, bpl (once), then the WFI.
    assert_eq!(run.instructions, 8);
}

#[test]
fn option_bytes_that_disable_cm7_boot_are_refused() {
    let mut t = Thumb::default();
    let start = t.here();
    t.mov32(0, 0x5200_2008); // FLASH_OPTKEYR
    t.mov32(1, 0x0819_2A3B);
    t.str(1, 0);
    t.mov32(1, 0x4C5D_6E7F);
    t.str(1, 0);
    t.mov32(0, 0x5200_2020); // FLASH_OPTSR_PRG: out-of-box value with BCM7 cleared
    t.mov32(1, 0x0BC6_AAF0 & !(1 << 23));
    t.str(1, 0);
    t.mov32(0, 0x5200_2018); // FLASH_OPTCR: OPTSTART
    t.mov32(1, 1 << 1);
    t.str(1, 0);
    t.wfi();
    let len = t.here() - start;
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let path = write_elf(
        &dir,
        "bcm7.elf",
        &elf(&t.image(), &[("set_options", start, len)]),
    );
    let board = sim_board();
    let report = match preflight(&path, &board, &Limits::default()) {
        Ok(r) => r,
        Err(e) => panic!("preflight: {e}"),
    };
    assert!(report.run.stop.reached_idle(), "{:?}", report.run.stop);
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    let Finding::Cm7BootDisabled { start: s, .. } = &report.findings[0] else {
        panic!("{:?}", report.findings);
    };
    assert_eq!(s.optsr & (1 << 23), 0);
    assert!(s.unlocked);
    let text = report.findings[0].to_string();
    assert!(text.contains("BCM7 = 0"), "{text}");
    assert!(text.contains("set_options"), "{text}");
    // The same writes without the option keys are ignored by the chip: no finding.
    let mut locked = Thumb::default();
    locked.mov32(0, 0x5200_2020);
    locked.mov32(1, 0x0BC6_AAF0 & !(1 << 23));
    locked.str(1, 0);
    locked.mov32(0, 0x5200_2018);
    locked.mov32(1, 1 << 1);
    locked.str(1, 0);
    locked.wfi();
    let run = run_crafted(&locked, &[], SupplyConfig::DirectSmps);
    assert_eq!(run.peripherals.option_starts.len(), 1);
    assert!(!run.peripherals.option_starts[0].disables_cm7_boot());
}

#[test]
fn an_endless_branch_to_self_and_the_instruction_limit_are_bounded() {
    let mut t = Thumb::default();
    t.b_self();
    let run = run_crafted(&t, &[], SupplyConfig::DirectSmps);
    assert!(
        matches!(run.stop, Stop::BranchToSelf { pc } if pc == FLASH + 8),
        "{:?}",
        run.stop
    );

    // A countdown longer than the instruction limit stops at the limit.
    let mut t = Thumb::default();
    t.mov32(0, 1_000_000);
    let lp = t.here();
    t.subs1(0);
    t.b_cond(1, lp);
    t.wfi();
    let fw = match Firmware::parse(&elf(&t.image(), &[])) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    let limits = Limits {
        max_instructions: 10_000,
        ..Limits::default()
    };
    let run = match machine::run(&fw, SupplyConfig::DirectSmps, &limits) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert!(
        matches!(run.stop, Stop::InstructionLimit { poll: None, .. }),
        "{:?}",
        run.stop
    );
    assert_eq!(run.instructions, 10_000);
}

#[test]
fn emulation_speed() {
    // 2 x 5M instructions of countdown, no peripheral access.
    let mut t = Thumb::default();
    t.mov32(0, 5_000_000);
    let lp = t.here();
    t.subs1(0);
    t.b_cond(1, lp);
    t.wfi();
    let fw = match Firmware::parse(&elf(&t.image(), &[])) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    let limits = Limits {
        wall_clock: Duration::from_secs(60),
        ..Limits::default()
    };
    let run = match machine::run(&fw, SupplyConfig::DirectSmps, &limits) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert!(run.stop.reached_idle(), "{:?}", run.stop);
    assert_eq!(run.instructions, 2 + 2 * 5_000_000);
    println!(
        "emulation speed: {} instructions in {:.2} s = {:.1} M instructions/s",
        run.instructions,
        run.elapsed.as_secs_f64(),
        run.instructions_per_second() / 1e6
    );
    // A polling loop (MMIO read per iteration) until the spin detector fires.
    let (code, start, len) = hse_poll(false);
    let run = run_crafted(
        &code,
        &[("wait_for_hse", start, len)],
        SupplyConfig::DirectSmps,
    );
    println!(
        "polling loop: {} instructions ({} MMIO reads) in {:.1} ms = {:.1} M instructions/s",
        run.instructions,
        Limits::default().spin_reads,
        run.elapsed.as_secs_f64() * 1e3,
        run.instructions_per_second() / 1e6
    );
}

#[test]
fn flash_gate_refuses_the_ldo_elf_and_passes_the_direct_smps_one() {
    let (Some(direct), Some(ldo)) = (shipped(DIRECT_SMPS_ELF), shipped(LDO_ELF)) else {
        return;
    };
    let config = match bench_config::RigConfig::load(&repo("rig-config/sim.toml")) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    match rig_emu::preflight::gate(&config, &direct) {
        Ok(line) => assert!(line.contains("0x04 (direct-smps)"), "{line}"),
        Err(e) => panic!("direct-smps ELF refused: {e}"),
    }
    match rig_emu::preflight::gate(&config, &ldo) {
        Ok(line) => panic!("LDO ELF passed: {line}"),
        Err(e) => {
            assert!(e.contains("PWR_CR3"), "{e}");
            assert!(e.contains("--no-preflight"), "{e}");
        }
    }
}

// ---- the command ---------------------------------------------------------------------------

fn rig(args: &[&str]) -> (i32, String) {
    let out = match Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(args)
        .current_dir(repo(""))
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("run rig: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn command_exit_codes() {
    if let Some(elf) = shipped(DIRECT_SMPS_ELF) {
        let elf = elf.display().to_string();
        let (code, text) = rig(&["preflight", "--board", "rig-config/sim.toml", &elf]);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("preflight: ok"), "{text}");
        assert!(text.contains("PWR_CR3 writes: 1"), "{text}");
        let (code, text) = rig(&["preflight", "--board", "nucleo-h755zi-q", &elf]);
        assert_eq!(code, 0, "{text}");
    }
    if let Some(elf) = shipped(LDO_ELF) {
        let (code, text) = rig(&[
            "preflight",
            "--board",
            "rig-config/sim.toml",
            &elf.display().to_string(),
        ]);
        assert_eq!(code, 1, "{text}");
        assert!(text.contains("refused: PWR_CR3"), "{text}");
    }
    let (code, text) = rig(&["preflight", "--board", "nucleo-h755zi-q", "no/such.elf"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no/such.elf"), "{text}");
    // Not an Arm ELF: this test binary itself.
    let me = match std::env::current_exe() {
        Ok(p) => p.display().to_string(),
        Err(e) => panic!("{e}"),
    };
    let (code, text) = rig(&["preflight", "--board", "nucleo-h755zi-q", &me]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("not 32-bit Arm"), "{text}");
    let (code, text) = rig(&["preflight", "--board", "no-such-board", &me]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("nucleo-h755zi-q"), "{text}");
    let (code, text) = rig(&["preflight", "--timeout-s", "0", &me]);
    assert_eq!(code, 2, "{text}");
}
