//! SUMP logic analyzers (Open Bench Logic Sniffer protocol) over a serial port.
//!
//! Short commands are one byte; long commands are an opcode and a 32-bit little-endian
//! argument. The device sends its sample buffer newest first; [`SumpAnalyzer::capture`]
//! returns it oldest first.
//!
//! Run-length encoding (flags bit 8, OLS protocol version 2 devices): memory entries are either
//! a sample value or, when the top bit of the sample (bit 7 with one channel group) is set, a
//! count of how many more times the value before it (in time) repeated; a run of `n` equal
//! samples is `value, 0x80 | (n - 1)` when `n > 1`. This is how libsigrok's `ols` driver and
//! the OLS Java client decode it (`value` occupies `count + 1` samples). Sent newest first like
//! raw samples, so the count arrives before its value.

use std::time::{Duration, Instant};

use serialport::SerialPort;

use super::serial::{self, io_error, read_some};
use crate::{pulse::PulseCapture, InstrumentError, InstrumentResult, PulseMeter, TimedCapture};

/// How long a reset may take to silence the device (a full 256 KiB read-out over USB CDC
/// takes well under this; over a 115200-baud UART it would not, and the rig says so).
pub const RESET_DRAIN: Duration = Duration::from_secs(2);
pub const CMD_RESET: u8 = 0x00;
pub const CMD_RUN: u8 = 0x01;
pub const CMD_ID: u8 = 0x02;
pub const CMD_METADATA: u8 = 0x04;
pub const CMD_DIVIDER: u8 = 0x80;
pub const CMD_READ_DELAY: u8 = 0x81;
pub const CMD_FLAGS: u8 = 0x82;
/// Trigger stage `n`: mask `0xC0 + 4n`, value `0xC1 + 4n`, config `0xC2 + 4n`.
pub const CMD_TRIGGER_MASK: u8 = 0xC0;
/// Flags (0x82) bit 8: run-length encode the samples.
pub const FLAG_RLE: u32 = 1 << 8;
/// With one channel group, a sample byte with this bit set is a run-length count.
pub const RLE_COUNT_FLAG: u8 = 0x80;
pub const TRIGGER_CONFIG_START: u32 = 1 << 27;
/// The reference clock all SUMP dividers count from.
pub const CLOCK_HZ: u32 = 100_000_000;
/// Servo frame period.
pub const SERVO_PERIOD_US: f64 = 20_000.0;

/// What the device says about itself (metadata command).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub name: Option<String>,
    pub probes: Option<u32>,
    pub sample_memory: Option<u32>,
    pub max_sample_rate: Option<u32>,
    /// SUMP protocol version (key 0x24 or 0x41); 2 = the OLS extensions (RLE among them).
    pub protocol_version: Option<u32>,
}

/// Parses a metadata reply (`key` byte, type = key >> 5: 0 string, 1 u32 BE, 2 u8; 0x00 ends).
/// Returns `None` until the end key has arrived.
pub fn parse_metadata(bytes: &[u8]) -> Option<Metadata> {
    let mut m = Metadata::default();
    let mut i = 0;
    loop {
        let key = *bytes.get(i)?;
        i += 1;
        if key == 0 {
            return Some(m);
        }
        match key >> 5 {
            0 => {
                let end = bytes[i..].iter().position(|&b| b == 0)?;
                let text = String::from_utf8_lossy(&bytes[i..i + end]).into_owned();
                i += end + 1;
                if key == 0x01 {
                    m.name = Some(text);
                }
            }
            1 => {
                let v = u32::from_be_bytes(bytes.get(i..i + 4)?.try_into().ok()?);
                i += 4;
                match key {
                    0x20 => m.probes = Some(v),
                    0x21 => m.sample_memory = Some(v),
                    0x23 => m.max_sample_rate = Some(v),
                    0x24 => m.protocol_version = Some(v),
                    _ => {}
                }
            }
            2 => {
                let v = *bytes.get(i)?;
                i += 1;
                match key {
                    0x40 => m.probes = Some(u32::from(v)),
                    0x41 => m.protocol_version = Some(u32::from(v)),
                    _ => {}
                }
            }
            _ => return Some(m), // unknown type: stop rather than misparse
        }
    }
}

/// A long command: opcode + little-endian argument.
pub fn long_command(opcode: u8, arg: u32) -> [u8; 5] {
    let a = arg.to_le_bytes();
    [opcode, a[0], a[1], a[2], a[3]]
}

/// The command bytes that set up a capture of `samples` samples (multiple of 4) at `rate_hz`
/// on `channel`, all after a rising edge of that channel (two-stage level trigger:
/// stage 0 waits for low, stage 1 for high and starts the capture).
pub fn capture_setup(rate_hz: u32, samples: u32, channel: u8) -> Vec<u8> {
    capture_setup_with(rate_hz, samples, channel, false)
}

/// [`capture_setup`], optionally run-length encoded: then `samples` counts memory entries
/// (values and counts), not sampling instants.
pub fn capture_setup_with(rate_hz: u32, samples: u32, channel: u8, rle: bool) -> Vec<u8> {
    let divider = (CLOCK_HZ / rate_hz).saturating_sub(1);
    let quads = (samples / 4).saturating_sub(1) & 0xFFFF;
    let bit = 1u32 << channel;
    // Only channel group 0 (channels 0-7) is enabled: one byte per sample.
    let disabled_groups = 0b1110u32 << 2;
    let flags = disabled_groups | if rle { FLAG_RLE } else { 0 };
    let mut cmd = Vec::new();
    cmd.extend(long_command(CMD_DIVIDER, divider));
    cmd.extend(long_command(CMD_READ_DELAY, quads | (quads << 16)));
    cmd.extend(long_command(CMD_FLAGS, flags));
    cmd.extend(long_command(CMD_TRIGGER_MASK, bit));
    cmd.extend(long_command(CMD_TRIGGER_MASK + 1, 0));
    cmd.extend(long_command(CMD_TRIGGER_MASK + 2, 0));
    cmd.extend(long_command(CMD_TRIGGER_MASK + 4, bit));
    cmd.extend(long_command(CMD_TRIGGER_MASK + 5, bit));
    cmd.extend(long_command(
        CMD_TRIGGER_MASK + 6,
        TRIGGER_CONFIG_START | (1 << 16),
    ));
    // Stages 2 and 3 never match (mask 0 would match anything: give them an impossible level).
    for stage in 2u8..4 {
        cmd.extend(long_command(CMD_TRIGGER_MASK + 4 * stage, 0));
        cmd.extend(long_command(CMD_TRIGGER_MASK + 4 * stage + 1, 0));
        cmd.extend(long_command(CMD_TRIGGER_MASK + 4 * stage + 2, 3 << 16));
    }
    cmd
}

/// Decodes run-length encoded entries of one channel group (chronological order) into one
/// byte per sample. A count with no value before it (its value was overwritten) is dropped.
pub fn rle_decode(entries: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(entries.len() * 8);
    let mut last: Option<u8> = None;
    for &e in entries {
        if e & RLE_COUNT_FLAG != 0 {
            if let Some(v) = last {
                out.extend(std::iter::repeat_n(v, usize::from(e & !RLE_COUNT_FLAG)));
            }
        } else {
            out.push(e);
            last = Some(e);
        }
    }
    out
}

/// Memory entries to request so that an RLE capture spans at least `samples` sampling instants
/// with up to `runs` levels in it: a run of `n` takes at most `2 * ceil(n / 128)` entries.
pub fn rle_entries_for(samples: u32, runs: u32) -> u32 {
    (2 * (samples.div_ceil(128) + runs)).div_ceil(4) * 4
}

/// How to set up a SUMP analyzer.
#[derive(Clone, Debug)]
pub struct SumpOptions {
    /// The channel that probes the servo (0..=7; 0..=6 with RLE).
    pub channel: u8,
    pub sample_rate_hz: u32,
    /// Use run-length encoding when the device offers it (protocol version 2).
    pub rle: bool,
    /// Peak-to-peak period spread above which a capture is rejected.
    pub max_jitter_us: f64,
}

impl SumpOptions {
    pub fn new(channel: u8, sample_rate_hz: u32) -> Self {
        Self {
            channel,
            sample_rate_hz,
            rle: false,
            max_jitter_us: 50.0,
        }
    }
}

/// How long an analyzer takes to answer its ID, at most, a late read-out before it included.
const ID_TIMEOUT: Duration = Duration::from_millis(1000);

/// A SUMP analyzer whose `channel` probes the servo signal.
pub struct SumpAnalyzer {
    port: Box<dyn SerialPort>,
    device: String,
    channel: u8,
    sample_rate_hz: u32,
    /// Whether captures are run-length encoded (asked for and offered by the device).
    rle: bool,
    max_jitter_us: f64,
    /// When the first byte of the last read arrived.
    first_byte_at: Option<Instant>,
    pub id: String,
    pub metadata: Metadata,
}

impl SumpAnalyzer {
    pub fn open(path: &str, channel: u8, sample_rate_hz: u32) -> InstrumentResult<Self> {
        Self::open_with(path, &SumpOptions::new(channel, sample_rate_hz))
    }

    pub fn open_with(path: &str, options: &SumpOptions) -> InstrumentResult<Self> {
        let (channel, sample_rate_hz) = (options.channel, options.sample_rate_hz);
        if channel > 7 || (options.rle && channel > 6) {
            return Err(InstrumentError::Protocol {
                device: path.to_string(),
                reason: format!(
                    "channel {channel}: only channels 0-7 (group 0) are supported, 0-6 with RLE (bit 7 flags counts)"
                ),
            });
        }
        let port = serial::open(path, 115_200)?;
        let mut a = Self {
            port,
            device: path.to_string(),
            channel,
            sample_rate_hz,
            rle: false,
            max_jitter_us: options.max_jitter_us,
            first_byte_at: None,
            id: String::new(),
            metadata: Metadata::default(),
        };
        a.reset()?;
        a.write(&[CMD_ID])?;
        let id = a.read_exact(4, Duration::from_millis(500), "ID (0x02)")?;
        a.id = String::from_utf8_lossy(&id).into_owned();
        if a.id != "1ALS" && a.id != "1SLO" {
            return Err(InstrumentError::Protocol {
                device: a.device.clone(),
                reason: format!(
                    "answered {:?} to ID, not \"1ALS\" or \"1SLO\": is this a SUMP analyzer?",
                    a.id
                ),
            });
        }
        a.write(&[CMD_METADATA])?;
        a.metadata = a.read_metadata(Duration::from_millis(500))?;
        if sample_rate_hz == 0 {
            // The divider and every capture length divide by it.
            return Err(InstrumentError::Protocol {
                device: a.device.clone(),
                reason: "sample rate 0 Hz: give the analyzer a rate (pulse_meter.sample_rate_hz, e.g. 1000000)".into(),
            });
        }
        if let Some(max) = a.metadata.max_sample_rate {
            if sample_rate_hz > max {
                return Err(InstrumentError::Protocol {
                    device: a.device.clone(),
                    reason: format!(
                        "sample rate {sample_rate_hz} Hz is above the device's {max} Hz"
                    ),
                });
            }
        }
        if options.rle {
            // Devices that speak protocol version 2 (the OLS extensions) take the RLE flag;
            // older ones would send raw samples the decoder could not tell apart.
            a.rle = a.metadata.protocol_version.is_some_and(|v| v >= 2);
            if !a.rle {
                tracing::warn!(
                    device = %a.device,
                    protocol_version = ?a.metadata.protocol_version,
                    "pulse_meter.rle = true but the analyzer does not offer RLE (SUMP protocol version 2): capturing raw samples"
                );
            }
        }
        Ok(a)
    }

    /// Whether captures are run-length encoded.
    pub fn rle_active(&self) -> bool {
        self.rle
    }

    fn write(&mut self, bytes: &[u8]) -> InstrumentResult<()> {
        self.port
            .write_all(bytes)
            .map_err(|e| io_error(&self.device, e))?;
        self.port.flush().map_err(|e| io_error(&self.device, e))
    }

    /// Five resets bring any SUMP device back to command mode; then drop stale bytes (a
    /// read-out still under way ends within [`RESET_DRAIN`]; a device still talking then is
    /// not in command mode).
    pub fn reset(&mut self) -> InstrumentResult<()> {
        self.write(&[CMD_RESET; 5])?;
        std::thread::sleep(Duration::from_millis(10));
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + RESET_DRAIN;
        while read_some(self.port.as_mut(), &mut buf, &self.device)? > 0 {
            if Instant::now() >= deadline {
                return Err(InstrumentError::Protocol {
                    device: self.device.clone(),
                    reason: format!("still sending {RESET_DRAIN:?} after five resets: a SUMP analyzer in command mode is silent until asked. Is this port the analyzer (not a console or another instrument)?"),
                });
            }
        }
        Ok(())
    }

    fn read_exact(&mut self, n: usize, timeout: Duration, what: &str) -> InstrumentResult<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        let mut buf = vec![0u8; 65536];
        self.first_byte_at = None;
        while out.len() < n {
            let want = (n - out.len()).min(buf.len());
            let got = read_some(self.port.as_mut(), &mut buf[..want], &self.device)?;
            if got > 0 && self.first_byte_at.is_none() {
                self.first_byte_at = Some(Instant::now());
            }
            out.extend_from_slice(&buf[..got]);
            if got == 0 && Instant::now() > deadline {
                return Err(InstrumentError::Timeout {
                    device: self.device.clone(),
                    what: format!("{what} ({} of {n} bytes came)", out.len()),
                    timeout,
                });
            }
        }
        Ok(out)
    }

    fn read_metadata(&mut self, timeout: Duration) -> InstrumentResult<Metadata> {
        let deadline = Instant::now() + timeout;
        let mut bytes = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let n = read_some(self.port.as_mut(), &mut buf, &self.device)?;
            bytes.extend_from_slice(&buf[..n]);
            if let Some(m) = parse_metadata(&bytes) {
                return Ok(m);
            }
            if Instant::now() > deadline {
                return Err(InstrumentError::Timeout {
                    device: self.device.clone(),
                    what: "metadata (0x04)".into(),
                    timeout,
                });
            }
        }
    }

    /// Before captures' failures are blamed on the signal: the analyzer still answers its ID
    /// as it did at open. Else the analyzer is at fault, and the error says so. A read-out the
    /// reset came too late for (the trigger fired just before the capture timed out) may still
    /// be on the line: its sample bytes come before the ID, which is looked for in the stream.
    fn confirm_id(&mut self, after: &str) -> InstrumentResult<()> {
        self.reset()?;
        self.write(&[CMD_ID])?;
        let deadline = Instant::now() + ID_TIMEOUT;
        let mut heard = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let n = read_some(self.port.as_mut(), &mut buf, &self.device)?;
            heard.extend_from_slice(&buf[..n]);
            if heard.windows(4).any(|w| w == self.id.as_bytes()) {
                // Whatever followed the ID is stale; the next command starts clean.
                return self.reset();
            }
        }
        let _ = self.reset();
        if heard.is_empty() {
            return Err(InstrumentError::Timeout {
                device: self.device.clone(),
                what: format!("its ID (0x02) after {after}: the SUMP analyzer stopped answering"),
                timeout: ID_TIMEOUT,
            });
        }
        let tail = &heard[heard.len().saturating_sub(8)..];
        Err(InstrumentError::Protocol {
            device: self.device.clone(),
            reason: format!("the SUMP analyzer sent {} bytes but not its ID {:?} after {after} (it answered that at open; the last bytes: {:?}): its answers are garbled (noise, a wrong baud rate on a UART link, or another device on this port)", heard.len(), self.id, String::from_utf8_lossy(tail)),
        })
    }

    /// Captures `samples` samples after a rising edge on the servo channel; oldest first.
    pub fn capture_raw(
        &mut self,
        samples: u32,
        trigger_timeout: Duration,
    ) -> InstrumentResult<Vec<u8>> {
        let samples = samples.div_ceil(4) * 4;
        let capture_time =
            Duration::from_secs_f64(f64::from(samples) / f64::from(self.sample_rate_hz));
        self.capture_entries(samples, false, trigger_timeout + capture_time)
    }

    /// Captures after a rising edge with run-length encoding: `entries` memory entries
    /// (see [`rle_entries_for`]) that should span about `expected_samples`. Decoded, oldest
    /// first.
    pub fn capture_rle(
        &mut self,
        entries: u32,
        expected_samples: u32,
        trigger_timeout: Duration,
    ) -> InstrumentResult<Vec<u8>> {
        let entries = entries.div_ceil(4) * 4;
        // Generous: the entries span about `expected_samples` on a servo signal, at most 64
        // samples per entry on a flat one.
        let capture_time = Duration::from_secs_f64(
            2.0 * f64::from(expected_samples.max(entries)) / f64::from(self.sample_rate_hz),
        );
        let data = self.capture_entries(entries, true, trigger_timeout + capture_time)?;
        Ok(rle_decode(&data))
    }

    /// Sets up, runs and reads `entries` bytes, reversed to oldest first.
    fn capture_entries(
        &mut self,
        entries: u32,
        rle: bool,
        timeout: Duration,
    ) -> InstrumentResult<Vec<u8>> {
        let mut cmd = capture_setup_with(self.sample_rate_hz, entries, self.channel, rle);
        cmd.push(CMD_RUN);
        self.write(&cmd)?;
        let result = self.read_exact(entries as usize, timeout, "capture after a rising edge");
        match result {
            Ok(mut data) => {
                data.reverse();
                Ok(data)
            }
            Err(e) => {
                // Disarm so the next command is not taken as sample data.
                let _ = self.reset();
                Err(match e {
                    InstrumentError::Timeout { device, timeout, .. } => InstrumentError::Measurement {
                        device,
                        reason: format!(
                            "no rising edge on channel {} within {timeout:?}: the servo signal is absent (board off or locked up?)",
                            self.channel
                        ),
                    },
                    other => other,
                })
            }
        }
    }
}

impl PulseMeter for SumpAnalyzer {
    fn capture(&mut self, periods: usize) -> InstrumentResult<TimedCapture> {
        // Start at a rising edge and stop 3 ms after the edge `periods - 1` frames later: that
        // holds `periods` whole pulses (servo pulses end by 2.5 ms) and leaves 17 ms to read
        // out and re-arm before the next edge, so back-to-back captures miss no pulse.
        let window_us = (periods.max(1) - 1) as f64 * SERVO_PERIOD_US + 3000.0;
        let samples = (window_us * f64::from(self.sample_rate_hz) / 1e6) as u32;
        let data = if self.rle {
            // Each period is a high and a low run; one more for a partial run.
            let runs = 2 * periods.max(1) as u32 + 1;
            let entries = rle_entries_for(samples, runs);
            self.capture_rle(entries, samples, Duration::from_millis(100))?
        } else {
            self.capture_raw(samples, Duration::from_millis(100))?
        };
        let window = Duration::from_secs_f64(data.len() as f64 / f64::from(self.sample_rate_hz));
        // The device sends right after its last sample: the first byte's arrival, not the end of
        // the read-out, dates the capture (reading 20 kB can lag under load).
        let arrived = self.first_byte_at.unwrap_or_else(Instant::now);
        let started = arrived.checked_sub(window).unwrap_or(arrived);
        let checked =
            PulseCapture::decode(&data, self.channel, self.sample_rate_hz).and_then(|c| {
                c.check_servo(periods, SERVO_PERIOD_US)
                    .and_then(|()| c.check_jitter(self.max_jitter_us))
                    .map(|()| c)
            });
        match checked {
            Ok(capture) => Ok(TimedCapture { started, capture }),
            Err(e) => Err(InstrumentError::Measurement {
                device: self.device.clone(),
                reason: e.to_string(),
            }),
        }
    }

    fn confirm_answering(&mut self) -> InstrumentResult<()> {
        self.confirm_id("captures that found no servo signal")
    }

    fn describe(&self) -> String {
        format!(
            "SUMP analyzer {} ({}) at {}, channel {}{}",
            self.id,
            self.metadata.name.as_deref().unwrap_or("unnamed"),
            self.device,
            self.channel,
            if self.rle { ", RLE" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port that never stops sending (a console, another instrument): opening it as a SUMP
    /// analyzer ends in an error naming it, instead of draining for ever after the resets.
    #[test]
    fn a_port_that_never_stops_talking_is_not_taken_for_an_analyzer() {
        let talker = crate::drivers::serial::fake::EndlessTalker::start(b"login: ");
        let (tx, rx) = std::sync::mpsc::channel();
        let path = talker.path.clone();
        std::thread::spawn(move || {
            let options = SumpOptions {
                channel: 0,
                sample_rate_hz: 1_000_000,
                rle: false,
                max_jitter_us: 50.0,
            };
            let r = SumpAnalyzer::open_with(&path, &options).map(|_| ());
            let _ = tx.send(r.map_err(|e| e.to_string()));
        });
        let outcome = rx.recv_timeout(RESET_DRAIN + Duration::from_secs(5));
        let path = talker.path.clone();
        drop(talker);
        let err = outcome
            .expect("open_with returned (it drained for ever before)")
            .unwrap_err();
        assert!(
            err.contains(&path) && err.contains("still sending"),
            "{err}"
        );
    }

    #[test]
    fn long_commands_are_little_endian() {
        assert_eq!(long_command(CMD_DIVIDER, 99), [0x80, 99, 0, 0, 0]);
        let setup = capture_setup(1_000_000, 40_000, 0);
        assert_eq!(&setup[..5], &[0x80, 99, 0, 0, 0]);
        // (40000 / 4) - 1 = 9999 = 0x270F for both read and delay counts.
        assert_eq!(&setup[5..10], &[0x81, 0x0F, 0x27, 0x0F, 0x27]);
        assert_eq!(&setup[10..15], &[0x82, 0x38, 0, 0, 0]);
    }

    #[test]
    fn parses_metadata() {
        let mut b = vec![0x01];
        b.extend(b"Sim\0");
        b.extend([
            0x20, 0, 0, 0, 8, 0x23, 0x05, 0xF5, 0xE1, 0x00, 0x41, 2, 0x00,
        ]);
        let m = parse_metadata(&b).unwrap();
        assert_eq!(m.name.as_deref(), Some("Sim"));
        assert_eq!(m.probes, Some(8));
        assert_eq!(m.max_sample_rate, Some(100_000_000));
        assert_eq!(m.protocol_version, Some(2));
        assert_eq!(parse_metadata(&b[..b.len() - 1]), None);
    }

    #[test]
    fn rle_setup_sets_flag_bit_8() {
        let setup = capture_setup_with(1_000_000, 700, 0, true);
        assert_eq!(&setup[10..15], &[0x82, 0x38, 0x01, 0, 0]);
        assert_eq!(
            &capture_setup_with(1_000_000, 700, 0, false)[10..15],
            &[0x82, 0x38, 0, 0, 0]
        );
    }

    #[test]
    fn decodes_run_lengths_as_value_then_repeats() {
        // Chronological: a leading count whose value was overwritten (dropped), 1 for 3
        // samples, 0 once, 1 for 129 samples (a full chunk of 128, then 1 with a zero count).
        let entries = [0x85, 0x01, 0x82, 0x00, 0x01, 0xFF, 0x01, 0x80];
        let d = rle_decode(&entries);
        let mut want = vec![1u8; 3];
        want.push(0);
        want.extend(std::iter::repeat_n(1u8, 128 + 1));
        assert_eq!(d, want);
        // Raw samples (no count flags) decode to themselves.
        assert_eq!(rle_decode(&[0, 1, 1, 0]), vec![0, 1, 1, 0]);
    }

    #[test]
    fn rle_entry_budget_covers_the_window() {
        // 23 ms at 1 MHz with 5 runs: 180 chunks of 128 samples + one partial per run.
        assert_eq!(rle_entries_for(23_000, 5), 2 * (180 + 5) + 2);
        assert_eq!(rle_entries_for(23_000, 5) % 4, 0);
    }
}
