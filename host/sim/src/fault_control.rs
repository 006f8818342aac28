//! Faults injected while the bench runs (`rig sim --fault-control ADDRESS`): a line protocol on
//! TCP, so that a test on another machine (a QEMU guest that imports the bench's USB devices)
//! can make an instrument misbehave at the moment its scenario needs it, which a fault
//! configured `after_ms` from the bench's start cannot time. One command per line, one answer
//! line each (`ok ...` or `error: ...`):
//!
//! ```text
//! fault DEVICE KIND [delay_ms=N] [for_ms=N]   DEVICE as in [simulated_faults], KIND vanish|silent|garbage|slow
//! clear DEVICE                                 it behaves again (a USB device is plugged back in)
//! ```
//!
//! On a USB bench `vanish` pulls the device's USB plug (the simulator behind it stays, and
//! `clear` plugs it back in: it enumerates anew, as a device unplugged and plugged again);
//! on a bench of pseudo-terminals the device's port closes for good.

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use bench_config::ranges;

use crate::faults::{DeviceFault, FaultDevice, FaultKind, FaultPlan};

/// What takes a device off USB and puts it back (the USB/IP bench).
pub trait UsbPlugs: Send + Sync {
    /// `Err` with the reason when `device` has no plug of its own.
    fn set_plugged(&self, device: FaultDevice, plugged: bool) -> Result<(), String>;
}

/// The listening control port; stops with its thread when dropped.
pub struct FaultControl {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Target {
    plan: Arc<FaultPlan>,
    usb: Option<Arc<dyn UsbPlugs>>,
}

impl FaultControl {
    /// Listens on `listen` for commands that change `plan` (and `usb`'s plugs, if given).
    pub fn start(
        listen: &str,
        plan: Arc<FaultPlan>,
        usb: Option<Arc<dyn UsbPlugs>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("fault control: cannot listen on {listen}: {e}"),
            )
        })?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let target = Arc::new(Target { plan, usb });
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("fault-control".into())
                .spawn(move || accept(&listener, &target, &stop))?
        };
        Ok(Self {
            address,
            stop,
            thread: Some(thread),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for FaultControl {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept(listener: &TcpListener, target: &Arc<Target>, stop: &Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let (target, stop) = (target.clone(), stop.clone());
                let _ = std::thread::Builder::new()
                    .name(format!("fault-control {peer}"))
                    .spawn(move || serve(stream, &target, &stop));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Longest command line taken (the longest valid one is under 80 bytes).
const MAX_LINE: usize = 256;

fn serve(stream: TcpStream, target: &Target, stop: &AtomicBool) {
    if stream.set_nonblocking(false).is_err()
        || stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .is_err()
    {
        return;
    }
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) if line.ends_with(b"\n") => {
                let answer = match std::str::from_utf8(&line) {
                    Ok(text) => match execute(text.trim(), target) {
                        Ok(said) => format!("ok {said}\n"),
                        Err(e) => format!("error: {e}\n"),
                    },
                    Err(_) => "error: not UTF-8 text\n".to_string(),
                };
                line.clear();
                if out.write_all(answer.as_bytes()).is_err() {
                    return;
                }
            }
            // A read timeout (the line may be incomplete so far): look at `stop` again.
            Ok(_) | Err(_) if line.len() <= MAX_LINE => {}
            _ => {
                let _ = out.write_all(b"error: line too long\n");
                return;
            }
        }
    }
}

/// Runs one command; `Ok` says what was done.
fn execute(command: &str, target: &Target) -> Result<String, String> {
    let mut words = command.split_whitespace();
    let verb = words.next().unwrap_or_default();
    match verb {
        "fault" => {
            let device = device(words.next())?;
            let kind = match words.next() {
                Some("vanish") => FaultKind::Vanish,
                Some("silent") => FaultKind::Silent,
                Some("garbage") => FaultKind::Garbage,
                Some("slow") => FaultKind::Slow,
                other => {
                    return Err(format!(
                        "fault {}: kind {:?}: want vanish, silent, garbage or slow",
                        device.name(),
                        other.unwrap_or("")
                    ))
                }
            };
            let mut fault = DeviceFault {
                kind,
                after_ms: 0,
                delay_ms: None,
                for_ms: None,
            };
            for option in words {
                let (key, value) = option
                    .split_once('=')
                    .ok_or_else(|| format!("{option:?}: want delay_ms=N or for_ms=N"))?;
                let field = match key {
                    "delay_ms" => "simulated_faults.delay_ms",
                    "for_ms" => "simulated_faults.for_ms",
                    _ => return Err(format!("{key:?}: want delay_ms or for_ms")),
                };
                let n: u64 = value
                    .parse()
                    .map_err(|_| format!("{key} = {value:?}: not a whole number"))?;
                if let Some(range) = ranges::range_of(field) {
                    range.check(n as f64)?;
                }
                match key {
                    "delay_ms" => fault.delay_ms = Some(n),
                    _ => fault.for_ms = Some(n),
                }
            }
            match (kind, fault.delay_ms, fault.for_ms) {
                (FaultKind::Slow, None, _) => {
                    return Err("slow needs delay_ms=N (how late each answer comes)".into())
                }
                (FaultKind::Slow, _, _) => {}
                (_, Some(_), _) => return Err("delay_ms applies to slow only".into()),
                (FaultKind::Vanish, _, Some(_)) => {
                    return Err("vanish lasts until `clear` (no for_ms)".into())
                }
                _ => {}
            }
            inject(device, fault, target)
        }
        "clear" => {
            let device = device(words.next())?;
            if let Some(usb) = &target.usb {
                if has_own_plug(device) {
                    usb.set_plugged(device, true)?;
                }
            }
            target.plan.inject(device, None);
            Ok(format!("{} behaves", device.name()))
        }
        "" => Err(
            "empty line: want `fault DEVICE KIND [delay_ms=N] [for_ms=N]` or `clear DEVICE`".into(),
        ),
        other => Err(format!(
            "{other:?}: want `fault DEVICE KIND [delay_ms=N] [for_ms=N]` or `clear DEVICE`"
        )),
    }
}

fn device(word: Option<&str>) -> Result<FaultDevice, String> {
    let word = word.unwrap_or_default();
    let device = FaultDevice::from_name(word)
        .ok_or_else(|| format!("device {word:?}: want can, pulse_meter, power or telemetry"))?;
    if device == FaultDevice::Probe {
        // The simulated probe lives in the rig process, the USB ST-LINK's faults are its
        // supply's (a power cut takes it off USB).
        return Err("probe: not from here: set simulated_faults.probe in the rig config of the run (the simulated probe is in the rig process); on a USB bench the ST-LINK leaves USB when its supply is cut (power_cycle)".into());
    }
    Ok(device)
}

/// The instruments with a USB device of their own (the telemetry is the ST-LINK's VCP).
fn has_own_plug(device: FaultDevice) -> bool {
    matches!(
        device,
        FaultDevice::Can | FaultDevice::PulseMeter | FaultDevice::Power
    )
}

fn inject(device: FaultDevice, fault: DeviceFault, target: &Target) -> Result<String, String> {
    let name = device.name();
    match (&target.usb, fault.kind) {
        (Some(usb), FaultKind::Vanish) => {
            if !has_own_plug(device) {
                return Err(format!("{name}: the telemetry is the ST-LINK's VCP: it leaves USB with the ST-LINK when the board's supply is cut (power_cycle)"));
            }
            usb.set_plugged(device, false)?;
            Ok(format!(
                "{name} unplugged from USB (`clear {name}` plugs it back in)"
            ))
        }
        (None, FaultKind::Vanish) => {
            target.plan.inject(device, Some(fault));
            Ok(format!(
                "{name} vanished: its pseudo-terminal is gone for good"
            ))
        }
        _ => {
            target.plan.inject(device, Some(fault));
            Ok(format!("{name} {}", fault.kind.name()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bench_config::SimulatedFaults;

    use super::*;

    #[derive(Default)]
    struct Plugs(Mutex<Vec<(FaultDevice, bool)>>);

    impl UsbPlugs for Plugs {
        fn set_plugged(&self, device: FaultDevice, plugged: bool) -> Result<(), String> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((device, plugged));
            Ok(())
        }
    }

    fn ask(stream: &mut TcpStream, line: &str) -> String {
        stream.write_all(line.as_bytes()).expect("send");
        let mut answer = String::new();
        BufReader::new(stream.try_clone().expect("clone"))
            .read_line(&mut answer)
            .expect("answer");
        answer
    }

    #[test]
    fn commands_over_tcp_change_the_plan_and_the_plugs() {
        let plan = Arc::new(FaultPlan::new(SimulatedFaults::default()));
        let plugs = Arc::new(Plugs::default());
        let usb: Arc<dyn UsbPlugs> = plugs.clone();
        let control = FaultControl::start("127.0.0.1:0", plan.clone(), Some(usb)).expect("listen");
        let mut s = TcpStream::connect(control.address()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");

        let a = ask(&mut s, "fault can slow delay_ms=300\n");
        assert!(a.starts_with("ok "), "{a}");
        let f = plan.active(FaultDevice::Can).expect("slow now");
        assert_eq!((f.kind, f.delay_ms), (FaultKind::Slow, Some(300)));

        let a = ask(&mut s, "fault pulse_meter vanish\n");
        assert!(a.starts_with("ok ") && a.contains("unplugged"), "{a}");
        assert_eq!(
            plan.active(FaultDevice::PulseMeter),
            None,
            "USB vanish leaves the pty be"
        );
        let a = ask(&mut s, "clear pulse_meter\n");
        assert!(a.starts_with("ok "), "{a}");
        let a = ask(&mut s, "clear can\n");
        assert!(a.starts_with("ok "), "{a}");
        assert_eq!(plan.active(FaultDevice::Can), None);
        assert_eq!(
            *plugs.0.lock().expect("plugs"),
            vec![
                (FaultDevice::PulseMeter, false),
                (FaultDevice::PulseMeter, true),
                (FaultDevice::Can, true),
            ]
        );
        for (bad, says) in [
            ("fault relay silent\n", "want can"),
            ("fault can sleepy\n", "kind"),
            ("fault can slow\n", "delay_ms"),
            ("fault can silent delay_ms=5\n", "slow only"),
            ("fault can slow delay_ms=0\n", "1..=600000"),
            ("fault can vanish for_ms=10\n", "clear"),
            ("fault telemetry vanish\n", "ST-LINK"),
            ("fault probe silent\n", "rig config"),
            ("reboot\n", "want `fault"),
        ] {
            let a = ask(&mut s, bad);
            assert!(
                a.starts_with("error: ") && a.contains(says),
                "{bad:?} -> {a:?}"
            );
        }
        assert_eq!(
            plan.active(FaultDevice::Telemetry),
            None,
            "nothing bad applied"
        );
    }

    #[test]
    fn without_usb_a_vanish_closes_the_port_for_good() {
        let plan = Arc::new(FaultPlan::new(SimulatedFaults::default()));
        let control = FaultControl::start("127.0.0.1:0", plan.clone(), None).expect("listen");
        let mut s = TcpStream::connect(control.address()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let a = ask(&mut s, "fault telemetry vanish\n");
        assert!(a.contains("gone for good"), "{a}");
        assert_eq!(
            plan.active(FaultDevice::Telemetry).map(|f| f.kind),
            Some(FaultKind::Vanish)
        );
    }
}
