//! Which USB device a serial port is: its VID:PID, strings and stable `/dev/serial/by-id`
//! names (for `rig list`, and for the run report, which records what each instrument was).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// Where udev puts stable names for USB serial devices.
pub const BY_ID_DIR: &str = "/dev/serial/by-id";

/// USB identity of a serial port.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsbIdentity {
    pub vendor_id: u16,
    pub product_id: u16,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
}

/// One serial port as `rig list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PortEntry {
    pub path: String,
    /// `/dev/serial/by-id/...` links to this port: the names a rig config should use.
    pub by_id: Vec<String>,
    /// `None` for ports that are not on USB (PCI, platform UARTs, Bluetooth).
    pub usb: Option<UsbIdentity>,
}

/// The `by-id` links in `dir`, by the canonical device path they point to.
pub fn by_id_links(dir: &Path) -> BTreeMap<PathBuf, Vec<String>> {
    let mut map: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return map;
    };
    for entry in entries.flatten() {
        let link = entry.path();
        if let Ok(target) = std::fs::canonicalize(&link) {
            map.entry(target)
                .or_default()
                .push(link.display().to_string());
        }
    }
    for links in map.values_mut() {
        links.sort();
    }
    map
}

/// The serial ports on this machine.
pub fn serial_ports() -> Result<Vec<PortEntry>, String> {
    // serialport scans /sys/class/tty (and panics if it is missing, e.g. in some containers).
    if !Path::new("/sys/class/tty").is_dir() {
        return Err("/sys/class/tty does not exist: cannot enumerate serial ports here".into());
    }
    let ports = serialport::available_ports().map_err(|e| e.to_string())?;
    let links = by_id_links(Path::new(BY_ID_DIR));
    let mut entries: Vec<PortEntry> = ports
        .into_iter()
        .map(|p| {
            let canonical =
                std::fs::canonicalize(&p.port_name).unwrap_or_else(|_| PathBuf::from(&p.port_name));
            let usb = match p.port_type {
                serialport::SerialPortType::UsbPort(u) => Some(UsbIdentity {
                    vendor_id: u.vid,
                    product_id: u.pid,
                    serial: u.serial_number,
                    manufacturer: u.manufacturer,
                    product: u.product,
                }),
                _ => None,
            };
            PortEntry {
                by_id: links.get(&canonical).cloned().unwrap_or_default(),
                path: p.port_name,
                usb,
            }
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

/// An instrument's serial port among `ports` (from [`serial_ports`]): the USB device its
/// configured path resolves to (a by-id link), or None when the path is no USB device (a
/// pseudo-terminal, a platform UART) or is not there.
pub fn find<'a>(ports: &'a [PortEntry], path: &str) -> Option<&'a PortEntry> {
    let canonical = std::fs::canonicalize(path).ok()?;
    ports.iter().find(|p| {
        p.usb.is_some() && std::fs::canonicalize(&p.path).ok().as_ref() == Some(&canonical)
    })
}
