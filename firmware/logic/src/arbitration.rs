//! Which OBD-II replies are readings: only answers to the gauge's own request, within the
//! response window after it, from the one ECU the gauge follows.
//!
//! Why each rule (the contract table in the crate docs lists them):
//! - A reply counts only within [`GaugeTiming::obd_response_window_ms`] of the gauge's own
//!   request: ISO 15765-4 gives an ECU 50 ms (P2CAN) to answer, so a later reply answers someone
//!   else (a scan tool, a data logger) or nobody.
//! - One ECU is followed: several ECUs may answer a functional request with their own values, and
//!   a needle that follows whichever came last flips between them. The engine ECU (0x7E8, the
//!   first response ID of ISO 15765-4) is taken as soon as it answers; without it, the lowest
//!   reply ID heard in the window is chosen when the window closes, so the order in which the ECUs
//!   answer never decides.
//! - The followed ECU is kept while it answers; after [`GaugeTiming::obd_ecu_lost_after`]
//!   requests in a row without its answer it is given up (one lost reply is a busy bus, three
//!   are an ECU that is gone) and the next window chooses again.
//! - One reply per request from the followed ECU: a second one in the same window (to another
//!   tester's request) does not move the needle again.
//!
//! [`GaugeTiming::obd_response_window_ms`]: crate::gauge::GaugeTiming::obd_response_window_ms
//! [`GaugeTiming::obd_ecu_lost_after`]: crate::gauge::GaugeTiming::obd_ecu_lost_after

use crate::{obd, MilliCelsius};

/// The OBD-II side of the gauge's source arbitration.
#[derive(Clone, Debug)]
pub struct ObdArbiter {
    window_ms: u64,
    lost_after: u8,
    /// When the gauge last sent its request.
    request_ms: Option<u64>,
    followed: Option<u32>,
    /// The followed ECU answered the current request.
    answered: bool,
    /// Requests in a row the followed ECU left unanswered.
    missed: u8,
    /// While no ECU is followed: the best reply of the current window (lowest ID).
    candidate: Option<(u32, MilliCelsius)>,
}

impl ObdArbiter {
    pub const fn new(window_ms: u64, lost_after: u8) -> Self {
        Self {
            window_ms,
            lost_after,
            request_ms: None,
            followed: None,
            answered: false,
            missed: 0,
            candidate: None,
        }
    }

    /// The ECU whose replies move the needle, by its reply ID.
    pub fn followed(&self) -> Option<u32> {
        self.followed
    }

    fn in_window(&self, now_ms: u64) -> bool {
        self.request_ms
            .is_some_and(|r| now_ms >= r && now_ms - r <= self.window_ms)
    }

    fn follow(&mut self, id: u32) {
        self.followed = Some(id);
        self.answered = true;
        self.missed = 0;
        self.candidate = None;
    }

    /// The gauge sends its request at `now_ms`: a new window opens. Returns the reading the
    /// previous window chose, if it closed with one still undecided.
    pub fn on_request(&mut self, now_ms: u64) -> Option<MilliCelsius> {
        let chosen = self.close_window();
        if self.followed.is_some() && !self.answered {
            self.missed = self.missed.saturating_add(1);
            if self.missed >= self.lost_after {
                self.followed = None;
                self.missed = 0;
            }
        }
        self.answered = false;
        self.candidate = None;
        self.request_ms = Some(now_ms);
        chosen
    }

    /// A positive PID 0x5C reply from `id` at `now_ms`: the reading it gives now, if it counts.
    pub fn on_reply(&mut self, now_ms: u64, id: u32, t: MilliCelsius) -> Option<MilliCelsius> {
        if !self.in_window(now_ms) {
            return None;
        }
        match self.followed {
            Some(f) if f == id && !self.answered => {
                self.answered = true;
                self.missed = 0;
                Some(t)
            }
            Some(_) => None,
            None if id == *obd::RESPONSE_IDS.start() => {
                self.follow(id);
                Some(t)
            }
            None => {
                if self.candidate.is_none_or(|(best, _)| id < best) {
                    self.candidate = Some((id, t));
                }
                None
            }
        }
    }

    /// Time passes: when the window has closed without a followed ECU, its best reply is chosen
    /// and its reading returned.
    pub fn on_tick(&mut self, now_ms: u64) -> Option<MilliCelsius> {
        if self.in_window(now_ms) {
            return None;
        }
        self.close_window()
    }

    fn close_window(&mut self) -> Option<MilliCelsius> {
        let (id, t) = self.candidate.take()?;
        if self.followed.is_some() {
            return None;
        }
        self.follow(id);
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T90: MilliCelsius = MilliCelsius::from_degrees(90);
    const T60: MilliCelsius = MilliCelsius::from_degrees(60);
    const T120: MilliCelsius = MilliCelsius::from_degrees(120);

    fn arbiter() -> ObdArbiter {
        ObdArbiter::new(50, 3)
    }

    #[test]
    fn no_reply_counts_before_a_request_or_after_its_window() {
        let mut a = arbiter();
        assert_eq!(a.on_reply(10, 0x7E8, T90), None, "nobody asked");
        assert_eq!(a.on_request(100), None);
        assert_eq!(a.on_reply(151, 0x7E8, T90), None, "51 ms after the request");
        assert_eq!(a.on_reply(99, 0x7E8, T90), None, "before the request");
        assert_eq!(a.on_reply(150, 0x7E8, T90), Some(T90), "at 50 ms");
    }

    #[test]
    fn the_engine_wins_at_once_and_is_kept_whatever_the_order() {
        let mut a = arbiter();
        a.on_request(0);
        assert_eq!(
            a.on_reply(3, 0x7E9, T60),
            None,
            "a candidate, not yet a reading"
        );
        assert_eq!(a.on_reply(5, 0x7E8, T90), Some(T90));
        assert_eq!(a.on_reply(7, 0x7EA, T120), None);
        assert_eq!(a.on_tick(60), None, "the window chose nothing more");
        for k in 1..50u64 {
            let t0 = k * 100;
            a.on_request(t0);
            // The others answer first every other time, and the engine still decides.
            if k % 2 == 0 {
                assert_eq!(a.on_reply(t0 + 1, 0x7E9, T60), None);
            }
            assert_eq!(a.on_reply(t0 + 10, 0x7E8, T90), Some(T90));
            assert_eq!(a.on_reply(t0 + 12, 0x7E9, T60), None);
            assert_eq!(
                a.on_reply(t0 + 13, 0x7E8, T120),
                None,
                "one reply per request"
            );
            assert_eq!(a.on_tick(t0 + 60), None);
        }
        assert_eq!(a.followed(), Some(0x7E8));
    }

    #[test]
    fn without_the_engine_the_lowest_id_of_the_window_is_chosen_when_it_closes() {
        let mut a = arbiter();
        a.on_request(0);
        assert_eq!(a.on_reply(2, 0x7EA, T120), None);
        assert_eq!(a.on_reply(9, 0x7E9, T60), None);
        assert_eq!(a.on_tick(50), None, "still open");
        assert_eq!(a.on_tick(51), Some(T60));
        assert_eq!(a.followed(), Some(0x7E9));
        a.on_request(100);
        assert_eq!(a.on_reply(101, 0x7EA, T120), None);
        assert_eq!(a.on_reply(120, 0x7E9, T60), Some(T60));
        // The engine appearing later does not take over from a followed ECU that answers.
        a.on_request(200);
        assert_eq!(a.on_reply(201, 0x7E8, T90), None);
        assert_eq!(a.on_reply(202, 0x7E9, T60), Some(T60));
    }

    #[test]
    fn a_followed_ecu_is_given_up_after_three_unanswered_requests() {
        let mut a = arbiter();
        a.on_request(0);
        a.on_reply(5, 0x7E9, T60);
        a.on_tick(60);
        assert_eq!(a.followed(), Some(0x7E9));
        // 0x7E9 goes silent; 0x7EA keeps answering but does not count until 0x7E9 is given up.
        for k in 1..=3u64 {
            a.on_request(k * 100);
            assert_eq!(a.followed(), Some(0x7E9), "request {k}");
            assert_eq!(a.on_reply(k * 100 + 5, 0x7EA, T120), None);
        }
        assert_eq!(a.on_request(400), None);
        assert_eq!(a.followed(), None, "three requests unanswered");
        a.on_reply(405, 0x7EA, T120);
        assert_eq!(a.on_tick(451), Some(T120));
        assert_eq!(a.followed(), Some(0x7EA));
    }

    #[test]
    fn a_window_that_closes_at_the_next_request_still_chooses() {
        let mut a = ObdArbiter::new(200, 3);
        a.on_request(0);
        a.on_reply(5, 0x7EB, T60);
        assert_eq!(a.on_request(100), Some(T60));
        assert_eq!(a.followed(), Some(0x7EB));
    }
}
