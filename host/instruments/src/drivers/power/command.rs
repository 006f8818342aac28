//! A power switch made of two external programs (e.g. `uhubctl -l 1-1 -p 2 -a on|off`).
//!
//! Commands are argument vectors handed to the program directly, never to a shell: no
//! quoting, globbing or variable expansion happens. Each run has a timeout after which the
//! child is killed; a non-zero exit, a missing program or a timeout is an error that names the
//! command and shows its stderr.

use std::{
    io::Read,
    os::unix::process::CommandExt,
    process::{Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::{InstrumentError, InstrumentResult, PowerSwitch};

/// What a successful command printed.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// `argv` for messages: arguments with spaces or shell characters in single quotes.
pub fn display(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn device(argv: &[String]) -> String {
    format!("power command `{}`", display(argv))
}

fn err(argv: &[String], reason: impl Into<String>) -> InstrumentError {
    InstrumentError::Io {
        device: device(argv),
        reason: reason.into(),
    }
}

/// The last `max` characters of `text`, trimmed, for error messages.
fn tail(text: &str, max: usize) -> String {
    let t = text.trim();
    match t.char_indices().rev().nth(max) {
        Some((i, c)) => format!("...{}", &t[i + c.len_utf8()..]),
        None => t.to_string(),
    }
}

/// Reads a child's pipe to the end on a thread; the receiver gets the text.
fn collect(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

/// Kills the child's whole process group (it leads one: `process_group(0)`), then reaps it.
fn kill_group(child: &mut std::process::Child) {
    if let Ok(pgid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `argv` (program, then arguments; no shell), waiting at most `timeout`.
pub fn run(argv: &[String], timeout: Duration) -> InstrumentResult<CommandOutput> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| err(argv, "empty command: give the program and its arguments"))?;
    // A process group of its own, so that a timeout kills what the command started too
    // (a script's children, a `sudo`'s program).
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            err(
                argv,
                match e.kind() {
                    std::io::ErrorKind::NotFound => format!(
                        "program {program:?} not found: install it or give its full path in the rig config"
                    ),
                    std::io::ErrorKind::PermissionDenied => {
                        format!("cannot run {program:?}: permission denied ({e})")
                    }
                    _ => format!("cannot start {program:?}: {e}"),
                },
            )
        })?;
    let stdout = child.stdout.take().map(collect);
    let stderr = child.stderr.take().map(collect);
    // A grandchild may keep a pipe open after the child exits: never wait on it for long.
    let take = |rx: Option<mpsc::Receiver<String>>| {
        rx.and_then(|r| r.recv_timeout(Duration::from_millis(500)).ok())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(&mut child);
                let stderr = take(stderr);
                return Err(err(
                    argv,
                    format!(
                        "still running after {timeout:?}: killed{}",
                        if stderr.trim().is_empty() {
                            String::new()
                        } else {
                            format!("; stderr: {}", tail(&stderr, 600))
                        }
                    ),
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                kill_group(&mut child);
                return Err(err(argv, format!("cannot wait for the child: {e}")));
            }
        }
    };
    let stdout = take(stdout);
    let stderr = take(stderr);
    if !status.success() {
        let said = if stderr.trim().is_empty() {
            if stdout.trim().is_empty() {
                "no output".to_string()
            } else {
                format!("stdout: {}", tail(&stdout, 600))
            }
        } else {
            format!("stderr: {}", tail(&stderr, 600))
        };
        return Err(err(argv, format!("failed ({status}); {said}")));
    }
    Ok(CommandOutput {
        status,
        stdout,
        stderr,
    })
}

/// Switches the supply by running `on` or `off`.
pub struct CommandSwitch {
    on: Vec<String>,
    off: Vec<String>,
    timeout: Duration,
}

impl CommandSwitch {
    /// Checks the commands are non-empty; programs are looked up when they run.
    pub fn new(on: Vec<String>, off: Vec<String>, timeout: Duration) -> InstrumentResult<Self> {
        for argv in [&on, &off] {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                return Err(err(
                    argv,
                    "empty command: power.on_command and power.off_command must start with the program",
                ));
            }
        }
        Ok(Self { on, off, timeout })
    }
}

impl PowerSwitch for CommandSwitch {
    fn set_power(&mut self, on: bool) -> InstrumentResult<()> {
        let argv = if on { &self.on } else { &self.off };
        run(argv, self.timeout).map(|_| ())
    }

    fn describe(&self) -> String {
        format!(
            "power commands: on `{}`, off `{}`",
            display(&self.on),
            display(&self.off)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn displays_arguments_unambiguously() {
        assert_eq!(
            display(&argv(&["uhubctl", "-l", "1-1", "-p", "2", "-a", "on"])),
            "uhubctl -l 1-1 -p 2 -a on"
        );
        assert_eq!(display(&argv(&["a b", "it's", ""])), r"'a b' 'it'\''s' ''");
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("  short \n", 10), "short");
        assert_eq!(tail("0123456789abc", 3), "...abc");
        assert_eq!(tail("ééé→xyz", 3), "...xyz");
    }
}
