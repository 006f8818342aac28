//! The simulated bench's instruments as the USB devices a NUCLEO bench has, served over
//! USB/IP: the ST-LINK V3 (debug + VCP on the board's USART3), a CANable (slcan, CDC-ACM), a
//! SUMP analyzer (CDC-ACM) and the LCUS-1 relay's CH340. With the board powered through the
//! ST-LINK's USB port, the ST-LINK leaves USB at every power cut and comes back the
//! enumeration delay after power returns (the bench's `ProbeSupply` says when).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use rig_sim::{
    bench::SimulatedPorts,
    fault_control::UsbPlugs,
    faults::{FaultDevice, FaultKind},
    shared::{ProbeSupply, Shared},
    swd_wire::SwdCounters,
};

use crate::{
    device::{descriptors, Identity, Speed, UsbDevice},
    functions::{
        cdc_acm::{CdcAcm, CdcAcmDevice},
        ch340::{self, Ch340},
        serial_bridge::{SerialBridge, Uart},
        stlink::{StlinkStats, StlinkV3, VCP_INTERFACE},
    },
    usbip::{Plug, RunningServer, UsbIpServer},
};

#[derive(Clone, Debug)]
pub struct UsbBenchConfig {
    /// Where the USB/IP server listens (`0.0.0.0:3240`; a QEMU guest with user networking
    /// reaches the host's loopback at 10.0.2.2).
    pub listen: String,
    pub stlink_serial: String,
    /// The relay MCU's UART behind the CH340 (the LCUS-1: 9600 8N1).
    pub relay_baud: u32,
    /// The board's telemetry UART (USART3) behind the ST-LINK's VCP.
    pub telemetry_baud: u32,
}

/// One exported device as `rig list` on the guest should show it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExportedDevice {
    pub name: &'static str,
    pub busid: String,
    pub identity: Identity,
    /// The `/dev/serial/by-id` name of its serial port.
    pub by_id: String,
}

pub struct UsbBench {
    server: RunningServer,
    pub devices: Vec<ExportedDevice>,
    stlink: Arc<StlinkV3>,
    stop: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
    unplugger: Option<JoinHandle<()>>,
    serial_plugs: Arc<SerialPlugs>,
}

/// The serial instruments' USB plugs, for faults injected while the bench runs.
struct SerialPlugs(Vec<(FaultDevice, Plug)>);

impl UsbPlugs for SerialPlugs {
    fn set_plugged(&self, device: FaultDevice, plugged: bool) -> Result<(), String> {
        let (_, plug) =
            self.0.iter().find(|(d, _)| *d == device).ok_or_else(|| {
                format!("{}: no USB device of its own on this bench", device.name())
            })?;
        if plug.is_plugged() != plugged {
            tracing::info!(
                busid = plug.busid(),
                ?device,
                "fault control: {}",
                if plugged {
                    "plugged back in"
                } else {
                    "unplugged"
                }
            );
            plug.set_plugged(plugged);
        }
        Ok(())
    }
}

/// The CANable with the slcan firmware (canable.io; its USB strings as udev names them).
pub fn canable_identity() -> Identity {
    Identity {
        vendor_id: 0x16D0,
        product_id: 0x117E,
        bcd_device: 0x0200,
        manufacturer: Some("Protofusion Labs".into()),
        product: "CANable 1205aa6 https://github.com/normaldotcom/cantact-fw".into(),
        serial: Some("001500174E50430520303838".into()),
    }
}

/// A SUMP analyzer on native USB CDC. No one product: pid.codes' test PID, strings of ours.
pub fn sump_identity() -> Identity {
    Identity {
        vendor_id: 0x1209,
        product_id: 0x0001,
        bcd_device: 0x0100,
        manufacturer: Some("SUMP".into()),
        product: "logic analyzer".into(),
        serial: Some("RIG0001".into()),
    }
}

/// The LCUS-1's CH340: no manufacturer string and no serial number.
pub fn ch340_identity() -> Identity {
    Identity {
        vendor_id: 0x1A86,
        product_id: 0x7523,
        bcd_device: 0x0263,
        manufacturer: None,
        product: "USB Serial".into(),
        serial: None,
    }
}

fn cdc_device(identity: Identity, bridge: SerialBridge, speed: Speed) -> UsbDevice {
    let bulk = if speed == Speed::High { 512 } else { 64 };
    let function = CdcAcm::new(0, (0x81, 0x02, 0x82), bridge);
    UsbDevice {
        identity,
        speed,
        class: (0xEF, 0x02, 0x01),
        configuration: descriptors::Configuration::new(100).cdc_acm(0x81, 0x02, 0x82, bulk, 0),
        extra_strings: Vec::new(),
        function: Arc::new(CdcAcmDevice(function)),
    }
}

fn ch340_device(bridge: SerialBridge) -> UsbDevice {
    let configuration = descriptors::Configuration::new(98).interface(
        (0xFF, 0x01, 0x02),
        0,
        &[
            (ch340::BULK_IN, descriptors::BULK, 32, 0),
            (ch340::BULK_OUT, descriptors::BULK, 32, 0),
            (ch340::INTERRUPT_IN, descriptors::INTERRUPT, 8, 1),
        ],
    );
    UsbDevice {
        identity: ch340_identity(),
        speed: Speed::Full,
        class: (0xFF, 0x00, 0x00),
        configuration,
        extra_strings: Vec::new(),
        function: Arc::new(Ch340::new(bridge)),
    }
}

/// Adds `device` to the server and to the list `rig sim` prints.
fn export(
    server: &mut UsbIpServer,
    devices: &mut Vec<ExportedDevice>,
    name: &'static str,
    device: UsbDevice,
    by_id: String,
    plugged: bool,
) -> Plug {
    let identity = device.identity.clone();
    let plug = server.add(device, plugged);
    devices.push(ExportedDevice {
        name,
        busid: plug.busid().to_string(),
        identity,
        by_id,
    });
    plug
}

impl UsbBench {
    /// Serves the bench whose state is `shared` and whose simulators are on `ports`.
    pub fn start(
        shared: Arc<Shared>,
        ports: &SimulatedPorts,
        config: &UsbBenchConfig,
    ) -> std::io::Result<Self> {
        let mut server = UsbIpServer::new();
        let mut devices = Vec::new();
        let vcp = SerialBridge::open(
            "stlink-vcp",
            &ports.telemetry,
            Some(Uart {
                baud: config.telemetry_baud,
            }),
        )?;
        let (stlink_device, stlink) = StlinkV3::device(
            shared.clone(),
            Arc::new(SwdCounters::default()),
            &config.stlink_serial,
            vcp,
        );
        let stlink_by_id = stlink_device.identity.by_id(VCP_INTERFACE, None);
        let stlink_plug = export(
            &mut server,
            &mut devices,
            "ST-LINK V3 (probe + VCP)",
            stlink_device,
            stlink_by_id,
            shared.probe_present(),
        );
        // The serial instruments' plugs, pulled when their `[simulated_faults]` is `vanish`.
        let mut fault_plugs = Vec::new();
        for (name, identity, pty, fault) in [
            (
                "CANable (slcan)",
                canable_identity(),
                &ports.slcan,
                FaultDevice::Can,
            ),
            (
                "SUMP analyzer",
                sump_identity(),
                &ports.sump,
                FaultDevice::PulseMeter,
            ),
        ] {
            let bridge = SerialBridge::open(name, pty, None)?;
            let by_id = identity.by_id(0, None);
            let device = cdc_device(identity, bridge, Speed::Full);
            let plug = export(&mut server, &mut devices, name, device, by_id, true);
            fault_plugs.push((fault, plug));
        }
        let relay = SerialBridge::open(
            "LCUS-1 relay",
            &ports.relay,
            Some(Uart {
                baud: config.relay_baud,
            }),
        )?;
        let by_id = ch340_identity().by_id(0, Some(0));
        let name = "LCUS-1 relay (CH340)";
        let relay_plug = export(
            &mut server,
            &mut devices,
            name,
            ch340_device(relay),
            by_id,
            true,
        );
        fault_plugs.push((FaultDevice::Power, relay_plug));
        let server = server.start(&config.listen)?;
        let serial_plugs = Arc::new(SerialPlugs(fault_plugs.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let unplugger = {
            let (stop, shared) = (stop.clone(), shared.clone());
            std::thread::Builder::new()
                .name("usb-faults".into())
                .spawn(move || unplug_vanished(&shared, &fault_plugs, &stop))?
        };
        let watcher = match shared.board().probe_supply {
            ProbeSupply::OwnUsb => None,
            ProbeSupply::BoardSupply { .. } => {
                let (stop, plug, shared) = (stop.clone(), stlink_plug.clone(), shared.clone());
                Some(
                    std::thread::Builder::new()
                        .name("usb-power".into())
                        .spawn(move || follow_power(&shared, &plug, &stop))?,
                )
            }
        };
        Ok(Self {
            server,
            devices,
            stlink,
            stop,
            watcher,
            unplugger: Some(unplugger),
            serial_plugs,
        })
    }

    /// The CANable's, the analyzer's and the relay's plugs (`rig sim --fault-control`).
    pub fn serial_plugs(&self) -> Arc<dyn UsbPlugs> {
        self.serial_plugs.clone()
    }

    pub fn address(&self) -> std::net::SocketAddr {
        self.server.address()
    }

    pub fn stlink_stats(&self) -> StlinkStats {
        self.stlink.stats()
    }
}

impl Drop for UsbBench {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in [self.watcher.take(), self.unplugger.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.join();
        }
    }
}

/// A serial instrument whose fault is `vanish` leaves USB for good: vhci-hcd sees the device
/// disconnect, cdc_acm or ch341 drops its tty, and the by-id name goes, as when it is unplugged.
fn unplug_vanished(shared: &Shared, plugs: &[(FaultDevice, Plug)], stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        for (device, plug) in plugs {
            let vanished = shared
                .faults
                .active(*device)
                .is_some_and(|f| f.kind == FaultKind::Vanish);
            if vanished && plug.is_plugged() {
                tracing::info!(busid = plug.busid(), ?device, "simulated fault: unplugged");
                plug.set_plugged(false);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The ST-LINK powered from CN1: on USB while the bench says the probe is up (gone at once
/// when the supply is cut, back its enumeration delay after the supply returns).
fn follow_power(shared: &Shared, plug: &Plug, stop: &AtomicBool) {
    let mut off_since: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let up = shared.probe_present();
        if up != plug.is_plugged() {
            plug.set_plugged(up);
            if up {
                let after = off_since.map(|t| t.elapsed()).unwrap_or_default();
                tracing::info!("ST-LINK back on USB, {after:?} after it left");
            } else {
                off_since = Some(Instant::now());
                tracing::info!("ST-LINK off USB (its supply was cut)");
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
