//! A CDC-ACM serial function (USB CDC 1.2, PSTN 1.2): the class requests cdc_acm sends
//! (SET/GET_LINE_CODING, SET_CONTROL_LINE_STATE, SEND_BREAK) and its three endpoints, on a
//! [`SerialBridge`]. A CANable, a SUMP analyzer and the ST-LINK's VCP all present one.

use std::sync::{Arc, Mutex};

use crate::device::{Framing, InPipe, Setup, Stall};

use super::serial_bridge::SerialBridge;

const SET_LINE_CODING: u8 = 0x20;
const GET_LINE_CODING: u8 = 0x21;
const SET_CONTROL_LINE_STATE: u8 = 0x22;
const SEND_BREAK: u8 = 0x23;

pub struct CdcAcm {
    /// The communication interface's number (class requests name it in wIndex).
    pub interface: u8,
    pub notify: u8,
    pub data_out: u8,
    pub data_in: u8,
    bridge: SerialBridge,
    notify_pipe: Arc<InPipe>,
    /// The 7-byte line coding (dwDTERate, bCharFormat, bParityType, bDataBits).
    line_coding: Mutex<[u8; 7]>,
}

impl CdcAcm {
    pub fn new(
        interface: u8,
        (notify, data_out, data_in): (u8, u8, u8),
        bridge: SerialBridge,
    ) -> Self {
        let mut coding = [0u8; 7];
        coding[..4].copy_from_slice(&115_200u32.to_le_bytes());
        coding[6] = 8;
        Self {
            interface,
            notify,
            data_out,
            data_in,
            bridge,
            notify_pipe: Arc::new(InPipe::new(Framing::Transfers)),
            line_coding: Mutex::new(coding),
        }
    }

    /// A class request to this function's interface; None when it is not one.
    pub fn control(&self, setup: &Setup, data: &[u8]) -> Option<Result<Vec<u8>, Stall>> {
        if setup.kind() != 1 || setup.recipient() != 1 || setup.index as u8 != self.interface {
            return None;
        }
        let lock = |m: &Mutex<[u8; 7]>| *m.lock().unwrap_or_else(|e| e.into_inner());
        Some(match (setup.request_type, setup.request) {
            (0x21, SET_LINE_CODING) if data.len() >= 7 => {
                let mut coding = [0u8; 7];
                coding.copy_from_slice(&data[..7]);
                *self.line_coding.lock().unwrap_or_else(|e| e.into_inner()) = coding;
                self.bridge
                    .set_host_baud(u32::from_le_bytes([data[0], data[1], data[2], data[3]]));
                Ok(Vec::new())
            }
            (0xa1, GET_LINE_CODING) => Ok(lock(&self.line_coding).to_vec()),
            // DTR/RTS and breaks: nothing behind the function uses them.
            (0x21, SET_CONTROL_LINE_STATE | SEND_BREAK) => Ok(Vec::new()),
            _ => Err(Stall),
        })
    }

    pub fn out(&self, endpoint: u8, data: Vec<u8>) -> Option<Result<(), Stall>> {
        (endpoint == self.data_out).then(|| {
            self.bridge.from_host(data);
            Ok(())
        })
    }

    pub fn in_pipe(&self, endpoint: u8) -> Option<Arc<InPipe>> {
        if endpoint == self.data_in {
            Some(self.bridge.pipe())
        } else if endpoint == self.notify {
            Some(self.notify_pipe.clone())
        } else {
            None
        }
    }

    pub fn attached(&self) {
        // A freshly enumerated function starts with the defaults.
        self.bridge.set_host_baud(0);
        self.bridge.set_attached(true);
    }

    pub fn detached(&self) {
        self.bridge.set_attached(false);
    }
}

/// A device that is one CDC-ACM function and nothing else.
pub struct CdcAcmDevice(pub CdcAcm);

impl crate::device::Function for CdcAcmDevice {
    fn control(&self, setup: &Setup, data: &[u8]) -> Result<Vec<u8>, Stall> {
        self.0.control(setup, data).unwrap_or(Err(Stall))
    }

    fn out(&self, endpoint: u8, data: Vec<u8>) -> Result<(), Stall> {
        self.0.out(endpoint, data).unwrap_or(Err(Stall))
    }

    fn in_pipe(&self, endpoint: u8) -> Option<Arc<InPipe>> {
        self.0.in_pipe(endpoint)
    }

    fn attached(&self) {
        self.0.attached()
    }

    fn detached(&self) {
        self.0.detached()
    }
}
