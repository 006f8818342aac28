//! FDCAN1 model with its message RAM: classic frames through the filters into RX FIFO 0/1,
//! TX buffers on TXBAR, the interrupt registers and lines, frames paced at the bus bit rate,
//! and fault confinement (ISO 11898-1 as RM0399 describes it): the transmit and receive error
//! counters, error warning at 96, error passive at 128, bus-off above 255 (CCCR.INIT set by
//! the controller) and the recovery of 129 x 11 recessive bits after software clears INIT.

use std::collections::VecDeque;

use gauge_logic::frame::CanFrame;

use super::{FDCAN1, FDCAN_RAM, FDCAN_RAM_WORDS, PS_PER_S};

const F_CCCR: usize = 0x18 / 4;
const F_NBTP: usize = 0x1C / 4;
const F_TSCC: usize = 0x20 / 4;
const F_TSCV: usize = 0x24 / 4;
const F_ECR: usize = 0x40 / 4;
const F_PSR: usize = 0x44 / 4;
const F_IR: usize = 0x50 / 4;
const F_IE: usize = 0x54 / 4;
const F_ILS: usize = 0x58 / 4;
const F_ILE: usize = 0x5C / 4;
const F_GFC: usize = 0x80 / 4;
const F_SIDFC: usize = 0x84 / 4;
const F_XIDFC: usize = 0x88 / 4;
const F_XIDAM: usize = 0x90 / 4;
const F_RXF0C: usize = 0xA0 / 4;
const F_RXF0S: usize = 0xA4 / 4;
const F_RXF0A: usize = 0xA8 / 4;
const F_RXF1C: usize = 0xB0 / 4;
const F_RXF1S: usize = 0xB4 / 4;
const F_RXF1A: usize = 0xB8 / 4;
const F_RXESC: usize = 0xBC / 4;
const F_TXBC: usize = 0xC0 / 4;
const F_TXFQS: usize = 0xC4 / 4;
const F_TXESC: usize = 0xC8 / 4;
const F_TXBRP: usize = 0xCC / 4;
const F_TXBAR: usize = 0xD0 / 4;
const F_TXBCR: usize = 0xD4 / 4;
const F_TXBTO: usize = 0xD8 / 4;
const F_TXBCF: usize = 0xDC / 4;
const F_TXBTIE: usize = 0xE0 / 4;

const CCCR_INIT: u32 = 1;
const CCCR_CCE: u32 = 1 << 1;
const CCCR_CSA: u32 = 1 << 3;
const CCCR_CSR: u32 = 1 << 4;
const CCCR_MON: u32 = 1 << 5;
const CCCR_DAR: u32 = 1 << 6;
const IR_TC: u32 = 1 << 9;
const IR_EP: u32 = 1 << 23;
const IR_EW: u32 = 1 << 24;
const IR_BO: u32 = 1 << 25;
const PSR_EP: u32 = 1 << 5;
const PSR_EW: u32 = 1 << 6;
const PSR_BO: u32 = 1 << 7;
/// PSR.LEC codes (RM0399): no error, acknowledge error, bit-1 error; 7 = no change.
const LEC_NONE: u32 = 0;
const LEC_ACK: u32 = 3;
const LEC_BIT1: u32 = 4;

/// What is wrong with the bus, as the bench sets it (the bench's own fault type). The model:
/// `NoAck`, no other node: nothing arrives and no frame the board sends is acknowledged; the
/// transmitter goes error passive (TEC 128) and retries for ever, since an acknowledge error
/// in error passive does not count (ISO 11898-1), so never bus-off. `Short`, CANH shorted to
/// CANL or the bus held dominant: nothing arrives, every transmission meets a bit error (8
/// more on the TEC each), bus-off after 32 attempts, and no recovery while the short lasts
/// (the bus is never idle).
pub use rig_instruments::CanBusFault as BusFault;

/// Bit times of one failed attempt: an acknowledge error comes at the end of the frame
/// (about 111 bits of an 8-byte frame, then the error flag, its delimiter and the
/// intermission); a bit error on a shorted bus within the first bits.
const NO_ACK_ATTEMPT_BITS: u64 = 111 + 6 + 8 + 3;
const SHORT_ATTEMPT_BITS: u64 = 2 + 6 + 8 + 3;
/// Bus-off recovery: 129 occurrences of 11 consecutive recessive bits.
const RECOVERY_BITS: u64 = 129 * 11;

/// Bytes in a message RAM element's data field for a DS code (RXESC/TXESC).
fn data_field_bytes(code: u32) -> u32 {
    [8, 12, 16, 20, 24, 32, 48, 64][(code & 7) as usize]
}

#[derive(Clone, Copy, Debug, Default)]
struct RxFifo {
    get: u32,
    fill: u32,
    lost: bool,
}

/// Where a received frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Accept {
    Fifo { fifo: usize, filter: Option<u32> },
    Reject,
}

/// FDCAN1 and the message RAM.
#[derive(Clone, Debug)]
pub struct Fdcan {
    regs: [u32; 0x100 / 4],
    pub ram: Vec<u32>,
    fifo: [RxFifo; 2],
    /// Frames on the bus for this node, with their arrival times.
    bus: VecDeque<(u64, CanFrame)>,
    last_arrival_ps: u64,
    /// Frames this node transmitted, for the bench.
    pub tx_out: Vec<CanFrame>,
    /// Frames stored in an RX FIFO.
    pub received: u64,
    /// Frames the controller did not take: not operating (init, bus-off) or no FIFO configured.
    pub dropped: u64,
    /// Frames the acceptance filters rejected (a filter element or the global filter).
    pub filtered: u64,
    /// Frames lost to a full RX FIFO: the firmware did not read in time.
    pub overruns: u64,
    pub bus_fault: BusFault,
    tec: u32,
    rec: u32,
    /// Since when the pending transmission has been failing (a faulty bus).
    failing_since_ps: Option<u64>,
    attempts: u64,
    /// Since when a bus-off recovery has been waiting for an idle bus.
    recovering_since_ps: Option<u64>,
    /// Frames the bench sent that never reached the board: the bus was faulty.
    pub lost_to_bus_fault: u64,
    /// Times the controller went error passive, and bus-off.
    pub error_passive_events: u64,
    pub bus_off_events: u64,
}

/// Bit times of a frame on the bus, stuff bits and interframe space included.
fn frame_bits(f: &CanFrame) -> u64 {
    u64::from(f.bits_on_wire())
}

impl Fdcan {
    pub fn new() -> Self {
        let mut regs = [0; 0x100 / 4];
        regs[0] = crate::peripherals::FDCAN_CREL_VALUE;
        regs[1] = crate::peripherals::FDCAN_ENDN_VALUE;
        regs[F_CCCR] = CCCR_INIT;
        regs[F_NBTP] = 0x0600_0A03;
        regs[F_PSR] = 0x707;
        regs[F_XIDAM] = 0x1FFF_FFFF;
        Self {
            regs,
            ram: vec![0; FDCAN_RAM_WORDS],
            fifo: [RxFifo::default(); 2],
            bus: VecDeque::new(),
            last_arrival_ps: 0,
            tx_out: Vec::new(),
            received: 0,
            dropped: 0,
            filtered: 0,
            overruns: 0,
            bus_fault: BusFault::None,
            tec: 0,
            rec: 0,
            failing_since_ps: None,
            attempts: 0,
            recovering_since_ps: None,
            lost_to_bus_fault: 0,
            error_passive_events: 0,
            bus_off_events: 0,
        }
    }

    fn bus_off(&self) -> bool {
        self.regs[F_PSR] & PSR_BO != 0
    }

    fn set_lec(&mut self, code: u32) {
        self.regs[F_PSR] = (self.regs[F_PSR] & !7) | code;
    }

    /// PSR's error warning and error passive bits from the counters; IR flags each change.
    fn update_error_state(&mut self) {
        let (tec, rec) = (self.tec, self.rec);
        let passive = tec >= 128 || rec >= 128;
        let warning = tec >= 96 || rec >= 96;
        let psr = self.regs[F_PSR];
        if passive != (psr & PSR_EP != 0) {
            self.regs[F_IR] |= IR_EP;
            if passive {
                self.error_passive_events += 1;
            }
        }
        if warning != (psr & PSR_EW != 0) {
            self.regs[F_IR] |= IR_EW;
        }
        let mut psr = psr & !(PSR_EP | PSR_EW);
        if passive {
            psr |= PSR_EP;
        }
        if warning {
            psr |= PSR_EW;
        }
        self.regs[F_PSR] = psr;
    }

    /// Bus-off: the controller leaves the bus (CCCR.INIT set) and its pending transmissions
    /// are cancelled.
    fn go_bus_off(&mut self) {
        self.regs[F_PSR] |= PSR_BO;
        self.regs[F_IR] |= IR_BO;
        self.regs[F_CCCR] |= CCCR_INIT;
        self.cancel_pending();
        self.failing_since_ps = None;
        self.bus_off_events += 1;
    }

    fn cancel_pending(&mut self) {
        let pending = self.regs[F_TXBRP];
        self.regs[F_TXBRP] = 0;
        self.regs[F_TXBCF] |= pending;
    }

    /// Fault confinement up to `now_ps`: a pending transmission's failed attempts on a faulty
    /// bus (automatic retransmission, back to back), the bus-off recovery, and a pending
    /// transmission that goes out once the bus is good again.
    fn advance_errors(&mut self, now_ps: u64, kernel_hz: u64) {
        let bit = self.bit_ps(kernel_hz);
        if self.bus_off() {
            if !self.operating() || self.bus_fault == BusFault::Short {
                self.recovering_since_ps = None;
                return;
            }
            let since = *self.recovering_since_ps.get_or_insert(now_ps);
            if now_ps >= since.saturating_add(RECOVERY_BITS * bit) {
                self.recovering_since_ps = None;
                self.tec = 0;
                self.rec = 0;
                self.regs[F_PSR] &= !PSR_BO;
                self.regs[F_IR] |= IR_BO;
                self.update_error_state();
            }
            return;
        }
        let pending = self.regs[F_TXBRP];
        if pending == 0 || !self.operating() {
            self.failing_since_ps = None;
            return;
        }
        let attempt_bits = match self.bus_fault {
            BusFault::None => {
                self.failing_since_ps = None;
                self.transmit(pending);
                return;
            }
            BusFault::NoAck => NO_ACK_ATTEMPT_BITS,
            BusFault::Short => SHORT_ATTEMPT_BITS,
        };
        let since = *self.failing_since_ps.get_or_insert(now_ps);
        let due = now_ps.saturating_sub(since) / (attempt_bits * bit);
        while self.attempts < due && !self.bus_off() && self.regs[F_TXBRP] != 0 {
            if self.bus_fault == BusFault::NoAck && self.tec >= 128 {
                // Error passive: further acknowledge errors change nothing.
                self.attempts = due;
                break;
            }
            self.attempts += 1;
            match self.bus_fault {
                BusFault::NoAck => {
                    self.set_lec(LEC_ACK);
                    if self.tec < 128 {
                        self.tec += 8;
                    }
                }
                _ => {
                    self.set_lec(LEC_BIT1);
                    self.tec += 8;
                }
            }
            if self.tec > 255 {
                self.go_bus_off();
            } else {
                self.update_error_state();
            }
            if self.regs[F_CCCR] & CCCR_DAR != 0 {
                // No automatic retransmission: one attempt, then the request is dropped.
                self.cancel_pending();
            }
        }
        if self.regs[F_TXBRP] == 0 || self.bus_off() {
            self.failing_since_ps = None;
            self.attempts = 0;
        }
    }

    /// The next instant fault confinement changes something: a failed attempt or the end of
    /// a bus-off recovery.
    fn next_error_event(&self, kernel_hz: u64) -> Option<u64> {
        let bit = self.bit_ps(kernel_hz);
        if self.bus_off() {
            return self
                .recovering_since_ps
                .map(|t| t.saturating_add(RECOVERY_BITS * bit));
        }
        let bits = match self.bus_fault {
            BusFault::None => return None,
            BusFault::NoAck => NO_ACK_ATTEMPT_BITS,
            BusFault::Short => SHORT_ATTEMPT_BITS,
        };
        if self.regs[F_TXBRP] == 0 || (self.bus_fault == BusFault::NoAck && self.tec >= 128) {
            return None;
        }
        self.failing_since_ps
            .map(|t| t.saturating_add((self.attempts + 1) * bits * bit))
    }

    pub fn handles(addr: u32) -> bool {
        (FDCAN1..FDCAN1 + 0x100).contains(&addr)
            || (FDCAN_RAM..FDCAN_RAM + 4 * FDCAN_RAM_WORDS as u32).contains(&addr)
    }

    /// On the bus: CCCR.INIT and CSR clear, not in bus-monitoring mode for transmit.
    fn operating(&self) -> bool {
        self.regs[F_CCCR] & (CCCR_INIT | CCCR_CSR) == 0
    }

    /// One nominal bit time, from NBTP and the kernel clock.
    fn bit_ps(&self, kernel_hz: u64) -> u64 {
        let nbtp = self.regs[F_NBTP];
        let brp = u64::from((nbtp >> 16) & 0x1FF) + 1;
        let tq = 1 + (u64::from((nbtp >> 8) & 0xFF) + 1) + (u64::from(nbtp & 0x7F) + 1);
        (brp * tq * PS_PER_S / kernel_hz.max(1)).max(1)
    }

    /// A frame put on the bus by another node at `now_ps`: it arrives after the frames before
    /// it, one frame time apart at the configured bit rate.
    pub fn queue_frame(&mut self, frame: CanFrame, now_ps: u64, kernel_hz: u64) {
        if self.bus.len() >= 256 {
            self.dropped += 1;
            return;
        }
        let duration = frame_bits(&frame) * self.bit_ps(kernel_hz);
        let arrival = now_ps.max(self.last_arrival_ps) + duration;
        self.last_arrival_ps = arrival;
        self.bus.push_back((arrival, frame));
    }

    pub fn next_event(&self, kernel_hz: u64) -> Option<u64> {
        let frame = self.bus.front().map(|(t, _)| *t);
        match (frame, self.next_error_event(kernel_hz)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn word(&self, byte_offset: u32) -> u32 {
        self.ram
            .get((byte_offset / 4) as usize)
            .copied()
            .unwrap_or(0)
    }

    fn set_word(&mut self, byte_offset: u32, v: u32) {
        if let Some(w) = self.ram.get_mut((byte_offset / 4) as usize) {
            *w = v;
        }
    }

    fn accept(&self, f: &CanFrame) -> Accept {
        let gfc = self.regs[F_GFC];
        let to = |code: u32, filter: Option<u32>| match code {
            1 | 5 => Accept::Fifo { fifo: 0, filter },
            2 | 6 => Accept::Fifo { fifo: 1, filter },
            _ => Accept::Reject,
        };
        if !f.extended {
            let sidfc = self.regs[F_SIDFC];
            let (start, count) = (sidfc & 0xFFFC, (sidfc >> 16) & 0xFF);
            for i in 0..count {
                let e = self.word(start + 4 * i);
                let (sft, sfec) = (e >> 30, (e >> 27) & 7);
                let (id1, id2) = ((e >> 16) & 0x7FF, e & 0x7FF);
                let id = f.id;
                let hit = match sft {
                    0 => id1 <= id && id <= id2,
                    1 => id == id1 || id == id2,
                    2 => id & id2 == id1 & id2,
                    _ => false,
                };
                if sfec != 0 && hit {
                    if sfec == 4 {
                        continue; // priority only: keep looking
                    }
                    return to(sfec, Some(i));
                }
            }
            match (gfc >> 4) & 3 {
                0 => Accept::Fifo {
                    fifo: 0,
                    filter: None,
                },
                1 => Accept::Fifo {
                    fifo: 1,
                    filter: None,
                },
                _ => Accept::Reject,
            }
        } else {
            let xidfc = self.regs[F_XIDFC];
            let (start, count) = (xidfc & 0xFFFC, (xidfc >> 16) & 0xFF);
            let masked = f.id & self.regs[F_XIDAM];
            for i in 0..count {
                let (f0, f1) = (self.word(start + 8 * i), self.word(start + 8 * i + 4));
                let (efec, id1, eft, id2) =
                    (f0 >> 29, f0 & 0x1FFF_FFFF, f1 >> 30, f1 & 0x1FFF_FFFF);
                let hit = match eft {
                    0 => id1 <= masked && masked <= id2,
                    1 => f.id == id1 || f.id == id2,
                    2 => f.id & id2 == id1 & id2,
                    _ => id1 <= f.id && f.id <= id2,
                };
                if efec != 0 && hit {
                    if efec == 4 {
                        continue;
                    }
                    return to(efec, Some(i));
                }
            }
            match (gfc >> 2) & 3 {
                0 => Accept::Fifo {
                    fifo: 0,
                    filter: None,
                },
                1 => Accept::Fifo {
                    fifo: 1,
                    filter: None,
                },
                _ => Accept::Reject,
            }
        }
    }

    fn fifo_config(&self, fifo: usize) -> (u32, u32, u32) {
        let c = self.regs[if fifo == 0 { F_RXF0C } else { F_RXF1C }];
        let ds = (self.regs[F_RXESC] >> (4 * fifo as u32)) & 7;
        (c & 0xFFFC, (c >> 16) & 0x7F, 8 + data_field_bytes(ds))
    }

    /// Stores the frames that have arrived by `now_ps` in the RX FIFOs.
    pub fn deliver_due(&mut self, now_ps: u64, kernel_hz: u64) {
        self.advance_errors(now_ps, kernel_hz);
        while self.bus.front().is_some_and(|(t, _)| *t <= now_ps) {
            let Some((at, frame)) = self.bus.pop_front() else {
                break;
            };
            if self.bus_fault != BusFault::None {
                self.lost_to_bus_fault += 1;
                continue;
            }
            // In bus-off (recovering or not) the controller takes no part in the bus.
            if !self.operating() || self.bus_off() {
                self.dropped += 1;
                continue;
            }
            // A frame received without error.
            self.rec = if self.rec > 127 {
                120
            } else {
                self.rec.saturating_sub(1)
            };
            self.update_error_state();
            let Accept::Fifo { fifo, filter } = self.accept(&frame) else {
                self.filtered += 1;
                continue;
            };
            let (start, size, element) = self.fifo_config(fifo);
            let q = &mut self.fifo[fifo];
            if size == 0 {
                self.dropped += 1;
                continue;
            }
            if q.fill >= size {
                // FIFO full (blocking mode): the frame is lost.
                q.lost = true;
                self.regs[F_IR] |= 1 << (4 * fifo + 3);
                self.overruns += 1;
                continue;
            }
            let put = (q.get + q.fill) % size;
            q.fill += 1;
            let addr = start + put * element;
            let id = if frame.extended {
                frame.id | (1 << 30)
            } else {
                frame.id << 18
            };
            let ts = ((at / self.bit_ps(kernel_hz)) & 0xFFFF) as u32;
            let fidx = match filter {
                Some(i) => (i & 0x7F) << 24,
                None => 1 << 31,
            };
            self.set_word(addr, id);
            self.set_word(addr + 4, ts | (u32::from(frame.len.min(8)) << 16) | fidx);
            let d = frame.data;
            self.set_word(addr + 8, u32::from_le_bytes([d[0], d[1], d[2], d[3]]));
            self.set_word(addr + 12, u32::from_le_bytes([d[4], d[5], d[6], d[7]]));
            self.regs[F_IR] |= 1 << (4 * fifo); // RFnN
            if self.fifo[fifo].fill >= size {
                self.regs[F_IR] |= 1 << (4 * fifo + 2); // RFnF
            }
            self.received += 1;
        }
    }

    /// Interrupt lines 0 and 1 (IR & IE routed by ILS, gated by ILE).
    pub fn lines(&self) -> (bool, bool) {
        let active = self.regs[F_IR] & self.regs[F_IE];
        let ils = self.regs[F_ILS];
        let ile = self.regs[F_ILE];
        (
            active & !ils != 0 && ile & 1 != 0,
            active & ils != 0 && ile & 2 != 0,
        )
    }

    fn txfqs(&self) -> u32 {
        let txbc = self.regs[F_TXBC];
        let ndtb = (txbc >> 16) & 0x3F;
        let tfqs = (txbc >> 24) & 0x3F;
        let pending = self.regs[F_TXBRP];
        let free = (ndtb..(ndtb + tfqs).min(32)).find(|i| pending & (1 << i) == 0);
        let free_count = (ndtb..(ndtb + tfqs).min(32))
            .filter(|i| pending & (1 << i) == 0)
            .count() as u32;
        match free {
            Some(i) => (i << 16) | (free_count & 0x3F),
            None => 1 << 21,
        }
    }

    fn transmit(&mut self, requested: u32) {
        let txbc = self.regs[F_TXBC];
        let start = txbc & 0xFFFC;
        let element = 8 + data_field_bytes(self.regs[F_TXESC]);
        for i in 0..32 {
            if requested & (1 << i) == 0 {
                continue;
            }
            let addr = start + i * element;
            let (t0, t1) = (self.word(addr), self.word(addr + 4));
            let extended = t0 & (1 << 30) != 0;
            let remote = t0 & (1 << 29) != 0;
            let len = ((t1 >> 16) & 0xF).min(8) as usize;
            let mut data = [0u8; 8];
            data[..4].copy_from_slice(&self.word(addr + 8).to_le_bytes());
            data[4..].copy_from_slice(&self.word(addr + 12).to_le_bytes());
            let frame = if extended {
                CanFrame::extended(t0 & 0x1FFF_FFFF, &data[..len])
            } else {
                u16::try_from((t0 >> 18) & 0x7FF)
                    .ok()
                    .and_then(|id| CanFrame::standard(id, &data[..len]))
            };
            if let (Some(f), false) = (frame, remote) {
                self.tx_out.push(f);
            }
            self.tec = self.tec.saturating_sub(1);
            self.set_lec(LEC_NONE);
            self.update_error_state();
            self.regs[F_TXBRP] &= !(1 << i);
            self.regs[F_TXBTO] |= 1 << i;
            if self.regs[F_TXBTIE] & (1 << i) != 0 {
                self.regs[F_IR] |= IR_TC;
            }
        }
    }

    pub fn read(&self, addr: u32, now_ps: u64, kernel_hz: u64) -> u32 {
        if addr >= FDCAN_RAM {
            return self.word(addr - FDCAN_RAM);
        }
        let i = ((addr - FDCAN1) / 4) as usize;
        match i {
            F_CCCR => {
                let v = self.regs[F_CCCR] & !CCCR_CSA;
                if v & CCCR_CSR != 0 {
                    v | CCCR_CSA
                } else {
                    v
                }
            }
            F_TSCV => {
                let tcp = u64::from((self.regs[F_TSCC] >> 16) & 0xF) + 1;
                if self.regs[F_TSCC] & 3 == 1 {
                    ((now_ps / self.bit_ps(kernel_hz) / tcp) & 0xFFFF) as u32
                } else {
                    0
                }
            }
            F_RXF0S | F_RXF1S => {
                let fifo = usize::from(i == F_RXF1S);
                let (_, size, _) = self.fifo_config(fifo);
                let q = self.fifo[fifo];
                let put = if size == 0 {
                    0
                } else {
                    (q.get + q.fill) % size
                };
                let mut v = q.fill | (q.get << 8) | (put << 16);
                if size > 0 && q.fill >= size {
                    v |= 1 << 24;
                }
                if q.lost {
                    v |= 1 << 25;
                }
                v
            }
            F_TXFQS => self.txfqs(),
            F_ECR => {
                self.tec.min(255) | (self.rec.min(127) << 8) | (u32::from(self.rec >= 128) << 15)
            }
            F_TXBAR => 0,
            _ => self.regs.get(i).copied().unwrap_or(0),
        }
    }

    pub fn write(&mut self, addr: u32, value: u32) {
        if addr >= FDCAN_RAM {
            self.set_word(addr - FDCAN_RAM, value);
            return;
        }
        let i = ((addr - FDCAN1) / 4) as usize;
        match i {
            0 | 1 => {}
            F_CCCR => {
                let mut v = value;
                if v & CCCR_INIT == 0 {
                    v &= !CCCR_CCE;
                }
                self.regs[F_CCCR] = v;
            }
            F_IR => self.regs[F_IR] &= !value,
            F_RXF0A | F_RXF1A => {
                let fifo = usize::from(i == F_RXF1A);
                let (_, size, _) = self.fifo_config(fifo);
                if size > 0 {
                    let q = &mut self.fifo[fifo];
                    let ack = value & 0x3F;
                    let n = (ack + size - q.get) % size + 1;
                    if n <= q.fill {
                        q.fill -= n;
                        q.get = (ack + 1) % size;
                        q.lost = false;
                    }
                }
            }
            F_RXF0S | F_RXF1S | F_TXFQS | F_TXBRP | F_TXBTO | F_TXBCF | F_PSR | F_ECR => {}
            F_TXBAR => {
                if self.operating() && self.regs[F_CCCR] & CCCR_MON == 0 {
                    self.regs[F_TXBRP] |= value;
                    self.regs[F_TXBTO] &= !value;
                    if self.bus_fault == BusFault::None {
                        self.transmit(value);
                    }
                }
            }
            F_TXBCR => {
                let cancel = value & self.regs[F_TXBRP];
                self.regs[F_TXBRP] &= !cancel;
                self.regs[F_TXBCF] |= value;
            }
            _ => {
                if let Some(r) = self.regs.get_mut(i) {
                    *r = value;
                }
            }
        }
    }
}

impl Default for Fdcan {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::US;

    fn configure_like_embassy(f: &mut Fdcan) {
        let w = |f: &mut Fdcan, off: u32, v: u32| f.write(FDCAN1 + off, v);
        w(f, 0x84, 28 << 16);
        w(f, 0x88, (8 << 16) | (28 * 4));
        w(f, 0xA0, (3 << 16) | (44 * 4));
        w(f, 0xB0, (3 << 16) | (98 * 4));
        w(f, 0xC0, (3 << 24) | (158 * 4) | (1 << 30));
        w(f, 0xBC, 0x777);
        w(f, 0xC8, 7);
        w(f, 0xE0, u32::MAX);
        w(f, 0x54, 1 | (1 << 4) | IR_TC);
        w(f, 0x5C, 3);
        w(f, 0x1C, (9 << 16) | (12 << 8) | 1); // 80 MHz / 10 / 16 tq = 500 kbit/s
        w(f, 0x80, (2 << 2) | 3); // standard into FIFO 0, extended rejected, no remote
        w(f, 0x18, 0);
    }

    #[test]
    fn fdcan_receives_into_fifo0_and_transmits() {
        let mut f = Fdcan::new();
        let frame = CanFrame::standard(0x156, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        f.queue_frame(frame, 0, 80_000_000);
        f.deliver_due(1_000 * US, 80_000_000);
        assert_eq!(
            f.read(FDCAN1 + 0xA4, 0, 80_000_000) & 0x7F,
            0,
            "dropped in INIT"
        );
        configure_like_embassy(&mut f);
        assert_eq!(f.bit_ps(80_000_000), 2 * US);
        f.queue_frame(frame, 0, 80_000_000);
        f.queue_frame(CanFrame::extended(0x18DB33F1, &[2]).unwrap(), 0, 80_000_000);
        let first = f.next_event(80_000_000).unwrap();
        // 111 bits unstuffed and 10 stuff bits. After the frame dropped in INIT (reset bit
        // timing, 200 ns a bit) left the bus at 24.2 us.
        assert_eq!(frame.bits_on_wire(), 121);
        assert_eq!(first, 24_200_000 + 121 * 2 * US, "one frame time later");
        f.deliver_due(first, 80_000_000);
        assert_eq!(f.lines(), (true, false));
        let s = f.read(FDCAN1 + 0xA4, 0, 80_000_000);
        assert_eq!((s & 0x7F, (s >> 8) & 0x3F), (1, 0));
        let el = FDCAN_RAM + 44 * 4;
        assert_eq!(f.read(el, 0, 80_000_000), 0x156 << 18);
        assert_eq!((f.read(el + 4, 0, 80_000_000) >> 16) & 0xF, 8);
        assert_eq!(f.read(el + 8, 0, 80_000_000), 0x0403_0201);
        f.write(FDCAN1 + 0x50, 1);
        f.write(FDCAN1 + 0xA8, 0);
        assert_eq!(f.read(FDCAN1 + 0xA4, 0, 80_000_000) & 0x7F, 0);
        f.deliver_due(u64::MAX, 80_000_000);
        assert_eq!(
            f.received, 1,
            "extended frame rejected by the global filter"
        );
        // Transmit from TX buffer 0.
        let txq = f.read(FDCAN1 + 0xC4, 0, 80_000_000);
        assert_eq!((txq >> 16) & 0x1F, 0);
        let tb = FDCAN_RAM + 158 * 4;
        f.write(tb, 0x7DF << 18);
        f.write(tb + 4, 8 << 16);
        f.write(tb + 8, 0x005C_0102);
        f.write(tb + 12, 0);
        f.write(FDCAN1 + 0xD0, 1);
        assert_eq!(f.tx_out.len(), 1);
        assert_eq!(f.tx_out[0].id, 0x7DF);
        assert_eq!(f.tx_out[0].payload(), &[2, 1, 0x5C, 0, 0, 0, 0, 0]);
        assert_eq!(f.read(FDCAN1 + 0xD8, 0, 80_000_000), 1, "TXBTO");
        assert_eq!(f.lines(), (true, false), "IR.TC");
    }

    /// Requests a transmission from TX buffer 0 (an OBD-II request).
    fn request_transmit(f: &mut Fdcan) {
        let tb = FDCAN_RAM + 158 * 4;
        f.write(tb, 0x7DF << 18);
        f.write(tb + 4, 8 << 16);
        f.write(tb + 8, 0x005C_0102);
        f.write(FDCAN1 + 0xD0, 1);
    }

    fn ecr(f: &Fdcan) -> (u32, u32) {
        let e = f.read(FDCAN1 + 0x40, 0, 80_000_000);
        (e & 0xFF, (e >> 8) & 0x7F)
    }

    fn psr(f: &Fdcan) -> u32 {
        f.read(FDCAN1 + 0x44, 0, 80_000_000)
    }

    #[test]
    fn alone_on_the_bus_the_transmitter_goes_error_passive_and_retries_for_ever() {
        let mut f = Fdcan::new();
        configure_like_embassy(&mut f);
        f.bus_fault = BusFault::NoAck;
        request_transmit(&mut f);
        assert!(f.tx_out.is_empty(), "nobody acknowledges it");
        // 16 attempts of 128 bits (2 us each) bring TEC to 128: error passive.
        f.deliver_due(0, 80_000_000);
        f.deliver_due(15 * 256 * US, 80_000_000);
        assert_eq!(ecr(&f).0, 120);
        assert_eq!(psr(&f) & (PSR_EW | PSR_EP), PSR_EW, "error warning at 96");
        f.deliver_due(16 * 256 * US, 80_000_000);
        assert_eq!(ecr(&f).0, 128);
        assert_eq!(psr(&f) & (PSR_EP | PSR_BO | 7), PSR_EP | LEC_ACK);
        assert_ne!(f.regs[F_IR] & IR_EP, 0);
        // A second later: still error passive, never bus-off, the request still pending.
        f.deliver_due(1_000_000 * US, 80_000_000);
        assert_eq!(ecr(&f).0, 128);
        assert_eq!(psr(&f) & PSR_BO, 0);
        assert_eq!(f.read(FDCAN1 + 0xCC, 0, 80_000_000), 1, "TXBRP");
        assert_eq!(
            f.next_error_event(80_000_000),
            None,
            "nothing more to happen"
        );
        // Someone acknowledges again: the frame goes out, TEC counts down.
        f.bus_fault = BusFault::None;
        f.deliver_due(1_000_001 * US, 80_000_000);
        assert_eq!(f.tx_out.len(), 1);
        assert_eq!(ecr(&f).0, 127);
        assert_eq!(psr(&f) & PSR_EP, 0, "error active again below 128");
        assert_eq!(f.error_passive_events, 1);
    }

    #[test]
    fn a_shorted_bus_takes_the_transmitter_bus_off_and_recovery_waits_for_an_idle_bus() {
        let mut f = Fdcan::new();
        configure_like_embassy(&mut f);
        f.bus_fault = BusFault::Short;
        let frame = CanFrame::standard(0x156, &[0; 8]).unwrap();
        f.queue_frame(frame, 0, 80_000_000);
        request_transmit(&mut f);
        f.deliver_due(0, 80_000_000);
        // 32 attempts of 19 bits: TEC 256, bus-off.
        f.deliver_due(31 * 38 * US, 80_000_000);
        assert_eq!(psr(&f) & PSR_BO, 0);
        f.deliver_due(32 * 38 * US, 80_000_000);
        assert_ne!(psr(&f) & PSR_BO, 0, "bus-off");
        assert_ne!(f.regs[F_CCCR] & CCCR_INIT, 0, "the controller left the bus");
        assert_ne!(f.regs[F_IR] & IR_BO, 0);
        assert_eq!(
            f.read(FDCAN1 + 0xCC, 0, 80_000_000),
            0,
            "pending request cancelled"
        );
        assert_eq!(
            (f.lost_to_bus_fault, f.received),
            (1, 0),
            "nothing got through"
        );
        // Software clears INIT (embassy's bus-off recovery): no recovery while shorted.
        f.write(FDCAN1 + 0x50, IR_BO);
        f.write(FDCAN1 + 0x18, 0);
        f.deliver_due(100_000 * US, 80_000_000);
        assert_ne!(psr(&f) & PSR_BO, 0);
        // The short is gone: 129 x 11 recessive bits later, error active with counters at 0.
        f.bus_fault = BusFault::None;
        f.deliver_due(200_000 * US, 80_000_000);
        let end = f.next_error_event(80_000_000).expect("recovery under way");
        assert_eq!(end, 200_000 * US + 129 * 11 * 2 * US);
        f.deliver_due(end, 80_000_000);
        assert_eq!(psr(&f) & (PSR_BO | PSR_EP), 0);
        assert_eq!(ecr(&f), (0, 0));
        assert_ne!(f.regs[F_IR] & IR_BO, 0, "bus-off status changed again");
        assert_eq!(f.bus_off_events, 1);
        request_transmit(&mut f);
        assert_eq!(f.tx_out.len(), 1, "transmits again");
    }
}
