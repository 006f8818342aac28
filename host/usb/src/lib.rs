//! The simulated bench on a real USB stack.
//!
//! A [`usbip::UsbIpServer`] exports simulated USB devices to a Linux kernel's vhci-hcd (the
//! USB/IP client side), so that the kernel's own drivers (cdc_acm, ch341, usbfs for probe-rs)
//! bind them and the rig reaches them exactly as it reaches a bench's devices: by
//! `/dev/serial/by-id` name and by USB serial number. [`device`] holds what every USB device
//! answers; [`functions`] the devices a NUCLEO bench has.

pub mod bench;
pub mod device;
pub mod functions;
pub mod usbip;
