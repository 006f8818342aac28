//! DMA1 streams and DMAMUX1 requests, with USART3's transmitter as their one modelled target:
//! memory-to-TDR transfers leave at the baud rate, NDTR counts down, HTIF/TCIF and the line.

use super::{DMA1, DMAMUX1, DMAREQ_USART3_TX, PS_PER_S, USART3_TDR};

/// DMAMUX1 channel 0's register (the channels follow it word by word), for [`crate::soc`].
pub const DMAMUX1_C0CR: u32 = DMAMUX1;

/// Stream register words: CR, NDTR, PAR, M0AR, M1AR, FCR.
#[derive(Clone, Copy, Debug, Default)]
struct Stream {
    cr: u32,
    ndtr: u32,
    par: u32,
    m0ar: u32,
    m1ar: u32,
    fcr: u32,
}

/// A memory-to-USART3 transfer in flight.
#[derive(Clone, Debug)]
struct UartTransfer {
    stream: usize,
    bytes: Vec<u8>,
    start_ps: u64,
    byte_ps: u64,
    /// Bytes already sent to the host.
    emitted: usize,
    done: bool,
}

/// DMA1 (8 streams), DMAMUX1 and USART3's transmitter.
#[derive(Clone, Debug, Default)]
pub struct Dma {
    streams: [Stream; 8],
    /// LISR, HISR.
    isr: [u32; 2],
    transfer: Option<UartTransfer>,
    /// Line of USART3 still being shifted out after the DMA finished.
    pub uart_busy_until_ps: u64,
    /// Transfers the model does not carry out (stream, PAR, request), for diagnosis.
    pub unmodelled: Vec<(usize, u32, u32)>,
}

/// What the caller must do after a DMA register write: read `len` bytes at `address` from
/// memory and hand them to [`Dma::begin`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaStart {
    pub stream: usize,
    pub address: u32,
    pub len: usize,
}

/// Flag bit offset of a stream in LISR/HISR.
fn flag_shift(stream: usize) -> u32 {
    [0, 6, 16, 22][stream % 4]
}

const DMA_TCIF: u32 = 1 << 5;
const DMA_HTIF: u32 = 1 << 4;
const DMA_TEIF: u32 = 1 << 3;
const DMA_DMEIF: u32 = 1 << 2;
const DMA_FEIF: u32 = 1;

impl Dma {
    pub fn handles(addr: u32) -> bool {
        (DMA1..DMA1 + 0xD0).contains(&addr)
    }

    fn flags(&self, stream: usize) -> u32 {
        (self.isr[stream / 4] >> flag_shift(stream)) & 0x3D
    }

    fn set_flags(&mut self, stream: usize, flags: u32) {
        self.isr[stream / 4] |= flags << flag_shift(stream);
    }

    /// The stream's interrupt line.
    pub fn line(&self, stream: usize) -> bool {
        let s = &self.streams[stream];
        let f = self.flags(stream);
        (f & DMA_TCIF != 0 && s.cr & (1 << 4) != 0)
            || (f & DMA_HTIF != 0 && s.cr & (1 << 3) != 0)
            || (f & DMA_TEIF != 0 && s.cr & (1 << 2) != 0)
            || (f & DMA_DMEIF != 0 && s.cr & (1 << 1) != 0)
            || (f & DMA_FEIF != 0 && s.fcr & (1 << 7) != 0)
    }

    fn taken(t: &UartTransfer, now_ps: u64) -> usize {
        if now_ps < t.start_ps {
            return 0;
        }
        (((now_ps - t.start_ps) / t.byte_ps) as usize + 1).min(t.bytes.len())
    }

    /// Advances the transfer to `now_ps`: bytes fully shifted out go to `out`; the last byte
    /// taken ends the transfer (EN cleared, TCIF).
    pub fn sync(&mut self, now_ps: u64, out: &mut Vec<u8>) {
        let Some(t) = self.transfer.as_mut() else {
            return;
        };
        // Byte k is on the line from start + k*byte_ps and done one byte time later.
        let sent = if now_ps < t.start_ps {
            0
        } else {
            (((now_ps - t.start_ps) / t.byte_ps) as usize).min(t.bytes.len())
        };
        if sent > t.emitted {
            out.extend_from_slice(&t.bytes[t.emitted..sent]);
            t.emitted = sent;
        }
        let n = t.bytes.len();
        let taken = Self::taken(t, now_ps);
        let stream = t.stream;
        let was_done = t.done;
        if !was_done && taken == n {
            t.done = true;
        }
        let finished = t.done && t.emitted == n;
        if !was_done {
            self.streams[stream].ndtr = (n - taken) as u32;
            if taken * 2 >= n {
                self.set_flags(stream, DMA_HTIF);
            }
            if taken == n {
                self.streams[stream].cr &= !1;
                self.set_flags(stream, DMA_TCIF);
            }
        }
        if finished {
            self.transfer = None;
        }
    }

    /// The transfer's completion, if its interrupt is enabled and it is still to come.
    pub fn next_event(&self, now_ps: u64) -> Option<u64> {
        let t = self.transfer.as_ref()?;
        if t.done {
            return None;
        }
        let end = t.start_ps + (t.bytes.len() as u64 - 1) * t.byte_ps;
        let half = t.start_ps + ((t.bytes.len() as u64).div_ceil(2) - 1) * t.byte_ps;
        let cr = self.streams[t.stream].cr;
        [(cr & (1 << 4) != 0, end), (cr & (1 << 3) != 0, half)]
            .into_iter()
            .filter(|(on, at)| *on && *at > now_ps)
            .map(|(_, at)| at)
            .min()
    }

    /// Whether USART3 is still shifting bytes out (ISR.TC = 0).
    pub fn uart_transmitting(&self) -> bool {
        self.transfer.is_some()
    }

    pub fn read(&mut self, addr: u32, now_ps: u64, out: &mut Vec<u8>) -> u32 {
        self.sync(now_ps, out);
        match addr - DMA1 {
            0x00 => self.isr[0],
            0x04 => self.isr[1],
            0x08 | 0x0C => 0,
            off => {
                let (s, reg) = (((off - 0x10) / 0x18) as usize, (off - 0x10) % 0x18);
                let st = &self.streams[s.min(7)];
                match reg {
                    0x00 => st.cr,
                    0x04 => st.ndtr,
                    0x08 => st.par,
                    0x0C => st.m0ar,
                    0x10 => st.m1ar,
                    _ => st.fcr | 0x20, // FS = empty
                }
            }
        }
    }

    /// A register write. `mux` is the DMAMUX1 channel register of each stream, `uart` the
    /// USART3 CR1/CR3 words: together they say whether a stream feeds USART3's TDR.
    pub fn write(
        &mut self,
        addr: u32,
        value: u32,
        now_ps: u64,
        mux: impl Fn(usize) -> u32,
        uart_dmat: bool,
        out: &mut Vec<u8>,
    ) -> Option<DmaStart> {
        self.sync(now_ps, out);
        match addr - DMA1 {
            0x00 | 0x04 => None,
            0x08 => {
                self.isr[0] &= !value;
                None
            }
            0x0C => {
                self.isr[1] &= !value;
                None
            }
            off => {
                let (s, reg) = (((off - 0x10) / 0x18) as usize, (off - 0x10) % 0x18);
                if s > 7 {
                    return None;
                }
                match reg {
                    0x00 => {
                        let was = self.streams[s].cr & 1 != 0;
                        self.streams[s].cr = value;
                        let en = value & 1 != 0;
                        if was && !en {
                            // Disabling a running stream stops it; TCIF tells it stopped.
                            if let Some(t) = self.transfer.as_mut().filter(|t| t.stream == s) {
                                if !t.done {
                                    let taken = Self::taken(t, now_ps);
                                    t.bytes.truncate(taken);
                                    t.done = true;
                                    self.set_flags(s, DMA_TCIF);
                                }
                            }
                        }
                        if en && !was {
                            let st = self.streams[s];
                            let dir = (st.cr >> 6) & 3;
                            let request = mux(s) & 0x7F;
                            if dir == 1
                                && st.par == USART3_TDR
                                && request == DMAREQ_USART3_TX
                                && uart_dmat
                                && st.ndtr > 0
                                && self.transfer.is_none()
                            {
                                return Some(DmaStart {
                                    stream: s,
                                    address: st.m0ar,
                                    len: st.ndtr as usize,
                                });
                            }
                            if self.unmodelled.len() < 16 {
                                self.unmodelled.push((s, st.par, request));
                            }
                        }
                        None
                    }
                    0x04 => {
                        self.streams[s].ndtr = value & 0xFFFF;
                        None
                    }
                    0x08 => {
                        self.streams[s].par = value;
                        None
                    }
                    0x0C => {
                        self.streams[s].m0ar = value;
                        None
                    }
                    0x10 => {
                        self.streams[s].m1ar = value;
                        None
                    }
                    _ => {
                        self.streams[s].fcr = value;
                        None
                    }
                }
            }
        }
    }

    /// Starts the transfer `start` asked for with the bytes read from memory; one byte takes
    /// `byte_ps` on the line.
    pub fn begin(&mut self, start: DmaStart, bytes: Vec<u8>, now_ps: u64, byte_ps: u64) {
        self.transfer = Some(UartTransfer {
            stream: start.stream,
            bytes,
            start_ps: now_ps,
            byte_ps: byte_ps.max(1),
            emitted: 0,
            done: false,
        });
    }
}

/// Time on the line of one 8N1 byte at the baud rate BRR sets (oversampling by 16).
pub fn uart_byte_ps(brr: u32, kernel_hz: u64) -> u64 {
    let brr = u64::from(brr.max(16));
    10 * brr * PS_PER_S / kernel_hz.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dma_sends_at_the_baud_rate_and_completes() {
        let mut d = Dma::default();
        let mut out = Vec::new();
        let s0 = |off: u32| DMA1 + 0x10 + off;
        d.write(s0(0x08), USART3_TDR, 0, |_| 0, true, &mut out);
        d.write(s0(0x0C), 0x2400_0000, 0, |_| 0, true, &mut out);
        d.write(s0(0x04), 4, 0, |_| 0, true, &mut out);
        d.write(s0(0x00), (1 << 6) | (1 << 4), 0, |_| 0, true, &mut out);
        let start = d.write(
            s0(0x00),
            (1 << 6) | (1 << 4) | 1,
            0,
            |_| DMAREQ_USART3_TX,
            true,
            &mut out,
        );
        let start = start.expect("a USART3 TX transfer");
        assert_eq!((start.address, start.len), (0x2400_0000, 4));
        let byte = uart_byte_ps(868, 100_000_000);
        assert_eq!(byte / 1000, 86_800, "115200 baud");
        d.begin(start, b"GAUG".to_vec(), 0, byte);
        assert_eq!(d.read(s0(0x00), 0, &mut out) & 1, 1, "running");
        assert_eq!(d.next_event(0), Some(3 * byte));
        assert!(!d.line(0));
        d.sync(3 * byte, &mut out);
        assert_eq!(d.read(s0(0x00), 3 * byte, &mut out) & 1, 0, "done");
        assert!(d.line(0));
        assert_eq!(out, b"GAU");
        d.sync(4 * byte, &mut out);
        assert_eq!(out, b"GAUG");
        d.write(DMA1 + 0x08, 0x3D, 4 * byte, |_| 0, true, &mut out);
        assert!(!d.line(0));
    }
}
