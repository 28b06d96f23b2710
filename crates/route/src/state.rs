//! The interface routing asks for live state, and two pure helpers that let a caller fetch
//! that state from elsewhere (a shared store) in one batch.
//!
//! [`resolve`](crate::resolve) and [`explain`](crate::explain) never own live state: they ask a
//! [`LiveState`] (count a caller in a rate window, advance or read a distribution cursor, read
//! a target's counters). [`Live`] answers from this process's memory — the single box. A
//! cluster node answers from Redis, but a routing decision must not wait on the network per
//! question: it first runs the decision against a [`Recorder`], which answers neutrally and
//! writes down every question ([`Needs`]); fetches all answers in one round trip; and runs the
//! decision again against [`Answers`], which replays them. Both runs see the same table, call
//! and `now`, so they ask the same questions (a blocked caller only stops the second run
//! earlier). Leasing a slot on a target happens later, per hunt attempt, and is not part of
//! this trait's batch (see the server's admission gate).

use std::cell::RefCell;

use jiff::Timestamp;

use crate::live::{Live, RateVerdict, TargetStats};
use crate::table::{RateLimit, Target};

/// What routing needs from live state. Implemented by [`Live`] (in memory), [`Recorder`] and
/// [`Answers`]; a cluster's shared store is reached through the latter two.
pub trait LiveState {
    /// Count a call from `caller_key` to `number` in the caller's rate windows (`commit`), or
    /// only evaluate them (`!commit`, for explain), and tell whether it is over a limit.
    fn rate_check(
        &self,
        caller_key: u64,
        number: u64,
        limit: &RateLimit,
        now: Timestamp,
        commit: bool,
    ) -> RateVerdict;
    /// Advance a group's distribution cursor (round-robin), returning the value before.
    fn next_cursor(&self, key: &str) -> u64;
    /// Read a group's cursor without advancing it.
    fn peek_cursor(&self, key: &str) -> u64;
    /// A target's counters (active calls, calls started, last start).
    fn stats(&self, name: &str) -> TargetStats;
}

impl LiveState for Live {
    fn rate_check(
        &self,
        caller_key: u64,
        number: u64,
        limit: &RateLimit,
        now: Timestamp,
        commit: bool,
    ) -> RateVerdict {
        Live::rate_check(self, caller_key, number, limit, now, commit)
    }
    fn next_cursor(&self, key: &str) -> u64 {
        Live::next_cursor(self, key)
    }
    fn peek_cursor(&self, key: &str) -> u64 {
        Live::peek_cursor(self, key)
    }
    fn stats(&self, name: &str) -> TargetStats {
        Live::stats(self, name)
    }
}

/// One rate check a decision asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateQuestion {
    /// [`crate::Caller::key`] of the caller.
    pub caller_key: u64,
    /// The 400 number as `u64`.
    pub number: u64,
    /// The number's limits.
    pub limit: RateLimit,
    /// Whether the call is to be counted (`false`: only evaluated).
    pub commit: bool,
}

/// Everything one decision asked of live state, in the order asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Rate checks (at most one per decision today).
    pub rates: Vec<RateQuestion>,
    /// Group keys whose cursor was advanced.
    pub cursors: Vec<Box<str>>,
    /// Target names whose counters were read.
    pub stats: Vec<Box<str>>,
}

impl Needs {
    /// Whether the decision needs no live state at all.
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty() && self.cursors.is_empty() && self.stats.is_empty()
    }
}

/// A [`LiveState`] that answers neutrally (allowed, cursor 0, zero counters) and records
/// the questions. Pure: touches nothing.
#[derive(Debug, Default)]
pub struct Recorder {
    needs: RefCell<Needs>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder::default()
    }
    /// The questions asked so far.
    pub fn into_needs(self) -> Needs {
        self.needs.into_inner()
    }
}

impl LiveState for Recorder {
    fn rate_check(
        &self,
        caller_key: u64,
        number: u64,
        limit: &RateLimit,
        _now: Timestamp,
        commit: bool,
    ) -> RateVerdict {
        self.needs.borrow_mut().rates.push(RateQuestion {
            caller_key,
            number,
            limit: *limit,
            commit,
        });
        RateVerdict::Allowed
    }
    fn next_cursor(&self, key: &str) -> u64 {
        let mut n = self.needs.borrow_mut();
        if !n.cursors.iter().any(|k| &**k == key) {
            n.cursors.push(key.into());
        }
        0
    }
    fn peek_cursor(&self, _key: &str) -> u64 {
        0
    }
    fn stats(&self, name: &str) -> TargetStats {
        let mut n = self.needs.borrow_mut();
        if !n.stats.iter().any(|k| &**k == name) {
            n.stats.push(name.into());
        }
        TargetStats::default()
    }
}

/// The answers to a [`Needs`], fetched elsewhere; anything not in it falls back to `local`.
#[derive(Debug)]
pub struct Answers<'l> {
    /// Verdict of each rate question, same order as [`Needs::rates`].
    pub rates: Vec<RateVerdict>,
    /// Cursor value (before the advance) of each key of [`Needs::cursors`].
    pub cursors: Vec<(Box<str>, u64)>,
    /// Counters of each target of [`Needs::stats`].
    pub stats: Vec<(Box<str>, TargetStats)>,
    /// Asked for anything else (it should not be): this process's state.
    pub local: &'l Live,
    next_rate: RefCell<usize>,
}

impl<'l> Answers<'l> {
    /// Answers with a fallback.
    pub fn new(
        rates: Vec<RateVerdict>,
        cursors: Vec<(Box<str>, u64)>,
        stats: Vec<(Box<str>, TargetStats)>,
        local: &'l Live,
    ) -> Answers<'l> {
        Answers {
            rates,
            cursors,
            stats,
            local,
            next_rate: RefCell::new(0),
        }
    }
}

impl LiveState for Answers<'_> {
    fn rate_check(
        &self,
        caller_key: u64,
        number: u64,
        limit: &RateLimit,
        now: Timestamp,
        commit: bool,
    ) -> RateVerdict {
        let mut i = self.next_rate.borrow_mut();
        match self.rates.get(*i) {
            Some(v) => {
                *i += 1;
                *v
            }
            None => self
                .local
                .rate_check(caller_key, number, limit, now, commit),
        }
    }
    fn next_cursor(&self, key: &str) -> u64 {
        match self.cursors.iter().find(|(k, _)| &**k == key) {
            Some((_, c)) => *c,
            None => self.local.next_cursor(key),
        }
    }
    fn peek_cursor(&self, key: &str) -> u64 {
        match self.cursors.iter().find(|(k, _)| &**k == key) {
            Some((_, c)) => *c,
            None => self.local.peek_cursor(key),
        }
    }
    fn stats(&self, name: &str) -> TargetStats {
        match self.stats.iter().find(|(k, _)| &**k == name) {
            Some((_, s)) => *s,
            None => self.local.stats(name),
        }
    }
}

/// A slot on a target, leased for one call. [`Live`] is the in-memory implementation; a
/// cluster's is asynchronous (the server's admission gate waits for it without blocking).
pub trait Leases {
    /// Take a slot on `target` for `call_id` if it is under its `max_concurrent`.
    fn lease(&self, target: &Target, call_id: &str, now: Timestamp) -> bool;
    /// Give back the slot `call_id` holds on `target`.
    fn release(&self, target: &str, call_id: &str);
}

impl Leases for Live {
    fn lease(&self, target: &Target, _call_id: &str, now: Timestamp) -> bool {
        self.try_acquire(target, now)
    }
    fn release(&self, target: &str, _call_id: &str) {
        self.release_name(target)
    }
}
