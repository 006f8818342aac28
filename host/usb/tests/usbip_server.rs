//! The USB/IP server as a client's vhci-hcd sees it, over TCP: the device list, import, a
//! bulk IN request held until the device has data, requests on one endpoint completed in
//! order, unlink of a waiting request, a stall, and an unplug that ends the connection.
//! (The kernel's own vhci-hcd is the client in .ci/usb-tests.)

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::{Arc, Mutex},
    time::Duration,
};

use rig_usb::{
    device::{descriptors, Framing, Function, Identity, InPipe, Stall, UsbDevice},
    usbip::{
        wire::{self, Setup, Speed},
        UsbIpServer,
    },
};

/// Echoes what the host writes to 0x01 on 0x81, once asked to.
struct Echo {
    pipe: Arc<InPipe>,
    written: Mutex<Vec<Vec<u8>>>,
}

impl Function for Echo {
    fn control(&self, _: &Setup, _: &[u8]) -> Result<Vec<u8>, Stall> {
        Err(Stall)
    }
    fn out(&self, endpoint: u8, data: Vec<u8>) -> Result<(), Stall> {
        if endpoint != 0x01 {
            return Err(Stall);
        }
        self.written.lock().unwrap().push(data);
        Ok(())
    }
    fn in_pipe(&self, endpoint: u8) -> Option<Arc<InPipe>> {
        (endpoint == 0x81).then(|| self.pipe.clone())
    }
}

fn device(function: Arc<Echo>) -> UsbDevice {
    UsbDevice {
        identity: Identity {
            vendor_id: 0x1209,
            product_id: 0x0002,
            bcd_device: 0x0100,
            manufacturer: Some("test".into()),
            product: "echo".into(),
            serial: Some("E1".into()),
        },
        speed: Speed::Full,
        class: (0, 0, 0),
        configuration: descriptors::Configuration::new(100).interface(
            (0xff, 0, 0),
            0,
            &[
                (0x01, descriptors::BULK, 64, 0),
                (0x81, descriptors::BULK, 64, 0),
            ],
        ),
        extra_strings: Vec::new(),
        function,
    }
}

fn submit(
    seqnum: u32,
    direction_in: bool,
    ep: u32,
    data: &[u8],
    length: u32,
    setup: [u8; 8],
) -> Vec<u8> {
    let mut h = Vec::new();
    for w in [
        wire::CMD_SUBMIT,
        seqnum,
        0x0001_0002,
        direction_in as u32,
        ep,
        0,
        length,
        0,
        u32::MAX,
        0,
    ] {
        h.extend_from_slice(&w.to_be_bytes());
    }
    h.extend_from_slice(&setup);
    h.extend_from_slice(data);
    h
}

fn unlink(seqnum: u32, target: u32) -> Vec<u8> {
    let mut h = Vec::new();
    for w in [wire::CMD_UNLINK, seqnum, 0, 0, 0, target, 0, 0, 0, 0] {
        h.extend_from_slice(&w.to_be_bytes());
    }
    h.extend_from_slice(&[0; 8]);
    h
}

/// (command, seqnum, status, data) of the next reply to an IN request or an unlink.
fn reply(s: &mut TcpStream) -> (u32, u32, i32, Vec<u8>) {
    next(s, true)
}

/// The same for an OUT request: its actual_length counts what was sent, no data follows.
fn out_reply(s: &mut TcpStream) -> (u32, u32, i32, Vec<u8>) {
    next(s, false)
}

fn next(s: &mut TcpStream, data_follows: bool) -> (u32, u32, i32, Vec<u8>) {
    let mut h = [0u8; wire::URB_HEADER_LEN];
    s.read_exact(&mut h).unwrap();
    let word = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let command = word(0);
    let status = word(20) as i32;
    let n = if command == wire::RET_SUBMIT && data_follows {
        word(24) as usize
    } else {
        0
    };
    let mut data = vec![0; n];
    s.read_exact(&mut data).unwrap();
    (command, word(4), status, data)
}

#[test]
fn in_requests_wait_for_data_in_order_and_can_be_unlinked() {
    let echo = Arc::new(Echo {
        pipe: Arc::new(InPipe::new(Framing::Transfers)),
        written: Mutex::new(Vec::new()),
    });
    let mut server = UsbIpServer::new();
    let plug = server.add(device(echo.clone()), true);
    let running = server.start("127.0.0.1:0").unwrap();
    let address = running.address();

    let mut list = TcpStream::connect(address).unwrap();
    list.write_all(&wire::op_header(wire::OP_REQ_DEVLIST, 0))
        .unwrap();
    let mut head = [0u8; 12];
    list.read_exact(&mut head).unwrap();
    assert_eq!(
        u32::from_be_bytes([head[8], head[9], head[10], head[11]]),
        1
    );

    let mut s = TcpStream::connect(address).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut import = wire::op_header(wire::OP_REQ_IMPORT, 0);
    let mut busid = [0u8; wire::BUSID_LEN];
    busid[..3].copy_from_slice(b"1-1");
    import.extend_from_slice(&busid);
    s.write_all(&import).unwrap();
    let mut answer = vec![0u8; wire::OP_HEADER_LEN + wire::DEVICE_RECORD_LEN];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(&answer[4..8], &[0, 0, 0, 0], "import accepted");
    assert!(plug.is_attached());

    // GET_DESCRIPTOR(device) on endpoint 0.
    s.write_all(&submit(1, true, 0, &[], 18, [0x80, 6, 0, 1, 0, 0, 18, 0]))
        .unwrap();
    let (_, seq, status, data) = reply(&mut s);
    assert_eq!((seq, status, data.len(), data[1]), (1, 0, 18, 1));

    // Two IN requests with no data yet, then an unlink of the second: only the unlink is
    // answered (the first stays held).
    s.write_all(&submit(2, true, 1, &[], 64, [0; 8])).unwrap();
    s.write_all(&submit(3, true, 1, &[], 64, [0; 8])).unwrap();
    s.write_all(&unlink(4, 3)).unwrap();
    let (command, seq, status, _) = reply(&mut s);
    assert_eq!(
        (command, seq, status),
        (wire::RET_UNLINK, 4, wire::STATUS_UNLINKED)
    );

    // Data arrives: the held request gets it; an OUT transfer is taken.
    echo.pipe.push(b"first".to_vec());
    let (command, seq, status, data) = reply(&mut s);
    assert_eq!(
        (command, seq, status, data.as_slice()),
        (wire::RET_SUBMIT, 2, 0, &b"first"[..])
    );
    s.write_all(&submit(5, false, 1, b"hello", 5, [0; 8]))
        .unwrap();
    let (_, seq, status, _) = out_reply(&mut s);
    assert_eq!((seq, status), (5, 0));
    assert_eq!(
        echo.written.lock().unwrap().as_slice(),
        &[b"hello".to_vec()]
    );

    // Requests on one endpoint complete in submission order.
    for seq in [6, 7] {
        s.write_all(&submit(seq, true, 1, &[], 64, [0; 8])).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    echo.pipe.push(b"a".to_vec());
    echo.pipe.push(b"b".to_vec());
    let (_, s6, _, d6) = reply(&mut s);
    let (_, s7, _, d7) = reply(&mut s);
    assert_eq!(
        (s6, d6.as_slice(), s7, d7.as_slice()),
        (6, &b"a"[..], 7, &b"b"[..])
    );

    // An unlink of a request that already completed says so with status 0; an endpoint
    // the device lacks stalls.
    s.write_all(&unlink(8, 6)).unwrap();
    assert_eq!(reply(&mut s).2, 0);
    s.write_all(&submit(9, true, 2, &[], 64, [0; 8])).unwrap();
    assert_eq!(reply(&mut s).2, wire::STATUS_STALL);

    // Unplugged: the connection ends, the device leaves the list; plugged back, it is listed.
    plug.set_plugged(false);
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap_or(0),
        0,
        "connection closed"
    );
    for _ in 0..100 {
        if !plug.is_attached() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!plug.is_attached());
    plug.set_plugged(true);
    let mut list = TcpStream::connect(address).unwrap();
    list.write_all(&wire::op_header(wire::OP_REQ_DEVLIST, 0))
        .unwrap();
    list.read_exact(&mut head).unwrap();
    assert_eq!(
        u32::from_be_bytes([head[8], head[9], head[10], head[11]]),
        1
    );
}
