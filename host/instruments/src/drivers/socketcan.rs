//! SocketCAN adapters (Linux): any CAN interface the kernel has a driver for — USB adapters on
//! `gs_usb` (CANable/candleLight firmware), PEAK, Kvaser, an on-board controller — and the
//! virtual `vcan` bus.
//!
//! Rig config:
//!
//! ```toml
//! [can]
//! adapter = "socketcan"
//! interface = "can0"     # the network interface, not a /dev path
//! bitrate = 500000       # what the bus must run at; the system sets it (see below)
//! fd = false             # true: open a CAN FD socket (classic frames still work)
//! ```
//!
//! # Setting up can0 / vcan0
//!
//! The bitrate is a property of the interface and is set by the system, not by the rig (a
//! process needs CAP_NET_ADMIN to change it, and every program on the interface shares it):
//!
//! ```sh
//! ip link set can0 down
//! ip link set can0 type can bitrate 500000          # the gauge's bus: 500 kbit/s
//! #   CAN FD:  ip link set can0 type can bitrate 500000 dbitrate 2000000 fd on
//! #   bus-off recovery without a manual down/up:  ... restart-ms 100
//! ip link set can0 up
//! ip -details -statistics link show can0            # state ERROR-ACTIVE, bitrate, error counters
//! ```
//!
//! A virtual bus for tests (no hardware; every socket on it sees the others' frames):
//!
//! ```sh
//! modprobe vcan
//! ip link add dev vcan0 type vcan
//! ip link set up vcan0
//! ```
//!
//! The kernel needs `CONFIG_CAN` and `CONFIG_CAN_RAW` (modules `can`, `can-raw`; `vcan` for the
//! virtual bus). Some container and VM kernels have none: `socket(AF_CAN)` then fails with
//! EAFNOSUPPORT and [`SocketCanAdapter::open`] says so. `.ci/vcan-tests` runs the SocketCAN tests
//! in a Debian kernel under QEMU on such machines.
//!
//! Error frames the controller reports (bus-off, error-passive, no ACK, transceiver faults,
//! buffer overflows) come back from [`CanAdapter::recv`] as [`InstrumentError::CanBus`] naming
//! the interface and what to check; warnings and recovery notices are only logged. Remote frames
//! are ignored (the gauge uses none). The rig's frame type is classic CAN: CAN FD frames with at
//! most 8 data bytes are passed on as classic frames, longer ones are ignored.

use std::{
    io,
    time::{Duration, Instant},
};

use gauge_logic::frame::CanFrame;
use socketcan::{
    errors::{
        ControllerProblems, ErrorCause, CAN_ERR_ACK, CAN_ERR_BUSOFF, CAN_ERR_CRTL,
        CAN_ERR_RESTARTED, CAN_ERR_TRX, CAN_ERR_TX_TIMEOUT,
    },
    CanAddr, CanAnyFrame, CanError, CanFdSocket, CanSocket, EmbeddedFrame, ExtendedId, Id, Socket,
    SocketOptions, StandardId,
};

use crate::{CanAdapter, InstrumentError, InstrumentResult};

/// How long a send may wait for room in the socket's buffer.
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);
/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
const MAX_INTERFACE_NAME: usize = 15;
/// `/sys/class/net/<if>/type` of a CAN interface (ARPHRD_CAN).
const ARPHRD_CAN: u32 = 280;
/// MTU of an interface that carries CAN FD frames (sizeof(struct canfd_frame)).
const CANFD_MTU: u32 = 72;
/// Error classes the driver subscribes to. Single protocol violations and lost arbitration are
/// left out: they are normal now and then, and when they persist the controller reports
/// error-passive or bus-off, which are in.
const ERROR_MASK: u32 = CAN_ERR_TX_TIMEOUT
    | CAN_ERR_CRTL
    | CAN_ERR_TRX
    | CAN_ERR_ACK
    | CAN_ERR_BUSOFF
    | CAN_ERR_RESTARTED;

/// What a frame read from a SocketCAN socket means to the rig.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// A data frame (classic, or CAN FD with at most 8 data bytes).
    Frame(CanFrame),
    /// Nothing for the rig (remote frame, long CAN FD frame, informational error report): why.
    Ignored(String),
    /// An error frame reporting a bus problem: what happened and what to check.
    BusError(String),
}

/// The socketcan frame for `frame`; `None` when its ID or length is out of range.
pub fn to_socketcan(frame: &CanFrame) -> Option<socketcan::CanFrame> {
    if frame.len > 8 {
        return None;
    }
    let id: Id = if frame.extended {
        ExtendedId::new(frame.id)?.into()
    } else {
        StandardId::new(u16::try_from(frame.id).ok()?)?.into()
    };
    socketcan::CanFrame::new(id, frame.payload())
}

fn data_frame(id: Id, data: &[u8]) -> Option<CanFrame> {
    match id {
        Id::Standard(id) => CanFrame::standard(id.as_raw(), data),
        Id::Extended(id) => CanFrame::extended(id.as_raw(), data),
    }
}

/// A frame read from a classic socket, as the rig sees it.
pub fn from_socketcan(frame: &socketcan::CanFrame, interface: &str) -> Received {
    match frame {
        socketcan::CanFrame::Data(f) => match data_frame(f.id(), f.data()) {
            Some(frame) => Received::Frame(frame),
            None => Received::Ignored(format!("malformed data frame {f:?}")),
        },
        socketcan::CanFrame::Remote(f) => Received::Ignored(format!("remote frame {f:?}")),
        socketcan::CanFrame::Error(f) => from_error(&f.into_error(), interface),
    }
}

/// A frame read from a CAN FD socket, as the rig sees it.
pub fn from_socketcan_any(frame: &CanAnyFrame, interface: &str) -> Received {
    match frame {
        CanAnyFrame::Normal(f) => from_socketcan(&socketcan::CanFrame::Data(*f), interface),
        CanAnyFrame::Remote(f) => from_socketcan(&socketcan::CanFrame::Remote(*f), interface),
        CanAnyFrame::Error(f) => from_error(&f.into_error(), interface),
        CanAnyFrame::Fd(f) if f.data().len() <= 8 => match data_frame(f.id(), f.data()) {
            Some(frame) => Received::Frame(frame),
            None => Received::Ignored(format!("malformed CAN FD frame {f:?}")),
        },
        CanAnyFrame::Fd(f) => Received::Ignored(format!(
            "CAN FD frame with {} data bytes (the rig handles at most 8)",
            f.data().len()
        )),
    }
}

/// Sorts an error frame's causes: problems the run cannot go on with become
/// [`Received::BusError`] (with what to check), the rest is informational.
pub fn from_error(error: &CanError, interface: &str) -> Received {
    let mut problems: Vec<String> = Vec::new();
    let mut advice: Vec<String> = Vec::new();
    let mut advise = |a: String| {
        if !advice.contains(&a) {
            advice.push(a);
        }
    };
    let mut notes: Vec<String> = Vec::new();
    let wiring = "wiring (CAN_H/CAN_L), 120 ohm termination at both ends";
    let bitrate = format!(
        "that every node runs the same bitrate (`ip -details link show {interface}`; the system sets it: `ip link set {interface} type can bitrate 500000`)"
    );
    for cause in error {
        match *cause {
            ErrorCause::BusOff => {
                problems.push(
                    "bus-off: the controller stopped transmitting after too many errors".into(),
                );
                advise(format!("check the {wiring} and {bitrate}, then restart the interface (`ip link set {interface} down; ip link set {interface} up`, or configure `restart-ms 100`)"));
            }
            ErrorCause::NoAck => {
                problems.push("no ACK: no other node acknowledged a frame".into());
                advise(format!("check that the board is powered and connected to the bus, the {wiring}, and {bitrate}"));
            }
            ErrorCause::TransmitTimeout => {
                problems.push("transmission timed out in the controller".into());
                advise(format!(
                    "check that the bus is not held dominant and {bitrate}"
                ));
            }
            ErrorCause::Transceiver { .. } => {
                problems.push(cause.to_string());
                advise(format!("check the {wiring}"));
            }
            ErrorCause::Controller(p)
                if p.intersects(
                    ControllerProblems::RX_PASSIVE | ControllerProblems::TX_PASSIVE,
                ) =>
            {
                problems.push(format!(
                    "error-passive ({p}): the controller sees many bus errors"
                ));
                advise(format!("check the {wiring} and {bitrate}"));
            }
            ErrorCause::Controller(p)
                if p.intersects(
                    ControllerProblems::RX_OVERFLOW | ControllerProblems::TX_OVERFLOW,
                ) =>
            {
                problems.push(format!("{p}: frames were lost"));
                advise(format!(
                    "check the load on the bus and that nothing else floods {interface}"
                ));
            }
            _ => notes.push(cause.to_string()),
        }
    }
    if problems.is_empty() {
        return Received::Ignored(format!("error report: {}", notes.join("; ")));
    }
    Received::BusError(format!(
        "CAN bus error: {}. Check: {}",
        problems.join("; "),
        advice.join("; ")
    ))
}

/// The error text for a kernel without AF_CAN.
pub fn no_kernel_support() -> String {
    "this kernel has no SocketCAN support (socket(AF_CAN) fails with EAFNOSUPPORT). \
     Load the modules (`modprobe can can-raw`, and `vcan` for a virtual bus) or use a kernel with CONFIG_CAN and CONFIG_CAN_RAW; \
     containers and some VM kernels have none (`.ci/vcan-tests` runs the SocketCAN tests under QEMU)"
        .to_string()
}

/// The error text for an interface that does not exist.
pub fn missing_interface(interface: &str) -> String {
    format!(
        "no network interface named {interface:?} (`ip link show {interface}` fails). \
         Check that the adapter is plugged in and its driver loaded (`ip -brief link` lists can0, can1...) \
         and the rig config's can.interface; for a virtual bus: `modprobe vcan; ip link add dev {interface} type vcan; ip link set up {interface}`"
    )
}

/// The error text for an interface that is down.
pub fn interface_down(interface: &str, bitrate: u32) -> String {
    format!(
        "CAN interface {interface} is down (`ip link show {interface}`). The bitrate is set by the system, not by the rig: \
         `ip link set {interface} down; ip link set {interface} type can bitrate {bitrate}; ip link set {interface} up` \
         (a vcan interface has no bitrate: `ip link set up {interface}`)"
    )
}

fn sysfs(interface: &str, what: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/{what}"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// `Some(true)` when the interface is administratively up, `None` when sysfs does not say.
fn interface_up(interface: &str) -> Option<bool> {
    let flags = sysfs(interface, "flags")?;
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
    Some(flags & 0x1 != 0) // IFF_UP
}

fn sysfs_number(interface: &str, what: &str) -> Option<u32> {
    sysfs(interface, what)?.parse().ok()
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

enum Sock {
    Classic(CanSocket),
    Fd(CanFdSocket),
}

/// A CAN interface through SocketCAN (raw socket).
pub struct SocketCanAdapter {
    socket: Sock,
    interface: String,
    bitrate: u32,
    fd: bool,
}

impl SocketCanAdapter {
    /// Opens a raw CAN socket on `interface` (e.g. `can0`, `vcan0`); `fd` opens a CAN FD socket.
    /// `bitrate` is what the bus should run at: the system sets it (see the module docs), the
    /// rig only names it in error messages.
    pub fn open(interface: &str, fd: bool, bitrate: u32) -> InstrumentResult<Self> {
        let err = |reason: String| InstrumentError::CanBus {
            device: interface.to_string(),
            reason,
        };
        if interface.is_empty()
            || interface.len() > MAX_INTERFACE_NAME
            || interface.contains(['/', ' ', '\0'])
        {
            return Err(err(format!(
                "{interface:?} is not a network interface name (at most {MAX_INTERFACE_NAME} characters, no '/': e.g. can0, vcan0)"
            )));
        }
        let addr = match CanAddr::from_iface(interface) {
            Ok(addr) => addr,
            Err(e) => {
                // Without AF_CAN no CAN interface can exist: say that, not "missing interface".
                return Err(err(if kernel_lacks_socketcan() {
                    no_kernel_support()
                } else if e.raw_os_error() == Some(libc::ENODEV) {
                    missing_interface(interface)
                } else {
                    format!("cannot look up interface {interface}: {e}")
                }));
            }
        };
        let opened = if fd {
            CanFdSocket::open_addr(&addr).map(Sock::Fd)
        } else {
            CanSocket::open_addr(&addr).map(Sock::Classic)
        };
        let socket = opened.map_err(|e| {
            err(match e.raw_os_error() {
                Some(libc::EAFNOSUPPORT) | Some(libc::EPROTONOSUPPORT) => {
                    no_kernel_support()
                }
                Some(libc::ENODEV) if sysfs_number(interface, "type") != Some(ARPHRD_CAN) => {
                    format!("{interface} is not a CAN interface (`ip -details link show {interface}`); the rig config's can.interface names the CAN adapter, e.g. can0")
                }
                Some(libc::ENODEV) => missing_interface(interface),
                _ => format!("cannot open a CAN socket on {interface}: {e}"),
            })
        })?;
        if interface_up(interface) == Some(false) {
            return Err(err(interface_down(interface, bitrate)));
        }
        if fd {
            if let Some(mtu) = sysfs_number(interface, "mtu").filter(|m| *m != CANFD_MTU) {
                return Err(err(format!(
                    "can.fd = true but {interface} does not carry CAN FD frames (MTU {mtu}, FD needs {CANFD_MTU}): \
                     `ip link set {interface} down; ip link set {interface} type can bitrate {bitrate} dbitrate 2000000 fd on; ip link set {interface} up` \
                     (vcan: `ip link set {interface} mtu 72`), or set fd = false"
                )));
            }
        }
        let adapter = Self {
            socket,
            interface: interface.to_string(),
            bitrate,
            fd,
        };
        adapter
            .configure()
            .map_err(|e| err(format!("cannot configure the CAN socket: {e}")))?;
        Ok(adapter)
    }

    fn configure(&self) -> io::Result<()> {
        match &self.socket {
            Sock::Classic(s) => {
                s.set_error_filter(ERROR_MASK)?;
                s.set_write_timeout(WRITE_TIMEOUT)
            }
            Sock::Fd(s) => {
                s.set_error_filter(ERROR_MASK)?;
                s.set_write_timeout(WRITE_TIMEOUT)
            }
        }
    }

    /// The interface this adapter is bound to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    fn error(&self, reason: String) -> InstrumentError {
        InstrumentError::CanBus {
            device: self.interface.clone(),
            reason,
        }
    }

    /// An I/O error from the socket, with what to check for the usual ones.
    fn io_failure(&self, e: io::Error, what: &str) -> InstrumentError {
        let i = &self.interface;
        match e.raw_os_error() {
            Some(libc::ENETDOWN) => self.error(interface_down(i, self.bitrate)),
            Some(libc::ENOBUFS) => self.error(format!(
                "{what}: transmit queue full: frames are not leaving {i}, usually because no node acknowledges them \
                 (board off or not connected, wrong bitrate, missing termination). Check `ip -details -statistics link show {i}`"
            )),
            Some(libc::ENODEV) | Some(libc::ENXIO) => self.error(format!(
                "{what}: interface {i} went away (adapter unplugged?). Check `ip link show {i}`"
            )),
            _ => InstrumentError::Io {
                device: i.clone(),
                reason: format!("{what}: {e}"),
            },
        }
    }

    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        // SO_RCVTIMEO of zero would mean "wait forever".
        let timeout = timeout.max(Duration::from_millis(1));
        match &self.socket {
            Sock::Classic(s) => s.set_read_timeout(timeout),
            Sock::Fd(s) => s.set_read_timeout(timeout),
        }
    }

    /// One read within the socket's read timeout: `Ok(None)` when nothing came.
    fn read_once(&self) -> io::Result<Option<Received>> {
        let read = match &self.socket {
            Sock::Classic(s) => s.read_frame().map(|f| from_socketcan(&f, &self.interface)),
            Sock::Fd(s) => s
                .read_frame()
                .map(|f| from_socketcan_any(&f, &self.interface)),
        };
        match read {
            Ok(r) => Ok(Some(r)),
            Err(e) if is_timeout(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// True when this kernel cannot make AF_CAN sockets at all.
pub fn kernel_lacks_socketcan() -> bool {
    // Interface index 0 binds to every CAN interface, so this works with none configured.
    matches!(
        CanSocket::open_iface(0),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT) | Some(libc::EPROTONOSUPPORT))
    )
}

impl CanAdapter for SocketCanAdapter {
    fn send(&mut self, frame: &CanFrame) -> InstrumentResult<()> {
        let out = to_socketcan(frame).ok_or_else(|| InstrumentError::Protocol {
            device: self.interface.clone(),
            reason: format!("cannot send {frame:?}: ID or length out of range"),
        })?;
        let written = match &self.socket {
            Sock::Classic(s) => s.write_frame(&out),
            Sock::Fd(s) => s.write_frame(&out),
        };
        written.map_err(|e| {
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                let i = &self.interface;
                self.error(format!(
                    "send: no room in the socket's send buffer within {WRITE_TIMEOUT:?}: frames are not leaving {i}, \
                     usually because no node acknowledges them (board off or not connected, wrong bitrate, missing termination). \
                     Check `ip -details -statistics link show {i}`"
                ))
            } else {
                self.io_failure(e, "send")
            }
        })
    }

    fn recv(&mut self, timeout: Duration) -> InstrumentResult<Option<CanFrame>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            self.set_read_timeout(left)
                .map_err(|e| self.io_failure(e, "set read timeout"))?;
            match self
                .read_once()
                .map_err(|e| self.io_failure(e, "receive"))?
            {
                Some(Received::Frame(f)) => return Ok(Some(f)),
                Some(Received::BusError(reason)) => return Err(self.error(reason)),
                Some(Received::Ignored(why)) => {
                    tracing::debug!(interface = %self.interface, %why, "ignored CAN frame");
                }
                None => {}
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "SocketCAN {} ({})",
            self.interface,
            if self.fd {
                "CAN FD socket"
            } else {
                "classic CAN"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socketcan::{CanErrorFrame, CanFdFrame, CanRemoteFrame};

    fn roundtrip(f: CanFrame) {
        let sc = to_socketcan(&f).unwrap();
        assert_eq!(sc.is_extended(), f.extended);
        assert_eq!(sc.data(), f.payload());
        assert_eq!(from_socketcan(&sc, "vcan0"), Received::Frame(f));
        let any = CanAnyFrame::from(sc);
        assert_eq!(from_socketcan_any(&any, "vcan0"), Received::Frame(f));
    }

    #[test]
    fn data_frames_convert_both_ways() {
        roundtrip(CanFrame::standard(0x156, &[0x00, 0x96, 0, 0, 0, 0, 0, 0]).unwrap());
        roundtrip(CanFrame::standard(0x7FF, &[]).unwrap());
        roundtrip(CanFrame::extended(0x18DB_33F1, &[0x02, 0x01, 0x5C]).unwrap());
        roundtrip(CanFrame::extended(0x1FFF_FFFF, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap());
        // A standard ID stays standard even when small, an extended one stays extended.
        let sc = to_socketcan(&CanFrame::extended(0x7DF, &[1]).unwrap()).unwrap();
        assert_eq!(sc.id(), Id::Extended(ExtendedId::new(0x7DF).unwrap()));
    }

    #[test]
    fn out_of_range_frames_are_refused() {
        let mut f = CanFrame::standard(0x100, &[1]).unwrap();
        f.id = 0x800;
        assert!(to_socketcan(&f).is_none());
        let mut f = CanFrame::extended(0x100, &[1]).unwrap();
        f.id = 0x2000_0000;
        assert!(to_socketcan(&f).is_none());
        let mut f = CanFrame::standard(0x100, &[1]).unwrap();
        f.len = 9;
        assert!(to_socketcan(&f).is_none());
    }

    #[test]
    fn remote_frames_are_ignored() {
        let r = CanRemoteFrame::new_remote(StandardId::new(0x7DF).unwrap(), 8).unwrap();
        assert!(matches!(
            from_socketcan(&socketcan::CanFrame::Remote(r), "can0"),
            Received::Ignored(_)
        ));
        assert!(matches!(
            from_socketcan_any(&CanAnyFrame::Remote(r), "can0"),
            Received::Ignored(_)
        ));
    }

    #[test]
    fn fd_frames_pass_when_they_fit_a_classic_frame() {
        let short = CanFdFrame::new(StandardId::new(0x156).unwrap(), &[1, 2, 3]).unwrap();
        assert_eq!(
            from_socketcan_any(&CanAnyFrame::Fd(short), "can0"),
            Received::Frame(CanFrame::standard(0x156, &[1, 2, 3]).unwrap())
        );
        let long = CanFdFrame::new(ExtendedId::new(0x1234).unwrap(), &[0xAA; 12]).unwrap();
        match from_socketcan_any(&CanAnyFrame::Fd(long), "can0") {
            Received::Ignored(why) => assert!(why.contains("12 data bytes"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    fn error_frame(causes: &[ErrorCause]) -> socketcan::CanFrame {
        let err = CanError::from_iter_checked(causes.iter().copied()).unwrap();
        socketcan::CanFrame::Error(CanErrorFrame::from(err))
    }

    fn bus_error(causes: &[ErrorCause]) -> String {
        match from_socketcan(&error_frame(causes), "can0") {
            Received::BusError(text) => text,
            other => panic!("{causes:?}: {other:?}"),
        }
    }

    #[test]
    fn error_frames_become_bus_errors_naming_the_interface() {
        let t = bus_error(&[ErrorCause::BusOff]);
        assert!(t.contains("can0") && t.contains("bus-off"), "{t}");
        assert!(t.contains("ip link set can0"), "{t}");
        let t = bus_error(&[ErrorCause::NoAck]);
        assert!(
            t.contains("no ACK") && t.contains("board is powered"),
            "{t}"
        );
        let t = bus_error(&[ErrorCause::Controller(ControllerProblems::TX_PASSIVE)]);
        assert!(t.contains("error-passive") && t.contains("bitrate"), "{t}");
        let t = bus_error(&[
            ErrorCause::Controller(ControllerProblems::RX_PASSIVE),
            ErrorCause::BusOff,
        ]);
        assert!(t.contains("error-passive") && t.contains("bus-off"), "{t}");
        let t = bus_error(&[ErrorCause::TransmitTimeout]);
        assert!(t.contains("timed out"), "{t}");
        // Through an FD socket too.
        let CanAnyFrame::Error(e) = CanAnyFrame::from(error_frame(&[ErrorCause::BusOff])) else {
            panic!("not an error frame");
        };
        assert!(matches!(
            from_socketcan_any(&CanAnyFrame::Error(e), "can1"),
            Received::BusError(t) if t.contains("can1")
        ));
    }

    #[test]
    fn warnings_and_recovery_are_only_informational() {
        for causes in [
            &[ErrorCause::Controller(ControllerProblems::TX_WARNING)][..],
            &[ErrorCause::Controller(ControllerProblems::ACTIVE)],
            &[ErrorCause::Restarted],
            &[ErrorCause::LostArbitration(3)],
        ] {
            assert!(
                matches!(
                    from_socketcan(&error_frame(causes), "can0"),
                    Received::Ignored(_)
                ),
                "{causes:?}"
            );
        }
    }

    #[test]
    fn messages_say_what_to_check() {
        let t = interface_down("can0", 500_000);
        assert!(t.contains("is down") && t.contains("bitrate 500000"), "{t}");
        assert!(t.contains("ip link show can0"), "{t}");
        let t = missing_interface("can7");
        assert!(
            t.contains("\"can7\"") && t.contains("ip link show can7"),
            "{t}"
        );
        assert!(no_kernel_support().contains("kernel has no SocketCAN support"));
    }

    #[test]
    fn bad_interface_names_are_refused_before_any_syscall() {
        for name in ["", "a-very-long-interface-name", "/dev/can0"] {
            let e = SocketCanAdapter::open(name, false, 500_000).err().unwrap();
            assert!(
                matches!(&e, InstrumentError::CanBus { reason, .. } if reason.contains("not a network interface name")),
                "{name:?}: {e}"
            );
        }
    }

    /// Runs everywhere: on a kernel without AF_CAN (this project's dev machines) the error says
    /// so; on one with it, a missing interface is named as missing.
    #[test]
    fn open_explains_a_kernel_without_socketcan_or_a_missing_interface() {
        let e = SocketCanAdapter::open("gaugenope0", false, 500_000)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("gaugenope0: "), "{e}");
        if kernel_lacks_socketcan() {
            assert!(e.contains("this kernel has no SocketCAN support"), "{e}");
        } else {
            assert!(
                e.contains("no network interface named \"gaugenope0\""),
                "{e}"
            );
        }
        // The same answer with an FD socket.
        let fd = SocketCanAdapter::open("gaugenope0", true, 500_000)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(fd, e);
    }
}
