//! SUMP logic-analyzer simulator. Channel 0 probes the servo pin (TIM1_CH1, PE9).
//!
//! Implements reset, run, ID (`1ALS`), metadata (protocol version 2), divider, read/delay
//! count, flags (channel groups, run-length encoding) and the four-stage parallel trigger
//! (mask/value per stage, a level counter, the start bit). Samples are taken from the board's
//! pin history and sent newest first.
//!
//! With RLE (flags bit 8) the read count counts memory entries: a value, then, if it repeats,
//! `0x80 | repeats` (top bit of the sample width), at most 127 repeats per count with one
//! channel group, after which the value is stored again. Pre-trigger entries (read count above
//! delay count) are approximated as `read - delay` sampling instants before the trigger.

use std::{io::Write, sync::atomic::Ordering, time::Duration};

use crate::faults::DevicePort;

use crate::shared::{lock, Shared};

const CLOCK_HZ: f64 = 100_000_000.0;
const SAMPLE_MEMORY: u32 = 256 * 1024;
const FLAG_RLE: u32 = 1 << 8;

/// The analyzer's run-length encoder: entries of `width` bits whose top bit marks a count of
/// further repeats of the value before it; stops storing at `limit` entries.
pub struct RleEncoder {
    flag: u32,
    run: Option<(u32, u32)>,
    entries: Vec<u32>,
    limit: usize,
}

impl RleEncoder {
    pub fn new(width_bits: u32, limit: usize) -> Self {
        Self {
            flag: 1 << (width_bits.clamp(8, 32) - 1),
            run: None,
            entries: Vec::new(),
            limit,
        }
    }

    /// Whether the memory is full.
    pub fn full(&self) -> bool {
        self.entries.len() >= self.limit
    }

    pub fn push(&mut self, sample: u32) {
        let v = sample & (self.flag - 1);
        match &mut self.run {
            Some((cv, n)) if *cv == v && *n < self.flag - 1 => *n += 1,
            _ => {
                self.flush();
                self.run = Some((v, 0));
            }
        }
    }

    fn flush(&mut self) {
        if let Some((v, n)) = self.run.take() {
            for e in [Some(v), (n > 0).then_some(self.flag | n)]
                .into_iter()
                .flatten()
            {
                if !self.full() {
                    self.entries.push(e);
                }
            }
        }
    }

    /// The stored entries, oldest first (the run under way included).
    pub fn finish(mut self) -> Vec<u32> {
        self.flush();
        self.entries
    }
}

#[derive(Clone, Copy, Default)]
struct Stage {
    mask: u32,
    value: u32,
    config: u32,
}

impl Stage {
    fn level(&self) -> u32 {
        (self.config >> 16) & 0b11
    }
    fn starts(&self) -> bool {
        self.config & (1 << 27) != 0
    }
}

struct Analyzer {
    divider: u32,
    read_count: u32,
    delay_count: u32,
    flags: u32,
    stages: [Stage; 4],
}

impl Analyzer {
    fn step_us(&self) -> f64 {
        1e6 * f64::from(self.divider + 1) / CLOCK_HZ
    }
    fn groups_enabled(&self) -> usize {
        (0..4).filter(|g| self.flags & (1 << (2 + g)) == 0).count()
    }
    fn set(&mut self, opcode: u8, arg: u32) {
        match opcode {
            0x80 => self.divider = arg & 0x00FF_FFFF,
            0x81 => {
                self.read_count = ((arg & 0xFFFF) + 1) * 4;
                self.delay_count = ((arg >> 16) + 1) * 4;
            }
            0x82 => self.flags = arg,
            0xC0..=0xCF => {
                let stage = &mut self.stages[usize::from((opcode - 0xC0) / 4)];
                match (opcode - 0xC0) % 4 {
                    0 => stage.mask = arg,
                    1 => stage.value = arg,
                    2 => stage.config = arg,
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

fn metadata() -> Vec<u8> {
    let mut m = vec![0x01];
    m.extend_from_slice(b"gauge-rig simulated SUMP analyzer\0");
    m.push(0x02);
    m.extend_from_slice(b"sim-1\0");
    m.push(0x20);
    m.extend_from_slice(&8u32.to_be_bytes());
    m.push(0x21);
    m.extend_from_slice(&SAMPLE_MEMORY.to_be_bytes());
    m.push(0x23);
    m.extend_from_slice(&100_000_000u32.to_be_bytes());
    m.push(0x24);
    m.extend_from_slice(&2u32.to_be_bytes());
    m.push(0x00);
    m
}

/// The sample byte (group 0) at `t_us`: bit 0 is the servo pin.
fn sample(shared: &Shared, t_us: f64) -> u8 {
    u8::from(lock(&shared.pwm).level(t_us as u64))
}

enum Capture {
    Done(Vec<u8>),
    /// The host sent reset (0x00) while the analyzer waited.
    Aborted,
    Stopped,
}

/// Waits for the trigger, then for the post-trigger samples to exist, and returns them as
/// SUMP sends them: newest sample first, groups in order within a sample.
fn capture(shared: &Shared, a: &Analyzer, port: &mut DevicePort) -> Capture {
    let step = a.step_us();
    let arm = shared.now_us() as f64;
    let mut level = 0u32;
    let mut t = arm;
    let triggered_at = if a.stages.iter().any(|s| s.starts()) {
        'scan: loop {
            if shared.stop.load(Ordering::Relaxed) {
                return Capture::Stopped;
            }
            let known = lock(&shared.pwm).known_until_us as f64;
            while t < known {
                let s = u32::from(sample(shared, t));
                for st in a.stages.iter().filter(|st| st.level() == level) {
                    if s & st.mask == st.value & st.mask {
                        if st.starts() {
                            break 'scan t;
                        }
                        level += 1;
                        break;
                    }
                }
                t += step;
            }
            let mut b = [0u8; 16];
            if let Ok(n) = std::io::Read::read(port, &mut b) {
                if b[..n].contains(&0x00) {
                    return Capture::Aborted;
                }
            }
        }
    } else {
        arm
    };
    let read = a.read_count.min(SAMPLE_MEMORY);
    let delay = a.delay_count.min(read);
    let first = triggered_at - f64::from(read - delay) * step;
    if a.flags & FLAG_RLE != 0 {
        return capture_rle(shared, a, port, first, read as usize);
    }
    let last = triggered_at + f64::from(delay) * step;
    while (lock(&shared.pwm).known_until_us as f64) < last {
        if shared.stop.load(Ordering::Relaxed) {
            return Capture::Stopped;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let bytes_per_sample = a.groups_enabled();
    let mut out = Vec::with_capacity(read as usize * bytes_per_sample);
    let pwm = lock(&shared.pwm);
    for i in (0..read).rev() {
        let t = first + f64::from(i) * step;
        out.push(u8::from(pwm.level(t as u64)));
        out.extend(std::iter::repeat_n(0u8, bytes_per_sample.saturating_sub(1)));
    }
    Capture::Done(out)
}

/// Samples from `first` on, run-length encoded, until `read` entries are stored; sent newest
/// first, groups in order within an entry.
fn capture_rle(
    shared: &Shared,
    a: &Analyzer,
    port: &mut DevicePort,
    first: f64,
    read: usize,
) -> Capture {
    let step = a.step_us();
    let groups = a.groups_enabled().max(1);
    let mut enc = RleEncoder::new(8 * groups as u32, read);
    let mut t = first;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Capture::Stopped;
        }
        {
            let pwm = lock(&shared.pwm);
            let known = pwm.known_until_us as f64;
            while t < known && !enc.full() {
                enc.push(u32::from(pwm.level(t as u64)));
                t += step;
            }
        }
        if enc.full() {
            break;
        }
        let mut b = [0u8; 16];
        if let Ok(n) = std::io::Read::read(port, &mut b) {
            if b[..n].contains(&0x00) {
                return Capture::Aborted;
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let mut out = Vec::with_capacity(read * groups);
    for e in enc.finish().into_iter().rev() {
        out.extend_from_slice(&e.to_le_bytes()[..groups]);
    }
    Capture::Done(out)
}

pub fn run(shared: &Shared, mut port: DevicePort) {
    let mut a = Analyzer {
        divider: 99,
        read_count: 4096,
        delay_count: 4096,
        flags: 0,
        stages: [Stage::default(); 4],
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 256];
    while !shared.stop.load(Ordering::Relaxed) {
        if let Ok(n) = std::io::Read::read(&mut port, &mut buf) {
            pending.extend_from_slice(&buf[..n]);
        }
        while let Some(&op) = pending.first() {
            if op >= 0x80 {
                if pending.len() < 5 {
                    break;
                }
                let arg = u32::from_le_bytes([pending[1], pending[2], pending[3], pending[4]]);
                pending.drain(..5);
                a.set(op, arg);
                continue;
            }
            pending.remove(0);
            let reply = match op {
                0x02 => b"1ALS".to_vec(),
                0x04 => metadata(),
                0x01 => match capture(shared, &a, &mut port) {
                    Capture::Done(samples) => samples,
                    Capture::Aborted | Capture::Stopped => Vec::new(),
                },
                _ => Vec::new(), // reset, self-test and unknown short commands: no reply
            };
            if !reply.is_empty() {
                port.set_timeout(Duration::from_millis(500));
                let _ = port.write_all(&reply);
                let _ = port.flush();
                port.set_timeout(Duration::from_millis(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RleEncoder;
    use rig_instruments::drivers::sump::rle_decode;

    fn encode(samples: &[u8], limit: usize) -> Vec<u8> {
        let mut enc = RleEncoder::new(8, limit);
        for &s in samples {
            enc.push(u32::from(s));
        }
        enc.finish().into_iter().map(|e| e as u8).collect()
    }

    #[test]
    fn encodes_runs_as_value_and_count_and_the_client_decodes_them() {
        let mut s = vec![1u8; 3];
        s.push(0);
        s.extend(std::iter::repeat_n(1u8, 300));
        let e = encode(&s, 100);
        // 3 ones, one zero, 300 ones = 128 + 128 + 44.
        assert_eq!(e, [0x01, 0x82, 0x00, 0x01, 0xFF, 0x01, 0xFF, 0x01, 0xAB]);
        assert_eq!(rle_decode(&e), s);
    }

    #[test]
    fn stops_at_the_memory_size() {
        let s: Vec<u8> = (0..100).map(|i| (i / 10 % 2) as u8).collect();
        let e = encode(&s, 7);
        assert_eq!(e, [0x00, 0x89, 0x01, 0x89, 0x00, 0x89, 0x01]);
    }
}
