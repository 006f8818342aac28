//! A real debug probe (ST-LINK, CMSIS-DAP v2, J-Link...) through the probe-rs library.
//!
//! **Which probe.** A bench can have two ST-LINKs on one host (the NUCLEO's and another
//! bench's): the probe is picked by the serial number in the rig config (`probe.serial`). With
//! no serial configured and exactly one probe attached, that probe is used and the rig says so;
//! with none, the wrong serial or several probes, the error lists what was found (VID:PID,
//! serial, name) and what to check. The pure selection logic is [`select_probe`].
//!
//! **When the USB device is opened.** Not at [`ProbeRsProbe::open`], which only checks that the
//! configured probe is there: every attach opens it anew by VID:PID and serial. A NUCLEO's
//! ST-LINK is powered by the same USB port as the board, so a power cycle of that port makes it
//! leave the bus and come back; an old handle would be dead.
//!
//! **Timeouts.** probe-rs calls block. Each one here runs on a worker thread and the caller
//! waits at most a bounded time ([`LIST_TIMEOUT`], [`ATTACH_CALL_TIMEOUT`], [`ACCESS_TIMEOUT`],
//! [`ERASE_TIMEOUT`], [`FLASH_TIMEOUT`], [`DETACH_TIMEOUT`]). probe-rs bounds most waits itself:
//! every ST-LINK USB transfer (1 s, `probe/stlink/usb_interface.rs` `TIMEOUT`), the halt after
//! an attach under reset (100 ms, `session.rs`), the NRST release check (1 s, ARM
//! `reset_hardware_deassert`), flash algorithm init (2 s), chip erase (40 s) and each page
//! program/sector erase (the target description's timeouts, `flashing/flasher.rs`), and
//! [`wait_for_core_halted`](probe_rs::Core::wait_for_core_halted) takes one. The outer bounds
//! here only catch a wedged USB stack: when one passes, the stuck call keeps the USB handle, the
//! probe is marked lost and every later call says to replug it.

use std::{
    path::{Path, PathBuf},
    sync::mpsc,
    time::Duration,
};

use ::probe_rs::{
    flashing::{self, DownloadOptions, ElfLoader, ElfOptions, FlashProgress},
    probe::{
        list::{Accessibility, Lister},
        DebugProbeError, DebugProbeSelector, Probe, ProbeCreationError,
    },
    MemoryInterface, Permissions, Session,
};

use bench_config::ProbeConfig;
use crate::{CoreSelect, DebugProbe, ProbeError};

/// Listing the probes on USB.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(5);
/// One attach (open the USB device, connect, select the core); at least the config's
/// `attach_timeout_ms`.
pub const ATTACH_CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// One memory read, reset or NRST change.
pub const ACCESS_TIMEOUT: Duration = Duration::from_secs(5);
/// Erasing both flash banks (ST gives up to a few seconds per bank; probe-rs allows 40 s).
pub const ERASE_TIMEOUT: Duration = Duration::from_secs(90);
/// Downloading and verifying an image (2 MiB of flash at the slowest ST-LINK clock fits).
pub const FLASH_TIMEOUT: Duration = Duration::from_secs(300);
/// Ending a session (probe-rs clears breakpoints and stops debug on each core).
pub const DETACH_TIMEOUT: Duration = Duration::from_secs(5);
/// The core's halt after an attach under reset.
pub const HALT_TIMEOUT: Duration = Duration::from_millis(500);

/// What to check when no probe answers.
pub const PROBE_CHECKLIST: &str = "Check: the probe's USB cable (on a NUCLEO-144 the ST-LINK's USB connector, CN1) and that it is powered; udev rules that let this user open it (probe-rs's 69-probe-rs.rules in /etc/udev/rules.d, then `udevadm control --reload-rules && udevadm trigger` and replug); if the bench's power switch also powers the probe, power.settle_ms must cover its USB re-enumeration; and what `probe-rs list` or `rig list` shows";

/// probe-rs core index of a core of the STM32H755 (`STM32H7_Series.yaml`: core 0 = cm7 on
/// AP 0, core 1 = cm4 on AP 3).
pub fn core_index(core: CoreSelect) -> usize {
    match core {
        CoreSelect::Cm7 => 0,
        CoreSelect::Cm4 => 1,
    }
}

/// A probe as listed on USB: what selection and error texts need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundProbe {
    pub name: String,
    pub vendor_id: u16,
    pub product_id: u16,
    pub serial: Option<String>,
    /// False when the probe is there but this user may not open it (udev rules).
    pub accessible: bool,
}

impl std::fmt::Display for FoundProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04x}:{:04x} serial {} \"{}\"",
            self.vendor_id,
            self.product_id,
            self.serial.as_deref().unwrap_or("(none)"),
            self.name
        )?;
        if !self.accessible {
            f.write_str(" (permission denied: udev rules)")?;
        }
        Ok(())
    }
}

/// How the probe was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Its serial is `probe.serial`.
    BySerial(usize),
    /// `probe.serial` is not set and it is the only probe attached.
    OnlyOne(usize),
}

impl Selection {
    pub fn index(self) -> usize {
        match self {
            Self::BySerial(i) | Self::OnlyOne(i) => i,
        }
    }
}

fn list_found(found: &[FoundProbe]) -> String {
    found
        .iter()
        .map(|p| format!("\n  - {p}"))
        .collect::<String>()
}

/// Why no probe could be chosen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("no debug probe found on USB{}. {PROBE_CHECKLIST}", if *.usb_visible { "" } else { " (this machine has no /sys/bus/usb/devices: USB devices are not visible here at all, e.g. inside a container)" })]
    NoneFound {
        /// Whether this machine shows USB devices at all (Linux: /sys/bus/usb/devices).
        usb_visible: bool,
    },
    #[error("no debug probe with serial {serial:?} (probe.serial in the rig config); found:{}\nCheck that probe.serial names this bench's probe (`rig list` shows the serials; a NUCLEO's ST-LINK serial is also in its /dev/serial/by-id name) and that it is plugged in. Never point a bench at another bench's ST-LINK.", list_found(.found))]
    SerialNotFound {
        serial: String,
        found: Vec<FoundProbe>,
    },
    #[error("{} debug probes attached and probe.serial is not set in the rig config, so the rig cannot tell which one is this bench's:{}\nSet probe.serial to the right one's serial (`rig list` shows them).", .found.len(), list_found(.found))]
    Ambiguous { found: Vec<FoundProbe> },
    #[error("{} debug probes report serial {serial:?}:{}\nUnplug the one that is not this bench's.", .found.len(), list_found(.found))]
    DuplicateSerial {
        serial: String,
        found: Vec<FoundProbe>,
    },
    #[error("found {probe} but this user may not open it: install probe-rs's udev rules (69-probe-rs.rules in /etc/udev/rules.d, then `udevadm control --reload-rules && udevadm trigger`) or add the user to the group they name, and replug the probe")]
    PermissionDenied { probe: FoundProbe },
}

fn serial_matches(found: Option<&str>, wanted: &str) -> bool {
    found.is_some_and(|s| s.trim().eq_ignore_ascii_case(wanted.trim()))
}

/// Picks the bench's probe among `found` by `serial` (the rig config's `probe.serial`).
pub fn select_probe(found: &[FoundProbe], serial: Option<&str>) -> Result<Selection, SelectError> {
    if found.is_empty() {
        return Err(SelectError::NoneFound { usb_visible: true });
    }
    let usable = |i: usize| {
        if found[i].accessible {
            Ok(i)
        } else {
            Err(SelectError::PermissionDenied {
                probe: found[i].clone(),
            })
        }
    };
    match serial {
        Some(wanted) => {
            let matching: Vec<usize> = (0..found.len())
                .filter(|&i| serial_matches(found[i].serial.as_deref(), wanted))
                .collect();
            match matching.as_slice() {
                [] => Err(SelectError::SerialNotFound {
                    serial: wanted.to_string(),
                    found: found.to_vec(),
                }),
                [i] => usable(*i).map(Selection::BySerial),
                many => Err(SelectError::DuplicateSerial {
                    serial: wanted.to_string(),
                    found: many.iter().map(|&i| found[i].clone()).collect(),
                }),
            }
        }
        None if found.len() == 1 => usable(0).map(Selection::OnlyOne),
        None => Err(SelectError::Ambiguous {
            found: found.to_vec(),
        }),
    }
}

/// The notice for a probe taken without a configured serial.
pub fn only_one_notice(probe: &FoundProbe) -> String {
    match &probe.serial {
        Some(s) => format!("probe.serial is not set in the rig config: using the only probe attached, {probe}. Add `serial = \"{s}\"` to [probe] so that another bench's probe is never used by mistake"),
        None => format!("probe.serial is not set in the rig config: using the only probe attached, {probe} (it reports no serial number)"),
    }
}

/// Errors of the probe-rs backend before any target is involved.
#[derive(Debug, thiserror::Error)]
pub enum ProbeRsError {
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error("listing the USB debug probes did not finish within {0:?}: the USB stack may be stuck; replug the probe")]
    ListTimeout(Duration),
    #[error("probe-rs worker thread: {0}")]
    Worker(String),
}

impl From<ProbeRsError> for ProbeError {
    fn from(e: ProbeRsError) -> Self {
        ProbeError::Other {
            probe: "probe-rs".into(),
            reason: e.to_string(),
        }
    }
}

/// Why a bounded call returned no result.
enum Unfinished {
    Elapsed,
    Panicked,
    NoThread(String),
}

/// Runs `f` on its own thread and waits at most `timeout` for it. A call that overruns keeps
/// running (and keeps whatever it owns) until it returns on its own.
fn bounded<R: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, Unfinished> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("probe-rs call".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| Unfinished::NoThread(e.to_string()))?;
    match rx.recv_timeout(timeout) {
        Ok(r) => Ok(r),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(Unfinished::Elapsed),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Unfinished::Panicked),
    }
}

fn probe_info(item: &::probe_rs::probe::list::ProbeListItem) -> FoundProbe {
    FoundProbe {
        name: item.info.identifier.clone(),
        vendor_id: item.info.vendor_id,
        product_id: item.info.product_id,
        serial: item.info.serial_number.clone(),
        accessible: item.accessibility == Accessibility::Accessible,
    }
}

/// The probes on USB now (all probe-rs drivers), with whether this user may open each.
pub fn list_probes() -> Result<Vec<FoundProbe>, ProbeRsError> {
    Ok(list_with_selectors()?.into_iter().map(|(p, _)| p).collect())
}

fn list_with_selectors() -> Result<Vec<(FoundProbe, DebugProbeSelector)>, ProbeRsError> {
    bounded(LIST_TIMEOUT, || {
        Lister::new()
            .list_all_with_access()
            .iter()
            .map(|item| (probe_info(item), DebugProbeSelector::from(&item.info)))
            .collect::<Vec<_>>()
    })
    .map_err(|u| match u {
        Unfinished::Elapsed => ProbeRsError::ListTimeout(LIST_TIMEOUT),
        Unfinished::Panicked => ProbeRsError::Worker("probe-rs panicked while listing".into()),
        Unfinished::NoThread(e) => ProbeRsError::Worker(e),
    })
}

/// Opens the probe by VID:PID and serial and sets its clock (to run on the worker).
fn usb_opener(
    selector: DebugProbeSelector,
    speed_khz: Option<u32>,
) -> impl FnOnce() -> Result<Probe, ::probe_rs::Error> + Send + 'static {
    move || {
        let mut probe = Lister::new().open(selector)?;
        if let Some(khz) = speed_khz {
            probe.set_speed(khz)?;
        }
        Ok(probe)
    }
}

/// Whether USB devices can be seen on this machine at all (false in many containers).
pub fn usb_visible() -> bool {
    !cfg!(target_os = "linux") || Path::new("/sys/bus/usb/devices").is_dir()
}

/// An error and its sources, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        next = cause.source();
    }
    s
}

enum Link {
    /// No USB handle open.
    Idle,
    /// Opened, NRST driven low, not attached.
    ResetHeld(Probe),
    Attached {
        session: Box<Session>,
        core: CoreSelect,
        index: usize,
    },
    /// A call overran its bound and still owns the USB handle.
    Lost { what: String },
}

/// The bench's debug probe through probe-rs.
pub struct ProbeRsProbe {
    /// `probe.serial`.
    serial: Option<String>,
    /// The probe last picked on USB, and how to open it.
    found: Option<(FoundProbe, DebugProbeSelector)>,
    chip: String,
    speed_khz: Option<u32>,
    attach_timeout: Duration,
    /// How the probe was chosen, when the rig should say so (no serial configured).
    pub notice: Option<String>,
    link: Link,
}

impl ProbeRsProbe {
    /// Finds the configured probe on USB (see the module docs); does not open it yet.
    pub fn open(config: &ProbeConfig) -> Result<Self, ProbeRsError> {
        let mut probe = Self::deferred(config);
        probe.locate()?;
        Ok(probe)
    }

    /// A probe looked up on USB only at its first use.
    pub fn deferred(config: &ProbeConfig) -> Self {
        Self {
            serial: config.serial.clone(),
            found: None,
            chip: config.chip.clone(),
            speed_khz: config.speed_khz,
            attach_timeout: Duration::from_millis(config.attach_timeout_ms),
            notice: None,
            link: Link::Idle,
        }
    }

    /// [`open`](Self::open), but a probe that is not on USB yet (one the bench's power switch
    /// powers, before power-on) is looked up again at its first use.
    pub fn open_or_defer(config: &ProbeConfig) -> Result<Self, ProbeRsError> {
        match Self::open(config) {
            Err(ProbeRsError::Select(
                e @ (SelectError::NoneFound { .. } | SelectError::SerialNotFound { .. }),
            )) => {
                tracing::warn!("{e}\n(looking again when the rig first attaches)");
                Ok(Self::deferred(config))
            }
            other => other,
        }
    }

    /// Lists the probes on USB and picks this bench's (every connect does: after a power cycle
    /// the ST-LINK is a new USB device).
    fn locate(&mut self) -> Result<DebugProbeSelector, ProbeRsError> {
        let listed = list_with_selectors()?;
        let found: Vec<FoundProbe> = listed.iter().map(|(p, _)| p.clone()).collect();
        let selection = select_probe(&found, self.serial.as_deref()).map_err(|e| match e {
            SelectError::NoneFound { .. } => SelectError::NoneFound {
                usb_visible: usb_visible(),
            },
            e => e,
        })?;
        let (probe, selector) = listed[selection.index()].clone();
        if let Selection::OnlyOne(_) = selection {
            if self.notice.is_none() {
                let n = only_one_notice(&probe);
                tracing::warn!("{n}");
                self.notice = Some(n);
            }
        }
        self.found = Some((probe, selector.clone()));
        Ok(selector)
    }

    /// The probe as last found on USB.
    pub fn found(&self) -> Option<&FoundProbe> {
        self.found.as_ref().map(|(p, _)| p)
    }

    pub fn chip(&self) -> &str {
        &self.chip
    }

    fn name(&self) -> String {
        match (&self.found, &self.serial) {
            (Some((p, _)), _) => format!(
                "{} {:04x}:{:04x} serial {}",
                p.name,
                p.vendor_id,
                p.product_id,
                p.serial.as_deref().unwrap_or("(none)")
            ),
            (None, Some(s)) => format!("serial {s} (not seen on USB yet)"),
            (None, None) => "(no serial configured, not seen on USB yet)".into(),
        }
    }

    /// Opens the probe picked on USB now (to run on the worker).
    fn opener(
        &mut self,
    ) -> Result<impl FnOnce() -> Result<Probe, ::probe_rs::Error> + Send + 'static, ProbeError>
    {
        let selector = self.locate().map_err(|e| self.other(e.to_string()))?;
        Ok(usb_opener(selector, self.speed_khz))
    }

    fn other(&self, reason: impl Into<String>) -> ProbeError {
        ProbeError::Other {
            probe: self.name(),
            reason: reason.into(),
        }
    }

    fn unfinished(&mut self, what: &str, timeout: Duration, u: Unfinished) -> ProbeError {
        match u {
            Unfinished::Elapsed => {
                self.link = Link::Lost {
                    what: what.to_string(),
                };
                self.other(format!("{what} did not finish within {timeout:?}; the stuck call keeps the probe's USB handle: replug the probe (or power-cycle the bench) and start the rig again"))
            }
            Unfinished::Panicked => {
                self.link = Link::Idle;
                self.other(format!("probe-rs panicked during {what}"))
            }
            Unfinished::NoThread(e) => self.other(format!("{what}: cannot start a thread: {e}")),
        }
    }

    fn lost(&self) -> Option<ProbeError> {
        match &self.link {
            Link::Lost { what } => Some(self.other(format!("unusable since {what} overran its timeout: replug the probe and start the rig again"))),
            _ => None,
        }
    }

    /// A probe-rs error while working on `core`, as the rig reports it.
    fn target_error(&self, what: &str, core: CoreSelect, e: &::probe_rs::Error) -> ProbeError {
        use ::probe_rs::Error as E;
        match e {
            E::CoreDisabled(_) | E::Probe(DebugProbeError::TargetNotFound) => {
                tracing::warn!(probe = %self.name(), "{what}: {}", chain(e));
                ProbeError::NoTarget {
                    probe: self.name(),
                    core,
                }
            }
            E::Probe(DebugProbeError::ProbeCouldNotBeCreated(
                ProbeCreationError::NotFound | ProbeCreationError::CouldNotOpen,
            )) => self.other(format!(
                "{what}: the probe is no longer on USB or cannot be opened ({}). {PROBE_CHECKLIST}",
                chain(e)
            )),
            E::ChipNotFound(_) => self.other(format!(
                "{what}: probe-rs does not know chip {:?} ({}): check probe.chip (`probe-rs chip list`)",
                self.chip,
                chain(e)
            )),
            _ => self.other(format!("{what}: {}", chain(e))),
        }
    }

    /// Ends the session (bounded); the NRST hold, if any, stays.
    fn end_session(&mut self) {
        if let Link::Attached { session, .. } = std::mem::replace(&mut self.link, Link::Idle) {
            if let Err(u) = bounded(DETACH_TIMEOUT, move || drop(session)) {
                let e = self.unfinished("ending the debug session", DETACH_TIMEOUT, u);
                tracing::warn!("{e}");
            }
        }
    }

    /// Takes the USB handle held with NRST low, if any.
    fn take_held(&mut self) -> Option<Probe> {
        match std::mem::replace(&mut self.link, Link::Idle) {
            Link::ResetHeld(p) => Some(p),
            other => {
                self.link = other;
                None
            }
        }
    }

    fn connect(&mut self, core: CoreSelect, under_reset: bool) -> Result<(), ProbeError> {
        if let Some(e) = self.lost() {
            return Err(e);
        }
        self.end_session();
        let held = self.take_held();
        let open = match held {
            Some(_) => None,
            None => Some(self.opener()?),
        };
        let chip = self.chip.clone();
        let index = core_index(core);
        let what = format!(
            "attaching{} to {chip} core {index} ({core:?})",
            if under_reset { " under reset" } else { "" }
        );
        let timeout = ATTACH_CALL_TIMEOUT.max(self.attach_timeout);
        let result = bounded(timeout, move || -> Result<Session, ::probe_rs::Error> {
            let probe = match (held, open) {
                (Some(p), _) => p,
                (None, Some(open)) => open()?,
                (None, None) => return Err(::probe_rs::Error::Other("no probe to open".into())),
            };
            let mut session = if under_reset {
                probe.attach_under_reset(chip.as_str(), Permissions::default())?
            } else {
                probe.attach(chip.as_str(), Permissions::default())?
            };
            let cores = session.target().cores.len();
            if index >= cores {
                return Err(::probe_rs::Error::CoreNotFound(index));
            }
            {
                let mut c = session.core(index)?;
                if under_reset {
                    // probe-rs set reset catch: the core must stop at its reset vector.
                    c.wait_for_core_halted(HALT_TIMEOUT)?;
                }
            }
            Ok(session)
        });
        match result {
            Ok(Ok(session)) => {
                self.link = Link::Attached {
                    session: Box::new(session),
                    core,
                    index,
                };
                Ok(())
            }
            Ok(Err(e)) => Err(self.target_error(&what, core, &e)),
            Err(u) => Err(self.unfinished(&what, timeout, u)),
        }
    }

    /// Runs `f` on the attached session within `timeout`; `f` gets the core index.
    fn with_session<R: Send + 'static>(
        &mut self,
        what: &str,
        timeout: Duration,
        f: impl FnOnce(&mut Session, usize) -> R + Send + 'static,
    ) -> Result<R, ProbeError> {
        if let Some(e) = self.lost() {
            return Err(e);
        }
        let (mut session, core, index) = match std::mem::replace(&mut self.link, Link::Idle) {
            Link::Attached {
                session,
                core,
                index,
            } => (session, core, index),
            other => {
                self.link = other;
                return Err(ProbeError::NotAttached { probe: self.name() });
            }
        };
        match bounded(timeout, move || {
            let r = f(&mut session, index);
            (session, r)
        }) {
            Ok((session, r)) => {
                self.link = Link::Attached {
                    session,
                    core,
                    index,
                };
                Ok(r)
            }
            Err(u) => Err(self.unfinished(what, timeout, u)),
        }
    }

    fn attached_core(&self) -> Option<CoreSelect> {
        match &self.link {
            Link::Attached { core, .. } => Some(*core),
            _ => None,
        }
    }
}

impl DebugProbe for ProbeRsProbe {
    fn attach(&mut self, core: CoreSelect) -> Result<(), ProbeError> {
        self.connect(core, false)
    }

    fn attach_under_reset(&mut self, core: CoreSelect) -> Result<(), ProbeError> {
        self.connect(core, true)
    }

    fn hold_reset(&mut self, asserted: bool) -> Result<(), ProbeError> {
        if let Some(e) = self.lost() {
            return Err(e);
        }
        if asserted && matches!(self.link, Link::ResetHeld(_)) {
            return Ok(());
        }
        // NRST is driven at probe level, before any attach: a session goes first.
        self.end_session();
        let held = self.take_held();
        let open = match held {
            Some(_) => None,
            None => Some(self.opener()?),
        };
        let what = if asserted {
            "asserting NRST"
        } else {
            "releasing NRST"
        };
        let result = bounded(
            ACCESS_TIMEOUT,
            move || -> Result<Option<Probe>, ::probe_rs::Error> {
                let mut probe = match (held, open) {
                    (Some(p), _) => p,
                    (None, Some(open)) => open()?,
                    (None, None) => {
                        return Err(::probe_rs::Error::Other("no probe to open".into()))
                    }
                };
                if asserted {
                    if probe.target_reset_assert().is_err() {
                        // Some probes (ST-LINK) drive NRST only once in debug mode.
                        probe.attach_to_unspecified()?;
                        probe.target_reset_assert()?;
                    }
                    Ok(Some(probe))
                } else {
                    if probe.target_reset_deassert().is_err() {
                        probe.attach_to_unspecified()?;
                        probe.target_reset_deassert()?;
                    }
                    Ok(None)
                }
            },
        );
        match result {
            Ok(Ok(Some(probe))) => {
                self.link = Link::ResetHeld(probe);
                Ok(())
            }
            Ok(Ok(None)) => Ok(()),
            Ok(Err(e)) => Err(self.other(format!(
                "{what}: {} (is the probe's NRST line wired to the board's reset?)",
                chain(&e)
            ))),
            Err(u) => Err(self.unfinished(what, ACCESS_TIMEOUT, u)),
        }
    }

    fn read_u32(&mut self, address: u32) -> Result<u32, ProbeError> {
        let r = self.with_session("a memory read", ACCESS_TIMEOUT, move |s, i| {
            s.core(i)?.read_word_32(u64::from(address))
        })?;
        r.map_err(|e| self.read_error(address, &e))
    }

    fn read_memory(&mut self, address: u32, buf: &mut [u8]) -> Result<(), ProbeError> {
        let len = buf.len();
        let r = self.with_session("a memory read", ACCESS_TIMEOUT, move |s, i| {
            let mut data = vec![0u8; len];
            s.core(i)?.read(u64::from(address), &mut data)?;
            Ok::<_, ::probe_rs::Error>(data)
        })?;
        let data = r.map_err(|e| self.read_error(address, &e))?;
        buf.copy_from_slice(&data);
        Ok(())
    }

    fn reset(&mut self) -> Result<(), ProbeError> {
        let r = self.with_session("a target reset", ACCESS_TIMEOUT, |s, i| s.core(i)?.reset())?;
        r.map_err(|e| self.session_error("target reset", &e))
    }

    fn mass_erase(&mut self) -> Result<(), ProbeError> {
        let r = self.with_session("a mass erase", ERASE_TIMEOUT, |s, _| {
            flashing::erase_all(s, &mut FlashProgress::empty(), false)
        })?;
        r.map_err(|e| self.other(format!("mass erase of both flash banks: {}", chain(&e))))
    }

    fn flash_elf(&mut self, elf: &Path) -> Result<(), ProbeError> {
        // A readable ARM ELF with loadable segments, before anything is erased.
        crate::elf::load_segments(elf).map_err(|e| self.other(e.to_string()))?;
        let path: PathBuf = elf.to_path_buf();
        let shown = elf.display().to_string();
        let r = self.with_session("a flash download", FLASH_TIMEOUT, move |s, i| {
            let mut options = DownloadOptions::default();
            options.verify = true;
            flashing::download_file_with_options(
                s,
                &path,
                ElfLoader(ElfOptions::default()),
                options,
            )
            .map_err(|e| {
                format!(
                    "download (with verify) of {}: {}",
                    path.display(),
                    chain(&e)
                )
            })?;
            s.core(i)
                .and_then(|mut c| c.reset())
                .map_err(|e| format!("reset after flashing {}: {}", path.display(), chain(&e)))
        })?;
        r.map_err(|reason| self.other(format!("flashing {shown}: {reason}")))
    }

    fn detach(&mut self) {
        self.end_session();
    }

    fn describe(&self) -> String {
        format!("probe-rs {} (chip {})", self.name(), self.chip)
    }
}

impl ProbeRsProbe {
    fn read_error(&self, address: u32, e: &::probe_rs::Error) -> ProbeError {
        match self.attached_core() {
            Some(core) if matches!(e, ::probe_rs::Error::CoreDisabled(_)) => {
                self.target_error("a memory read", core, e)
            }
            _ => ProbeError::Read {
                probe: self.name(),
                address,
                reason: chain(e),
            },
        }
    }

    fn session_error(&self, what: &str, e: &::probe_rs::Error) -> ProbeError {
        match self.attached_core() {
            Some(core) => self.target_error(what, core, e),
            None => self.other(format!("{what}: {}", chain(e))),
        }
    }
}

impl Drop for ProbeRsProbe {
    fn drop(&mut self) {
        self.end_session();
        if let Some(mut probe) = self.take_held() {
            // Never leave the board held in reset.
            let r = bounded(ACCESS_TIMEOUT, move || probe.target_reset_deassert());
            if !matches!(r, Ok(Ok(()))) {
                tracing::warn!(probe = %self.name(), "could not release NRST on exit");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(serial: Option<&str>, name: &str) -> FoundProbe {
        FoundProbe {
            name: name.into(),
            vendor_id: 0x0483,
            product_id: 0x374e,
            serial: serial.map(Into::into),
            accessible: true,
        }
    }

    fn two() -> Vec<FoundProbe> {
        vec![
            probe(Some("003A00213133510D33333639"), "STLink V3"),
            probe(Some("0671FF3833554B3043164817"), "STLink V2-1"),
        ]
    }

    #[test]
    fn picks_by_serial_case_and_whitespace_insensitive() {
        let found = two();
        assert_eq!(
            select_probe(&found, Some("0671ff3833554b3043164817 ")),
            Ok(Selection::BySerial(1))
        );
        assert_eq!(
            select_probe(&found, Some("003A00213133510D33333639")),
            Ok(Selection::BySerial(0))
        );
    }

    #[test]
    fn no_probe_says_what_to_check() {
        let e = select_probe(&[], Some("X")).unwrap_err();
        assert_eq!(e, SelectError::NoneFound { usb_visible: true });
        let text = e.to_string();
        for needle in ["no debug probe found", "USB cable", "udev", "probe-rs list"] {
            assert!(text.contains(needle), "{needle:?} missing: {text}");
        }
        assert!(!text.contains("container"), "{text}");
        let hidden = SelectError::NoneFound { usb_visible: false }.to_string();
        assert!(hidden.contains("/sys/bus/usb/devices"), "{hidden}");
    }

    #[test]
    fn wrong_serial_lists_what_was_found() {
        let e = select_probe(&two(), Some("DEADBEEF")).unwrap_err();
        assert!(matches!(e, SelectError::SerialNotFound { .. }));
        let text = e.to_string();
        for needle in [
            "\"DEADBEEF\"",
            "0483:374e serial 003A00213133510D33333639 \"STLink V3\"",
            "0483:374e serial 0671FF3833554B3043164817 \"STLink V2-1\"",
            "probe.serial",
            "rig list",
        ] {
            assert!(text.contains(needle), "{needle:?} missing: {text}");
        }
    }

    #[test]
    fn several_probes_without_serial_is_an_error_not_a_guess() {
        let e = select_probe(&two(), None).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("2 debug probes attached"), "{text}");
        assert!(text.contains("0671FF3833554B3043164817"), "{text}");
        assert!(text.contains("Set probe.serial"), "{text}");
    }

    #[test]
    fn the_only_probe_is_used_without_serial_and_the_notice_says_so() {
        let found = vec![probe(Some("ABC123"), "STLink V3")];
        assert_eq!(select_probe(&found, None), Ok(Selection::OnlyOne(0)));
        let n = only_one_notice(&found[0]);
        assert!(n.contains("probe.serial is not set"), "{n}");
        assert!(n.contains("serial = \"ABC123\""), "{n}");
        // A configured serial that does not match the only probe is still an error.
        assert!(matches!(
            select_probe(&found, Some("OTHER")),
            Err(SelectError::SerialNotFound { .. })
        ));
    }

    #[test]
    fn duplicate_serials_and_denied_access_are_errors() {
        let found = vec![probe(Some("S1"), "a"), probe(Some("s1"), "b")];
        let e = select_probe(&found, Some("S1")).unwrap_err();
        assert!(matches!(&e, SelectError::DuplicateSerial { found, .. } if found.len() == 2));
        let mut denied = probe(Some("S2"), "STLink V3");
        denied.accessible = false;
        let e = select_probe(&[denied.clone()], Some("S2")).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("permission denied"), "{text}");
        assert!(text.contains("udev"), "{text}");
        assert!(matches!(
            select_probe(&[denied], None),
            Err(SelectError::PermissionDenied { .. })
        ));
    }

    #[test]
    fn probe_without_serial_shows_none() {
        let p = probe(None, "J-Link");
        assert_eq!(p.to_string(), "0483:374e serial (none) \"J-Link\"");
        assert!(matches!(
            select_probe(&[p], Some("X")),
            Err(SelectError::SerialNotFound { .. })
        ));
    }

    #[test]
    fn core_indices_follow_the_probe_rs_target() {
        assert_eq!(core_index(CoreSelect::Cm7), 0);
        assert_eq!(core_index(CoreSelect::Cm4), 1);
    }

    #[test]
    fn bounded_calls_return_or_time_out() {
        assert!(matches!(bounded(Duration::from_secs(5), || 7), Ok(7)));
        let slow = bounded(Duration::from_millis(20), || {
            std::thread::sleep(Duration::from_millis(300));
        });
        assert!(matches!(slow, Err(Unfinished::Elapsed)));
    }
}
