//! `rig`: the gauge's hardware-in-the-loop rig.

use std::{path::PathBuf, process::ExitCode};

use bench_config::{bench_folder::default_rig_config, RigConfig};
use clap::{Parser, Subcommand};
use rig::commands;

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
        /// Run a scenario that ends in `error` (the rig or an instrument, never a `fail` of the
        /// gauge) again, up to N times; one that then passes is reported `flaky`
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10))]
        retries: u32,
        /// Write the evidence (CAN log, telemetry transcript, servo captures as VCD) of every
        /// scenario, not only of those that did not pass
        #[arg(long)]
        evidence: bool,
    },
    /// Rebuild a run folder's report.json, junit.xml and report.html from its event log
    /// (events.jsonl): after a killed run, every finished step is there.
    Report {
        /// The run folder (reports/<run-id>)
        folder: PathBuf,
    },
    /// Each rig's scenario pass rates, the scenarios whose outcome changed, and the trends of
    /// key measurements (settle/floor, boot to attach, power-on to first pulse) over its last
    /// runs, from <reports>/history.sqlite (every `rig run` records itself there).
    History {
        /// The reports folder whose history.sqlite to read
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
        /// Only this rig (the rig config's `name`)
        #[arg(long)]
        rig: Option<String>,
        /// How many of each rig's last runs
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
        last: u32,
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
        flash: Option<rig_verify::power_loss::recovery::FlashImage>,
        /// If the Cortex-M7's boot is disabled (BCM7 = 0), program it back on through the
        /// Cortex-M4's access port
        #[arg(long)]
        restore_boot: bool,
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
        /// Also serve the bench's instruments as USB devices over USB/IP on this address
        /// (e.g. 0.0.0.0:3240): the ST-LINK V3, the CANable, the SUMP analyzer and the LCUS-1's
        /// CH340, for a Linux host to attach with vhci-hcd (`usbip attach`)
        #[arg(long, value_name = "ADDRESS")]
        usbip: Option<String>,
        /// Leave the board with the firmware it was found with (`firmware.preloaded_elf`):
        /// download nothing, as a bench board before anyone flashes it
        #[arg(long)]
        as_found: bool,
        /// Take fault commands on this TCP address (e.g. 127.0.0.1:3250), one per line:
        /// `fault DEVICE vanish|silent|garbage|slow [delay_ms=N] [for_ms=N]`, `clear DEVICE`
        /// (DEVICE: can, pulse_meter, power, telemetry). With --usbip, `vanish` unplugs the
        /// device's USB plug and `clear` plugs it back in
        #[arg(long, value_name = "ADDRESS")]
        fault_control: Option<String>,
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

fn main() -> ExitCode {
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, Layer};
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // probe-rs's per-driver listing warnings (one per probe kind when USB is not
                // visible) are noise; the rig says itself when no probe is found.
                "warn,probe_rs::probe=error".into()
            }),
        );
    // The run folder's rig.log: the rig's own info lines too, without terminal colours.
    let run_log = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(rig_verify::report::run_log::writer)
        .with_filter(tracing_subscriber::EnvFilter::new(
            "warn,probe_rs::probe=error,rig=info,rig_verify=info,rig_instruments=info,rig_sim=info,rig_emu=info",
        ));
    tracing_subscriber::registry()
        .with(console)
        .with(run_log)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            paths,
            rig,
            reports,
            dbc,
            retries,
            evidence,
        } => commands::run::cli(commands::run::RunArgs {
            paths,
            rig,
            reports,
            dbc,
            retries,
            evidence,
        }),
        Command::Recover {
            rig,
            erase,
            flash,
            restore_boot,
        } => commands::recover::cli(
            &rig.unwrap_or_else(default_rig_config),
            &rig_verify::power_loss::recovery::RecoverOptions {
                erase,
                flash,
                restore_boot,
            },
        ),
        Command::Soak {
            rig,
            cycles,
            off_ms,
            reports,
        } => {
            let rig = rig.unwrap_or_else(default_rig_config);
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
            let check = rig_verify::power_loss::PowerCycleCheck {
                off: std::time::Duration::from_millis(off),
                celsius: 40.0,
                pulse_us: 1000.0,
                tolerance_us: 4.0,
                settle_timeout: std::time::Duration::from_secs(3),
            };
            commands::soak::cli(&rig, cycles, check, &reports)
        }
        Command::Sim {
            rig,
            usbip,
            as_found,
            fault_control,
        } => {
            let firmware = if as_found {
                commands::sim::SimFirmware::AsFound
            } else {
                commands::sim::SimFirmware::UnderTest
            };
            commands::sim::cli(
                &rig.unwrap_or_else(default_rig_config),
                commands::sim::Serve {
                    usbip: usbip.as_deref(),
                    fault_control: fault_control.as_deref(),
                },
                firmware,
            )
        }
        Command::List => commands::list::cli(),
        Command::Doctor { rig, no_power } => commands::doctor::cli(
            &rig.unwrap_or_else(default_rig_config),
            commands::doctor::DoctorOptions {
                power_on: !no_power,
            },
        ),
        Command::Flash {
            rig,
            elf,
            under_reset,
            no_power,
            no_preflight,
        } => commands::flash::cli(
            &rig.unwrap_or_else(default_rig_config),
            &elf,
            commands::flash::FlashOptions {
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
        } => commands::preflight::cli(
            board.unwrap_or_else(|| default_rig_config().display().to_string()),
            &elf,
            max_instructions,
            timeout_s,
            verbose,
        ),
        Command::Report { folder } => commands::report::cli(&folder),
        Command::History { reports, rig, last } => {
            commands::history::cli(&reports, rig.as_deref(), last as usize)
        }
        Command::Check { paths, rig } => {
            commands::check::cli(paths, rig.unwrap_or_else(default_rig_config))
        }
    }
}
