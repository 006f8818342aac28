//! The USB cable of the emulated bench, run inside the Linux guest: whatever the rig's USB/IP
//! server lists (a device that was just plugged in, or came back after a power cut) is imported
//! and handed to the kernel's vhci-hcd, as a hub reports a device on its port. The `usbip`
//! tool does the same once per call; this keeps doing it.
//!
//! Usage: `usbip-autoattach HOST:PORT [POLL_MS]` (default 100). Prints one line per attach with its time.
//! Runs until killed.

use std::{
    io::{Read, Write},
    net::TcpStream,
    os::fd::AsRawFd,
    process::ExitCode,
    time::{Duration, Instant},
};

use rig_usb::usbip::wire;

const VHCI: &str = "/sys/devices/platform/vhci_hcd.0";

fn connect(server: &str) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(server)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// (busid, speed) of every device the server lists.
fn list(server: &str) -> std::io::Result<Vec<(String, u32)>> {
    let mut s = connect(server)?;
    s.write_all(&wire::op_header(wire::OP_REQ_DEVLIST, 0))?;
    let mut header = [0u8; 12];
    s.read_exact(&mut header)?;
    let count = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    let mut devices = Vec::new();
    for _ in 0..count.min(64) {
        let mut record = [0u8; wire::DEVICE_RECORD_LEN];
        s.read_exact(&mut record)?;
        let mut busid = [0u8; wire::BUSID_LEN];
        busid.copy_from_slice(&record[256..256 + wire::BUSID_LEN]);
        let speed = u32::from_be_bytes([record[296], record[297], record[298], record[299]]);
        let interfaces = usize::from(record[wire::DEVICE_RECORD_LEN - 1]);
        let mut skip = vec![0u8; 4 * interfaces];
        s.read_exact(&mut skip)?;
        devices.push((wire::parse_busid(&busid), speed));
    }
    Ok(devices)
}

/// A free high-speed port of the virtual host controller.
fn free_port() -> std::io::Result<u32> {
    let status = std::fs::read_to_string(format!("{VHCI}/status"))?;
    for line in status.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // hub port sta ...; sta 004 is VDEV_ST_NULL (free).
        if fields.len() >= 3 && fields[0] == "hs" && fields[2] == "004" {
            if let Ok(port) = fields[1].parse::<u32>() {
                return Ok(port);
            }
        }
    }
    Err(std::io::Error::other(format!(
        "{VHCI}/status: no free high-speed port"
    )))
}

fn attach(server: &str, busid: &str, speed: u32) -> std::io::Result<()> {
    let mut s = connect(server)?;
    let mut request = wire::op_header(wire::OP_REQ_IMPORT, 0);
    let mut id = [0u8; wire::BUSID_LEN];
    let n = busid.len().min(wire::BUSID_LEN - 1);
    id[..n].copy_from_slice(&busid.as_bytes()[..n]);
    request.extend_from_slice(&id);
    s.write_all(&request)?;
    let mut header = [0u8; 8];
    s.read_exact(&mut header)?;
    let status = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if status != 0 {
        return Err(std::io::Error::other(format!(
            "{busid}: the server refused the import (status {status})"
        )));
    }
    let mut record = [0u8; wire::DEVICE_RECORD_LEN];
    s.read_exact(&mut record)?;
    let busnum = u32::from_be_bytes([record[288], record[289], record[290], record[291]]);
    let devnum = u32::from_be_bytes([record[292], record[293], record[294], record[295]]);
    s.set_read_timeout(None)?;
    let port = free_port()?;
    let line = format!("{port} {} {} {speed}", s.as_raw_fd(), busnum << 16 | devnum);
    // The kernel takes its own reference to the socket; ours closes when `s` drops.
    std::fs::write(format!("{VHCI}/attach"), line)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{VHCI}/attach: {e}")))?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(server) = args.get(1) else {
        eprintln!("usage: usbip-autoattach HOST:PORT [POLL_MS]");
        return ExitCode::from(2);
    };
    // A high-speed hub's status-change endpoint is polled every 256 ms at most, so a device
    // is seen within a few hundred ms of its plug-in anyway. Each poll is a TCP connection:
    // at 20 ms this took a tenth of a software-emulated guest's only CPU.
    let poll = Duration::from_millis(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100));
    if !std::path::Path::new(VHCI).exists() {
        eprintln!("usbip-autoattach: {VHCI} does not exist: load vhci-hcd (modprobe vhci-hcd)");
        return ExitCode::from(2);
    }
    let start = Instant::now();
    let mut last_error = String::new();
    loop {
        match list(server) {
            Ok(devices) => {
                for (busid, speed) in devices {
                    match attach(server, &busid, speed) {
                        Ok(()) => println!(
                            "usbip-autoattach: {:.3} s: attached {busid}",
                            start.elapsed().as_secs_f64()
                        ),
                        Err(e) => eprintln!("usbip-autoattach: {busid}: {e}"),
                    }
                }
                last_error.clear();
            }
            Err(e) => {
                let text = e.to_string();
                if text != last_error {
                    eprintln!("usbip-autoattach: {server}: {text} (retrying)");
                    last_error = text;
                }
            }
        }
        let _ = std::io::stdout().flush();
        std::thread::sleep(poll);
    }
}
