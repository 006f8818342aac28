//! USB/IP: the protocol the kernel's vhci-hcd imports remote USB devices with.

pub mod server;
pub mod wire;

pub use server::{Plug, RunningServer, UsbIpServer};
