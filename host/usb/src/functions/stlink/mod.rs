//! The NUCLEO's on-board ST-LINK V3 (STLINK-V3E, 0483:374E) as a composite USB device:
//! interface 0 the debug interface (vendor class, bulk 0x01 OUT, 0x81 IN, 0x82 IN for SWO)
//! running [`firmware::StlinkFirmware`] on the emulated board's debug port; interface 1 stands
//! where the real one has its mass-storage drive (not modelled: no endpoints, so no driver
//! binds it); interfaces 2/3 the virtual COM port, CDC-ACM wired to the board's USART3.

pub mod firmware;

use std::sync::{mpsc, Arc, Mutex};

use rig_sim::{
    shared::Shared,
    swd_wire::{SwdCounters, SwdWire},
};

use crate::device::{
    descriptors, Framing, Function, Identity, InPipe, Setup, Speed, Stall, UsbDevice,
    FIRST_EXTRA_STRING,
};

use super::{cdc_acm::CdcAcm, serial_bridge::SerialBridge};
use firmware::StlinkFirmware;

pub const VENDOR_ID: u16 = 0x0483;
pub const PRODUCT_ID: u16 = 0x374E;
pub const DEBUG_OUT: u8 = 0x01;
pub const DEBUG_IN: u8 = 0x81;
pub const SWO_IN: u8 = 0x82;
/// The VCP's interface numbers and endpoints (notification, data OUT, data IN).
pub const VCP_INTERFACE: u8 = 2;
const VCP_ENDPOINTS: (u8, u8, u8) = (0x83, 0x04, 0x84);
const HIGH_SPEED_BULK: u16 = 512;

enum Message {
    /// A command's bytes and when they arrived.
    Out(Vec<u8>, std::time::Instant),
    Reboot,
}

/// What the debug interface has done since the bench started.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct StlinkStats {
    pub commands: u64,
    pub reboots: u64,
    /// Time the firmware spent on commands (SWD transfers, the emulated board): the rest of
    /// a session's time is USB.
    pub busy_ms: f64,
    /// The longest one command took, from its arrival at the server to its reply: a host
    /// times out after 1 s (probe-rs), so this says whether a timeout was the device's.
    pub slowest_ms: f64,
}

impl std::fmt::Display for StlinkStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} commands, {:.0} ms busy (slowest {:.0} ms), {} boots",
            self.commands, self.busy_ms, self.slowest_ms, self.reboots
        )
    }
}

pub struct StlinkV3 {
    commands: mpsc::Sender<Message>,
    replies: Arc<InPipe>,
    swo: Arc<InPipe>,
    vcp: CdcAcm,
    stats: Arc<Mutex<StlinkStats>>,
}

impl StlinkV3 {
    /// The ST-LINK's USB identity with serial number `serial` (24 hex digits, as ST's are).
    pub fn identity(serial: &str) -> Identity {
        Identity {
            vendor_id: VENDOR_ID,
            product_id: PRODUCT_ID,
            bcd_device: 0x0100,
            manufacturer: Some("STMicroelectronics".into()),
            product: "STLINK-V3".into(),
            serial: Some(serial.to_string()),
        }
    }

    /// The device: its firmware on `shared`'s target, its VCP on the board's UART (`vcp`).
    pub fn device(
        shared: Arc<Shared>,
        counters: Arc<SwdCounters>,
        serial: &str,
        vcp: SerialBridge,
    ) -> (UsbDevice, Arc<StlinkV3>) {
        let replies = Arc::new(InPipe::new(Framing::Transfers));
        let (tx, rx) = mpsc::channel::<Message>();
        let stats = Arc::new(Mutex::new(StlinkStats::default()));
        let mut firmware =
            StlinkFirmware::new(SwdWire::new(shared, counters), VENDOR_ID, PRODUCT_ID);
        let out = replies.clone();
        let worker_stats = stats.clone();
        // The firmware runs on a thread of its own: a command's SWD transfers take wire time.
        let spawned = std::thread::Builder::new()
            .name("usb-stlink".into())
            .spawn(move || {
                while let Ok(message) = rx.recv() {
                    let started = std::time::Instant::now();
                    let mut took_ms = 0.0;
                    match message {
                        Message::Out(bytes, arrived) => {
                            for reply in firmware.receive(&bytes) {
                                out.push(reply);
                            }
                            took_ms = arrived.elapsed().as_secs_f64() * 1e3;
                        }
                        Message::Reboot => {
                            firmware.reboot();
                            out.clear();
                            let mut s = worker_stats.lock().unwrap_or_else(|e| e.into_inner());
                            s.reboots += 1;
                        }
                    }
                    let mut s = worker_stats.lock().unwrap_or_else(|e| e.into_inner());
                    s.commands = firmware.commands;
                    s.busy_ms += started.elapsed().as_secs_f64() * 1e3;
                    s.slowest_ms = s.slowest_ms.max(took_ms);
                }
            });
        if let Err(e) = spawned {
            tracing::error!("ST-LINK firmware thread: {e}");
        }
        let function = Arc::new(StlinkV3 {
            commands: tx,
            replies,
            swo: Arc::new(InPipe::new(Framing::Transfers)),
            vcp: CdcAcm::new(VCP_INTERFACE, VCP_ENDPOINTS, vcp),
            stats,
        });
        let (notify, data_out, data_in) = VCP_ENDPOINTS;
        let bulk = descriptors::BULK;
        let configuration = descriptors::Configuration::new(300)
            .interface(
                (0xFF, 0xFF, 0xFF),
                FIRST_EXTRA_STRING,
                &[
                    (DEBUG_OUT, bulk, HIGH_SPEED_BULK, 0),
                    (DEBUG_IN, bulk, HIGH_SPEED_BULK, 0),
                    (SWO_IN, bulk, HIGH_SPEED_BULK, 0),
                ],
            )
            .interface((0xFF, 0x00, 0x00), FIRST_EXTRA_STRING + 1, &[])
            .cdc_acm(
                notify,
                data_out,
                data_in,
                HIGH_SPEED_BULK,
                FIRST_EXTRA_STRING + 2,
            );
        let device = UsbDevice {
            identity: Self::identity(serial),
            speed: Speed::High,
            class: (0xEF, 0x02, 0x01),
            configuration,
            extra_strings: vec![
                "ST-Link Debug".into(),
                "ST-Link mass storage (not modelled)".into(),
                "ST-Link VCP Ctrl".into(),
            ],
            function: function.clone(),
        };
        (device, function)
    }

    pub fn stats(&self) -> StlinkStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn send(&self, message: Message) {
        let _ = self.commands.send(message);
    }
}

impl Function for StlinkV3 {
    fn control(&self, setup: &Setup, data: &[u8]) -> Result<Vec<u8>, Stall> {
        self.vcp.control(setup, data).unwrap_or(Err(Stall))
    }

    fn out(&self, endpoint: u8, data: Vec<u8>) -> Result<(), Stall> {
        if endpoint == DEBUG_OUT {
            self.send(Message::Out(data, std::time::Instant::now()));
            return Ok(());
        }
        self.vcp.out(endpoint, data).unwrap_or(Err(Stall))
    }

    fn in_pipe(&self, endpoint: u8) -> Option<Arc<InPipe>> {
        match endpoint {
            DEBUG_IN => Some(self.replies.clone()),
            SWO_IN => Some(self.swo.clone()),
            other => self.vcp.in_pipe(other),
        }
    }

    /// Plugged in: the ST-LINK has just booted.
    fn attached(&self) {
        self.send(Message::Reboot);
        self.vcp.attached();
    }

    fn detached(&self) {
        self.vcp.detached();
    }
}
