//! Wires a simulated target to its instrument simulators and runs it in real time.

use std::{
    io::Write,
    sync::{atomic::Ordering, Arc},
    thread::JoinHandle,
    time::Duration,
};

use gauge_logic::supply::SupplyConfig;
use serialport::{SerialPort, TTYPort};

use super::{
    logic_board::{LogicBoard, LogicFirmware, OptionBytes},
    target::{Pins, SimulatedTarget, TargetIo},
};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimulatedBenchConfig {
    /// How the board's supply is wired (the NUCLEO-H755ZI-Q: Direct SMPS).
    pub wiring: SupplyConfig,
    /// The firmware in flash when the bench starts (before the rig flashes the one under test).
    pub preloaded: LogicFirmware,
    pub option_bytes: OptionBytes,
    /// Relay channel the board's supply hangs on.
    pub relay_channel: u8,
    /// Time from the switch's on-command to a valid VDD (0: at once).
    pub supply_rise_ms: u64,
    /// What powers the debug probe (a NUCLEO's ST-LINK: the board's supply through CN1).
    pub probe_supply: ProbeSupply,
    /// A relay channel of the bench's relay board wired to NRST or BOOT0.
    pub recovery_line: Option<RecoveryLine>,
    /// A SocketCAN interface (e.g. `vcan0`) to bridge the board's bus to, instead of the slcan
    /// adapter simulator: the host then reaches the board through that interface, and the
    /// slcan pty answers nothing.
    pub can_interface: Option<String>,
    /// Instrument faults from a moment after bring-up on (`[simulated_faults]`).
    pub faults: SimulatedFaults,
}

use crate::faults::{DevicePort, FaultDevice, FaultPlan, PortRole};
use crate::shared::lock;
pub use crate::shared::{BoardSlot, NrstDriver, ProbeSupply, Shared};
use bench_config::{RecoveryLine, SimulatedFaults};

/// Paths of the simulated instruments' pseudo-terminals.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SimulatedPorts {
    pub slcan: String,
    pub sump: String,
    pub relay: String,
    pub telemetry: String,
}

pub struct SimulatedBench {
    pub shared: Arc<Shared>,
    pub ports: SimulatedPorts,
    threads: Vec<JoinHandle<()>>,
    /// The slcan pseudo-terminal when the bus is bridged to SocketCAN instead: kept open,
    /// unanswered, so its path stays valid.
    _unused: Vec<DevicePort>,
}

/// A pseudo-terminal: (master for the simulator, slave path for the host).
fn pty(what: &str) -> std::io::Result<(TTYPort, TTYPort, String)> {
    // The slave from `pair()` holds no lock, so the host driver can open it by path (and lock it).
    let (mut master, slave) =
        TTYPort::pair().map_err(|e| std::io::Error::other(format!("{what}: openpty: {e}")))?;
    master
        .set_timeout(Duration::from_millis(2))
        .map_err(|e| std::io::Error::other(format!("{what}: {e}")))?;
    set_nonblocking(&master).map_err(|e| std::io::Error::other(format!("{what}: {e}")))?;
    let path = slave
        .name()
        .ok_or_else(|| std::io::Error::other(format!("{what}: pty has no name")))?;
    Ok((master, slave, path))
}

/// Makes a simulator's writes end with its port timeout. `TTYPort` polls for room and then
/// writes, but on a blocking descriptor a write larger than the room left waits until the host
/// reads it all: once the host has stopped reading (its driver dropped at the end of a run, a
/// capture it gave up on), a simulator thread would hang there and the bench's drop with it.
fn set_nonblocking(port: &TTYPort) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = port.as_raw_fd();
    // SAFETY: plain fcntl calls on a descriptor `port` owns and keeps open during the call.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl SimulatedBench {
    /// Starts the bench with the board unpowered.
    pub fn start(config: SimulatedBenchConfig) -> std::io::Result<Self> {
        let mut target = LogicBoard::new(config.wiring, config.preloaded);
        target.option_bytes = config.option_bytes;
        Self::start_with_target(config, Box::new(target))
    }

    /// Starts the bench with `target` as its board (unpowered): e.g. the emulated board that
    /// runs the real ELF (feature `emulator`).
    pub fn start_with_target(
        config: SimulatedBenchConfig,
        target: Box<dyn SimulatedTarget>,
    ) -> std::io::Result<Self> {
        let plan = Arc::new(FaultPlan::new(config.faults.clone()));
        let shared = Arc::new(Shared::with_faults(target, plan.clone()));
        {
            let mut b = shared.board();
            b.supply_rise_us = config.supply_rise_ms * 1000;
            b.probe_supply = config.probe_supply;
        }
        // Each simulator's end of its pseudo-terminal, which holds the host's end open too
        // (so the host sees no hang-up between its opens) and shows the device's fault.
        let device = |what, device, role| -> std::io::Result<(DevicePort, String)> {
            let (m, s, path) = pty(what)?;
            Ok((DevicePort::new(m, s, device, role, plan.clone()), path))
        };
        let (slcan_m, slcan) = device("slcan adapter", FaultDevice::Can, PortRole::Commands)?;
        let (sump_m, sump) = device("SUMP analyzer", FaultDevice::PulseMeter, PortRole::Commands)?;
        let (relay_m, relay) = device("LCUS-1 relay", FaultDevice::Power, PortRole::Commands)?;
        let (mut tele_m, telemetry) =
            device("telemetry port", FaultDevice::Telemetry, PortRole::Stream)?;
        // Like a UART nobody listens to: bytes that do not fit are lost, the board never blocks.
        tele_m.set_timeout(Duration::from_millis(1));

        // Opened before any thread starts, so a failure leaves nothing running.
        let bridge = match &config.can_interface {
            Some(interface) => Some(super::socketcan_bridge::open(interface)?),
            None => None,
        };
        let mut unused = Vec::new();
        let mut threads = Vec::new();
        let s = shared.clone();
        threads.push(spawn("sim-board", move || board_loop(&s, tele_m))?);
        // One adapter on the board's bus drains `board_tx`: the slcan simulator or the bridge.
        let s = shared.clone();
        match bridge {
            None => threads.push(spawn("sim-slcan", move || {
                super::slcan_adapter::run(&s, slcan_m)
            })?),
            Some(socket) => {
                threads.push(spawn("sim-socketcan", move || {
                    super::socketcan_bridge::run(&s, socket)
                })?);
                // Kept open, unanswered, so the pty path stays valid.
                unused.push(slcan_m);
            }
        }
        let s = shared.clone();
        threads.push(spawn("sim-sump", move || {
            super::sump_analyzer::run(&s, sump_m)
        })?);
        let s = shared.clone();
        let wiring = super::lcus_relay::RelayWiring {
            power: config.relay_channel,
            recovery: config.recovery_line,
        };
        threads.push(spawn("sim-relay", move || {
            super::lcus_relay::run(&s, relay_m, wiring)
        })?);
        Ok(Self {
            shared,
            ports: SimulatedPorts {
                slcan,
                sump,
                relay,
                telemetry,
            },
            threads,
            _unused: unused,
        })
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.to_string()).spawn(f)
}

impl Drop for SimulatedBench {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Ticks the target every millisecond of real time.
fn board_loop(shared: &Shared, mut telemetry: DevicePort) {
    let mut can_tx = Vec::new();
    let mut uart = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = shared.now_us();
        let pins = {
            let mut b = shared.board();
            let b = &mut *b;
            Shared::supply_settles(b, now);
            if b.powered {
                let mut io = TargetIo {
                    can_rx: &mut b.can_rx,
                    can_tx: &mut can_tx,
                    uart_tx: &mut uart,
                };
                let pins = b.target.tick(now, &mut io);
                if b.target.power_cut_requested() {
                    b.powered = false;
                    b.target.power_off();
                }
                pins
            } else {
                Pins::default()
            }
        };
        lock(&shared.pwm).advance(now, pins.pwm_pulse_us);
        if !can_tx.is_empty() {
            let mut q = lock(&shared.board_tx);
            q.extend(can_tx.drain(..));
            while q.len() > 256 {
                q.pop_front();
            }
        }
        if !uart.is_empty() {
            let _ = telemetry.write_all(&uart);
            let _ = telemetry.flush();
            uart.clear();
        }
        telemetry.pump();
        std::thread::sleep(Duration::from_micros(1000 - now % 1000));
    }
    // Keep the port alive until the end so the host sees no hang-up mid-run.
    drop(telemetry);
}
