//! The rig's run history: one SQLite file beside the run folders (`<reports>/history.sqlite`,
//! ignored by git) holding every recorded run's scenarios, steps and measurements, keyed by
//! the rig that ran them. `rig run` records each run at its end (and `rig report` again when
//! it rebuilds one); `rig history` reads pass rates, unstable scenarios and the trends of key
//! measurements from it; the HTML report shows each measurement against the same rig's last
//! runs ([`History::past_runs`]).

use std::{collections::HashMap, path::Path};

use rig_verify::report::{html::PastRuns, RunReport};
use rusqlite::{params, Connection, OptionalExtension};

/// The file's name in the reports folder.
pub const FILE: &str = "history.sqlite";

/// What cannot be read or written: names the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}. The history is a cache of the run folders: move the file away to start a new one")]
pub struct HistoryError {
    path: String,
    #[source]
    source: rusqlite::Error,
}

pub struct History {
    db: Connection,
    path: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    rig TEXT NOT NULL,
    config TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT NOT NULL,
    tool TEXT NOT NULL,
    firmware_sha256 TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_rig ON runs (rig, started_at);
CREATE TABLE IF NOT EXISTS scenarios (
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    file TEXT NOT NULL,
    outcome TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    settle_ratio REAL,
    PRIMARY KEY (run_id, position)
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    step INTEGER NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    PRIMARY KEY (run_id, position, step),
    FOREIGN KEY (run_id, position) REFERENCES scenarios (run_id, position) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS measurements (
    run_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    units TEXT NOT NULL,
    low REAL,
    high REAL,
    outcome TEXT NOT NULL,
    FOREIGN KEY (run_id, position, step) REFERENCES steps (run_id, position, step) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS measurements_by_run ON measurements (run_id);
";

/// One scenario's record over a rig's last runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioHistory {
    pub name: String,
    /// Its outcome in each of the runs that ran it, oldest first.
    pub outcomes: Vec<String>,
}

impl ScenarioHistory {
    /// Passed (flaky counts as not passed) out of the runs that ran it.
    pub fn pass_rate(&self) -> f64 {
        let passed = self.outcomes.iter().filter(|o| *o == "pass").count();
        passed as f64 / self.outcomes.len().max(1) as f64
    }

    /// The outcome changed across these runs (a skip says nothing either way).
    pub fn unstable(&self) -> bool {
        let mut judged = self.outcomes.iter().filter(|o| *o != "skipped");
        let first = judged.next();
        judged.any(|o| Some(o) != first)
    }
}

/// A key measurement's values over a rig's last runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    /// `scenario: measurement` (the settle ratio: `scenario: settle/floor`).
    pub label: String,
    pub units: String,
    /// One value per run that measured it, oldest first (a run may give several: the mean).
    pub values: Vec<f64>,
}

/// What `rig history` shows for one rig.
#[derive(Debug, Clone, PartialEq)]
pub struct RigHistory {
    pub rig: String,
    /// The runs looked at, oldest first.
    pub run_ids: Vec<String>,
    pub scenarios: Vec<ScenarioHistory>,
    pub trends: Vec<Trend>,
}

/// The measurements whose trend `rig history` shows.
pub const KEY_MEASUREMENTS: [&str; 2] = ["boot_to_attach", "power_on_to_first_pulse"];

impl History {
    /// Opens (creating) the history in `reports`.
    pub fn open(reports: &Path) -> Result<Self, HistoryError> {
        let path = reports.join(FILE);
        let shown = path.display().to_string();
        let err = |source| HistoryError {
            path: shown.clone(),
            source,
        };
        let db = Connection::open(&path).map_err(err)?;
        db.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        db.execute_batch("PRAGMA foreign_keys = ON;").map_err(err)?;
        db.execute_batch(SCHEMA).map_err(err)?;
        Ok(Self { db, path: shown })
    }

    fn err(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError {
            path: self.path.clone(),
            source,
        }
    }

    /// Records `report` (again: a run recorded before is replaced). A report with no rig (it
    /// stopped before bring-up) is not recorded: it measured nothing of a bench.
    pub fn record(&mut self, report: &RunReport) -> Result<bool, HistoryError> {
        let Some(rig) = &report.rig else {
            return Ok(false);
        };
        let path = self.path.clone();
        let err = |source| HistoryError {
            path: path.clone(),
            source,
        };
        let tx = self.db.transaction().map_err(err)?;
        tx.execute("DELETE FROM runs WHERE run_id = ?1", params![report.run_id])
            .map_err(err)?;
        tx.execute(
            "INSERT INTO runs (run_id, rig, config, started_at, finished_at, outcome, tool, firmware_sha256)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                report.run_id,
                rig.name,
                rig.config,
                report.started_at,
                report.finished_at,
                report.outcome.name(),
                report.tool,
                report.firmware.as_ref().map(|f| f.sha256.clone()),
            ],
        )
        .map_err(err)?;
        for (position, sc) in report.scenarios.iter().enumerate() {
            tx.execute(
                "INSERT INTO scenarios (run_id, position, name, file, outcome, duration_ms, settle_ratio)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    report.run_id,
                    position as i64,
                    sc.name,
                    sc.file,
                    sc.outcome.name(),
                    sc.duration_ms,
                    sc.settling.as_ref().map(|s| s.ratio).filter(|r| r.is_finite()),
                ],
            )
            .map_err(err)?;
            for step in &sc.steps {
                tx.execute(
                    "INSERT INTO steps (run_id, position, step, action, outcome, duration_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        report.run_id,
                        position as i64,
                        step.index as i64,
                        step.action,
                        step.outcome.name(),
                        step.duration_ms,
                    ],
                )
                .map_err(err)?;
                for m in &step.measurements {
                    tx.execute(
                        "INSERT INTO measurements (run_id, position, step, name, value, units, low, high, outcome)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                        params![
                            report.run_id,
                            position as i64,
                            step.index as i64,
                            m.name,
                            Some(m.value).filter(|v| v.is_finite()),
                            m.units,
                            m.low,
                            m.high,
                            m.outcome.name(),
                        ],
                    )
                    .map_err(err)?;
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(true)
    }

    /// The rigs with recorded runs, by name.
    pub fn rigs(&self) -> Result<Vec<String>, HistoryError> {
        let mut q = self
            .db
            .prepare("SELECT DISTINCT rig FROM runs ORDER BY rig")
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The last `n` runs of `rig` started before `before` (all, if `None`), oldest first.
    fn last_runs(
        &self,
        rig: &str,
        n: usize,
        before: Option<&str>,
    ) -> Result<Vec<String>, HistoryError> {
        let mut q = self
            .db
            .prepare(
                "SELECT run_id FROM runs WHERE rig = ?1 AND (?2 IS NULL OR started_at < ?2)
                 ORDER BY started_at DESC, run_id DESC LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map(params![rig, before, n as i64], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let mut ids: Vec<String> = rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?;
        ids.reverse();
        Ok(ids)
    }

    /// Pass rates, unstable scenarios and key trends of `rig` over its last `n` runs.
    pub fn summary(&self, rig: &str, n: usize) -> Result<RigHistory, HistoryError> {
        let run_ids = self.last_runs(rig, n, None)?;
        let mut scenarios: Vec<ScenarioHistory> = Vec::new();
        let mut settle: HashMap<String, Vec<f64>> = HashMap::new();
        let mut measured: HashMap<(String, String), (String, Vec<f64>)> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for run in &run_ids {
            let mut q = self
                .db
                .prepare(
                    "SELECT name, outcome, settle_ratio FROM scenarios WHERE run_id = ?1 ORDER BY position",
                )
                .map_err(|e| self.err(e))?;
            let rows = q
                .query_map(params![run], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<f64>>(2)?,
                    ))
                })
                .map_err(|e| self.err(e))?;
            for row in rows {
                let (name, outcome, ratio) = row.map_err(|e| self.err(e))?;
                match scenarios.iter_mut().find(|s| s.name == name) {
                    Some(s) => s.outcomes.push(outcome),
                    None => scenarios.push(ScenarioHistory {
                        name: name.clone(),
                        outcomes: vec![outcome],
                    }),
                }
                if let Some(r) = ratio {
                    settle.entry(name.clone()).or_default().push(r);
                    if !order.contains(&name) {
                        order.push(name);
                    }
                }
            }
            // Each key measurement: the mean of a run's values, per scenario.
            let mut q = self
                .db
                .prepare(
                    "SELECT s.name, m.name, m.units, AVG(m.value) FROM measurements m
                     JOIN scenarios s ON s.run_id = m.run_id AND s.position = m.position
                     WHERE m.run_id = ?1 AND m.value IS NOT NULL AND m.name IN (?2, ?3)
                     GROUP BY s.name, m.name, m.units ORDER BY MIN(m.position), m.name",
                )
                .map_err(|e| self.err(e))?;
            let rows = q
                .query_map(
                    params![run, KEY_MEASUREMENTS[0], KEY_MEASUREMENTS[1]],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, f64>(3)?,
                        ))
                    },
                )
                .map_err(|e| self.err(e))?;
            for row in rows {
                let (scenario, name, units, value) = row.map_err(|e| self.err(e))?;
                measured
                    .entry((scenario, name))
                    .or_insert_with(|| (units, Vec::new()))
                    .1
                    .push(value);
            }
        }
        let mut trends: Vec<Trend> = order
            .into_iter()
            .filter_map(|name| {
                settle.remove(&name).map(|values| Trend {
                    label: format!("{name}: settle/floor"),
                    units: "x".into(),
                    values,
                })
            })
            .collect();
        let mut keyed: Vec<_> = measured.into_iter().collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        trends.extend(
            keyed
                .into_iter()
                .map(|((scenario, name), (units, values))| Trend {
                    label: format!("{scenario}: {name}"),
                    units,
                    values,
                }),
        );
        Ok(RigHistory {
            rig: rig.to_string(),
            run_ids,
            scenarios,
            trends,
        })
    }

    /// Each measurement of `report`'s scenarios in the same rig's `n` runs before it, for the
    /// HTML report: keyed by (scenario name, step index, measurement name).
    pub fn past_runs(&self, report: &RunReport, n: usize) -> Result<PastRuns, HistoryError> {
        let Some(rig) = &report.rig else {
            return Ok(PastRuns::default());
        };
        let run_ids = self.last_runs(&rig.name, n, Some(&report.started_at))?;
        let mut past = PastRuns {
            run_ids: run_ids.clone(),
            ..PastRuns::default()
        };
        for (i, run) in run_ids.iter().enumerate() {
            let mut q = self
                .db
                .prepare(
                    "SELECT s.name, m.step, m.name, m.value FROM measurements m
                     JOIN scenarios s ON s.run_id = m.run_id AND s.position = m.position
                     WHERE m.run_id = ?1",
                )
                .map_err(|e| self.err(e))?;
            let rows = q
                .query_map(params![run], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<f64>>(3)?,
                    ))
                })
                .map_err(|e| self.err(e))?;
            for row in rows {
                let (scenario, step, name, value) = row.map_err(|e| self.err(e))?;
                let slot = past
                    .values
                    .entry((scenario, step as usize, name))
                    .or_insert_with(|| vec![None; run_ids.len()]);
                slot[i] = value;
            }
        }
        Ok(past)
    }

    /// The outcome `run_id` was recorded with, if it was.
    pub fn outcome_of(&self, run_id: &str) -> Result<Option<String>, HistoryError> {
        self.db
            .query_row(
                "SELECT outcome FROM runs WHERE run_id = ?1",
                params![run_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use rig_verify::report::{Measurement, Outcome, RigInfo, ScenarioReport, StepReport};

    use super::*;

    fn run(id: &str, started: &str, outcomes: &[(&str, Outcome, f64)]) -> RunReport {
        let mut r = RunReport::new(id.into());
        r.started_at = started.into();
        r.rig = Some(RigInfo {
            name: "bench-1".into(),
            config: "rig-config/sim.toml".into(),
            backend: "simulated".into(),
            board: "NUCLEO-H755ZI-Q".into(),
            wiring: "direct-smps".into(),
            instruments: Vec::new(),
            usb: Vec::new(),
            config_sha256: None,
            host: None,
        });
        for (name, outcome, attach) in outcomes {
            let mut sc = ScenarioReport::under_way(
                (*name).into(),
                format!("scenarios/{name}.toml"),
                started.into(),
                None,
            );
            sc.outcome = *outcome;
            sc.steps.push(StepReport {
                index: 1,
                line: 3,
                action: "power_cycle".into(),
                outcome: *outcome,
                duration_ms: 10.0,
                measurements: vec![Measurement::info("boot_to_attach", *attach, "ms")],
                message: None,
                diagnosis: None,
                trace: None,
            });
            r.scenarios.push(sc);
        }
        r.outcome = Outcome::Pass;
        r.recount();
        r
    }

    #[test]
    fn pass_rates_unstable_scenarios_and_trends_over_the_last_runs() {
        let dir = tempfile::tempdir().expect("temp");
        let mut h = History::open(dir.path()).expect("open");
        let outcomes = [Outcome::Pass, Outcome::Fail, Outcome::Pass, Outcome::Pass];
        for (i, o) in outcomes.iter().enumerate() {
            let id = format!("2026120{}T000000Z-1", i + 1);
            let started = format!("2026-12-0{}T00:00:00Z", i + 1);
            let r = run(
                &id,
                &started,
                &[
                    ("steady", Outcome::Pass, 5.0 + i as f64),
                    ("wobbly", *o, 7.0),
                ],
            );
            assert!(h.record(&r).expect("record"));
            // Recording again replaces, never doubles.
            assert!(h.record(&r).expect("record again"));
        }
        let s = h.summary("bench-1", 10).expect("summary");
        assert_eq!(s.run_ids.len(), 4);
        let steady = &s.scenarios[0];
        assert_eq!((steady.name.as_str(), steady.unstable()), ("steady", false));
        assert_eq!(steady.pass_rate(), 1.0);
        let wobbly = &s.scenarios[1];
        assert!(wobbly.unstable(), "{wobbly:?}");
        assert_eq!(wobbly.pass_rate(), 0.75);
        let attach = s
            .trends
            .iter()
            .find(|t| t.label == "steady: boot_to_attach")
            .expect("trend");
        assert_eq!(attach.values, vec![5.0, 6.0, 7.0, 8.0]);
        // The last 2 only: the fail has left the window.
        let s = h.summary("bench-1", 2).expect("summary");
        assert!(!s.scenarios[1].unstable());
        assert_eq!(h.rigs().expect("rigs"), vec!["bench-1".to_string()]);

        // The HTML's past values: the runs before the fourth, oldest first.
        let fourth = run(
            "20261204T000000Z-1",
            "2026-12-04T00:00:00Z",
            &[("steady", Outcome::Pass, 8.0)],
        );
        let past = h.past_runs(&fourth, 10).expect("past");
        assert_eq!(past.run_ids.len(), 3);
        assert_eq!(
            past.values[&("steady".to_string(), 1, "boot_to_attach".to_string())],
            vec![Some(5.0), Some(6.0), Some(7.0)]
        );
    }

    #[test]
    fn a_run_that_never_reached_its_rig_is_not_recorded() {
        let dir = tempfile::tempdir().expect("temp");
        let mut h = History::open(dir.path()).expect("open");
        let mut r = RunReport::new("x".into());
        r.outcome = Outcome::Error;
        assert!(!h.record(&r).expect("record"));
        assert_eq!(h.outcome_of("x").expect("query"), None);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::write(dir.path().join(FILE), b"not a database, just text").expect("write");
        let e = History::open(dir.path()).err().expect("an error");
        let text = e.to_string();
        assert!(
            text.contains(FILE) && text.contains("move the file away"),
            "{text}"
        );
    }
}
