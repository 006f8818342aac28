//! `rig report <run folder>`: rebuilds `report.json`, `junit.xml` and `report.html` from the folder's event
//! log (`events.jsonl`), e.g. after the rig was killed mid-scenario (every finished step is in
//! the log) or to render a report again.

use std::{path::Path, process::ExitCode};

use rig_verify::report::{events, ReportWriter};

/// The rebuilt report, written in place; an error names the file and what is wrong.
pub fn rebuild(folder: &Path) -> Result<rig_verify::report::RunReport, String> {
    let log = folder.join("events.jsonl");
    let text = std::fs::read_to_string(&log).map_err(|e| {
        format!(
            "{}: {e}: not a run folder of this rig (each `rig run` writes reports/<run-id>/events.jsonl)",
            log.display()
        )
    })?;
    let report = events::replay(&text).map_err(|e| format!("{}: {e}", log.display()))?;
    let (Some(root), Some(run_id)) = (folder.parent(), folder.file_name()) else {
        return Err(format!("{}: not a run folder", folder.display()));
    };
    let writer = ReportWriter::create(root, &run_id.to_string_lossy())
        .map_err(|e| format!("{}: {e}", folder.display()))?;
    writer
        .write(&report)
        .map_err(|e| format!("{}: {e}", writer.path().display()))?;
    super::history::record(root, folder, &report);
    Ok(report)
}

pub fn cli(folder: &Path) -> ExitCode {
    match rebuild(folder) {
        Ok(report) => {
            println!(
                "{} ({} steps)",
                super::run::summary_line(&report),
                report
                    .scenarios
                    .iter()
                    .map(|sc| sc.steps.len())
                    .sum::<usize>()
            );
            if let Some(e) = &report.error {
                println!("note: {e}");
            }
            super::run::print_outputs(&folder.join("report.json"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
