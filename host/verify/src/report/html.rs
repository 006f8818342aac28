//! The run report as one self-contained HTML page (`report.html` beside `report.json`): no
//! script, no network, plots as inline SVG. A person looking at a failed night wants the
//! needle's pulses against the tolerance band, not a number: each step that watched the needle
//! (its [`PulseTrace`]) gets a plot of pulse width against time with the expected value and
//! band; power-cycle steps get their timings as bars. The page is rendered from the report
//! alone, so `rig report` re-renders it from the event log.

use std::{collections::HashMap, fmt::Write as _};

use super::{Measurement, Outcome, PulseTrace, RunReport, ScenarioReport, StepReport};

/// Plot size in SVG user units (the page scales it to its width).
const PLOT_W: f64 = 640.0;
const PLOT_H: f64 = 220.0;
const MARGIN_L: f64 = 60.0;
const MARGIN_R: f64 = 14.0;
const MARGIN_T: f64 = 14.0;
const MARGIN_B: f64 = 34.0;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:60em;color:#222;padding:0 1em}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}h3{font-size:1em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.pass{color:#176e2a}.fail{color:#b00020;font-weight:bold}.error{color:#a04800;font-weight:bold}\
.flaky{color:#7a5b00;font-weight:bold}.skipped,.running{color:#666}\
svg{max-width:100%;height:auto;background:#fff;border:1px solid #ddd}.band{fill:#cfe8d4}\
.target{stroke:#176e2a;stroke-dasharray:4 3}.axis{stroke:#444}.grid{stroke:#eee}\
circle.pulse{fill:#1f5fbf}circle.pulse.out{fill:#b00020}.bar{fill:#1f5fbf}\
text{font:11px system-ui,sans-serif;fill:#333}.msg{white-space:pre-wrap}";

/// The same rig's earlier runs (from the history), for each measurement shown against them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PastRuns {
    /// Oldest first.
    pub run_ids: Vec<String>,
    /// (scenario name, step index, measurement name) -> its value in each of `run_ids`
    /// (`None`: not measured in that run).
    pub values: HashMap<(String, usize, String), Vec<Option<f64>>>,
}

/// The whole page, without history.
pub fn render(report: &RunReport) -> String {
    render_with(report, &PastRuns::default())
}

/// The whole page, each measurement beside its values in `past`.
pub fn render_with(report: &RunReport, past: &PastRuns) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = format!("gauge rig run {}: {}", report.run_id, report.outcome.name());
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{}</title>\
         <style>{STYLE}</style></head><body>\n",
        esc(&title)
    );
    summary(&mut h, report);
    for (i, sc) in report.scenarios.iter().enumerate() {
        scenario(&mut h, i + 1, sc, past);
    }
    h.push_str("</body></html>\n");
    h
}

fn outcome(o: Outcome) -> String {
    format!("<span class=\"{0}\">{0}</span>", o.name())
}

fn summary(h: &mut String, r: &RunReport) {
    let s = &r.summary;
    let _ = write!(
        h,
        "<h1>Run {} &mdash; {}</h1>\n<table id=\"summary\">\
         <tr><th>scenarios</th><td>{}</td></tr><tr><th>passed</th><td>{}</td></tr>\
         <tr><th>failed</th><td>{}</td></tr><tr><th>errors</th><td>{}</td></tr>\
         <tr><th>flaky</th><td>{}</td></tr><tr><th>skipped</th><td>{}</td></tr>\
         <tr><th>started</th><td>{}</td></tr><tr><th>finished</th><td>{}</td></tr>\
         <tr><th>tool</th><td>{}</td></tr>",
        esc(&r.run_id),
        outcome(r.outcome),
        s.scenarios,
        s.passed,
        s.failed,
        s.errors,
        s.flaky,
        s.skipped,
        esc(&r.started_at),
        esc(r.finished_at.as_deref().unwrap_or("(not finished)")),
        esc(&r.tool),
    );
    if let Some(rig) = &r.rig {
        let _ = write!(
            h,
            "<tr><th>rig</th><td>{} ({}; {} board {}, wiring {})</td></tr>\
             <tr><th>rig config sha256</th><td>{}</td></tr><tr><th>host</th><td>{}</td></tr>\
             <tr><th>instruments</th><td>{}</td></tr>",
            esc(&rig.name),
            esc(&rig.config),
            esc(&rig.backend),
            esc(&rig.board),
            esc(&rig.wiring),
            esc(rig.config_sha256.as_deref().unwrap_or("(unread)")),
            esc(rig.host.as_deref().unwrap_or("(unknown)")),
            rig.instruments
                .iter()
                .map(|i| esc(i))
                .collect::<Vec<_>>()
                .join("<br>")
        );
    }
    if let Some(fw) = &r.firmware {
        let json = serde_json::to_string(fw).unwrap_or_default();
        let _ = write!(h, "<tr><th>firmware</th><td>{}</td></tr>", esc(&json));
    }
    if let Some(e) = &r.emulation {
        let _ = write!(
            h,
            "<tr><th>emulation</th><td>real-time factor {:.3}</td></tr>",
            e.real_time_factor
        );
    }
    if let Some(e) = &r.error {
        let _ = write!(
            h,
            "<tr><th>error</th><td class=\"msg\">{}</td></tr>",
            esc(e)
        );
    }
    h.push_str("</table>\n<table id=\"scenarios\"><tr><th>#</th><th>scenario</th><th>outcome</th><th>duration</th><th>settle/floor</th></tr>\n");
    for (i, sc) in r.scenarios.iter().enumerate() {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td><a href=\"#s{}\">{}</a></td><td>{}</td><td>{:.1} s</td><td>{}</td></tr>",
            i + 1,
            i + 1,
            esc(&sc.name),
            outcome(sc.outcome),
            sc.duration_ms / 1000.0,
            sc.settling
                .as_ref()
                .map_or(String::new(), |st| format!("{:.2}", st.ratio))
        );
    }
    h.push_str("</table>\n");
}

fn scenario(h: &mut String, n: usize, sc: &ScenarioReport, past: &PastRuns) {
    let _ = write!(
        h,
        "<section class=\"scenario\" id=\"s{n}\"><h2>{n}. {} &mdash; {}</h2><p>{} &middot; {:.1} s",
        esc(&sc.name),
        outcome(sc.outcome),
        esc(&sc.file),
        sc.duration_ms / 1000.0
    );
    if let Some(d) = &sc.description {
        let _ = write!(h, "<br>{}", esc(d));
    }
    if let Some(st) = &sc.settling {
        let _ = write!(
            h,
            "<br>settling: {} set-points, {:.0} ms against a physical floor of {:.0} ms (ratio {:.2})",
            st.setpoints, st.total_ms, st.floor_ms, st.ratio
        );
    }
    h.push_str("</p>\n");
    if let Some(e) = &sc.error {
        let _ = writeln!(h, "<p class=\"msg error\">{}</p>", esc(e));
    }
    for a in &sc.retried {
        let _ = writeln!(
            h,
            "<p class=\"msg\">earlier attempt ({}, {}): {}</p>",
            outcome(a.outcome),
            esc(&a.started_at),
            esc(&a.error)
        );
    }
    h.push_str("<table class=\"steps\"><tr><th>step</th><th>line</th><th>action</th><th>outcome</th><th>time</th><th>message</th></tr>\n");
    for s in &sc.steps {
        let mut message = esc(s.message.as_deref().unwrap_or(""));
        if let Some(d) = &s.diagnosis {
            message += &format!("<br><b>diagnosis:</b> {}", esc(d));
        }
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0} ms</td><td class=\"msg\">{message}</td></tr>",
            s.index,
            s.line,
            esc(&s.action),
            outcome(s.outcome),
            s.duration_ms
        );
    }
    h.push_str("</table>\n");
    for s in &sc.steps {
        step_details(h, n, s, &sc.name, past);
    }
    if !sc.evidence.is_empty() {
        h.push_str("<p>evidence: ");
        for e in &sc.evidence {
            let _ = write!(h, "<a href=\"{0}\">{0}</a> ", esc(e));
        }
        h.push_str("</p>\n");
    }
    h.push_str("</section>\n");
}

fn step_details(h: &mut String, scenario: usize, s: &StepReport, name: &str, past: &PastRuns) {
    if s.measurements.is_empty() && s.trace.is_none() {
        return;
    }
    let _ = writeln!(h, "<h3>step {} {}</h3>", s.index, esc(&s.action));
    if let Some(trace) = &s.trace {
        pulse_plot(h, scenario, s, trace);
    }
    if s.action.starts_with("power_cycle") {
        timing_bars(h, scenario, s);
    }
    if !s.measurements.is_empty() {
        let with_past = !past.run_ids.is_empty();
        let _ = writeln!(
            h,
            "<table class=\"measurements\"><tr><th>measurement</th><th>value</th><th>units</th><th>low</th><th>high</th><th>outcome</th>{}</tr>",
            if with_past {
                format!("<th>last {} runs</th>", past.run_ids.len())
            } else {
                String::new()
            }
        );
        for m in &s.measurements {
            let history = if with_past {
                let key = (name.to_string(), s.index, m.name.clone());
                format!("<td>{}</td>", sparkline(past.values.get(&key), m.value))
            } else {
                String::new()
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{history}</tr>",
                esc(&m.name),
                number(m.value),
                esc(&m.units),
                m.low.map_or(String::new(), number),
                m.high.map_or(String::new(), number),
                outcome(m.outcome)
            );
        }
        h.push_str("</table>\n");
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// Round tick steps (1, 2, 5 x 10^k) giving about `count` ticks over `span`.
fn tick_step(span: f64, count: f64) -> f64 {
    let raw = (span / count).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|k| k * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag)
}

/// Pulse width against time, with the target and its tolerance band; every kept point a
/// circle (`data-t`, `data-us`), red outside the band.
fn pulse_plot(h: &mut String, scenario: usize, s: &StepReport, t: &PulseTrace) {
    let n = t.t_ms.len().min(t.width_us.len());
    let (lo_band, hi_band) = (t.target_us - t.tolerance_us, t.target_us + t.tolerance_us);
    let finite = |v: &&f64| v.is_finite();
    let mut x0 = t.t_ms.iter().filter(finite).copied().fold(0.0, f64::min);
    let mut x1 = t.t_ms.iter().filter(finite).copied().fold(0.0, f64::max);
    if x1 - x0 < 1.0 {
        x1 = x0 + 1.0;
    }
    let pad_y = (t.tolerance_us * 2.0).max(1.0);
    let mut y0 = t
        .width_us
        .iter()
        .filter(finite)
        .copied()
        .fold(lo_band - pad_y, f64::min);
    let mut y1 = t
        .width_us
        .iter()
        .filter(finite)
        .copied()
        .fold(hi_band + pad_y, f64::max);
    let (dx, dy) = (tick_step(x1 - x0, 6.0), tick_step(y1 - y0, 5.0));
    x0 = (x0 / dx).floor() * dx;
    x1 = (x1 / dx).ceil() * dx;
    y0 = (y0 / dy).floor() * dy;
    y1 = (y1 / dy).ceil() * dy;
    let (pw, ph) = (PLOT_W - MARGIN_L - MARGIN_R, PLOT_H - MARGIN_T - MARGIN_B);
    let sx = |x: f64| MARGIN_L + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| MARGIN_T + (y1 - y) / (y1 - y0) * ph;
    let _ = write!(
        h,
        "<figure><svg class=\"pulse-plot\" id=\"plot-{scenario}-{}\" data-step=\"{}\" data-target-us=\"{}\" \
         data-tolerance-us=\"{}\" data-points=\"{n}\" data-captured=\"{}\" viewBox=\"0 0 {PLOT_W} {PLOT_H}\" \
         xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">",
        s.index,
        s.index,
        number(t.target_us),
        number(t.tolerance_us),
        t.captured
    );
    // Grid and tick labels.
    let mut x = x0;
    while x <= x1 + dx / 2.0 {
        let px = sx(x);
        let _ = write!(
            h,
            "<line class=\"grid\" x1=\"{px:.1}\" y1=\"{MARGIN_T}\" x2=\"{px:.1}\" y2=\"{:.1}\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            MARGIN_T + ph,
            MARGIN_T + ph + 14.0,
            number(x)
        );
        x += dx;
    }
    let mut y = y0;
    while y <= y1 + dy / 2.0 {
        let py = sy(y);
        let _ = write!(
            h,
            "<line class=\"grid\" x1=\"{MARGIN_L}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            MARGIN_L + pw,
            MARGIN_L - 4.0,
            py + 4.0,
            number(y)
        );
        y += dy;
    }
    let _ = write!(
        h,
        "<rect class=\"band\" x=\"{MARGIN_L}\" y=\"{:.1}\" width=\"{pw:.1}\" height=\"{:.1}\"/>\
         <line class=\"target\" x1=\"{MARGIN_L}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\
         <line class=\"axis\" x1=\"{MARGIN_L}\" y1=\"{MARGIN_T}\" x2=\"{MARGIN_L}\" y2=\"{:.1}\"/>\
         <line class=\"axis\" x1=\"{MARGIN_L}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">ms from the reference</text>\
         <text x=\"12\" y=\"{:.1}\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">pulse width (us)</text>",
        sy(hi_band),
        (sy(lo_band) - sy(hi_band)).max(1.0),
        sy(t.target_us),
        MARGIN_L + pw,
        sy(t.target_us),
        MARGIN_T + ph,
        MARGIN_T + ph,
        MARGIN_L + pw,
        MARGIN_T + ph,
        MARGIN_L + pw / 2.0,
        PLOT_H - 4.0,
        MARGIN_T + ph / 2.0,
        MARGIN_T + ph / 2.0,
    );
    for (&tm, &us) in t.t_ms.iter().zip(&t.width_us) {
        if !(tm.is_finite() && us.is_finite()) {
            continue;
        }
        let out = if (lo_band..=hi_band).contains(&us) {
            ""
        } else {
            " out"
        };
        let _ = write!(
            h,
            "<circle class=\"pulse{out}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" data-t=\"{}\" data-us=\"{}\"/>",
            sx(tm),
            sy(us),
            number(tm),
            number(us)
        );
    }
    let thinned = if t.captured > n {
        format!(" ({n} of {} pulses shown)", t.captured)
    } else {
        String::new()
    };
    let _ = writeln!(
        h,
        "</svg><figcaption>step {} {}: pulse width against time, expected {} &plusmn; {} us (band){thinned}</figcaption></figure>",
        s.index,
        esc(&s.action),
        number(t.target_us),
        number(t.tolerance_us)
    );
}

/// A power cycle's timings (its measurements in ms) as horizontal bars.
fn timing_bars(h: &mut String, scenario: usize, s: &StepReport) {
    let timings: Vec<&Measurement> = s
        .measurements
        .iter()
        .filter(|m| m.units == "ms" && m.value.is_finite() && m.value >= 0.0)
        .collect();
    if timings.is_empty() {
        return;
    }
    let max = timings.iter().map(|m| m.value).fold(1.0, f64::max);
    let row = 20.0;
    let height = row * timings.len() as f64 + 10.0;
    let (label_w, bar_w) = (200.0, PLOT_W - 200.0 - 90.0);
    let _ = write!(
        h,
        "<figure><svg class=\"timing-plot\" id=\"timing-{scenario}-{}\" viewBox=\"0 0 {PLOT_W} {height}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">",
        s.index
    );
    for (i, m) in timings.iter().enumerate() {
        let y = 5.0 + row * i as f64;
        let w = (m.value / max * bar_w).max(1.0);
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"bar\" x=\"{label_w}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{} ms</text>",
            label_w - 6.0,
            y + 13.0,
            esc(&m.name),
            y + 2.0,
            row - 6.0,
            label_w + w + 4.0,
            y + 13.0,
            number(m.value)
        );
    }
    let _ = writeln!(
        h,
        "</svg><figcaption>step {} {}: timings</figcaption></figure>",
        s.index,
        esc(&s.action)
    );
}

/// A measurement's earlier values and this run's (the last point, filled) as a small line,
/// with their range; empty when no earlier run measured it.
fn sparkline(earlier: Option<&Vec<Option<f64>>>, now: f64) -> String {
    let Some(earlier) = earlier else {
        return String::new();
    };
    let values: Vec<f64> = earlier
        .iter()
        .flatten()
        .copied()
        .chain(std::iter::once(now))
        .filter(|v| v.is_finite())
        .collect();
    if values.len() < 2 {
        return String::new();
    }
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (w, ht) = (90.0, 18.0);
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let step = w / (values.len() - 1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                ht - 2.0 - (v - lo) / span * (ht - 4.0)
            )
        })
        .collect();
    let last = points.last().cloned().unwrap_or_default();
    let (lx, ly) = last.split_once(',').unwrap_or(("0", "0"));
    format!(
        "<svg class=\"spark\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" xmlns=\"http://www.w3.org/2000/svg\" data-values=\"{}\">\
         <polyline fill=\"none\" stroke=\"#888\" points=\"{}\"/><circle cx=\"{lx}\" cy=\"{ly}\" r=\"2\" fill=\"#1f5fbf\"/></svg> {}..{}",
        values.iter().map(|v| number(*v)).collect::<Vec<_>>().join(" "),
        points.join(" "),
        number(lo),
        number(hi)
    )
}

/// Text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Measurement, RunReport};

    fn report_with(trace: Option<PulseTrace>, message: &str) -> RunReport {
        let mut r = RunReport::new("20261204T000000Z-1".into());
        let mut sc = ScenarioReport::under_way(
            "oil <hot> & \"cold\"".into(),
            "scenarios/x.toml".into(),
            "2026-12-04T00:00:00Z".into(),
            None,
        );
        sc.outcome = Outcome::Fail;
        sc.steps.push(StepReport {
            index: 2,
            line: 7,
            action: "expect_pulse".into(),
            outcome: Outcome::Fail,
            duration_ms: 900.0,
            measurements: vec![Measurement::limited(
                "pulse_width",
                1300.0,
                "us",
                Some(1451.0),
                Some(1459.0),
            )],
            message: Some(message.into()),
            diagnosis: None,
            trace,
        });
        r.scenarios.push(sc);
        r.recount();
        r
    }

    #[test]
    fn a_trace_becomes_one_plot_with_a_circle_per_point() {
        let mut t = PulseTrace::new(1455.0, 4.0);
        for i in 0..30 {
            t.push(
                f64::from(i) * 20.0 - 40.0,
                900.0 + f64::from(i.min(14)) * 40.0,
            );
        }
        let html = render(&report_with(Some(t), "x"));
        assert_eq!(html.matches("<svg class=\"pulse-plot\"").count(), 1);
        assert_eq!(html.matches("<circle class=\"pulse").count(), 30);
        assert!(html.contains("data-points=\"30\""), "{html}");
        assert!(html.contains("data-t=\"-40\" data-us=\"900\""), "{html}");
        // 900..1420 are outside 1455 +- 4, the last 16 (1460) too: all red but none in band.
        assert_eq!(html.matches("class=\"pulse out\"").count(), 30);
    }

    #[test]
    fn text_is_escaped_and_nothing_is_fetched() {
        let html = render(&report_with(None, "<script>alert(1)</script>"));
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("oil &lt;hot&gt; &amp; &quot;cold&quot;"));
        assert!(
            !html.contains("http://")
                || html.matches("http://").count()
                    == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
        );
        assert!(!html.contains("https://"));
        assert!(
            !html.contains("<svg class=\"pulse-plot\""),
            "no trace, no plot"
        );
    }

    #[test]
    fn a_long_trace_is_thinned_keeping_both_ends() {
        let mut t = PulseTrace::new(1000.0, 4.0);
        for i in 0..1000 {
            t.push(f64::from(i), 1000.0);
        }
        let t = t.thinned();
        assert_eq!(t.t_ms.len(), PulseTrace::MAX_POINTS);
        assert_eq!(t.captured, 1000);
        assert_eq!(t.t_ms.first(), Some(&0.0));
        assert_eq!(t.t_ms.last(), Some(&999.0));
    }

    #[test]
    fn measurements_show_against_the_last_runs() {
        let report = report_with(None, "x");
        let mut past = PastRuns {
            run_ids: vec!["a".into(), "b".into()],
            ..PastRuns::default()
        };
        past.values.insert(
            ("oil <hot> & \"cold\"".into(), 2, "pulse_width".into()),
            vec![Some(1455.0), None],
        );
        let html = render_with(&report, &past);
        assert!(html.contains("<th>last 2 runs</th>"), "{html}");
        assert!(html.contains("data-values=\"1455 1300\""), "{html}");
        assert!(!render(&report).contains("last 2 runs"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(1000.0, 5.0), 200.0);
        assert_eq!(tick_step(37.0, 6.0), 10.0);
        assert_eq!(tick_step(0.9, 5.0), 0.2);
    }
}
