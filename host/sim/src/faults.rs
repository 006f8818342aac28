//! Instrument faults on the simulated bench (`[simulated_faults]` in a rig config): a device
//! that vanishes, falls silent, answers garbage or answers late, from a moment after the rig's
//! bring-up on. The fault sits in the device's port ([`DevicePort`]), between the simulator
//! and its pseudo-terminal, so the host's real driver meets it exactly as it would meet a
//! failing USB serial device, and the simulators themselves stay fault-free.

use std::{
    collections::VecDeque,
    io::{Read, Write},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

pub use bench_config::{DeviceFault, FaultKind, SimulatedFaults};
use serialport::{SerialPort, TTYPort};

/// The bench's instruments, as `[simulated_faults]` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultDevice {
    Can,
    PulseMeter,
    Power,
    Telemetry,
    Probe,
}

impl FaultDevice {
    pub const ALL: [FaultDevice; 5] = [
        FaultDevice::Can,
        FaultDevice::PulseMeter,
        FaultDevice::Power,
        FaultDevice::Telemetry,
        FaultDevice::Probe,
    ];

    /// Its key in `[simulated_faults]`.
    pub fn name(self) -> &'static str {
        match self {
            FaultDevice::Can => "can",
            FaultDevice::PulseMeter => "pulse_meter",
            FaultDevice::Power => "power",
            FaultDevice::Telemetry => "telemetry",
            FaultDevice::Probe => "probe",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A fault set while the bench runs (`rig sim --fault-control`), in place of the configured
/// one; `None` clears the device. Its `after_ms` and `for_ms` count from `at`.
#[derive(Clone, Copy, Debug)]
struct Injected {
    at: Instant,
    fault: Option<DeviceFault>,
}

/// The configured faults and the moment their clock starts (the end of bring-up).
#[derive(Debug, Default)]
pub struct FaultPlan {
    faults: SimulatedFaults,
    armed_at: OnceLock<Instant>,
    injected: Mutex<[Option<Injected>; 5]>,
}

impl FaultPlan {
    pub fn new(faults: SimulatedFaults) -> Self {
        Self {
            faults,
            armed_at: OnceLock::new(),
            injected: Mutex::default(),
        }
    }

    /// From now on `device` shows `fault` (its `after_ms` and `for_ms` counted from now)
    /// instead of its configured one; `None` makes it behave. A device that has vanished from
    /// its pseudo-terminal stays gone (its port is closed).
    pub fn inject(&self, device: FaultDevice, fault: Option<DeviceFault>) {
        let mut injected = self.injected.lock().unwrap_or_else(|e| e.into_inner());
        injected[device.index()] = Some(Injected {
            at: Instant::now(),
            fault,
        });
    }

    /// Starts every fault's `after_ms` clock (once; later calls change nothing).
    pub fn arm(&self) {
        let _ = self.armed_at.set(Instant::now());
    }

    fn configured(&self, device: FaultDevice) -> Option<DeviceFault> {
        let f = &self.faults;
        match device {
            FaultDevice::Can => f.can,
            FaultDevice::PulseMeter => f.pulse_meter,
            FaultDevice::Power => f.power,
            FaultDevice::Telemetry => f.telemetry,
            FaultDevice::Probe => f.probe,
        }
    }

    /// The fault `device` shows now, if its time has come.
    pub fn active(&self, device: FaultDevice) -> Option<DeviceFault> {
        let injected = self.injected.lock().unwrap_or_else(|e| e.into_inner())[device.index()];
        let (fault, since) = match injected {
            Some(Injected { at, fault }) => (fault?, at.elapsed()),
            None => (self.configured(device)?, self.armed_at.get()?.elapsed()),
        };
        let started = since >= Duration::from_millis(fault.after_ms);
        let over = fault
            .for_ms
            .is_some_and(|d| since >= Duration::from_millis(fault.after_ms.saturating_add(d)));
        (started && !over).then_some(fault)
    }
}

/// Which way a device's answers flow: a command device answers what the host sends (a slow
/// one takes each command late), a streaming one talks on its own (a slow one's bytes arrive
/// late).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRole {
    Commands,
    Stream,
}

/// A simulator's end of its pseudo-terminal, with the device's configured fault applied.
pub struct DevicePort {
    /// `None` once the device has vanished.
    master: Option<TTYPort>,
    /// The host's side, kept open so the host sees no hang-up between its opens; dropped with
    /// the master when the device vanishes, so the path goes too.
    slave: Option<TTYPort>,
    device: FaultDevice,
    role: PortRole,
    plan: Arc<FaultPlan>,
    /// A slow device's bytes not yet due: (due, bytes), inbound or outbound by role.
    late: VecDeque<(Instant, Vec<u8>)>,
    noise: u64,
}

/// How long a read waits when there is nothing (the pseudo-terminal's own timeout).
const IDLE: Duration = Duration::from_millis(2);

impl DevicePort {
    pub fn new(
        master: TTYPort,
        slave: TTYPort,
        device: FaultDevice,
        role: PortRole,
        plan: Arc<FaultPlan>,
    ) -> Self {
        Self {
            master: Some(master),
            slave: Some(slave),
            device,
            role,
            plan,
            late: VecDeque::new(),
            noise: 0x9E37_79B9_7F4A_7C15,
        }
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        if let Some(m) = self.master.as_mut() {
            let _ = m.set_timeout(timeout);
        }
    }

    /// The fault now in force; a vanished device stays vanished.
    fn fault(&mut self) -> Option<DeviceFault> {
        let fault = self.plan.active(self.device);
        if fault.is_some_and(|f| f.kind == FaultKind::Vanish) && self.master.is_some() {
            tracing::info!(device = ?self.device, "simulated fault: the device vanishes");
            self.master = None;
            self.slave = None;
            self.late.clear();
        }
        fault
    }

    /// Wrong values of the right count (a wrong baud rate, noise on the line).
    fn garble(&mut self, bytes: &mut [u8]) {
        for b in bytes {
            // xorshift64: deterministic noise, no crate needed for it.
            self.noise ^= self.noise << 13;
            self.noise ^= self.noise >> 7;
            self.noise ^= self.noise << 17;
            *b = self.noise as u8;
        }
    }

    /// Keeps a slow stream flowing between writes: sends its bytes that are due.
    pub fn pump(&mut self) {
        let _ = self.fault();
        self.release_due();
    }

    /// Writes a slow device's outbound bytes that are due.
    fn release_due(&mut self) {
        if self.role != PortRole::Stream {
            return;
        }
        let now = Instant::now();
        while self.late.front().is_some_and(|(due, _)| *due <= now) {
            if let (Some((_, bytes)), Some(m)) = (self.late.pop_front(), self.master.as_mut()) {
                let _ = m.write_all(&bytes);
            }
        }
    }

    fn idle() -> std::io::Result<usize> {
        std::thread::sleep(IDLE);
        Err(std::io::ErrorKind::TimedOut.into())
    }
}

impl Read for DevicePort {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let fault = self.fault();
        self.release_due();
        let Some(master) = self.master.as_mut() else {
            return Self::idle();
        };
        let kind = fault.map(|f| f.kind);
        if kind == Some(FaultKind::Slow) && self.role == PortRole::Commands {
            // Commands reach the device `delay_ms` late.
            let delay = Duration::from_millis(fault.and_then(|f| f.delay_ms).unwrap_or(0));
            let mut incoming = [0u8; 256];
            if let Ok(n) = master.read(&mut incoming) {
                if n > 0 {
                    self.late
                        .push_back((Instant::now() + delay, incoming[..n].to_vec()));
                }
            }
            let due = self
                .late
                .front()
                .is_some_and(|(due, _)| *due <= Instant::now());
            if !due {
                return Self::idle();
            }
            let Some((_, bytes)) = self.late.pop_front() else {
                return Self::idle();
            };
            let n = bytes.len().min(buf.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            if n < bytes.len() {
                self.late.push_front((Instant::now(), bytes[n..].to_vec()));
            }
            return Ok(n);
        }
        let n = master.read(buf)?;
        match kind {
            // Heard and ignored.
            Some(FaultKind::Silent) => Self::idle(),
            Some(FaultKind::Garbage) => {
                self.garble(&mut buf[..n]);
                Ok(n)
            }
            _ => Ok(n),
        }
    }
}

impl Write for DevicePort {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let fault = self.fault();
        self.release_due();
        if self.master.is_none() {
            return Ok(bytes.len()); // nobody hears a device that is gone
        }
        match fault.map(|f| (f.kind, f.delay_ms)) {
            Some((FaultKind::Silent, _)) => Ok(bytes.len()),
            Some((FaultKind::Garbage, _)) => {
                let mut noise = bytes.to_vec();
                self.garble(&mut noise);
                let m = self
                    .master
                    .as_mut()
                    .ok_or(std::io::ErrorKind::NotConnected)?;
                m.write_all(&noise)?;
                Ok(bytes.len())
            }
            Some((FaultKind::Slow, delay)) if self.role == PortRole::Stream => {
                let due = Instant::now() + Duration::from_millis(delay.unwrap_or(0));
                self.late.push_back((due, bytes.to_vec()));
                Ok(bytes.len())
            }
            _ => {
                let m = self
                    .master
                    .as_mut()
                    .ok_or(std::io::ErrorKind::NotConnected)?;
                m.write(bytes)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.master.as_mut() {
            Some(m) => m.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(kind: FaultKind, delay_ms: Option<u64>) -> DeviceFault {
        DeviceFault {
            kind,
            after_ms: 0,
            delay_ms,
            for_ms: None,
        }
    }

    /// A device port with `fault` on the CAN adapter, and the host's end opened by path.
    fn port(fault: Option<DeviceFault>, role: PortRole) -> (DevicePort, Box<dyn SerialPort>) {
        let plan = Arc::new(FaultPlan::new(SimulatedFaults {
            can: fault,
            ..Default::default()
        }));
        plan.arm();
        let (master, slave) = TTYPort::pair().expect("openpty");
        let path = slave.name().expect("pty name");
        let host = serialport::new(&path, 115_200)
            .timeout(Duration::from_millis(20))
            .open()
            .expect("host side");
        (
            DevicePort::new(master, slave, FaultDevice::Can, role, plan),
            host,
        )
    }

    fn host_read(host: &mut dyn SerialPort, wait: Duration) -> std::io::Result<Vec<u8>> {
        let end = Instant::now() + wait;
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        while Instant::now() < end {
            match host.read(&mut buf) {
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn device_read(dev: &mut DevicePort, wait: Duration) -> Vec<u8> {
        let end = Instant::now() + wait;
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        while Instant::now() < end {
            if let Ok(n) = dev.read(&mut buf) {
                out.extend_from_slice(&buf[..n]);
            }
        }
        out
    }

    #[test]
    fn without_a_fault_bytes_pass_both_ways() {
        let (mut dev, mut host) = port(None, PortRole::Commands);
        host.write_all(b"V\r").unwrap();
        assert_eq!(device_read(&mut dev, Duration::from_millis(50)), b"V\r");
        dev.write_all(b"V1013\r").unwrap();
        assert_eq!(
            host_read(host.as_mut(), Duration::from_millis(50)).unwrap(),
            b"V1013\r"
        );
    }

    #[test]
    fn a_vanished_device_hangs_up_its_port_and_its_path_goes() {
        let (mut dev, mut host) = port(Some(fault(FaultKind::Vanish, None)), PortRole::Commands);
        let path = host.name().expect("name");
        let _ = dev.write(b"x");
        let err = host_read(host.as_mut(), Duration::from_millis(50)).expect_err("hang-up");
        assert_ne!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        assert!(
            serialport::new(&path, 115_200).open().is_err(),
            "{path} still opens"
        );
    }

    #[test]
    fn a_silent_device_hears_nothing_and_says_nothing() {
        let (mut dev, mut host) = port(Some(fault(FaultKind::Silent, None)), PortRole::Commands);
        host.write_all(b"V\r").unwrap();
        assert!(device_read(&mut dev, Duration::from_millis(50)).is_empty());
        dev.write_all(b"V1013\r").unwrap();
        assert!(host_read(host.as_mut(), Duration::from_millis(50))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_garbage_device_sends_as_many_bytes_with_other_values() {
        let (mut dev, mut host) = port(Some(fault(FaultKind::Garbage, None)), PortRole::Commands);
        dev.write_all(b"V1013\rV1013\r").unwrap();
        let got = host_read(host.as_mut(), Duration::from_millis(50)).unwrap();
        assert_eq!(got.len(), 12);
        assert_ne!(got, b"V1013\rV1013\r");
    }

    #[test]
    fn a_slow_command_device_takes_each_command_late() {
        let (mut dev, mut host) = port(Some(fault(FaultKind::Slow, Some(150))), PortRole::Commands);
        host.write_all(b"V\r").unwrap();
        assert!(device_read(&mut dev, Duration::from_millis(80)).is_empty());
        assert_eq!(device_read(&mut dev, Duration::from_millis(150)), b"V\r");
    }

    #[test]
    fn a_slow_stream_sends_its_bytes_late() {
        let (mut dev, mut host) = port(Some(fault(FaultKind::Slow, Some(150))), PortRole::Stream);
        dev.write_all(b"GAUGE/1\n").unwrap();
        assert!(host_read(host.as_mut(), Duration::from_millis(80))
            .unwrap()
            .is_empty());
        let _ = device_read(&mut dev, Duration::from_millis(120));
        assert_eq!(
            host_read(host.as_mut(), Duration::from_millis(50)).unwrap(),
            b"GAUGE/1\n"
        );
    }

    #[test]
    fn a_fault_waits_for_its_time_after_bring_up() {
        let plan = FaultPlan::new(SimulatedFaults {
            telemetry: Some(DeviceFault {
                kind: FaultKind::Silent,
                after_ms: 100,
                delay_ms: None,
                for_ms: None,
            }),
            ..Default::default()
        });
        assert_eq!(plan.active(FaultDevice::Telemetry), None, "not armed yet");
        plan.arm();
        assert_eq!(plan.active(FaultDevice::Telemetry), None, "too early");
        assert_eq!(plan.active(FaultDevice::Can), None, "another device");
        std::thread::sleep(Duration::from_millis(110));
        assert!(plan.active(FaultDevice::Telemetry).is_some());
    }

    #[test]
    fn a_transient_fault_ends_after_for_ms() {
        let plan = FaultPlan::new(SimulatedFaults {
            pulse_meter: Some(DeviceFault {
                kind: FaultKind::Silent,
                after_ms: 0,
                delay_ms: None,
                for_ms: Some(50),
            }),
            ..Default::default()
        });
        plan.arm();
        assert!(
            plan.active(FaultDevice::PulseMeter).is_some(),
            "from the start"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(plan.active(FaultDevice::PulseMeter), None, "over");
    }

    #[test]
    fn an_injected_fault_starts_when_injected_and_replaces_the_configured_one() {
        let plan = FaultPlan::new(SimulatedFaults {
            can: Some(fault(FaultKind::Garbage, None)),
            ..Default::default()
        });
        // Not armed: the configured fault waits for bring-up, an injected one does not.
        plan.inject(FaultDevice::Telemetry, Some(fault(FaultKind::Silent, None)));
        assert_eq!(
            plan.active(FaultDevice::Telemetry).map(|f| f.kind),
            Some(FaultKind::Silent)
        );
        plan.arm();
        assert_eq!(
            plan.active(FaultDevice::Can).map(|f| f.kind),
            Some(FaultKind::Garbage)
        );
        plan.inject(FaultDevice::Can, None);
        assert_eq!(plan.active(FaultDevice::Can), None, "cleared");
        plan.inject(
            FaultDevice::Can,
            Some(DeviceFault {
                for_ms: Some(40),
                ..fault(FaultKind::Slow, Some(5))
            }),
        );
        assert_eq!(
            plan.active(FaultDevice::Can).map(|f| f.kind),
            Some(FaultKind::Slow)
        );
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            plan.active(FaultDevice::Can),
            None,
            "its for_ms counts from injection"
        );
        assert_eq!(plan.active(FaultDevice::PulseMeter), None, "another device");
    }

    #[test]
    fn device_names_are_the_config_keys() {
        let keys: Vec<&str> = SimulatedFaults {
            can: Some(fault(FaultKind::Silent, None)),
            pulse_meter: Some(fault(FaultKind::Silent, None)),
            power: Some(fault(FaultKind::Silent, None)),
            telemetry: Some(fault(FaultKind::Silent, None)),
            probe: Some(fault(FaultKind::Silent, None)),
        }
        .each()
        .map(|(k, _)| k)
        .collect();
        let names: Vec<&str> = FaultDevice::ALL.iter().map(|d| d.name()).collect();
        assert_eq!(keys, names);
        for d in FaultDevice::ALL {
            assert_eq!(FaultDevice::from_name(d.name()), Some(d));
        }
        assert_eq!(FaultDevice::from_name("relay"), None);
    }
}
