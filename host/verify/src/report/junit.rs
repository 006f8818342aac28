//! The run report as JUnit XML (`junit.xml` beside `report.json`), for CI servers.
//!
//! Dialect: the Ant/Maven Surefire JUnit XML that Jenkins' JUnit plugin and GitLab's unit test
//! reports read: `<testsuites>` with one `<testsuite>` per run, one `<testcase>` per scenario
//! (`classname` = the scenario file's stem, `file` = its path, `time` in seconds), and in a
//! test case at most one of `<failure>` (the gauge failed), `<error>` (the rig, an instrument
//! or the config stopped it: JUnit's own split between a failed assertion and an error) or
//! `<skipped>`. Measurements are `<property>` elements of their test case (name
//! `step<N>.<action>.<measurement>`, value with units and limits), as pytest's xunit1 family
//! writes them; readers that do not know test-case properties ignore them. Step lines,
//! messages and diagnoses go to `<system-out>`. Counts equal `report.json`'s summary: a
//! scenario still `running` (a killed run) is an error, as there.

use std::fmt::Write as _;

use quick_xml::{
    events::{BytesDecl, BytesText, Event},
    Writer,
};

use super::{Measurement, Outcome, RunReport, ScenarioReport, StepReport};

/// XML 1.0 cannot carry most control characters even escaped; a device's garbage in a
/// message must not make the file unreadable.
fn xml_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

fn seconds(ms: f64) -> String {
    // (An empty sum of f64 is -0.0.)
    let s = ms / 1000.0;
    format!("{:.3}", if s > 0.0 { s } else { 0.0 })
}

fn limits(m: &Measurement) -> String {
    match (m.low, m.high) {
        (Some(l), Some(h)) => format!(" [{l}, {h}]"),
        (Some(l), None) => format!(" [>= {l}]"),
        (None, Some(h)) => format!(" [<= {h}]"),
        (None, None) => String::new(),
    }
}

fn step_line(step: &StepReport) -> String {
    let mut line = format!(
        "[{}] {} {} ({:.0} ms)",
        step.outcome.name(),
        step.index,
        step.action,
        step.duration_ms
    );
    for m in &step.measurements {
        let _ = write!(line, " {}={}{}{}", m.name, m.value, m.units, limits(m));
    }
    if let Some(msg) = &step.message {
        let _ = write!(line, "\n    {msg}");
    }
    if let Some(d) = &step.diagnosis {
        let _ = write!(line, "\n    diagnosis: {d}");
    }
    line
}

fn classname(scenario: &ScenarioReport) -> String {
    std::path::Path::new(&scenario.file)
        .file_stem()
        .map(|s| format!("scenarios.{}", s.to_string_lossy()))
        .unwrap_or_else(|| "scenarios".into())
}

type XmlResult = std::io::Result<()>;

fn text_element(
    w: &mut Writer<Vec<u8>>,
    name: &str,
    attrs: &[(&str, &str)],
    text: &str,
) -> XmlResult {
    let safe = xml_safe(text);
    let attrs: Vec<(&str, String)> = attrs.iter().map(|(k, v)| (*k, xml_safe(v))).collect();
    w.create_element(name)
        .with_attributes(attrs.iter().map(|(k, v)| (*k, v.as_str())))
        .write_text_content(BytesText::new(&safe))?;
    Ok(())
}

fn testcase(w: &mut Writer<Vec<u8>>, scenario: &ScenarioReport) -> XmlResult {
    let time = seconds(scenario.duration_ms);
    let class = classname(scenario);
    let name = xml_safe(&scenario.name);
    let file = xml_safe(&scenario.file);
    w.create_element("testcase")
        .with_attributes([
            ("name", name.as_str()),
            ("classname", class.as_str()),
            ("file", file.as_str()),
            ("time", time.as_str()),
        ])
        .write_inner_content(|w| {
            let measured: Vec<(String, String)> = scenario
                .steps
                .iter()
                .flat_map(|step| {
                    step.measurements.iter().map(move |m| {
                        (
                            format!("step{}.{}.{}", step.index, step.action, m.name),
                            format!("{} {}{} {}", m.value, m.units, limits(m), m.outcome.name()),
                        )
                    })
                })
                .collect();
            if !measured.is_empty() {
                w.create_element("properties").write_inner_content(|w| {
                    for (name, value) in &measured {
                        let (name, value) = (xml_safe(name), xml_safe(value));
                        w.create_element("property")
                            .with_attributes([("name", name.as_str()), ("value", value.as_str())])
                            .write_empty()?;
                    }
                    Ok(())
                })?;
            }
            let deciding = scenario.deciding_step();
            let message = scenario.stop_reason();
            let detail = deciding.map(step_line).unwrap_or_else(|| message.clone());
            match scenario.outcome {
                Outcome::Pass => {}
                Outcome::Flaky => {
                    // Surefire's rerun record: the test passed; each earlier attempt that
                    // erred is a flakyError (Jenkins shows the test as flaky).
                    for attempt in &scenario.retried {
                        let msg = xml_safe(&attempt.error);
                        let trace: Vec<String> = attempt.steps.iter().map(step_line).collect();
                        w.create_element("flakyError")
                            .with_attributes([("message", msg.as_str()), ("type", "error")])
                            .write_inner_content(|w| {
                                text_element(w, "stackTrace", &[], &trace.join("\n"))
                            })?;
                    }
                }
                Outcome::Fail => text_element(
                    w,
                    "failure",
                    &[("message", &message), ("type", "fail")],
                    &detail,
                )?,
                Outcome::Error | Outcome::Running => {
                    let kind = if scenario.outcome == Outcome::Running {
                        "running (the run ended during this scenario)"
                    } else {
                        "error"
                    };
                    text_element(
                        w,
                        "error",
                        &[("message", &message), ("type", kind)],
                        &detail,
                    )?
                }
                Outcome::Skipped => {
                    let msg = xml_safe(&message);
                    w.create_element("skipped")
                        .with_attribute(("message", msg.as_str()))
                        .write_empty()?;
                }
            }
            let mut out = String::new();
            if let Some(d) = &scenario.description {
                let _ = writeln!(out, "{d}");
            }
            for step in &scenario.steps {
                let _ = writeln!(out, "{}", step_line(step));
            }
            if let Some(s) = &scenario.settling {
                let _ = writeln!(
                    out,
                    "settling {:.0} ms vs floor {:.0} ms ({:.2}x over {} set-points)",
                    s.total_ms, s.floor_ms, s.ratio, s.setpoints
                );
            }
            // GitLab's and Jenkins' attachment convention; paths relative to the run folder.
            for file in &scenario.evidence {
                let _ = writeln!(out, "[[ATTACHMENT|{file}]]");
            }
            text_element(w, "system-out", &[], &out)
        })?;
    Ok(())
}

/// The report as JUnit XML.
pub fn render(report: &RunReport) -> std::io::Result<String> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let s = &report.summary;
    let total_ms: f64 = report.scenarios.iter().map(|sc| sc.duration_ms).sum();
    let (tests, failures, errors, skipped) = (
        s.scenarios.to_string(),
        s.failed.to_string(),
        s.errors.to_string(),
        s.skipped.to_string(),
    );
    let time = seconds(total_ms);
    let rig_name = report
        .rig
        .as_ref()
        .map(|r| r.name.as_str())
        .unwrap_or("rig");
    let suite = xml_safe(&format!("gauge-rig on {rig_name}"));
    let run_name = xml_safe(&format!("gauge-rig run {}", report.run_id));
    let counts = [
        ("tests", tests.as_str()),
        ("failures", failures.as_str()),
        ("errors", errors.as_str()),
        ("skipped", skipped.as_str()),
        ("time", time.as_str()),
    ];
    w.create_element("testsuites")
        .with_attribute(("name", run_name.as_str()))
        .with_attributes(counts)
        .write_inner_content(|w| {
            let timestamp = xml_safe(&report.started_at);
            w.create_element("testsuite")
                .with_attributes([("name", suite.as_str()), ("id", "0")])
                .with_attributes(counts)
                .with_attribute(("timestamp", timestamp.as_str()))
                .write_inner_content(|w| {
                    let mut props = vec![
                        ("run_id".to_string(), report.run_id.clone()),
                        ("outcome".to_string(), report.outcome.name().to_string()),
                        ("tool".to_string(), report.tool.clone()),
                        ("flaky".to_string(), report.summary.flaky.to_string()),
                    ];
                    if let Some(rig) = &report.rig {
                        props.push(("rig".into(), rig.name.clone()));
                        props.push(("rig.config".into(), rig.config.clone()));
                        props.push(("rig.backend".into(), rig.backend.clone()));
                        props.push(("board".into(), rig.board.clone()));
                    }
                    if let Some(fw) = &report.firmware {
                        if let Ok(v) = serde_json::to_value(fw) {
                            if let Some(map) = v.as_object() {
                                for (k, v) in map {
                                    let v = v.as_str().map(str::to_string).unwrap_or(v.to_string());
                                    props.push((format!("firmware.{k}"), v));
                                }
                            }
                        }
                    }
                    w.create_element("properties").write_inner_content(|w| {
                        for (name, value) in &props {
                            let (name, value) = (xml_safe(name), xml_safe(value));
                            w.create_element("property")
                                .with_attributes([
                                    ("name", name.as_str()),
                                    ("value", value.as_str()),
                                ])
                                .write_empty()?;
                        }
                        Ok(())
                    })?;
                    for scenario in &report.scenarios {
                        testcase(w, scenario)?;
                    }
                    if let Some(e) = &report.error {
                        text_element(w, "system-err", &[], &format!("run: {e}"))?;
                    }
                    Ok(())
                })?;
            Ok(())
        })?;
    let mut xml = String::from_utf8(w.into_inner()).map_err(std::io::Error::other)?;
    xml.push('\n');
    Ok(xml)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_xml::{events::Event, Reader};

    fn scenario(name: &str, outcome: Outcome, step_outcome: Option<Outcome>) -> ScenarioReport {
        ScenarioReport {
            name: name.into(),
            file: format!("scenarios/{name}.toml"),
            outcome,
            started_at: "2026-12-02T00:00:00Z".into(),
            duration_ms: 1500.0,
            description: None,
            steps: step_outcome
                .map(|o| StepReport {
                    index: 2,
                    line: 7,
                    action: "expect_pulse".into(),
                    outcome: o,
                    duration_ms: 900.0,
                    measurements: vec![Measurement::limited(
                        "pulse_width",
                        1300.0,
                        "us",
                        Some(996.0),
                        Some(1004.0),
                    )],
                    message: Some(format!("{name} went wrong")),
                    diagnosis: Some("what it means".into()),
                    trace: None,
                })
                .into_iter()
                .collect(),
            settling: None,
            error: None,
            retried: Vec::new(),
            evidence: Vec::new(),
        }
    }

    /// (element, attributes) of every start or empty element.
    fn elements(xml: &str) -> Vec<(String, Vec<(String, String)>)> {
        let mut reader = Reader::from_str(xml);
        let mut out = Vec::new();
        loop {
            match reader.read_event().expect("well-formed XML") {
                Event::Start(e) | Event::Empty(e) => {
                    let name = String::from_utf8_lossy(e.name().as_ref()).to_string();
                    let attrs = e
                        .attributes()
                        .map(|a| {
                            let a = a.expect("attribute");
                            (
                                String::from_utf8_lossy(a.key.as_ref()).to_string(),
                                a.unescape_value().expect("value").to_string(),
                            )
                        })
                        .collect();
                    out.push((name, attrs));
                }
                Event::Eof => break,
                _ => {}
            }
        }
        out
    }

    fn attr<'a>(attrs: &'a [(String, String)], key: &str) -> &'a str {
        attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key} in {attrs:?}"))
    }

    #[test]
    fn counts_and_elements_follow_the_report() {
        let mut report = RunReport::new("r2".into());
        report.scenarios = vec![
            scenario("passes", Outcome::Pass, Some(Outcome::Pass)),
            scenario("fails", Outcome::Fail, Some(Outcome::Fail)),
            scenario("errs", Outcome::Error, Some(Outcome::Error)),
            scenario("killed", Outcome::Running, Some(Outcome::Pass)),
            scenario("not_run", Outcome::Skipped, None),
        ];
        report.recount();
        let xml = render(&report).expect("renders");
        let els = elements(&xml);
        let count = |name: &str| els.iter().filter(|(n, _)| n == name).count();
        assert_eq!(count("testcase"), 5, "{xml}");
        assert_eq!(count("failure"), 1, "{xml}");
        assert_eq!(
            count("error"),
            2,
            "an error and a scenario left running: {xml}"
        );
        assert_eq!(count("skipped"), 1, "{xml}");
        for suite in els
            .iter()
            .filter(|(n, _)| n == "testsuite" || n == "testsuites")
        {
            assert_eq!(attr(&suite.1, "tests"), "5");
            assert_eq!(
                attr(&suite.1, "failures"),
                report.summary.failed.to_string()
            );
            assert_eq!(attr(&suite.1, "errors"), report.summary.errors.to_string());
            assert_eq!(
                attr(&suite.1, "skipped"),
                report.summary.skipped.to_string()
            );
        }
        let failure = &els.iter().find(|(n, _)| n == "failure").expect("failure").1;
        assert_eq!(
            attr(failure, "message"),
            "step 2 expect_pulse: fails went wrong"
        );
        assert!(xml.contains("diagnosis: what it means"), "{xml}");
        let case = &els
            .iter()
            .find(|(n, _)| n == "testcase")
            .expect("testcase")
            .1;
        assert_eq!(attr(case, "classname"), "scenarios.passes");
        assert_eq!(attr(case, "time"), "1.500");
        let prop = els
            .iter()
            .find(|(n, a)| n == "property" && attr(a, "name") == "step2.expect_pulse.pulse_width")
            .expect("a measurement property");
        assert_eq!(attr(&prop.1, "value"), "1300 us [996, 1004] fail");
    }

    #[test]
    fn control_characters_are_replaced_and_markup_escaped() {
        assert_eq!(xml_safe("a\u{1}b\tc\u{7f}"), "a\u{fffd}b\tc\u{7f}");
        let mut report = RunReport::new("r1".into());
        report.error = Some("garbage <\u{0}> & \"quotes\"".into());
        report.recount();
        let xml = render(&report).expect("renders");
        assert!(
            xml.contains("garbage &lt;\u{fffd}&gt; &amp; &quot;quotes&quot;"),
            "{xml}"
        );
        assert!(xml.contains(r#"time="0.000""#), "{xml}");
        assert!(!xml.contains('\u{0}'));
    }
}
