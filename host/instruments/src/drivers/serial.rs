//! Opening serial ports with errors that name the device.

use std::time::Duration;

use serialport::SerialPort;

use crate::InstrumentError;

/// Opens `path` at `baud` 8N1, no flow control, with a short read timeout used for polling.
pub fn open(path: &str, baud: u32) -> Result<Box<dyn SerialPort>, InstrumentError> {
    serialport::new(path, baud)
        .data_bits(serialport::DataBits::Eight)
        .parity(serialport::Parity::None)
        .stop_bits(serialport::StopBits::One)
        .flow_control(serialport::FlowControl::None)
        .timeout(Duration::from_millis(10))
        .open()
        .map_err(|e| InstrumentError::Open {
            device: path.to_string(),
            reason: e.to_string(),
        })
}

pub fn io_error(device: &str, e: impl std::fmt::Display) -> InstrumentError {
    InstrumentError::Io {
        device: device.to_string(),
        reason: e.to_string(),
    }
}

/// Reads what is available within the port's short timeout; `Ok(0)` when nothing came.
pub fn read_some(
    port: &mut dyn SerialPort,
    buf: &mut [u8],
    device: &str,
) -> Result<usize, InstrumentError> {
    match port.read(buf) {
        Ok(n) => Ok(n),
        Err(e)
            if e.kind() == std::io::ErrorKind::TimedOut
                || e.kind() == std::io::ErrorKind::WouldBlock =>
        {
            Ok(0)
        }
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(io_error(device, e)),
    }
}

/// Test devices on pseudo-terminals.
#[cfg(test)]
pub(crate) mod fake {
    use std::{
        io::Write,
        sync::{
            atomic::{AtomicBool, Ordering},
            Arc,
        },
        thread::JoinHandle,
    };

    use serialport::SerialPort;

    /// A device that sends `bytes` over and over until dropped (a console, a wrong device).
    pub struct EndlessTalker {
        pub path: String,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
        _slave: serialport::TTYPort,
    }

    impl EndlessTalker {
        pub fn start(bytes: &'static [u8]) -> Self {
            let (mut device, slave) = serialport::TTYPort::pair().expect("openpty");
            let path = slave.name().expect("pty name");
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            let thread = std::thread::spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    let _ = device.write_all(bytes);
                }
            });
            Self {
                path,
                stop,
                thread: Some(thread),
                _slave: slave,
            }
        }
    }

    impl Drop for EndlessTalker {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}
