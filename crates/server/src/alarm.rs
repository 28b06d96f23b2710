//! The shard's one timer: a single tokio `Sleep`, moved when the earliest deadline moves and
//! rounded up to a [`TIMER_SLACK`] grid, so timers due within one slot share one wake-up.
//!
//! Owns: when a shard next wakes for its timers. Must not: decide what is due (the proxy core
//! and the shard's own queues say that) or read the socket.
//!
//! The invariant that matters (issue 14): once the sleep has completed it must be reset before
//! it is awaited again, whatever the next deadline is — a completed `Sleep` is ready on every
//! poll, and a shard that selects on it without a reset spins at 100 % of a core.

use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::time::Sleep;

/// Timer slack: a shard's wake-up for timers is rounded up to a multiple of this, so timers
/// due within one slot (retransmissions, Timer J/K/L/M clean-ups, ring timeouts) share one
/// wake-up. Under traffic most timers run earlier anyway, on a wake-up for a datagram.
pub const TIMER_SLACK: Duration = Duration::from_millis(10);

/// How long a shard sleeps when it has no deadline at all (nothing in flight).
pub const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// `d` rounded up to the next [`TIMER_SLACK`] boundary counted from `base`.
pub fn coarse(base: Instant, d: Instant) -> Instant {
    let slack = TIMER_SLACK.as_nanos();
    let since = d.saturating_duration_since(base).as_nanos();
    let slots = since.div_ceil(slack);
    base + Duration::from_nanos(u64::try_from(slots * slack).unwrap_or(u64::MAX))
}

/// See the module docs.
pub struct Alarm {
    sleep: Pin<Box<Sleep>>,
    /// The (coarse) deadline the sleep is set to; `None`: parked [`IDLE_WAKE`] ahead.
    armed: Option<Instant>,
    /// The sleep completed and has not been reset since.
    fired: bool,
    base: Instant,
}

impl Alarm {
    /// An alarm parked [`IDLE_WAKE`] ahead, on a grid counted from `base`.
    pub fn new(base: Instant) -> Alarm {
        Alarm {
            sleep: Box::pin(tokio::time::sleep_until(idle())),
            armed: None,
            fired: false,
            base,
        }
    }

    /// Aim at `deadline` (`None`: nothing is due). Resets the sleep only when the coarse
    /// deadline moved or the sleep has fired; returns whether it did.
    pub fn set(&mut self, deadline: Option<Instant>) -> bool {
        let d = deadline.map(|d| coarse(self.base, d));
        if !self.fired && d == self.armed {
            return false;
        }
        self.fired = false;
        self.armed = d;
        let at = d.map_or_else(idle, tokio::time::Instant::from_std);
        self.sleep.as_mut().reset(at);
        true
    }

    /// Completes when the armed deadline (or the idle wake) is reached. Cancel-safe: dropped
    /// before it completes, nothing changes.
    pub async fn fired(&mut self) {
        self.sleep.as_mut().await;
        self.fired = true;
    }

    /// The deadline the alarm is set to, rounded to the grid (`None` while parked).
    pub fn armed(&self) -> Option<Instant> {
        self.armed
    }
}

fn idle() -> tokio::time::Instant {
    tokio::time::Instant::now() + IDLE_WAKE
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant as TInstant;

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

    /// The shard loop's timer handling in miniature: each turn re-aims the alarm from
    /// `deadline(now)` and waits for it; an input at one of `inputs` (offsets) also ends a
    /// turn, as a datagram would. Returns the offsets of the alarm's wake-ups within `span`,
    /// giving up after `max_turns` turns (a spinning alarm turns without time passing).
    async fn drive(
        alarm: &mut Alarm,
        start: TInstant,
        mut deadline: impl FnMut(Duration) -> Option<Duration>,
        inputs: &[Duration],
        span: Duration,
        max_turns: usize,
    ) -> (Vec<Duration>, usize) {
        let mut wakes = Vec::new();
        let mut turns = 0;
        let mut inputs = inputs.iter().copied().peekable();
        while turns < max_turns {
            let now = TInstant::now() - start;
            if now >= span {
                break;
            }
            turns += 1;
            while inputs.peek().is_some_and(|&i| i <= now) {
                inputs.next();
            }
            alarm.set(deadline(now).map(|d| (start + d).into_std()));
            let next_input = inputs.peek().map_or(span, |&i| i.min(span));
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(start + next_input) => {}
                _ = alarm.fired() => wakes.push(TInstant::now() - start),
            }
        }
        (wakes, turns)
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_ever_means_no_wake_up() {
        let start = TInstant::now();
        let mut alarm = Alarm::new(start.into_std());
        let (wakes, turns) = drive(
            &mut alarm,
            start,
            |_| None,
            &[],
            Duration::from_secs(600),
            1000,
        )
        .await;
        assert!(wakes.is_empty(), "woke at {wakes:?}");
        assert!(turns <= 2, "{turns} turns in 10 idle minutes");
        assert_eq!(alarm.armed(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_that_fires_and_leaves_nothing_is_one_wake_up() {
        // The issue-14 case: the last timer fires, nothing is left, and the completed sleep
        // must not be awaited again without a reset.
        let start = TInstant::now();
        let mut alarm = Alarm::new(start.into_std());
        let mut fired = false;
        let (wakes, turns) = drive(
            &mut alarm,
            start,
            |now| {
                if now >= ms(25) {
                    fired = true;
                }
                (!fired).then_some(ms(25))
            },
            &[],
            Duration::from_secs(600),
            1000,
        )
        .await;
        // 25 ms rounds up to the 30 ms grid point.
        assert_eq!(wakes, vec![ms(30)]);
        assert!(turns <= 3, "{turns} turns: the alarm spun after firing");
        // And the idle park is an hour away, not "now".
        assert_eq!(alarm.armed(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_moved_earlier_wakes_at_the_new_one() {
        let start = TInstant::now();
        let mut alarm = Alarm::new(start.into_std());
        // 500 ms until an input at 50 ms brings it to 100 ms; then nothing.
        let (wakes, turns) = drive(
            &mut alarm,
            start,
            |now| match now {
                n if n < ms(50) => Some(ms(500)),
                n if n < ms(100) => Some(ms(100)),
                _ => None,
            },
            &[ms(50)],
            Duration::from_secs(10),
            100,
        )
        .await;
        assert_eq!(wakes, vec![ms(100)]);
        assert!(turns <= 4, "{turns} turns");
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_moved_later_does_not_wake_at_the_old_one() {
        let start = TInstant::now();
        let mut alarm = Alarm::new(start.into_std());
        let (wakes, _) = drive(
            &mut alarm,
            start,
            |now| match now {
                n if n < ms(50) => Some(ms(100)),
                n if n < ms(300) => Some(ms(300)),
                _ => None,
            },
            &[ms(50)],
            Duration::from_secs(10),
            100,
        )
        .await;
        assert_eq!(wakes, vec![ms(300)]);
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_within_one_slot_share_one_wake_up_on_the_grid() {
        let start = TInstant::now();
        let mut alarm = Alarm::new(start.into_std());
        // Three timers at 1, 4 and 9 ms: the earliest is re-armed after each input, but all
        // three are one 10 ms slot, so the alarm wakes once, at 10 ms.
        let (wakes, _) = drive(
            &mut alarm,
            start,
            |now| match now {
                n if n < ms(2) => Some(ms(1)),
                n if n < ms(5) => Some(ms(4)),
                n if n < ms(10) => Some(ms(9)),
                _ => None,
            },
            &[ms(2), ms(5)],
            Duration::from_secs(1),
            100,
        )
        .await;
        assert_eq!(wakes, vec![ms(10)]);
        // A re-aim within the same slot does not reset the sleep.
        let mut a = Alarm::new(start.into_std());
        assert!(a.set(Some((start + ms(21)).into_std())));
        assert!(!a.set(Some((start + ms(29)).into_std())));
        assert!(a.set(Some((start + ms(31)).into_std())));
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_park_is_re_armed_after_it_fires() {
        let start = TInstant::now();
        let mut alarm = Alarm::new(start.into_std());
        let (wakes, turns) = drive(
            &mut alarm,
            start,
            |_| None,
            &[],
            IDLE_WAKE * 3 + ms(1),
            1000,
        )
        .await;
        assert_eq!(wakes, vec![IDLE_WAKE, IDLE_WAKE * 2, IDLE_WAKE * 3]);
        assert!(turns <= 5, "{turns} turns");
    }
}
