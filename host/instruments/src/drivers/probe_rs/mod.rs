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
//!
//! The code is split in four: `selection` lists the probes and picks the bench's, `worker`
//! runs the bounded calls, `one_core` describes one core of a dual-core chip for when the
//! other's port does not answer, and this file is the [`DebugProbe`] driver itself.

mod one_core;
mod selection;
mod worker;

pub use selection::{
    list_probes, only_one_notice, select_probe, usb_visible, FoundProbe, ProbeRsError, SelectError,
    Selection, PROBE_CHECKLIST,
};
pub use worker::{
    ACCESS_TIMEOUT, ATTACH_CALL_TIMEOUT, DETACH_TIMEOUT, ERASE_TIMEOUT, FLASH_TIMEOUT,
    HALT_TIMEOUT, LIST_TIMEOUT,
};

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use ::probe_rs::{
    architecture::arm::{sequences::DefaultArmSequence, FullyQualifiedApAddress},
    config::Registry,
    flashing::{self, DownloadOptions, ElfLoader, ElfOptions, FlashProgress},
    probe::{DebugProbeError, DebugProbeSelector, Probe, ProbeCreationError},
    MemoryInterface, Permissions, Session,
};

use crate::{CoreSelect, DebugProbe, ProbeError};
use bench_config::ProbeConfig;
use worker::{bounded, Unfinished};

/// probe-rs core index of a core of the STM32H755 (`STM32H7_Series.yaml`: core 0 = cm7 on
/// AP 0, core 1 = cm4 on AP 3).
pub fn core_index(core: CoreSelect) -> usize {
    match core {
        CoreSelect::Cm7 => 0,
        CoreSelect::Cm4 => 1,
    }
}

/// probe-rs's name of a core of the STM32H755 (`STM32H7_Series.yaml`).
fn core_name(core: CoreSelect) -> &'static str {
    match core {
        CoreSelect::Cm7 => "cm7",
        CoreSelect::Cm4 => "cm4",
    }
}

/// Whether an attach failed on the access port of the core the rig did not ask for.
fn fault_on_other_core(e: &::probe_rs::Error, core: CoreSelect) -> bool {
    use ::probe_rs::architecture::arm::{ApAddress, ArmError};
    let other = match core {
        CoreSelect::Cm7 => stm32h755::debug::CM4_ACCESS_PORT,
        CoreSelect::Cm4 => stm32h755::debug::CM7_ACCESS_PORT,
    };
    matches!(
        e,
        ::probe_rs::Error::Arm(ArmError::AccessPort { address, .. })
            if *address.ap() == ApAddress::V1(other)
    )
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

/// Opens a probe that is not found on USB: an in-process probe the caller builds (an SWD probe
/// on an emulated target). Called at every attach, as a USB probe is opened anew.
pub type ProbeOpener = Arc<dyn Fn() -> Result<Probe, ::probe_rs::Error> + Send + Sync>;

/// Where the probe comes from.
enum Source {
    /// Found on USB by `probe.serial`.
    Usb,
    InProcess {
        name: String,
        open: ProbeOpener,
    },
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

type Opener = Box<dyn FnOnce() -> Result<Probe, ::probe_rs::Error> + Send + 'static>;

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
    source: Source,
    /// How long the last successful attach took.
    last_attach: Option<Duration>,
}

impl ProbeRsProbe {
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
            source: Source::Usb,
            last_attach: None,
        }
    }

    /// A probe opened by `open` instead of being looked up on USB (`name` says what it is).
    /// Everything else - attach, reads, reset, NRST, flashing, the timeouts - is as for a USB
    /// probe.
    pub fn in_process(config: &ProbeConfig, name: &str, open: ProbeOpener) -> Self {
        let mut probe = Self::deferred(config);
        probe.source = Source::InProcess {
            name: name.to_string(),
            open,
        };
        probe
    }

    fn name(&self) -> String {
        match &self.source {
            Source::InProcess { name, .. } => name.clone(),
            Source::Usb => self.usb_name(),
        }
    }

    /// Opens the probe picked on USB now, or the in-process one (to run on the worker).
    fn opener(&mut self) -> Result<Opener, ProbeError> {
        if let Source::InProcess { open, .. } = &self.source {
            let open = open.clone();
            let speed = self.speed_khz;
            return Ok(Box::new(move || {
                let mut probe = open()?;
                if let Some(khz) = speed {
                    probe.set_speed(khz)?;
                }
                Ok(probe)
            }));
        }
        self.usb_opener()
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
        match std::mem::replace(&mut self.link, Link::Idle) {
            Link::Attached { session, .. } => {
                if let Err(u) = bounded(DETACH_TIMEOUT, move || drop(session)) {
                    let e = self.unfinished("ending the debug session", DETACH_TIMEOUT, u);
                    tracing::warn!("{e}");
                }
            }
            // A probe held with NRST low stays held: dropping it would let go of NRST.
            other => self.link = other,
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
        // A second attempt, on this core alone, needs a probe of its own.
        let reopen = self.opener()?;
        let chip = self.chip.clone();
        let index = core_index(core);
        let what = format!(
            "attaching{} to {chip} core {index} ({core:?})",
            if under_reset { " under reset" } else { "" }
        );
        let timeout = ATTACH_CALL_TIMEOUT.max(self.attach_timeout);
        let started = std::time::Instant::now();
        let result = bounded(
            timeout,
            move || -> Result<(Session, usize), ::probe_rs::Error> {
                let probe = match (held, open) {
                    (Some(p), _) => p,
                    (None, Some(open)) => open()?,
                    (None, None) => {
                        return Err(::probe_rs::Error::Other("no probe to open".into()))
                    }
                };
                let attach = |probe: Probe, registry: Option<&Registry>, name: &str| {
                    let permissions = Permissions::default();
                    match (under_reset, registry) {
                        (true, None) => {
                            enable_halting_debug(probe)?.attach_under_reset(name, permissions)
                        }
                        (true, Some(r)) => enable_halting_debug(probe)?
                            .attach_under_reset_with_registry(name, permissions, r),
                        (false, None) => probe.attach(name, permissions),
                        (false, Some(r)) => probe.attach_with_registry(name, permissions, r),
                    }
                };
                if under_reset {
                    // Under reset, the wanted core alone (see `one_core`): the other core's port
                    // may not answer once NRST is released, and a failed attempt would let the
                    // caught core run.
                    let (registry, one) = one_core::one_core_registry(&chip, core_name(core))
                        .map_err(::probe_rs::Error::Other)?;
                    drop(reopen);
                    let mut session = attach(probe, Some(&registry), &one)?;
                    session.core(0)?.wait_for_core_halted(HALT_TIMEOUT)?;
                    return Ok((session, 0));
                }
                let (session, index) = match attach(probe, None, &chip) {
                    Ok(s) => (s, index),
                    // probe-rs starts every core of the chip; the other core's port does not
                    // answer (its boot disabled): this core alone (under reset: held from NRST
                    // again, the reset catch keeps the firmware from running).
                    Err(first) if fault_on_other_core(&first, core) => {
                        let (registry, one) = one_core::one_core_registry(&chip, core_name(core))
                            .map_err(::probe_rs::Error::Other)?;
                        let s = attach(reopen()?, Some(&registry), &one)?;
                        tracing::warn!(
                        "{chip}: attached to {one} only: the other core's access port does not answer ({})",
                        chain(&first)
                    );
                        (s, 0)
                    }
                    Err(e) => return Err(e),
                };
                if index >= session.target().cores.len() {
                    return Err(::probe_rs::Error::CoreNotFound(index));
                }
                Ok((session, index))
            },
        );
        match result {
            Ok(Ok((session, index))) => {
                self.last_attach = Some(started.elapsed());
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

/// Enables halting debug (DHCSR.C_DEBUGEN) and the reset vector catch on both cores while
/// NRST is still asserted, and hands the probe back without letting go of NRST.
///
/// probe-rs 0.32's attach under reset sets DEMCR.VC_CORERESET on every core, releases NRST
/// and only then sets C_DEBUGEN. On ARMv7-M a vector catch is a halting debug event, which the
/// core ignores while C_DEBUGEN = 0: after a power-on (which clears C_DEBUGEN) the firmware
/// runs from reset until C_DEBUGEN is written, long enough to latch its supply choice in
/// PWR_CR3. Written while NRST holds the cores, the catch halts them at their reset vectors.
/// A core whose port does not answer (its boot disabled) is left alone.
fn enable_halting_debug(mut probe: Probe) -> Result<Probe, ::probe_rs::Error> {
    use stm32h755::debug::{
        armv7m::{C_DEBUGEN, DBGKEY, DEMCR, DHCSR, VC_CORERESET},
        CM4_ACCESS_PORT, CM7_ACCESS_PORT,
    };
    probe.attach_to_unspecified()?;
    let mut interface = probe
        .try_into_arm_debug_interface(DefaultArmSequence::create())
        .map_err(|(_, e)| ::probe_rs::Error::Arm(e))?;
    for ap in [CM7_ACCESS_PORT, CM4_ACCESS_PORT] {
        let armed = interface
            .memory_interface(&FullyQualifiedApAddress::v1_with_default_dp(ap))
            .and_then(|mut m| {
                m.write_word_32(u64::from(DHCSR), DBGKEY | C_DEBUGEN)?;
                let demcr = m.read_word_32(u64::from(DEMCR))?;
                m.write_word_32(u64::from(DEMCR), demcr | VC_CORERESET)?;
                m.flush()
            });
        if let Err(e) = armed {
            tracing::debug!("access port {ap}: no halting debug under reset: {e}");
        }
    }
    Ok(interface.close())
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

    fn write_u32(&mut self, address: u32, value: u32) -> Result<(), ProbeError> {
        let r = self.with_session("a memory write", ACCESS_TIMEOUT, move |s, i| {
            let mut core = s.core(i)?;
            core.write_word_32(u64::from(address), value)?;
            core.flush()
        })?;
        r.map_err(|e| self.session_error(&format!("memory write at {address:#010x}"), &e))
    }

    fn reset(&mut self) -> Result<(), ProbeError> {
        let r = self.with_session("a target reset", ACCESS_TIMEOUT, |s, i| s.core(i)?.reset())?;
        r.map_err(|e| self.session_error("target reset", &e))
    }

    fn mass_erase(&mut self) -> Result<(), ProbeError> {
        let _critical =
            crate::interrupt::critical("a mass erase of both flash banks", ERASE_TIMEOUT);
        let r = self.with_session("a mass erase", ERASE_TIMEOUT, |s, _| {
            flashing::erase_all(s, &mut FlashProgress::empty(), false)
        })?;
        r.map_err(|e| self.other(format!("mass erase of both flash banks: {}", chain(&e))))
    }

    fn flash_elf(&mut self, elf: &Path) -> Result<(), ProbeError> {
        // A readable ARM ELF whose segments may be downloaded, before anything is erased.
        let segments = crate::elf::load_segments(elf).map_err(|e| self.other(e.to_string()))?;
        crate::elf::check_download(&segments)
            .map_err(|e| self.other(format!("{}: {e}", elf.display())))?;
        let path: PathBuf = elf.to_path_buf();
        let shown = elf.display().to_string();
        let _critical = crate::interrupt::critical(
            format!("the flash download of {shown} (erase, program, verify)"),
            FLASH_TIMEOUT,
        );
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

    fn last_attach_time(&self) -> Option<Duration> {
        self.last_attach
    }

    fn usb_identity(&self) -> Option<crate::usb_identity::UsbIdentity> {
        let found = self.found()?;
        Some(crate::usb_identity::UsbIdentity {
            vendor_id: found.vendor_id,
            product_id: found.product_id,
            serial: found.serial.clone(),
            manufacturer: None,
            product: Some(found.name.clone()),
        })
    }

    fn target_voltage(&mut self) -> Result<Option<f32>, ProbeError> {
        if let Some(e) = self.lost() {
            return Err(e);
        }
        self.end_session();
        let held = self.take_held();
        let keep_held = held.is_some();
        let open = match held {
            Some(_) => None,
            None => {
                if let Source::Usb = self.source {
                    self.still_on_usb()?;
                }
                // Gone between the look-up above and the opener's own (the ST-LINK of a board
                // whose supply was just cut, seen in the USB guest): gone, as when the open
                // itself fails below, not an error of its own.
                Some(self.opener().map_err(|e| match e {
                    ProbeError::Other { probe, reason } => ProbeError::Gone { probe, reason },
                    e => e,
                })?)
            }
        };
        let what = "reading the target voltage";
        let result = bounded(ACCESS_TIMEOUT, move || {
            let mut probe = match (held, open) {
                (Some(p), _) => p,
                (None, Some(open)) => open().map_err(|e| (true, chain(&e)))?,
                (None, None) => return Err((false, "no probe to open".to_string())),
            };
            let volts = probe.get_target_voltage().map_err(|e| (false, chain(&e)))?;
            Ok((volts, keep_held.then_some(probe)))
        });
        match result {
            Ok(Ok((volts, held))) => {
                if let Some(p) = held {
                    self.link = Link::ResetHeld(p);
                }
                Ok(volts)
            }
            Ok(Err((true, reason))) => Err(ProbeError::Gone {
                probe: self.name(),
                reason,
            }),
            Ok(Err((false, reason))) => Err(self.other(format!("{what}: {reason}"))),
            Err(u) => Err(self.unfinished(what, ACCESS_TIMEOUT, u)),
        }
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

    #[test]
    fn core_indices_follow_the_probe_rs_target() {
        assert_eq!(core_index(CoreSelect::Cm7), 0);
        assert_eq!(core_index(CoreSelect::Cm4), 1);
    }
}
