//! `rig`: the gauge's hardware-in-the-loop rig.

use std::{
    path::PathBuf,
    process::ExitCode,
    sync::{atomic::AtomicBool, Arc},
};

use clap::{Parser, Subcommand};
use host::{
    app::{self, Progress, RunOptions},
    config::RigConfig,
    report::{Outcome, ScenarioReport, StepReport},
    rig::Rig,
    scenario::Scenario,
};

#[derive(Parser)]
#[command(
    name = "rig",
    version,
    about = "Hardware-in-the-loop rig for the CAN oil-temperature gauge"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenario files (or folders of them) on a rig and write reports/<run-id>/report.json.
    Run {
        /// Scenario files or folders [default: scenarios/]
        paths: Vec<PathBuf>,
        /// Rig config [default: $GAUGE_RIG, else rig-config/sim.toml, the simulated bench]
        #[arg(long)]
        rig: Option<PathBuf>,
        /// Where run folders go
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
        /// The DBC describing the broadcast frame
        #[arg(long)]
        dbc: Option<PathBuf>,
    },
    /// Check scenario and rig files without running anything.
    Check {
        paths: Vec<PathBuf>,
        #[arg(long)]
        rig: Option<PathBuf>,
    },
    /// ST's supply lock-up recovery: connect under reset, mass erase (--erase), power-cycle,
    /// verify PWR_CR3, optionally flash (ELF path, or logic:<supply> on the simulated bench) and
    /// re-run the power-cycle check.
    Recover {
        #[arg(long)]
        rig: Option<PathBuf>,
        /// Confirms the mass erase of both flash banks
        #[arg(long)]
        erase: bool,
        /// Firmware to flash afterwards: an ELF, or logic:<supply> on the simulated bench
        #[arg(long)]
        flash: Option<host::recover::FlashImage>,
    },
    /// Repeat the power-cycle check N times; counts and min/median/max of boot-to-attach and
    /// power-on-to-first-pulse times.
    Soak {
        #[arg(long)]
        rig: Option<PathBuf>,
        #[arg(long, default_value_t = 100)]
        cycles: usize,
        /// Supply off time per cycle [default: the rig config's power.off_ms]
        #[arg(long)]
        off_ms: Option<u64>,
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
    },
    /// Start the simulated bench on its own (board powered on), print its instruments'
    /// pseudo-terminals and run until Ctrl-C.
    Sim {
        /// Rig config [default: $GAUGE_RIG, else rig-config/sim.toml]
        #[arg(long)]
        rig: Option<PathBuf>,
    },
    /// List serial ports (USB vendor:product, serial, manufacturer, /dev/serial/by-id names)
    /// and debug probes (serial numbers), to help write a rig config. Needs nothing attached.
    List,
    /// Check each instrument of a bench: open it, identify it, print a table. Switches the
    /// supply on first (like `run`) so the board can answer. Exit 0 when all are ok, else 1.
    Doctor {
        /// Rig config [default: $GAUGE_RIG, else rig-config/sim.toml]
        #[arg(long)]
        rig: Option<PathBuf>,
        /// Only open the power switch; do not switch the supply on
        #[arg(long)]
        no_power: bool,
    },
    /// Flash a firmware ELF through the bench's probe: attach to the Cortex-M7 (under reset
    /// when configured or when a normal attach fails), download with verify, reset. On the
    /// simulated bench each run starts a fresh simulated board, so it mostly proves the
    /// command path.
    Flash {
        /// Rig config [default: $GAUGE_RIG, else rig-config/sim.toml]
        #[arg(long)]
        rig: Option<PathBuf>,
        /// The board ELF (firmware/build.sh writes
        /// firmware/target/thumbv7em-none-eabihf/release/firmware)
        elf: PathBuf,
        /// Connect under reset (NRST held while attaching) right away
        #[arg(long)]
        under_reset: bool,
        /// Leave the supply as it is instead of switching it on first
        #[arg(long)]
        no_power: bool,
        /// Flash even when the emulated boot check (rig preflight) refuses the ELF
        #[arg(long)]
        no_preflight: bool,
    },
    /// Boot a firmware ELF in the emulator (feature `emulator`) and refuse it when it writes a
    /// supply to PWR_CR3 that differs from the board's wiring, programs option bytes that
    /// disable the Cortex-M7's boot, or never reaches its idle loop. Exit 0 ok, 1 refused,
    /// 2 error.
    Preflight {
        /// A rig config file (its board.wiring), or a named board: nucleo-h755zi-q
        /// [default: $GAUGE_RIG, else rig-config/sim.toml]
        #[arg(long)]
        board: Option<String>,
        /// The board ELF (firmware/build.sh writes
        /// firmware/target/thumbv7em-none-eabihf/release/firmware)
        elf: PathBuf,
        /// Stop a boot that has not reached idle after this many instructions
        #[arg(long, default_value_t = 50_000_000)]
        max_instructions: u64,
        /// Stop a boot that has not reached idle after this many seconds
        #[arg(long, default_value_t = 20.0)]
        timeout_s: f64,
        /// List the registers the emulator does not model that the boot touched
        #[arg(long, short)]
        verbose: bool,
    },
}

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

struct Console;

fn mark(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::Error => "ERROR",
        Outcome::Skipped => "skip",
        Outcome::Running => "....",
    }
}

impl Progress for Console {
    fn rig_ready(&mut self, rig: &Rig) {
        println!("rig: {} ({})", rig.config.name, rig.config.path);
        for i in rig.info().instruments {
            println!("  - {i}");
        }
    }
    fn scenario_started(&mut self, s: &Scenario) {
        println!("\nscenario {} ({})", s.name, s.path.display());
    }
    fn step_done(&mut self, s: &StepReport) {
        let ms: Vec<String> = s
            .measurements
            .iter()
            .filter(|m| m.low.is_some() || m.high.is_some() || m.name.contains("time"))
            .map(|m| {
                format!(
                    "{}={:.1}{}",
                    m.name,
                    m.value,
                    if m.units == "us" || m.units == "ms" {
                        m.units.as_str()
                    } else {
                        ""
                    }
                )
            })
            .collect();
        println!(
            "  [{}] {:>2} {:<20} {:>8.0} ms  {}",
            mark(s.outcome),
            s.index,
            s.action,
            s.duration_ms,
            ms.join(" ")
        );
        if let Some(m) = &s.message {
            if s.outcome != Outcome::Pass {
                println!("         {m}");
            }
        }
        if let Some(d) = &s.diagnosis {
            println!("         diagnosis: {d}");
        }
    }
    fn scenario_done(&mut self, r: &ScenarioReport) {
        let settle = r
            .settling
            .as_ref()
            .map(|s| {
                format!(
                    ", settling {:.0} ms vs floor {:.0} ms ({:.2}x over {} set-points)",
                    s.total_ms, s.floor_ms, s.ratio, s.setpoints
                )
            })
            .unwrap_or_default();
        println!(
            "  => {} in {:.1} s{settle}",
            mark(r.outcome),
            r.duration_ms / 1000.0
        );
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // probe-rs's per-driver listing warnings (one per probe kind when USB is not
                // visible) are noise; the rig says itself when no probe is found.
                "warn,probe_rs::probe=error".into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            paths,
            rig,
            reports,
            dbc,
        } => {
            let abort = Arc::new(AtomicBool::new(false));
            let flag = abort.clone();
            if let Err(e) =
                ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::Relaxed))
            {
                eprintln!(
                    "warning: cannot catch Ctrl-C ({e}); an interrupted run leaves its last report"
                );
            }
            let opts = RunOptions {
                rig: rig.unwrap_or_else(app::default_rig_path),
                scenarios: if paths.is_empty() {
                    vec![repo_path("scenarios")]
                } else {
                    paths
                },
                reports_root: reports,
                dbc: dbc.unwrap_or_else(host::dbc::default_path),
                abort: &abort,
            };
            match app::run(&opts, &mut Console) {
                Ok(result) => {
                    let s = &result.report.summary;
                    println!(
                        "\n{}: {} scenarios, {} passed, {} failed, {} errors",
                        mark(result.report.outcome),
                        s.scenarios,
                        s.passed,
                        s.failed,
                        s.errors
                    );
                    if let Some(em) = &result.report.emulation {
                        println!(
                            "emulated board: {} instructions, {:.1} emulated s in {:.1} bench s (real-time factor {:.3}), {:.1} M instructions/s, {:.1}x faster than real time when busy",
                            em.instructions, em.virtual_s, em.wall_s, em.real_time_factor, em.instructions_per_s / 1e6, em.speed_factor
                        );
                    }
                    if let Some(e) = &result.report.error {
                        eprintln!("error: {e}");
                    }
                    println!("report: {}", result.report_path.display());
                    ExitCode::from(result.exit_code() as u8)
                }
                Err(e) => {
                    eprintln!(
                        "error: cannot write the report under {}: {e}",
                        opts.reports_root.display()
                    );
                    ExitCode::from(2)
                }
            }
        }
        Command::Recover { rig, erase, flash } => host::recover::cli(
            &rig.unwrap_or_else(app::default_rig_path),
            &host::recover::RecoverOptions { erase, flash },
        ),
        Command::Soak {
            rig,
            cycles,
            off_ms,
            reports,
        } => {
            let rig = rig.unwrap_or_else(app::default_rig_path);
            let off = match off_ms {
                Some(ms) => ms,
                None => match RigConfig::load(&rig) {
                    Ok(c) => c.power.off_ms,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            let check = host::checks::PowerCycleCheck {
                off: std::time::Duration::from_millis(off),
                celsius: 40.0,
                pulse_us: 1000.0,
                tolerance_us: 4.0,
                settle_timeout: std::time::Duration::from_secs(3),
            };
            host::soak::cli(&rig, cycles, check, &reports)
        }
        Command::Sim { rig } => host::sim_cmd::cli(&rig.unwrap_or_else(app::default_rig_path)),
        Command::List => host::commands::list::cli(),
        Command::Doctor { rig, no_power } => host::commands::doctor::cli(
            &rig.unwrap_or_else(app::default_rig_path),
            host::commands::doctor::DoctorOptions {
                power_on: !no_power,
            },
        ),
        Command::Flash {
            rig,
            elf,
            under_reset,
            no_power,
            no_preflight,
        } => host::commands::flash::cli(
            &rig.unwrap_or_else(app::default_rig_path),
            &elf,
            host::commands::flash::FlashOptions {
                under_reset,
                no_power,
                no_preflight,
            },
        ),
        Command::Preflight {
            board,
            elf,
            max_instructions,
            timeout_s,
            verbose,
        } => preflight(
            board.unwrap_or_else(|| app::default_rig_path().display().to_string()),
            &elf,
            max_instructions,
            timeout_s,
            verbose,
        ),
        Command::Check { paths, rig } => {
            let mut bad = 0;
            let rig = rig.unwrap_or_else(app::default_rig_path);
            let encoder = match host::dbc::OilTempEncoder::load(&host::dbc::default_path()) {
                Ok(e) => Some(e),
                Err(e) => {
                    bad += 1;
                    eprintln!("bad  {e}");
                    None
                }
            };
            match RigConfig::load(&rig) {
                Ok(c) => println!("ok   {} (rig {:?})", rig.display(), c.name),
                Err(e) => {
                    bad += 1;
                    eprintln!("bad  {e}");
                }
            }
            let paths = if paths.is_empty() {
                vec![repo_path("scenarios")]
            } else {
                paths
            };
            match Scenario::collect(&paths) {
                Ok(files) => {
                    for f in files {
                        match Scenario::load(&f, encoder.as_ref()) {
                            Ok(s) => println!("ok   {} ({} steps)", f.display(), s.steps.len()),
                            Err(e) => {
                                bad += 1;
                                eprintln!("bad  {e}");
                            }
                        }
                    }
                }
                Err(e) => {
                    bad += 1;
                    eprintln!("bad  {e}");
                }
            }
            ExitCode::from(if bad == 0 { 0 } else { 2 })
        }
    }
}

#[cfg(feature = "emulator")]
fn preflight(
    board: String,
    elf: &std::path::Path,
    max_instructions: u64,
    timeout_s: f64,
    verbose: bool,
) -> ExitCode {
    let wall_clock = match std::time::Duration::try_from_secs_f64(timeout_s) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            eprintln!("error: --timeout-s {timeout_s}: give a positive number of seconds");
            return ExitCode::from(2);
        }
    };
    let limits = host::emu::Limits {
        max_instructions,
        wall_clock,
        ..Default::default()
    };
    host::emu::preflight::cli(&board, elf, limits, verbose)
}

#[cfg(not(feature = "emulator"))]
fn preflight(
    _board: String,
    _elf: &std::path::Path,
    _max_instructions: u64,
    _timeout_s: f64,
    _verbose: bool,
) -> ExitCode {
    eprintln!(
        "rig was built without the emulator: cargo build --features emulator (needs cmake and libclang-dev)"
    );
    ExitCode::from(2)
}
