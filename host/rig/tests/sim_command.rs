//! `rig sim` as a user runs it: the binary prints its instruments' pseudo-terminals, the host
//! drivers measure the powered board through them, and Ctrl-C ends it with exit code 0.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use rig_instruments::drivers::{sump::SumpAnalyzer, telemetry::SerialTelemetry};
use rig_instruments::{PulseMeter, TelemetryPort};

/// Kills the child if the test fails half-way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `rig sim --rig rig-config/sim.toml` with `args` and reads its banner until a line
/// starts with each of `until`.
fn start_sim(args: &[&str], until: &[&str]) -> (Running, Vec<String>, mpsc::Receiver<String>) {
    let rig = common::repo("rig-config/sim.toml");
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_rig"))
            .arg("sim")
            .arg("--rig")
            .arg(&rig)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("rig starts"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while !until
        .iter()
        .all(|u| lines.iter().any(|l: &String| l.starts_with(u)))
    {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(e) => panic!("no full banner from `rig sim` ({e}); got {lines:#?}"),
        }
    }
    (child, lines, rx)
}

fn banner_var(lines: &[String], name: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {lines:#?}"))
        .to_string()
}

#[test]
fn sim_command_serves_the_instruments_until_ctrl_c() {
    let _g = common::bench_lock();
    let (mut child, lines, rx) = start_sim(&[], &["Ctrl-C"]);
    let var = |name: &str| banner_var(&lines, name);
    let (slcan, sump, relay, telemetry) =
        (var("SLCAN"), var("SUMP"), var("RELAY"), var("TELEMETRY"));
    for p in [&slcan, &sump, &relay, &telemetry] {
        assert!(p.starts_with("/dev/pts/"), "{p}");
    }
    let text = lines.join("\n");
    assert!(
        text.contains(&format!(
            "python -m can.viewer -i slcan -c {slcan} -b 500000"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("sigrok-cli -d ols:conn={sump}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("picocom -b 115200 {telemetry}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("printf '\\240\\001\\000\\241' > {relay}")),
        "{text}"
    );

    // The board is on: the analyzer sees the parked needle, the VCP carries status lines.
    let mut analyzer = SumpAnalyzer::open(&sump, 0, 1_000_000).expect("SUMP port opens");
    assert_eq!(analyzer.id, "1ALS");
    let c = analyzer.capture(2).expect("servo signal").capture;
    assert_eq!(c.high_us, vec![900.0; 2], "parked needle");
    assert_eq!(c.period_us, vec![20_000.0]);
    let mut vcp = SerialTelemetry::open(&telemetry, 115_200).expect("telemetry port opens");
    let status = vcp
        .next_status(Duration::from_secs(3))
        .expect("a GAUGE/1 line");
    assert_eq!(status.pulse_us, 900, "{status:?}");

    // Ctrl-C: a clean stop with exit code 0.
    let pid = child.0.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "`rig sim` ignored Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l == "rig sim: stopped"), "{rest:?}");
}

/// `rig sim --fault-control`: a fault asked for on the TCP port shows on the device's own
/// port at once, and `clear` ends it.
#[test]
fn sim_command_takes_faults_on_its_control_port() {
    let _g = common::bench_lock();
    let (_child, lines, _rx) = start_sim(
        &["--fault-control", "127.0.0.1:0"],
        &["Ctrl-C", "Fault control on "],
    );
    let address = lines
        .iter()
        .find_map(|l| l.strip_prefix("Fault control on "))
        .and_then(|l| {
            l.split(':')
                .take(2)
                .collect::<Vec<_>>()
                .join(":")
                .parse::<std::net::SocketAddr>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no address in {lines:#?}"));
    let mut control = std::net::TcpStream::connect(address).expect("control port");
    control
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut answers = BufReader::new(control.try_clone().expect("clone"));
    let mut ask = |command: &str| {
        use std::io::Write;
        control
            .write_all(format!("{command}\n").as_bytes())
            .expect("send");
        let mut answer = String::new();
        answers.read_line(&mut answer).expect("answer");
        answer
    };
    let telemetry = banner_var(&lines, "TELEMETRY");
    let mut vcp = SerialTelemetry::open(&telemetry, 115_200).expect("telemetry port opens");
    vcp.next_status(Duration::from_secs(3))
        .expect("status lines before the fault");

    let answer = ask("fault telemetry silent");
    assert!(answer.starts_with("ok "), "{answer}");
    let silent = vcp.next_status(Duration::from_millis(1500));
    assert!(silent.is_err(), "a status line while silent: {silent:?}");

    let answer = ask("clear telemetry");
    assert!(answer.starts_with("ok "), "{answer}");
    vcp.next_status(Duration::from_secs(3))
        .expect("status lines again once cleared");

    let answer = ask("fault probe silent");
    assert!(answer.starts_with("error: "), "{answer}");
}

#[test]
fn sim_command_refuses_a_hardware_rig_config() {
    let dir = tempfile::tempdir().unwrap();
    let rig = common::rig_variant(
        dir.path(),
        "rig-config/sim.toml",
        &[("backend = \"simulated\"", "backend = \"hardware\"")],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_rig"))
        .arg("sim")
        .arg("--rig")
        .arg(&rig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error:") && err.contains("rig.toml"), "{err}");
}
