//! `rig sim`: the simulated bench on its own, so its instruments can be tried by hand with
//! the usual tools (python-can, sigrok-cli, picocom) or with the rig's drivers.
//!
//! The bench comes from a rig config (`board.backend = "simulated"`), the board is powered on
//! through the simulated LCUS-1 relay (the same bytes a real relay gets) and, for
//! `firmware.kind = "logic"`, loaded with the firmware under test, as `rig run` would. Then
//! the pseudo-terminal paths are printed and the bench runs until Ctrl-C.

use std::{
    io::Write,
    path::Path,
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use bench_config::{CanAdapterKind, FirmwareKind, RigConfig};
use rig_instruments::drivers;
use rig_sim::fault_control::FaultControl;
use rig_usb::bench::{UsbBench, UsbBenchConfig};

pub use crate::assembly::standalone::{start, SimCommandError, SimFirmware, SimSession};
use crate::assembly::BenchPorts;

/// What `rig sim` prints: the ports as shell variables and commands to paste.
pub fn instructions(config: &RigConfig, ports: &BenchPorts) -> String {
    let ch = config.power.channel;
    let octal = |b: [u8; 4]| b.iter().map(|x| format!("\\{x:03o}")).collect::<String>();
    let on = octal(drivers::lcus::command(ch, true));
    let off = octal(drivers::lcus::command(ch, false));
    let firmware = match config.firmware_kind {
        FirmwareKind::Logic => format!("gauge-logic built for {}", config.firmware_supply.name()),
        FirmwareKind::Flashed => "as flashed".to_string(),
        FirmwareKind::Elf => format!(
            "the board ELF {} on the emulated board",
            config
                .firmware_elf
                .as_deref()
                .map_or("(none)".into(), |p| p.display().to_string())
        ),
    };
    let rate = config.pulse_meter.sample_rate_hz;
    let ch0 = config.pulse_meter.channel;
    let bitrate = config.can.bitrate;
    // The bus is on the slcan pty, or bridged to a SocketCAN interface (then the pty is mute).
    let (can_var, can_try) = match (config.can.adapter, &config.can.interface) {
        (CanAdapterKind::Socketcan, Some(iface)) => (
            String::new(),
            format!("python -m can.viewer -i socketcan -c {iface}    # CAN bus, bridged to {iface} (or: candump {iface})"),
        ),
        _ => (
            format!("SLCAN={}\n", ports.slcan),
            format!(
                "python -m can.viewer -i slcan -c {} -b {bitrate}    # CAN bus through the slcan adapter",
                ports.slcan
            ),
        ),
    };
    format!(
        "rig sim: simulated bench {name:?} ({path})\n\
         board: {model}, wired {wiring}, firmware {firmware}; powered on through the LCUS-1 relay\n\
         \n\
         Instruments on pseudo-terminals (paste into a shell to set variables):\n\
         {can_var}\
         SUMP={sump}\n\
         RELAY={relay}\n\
         TELEMETRY={telemetry}\n\
         \n\
         Try:\n\
         \x20 {can_try}\n\
         \x20 sigrok-cli -d ols:conn={sump} -c samplerate={rate} --samples 60000 -C {ch0} -t {ch0}=r -P pwm:data={ch0}    # servo PWM (SUMP analyzer, channel {ch0})\n\
         \x20 picocom -b {baud} {telemetry}    # the firmware's GAUGE/1 status lines\n\
         \x20 printf '{off}' > {relay}    # relay channel {ch} off (board power cut); '{on}' switches it on\n\
         \n\
         Ctrl-C stops the bench.\n",
        name = config.name,
        path = config.path,
        model = config.board_model,
        wiring = config.wiring.name(),
        sump = ports.sump,
        relay = ports.relay,
        telemetry = ports.telemetry,
        baud = config.telemetry.baud,
    )
}

/// The bench's USB/IP server for `rig sim --usbip`, from the rig config's `[usb]` section.
fn serve_usb(session: &SimSession, listen: &str) -> Result<UsbBench, SimCommandError> {
    let usb = session.config.usb.clone().unwrap_or_default();
    let config = UsbBenchConfig {
        listen: listen.to_string(),
        stlink_serial: usb.stlink_serial,
        relay_baud: drivers::lcus::BAUD,
        telemetry_baud: gauge_logic::telemetry::BAUD,
    };
    let (shared, ports) = session.bench_parts();
    UsbBench::start(shared, ports, &config).map_err(SimCommandError::Bench)
}

/// What `rig sim --usbip` prints about its USB devices.
fn usb_instructions(usb: &UsbBench) -> String {
    let mut text = format!(
        "USB devices over USB/IP on {} (attach: usbip attach -r HOST -b BUSID):\n",
        usb.address()
    );
    for d in &usb.devices {
        let id = &d.identity;
        text += &format!(
            "  {busid:5} {vid:04x}:{pid:04x} {name}, serial {serial}: {by_id}\n",
            busid = d.busid,
            vid = id.vendor_id,
            pid = id.product_id,
            name = d.name,
            serial = id.serial.as_deref().unwrap_or("(none)"),
            by_id = d.by_id,
        );
    }
    text
}

/// What `rig sim` serves besides the pseudo-terminals.
#[derive(Clone, Copy, Debug, Default)]
pub struct Serve<'a> {
    /// The USB/IP server's address (`--usbip`).
    pub usbip: Option<&'a str>,
    /// The fault-control port's address (`--fault-control`).
    pub fault_control: Option<&'a str>,
}

/// Runs the bench of `path` until `stop` is set, reporting power changes on `out`.
pub fn run(
    path: &Path,
    serve: Serve<'_>,
    firmware: SimFirmware,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<(), SimCommandError> {
    let session = start(path, firmware)?;
    let usb = serve
        .usbip
        .map(|listen| serve_usb(&session, listen))
        .transpose()?;
    let control = serve
        .fault_control
        .map(|listen| {
            let plugs = usb.as_ref().map(UsbBench::serial_plugs);
            FaultControl::start(listen, session.bench_parts().0.faults.clone(), plugs)
                .map_err(SimCommandError::Bench)
        })
        .transpose()?;
    let mut text = instructions(&session.config, session.ports());
    if let Some(usb) = &usb {
        text += &usb_instructions(usb);
    }
    if let Some(control) = &control {
        text += &format!(
            "Fault control on {}: `fault DEVICE vanish|silent|garbage|slow [delay_ms=N] [for_ms=N]`, `clear DEVICE`\n",
            control.address()
        );
    }
    // Output is best effort: a closed stdout must not stop the bench.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    let mut powered = true;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let now = session.board_powered();
        if now != powered {
            powered = now;
            let stlink = usb.as_ref().map_or(String::new(), |u| {
                format!("; ST-LINK so far: {}", u.stlink_stats())
            });
            let _ = writeln!(
                out,
                "board power {} (relay){stlink}",
                if now { "on" } else { "off" }
            );
            let _ = out.flush();
        }
    }
    // The emulated board's speed (feature `emulator`, firmware.kind = "elf").
    let emulation = session.emulation();
    if let Some(s) = emulation {
        let _ = writeln!(
            out,
            "emulated board: {:.1} s emulated, {:.1} M instructions/s, {:.1}x faster than \
             real time, real-time factor {:.3}; {}",
            s.virtual_s,
            s.instructions_per_s / 1e6,
            s.speed_factor,
            s.real_time_factor,
            s.state
        );
    }
    if let Some(usb) = usb {
        let _ = writeln!(out, "ST-LINK: {}", usb.stlink_stats());
    }
    drop(control);
    drop(session);
    let _ = writeln!(out, "rig sim: stopped");
    let _ = out.flush();
    Ok(())
}

/// `rig sim` for the CLI: 0 after Ctrl-C, 2 when the bench could not start.
pub fn cli(path: &Path, serve: Serve<'_>, firmware: SimFirmware) -> ExitCode {
    let stop = super::signals::install("the simulated bench");
    match run(path, serve, firmware, &stop, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
