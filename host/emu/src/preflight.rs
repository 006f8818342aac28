//! `rig preflight`: boot the board ELF in the emulator before it goes near a board, and refuse
//! it when it would write the wrong supply configuration to PWR_CR3 (a write-once latch that
//! locks a Direct-SMPS board up after the next power cut), program option bytes that disable
//! the Cortex-M7's boot, or never reach the executor's idle.

use std::{
    fmt,
    path::{Path, PathBuf},
    process::ExitCode,
};

use stm32h755::supply::{SupplyConfig, PWR_CR3_ADDR, PWR_CR3_POWER_ON_DEFAULT};

use super::{
    machine::{self, AccessKind, Firmware, Limits, Run, Stop},
    peripherals::{Cr3Write, OptionStart, Peripherals, OPTSR_BCM4, OPTSR_BCM7},
    symbols::Symbols,
    EmuError,
};
use bench_config::RigConfig;

/// The board a firmware is checked against: what matters is how its supply is wired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Board {
    /// Board model, e.g. "NUCLEO-H755ZI-Q".
    pub name: String,
    pub wiring: SupplyConfig,
    /// Where the description came from: a rig config path, or "built-in".
    pub source: String,
}

impl Board {
    /// Boards known by name: the NUCLEO-H755ZI-Q (MB1363), wired for Direct SMPS.
    pub const NAMED: [(&'static str, &'static str, SupplyConfig); 1] = [(
        "nucleo-h755zi-q",
        "NUCLEO-H755ZI-Q",
        SupplyConfig::DirectSmps,
    )];

    pub fn named(name: &str) -> Option<Self> {
        Self::NAMED
            .iter()
            .find(|(key, _, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, model, wiring)| Self {
                name: (*model).to_string(),
                wiring: *wiring,
                source: "built-in".into(),
            })
    }

    pub fn from_config(config: &RigConfig) -> Self {
        Self {
            name: config.board_model.clone(),
            wiring: config.wiring,
            source: config.path.clone(),
        }
    }

    /// A rig config file, else a named board.
    pub fn resolve(arg: &str) -> Result<Self, EmuError> {
        let path = Path::new(arg);
        if path.is_file() {
            return RigConfig::load(path)
                .map(|c| Self::from_config(&c))
                .map_err(|e| EmuError::Board(arg.into(), e.to_string()));
        }
        Self::named(arg).ok_or_else(|| {
            let names: Vec<&str> = Self::NAMED.iter().map(|(k, _, _)| *k).collect();
            EmuError::Board(
                arg.into(),
                format!(
                    "no rig config file there and not a named board (named boards: {})",
                    names.join(", ")
                ),
            )
        })
    }
}

/// Why a firmware is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The first PWR_CR3 write selects a supply other than the board's wiring.
    SupplyMismatch {
        write: Cr3Write,
        expected: SupplyConfig,
        board: String,
        /// "0x08001234 in some::function"
        at: String,
    },
    /// FLASH_OPTSR_PRG with BCM7 = 0 followed by an OPTCR start.
    Cm7BootDisabled { start: OptionStart, at: String },
    /// Boot never reached the first WFI/WFE.
    NoIdle {
        stop: Stop,
        at: String,
        /// Name of the register a polling loop reads.
        register: Option<String>,
        /// Where a loop's instructions are ("0x08001230..0x0800123c").
        loop_range: Option<String>,
        limits: Limits,
        /// The most-read registers in the last reads, for a run stopped without a loop.
        recent: Vec<(String, usize)>,
    },
}

fn supply_text(bits: u32) -> String {
    match SupplyConfig::from_cr3(bits) {
        Some(c) => format!("{bits:#04x} ({})", c.name()),
        None if bits == PWR_CR3_POWER_ON_DEFAULT => {
            format!("{bits:#04x} (power-on default, no configuration)")
        }
        None => format!("{bits:#04x} (not a valid supply configuration)"),
    }
}

fn exception_name(number: u32) -> &'static str {
    match number {
        1 => "undefined instruction (UDF, e.g. a panic or an unsupported instruction)",
        2 => "SVC",
        3 => "prefetch abort",
        4 => "data abort (bus fault)",
        7 => "BKPT (breakpoint instruction)",
        8 => "exception return",
        16 => "semihosting call",
        17 => "NOCP usage fault (coprocessor/FPU access)",
        18 => "INVSTATE usage fault",
        22 => "unaligned access usage fault",
        _ => "CPU exception",
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::SupplyMismatch {
                write,
                expected,
                board,
                at,
            } => write!(
                f,
                "PWR_CR3 ({PWR_CR3_ADDR:#010x}): the firmware selects the wrong supply: expected {} for \
                 {board} (wired {}), found {} (written {:#010x} at {at}). PWR_CR3's supply bits \
                 are written once per power-on: on the board this write locks the chip up \
                 (voltage levels never valid, no debug access) until a power cut and the \
                 recovery. Build the firmware for the board's wiring (firmware/build.sh, not \
                 --ldo).",
                supply_text(expected.cr3_bits()),
                expected.name(),
                supply_text(write.supply_bits()),
                write.value,
            ),
            Finding::Cm7BootDisabled { start, at } => write!(
                f,
                "option bytes: the firmware programs FLASH_OPTSR_PRG = {:#010x} with BCM7 = 0 \
                 (Cortex-M7 boot disabled{}) and starts the change with FLASH_OPTCR.OPTSTART at \
                 {at}. After the next reset the Cortex-M7 no longer runs: the probe must attach \
                 to the Cortex-M4 (AP 3) and the option bytes must be restored (BCM7 = 1).",
                start.optsr,
                if start.optsr & OPTSR_BCM4 == 0 {
                    ", and BCM4 = 0: neither core boots"
                } else {
                    ""
                },
            ),
            Finding::NoIdle {
                stop,
                at,
                register,
                loop_range,
                limits,
                recent,
            } => {
                write!(f, "boot never reaches idle (no WFI/WFE): ")?;
                let poll = stop.poll();
                match stop {
                    Stop::Spinning(_) | Stop::InstructionLimit { .. } | Stop::TimeLimit { .. }
                        if poll.is_some() =>
                    {
                        if let (Some(p), Some(reg)) = (poll, register) {
                            write!(
                                f,
                                "spins at {at}, polling {reg} ({:#010x}), which keeps reading \
                                 {:#010x} ({} reads from {}",
                                p.address,
                                p.value,
                                p.reads,
                                loop_range.as_deref().unwrap_or("?"),
                            )?;
                            match stop {
                                Stop::InstructionLimit { .. } => write!(
                                    f,
                                    ", stopped at the limit of {} instructions)",
                                    limits.max_instructions
                                )?,
                                Stop::TimeLimit { .. } => write!(
                                    f,
                                    ", stopped at the time limit of {:?})",
                                    limits.wall_clock
                                )?,
                                _ => write!(f, ")")?,
                            }
                        }
                        Ok(())
                    }
                    Stop::InstructionLimit { .. } | Stop::TimeLimit { .. } => {
                        let limit = if matches!(stop, Stop::TimeLimit { .. }) {
                            format!("the time limit of {:?}", limits.wall_clock)
                        } else {
                            format!("{} instructions", limits.max_instructions)
                        };
                        write!(f, "still running after {limit}, last at {at}")?;
                        if !recent.is_empty() {
                            let regs: Vec<String> = recent
                                .iter()
                                .map(|(r, n)| format!("{r} x{n}"))
                                .collect();
                            write!(f, "; recent peripheral reads: {}", regs.join(", "))?;
                        }
                        Ok(())
                    }
                    Stop::BranchToSelf { .. } => write!(
                        f,
                        "stops in an endless `b .` at {at} (a panic handler such as panic-halt, \
                         or a wait for an interrupt the emulator does not deliver)"
                    ),
                    Stop::Exception { number, .. } => write!(
                        f,
                        "CPU exception {number} ({}) at {at}",
                        exception_name(*number)
                    ),
                    Stop::Unmapped { address, kind, .. } => write!(
                        f,
                        "{} of {address:#010x}, outside every memory and peripheral, at {at}",
                        match kind {
                            AccessKind::Read => "read",
                            AccessKind::Write => "write",
                            AccessKind::Fetch => "instruction fetch",
                        }
                    ),
                    Stop::Emulator { error, .. } => {
                        write!(f, "the emulator stopped at {at}: {error}")
                    }
                    Stop::Idle { .. } | Stop::Spinning(_) => write!(f, "at {at}"),
                }
            }
        }
    }
}

/// The outcome of one preflight.
#[derive(Clone, Debug)]
pub struct Report {
    pub board: Board,
    pub elf: PathBuf,
    pub run: Run,
    pub limits: Limits,
    pub findings: Vec<Finding>,
    /// Things worth saying that do not refuse the firmware.
    pub warnings: Vec<String>,
    symbols: Symbols,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }

    /// "0x08001234 in some::function"
    pub fn describe(&self, pc: u32) -> String {
        self.symbols.describe(pc)
    }

    /// The summary printed by `rig preflight` (all outcomes).
    pub fn summary(&self, verbose: bool) -> Vec<String> {
        let run = &self.run;
        let p = &run.peripherals;
        let mut out = vec![format!(
            "preflight: {} on {} ({}, wiring {})",
            self.elf.display(),
            self.board.name,
            self.board.source,
            self.board.wiring.name()
        )];
        let ms = run.elapsed.as_secs_f64() * 1000.0;
        let speed = run.instructions_per_second() / 1e6;
        match &run.stop {
            Stop::Idle { pc, wfe } => out.push(format!(
                "  reached idle: {} at {} after {} instructions in {ms:.1} ms ({speed:.1} M instructions/s)",
                if *wfe { "WFE" } else { "WFI" },
                self.describe(*pc),
                run.instructions
            )),
            _ => out.push(format!(
                "  stopped at {} after {} instructions in {ms:.1} ms ({speed:.1} M instructions/s)",
                self.describe(run.stop.pc()),
                run.instructions
            )),
        }
        if p.cr3_writes.is_empty() {
            out.push("  PWR_CR3 writes: none".into());
        } else {
            out.push(format!("  PWR_CR3 writes: {}", p.cr3_writes.len()));
            for w in &p.cr3_writes {
                out.push(format!(
                    "    {:#010x} = supply {} at {}{}",
                    w.value,
                    supply_text(w.supply_bits()),
                    self.describe(w.site.pc),
                    if w.latched {
                        " (latched)"
                    } else {
                        " (ignored: already latched)"
                    }
                ));
            }
        }
        if p.option_writes.is_empty() && p.option_starts.is_empty() {
            out.push("  option bytes: not touched".into());
        } else {
            out.push(format!(
                "  option bytes: {} register write(s), {} OPTSTART(s)",
                p.option_writes.len(),
                p.option_starts.len()
            ));
            for w in &p.option_writes {
                out.push(format!(
                    "    {} = {:#010x} at {}{}",
                    w.register,
                    w.value,
                    self.describe(w.site.pc),
                    if w.accepted {
                        ""
                    } else {
                        " (ignored: OPTCR locked)"
                    }
                ));
            }
            for s in &p.option_starts {
                out.push(format!(
                    "    OPTSTART at {}: OPTSR {:#010x} (BCM7 {}, BCM4 {}), BOOT7 {:#010x}, BOOT4 {:#010x}{}",
                    self.describe(s.site.pc),
                    s.optsr,
                    u32::from(s.optsr & OPTSR_BCM7 != 0),
                    u32::from(s.optsr & OPTSR_BCM4 != 0),
                    s.boot7,
                    s.boot4,
                    if s.unlocked { "" } else { " (ignored: OPTCR locked)" }
                ));
            }
        }
        let reads: u64 = p.unmodelled.values().map(|u| u.reads).sum();
        out.push(format!(
            "  unmodelled registers: {} touched, {reads} reads answered with reset value/last write{}",
            p.unmodelled.len(),
            if verbose || p.unmodelled.is_empty() {
                ""
            } else {
                " (--verbose lists them)"
            }
        ));
        if verbose {
            for (addr, u) in &p.unmodelled {
                out.push(format!(
                    "    {:<24} {addr:#010x}  {} reads, {} writes, first at {}",
                    Peripherals::register_name(*addr),
                    u.reads,
                    u.writes,
                    self.describe(u.first.pc)
                ));
            }
        }
        for w in &self.warnings {
            out.push(format!("  warning: {w}"));
        }
        out
    }
}

/// Boots `elf` on `board` and judges the run.
pub fn preflight(elf: &Path, board: &Board, limits: &Limits) -> Result<Report, EmuError> {
    let firmware = Firmware::load(elf)?;
    let run = machine::run(&firmware, board.wiring, limits)?;
    Ok(judge(elf, board, limits, firmware.symbols, run))
}

fn judge(elf: &Path, board: &Board, limits: &Limits, symbols: Symbols, run: Run) -> Report {
    let p = &run.peripherals;
    let mut findings = Vec::new();
    let mut warnings = Vec::new();
    if let Some(first) = p.cr3_writes.iter().find(|w| w.latched) {
        if first.supply() != Some(board.wiring) {
            findings.push(Finding::SupplyMismatch {
                write: first.clone(),
                expected: board.wiring,
                board: board.name.clone(),
                at: symbols.describe(first.site.pc),
            });
        }
    } else if run.stop.reached_idle() {
        warnings.push(format!(
            "the firmware never writes PWR_CR3: the supply stays at its power-on default {} \
             instead of {}",
            supply_text(PWR_CR3_POWER_ON_DEFAULT),
            supply_text(board.wiring.cr3_bits())
        ));
    }
    if let Some(start) = p.option_starts.iter().find(|s| s.disables_cm7_boot()) {
        findings.push(Finding::Cm7BootDisabled {
            start: start.clone(),
            at: symbols.describe(start.site.pc),
        });
    }
    if !run.stop.reached_idle() {
        let poll = run.stop.poll().copied();
        let mut counts: Vec<(String, usize)> = Vec::new();
        for r in &run.recent_reads {
            let name = format!(
                "{} ({:#010x})",
                Peripherals::register_name(r.address),
                r.address
            );
            match counts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += 1,
                None => counts.push((name, 1)),
            }
        }
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts.truncate(3);
        findings.push(Finding::NoIdle {
            at: symbols.describe(poll.map_or(run.stop.pc(), |p| p.read_pc)),
            register: poll.map(|p| Peripherals::register_name(p.address)),
            loop_range: poll.map(|p| format!("{:#010x}..={:#010x}", p.pc_lo, p.pc_hi)),
            stop: run.stop.clone(),
            limits: *limits,
            recent: counts,
        });
    }
    Report {
        board: board.clone(),
        elf: elf.to_path_buf(),
        limits: *limits,
        findings,
        warnings,
        symbols,
        run,
    }
}

/// `rig preflight`: 0 when the firmware boots to idle with the board's supply and leaves the
/// Cortex-M7's boot alone, 1 when refused, 2 when it cannot be checked (files, board, emulator).
pub fn cli(board: &str, elf: &Path, limits: Limits, verbose: bool) -> ExitCode {
    let board = match Board::resolve(board) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match preflight(elf, &board, &limits) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for line in report.summary(verbose) {
        println!("{line}");
    }
    if report.passed() {
        println!("preflight: ok");
        ExitCode::SUCCESS
    } else {
        for f in &report.findings {
            eprintln!("refused: {f}");
        }
        ExitCode::from(1)
    }
}

/// For `rig flash`: Ok(one-line summary) when the ELF passes on the rig's board, Err(the
/// reasons) when it is refused or cannot be checked.
pub fn gate(config: &RigConfig, elf: &Path) -> Result<String, String> {
    let board = Board::from_config(config);
    let limits = Limits::default();
    let report = preflight(elf, &board, &limits).map_err(|e| e.to_string())?;
    if report.passed() {
        Ok(format!(
            "emulated boot reaches idle after {} instructions, PWR_CR3 = {} ({} wiring)",
            report.run.instructions,
            report
                .run
                .peripherals
                .latched_supply_bits()
                .map_or("not written".into(), supply_text),
            board.wiring.name()
        ))
    } else {
        let reasons: Vec<String> = report.findings.iter().map(|f| f.to_string()).collect();
        Err(format!(
            "{} (rig flash --no-preflight skips this check)",
            reasons.join("; ")
        ))
    }
}
