//! Wake-up coalescing (interrupt moderation for a shard's socket).
//!
//! At a few thousand calls per second a shard finds one or two datagrams per wake-up: it
//! sleeps in `epoll_wait`, the next datagram wakes it, it handles it, sleeps again. Each of
//! those wake-ups costs a context switch in and out and an `epoll_wait` round, which is a
//! large part of a call's CPU (docs/PERFORMANCE.md). A NIC solves the same problem with
//! interrupt moderation; this does it in software: after a wake-up that found only a few
//! datagrams, the shard pauses for a short window (tens to a few hundred µs) before it
//! polls again, so that the next wake-up finds everything that arrived meanwhile, and
//! datagrams arriving during the pause do not wake anyone.
//!
//! The window is bounded (the configured `server.coalesce_us`, at most 1 ms), so it adds at
//! most that much to each hop's latency. It is adaptive in the way that matters:
//! - a wake-up that found many datagrams is already batched: no pause (under heavy load the
//!   shard never pauses, so it adds no latency there);
//! - a pause that gathered at most one datagram did not pay (the traffic is too sparse: the
//!   pause cost a timer wake-up and saved none), so pausing backs off for 2, 4, … 64 turns;
//! - a wake-up by a timer or an inbox message (no datagram) never pauses, so a quiet server
//!   stays asleep.
//!
//! The decision is pure (this type); the sleep itself is the caller's.

use std::time::Duration;

/// A wake-up that found at least this many datagrams is batched already: no pause after it.
pub const BUSY: usize = 8;
/// Longest back-off, in turns, after pauses that gathered nothing.
const MAX_SKIP: u32 = 64;
/// Longest window accepted (the config refuses longer ones).
pub const MAX_WINDOW: Duration = hotline_config::MAX_COALESCE;

/// The pause decision of one shard.
#[derive(Debug, Clone)]
pub struct Coalesce {
    window: Duration,
    /// Whether the previous turn ended with a pause (so this turn's count tells if it paid).
    paused: bool,
    /// Consecutive pauses that did not pay.
    misses: u32,
    /// Turns left before pausing is tried again.
    skip: u32,
}

impl Coalesce {
    /// `window` zero turns coalescing off.
    pub fn new(window: Duration) -> Coalesce {
        Coalesce {
            window: window.min(MAX_WINDOW),
            paused: false,
            misses: 0,
            skip: 0,
        }
    }

    /// A new window (a reload changed `server.coalesce_us`); the back-off state stays.
    pub fn set_window(&mut self, window: Duration) {
        self.window = window.min(MAX_WINDOW);
    }

    /// The configured window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// End of a loop turn that read `found` datagrams from the socket (0 when it woke for
    /// a timer or an inbox message): how long to pause before polling again, if at all.
    pub fn after_turn(&mut self, found: usize) -> Option<Duration> {
        if self.window.is_zero() {
            return None;
        }
        if self.paused {
            self.paused = false;
            if found <= 1 {
                // The pause gathered nothing worth it: back off, doubling.
                self.misses = (self.misses + 1).min(6);
                self.skip = (1u32 << self.misses).min(MAX_SKIP);
            } else {
                self.misses = 0;
                self.skip = 0;
            }
        }
        if found == 0 || found >= BUSY {
            return None;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return None;
        }
        self.paused = true;
        Some(self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_micros(200);

    #[test]
    fn off_never_pauses() {
        let mut c = Coalesce::new(Duration::ZERO);
        for found in [0, 1, 2, 7, 8, 32] {
            assert_eq!(c.after_turn(found), None);
        }
    }

    #[test]
    fn few_datagrams_pause_many_and_none_do_not() {
        let mut c = Coalesce::new(W);
        // A timer or inbox wake-up: stay asleep.
        assert_eq!(c.after_turn(0), None);
        // Busy: batched already.
        assert_eq!(c.after_turn(BUSY), None);
        assert_eq!(c.after_turn(32), None);
        // Sparse: pause.
        assert_eq!(c.after_turn(1), Some(W));
        // The pause gathered 3: it paid; pause again after this few-datagram turn.
        assert_eq!(c.after_turn(3), Some(W));
        // After a pause that found a full batch: no pause, and no back-off either.
        assert_eq!(c.after_turn(20), None);
        assert_eq!(c.after_turn(2), Some(W));
    }

    #[test]
    fn pauses_that_gather_nothing_back_off_exponentially_and_recover() {
        let mut c = Coalesce::new(W);
        assert_eq!(c.after_turn(1), Some(W));
        // The pause found one datagram: missed; skip 2 turns.
        assert_eq!(c.after_turn(1), None);
        assert_eq!(c.after_turn(1), None);
        assert_eq!(c.after_turn(1), Some(W));
        // Missed again: skip 4.
        let skipped = (0..4).filter(|_| c.after_turn(1).is_none()).count();
        assert_eq!(skipped, 4);
        assert_eq!(c.after_turn(1), Some(W));
        // This pause paid (4 datagrams): pausing resumes at once.
        assert_eq!(c.after_turn(4), Some(W));
        assert_eq!(c.after_turn(2), Some(W));
    }

    #[test]
    fn back_off_is_bounded() {
        let mut c = Coalesce::new(W);
        let mut pauses = 0;
        for _ in 0..10_000 {
            if c.after_turn(1).is_some() {
                pauses += 1;
            }
        }
        // At most one pause per 65 turns once fully backed off, but never none.
        assert!((10_000 / 65..=10_000 / 50).contains(&pauses), "{pauses}");
    }

    #[test]
    fn window_is_capped() {
        let c = Coalesce::new(Duration::from_secs(1));
        assert_eq!(c.window(), MAX_WINDOW);
    }
}
