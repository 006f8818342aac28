//! Probe selection: listing the debug probes on USB and picking the bench's by serial.

use std::{path::Path, time::Duration};

use ::probe_rs::probe::{
    list::{Accessibility, Lister},
    DebugProbeSelector, Probe,
};

use super::worker::{bounded, Unfinished, LIST_TIMEOUT};
use crate::ProbeError;

/// What to check when no probe answers.
pub const PROBE_CHECKLIST: &str = "Check: the probe's USB cable (on a NUCLEO-144 the ST-LINK's USB connector, CN1) and that it is powered; udev rules that let this user open it (probe-rs's 69-probe-rs.rules in /etc/udev/rules.d, then `udevadm control --reload-rules && udevadm trigger` and replug); if the bench's power switch also powers the probe, power.settle_ms must cover its USB re-enumeration; and what `probe-rs list` or `rig list` shows";

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

pub(super) fn list_with_selectors() -> Result<Vec<(FoundProbe, DebugProbeSelector)>, ProbeRsError> {
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
pub(super) fn usb_opener(
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

/// The bench's probe on USB: found by `probe.serial` (see the module docs of `probe_rs`).
impl super::ProbeRsProbe {
    /// Finds the configured probe on USB (see the module docs); does not open it yet.
    pub fn open(config: &bench_config::ProbeConfig) -> Result<Self, ProbeRsError> {
        let mut probe = Self::deferred(config);
        probe.locate()?;
        Ok(probe)
    }

    /// [`open`](Self::open), but a probe that is not on USB yet (one the bench's power switch
    /// powers, before power-on) is looked up again at its first use.
    pub fn open_or_defer(config: &bench_config::ProbeConfig) -> Result<Self, ProbeRsError> {
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
    pub(super) fn locate(&mut self) -> Result<DebugProbeSelector, ProbeRsError> {
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

    /// The probe's name as found on USB (or as configured, before it was).
    pub(super) fn usb_name(&self) -> String {
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

    /// Opens the probe picked on USB now.
    pub(super) fn usb_opener(&mut self) -> Result<super::Opener, crate::ProbeError> {
        let selector = self.locate().map_err(|e| self.other(e.to_string()))?;
        Ok(Box::new(usb_opener(selector, self.speed_khz)))
    }

    /// Whether the probe is still on USB: one powered with the board leaves it at a power cut.
    pub(super) fn still_on_usb(&mut self) -> Result<(), crate::ProbeError> {
        self.locate()
            .map(|_| ())
            .map_err(|e| crate::ProbeError::Gone {
                probe: self.usb_name(),
                reason: e.to_string(),
            })
    }

    /// The probe as last found on USB.
    pub fn found(&self) -> Option<&FoundProbe> {
        self.found.as_ref().map(|(p, _)| p)
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
}
