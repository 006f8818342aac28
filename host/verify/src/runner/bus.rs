//! Bus steps: other ECUs' load on the bus, and whether the gauge still takes every broadcast
//! frame (its status line's `bc=` count against the frames the rig sent).

use std::time::{Duration, Instant};

use gauge_logic::telemetry::StatusLine;
use rig_instruments::CanBusFault;

use crate::{ecu::BUS_BIT_RATE, report::Measurement, session::*};

/// How long a broadcast frame may take from the rig's send to the gauge's count, plus the
/// status line's own time on the 115200 baud link (about 7 ms) before the rig has it: frames
/// sent this close to a status line's arrival are counted in it or not, either way.
const COUNT_EDGE: Duration = Duration::from_millis(30);

/// The load the adapter must have put on the bus for a verdict at the share asked for.
const LOAD_DELIVERED_AT_LEAST: f64 = 0.9;

impl Runner<'_> {
    pub(crate) fn bus_load(&mut self, percent: u32) -> StepResult {
        self.rig.ecu.set_bus_load(percent);
        StepResult::pass()
    }

    pub(crate) fn bus_fault(&mut self, fault: CanBusFault) -> StepResult {
        let Some(faults) = self.rig.can_bus_faults.as_mut() else {
            return StepResult::error(format!(
                "this bench cannot put a fault ({}) on the CAN bus: the emulated board can (rig-config/emulated.toml); on hardware, open CANH/CANL or the adapter's lines by hand",
                fault.name()
            ));
        };
        match faults.set_can_bus_fault(fault) {
            Ok(()) => StepResult::pass(),
            Err(e) => StepResult::error(e),
        }
    }

    pub(crate) fn expect_broadcast_received(
        &mut self,
        over: Duration,
        max_lost: u64,
    ) -> StepResult {
        let emulation_before = self.rig.emulation_stats();
        let first = match self.counted_status() {
            Ok(l) => l,
            Err(r) => return r,
        };
        let load_before = self.rig.ecu.frames_sent();
        let load_percent = self.rig.ecu.bus_load_percent();
        self.sleep(over.saturating_sub(Duration::from_millis(1000)));
        if self.interrupted() {
            return StepResult::error("interrupted");
        }
        let last = match self.counted_status() {
            Ok(l) => l,
            Err(r) => return r,
        };
        let ((a0, l0, c0), (a1, l1, c1)) = (first, last);
        if l1.boot_count != l0.boot_count || l1.uptime_ms < l0.uptime_ms {
            return StepResult::fail(
                Vec::new(),
                format!("the board restarted within the window (boots {} -> {}, up {} -> {} ms): its broadcast count started again", l0.boot_count, l1.boot_count, l0.uptime_ms, l1.uptime_ms),
            );
        }
        let counted = u64::from(c1.wrapping_sub(c0));
        // Surely counted: sent after the first line arrived and well before the last did.
        // Possibly counted: sent from just before the first line to the last one's arrival.
        let before = |t: Instant| t.checked_sub(COUNT_EDGE).unwrap_or(t);
        let surely = self.rig.ecu.broadcasts_sent_between(a0, before(a1));
        let possibly = self.rig.ecu.broadcasts_sent_between(before(a0), a1);
        let window_s = (a1 - a0).as_secs_f64();
        let load_bits = self.rig.ecu.frames_sent().load_bits - load_before.load_bits;
        let load_achieved = load_bits as f64 / (f64::from(BUS_BIT_RATE) * window_s) * 100.0;
        let lost = match frames_lost(counted, surely, possibly) {
            Ok(lost) => lost,
            Err(excess) => {
                return StepResult::error(format!(
                    "the gauge counted {counted} broadcast frames in the window, {excess} more than the {possibly} the rig sent: another node sends the broadcast ID, or the firmware's count is wrong"
                ))
            }
        };
        let mut m = vec![
            Measurement::limited(
                "broadcast_lost",
                lost as f64,
                "frames",
                None,
                Some(max_lost as f64),
            ),
            Measurement::info("broadcast_frames_sent", surely as f64, "frames"),
            Measurement::info("broadcast_frames_counted", counted as f64, "frames"),
            Measurement::info("bus_load", load_achieved, "%"),
        ];
        if let (Some(a), Some(b)) = (emulation_before, self.rig.emulation_stats()) {
            let wall = b.wall_s - a.wall_s;
            let rtf = if wall > 0.0 {
                (b.virtual_s - a.virtual_s) / wall
            } else {
                0.0
            };
            m.push(Measurement::info(
                "emulation_real_time_factor",
                rtf,
                "ratio",
            ));
            m.push(Measurement::info("emulation_lag", b.lag_ms, "ms"));
            m.push(Measurement::info(
                "fdcan_fifo_overruns",
                (b.can_fifo_overruns - a.can_fifo_overruns) as f64,
                "frames",
            ));
            m.push(Measurement::info(
                "fdcan_frames_filtered",
                (b.can_frames_filtered - a.can_frames_filtered) as f64,
                "frames",
            ));
            m.push(Measurement::info(
                "fdcan_frames_not_taken",
                (b.can_frames_dropped - a.can_frames_dropped) as f64,
                "frames",
            ));
            if b.lag_ms > COUNT_EDGE.as_secs_f64() * 1000.0 {
                return StepResult {
                    measurements: m,
                    ..StepResult::error(format!(
                        "the emulated board is {:.0} ms behind the bench (real-time factor {rtf:.3} over the window): frames it has not run yet would count as lost, so there is no verdict on the gauge. Run on a machine with a core free for the emulator",
                        b.lag_ms
                    ))
                };
            }
        }
        if load_percent > 0 && load_achieved < f64::from(load_percent) * LOAD_DELIVERED_AT_LEAST {
            return StepResult {
                measurements: m,
                ..StepResult::error(format!(
                    "the CAN adapter put {load_achieved:.1} % of the bus in load frames, not the {load_percent} % asked for: no verdict at that load (an slcan adapter acknowledges every frame; try SocketCAN)",
                ))
            };
        }
        let r = StepResult::judged(m);
        let said = format!(
            "{counted} of {surely} broadcast frames taken over {window_s:.1} s at {load_achieved:.0} % bus load"
        );
        r.with_message(said)
    }

    /// The next status line with its arrival time and broadcast count.
    fn counted_status(&mut self) -> Result<(Instant, StatusLine, u32), StepResult> {
        let line = self.next_status()?;
        let at = Instant::now();
        match line.broadcasts {
            Some(n) => Ok((at, line, n)),
            None => Err(StepResult::error(format!(
                "the firmware's status line has no bc= broadcast count ({line}): the firmware predates it; build and flash the current firmware"
            ))),
        }
    }
}

/// Frames lost, from the gauge's count over a window and the frames the rig sent that it
/// surely (`surely`) or possibly (`possibly`, the window's edges included) had to count; a
/// count above what the rig could have sent is `Err` with the excess.
fn frames_lost(counted: u64, surely: u64, possibly: u64) -> Result<u64, u64> {
    if counted > possibly {
        Err(counted - possibly)
    } else {
        Ok(surely.saturating_sub(counted))
    }
}

#[cfg(test)]
mod tests {
    use super::frames_lost;

    #[test]
    fn frames_at_the_windows_edges_count_either_way() {
        assert_eq!(frames_lost(300, 300, 306), Ok(0));
        assert_eq!(frames_lost(303, 300, 306), Ok(0));
        assert_eq!(frames_lost(306, 300, 306), Ok(0));
    }

    #[test]
    fn a_frame_the_gauge_surely_had_is_lost_when_not_counted() {
        assert_eq!(frames_lost(299, 300, 306), Ok(1));
        assert_eq!(frames_lost(0, 300, 306), Ok(300));
    }

    #[test]
    fn a_count_above_what_was_sent_is_refused() {
        assert_eq!(frames_lost(310, 300, 306), Err(4));
    }
}
