//! The run's event log (`events.jsonl` in the run folder): one JSON line per thing that
//! happened, appended as it happens, from which the report is rebuilt ([`replay`];
//! `rig report <run folder>`). A line is written before the run goes on (a killed rig keeps
//! every finished step); it reaches the disk itself at the next synced report write (each
//! scenario's end), so a step never waits for a slow disk.

use serde::{Deserialize, Serialize};

use rig_instruments::{EmulationStats, FirmwareIdentity};

use super::{Attempt, Outcome, RigInfo, RunReport, ScenarioReport, StepReport};

/// One line of `events.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        schema: String,
        run_id: String,
        tool: String,
        started_at: String,
    },
    RigReady {
        rig: RigInfo,
        firmware: FirmwareIdentity,
    },
    ScenarioStarted {
        name: String,
        file: String,
        started_at: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    /// A finished step of the scenario under way.
    Step { step: StepReport },
    /// The attempt under way ended in `error` and starts over (its steps are in `attempt`).
    ScenarioRetried { attempt: Attempt },
    /// A scenario ended (or was never started): the whole of it.
    ScenarioDone {
        scenario: ScenarioReport,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        emulation: Option<EmulationStats>,
    },
    RunDone {
        outcome: Outcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        finished_at: String,
    },
}

/// Why an event log cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("no run_started event on the first line: not a rig event log")]
    NoStart,
}

/// The report the events describe. A log that stops short (a killed run) gives the report
/// as it stood: the scenario under way with its finished steps and outcome `running`, the
/// run `running`. A torn last line (the kill came mid-write) is left out.
pub fn replay(text: &str) -> Result<RunReport, ReplayError> {
    let mut report: Option<RunReport> = None;
    let mut current: Option<ScenarioReport> = None;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = match serde_json::from_str(line) {
            Ok(e) => e,
            // Only the last line can be torn; anything else is a damaged file.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => {
                return Err(ReplayError::Line {
                    line: i + 1,
                    reason: e.to_string(),
                })
            }
        };
        if let Event::RunStarted {
            schema,
            run_id,
            tool,
            started_at,
        } = &event
        {
            let mut r = RunReport::new(run_id.clone());
            r.schema.clone_from(schema);
            r.tool.clone_from(tool);
            r.started_at.clone_from(started_at);
            report = Some(r);
            continue;
        }
        let Some(r) = report.as_mut() else {
            return Err(ReplayError::NoStart);
        };
        match event {
            Event::RunStarted { .. } => {}
            Event::RigReady { rig, firmware } => {
                r.rig = Some(rig);
                r.firmware = Some(firmware);
            }
            Event::ScenarioStarted {
                name,
                file,
                started_at,
                description,
            } => {
                current = Some(ScenarioReport::under_way(
                    name,
                    file,
                    started_at,
                    description,
                ));
            }
            Event::Step { step } => {
                if let Some(c) = current.as_mut() {
                    c.duration_ms += step.duration_ms;
                    c.steps.push(step);
                }
            }
            Event::ScenarioRetried { attempt } => {
                if let Some(c) = current.as_mut() {
                    c.steps.clear();
                    c.duration_ms = 0.0;
                    c.retried.push(attempt);
                }
            }
            Event::ScenarioDone {
                scenario,
                emulation,
            } => {
                current = None;
                r.scenarios.push(scenario);
                if emulation.is_some() {
                    r.emulation = emulation;
                }
            }
            Event::RunDone {
                outcome,
                error,
                finished_at,
            } => {
                r.outcome = outcome;
                r.error = error;
                r.finished_at = Some(finished_at);
            }
        }
    }
    let mut r = report.ok_or(ReplayError::NoStart)?;
    if let Some(c) = current {
        r.scenarios.push(c);
    }
    if r.finished_at.is_none() {
        r.outcome = Outcome::Running;
        r.error = Some(
            "the run stopped before it finished (the rig was killed or the machine went down): rebuilt from events.jsonl".into(),
        );
    }
    r.recount();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> String {
        serde_json::to_string(&Event::RunStarted {
            schema: "gauge-rig-report/1".into(),
            run_id: "r".into(),
            tool: "rig".into(),
            started_at: "t".into(),
        })
        .expect("json")
    }

    #[test]
    fn a_torn_last_line_is_left_out_and_a_damaged_one_named() {
        let torn = format!("{}\n{{\"event\":\"scenario_sta", start());
        let r = replay(&torn).expect("replays");
        assert_eq!(r.outcome, Outcome::Running);
        assert!(r.scenarios.is_empty());
        let damaged = format!("{}\nnot json\n{}\n", start(), start());
        let e = replay(&damaged).expect_err("damaged").to_string();
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(replay("{\"event\":\"step\"}\n").is_err());
        assert!(matches!(replay(""), Err(ReplayError::NoStart)));
    }
}
