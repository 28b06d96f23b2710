//! The shard's one timer: how long its loop may sleep, aimed at the earliest deadline and
//! rounded up to a [`TIMER_SLACK`] grid, so timers due within one slot share one wake-up.
//!
//! Owns: when a shard next wakes for its timers. Must not: decide what is due (the proxy core
//! and the shard's own queues say that), read the socket or sleep (the loop's
//! [`crate::poller::Poller::wait`] sleeps for what this says).
//!
//! The invariant that matters (issue 14): a deadline that has been served must not keep the
//! loop awake. The wait is computed afresh from the deadlines each turn (no sleep object that
//! stays "completed"), so once nothing is due the next wait is the idle park, not zero.

use std::time::{Duration, Instant};

/// Timer slack: a shard's wake-up for timers is rounded up to a multiple of this, so timers
/// due within one slot (retransmissions, Timer J/K/L/M clean-ups, ring timeouts) share one
/// wake-up. Under traffic most timers run earlier anyway, on a wake-up for a datagram.
pub const TIMER_SLACK: Duration = Duration::from_millis(10);

/// How long a shard sleeps when it has no deadline at all (nothing in flight).
pub const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// `d` rounded up to the next [`TIMER_SLACK`] boundary counted from `base`.
pub fn coarse(base: Instant, d: Instant) -> Instant {
    // In u64 nanoseconds (584 years), not `as_nanos`' u128, whose division is a libcall.
    const SLACK: u64 = TIMER_SLACK.as_nanos() as u64;
    let since = u64::try_from(d.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX);
    base + Duration::from_nanos(since.div_ceil(SLACK).saturating_mul(SLACK))
}

/// See the module docs.
#[derive(Debug, Clone, Copy)]
pub struct Alarm {
    base: Instant,
}

impl Alarm {
    /// An alarm whose grid is counted from `base`.
    pub fn new(base: Instant) -> Alarm {
        Alarm { base }
    }

    /// How long the loop may sleep at `now` when the earliest deadline is `deadline` (`None`:
    /// nothing is due): until the deadline's grid point (zero when that has passed), or
    /// [`IDLE_WAKE`].
    pub fn wait(&self, now: Instant, deadline: Option<Instant>) -> Duration {
        match deadline {
            Some(d) => coarse(self.base, d).saturating_duration_since(now),
            None => IDLE_WAKE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn timer_wake_ups_round_up_to_the_slack_grid() {
        let base = Instant::now();
        // Never early, at most one slot late, and timers within one slot share a wake-up.
        assert_eq!(coarse(base, base), base);
        assert_eq!(coarse(base, base + ms(1)), base + TIMER_SLACK);
        assert_eq!(coarse(base, base + ms(9)), base + TIMER_SLACK);
        assert_eq!(coarse(base, base + TIMER_SLACK), base + TIMER_SLACK);
        assert_eq!(coarse(base, base + ms(501)), base + ms(510));
        // A deadline already past (before `base`) is due at once.
        assert_eq!(coarse(base + ms(20), base), base + ms(20));
        for d in [1u64, 7, 499, 500, 32_000, 32_001] {
            let at = base + ms(d);
            let c = coarse(base, at);
            assert!(c >= at && c - at < TIMER_SLACK, "{d} ms -> {:?}", c - base);
        }
    }

    /// The shard loop's timer handling in miniature, on an injected clock: each turn asks the
    /// alarm how long to sleep given `deadline(now)`, and sleeps that long unless an input at
    /// one of `inputs` (offsets) comes first, as a datagram would. Returns the offsets of the
    /// wake-ups that were the alarm's (not an input's) within `span`, and the turns taken,
    /// giving up after `max_turns` (a spinning loop turns without time passing).
    fn drive(
        mut deadline: impl FnMut(Duration) -> Option<Duration>,
        inputs: &[Duration],
        span: Duration,
        max_turns: usize,
    ) -> (Vec<Duration>, usize) {
        let start = Instant::now();
        let alarm = Alarm::new(start);
        let mut now = Duration::ZERO;
        let mut wakes = Vec::new();
        let mut turns = 0;
        let mut inputs = inputs.iter().copied().peekable();
        while turns < max_turns && now < span {
            turns += 1;
            while inputs.peek().is_some_and(|&i| i <= now) {
                inputs.next();
            }
            let sleep = alarm.wait(start + now, deadline(now).map(|d| start + d));
            let next_input = inputs.peek().map_or(span, |&i| i.min(span));
            if now + sleep <= next_input {
                now += sleep;
                wakes.push(now);
            } else {
                now = next_input;
            }
        }
        (wakes, turns)
    }

    #[test]
    fn no_deadline_ever_means_no_wake_up() {
        let (wakes, turns) = drive(|_| None, &[], Duration::from_secs(600), 1000);
        assert!(wakes.is_empty(), "woke at {wakes:?}");
        assert!(turns <= 2, "{turns} turns in 10 idle minutes");
    }

    #[test]
    fn a_deadline_that_fires_and_leaves_nothing_is_one_wake_up() {
        // The issue-14 case: the last timer fires, nothing is left, and the loop must not
        // keep waking for the deadline it has served.
        let mut fired = false;
        let (wakes, turns) = drive(
            |now| {
                if now >= ms(25) {
                    fired = true;
                }
                (!fired).then_some(ms(25))
            },
            &[],
            Duration::from_secs(600),
            1000,
        );
        // 25 ms rounds up to the 30 ms grid point.
        assert_eq!(wakes, vec![ms(30)]);
        assert!(turns <= 3, "{turns} turns: the alarm spun after firing");
    }

    #[test]
    fn a_deadline_not_served_yet_is_a_zero_wait_not_a_sleep() {
        // Due (or past) means "poll and run the timers now".
        let base = Instant::now();
        let a = Alarm::new(base);
        assert_eq!(a.wait(base + ms(30), Some(base + ms(25))), Duration::ZERO);
        assert_eq!(a.wait(base + ms(40), Some(base + ms(25))), Duration::ZERO);
        assert_eq!(a.wait(base + ms(21), Some(base + ms(25))), ms(9));
        assert_eq!(a.wait(base, None), IDLE_WAKE);
    }

    #[test]
    fn a_deadline_moved_earlier_wakes_at_the_new_one() {
        // 500 ms until an input at 50 ms brings it to 100 ms; then nothing.
        let (wakes, turns) = drive(
            |now| match now {
                n if n < ms(50) => Some(ms(500)),
                n if n < ms(100) => Some(ms(100)),
                _ => None,
            },
            &[ms(50)],
            Duration::from_secs(10),
            100,
        );
        assert_eq!(wakes, vec![ms(100)]);
        assert!(turns <= 4, "{turns} turns");
    }

    #[test]
    fn a_deadline_moved_later_does_not_wake_at_the_old_one() {
        let (wakes, _) = drive(
            |now| match now {
                n if n < ms(50) => Some(ms(100)),
                n if n < ms(300) => Some(ms(300)),
                _ => None,
            },
            &[ms(50)],
            Duration::from_secs(10),
            100,
        );
        assert_eq!(wakes, vec![ms(300)]);
    }

    #[test]
    fn deadlines_within_one_slot_share_one_wake_up_on_the_grid() {
        // Three timers at 1, 4 and 9 ms: the earliest is re-aimed after each input, but all
        // three are one 10 ms slot, so the alarm wakes once, at 10 ms.
        let (wakes, _) = drive(
            |now| match now {
                n if n < ms(2) => Some(ms(1)),
                n if n < ms(5) => Some(ms(4)),
                n if n < ms(10) => Some(ms(9)),
                _ => None,
            },
            &[ms(2), ms(5)],
            Duration::from_secs(1),
            100,
        );
        assert_eq!(wakes, vec![ms(10)]);
    }

    #[test]
    fn the_idle_park_comes_round_again_after_it_fires() {
        let (wakes, turns) = drive(|_| None, &[], IDLE_WAKE * 3 + ms(1), 1000);
        assert_eq!(wakes, vec![IDLE_WAKE, IDLE_WAKE * 2, IDLE_WAKE * 3]);
        assert!(turns <= 5, "{turns} turns");
    }
}
