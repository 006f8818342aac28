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
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
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
