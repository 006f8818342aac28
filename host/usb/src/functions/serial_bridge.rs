//! The serial side of a USB-serial function: bytes between the host's endpoints and an
//! instrument simulator's pseudo-terminal (the simulated bench's slcan adapter, SUMP analyzer,
//! relay and the board's USART3). The simulators stay as they are; this is the USB chip in
//! front of them.
//!
//! Where a real UART sits behind the chip (the ST-LINK's VCP to USART3, the CH340 to the
//! relay's MCU) the host's line coding must match that UART's baud rate, or the bytes arrive
//! garbled both ways. Bytes the device produces while no host has the device open are lost, as
//! a USB-serial chip's small FIFO loses them.

use std::{
    io::{Read, Write},
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        mpsc, Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use crate::device::{Framing, InPipe};

/// How many bytes wait for the host before the bridge stops reading the simulator (the host's
/// reads drain them; a simulator's writes wait meanwhile, as a device NAKs nothing but its
/// UART stalls).
const HELD_BYTES: usize = 64 * 1024;

/// A UART behind the USB chip whose baud rate the host must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    pub baud: u32,
}

/// Within this fraction a UART still samples bytes right (a few percent, as UARTs tolerate).
const BAUD_TOLERANCE: f64 = 0.03;

pub struct SerialBridge {
    name: String,
    pipe: Arc<InPipe>,
    to_device: mpsc::Sender<Vec<u8>>,
    /// The host has the device attached.
    attached: Arc<AtomicBool>,
    /// The host's line coding (0 until it sets one).
    host_baud: Arc<AtomicU32>,
    uart: Option<Uart>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SerialBridge {
    /// Opens the simulator's pseudo-terminal at `pty`.
    pub fn open(name: &str, pty: &str, uart: Option<Uart>) -> std::io::Result<Self> {
        let port = serialport::new(pty, 115_200)
            .timeout(Duration::from_millis(5))
            .open_native()
            .map_err(|e| std::io::Error::other(format!("{name}: cannot open {pty}: {e}")))?;
        let pipe = Arc::new(InPipe::new(Framing::Stream));
        let (to_device, from_host) = mpsc::channel::<Vec<u8>>();
        let attached = Arc::new(AtomicBool::new(false));
        let host_baud = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            port,
            pipe: pipe.clone(),
            from_host,
            attached: attached.clone(),
            host_baud: host_baud.clone(),
            uart,
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("usb-{name}"))
            .spawn(move || worker.run())?;
        Ok(Self {
            name: name.to_string(),
            pipe,
            to_device,
            attached,
            host_baud,
            uart,
            stop,
            thread: Some(thread),
        })
    }

    /// The bulk IN pipe the host reads.
    pub fn pipe(&self) -> Arc<InPipe> {
        self.pipe.clone()
    }

    /// Data the host wrote to the bulk OUT endpoint.
    pub fn from_host(&self, data: Vec<u8>) {
        let _ = self.to_device.send(data);
    }

    pub fn set_host_baud(&self, baud: u32) {
        self.host_baud.store(baud, Ordering::Relaxed);
        if let Some(uart) = self.uart {
            if baud != 0 && !baud_matches(uart, baud) {
                tracing::debug!(
                    "{}: host set {baud} baud, the UART behind it runs {} baud: bytes will be garbled",
                    self.name,
                    uart.baud
                );
            }
        }
    }

    pub fn set_attached(&self, attached: bool) {
        self.attached.store(attached, Ordering::Relaxed);
        if !attached {
            self.pipe.clear();
        }
    }
}

impl Drop for SerialBridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn baud_matches(uart: Uart, host: u32) -> bool {
    let want = f64::from(uart.baud);
    (f64::from(host) - want).abs() <= want * BAUD_TOLERANCE
}

struct Worker {
    port: serialport::TTYPort,
    pipe: Arc<InPipe>,
    from_host: mpsc::Receiver<Vec<u8>>,
    attached: Arc<AtomicBool>,
    host_baud: Arc<AtomicU32>,
    uart: Option<Uart>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    /// Whether bytes cross the UART intact at the host's current baud rate.
    fn intact(&self) -> bool {
        match self.uart {
            None => true,
            Some(uart) => baud_matches(uart, self.host_baud.load(Ordering::Relaxed)),
        }
    }

    fn run(mut self) {
        let mut buf = [0u8; 4096];
        while !self.stop.load(Ordering::Relaxed) {
            while let Ok(mut data) = self.from_host.try_recv() {
                if !self.intact() {
                    garble(&mut data);
                }
                let _ = self.port.write_all(&data);
            }
            if self.attached.load(Ordering::Relaxed) && self.pipe.buffered() >= HELD_BYTES {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            let n = match self.port.read(&mut buf) {
                Ok(n) => n,
                Err(_) => continue, // the 5 ms timeout: look at the host side again
            };
            let mut data = buf[..n].to_vec();
            // No host attached: the bytes are lost.
            if !self.attached.load(Ordering::Relaxed) {
                continue;
            }
            if !self.intact() {
                garble(&mut data);
            }
            self.pipe.push(data);
        }
    }
}

/// What a UART sampling at the wrong rate makes of bytes: not the bytes (each one inverted,
/// a stand-in for framing errors that is never the original).
fn garble(data: &mut [u8]) {
    for b in data {
        *b = !*b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uart_tolerates_a_few_percent() {
        let uart = Uart { baud: 9600 };
        assert!(baud_matches(uart, 9615));
        assert!(!baud_matches(uart, 115_200));
        assert!(!baud_matches(uart, 0));
    }
}
