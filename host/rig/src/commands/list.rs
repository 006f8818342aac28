//! `rig list`: the serial ports (with their USB identity and stable `/dev/serial/by-id` names)
//! and the debug probes on this machine, to help write a rig config.

use std::process::ExitCode;

use rig_instruments::drivers::probe_rs::{list_probes, FoundProbe};
pub use rig_instruments::usb_identity::{
    by_id_links, serial_ports, PortEntry, UsbIdentity, BY_ID_DIR,
};

fn quoted(v: &Option<String>) -> String {
    v.as_deref()
        .map(|s| format!("{s:?}"))
        .unwrap_or_else(|| "-".into())
}

/// The listing as text.
pub fn render(
    ports: &Result<Vec<PortEntry>, String>,
    probes: &Result<Vec<FoundProbe>, String>,
) -> String {
    let mut out = String::new();
    out.push_str("USB serial ports (can.port, pulse_meter.port, power.port, telemetry.port: use the /dev/serial/by-id name, which survives replugging):\n");
    match ports {
        Err(e) => out.push_str(&format!("  error: {e}\n")),
        Ok(ports) => {
            let usb: Vec<&PortEntry> = ports.iter().filter(|p| p.usb.is_some()).collect();
            if usb.is_empty() {
                out.push_str("  none found\n");
            }
            for p in &usb {
                out.push_str(&format!("  {}\n", p.path));
                if p.by_id.is_empty() {
                    out.push_str(&format!("      by-id:        (no link in {BY_ID_DIR})\n"));
                }
                for l in &p.by_id {
                    out.push_str(&format!("      by-id:        {l}\n"));
                }
                if let Some(u) = &p.usb {
                    out.push_str(&format!(
                        "      USB:          {:04x}:{:04x} serial {} manufacturer {} product {}\n",
                        u.vendor_id,
                        u.product_id,
                        u.serial.as_deref().unwrap_or("-"),
                        quoted(&u.manufacturer),
                        quoted(&u.product)
                    ));
                }
            }
            let other: Vec<&str> = ports
                .iter()
                .filter(|p| p.usb.is_none())
                .map(|p| p.path.as_str())
                .collect();
            if !other.is_empty() {
                out.push_str(&format!(
                    "  ({} other serial port(s), not on USB: {})\n",
                    other.len(),
                    other.join(" ")
                ));
            }
        }
    }
    out.push_str("Debug probes (probe.backend = \"probe-rs\", probe.serial):\n");
    match probes {
        Err(e) => out.push_str(&format!("  error: {e}\n")),
        Ok(probes) if probes.is_empty() => {
            out.push_str("  none found\n");
            if !rig_instruments::drivers::probe_rs::usb_visible() {
                out.push_str("  (this machine has no /sys/bus/usb/devices: USB devices are not visible here at all, e.g. inside a container)\n");
            }
        }
        Ok(probes) => {
            for p in probes {
                out.push_str(&format!("  {p}\n"));
            }
        }
    }
    out
}

/// `rig list`: 0, or 2 when a listing itself failed.
pub fn cli() -> ExitCode {
    let ports = serial_ports();
    let probes = list_probes().map_err(|e| e.to_string());
    print!("{}", render(&ports, &probes));
    if ports.is_err() || probes.is_err() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_machine_says_none_found_twice() {
        let text = render(&Ok(vec![]), &Ok(vec![]));
        assert_eq!(text.matches("  none found\n").count(), 2, "{text}");
    }

    #[test]
    fn usb_ports_show_stable_names_and_identity_and_probes_their_serials() {
        let ports = vec![
            PortEntry {
                path: "/dev/ttyACM0".into(),
                by_id: vec!["/dev/serial/by-id/usb-STMicroelectronics_STLINK-V3_003A00213133510D33333639-if02".into()],
                usb: Some(UsbIdentity {
                    vendor_id: 0x0483,
                    product_id: 0x374e,
                    serial: Some("003A00213133510D33333639".into()),
                    manufacturer: Some("STMicroelectronics".into()),
                    product: Some("STLINK-V3".into()),
                }),
            },
            PortEntry {
                path: "/dev/ttyS0".into(),
                by_id: vec![],
                usb: None,
            },
        ];
        let probes = vec![FoundProbe {
            name: "STLink V3".into(),
            vendor_id: 0x0483,
            product_id: 0x374e,
            serial: Some("003A00213133510D33333639".into()),
            accessible: true,
        }];
        let text = render(&Ok(ports), &Ok(probes));
        for needle in [
            "  /dev/ttyACM0\n",
            "by-id:        /dev/serial/by-id/usb-STMicroelectronics_STLINK-V3_003A00213133510D33333639-if02",
            "USB:          0483:374e serial 003A00213133510D33333639 manufacturer \"STMicroelectronics\" product \"STLINK-V3\"",
            "(1 other serial port(s), not on USB: /dev/ttyS0)",
            "  0483:374e serial 003A00213133510D33333639 \"STLink V3\"\n",
        ] {
            assert!(text.contains(needle), "{needle:?} missing:\n{text}");
        }
        assert!(!text.contains("none found"), "{text}");
    }

    #[test]
    fn by_id_links_map_to_their_targets() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dev = dir.path().join("ttyACM7");
        std::fs::write(&dev, b"").expect("write");
        let links = dir.path().join("by-id");
        std::fs::create_dir(&links).expect("mkdir");
        std::os::unix::fs::symlink(&dev, links.join("usb-CANable_abc-if00")).expect("symlink");
        let map = by_id_links(&links);
        let canonical = std::fs::canonicalize(&dev).expect("canonical");
        assert_eq!(map.get(&canonical).map(Vec::len), Some(1));
        assert!(map[&canonical][0].ends_with("usb-CANable_abc-if00"));
        assert!(by_id_links(&dir.path().join("missing")).is_empty());
    }
}
