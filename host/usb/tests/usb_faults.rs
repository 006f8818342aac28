//! A serial instrument that vanishes (`[simulated_faults]`) leaves USB: the USB/IP server stops
//! listing it, so an importing machine sees the device disconnect, as when it is unplugged.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use gauge_logic::supply::SupplyConfig;
use rig_sim::{
    bench::ProbeSupply,
    faults::{DeviceFault, FaultKind, SimulatedFaults},
    logic_board::{LogicFirmware, OptionBytes},
    SimulatedBench, SimulatedBenchConfig,
};
use rig_usb::bench::{UsbBench, UsbBenchConfig};

/// How many devices the server lists now.
fn listed(address: std::net::SocketAddr) -> u32 {
    let mut list = TcpStream::connect(address).expect("connect");
    list.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    list.write_all(&rig_usb::usbip::wire::op_header(
        rig_usb::usbip::wire::OP_REQ_DEVLIST,
        0,
    ))
    .expect("devlist");
    let mut head = [0u8; 12];
    list.read_exact(&mut head).expect("reply");
    u32::from_be_bytes([head[8], head[9], head[10], head[11]])
}

#[test]
fn a_vanished_canable_leaves_usb_and_the_others_stay() {
    let bench = SimulatedBench::start(SimulatedBenchConfig {
        wiring: SupplyConfig::DirectSmps,
        preloaded: LogicFirmware {
            supply: SupplyConfig::DirectSmps,
        },
        option_bytes: OptionBytes::default(),
        relay_channel: 1,
        supply_rise_ms: 0,
        probe_supply: ProbeSupply::OwnUsb,
        recovery_line: None,
        can_interface: None,
        faults: SimulatedFaults {
            can: Some(DeviceFault {
                kind: FaultKind::Vanish,
                after_ms: 0,
                delay_ms: None,
                for_ms: None,
            }),
            ..Default::default()
        },
    })
    .expect("bench");
    let usb = UsbBench::start(
        bench.shared.clone(),
        &bench.ports,
        &UsbBenchConfig {
            listen: "127.0.0.1:0".into(),
            stlink_serial: "0030003A3433510237363934".into(),
            relay_baud: 9600,
            telemetry_baud: 115_200,
        },
    )
    .expect("USB bench");
    // ST-LINK, CANable, SUMP analyzer, CH340: all there until the fault's clock starts.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(listed(usb.address()), 4);
    bench.shared.faults.arm();
    let deadline = Instant::now() + Duration::from_secs(2);
    while listed(usb.address()) != 3 {
        assert!(Instant::now() < deadline, "the CANable is still on USB");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(listed(usb.address()), 3, "only the CANable left");
}
