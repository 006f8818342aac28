//! Linux sysfs USB port power: writing `1` to a hub port's `disable` attribute turns the port
//! (and the board behind it) off, `0` turns it back on (kernel 4.20+, hubs that switch VBUS).

use std::{io::Write, path::PathBuf};

use crate::{InstrumentError, InstrumentResult, PowerSwitch};

/// What to do about an error on `path`, for the message.
pub fn explain(path: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "{e}: the file does not exist. Check power.sysfs_port: the hub port's attribute is \
             /sys/bus/usb/devices/<hub>-<port>/port/disable or <device>:1.0/../port/disable \
             (`ls /sys/bus/usb/devices/*/port/disable`), and that the kernel is 4.20 or newer"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "{e}: not writable by this user. Run as root or add a udev rule, e.g. in \
             /etc/udev/rules.d/99-gauge-rig.rules: \
             ACTION==\"add\", SUBSYSTEM==\"usb\", DEVTYPE==\"usb_device\", KERNEL==\"{dev}\", \
             RUN+=\"/bin/chmod 666 /sys%p/port/disable\" \
             (then `udevadm control --reload` and replug the board), or `chmod 666 {path}` \
             until the next boot",
            dev = usb_device(path).unwrap_or("<bus>-<port>")
        ),
        _ => e.to_string(),
    }
}

/// The USB device (`1-1`, `2-1.4`) a `/sys/bus/usb/devices/...` path starts from.
fn usb_device(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/sys/bus/usb/devices/")?;
    let first = rest.split('/').next()?;
    first.split(':').next().filter(|d| !d.is_empty())
}

fn error(path: &str, e: &std::io::Error) -> InstrumentError {
    InstrumentError::Open {
        device: format!("sysfs USB port {path}"),
        reason: explain(path, e),
    }
}

/// A USB port switched through its sysfs `disable` attribute.
pub struct SysfsPort {
    path: PathBuf,
    shown: String,
}

impl SysfsPort {
    /// Checks that the attribute exists and can be opened for writing (nothing is written).
    pub fn open(path: &str) -> InstrumentResult<Self> {
        let p = PathBuf::from(path);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .map_err(|e| error(path, &e))?;
        Ok(Self {
            path: p,
            shown: path.to_string(),
        })
    }
}

impl PowerSwitch for SysfsPort {
    fn set_power(&mut self, on: bool) -> InstrumentResult<()> {
        let value: &[u8] = if on { b"0" } else { b"1" };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.path)
            .map_err(|e| error(&self.shown, &e))?;
        f.write_all(value)
            .and_then(|()| f.flush())
            .map_err(|e| InstrumentError::Io {
                device: format!("sysfs USB port {}", self.shown),
                reason: format!(
                    "writing {:?}: {e} (does this hub support per-port power switching?)",
                    String::from_utf8_lossy(value)
                ),
            })
    }

    fn describe(&self) -> String {
        format!("sysfs USB port {}", self.shown)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn permission_errors_suggest_a_udev_rule() {
        let e = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let m = super::explain("/sys/bus/usb/devices/1-1/1-1:1.0/../port/disable", &e);
        assert!(
            m.contains("udev rule") && m.contains("KERNEL==\"1-1\""),
            "{m}"
        );
        let m = super::explain("/sys/x/port/disable", &e);
        assert!(
            m.contains("KERNEL==\"<bus>-<port>\"") && m.contains("chmod 666"),
            "{m}"
        );
        let e = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(super::explain("/x", &e).contains("does not exist"));
    }
}
