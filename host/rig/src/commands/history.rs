//! `rig history`: each rig's scenario pass rates, the unstable scenarios and the trends of key
//! measurements over its last runs, from `<reports>/history.sqlite`; and the recording of a
//! finished run into it (with its `report.html` rendered again beside the same rig's past).

use std::{path::Path, process::ExitCode};

use rig_history::{History, RigHistory, FILE};
use rig_verify::report::{html, RunReport};

/// How many earlier runs the HTML report shows each measurement against.
const HTML_PAST_RUNS: usize = 10;

/// Records `report` (its run folder is `folder`) in the history of `reports`, then renders its
/// `report.html` again with each measurement beside the rig's earlier runs. A history that
/// cannot be written costs the run nothing: the reason goes to stderr.
pub fn record(reports: &Path, folder: &Path, report: &RunReport) {
    let recorded = (|| -> Result<Option<usize>, String> {
        let mut history = History::open(reports).map_err(|e| e.to_string())?;
        if !history.record(report).map_err(|e| e.to_string())? {
            return Ok(None);
        }
        let past = history
            .past_runs(report, HTML_PAST_RUNS)
            .map_err(|e| e.to_string())?;
        rig_verify::report::rewrite_html(folder, &html::render_with(report, &past))
            .map_err(|e| format!("{}: {e}", folder.join("report.html").display()))?;
        Ok(Some(past.run_ids.len()))
    })();
    if let Err(e) = recorded {
        eprintln!("warning: history not updated: {e} (the run's own report is complete)");
    }
}

fn print(h: &RigHistory) {
    println!(
        "rig {}: last {} run(s), {} .. {}",
        h.rig,
        h.run_ids.len(),
        h.run_ids.first().map_or("", String::as_str),
        h.run_ids.last().map_or("", String::as_str)
    );
    let width = h
        .scenarios
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!("  {:width$}  pass rate  outcomes, oldest first (P pass, F fail, E error, f flaky, s skipped, r running)", "scenario");
    for s in &h.scenarios {
        let marks: String = s
            .outcomes
            .iter()
            .map(|o| match o.as_str() {
                "pass" => 'P',
                "fail" => 'F',
                "error" => 'E',
                "flaky" => 'f',
                "skipped" => 's',
                _ => 'r',
            })
            .collect();
        let passed = s.outcomes.iter().filter(|o| *o == "pass").count();
        println!(
            "  {:width$}  {:>4}/{:<4}  {marks}{}",
            s.name,
            passed,
            s.outcomes.len(),
            if s.unstable() { "  UNSTABLE" } else { "" }
        );
    }
    let unstable: Vec<&str> = h
        .scenarios
        .iter()
        .filter(|s| s.unstable())
        .map(|s| s.name.as_str())
        .collect();
    if unstable.is_empty() {
        println!("  unstable: none (no outcome changed across these runs)");
    } else {
        println!("  unstable: {}", unstable.join(", "));
    }
    if h.trends.is_empty() {
        return;
    }
    println!("  trends, oldest first:");
    let width = h.trends.iter().map(|t| t.label.len()).max().unwrap_or(8);
    for t in &h.trends {
        let mut sorted = t.values.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
        let shown: Vec<String> = t.values.iter().map(|v| format!("{v:.2}")).collect();
        println!(
            "    {:width$}  {} {}  (min {:.2}, median {median:.2}, max {:.2})",
            t.label,
            shown.join(" "),
            t.units,
            sorted.first().copied().unwrap_or(f64::NAN),
            sorted.last().copied().unwrap_or(f64::NAN),
        );
    }
}

/// `rig history`: 0 when printed, 2 when there is no history or it cannot be read.
pub fn cli(reports: &Path, rig: Option<&str>, last: usize) -> ExitCode {
    let file = reports.join(FILE);
    if !file.is_file() {
        eprintln!(
            "error: {}: no history yet. `rig run --reports {}` records each run there",
            file.display(),
            reports.display()
        );
        return ExitCode::from(2);
    }
    let shown = (|| -> Result<(), String> {
        let history = History::open(reports).map_err(|e| e.to_string())?;
        let rigs = match rig {
            Some(r) => vec![r.to_string()],
            None => history.rigs().map_err(|e| e.to_string())?,
        };
        println!("history: {}", file.display());
        for name in rigs {
            let h = history.summary(&name, last).map_err(|e| e.to_string())?;
            if h.run_ids.is_empty() {
                return Err(format!(
                    "no run of rig {name:?} in {} (the rig config's `name`)",
                    file.display()
                ));
            }
            print(&h);
        }
        Ok(())
    })();
    match shown {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
