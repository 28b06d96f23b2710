//! Live routing state shared by the nodes of a Hotline cluster, in Redis.
//!
//! Owns: the Redis connection (a `redis` crate `ConnectionManager`: one multiplexed
//! connection, reconnecting by itself), the Lua scripts in `lua/` (loaded once, called by
//! SHA1 with EVALSHA, reloaded on NOSCRIPT), the key layout, the leases this node holds and
//! their renewal, the node heartbeat, Redis health.
//! Must not: know SIP, decide routes (it answers the questions `hotline_route::Recorder`
//! wrote down), or be called from a shard's synchronous loop (every call is `async`; the
//! server runs it on a task and feeds the answer back to the shard).
//!
//! One routing decision costs one pipelined round trip ([`RedisState::decide`]): the
//! duplicate-INVITE claim, the rate windows, the round-robin cursors and the targets'
//! counters travel together. A target slot costs one more per hunt attempt
//! ([`RedisState::lease`]). Leases are sorted sets (call-id -> expiry), never INCR/DECR:
//! a dead node's slots expire by themselves, a live node renews its own.
//!
//! # Layout
//! - [`keys`]: the key names.
//! - `scripts`: the Lua scripts (`lua/*.lua`), EVALSHA with reload on NOSCRIPT.
//! - [`RedisState`]: the client: decide (with the trunk limits), lease, release, renew,
//!   heartbeat, nodes, health (here); publish / end / take over answered calls (`dialogs`);
//!   prepaid slices and settlement (`prepaid`).
//! - `types`: the questions and answers (plain data); `sentinel`: Redis behind Sentinel.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hotline_route::{RateVerdict, TargetStats};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, Pipeline, ServerErrorKind, Value};

mod dialogs;
pub mod keys;
mod prepaid;
mod scripts;
pub mod sentinel;
mod types;

pub use types::*;

use scripts::Scripts;

/// Errors talking to Redis. Every one means "Redis is down for this decision": the caller
/// applies its `[cluster.redis_down]` policy.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The client could not be built from the URL.
    #[error("bad Redis URL {url:?}: {message}")]
    Url {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// A command failed (connection refused or dropped, server error).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No answer within the configured timeout.
    #[error("redis: no answer within {0:?}")]
    Timeout(Duration),
    /// An answer of an unexpected shape.
    #[error("redis: unexpected reply to {0}")]
    Reply(&'static str),
    /// Behind Sentinel, and no sentinel has named the primary yet.
    #[error("redis: no primary known yet (no sentinel answered)")]
    NoPrimary,
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Redis URL.
    pub url: String,
    /// This node's name.
    pub node: String,
    /// Lease lifetime of a target slot.
    pub lease: Duration,
    /// Longest wait for one round trip.
    pub timeout: Duration,
}

/// What a Redis round trip was for (counted per kind: [`RedisState::round_trips`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trip {
    /// A new call's decision (claim, trunk limits, rates, cursors, counters).
    Decide,
    /// A target slot for a hunt attempt.
    Lease,
    /// Giving a slot back.
    Release,
    /// Publishing an answered call.
    Publish,
    /// Claiming the end of an answered call.
    End,
    /// A prepaid slice reserved or a prepaid call settled.
    Prepaid,
    /// Heartbeats, renewals, the node list, the ended-elsewhere check, pings.
    Background,
}

impl Trip {
    /// Every kind, in the order of [`RedisState::round_trips`].
    pub const ALL: [Trip; 7] = [
        Trip::Decide,
        Trip::Lease,
        Trip::Release,
        Trip::Publish,
        Trip::End,
        Trip::Prepaid,
        Trip::Background,
    ];
    /// Its label.
    pub fn name(self) -> &'static str {
        match self {
            Trip::Decide => "decide",
            Trip::Lease => "lease",
            Trip::Release => "release",
            Trip::Publish => "publish",
            Trip::End => "end",
            Trip::Prepaid => "prepaid",
            Trip::Background => "background",
        }
    }
}

struct Inner {
    /// The connection to Redis (to the primary the sentinels named, behind Sentinel; `None`
    /// until one did).
    conn: Mutex<Option<ConnectionManager>>,
    /// Behind Sentinel: the sentinels, and the primary's address in use.
    sentinel: Option<(hotline_config::SentinelUrl, Mutex<Option<String>>)>,
    conn_cfg: ConnectionManagerConfig,
    /// Round trips per [`Trip`] (resends after NOSCRIPT included).
    trips: [AtomicU64; 7],
    scripts: Scripts,
    opts: Options,
    up: AtomicBool,
    errors: AtomicU64,
    /// (target, call-id) leases this node holds: renewed until released.
    held: Mutex<HashSet<(Box<str>, Box<str>)>>,
}

/// The Redis side of a cluster node. Cheap to clone (one shared connection).
#[derive(Clone)]
pub struct RedisState {
    inner: Arc<Inner>,
    /// A connection of this clone's own ([`RedisState::own_connection`]), else the shared one.
    own: Option<ConnectionManager>,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("node", &self.inner.opts.node)
            .field("up", &self.is_up())
            .finish()
    }
}

/// How long a node's heartbeat lives: it is dead this long after its last one.
pub const NODE_TTL: Duration = Duration::from_secs(3);
/// How often [`RedisState::maintain`] beats and renews (at most; a third of the lease if
/// that is shorter).
pub const BEAT_EVERY: Duration = Duration::from_secs(1);
/// How long the "ended elsewhere" mark of a call lives (its owner checks every few seconds).
pub const ENDED_MARK_TTL: Duration = Duration::from_secs(600);
/// How long a prepaid call's settlement mark lives (longer than any retry of a settlement).
pub const SETTLED_MARK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an INVITE claim lives (longer than a carrier's retries of it).
pub const CLAIM_TTL: Duration = Duration::from_secs(300);

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RedisState {
    /// Build the client. Does not connect (the first request does, and every request after a
    /// failure reconnects), so a node starts while Redis is down. Must be called inside a
    /// tokio runtime; requests may come from any runtime.
    pub fn new(opts: Options) -> Result<RedisState, ClusterError> {
        let cfg = ConnectionManagerConfig::new()
            .set_response_timeout(Some(opts.timeout))
            .set_connection_timeout(Some(opts.timeout.max(Duration::from_millis(200))))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let (conn, sentinel) = match hotline_config::SentinelUrl::parse(&opts.url) {
            Some(Ok(u)) => (None, Some((u, Mutex::new(None)))),
            Some(Err(message)) => {
                return Err(ClusterError::Url {
                    url: opts.url.clone(),
                    message,
                })
            }
            None => {
                let client =
                    redis::Client::open(opts.url.as_str()).map_err(|e| ClusterError::Url {
                        url: opts.url.clone(),
                        message: e.to_string(),
                    })?;
                (
                    Some(ConnectionManager::new_lazy_with_config(
                        client,
                        cfg.clone(),
                    )?),
                    None,
                )
            }
        };
        Ok(RedisState {
            own: None,
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                sentinel,
                conn_cfg: cfg,
                scripts: Scripts::new(),
                opts,
                up: AtomicBool::new(false),
                errors: AtomicU64::new(0),
                trips: Default::default(),
                held: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.inner.opts.node
    }

    /// Whether the last round trip succeeded.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// Failed round trips since start.
    pub fn errors(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    /// Round trips so far, per kind (order of [`Trip::ALL`]).
    pub fn round_trips(&self) -> [u64; 7] {
        let t = &self.inner.trips;
        std::array::from_fn(|i| t[i].load(Ordering::Relaxed))
    }

    /// Leases this node holds.
    pub fn held(&self) -> usize {
        lock(&self.inner.held).len()
    }

    fn note<T>(&self, r: Result<T, ClusterError>) -> Result<T, ClusterError> {
        match &r {
            Ok(_) => {
                if !self.inner.up.swap(true, Ordering::Relaxed) {
                    tracing::info!(node = %self.node(), "redis is up");
                }
            }
            Err(e) => {
                self.inner.errors.fetch_add(1, Ordering::Relaxed);
                if self.inner.up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(node = %self.node(), error = %e, "redis is down: [cluster.redis_down] policy applies");
                }
            }
        }
        r
    }

    /// Run a pipeline within the timeout; on NOSCRIPT (a restarted or flushed Redis) load
    /// the scripts and run it once more.
    async fn run(&self, pipe: &Pipeline, trip: Trip) -> Result<Vec<Value>, ClusterError> {
        let t = self.inner.opts.timeout;
        let count = || {
            let i = Trip::ALL.iter().position(|k| *k == trip).unwrap_or(5);
            self.inner.trips[i].fetch_add(1, Ordering::Relaxed);
        };
        let Some(mut conn) = self.conn() else {
            return self.note(Err(ClusterError::NoPrimary));
        };
        let once = async {
            count();
            match pipe.query_async::<Vec<Value>>(&mut conn).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    self.inner.scripts.load(&mut conn).await?;
                    count();
                    Ok(pipe.query_async::<Vec<Value>>(&mut conn).await?)
                }
                r => Ok(r?),
            }
        };
        let r = match tokio::time::timeout(t, once).await {
            Ok(r) => r,
            Err(_) => Err(ClusterError::Timeout(t)),
        };
        self.note(r)
    }

    /// Everything one routing decision needs, in one pipelined round trip.
    pub async fn decide(&self, q: Decide<'_>) -> Result<Decided, ClusterError> {
        let s = &self.inner.scripts;
        let mut pipe = redis::pipe();
        if let Some(k) = q.invite {
            pipe.invoke_script(
                s.dedup
                    .key(keys::invite(&k.call_id, &k.from_tag, k.cseq))
                    .arg(self.node())
                    .arg(ms(CLAIM_TTL))
                    .arg(keys::NODE_PREFIX),
            );
        }
        if let Some(t) = q.trunk {
            if let Some(cps) = t.max_cps {
                pipe.invoke_script(s.cps.key(keys::trunk_cps(t.name)).arg(q.now_ms).arg(cps));
            }
            if let Some(max) = t.max_calls {
                let name = keys::trunk_lease_name(t.name);
                pipe.invoke_script(
                    s.lease
                        .key(keys::lease(&name))
                        .key(keys::target_stats(&name))
                        .arg(q.now_ms)
                        .arg(ms(self.inner.opts.lease))
                        .arg(t.call_id)
                        .arg(max),
                );
            }
        }
        for r in &q.needs.rates {
            let w = |w: Option<hotline_route::RateWindow>| {
                w.map_or((0, 0), |w| (ms(w.window), i64::from(w.calls)))
            };
            let (w1, c1) = w(r.limit.per_caller_number);
            let (w2, c2) = w(r.limit.per_caller);
            pipe.invoke_script(
                s.rate
                    .key(keys::rate(r.caller_key, r.number))
                    .key(keys::rate(r.caller_key, 0))
                    .arg(q.now_ms)
                    .arg(ms(r.limit.block_for))
                    .arg(w1)
                    .arg(c1)
                    .arg(w2)
                    .arg(c2)
                    .arg(if r.commit { "1" } else { "0" }),
            );
        }
        if !q.needs.cursors.is_empty() {
            let mut inv = s.cursor.prepare_invoke();
            for c in &q.needs.cursors {
                inv.key(keys::cursor(c));
            }
            pipe.invoke_script(&inv);
        }
        if !q.needs.stats.is_empty() {
            let mut inv = s.stats.prepare_invoke();
            for t in &q.needs.stats {
                inv.key(keys::lease(t)).key(keys::target_stats(t));
            }
            inv.arg(q.now_ms);
            pipe.invoke_script(&inv);
        }
        if pipe.is_empty() {
            return Ok(Decided::default());
        }
        let mut vals = self.run(&pipe, Trip::Decide).await?.into_iter();
        let mut out = Decided::default();
        if q.invite.is_some() {
            out.claim = Some(parse_claim(vals.next())?);
        }
        if let Some(t) = q.trunk {
            let mut v = TrunkVerdict::Admit;
            if t.max_cps.is_some() && int(vals.next()).ok_or(ClusterError::Reply("cps.lua"))? == 0 {
                v = TrunkVerdict::Cps;
            }
            if t.max_calls.is_some() {
                let leased = int(vals.next()).ok_or(ClusterError::Reply("lease.lua"))? == 1;
                if leased && v == TrunkVerdict::Admit {
                    self.hold(&keys::trunk_lease_name(t.name), t.call_id);
                } else if leased {
                    // Refused for its rate: the slot it got goes back (by hand: not renewed).
                    let mut pipe = redis::pipe();
                    pipe.zrem(keys::lease(&keys::trunk_lease_name(t.name)), t.call_id);
                    let _ = self.run(&pipe, Trip::Release).await;
                } else {
                    v = TrunkVerdict::Calls;
                }
            }
            out.trunk = Some(v);
        }
        for _ in &q.needs.rates {
            let until = int(vals.next()).ok_or(ClusterError::Reply("rate.lua"))?;
            out.rates.push(if until > 0 {
                RateVerdict::Blocked { until_ms: until }
            } else {
                RateVerdict::Allowed
            });
        }
        if !q.needs.cursors.is_empty() {
            let Some(Value::Array(a)) = vals.next() else {
                return Err(ClusterError::Reply("cursor.lua"));
            };
            if a.len() != q.needs.cursors.len() {
                return Err(ClusterError::Reply("cursor.lua"));
            }
            for (c, v) in q.needs.cursors.iter().zip(a) {
                let v = int(Some(v)).ok_or(ClusterError::Reply("cursor.lua"))?;
                out.cursors
                    .push((c.clone(), u64::try_from(v.saturating_sub(1)).unwrap_or(0)));
            }
        }
        if !q.needs.stats.is_empty() {
            let Some(Value::Array(a)) = vals.next() else {
                return Err(ClusterError::Reply("stats.lua"));
            };
            let nums: Vec<i64> = a.into_iter().map(|v| int(Some(v)).unwrap_or(0)).collect();
            for (t, c) in q.needs.stats.iter().zip(nums.chunks(3)) {
                let [active, calls, last] = c else {
                    return Err(ClusterError::Reply("stats.lua"));
                };
                out.stats.push((
                    t.clone(),
                    TargetStats {
                        active: u32::try_from(*active).unwrap_or(u32::MAX),
                        calls: u64::try_from(*calls).unwrap_or(0),
                        last_call_ms: *last,
                    },
                ));
            }
        }
        Ok(out)
    }

    /// Lease a slot on `target` for `call_id` (`limit` `None`: no limit, only counted).
    /// On success the lease is held (renewed by [`RedisState::maintain`]) until
    /// [`RedisState::release`].
    pub async fn lease(
        &self,
        target: &str,
        limit: Option<u32>,
        call_id: &str,
        now_ms: i64,
    ) -> Result<bool, ClusterError> {
        let mut pipe = redis::pipe();
        pipe.invoke_script(
            self.inner
                .scripts
                .lease
                .key(keys::lease(target))
                .key(keys::target_stats(target))
                .arg(now_ms)
                .arg(ms(self.inner.opts.lease))
                .arg(call_id)
                .arg(limit.unwrap_or(0)),
        );
        let v = self.run(&pipe, Trip::Lease).await?;
        let ok = int(v.into_iter().next()).ok_or(ClusterError::Reply("lease.lua"))? == 1;
        if ok {
            self.hold(target, call_id);
        }
        Ok(ok)
    }

    /// Remember a lease taken while Redis was down (local policy): the next renewal writes
    /// it to Redis, so the shared count is right again once Redis is back.
    pub fn hold(&self, target: &str, call_id: &str) {
        lock(&self.inner.held).insert((target.into(), call_id.into()));
    }

    /// Give a slot back. It stops being renewed at once; if Redis cannot be reached it
    /// expires by itself.
    pub async fn release(&self, target: &str, call_id: &str) -> Result<(), ClusterError> {
        let removed = lock(&self.inner.held).remove(&(target.into(), call_id.into()));
        if !removed {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.zrem(keys::lease(target), call_id);
        self.run(&pipe, Trip::Release).await.map(|_| ())
    }

    /// Renew every lease this node holds (re-creating any a restarted Redis lost), in one
    /// round trip per 512 leases. Returns how many had been lost.
    pub async fn renew(&self, now_ms: i64) -> Result<u64, ClusterError> {
        let held: Vec<(Box<str>, Box<str>)> = lock(&self.inner.held).iter().cloned().collect();
        let mut lost = 0;
        for chunk in held.chunks(512) {
            let mut inv = self.inner.scripts.renew.prepare_invoke();
            inv.arg(now_ms).arg(ms(self.inner.opts.lease));
            for (t, c) in chunk {
                inv.key(keys::lease(t)).arg(&**c);
            }
            let mut pipe = redis::pipe();
            pipe.invoke_script(&inv);
            let v = self.run(&pipe, Trip::Background).await?;
            lost += u64::try_from(int(v.into_iter().next()).unwrap_or(0)).unwrap_or(0);
        }
        Ok(lost)
    }

    /// Publish this node's heartbeat.
    pub async fn heartbeat(&self, info: &NodeInfo, now_ms: i64) -> Result<(), ClusterError> {
        let key = keys::node(&info.node);
        let mut pipe = redis::pipe();
        pipe.hset_multiple(
            &key,
            &[
                ("sip", info.sip.clone()),
                ("config_hash", info.config_hash.clone()),
                ("generation", info.generation.to_string()),
                ("version", info.version.clone()),
                ("seen_ms", now_ms.to_string()),
            ],
        )
        .ignore()
        .pexpire(&key, ms(NODE_TTL))
        .ignore()
        .zadd(keys::NODES, &info.node, now_ms)
        .ignore();
        self.run(&pipe, Trip::Background).await.map(|_| ())
    }

    /// Every node seen (heartbeat keys of the last day), alive or not, by name.
    pub async fn nodes(&self, now_ms: i64) -> Result<Vec<NodeInfo>, ClusterError> {
        let mut pipe = redis::pipe();
        pipe.zrembyscore(keys::NODES, "-inf", now_ms - 86_400_000)
            .ignore()
            .zrange_withscores(keys::NODES, 0, -1);
        let v = self.run(&pipe, Trip::Background).await?;
        let Some(Value::Array(a)) = v.into_iter().next() else {
            return Err(ClusterError::Reply("ZRANGE"));
        };
        let mut names = Vec::new();
        let mut it = a.into_iter();
        while let (Some(n), Some(s)) = (it.next(), it.next()) {
            if let Some(n) = text(n) {
                names.push((n, float(s).unwrap_or(0.0) as i64));
            }
        }
        let mut pipe = redis::pipe();
        for (n, _) in &names {
            pipe.hgetall(keys::node(n));
        }
        let infos = if names.is_empty() {
            Vec::new()
        } else {
            self.run(&pipe, Trip::Background).await?
        };
        let mut out = Vec::new();
        for ((name, seen), h) in names.into_iter().zip(infos) {
            let mut n = NodeInfo {
                node: name,
                seen_ms: seen,
                ..NodeInfo::default()
            };
            let pairs = match h {
                Value::Map(m) => m,
                Value::Array(a) => {
                    let mut v = Vec::new();
                    let mut it = a.into_iter();
                    while let (Some(k), Some(x)) = (it.next(), it.next()) {
                        v.push((k, x));
                    }
                    v
                }
                _ => Vec::new(),
            };
            n.alive = !pairs.is_empty();
            for (k, x) in pairs {
                let (Some(k), Some(x)) = (text(k), text(x)) else {
                    continue;
                };
                match k.as_str() {
                    "sip" => n.sip = x,
                    "config_hash" => n.config_hash = x,
                    "generation" => n.generation = x.parse().unwrap_or(0),
                    "version" => n.version = x,
                    _ => {}
                }
            }
            out.push(n);
        }
        Ok(out)
    }

    /// A PING round trip (health).
    pub async fn ping(&self) -> Result<(), ClusterError> {
        let mut pipe = redis::pipe();
        pipe.cmd("PING");
        self.run(&pipe, Trip::Background).await.map(|_| ())
    }

    /// The connection in use (`None` behind Sentinel until a sentinel named the primary).
    fn conn(&self) -> Option<ConnectionManager> {
        match &self.own {
            Some(c) => Some(c.clone()),
            None => lock(&self.inner.conn).clone(),
        }
    }

    /// Whether `other` is a clone of the same node's client.
    pub fn shares_state_with(&self, other: &RedisState) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// A clone with a connection of its own, driven by the runtime that first uses it: a
    /// shard's requests then go from its thread to Redis and back without waking another
    /// thread (the shared connection's driver runs on the main runtime). Health, counters,
    /// held leases and scripts stay shared. Behind Sentinel the clone uses the shared
    /// connection (it follows failovers).
    pub fn own_connection(&self) -> RedisState {
        if self.inner.sentinel.is_some() {
            return self.clone();
        }
        let own = redis::Client::open(self.inner.opts.url.as_str())
            .ok()
            .and_then(|c| {
                ConnectionManager::new_lazy_with_config(c, self.inner.conn_cfg.clone()).ok()
            });
        RedisState {
            inner: self.inner.clone(),
            own,
        }
    }

    /// Behind Sentinel: ask the sentinels for the primary and, if it is another server than
    /// the one in use (a failover), connect to it. A no-op for a plain URL.
    async fn follow_primary(&self) {
        let Some((url, current)) = &self.inner.sentinel else {
            return;
        };
        let addr = match sentinel::primary(
            url,
            self.inner.opts.timeout.max(Duration::from_millis(500)),
        )
        .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(master = %url.master, error = %e, "no sentinel named the redis primary");
                return;
            }
        };
        if lock(current).as_deref() == Some(addr.as_str()) {
            return;
        }
        match sentinel::connect(url, &addr, self.inner.conn_cfg.clone()) {
            Ok(c) => {
                tracing::info!(master = %url.master, primary = %addr, "redis primary (named by sentinel)");
                *lock(&self.inner.conn) = Some(c);
                *lock(current) = Some(addr);
            }
            Err(e) => {
                tracing::warn!(primary = %addr, error = %e, "cannot connect to the redis primary")
            }
        }
    }

    /// Beat and renew forever (every [`BEAT_EVERY`], or a third of the lease if shorter):
    /// spawn it once per node. `info` is called for each beat.
    pub async fn maintain(self, info: impl Fn() -> NodeInfo + Send + 'static) {
        let every = BEAT_EVERY.min(self.inner.opts.lease / 3);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = now_ms();
            let was_up = self.is_up();
            if !was_up {
                self.follow_primary().await;
            }
            let beat = self.heartbeat(&info(), now).await;
            if beat.is_ok() && !was_up {
                // (Re)connected: load the scripts before the calls need them, so the call
                // path rarely meets NOSCRIPT.
                if let Some(mut conn) = self.conn() {
                    if let Err(e) = self.inner.scripts.load(&mut conn).await {
                        tracing::debug!(error = %e, "loading the scripts failed");
                    }
                }
            }
            if beat.is_ok() {
                match self.renew(now).await {
                    Ok(lost) if lost > 0 => {
                        tracing::info!(node = %self.node(), lost, "leases re-created in redis")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "lease renewal failed"),
                }
            }
        }
    }
}

/// Wall clock in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(ms)
        .unwrap_or(0)
}

fn int(v: Option<Value>) -> Option<i64> {
    match v? {
        Value::Int(i) => Some(i),
        Value::BulkString(b) => std::str::from_utf8(&b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        Value::Nil => Some(0),
        _ => None,
    }
}

fn float(v: Value) -> Option<f64> {
    match v {
        Value::Double(f) => Some(f),
        Value::Int(i) => Some(i as f64),
        Value::BulkString(b) => std::str::from_utf8(&b).ok()?.parse().ok(),
        _ => None,
    }
}

fn text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        Value::Okay => Some("OK".into()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn parse_claim(v: Option<Value>) -> Result<Claim, ClusterError> {
    let Some(Value::Array(a)) = v else {
        return Err(ClusterError::Reply("dedup.lua"));
    };
    let mut it = a.into_iter().map(text);
    let kind = it.next().flatten();
    let owner = it.next().flatten().unwrap_or_default();
    match kind.as_deref() {
        Some("new") => Ok(Claim::New),
        Some("mine") => Ok(Claim::Mine),
        Some("dup") => Ok(Claim::Duplicate { owner }),
        Some("takeover") => Ok(Claim::TakeOver { owner }),
        _ => Err(ClusterError::Reply("dedup.lua")),
    }
}

#[cfg(test)]
mod tests;
