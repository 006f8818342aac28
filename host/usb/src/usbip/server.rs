//! The USB/IP server: lists the devices that are plugged in, lets a client import each one,
//! then carries its URBs. An IN request waits until its endpoint has data (a real device NAKs
//! meanwhile); requests on one endpoint complete in the order they were submitted; an unlink
//! of a waiting request removes it. Unplugging a device closes its connection, which the
//! client's vhci-hcd sees as the device leaving its port; plugging it back in lists it again
//! under the same bus id with a new device number, as a re-enumerated device gets.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch, Notify},
};

use super::wire::{self, DeviceRecord, Operation, Setup, Submit, UrbCommand};
use crate::device::{Framing, InPipe, UsbDevice};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One exported device and whether it is plugged in.
struct Exported {
    busid: String,
    busnum: u32,
    devnum: AtomicU32,
    device: UsbDevice,
    plugged: watch::Sender<bool>,
    imported: AtomicBool,
}

impl Exported {
    fn available(&self) -> bool {
        *self.plugged.borrow() && !self.imported.load(Ordering::SeqCst)
    }

    fn record(&self) -> DeviceRecord {
        let d = &self.device;
        let device = d.device_descriptor();
        DeviceRecord {
            path: format!("/sys/devices/rig-usbip/usb{}/{}", self.busnum, self.busid),
            busid: self.busid.clone(),
            busnum: self.busnum,
            devnum: self.devnum.load(Ordering::SeqCst),
            speed: d.speed,
            vendor_id: d.identity.vendor_id,
            product_id: d.identity.product_id,
            bcd_device: d.identity.bcd_device,
            class: device[4],
            subclass: device[5],
            protocol: device[6],
            configuration_value: 1,
            num_configurations: 1,
            interfaces: d.configuration.interfaces().to_vec(),
        }
    }
}

/// Plugs a device in or out (callable from any thread).
#[derive(Clone)]
pub struct Plug(Arc<Exported>);

impl Plug {
    pub fn busid(&self) -> &str {
        &self.0.busid
    }

    pub fn set_plugged(&self, plugged: bool) {
        let was = self.0.plugged.send_replace(plugged);
        if plugged && !was {
            self.0.devnum.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn is_plugged(&self) -> bool {
        *self.0.plugged.borrow()
    }

    /// A client has imported the device and its connection is up.
    pub fn is_attached(&self) -> bool {
        self.0.imported.load(Ordering::SeqCst)
    }
}

/// The devices to serve, before the server starts.
#[derive(Default)]
pub struct UsbIpServer {
    devices: Vec<Arc<Exported>>,
}

impl UsbIpServer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a device on bus 1 at the next port (bus id `1-N`), plugged in or not.
    pub fn add(&mut self, device: UsbDevice, plugged: bool) -> Plug {
        let port = self.devices.len() + 1;
        let (tx, _) = watch::channel(plugged);
        let exported = Arc::new(Exported {
            busid: format!("1-{port}"),
            busnum: 1,
            devnum: AtomicU32::new(port as u32 + 1),
            device,
            plugged: tx,
            imported: AtomicBool::new(false),
        });
        self.devices.push(exported.clone());
        Plug(exported)
    }

    /// Listens on `address` (e.g. `127.0.0.1:3240`) on a runtime of its own.
    pub fn start(self, address: &str) -> std::io::Result<RunningServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("usbip-server")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(TcpListener::bind(address)).map_err(|e| {
            std::io::Error::new(e.kind(), format!("USB/IP server on {address}: {e}"))
        })?;
        let local = listener.local_addr()?;
        let devices: Arc<[Arc<Exported>]> = self.devices.into();
        runtime.spawn(accept_loop(listener, devices));
        Ok(RunningServer {
            address: local,
            runtime: Some(runtime),
        })
    }
}

/// A server that runs until dropped.
pub struct RunningServer {
    address: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl RunningServer {
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

async fn accept_loop(listener: TcpListener, devices: Arc<[Arc<Exported>]>) {
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                let devices = devices.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(socket, &devices).await {
                        tracing::info!(%peer, "USB/IP connection ended: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("USB/IP accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Wire(#[from] wire::WireError),
}

async fn connection(
    mut socket: TcpStream,
    devices: &[Arc<Exported>],
) -> Result<(), ConnectionError> {
    socket.set_nodelay(true)?;
    let mut header = [0u8; wire::OP_HEADER_LEN];
    socket.read_exact(&mut header).await?;
    match wire::parse_op_header(&header)? {
        Operation::DevList => {
            let records: Vec<DeviceRecord> = devices
                .iter()
                .filter(|d| d.available())
                .map(|d| d.record())
                .collect();
            socket.write_all(&wire::devlist_reply(&records)).await?;
            Ok(())
        }
        Operation::Import => {
            let mut busid = [0u8; wire::BUSID_LEN];
            socket.read_exact(&mut busid).await?;
            let busid = wire::parse_busid(&busid);
            let device = devices.iter().find(|d| {
                d.busid == busid
                    && *d.plugged.borrow()
                    && d.imported
                        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
            });
            let Some(device) = device else {
                socket.write_all(&wire::import_reply(None)).await?;
                return Ok(());
            };
            let result = async {
                socket
                    .write_all(&wire::import_reply(Some(&device.record())))
                    .await?;
                urb_session(socket, device).await
            }
            .await;
            device.imported.store(false, Ordering::SeqCst);
            result
        }
    }
}

/// IN requests waiting on one endpoint, oldest first: (seqnum, length, when submitted), and
/// the endpoint's pipe they take their data from.
struct WaitingRequests {
    queue: Mutex<VecDeque<(u32, u32, Instant)>>,
    submitted: Notify,
    pipe: Arc<InPipe>,
}

async fn urb_session(socket: TcpStream, device: &Arc<Exported>) -> Result<(), ConnectionError> {
    let function = device.device.function.clone();
    function.attached();
    let (mut reader, mut writer) = socket.into_split();
    let (replies, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer_task = tokio::spawn(async move {
        while let Some(bytes) = outgoing.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut plugged = device.plugged.subscribe();
    let mut endpoints: HashMap<u8, Arc<WaitingRequests>> = HashMap::new();
    let mut servers = Vec::new();
    let result = loop {
        let mut header = [0u8; wire::URB_HEADER_LEN];
        tokio::select! {
            read = reader.read_exact(&mut header) => {
                if let Err(e) = read {
                    // The client detached (or its kernel went away).
                    break if e.kind() == std::io::ErrorKind::UnexpectedEof { Ok(()) } else { Err(e.into()) };
                }
            }
            _ = plugged.wait_for(|p| !*p) => break Ok(()),
        }
        let (command, out_len) = match wire::parse_urb_header(&header) {
            Ok(c) => c,
            Err(e) => break Err(e.into()),
        };
        match command {
            UrbCommand::Submit(mut submit) => {
                if out_len > 0 {
                    submit.data = vec![0; out_len];
                    if let Err(e) = reader.read_exact(&mut submit.data).await {
                        break Err(e.into());
                    }
                }
                if let Some(reply) = submit_now(device, &submit) {
                    let _ = replies.send(reply);
                    continue;
                }
                // An IN request on a pipe: it waits for data.
                let address = submit.address();
                let Some(pipe) = function.in_pipe(address) else {
                    let _ =
                        replies.send(wire::ret_submit(submit.seqnum, wire::STATUS_STALL, 0, &[]));
                    continue;
                };
                let waiting = endpoints.entry(address).or_insert_with(|| {
                    let waiting = Arc::new(WaitingRequests {
                        queue: Mutex::default(),
                        submitted: Notify::new(),
                        pipe,
                    });
                    servers.push(tokio::spawn(serve_in_endpoint(
                        waiting.clone(),
                        replies.clone(),
                    )));
                    waiting
                });
                lock(&waiting.queue).push_back((submit.seqnum, submit.length, Instant::now()));
                waiting.submitted.notify_one();
            }
            UrbCommand::Unlink {
                seqnum,
                unlink_seqnum,
            } => {
                // Under the endpoint's lock: a request is either still waiting (and removed
                // here) or its RET_SUBMIT is already queued ahead of this RET_UNLINK.
                let mut status = wire::STATUS_OK;
                for (address, waiting) in &endpoints {
                    let mut queue = lock(&waiting.queue);
                    if let Some(i) = queue.iter().position(|&(s, ..)| s == unlink_seqnum) {
                        let (_, length, since) = queue[i];
                        // A serial driver unlinks its reads whenever its port closes; on a
                        // command/reply endpoint (an ST-LINK's) a host unlinks a read only when
                        // it timed out: say how long it waited and whether the device had data
                        // by then (if it had, the server failed to hand it over).
                        let buffered = waiting.pipe.buffered();
                        let waited = since.elapsed().as_millis();
                        if waiting.pipe.framing() == Framing::Transfers {
                            tracing::warn!(
                                "{}: a reply read ({length} bytes, request {unlink_seqnum}, endpoint {address:#04x}) was given up by the host after {waited} ms; {buffered} byte(s) waiting in the device",
                                device.busid
                            );
                        } else {
                            tracing::debug!(
                                "{}: IN request {unlink_seqnum} on endpoint {address:#04x} unlinked after {waited} ms",
                                device.busid
                            );
                        }
                        queue.remove(i);
                        status = wire::STATUS_UNLINKED;
                        let _ = replies.send(wire::ret_unlink(seqnum, status));
                        break;
                    }
                }
                if status == wire::STATUS_OK {
                    tracing::warn!(
                        "{}: request {unlink_seqnum} unlinked after its reply had gone out (the host was late to take it)",
                        device.busid
                    );
                    let _ = replies.send(wire::ret_unlink(seqnum, status));
                }
            }
        }
    };
    for s in servers {
        s.abort();
    }
    drop(replies);
    // Let what was answered go out before the socket closes (a detach closes it anyway).
    let _ = tokio::time::timeout(Duration::from_millis(200), writer_task).await;
    function.detached();
    result
}

/// Control transfers and OUT data are answered at once; None for an IN request on a pipe.
fn submit_now(device: &Exported, submit: &Submit) -> Option<Vec<u8>> {
    let stall = || wire::ret_submit(submit.seqnum, wire::STATUS_STALL, 0, &[]);
    if submit.endpoint == 0 {
        let setup = Setup::parse(submit.setup);
        return Some(match device.device.control(&setup, &submit.data) {
            Ok(data) if setup.is_in() => {
                let n = data.len().min(submit.length as usize);
                wire::ret_submit(submit.seqnum, wire::STATUS_OK, n as u32, &data[..n])
            }
            Ok(_) => wire::ret_submit(
                submit.seqnum,
                wire::STATUS_OK,
                submit.data.len() as u32,
                &[],
            ),
            Err(_) => stall(),
        });
    }
    if submit.direction_in {
        return None;
    }
    let len = submit.data.len() as u32;
    Some(
        match device
            .device
            .function
            .out(submit.address(), submit.data.clone())
        {
            Ok(()) => wire::ret_submit(submit.seqnum, wire::STATUS_OK, len, &[]),
            Err(_) => stall(),
        },
    )
}

/// Completes an endpoint's waiting IN requests in order as its pipe gets data.
async fn serve_in_endpoint(waiting: Arc<WaitingRequests>, replies: mpsc::UnboundedSender<Vec<u8>>) {
    let pipe = &waiting.pipe;
    loop {
        {
            let mut queue = lock(&waiting.queue);
            if let Some(&(seqnum, length, _)) = queue.front() {
                if let Some(data) = pipe.try_take(length as usize) {
                    queue.pop_front();
                    let reply = wire::ret_submit(seqnum, wire::STATUS_OK, data.len() as u32, &data);
                    if replies.send(reply).is_err() {
                        return;
                    }
                    continue;
                }
            }
        }
        tokio::select! {
            _ = pipe.ready() => {}
            _ = waiting.submitted.notified() => {}
        }
    }
}
