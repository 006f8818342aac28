//! One rig process per bench. Every command that drives a bench (run, soak, flash, recover,
//! doctor, sim) first takes an exclusive lock on each thing that identifies the bench: its
//! instruments' devices (by-id names resolved, so two names of one device collide), a
//! SocketCAN interface, a power command, the probe's serial. A second process gets an error
//! naming the holder (pid, command, how long). The locks are `flock`s on files: the OS drops
//! them when the holder exits or dies, so a crashed run never leaves a bench locked.
//!
//! A simulated bench of its own (`port = "sim"`) has nothing to share and takes none.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, Write},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use bench_config::{
    BoardBackend, CanAdapterKind, PowerSwitchKind, ProbeBackend, RigConfig, SIM_PORT,
};
use rig_verify::rig::RigError;

/// Where the lock files live: `$GAUGE_RIG_LOCK_DIR`, else a folder in the system's temporary
/// directory that every user of the host shares.
pub fn lock_dir() -> PathBuf {
    std::env::var_os("GAUGE_RIG_LOCK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("gauge-rig-locks"))
}

/// What identifies the bench of `config`, one key per shared thing.
pub fn keys(config: &RigConfig) -> Vec<String> {
    let device = |what: &str, path: &str| {
        // A by-id name and /dev/ttyACM0 are one device.
        let real = std::fs::canonicalize(path)
            .map_or_else(|_| path.to_string(), |p| p.display().to_string());
        format!("{what} {real}")
    };
    let mut keys = Vec::new();
    let power = &config.power;
    let serial_ports = [
        match config.can.adapter {
            CanAdapterKind::Slcan => config.can.port.as_deref(),
            CanAdapterKind::Socketcan => None,
        },
        Some(config.pulse_meter.port.as_str()),
        Some(config.telemetry.port.as_str()),
        power
            .switch
            .uses_port()
            .then_some(power.port.as_deref())
            .flatten(),
    ];
    for port in serial_ports.into_iter().flatten() {
        if port != SIM_PORT && !port.is_empty() {
            keys.push(device("serial", port));
        }
    }
    if let (CanAdapterKind::Socketcan, Some(interface)) =
        (config.can.adapter, &config.can.interface)
    {
        keys.push(format!("can-interface {interface}"));
    }
    match power.switch {
        PowerSwitchKind::Sysfs => {
            if let Some(p) = &power.sysfs_port {
                keys.push(device("sysfs", p));
            }
        }
        PowerSwitchKind::Command => {
            if let Some(on) = &power.on_command {
                keys.push(format!("power-command {}", on.join(" ")));
            }
        }
        _ => {}
    }
    if config.probe.backend == ProbeBackend::ProbeRs && config.backend == BoardBackend::Hardware {
        // Without a serial the rig takes the first probe it finds: all such benches share it.
        keys.push(match &config.probe.serial {
            Some(s) => format!("probe {s}"),
            None => "probe (the first one found)".into(),
        });
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The locks held; dropping it releases them.
#[derive(Debug)]
pub struct BenchLock {
    held: Vec<File>,
}

impl BenchLock {
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// Takes every lock of `config`'s bench in [`lock_dir`].
pub fn acquire(config: &RigConfig) -> Result<BenchLock, RigError> {
    acquire_in(&lock_dir(), config)
}

/// Takes every lock of `config`'s bench in `dir`, or none.
pub fn acquire_in(dir: &Path, config: &RigConfig) -> Result<BenchLock, RigError> {
    let keys = keys(config);
    let mut held = Vec::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(BenchLock { held });
    }
    create_shared_dir(dir)?;
    for key in keys {
        let path = dir.join(file_name(&key));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                RigError::Setup(format!(
                    "bench lock {}: {e} (set GAUGE_RIG_LOCK_DIR to a writable folder)",
                    path.display()
                ))
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(RigError::Setup(format!(
                    "bench in use: {key} is held by {} (lock file {}). Wait for that run to end or stop it; the lock goes with the process",
                    describe_holder(&holder),
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(RigError::Setup(format!(
                    "bench lock {}: {e}",
                    path.display()
                )))
            }
        }
        // Who holds it, for the next one who asks.
        let record = format!(
            "pid={}\nsince={}\ncommand={}\n",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            std::env::args().collect::<Vec<_>>().join(" ")
        );
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(record.as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "warning: bench lock {}: cannot record its holder: {e}",
                path.display()
            );
        }
        held.push(file);
    }
    Ok(BenchLock { held })
}

/// The folder, writable by every user of the host (sticky, like /tmp).
fn create_shared_dir(dir: &Path) -> Result<(), RigError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        RigError::Setup(format!(
            "bench lock folder {}: {e} (set GAUGE_RIG_LOCK_DIR to a writable folder)",
            dir.display()
        ))
    })?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777));
    Ok(())
}

/// A lock file's name: the key made safe, with a hash of it so that two keys never share one.
fn file_name(key: &str) -> String {
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    // FNV-1a: stable across builds, so every rig binary on the host picks the same file.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{safe}-{hash:016x}.lock")
}

/// "pid 1234 (`rig run ...`) for 42 s", from what the holder wrote.
fn describe_holder(record: &str) -> String {
    let field = |name: &str| {
        record
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    let Some(pid) = field("pid") else {
        return "another process (it has not recorded itself yet)".into();
    };
    let command = field("command").unwrap_or_default();
    let since = field("since").and_then(|s| s.parse::<u64>().ok());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match since {
        Some(t) => format!("pid {pid} (`{command}`) for {} s", now.saturating_sub(t)),
        None => format!("pid {pid} (`{command}`)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str) -> RigConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../rig-config")
            .join(name);
        RigConfig::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_simulated_bench_of_its_own_needs_no_lock() {
        assert!(keys(&config("sim.toml")).is_empty());
    }

    #[test]
    fn a_real_bench_is_its_devices_and_its_probe() {
        let k = keys(&config("nucleo-h755zi-q.toml"));
        assert!(
            k.iter().any(|k| k == "probe REPLACE-ME"),
            "the probe's serial: {k:?}"
        );
        assert!(
            k.iter()
                .any(|k| k.contains("usb-1a86_USB_Serial-if00-port0")),
            "the relay's port: {k:?}"
        );
        assert_eq!(k.len(), 5, "CAN, analyzer, telemetry, relay, probe: {k:?}");
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let bench = config("nucleo-h755zi-q.toml");
        let first = acquire_in(dir.path(), &bench).expect("free");
        assert_eq!(first.len(), 5);
        // flock: a second open file description conflicts, in this process as in another.
        let err = acquire_in(dir.path(), &bench).unwrap_err().to_string();
        assert!(err.starts_with("bench in use: "), "{err}");
        assert!(
            err.contains(&format!("pid {} (`", std::process::id()))
                && err.contains(" s (lock file "),
            "{err}"
        );
        drop(first);
        let again = acquire_in(dir.path(), &bench).expect("released on close");
        assert_eq!(again.len(), 5);
    }

    #[test]
    fn lock_file_names_are_safe_and_distinct() {
        let a = file_name("serial /dev/serial/by-id/usb-x:y");
        assert!(!a.contains('/') && a.ends_with(".lock"), "{a}");
        assert_ne!(file_name("probe a/b"), file_name("probe a_b"));
    }
}
