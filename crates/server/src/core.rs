//! The core task: drives the sans-IO proxy with real time and acts as its transaction user.
//!
//! Each shard (one per core) owns a [`Proxy`], its own `SO_REUSEPORT` UDP socket and the
//! calls whose Call-ID hashes to it; it reads its socket directly (no channel hop on the hot
//! path) and hands messages of other shards' calls to their inboxes. For each new INVITE it
//! builds a [`CallContext`], resolves it against the call's snapshot and turns the
//! [`Decision`] into a [`ForkPlan`]; proxy events become live-state updates (per-target
//! concurrency) and CDR records.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_cdr::{
    AttemptReason, AttemptRecord, CallRecord, CdrSink, Disposition, HangupSide, Record,
    WriterHandle,
};
use hotline_config::{TrunkRole, UnknownSources};
use hotline_route::{
    normalize_called, normalize_caller, resolve, uri_user_allowed, CallContext, Decision,
    EarlyMedia, Fallback, Live, Mode, Number400, OnTargetBusyLocal, RejectCause, RingFrom,
    RouteTable, Routed, TargetId,
};
use hotline_sip::frame::{parse_datagram, Datagram, Limits};
use hotline_sip::idmap::IdHasher;
use hotline_sip::proxy::{
    Admission, Advance, AttemptInfo, BranchTarget, ByCause, CallHandle, CallInfo, Diversion, Event,
    ForkGroup, ForkPlan, Hangup, Outcome, Peer, Presentation, Proxy, ProxyConfig, Transport,
};
use hotline_sip::txn::Timers;
use hotline_sip::uri::Uri;
use hotline_sip::Message;
use tokio::sync::{mpsc, watch};

use crate::alarm::Alarm;
use crate::cluster::{CallState, Link};
use crate::coalesce::Coalesce;
use crate::logbuf;
use crate::metrics::{Metrics, ShardSample};
use crate::poller::Poller;
use crate::prepaid::{Grant, Prepaid};
use crate::snapshot::{Current, Snapshot};
use crate::transport::{self, owner, Dispatch, Outbound, ShardMsg, Tcp};
use crate::Error;

mod call;
mod cluster;
mod feed;
mod plan;
mod records;
#[cfg(test)]
mod tests_calls;

use call::*;
pub use plan::ReqIdentity;
use plan::*;
pub(crate) use records::billing_error;
use records::*;

/// A map keyed by ids (call handles, attempt numbers): one multiply per lookup, not SipHash
/// (the keys are this shard's own sequence numbers, not attacker-chosen).
type IdHashMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
/// This shard's calls by handle.
type CallMap = IdHashMap<CallHandle, CallMeta>;

/// What the core remembers of a call for its CDR and its live-state bookkeeping.
struct CallMeta {
    snap: Arc<Snapshot>,
    record: CallRecord,
    /// Attempt index -> target id (for releasing slots).
    targets: IdHashMap<u32, u32>,
    /// Slot of the answered target, released when the call ends.
    answered: Option<u32>,
    disposition: Option<Disposition>,
    /// Longest ring timeout of the plan (used for redirect targets).
    ring: Duration,
    /// The trunk whose `max_calls` this call counts against.
    trunk_slot: Option<String>,
    /// Prepaid: minutes reserved so far and when the call was answered.
    reserved_minutes: u32,
    answered_at: Option<Instant>,
    /// Cluster: a parked decision, lease answers (empty on a single box).
    cl: CallState,
}

/// A shard that has not found its socket empty for this long is behind: it sheds new INVITEs.
const SHED_AFTER: Duration = Duration::from_millis(200);
/// Backlog of handed-over messages (of the 8192 an inbox holds) above which new INVITEs are
/// shed, and below which shedding may stop.
const SHED_HIGH: usize = 2048;
const SHED_LOW: usize = 256;
const RETRY_AFTER_SECS: u32 = 5;

/// How long a graceful stop waits for cancelled branches' final responses (to ACK them).
const FLUSH_GRACE: Duration = Duration::from_secs(4);

/// How often expired anti-harassment rate entries are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How long ringing calls may go on hunting after SIGTERM.
const DRAIN_GRACE: Duration = Duration::from_secs(32);

/// Per-trunk admission state: a token bucket for `max_cps`, a count for `max_calls`.
#[derive(Debug)]
struct TrunkState {
    tokens: f64,
    last: Instant,
    active: u32,
}

/// State every shard shares. Touched once per call (not per message), except the routing
/// snapshot (an `ArcSwap` load) and the live counters (sharded concurrent maps).
pub struct Shared {
    pub current: Current,
    pub live: Live,
    pub cdr: CdrSink,
    /// Live counters read by the admin endpoint.
    pub metrics: Arc<Metrics>,
    prepaid: crate::prepaid::SharedPrepaid,
    trunks: Mutex<HashMap<String, TrunkState>>,
    /// `[cluster]`: live state shared in Redis; `None` on a single box.
    pub cluster: Option<Arc<Link>>,
    /// The proxies' hash key (transaction keys, branches, To-tags), drawn once at start and
    /// shared by every shard.
    hash_key: hotline_sip::proxy::HashKey,
    /// Call events for the API's live feed (`[server.api]`); idle when nobody listens.
    pub feed: hotline_api::Feed,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not stop calls: the data stays usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Load billing balances (from the CDRs on disk, before the writer starts) and start the
    /// CDR writer.
    pub fn new(
        snap: Arc<Snapshot>,
        metrics: Arc<Metrics>,
    ) -> Result<(Shared, WriterHandle), Error> {
        let s = &snap.settings;
        let prepaid = match (&s.billing, &snap.billing) {
            (Some(b), Some(cfg)) => {
                let p = Prepaid::load(
                    cfg.clone(),
                    &s.cdr.dir,
                    b.low_balance_fen,
                    jiff::Timestamp::now(),
                );
                tracing::info!(file = %b.file.display(), "prepaid enforcement on");
                Some(p)
            }
            _ => None,
        };
        let (cdr, cdr_handle) = hotline_cdr::spawn(cdr_config(s)).map_err(|source| Error::Cdr {
            dir: s.cdr.dir.clone(),
            source,
        })?;
        metrics.set_cdr(cdr.clone());
        let prepaid: crate::prepaid::SharedPrepaid = Arc::new(Mutex::new(prepaid));
        metrics.set_prepaid(prepaid.clone());
        metrics.set_config(&snap);
        let live = Live::new();
        live.prepare(&snap.table);
        let cluster = match &s.cluster {
            Some(c) => Some(Arc::new(
                Link::new(c).map_err(|e| Error::Cluster(e.to_string()))?,
            )),
            None => None,
        };
        Ok((
            Shared {
                current: Current::new(snap),
                live,
                cdr,
                metrics,
                prepaid,
                trunks: Mutex::new(HashMap::new()),
                cluster,
                hash_key: hotline_sip::proxy::HashKey::random(),
                feed: hotline_api::Feed::new(),
            },
            cdr_handle,
        ))
    }

    /// Run `f` on the prepaid balances, if prepaid enforcement is on.
    fn with_prepaid<R>(&self, f: impl FnOnce(&mut Prepaid) -> R) -> Option<R> {
        lock(&self.prepaid).as_mut().map(f)
    }

    /// Re-read the config files and swap the snapshot (and the billing file).
    pub fn reload(&self) -> Result<String, String> {
        match self.current.reload(&self.live) {
            Ok(s) => {
                if let Some(link) = &self.cluster {
                    let same = s.settings.cluster.as_ref().is_some_and(|c| {
                        c.redis == link.settings.redis
                            && c.node == link.settings.node
                            && c.address == link.settings.address
                            && c.lease == link.settings.lease
                            && c.timeout == link.settings.timeout
                            && c.redis_down == link.settings.redis_down
                    });
                    if !same {
                        tracing::warn!("reload: [cluster] changed; it takes effect at the next restart (the running node keeps its settings)");
                    }
                }
                // The rates came with the snapshot: a rate file that failed made the reload fail.
                if let (Some(b), Some(cfg)) = (&s.settings.billing, &s.billing) {
                    if let Some(p) = lock(&self.prepaid).as_mut() {
                        p.reconfigure(cfg.clone(), b.low_balance_fen);
                    }
                }
                let msg = format!(
                    "generation {} loaded ({} numbers, hash {})",
                    s.generation(),
                    s.table.len(),
                    s.table.hash()
                );
                tracing::info!("reload: {msg}");
                self.metrics.reload_ok(&s);
                Ok(msg)
            }
            Err(e) => {
                tracing::error!("reload failed, keeping the running config:\n{e}");
                self.metrics.reload_failed();
                Err(e)
            }
        }
    }

    /// `max_cps` (token bucket, burst of one second) and `max_calls` of a trunk, shared by
    /// every shard; the reason when the call must be refused.
    fn trunk_admit(&self, snap: &Snapshot, name: &str, now: Instant) -> Option<&'static str> {
        let t = snap.settings.trunks.iter().find(|t| t.name == name)?;
        let mut trunks = lock(&self.trunks);
        let st = trunks.entry(name.to_owned()).or_insert(TrunkState {
            tokens: f64::from(t.max_cps.unwrap_or(0)),
            last: now,
            active: 0,
        });
        if let Some(max) = t.max_calls {
            if st.active >= max {
                return Some("trunk max_calls reached");
            }
        }
        if let Some(cps) = t.max_cps {
            let cap = f64::from(cps);
            let dt = now.saturating_duration_since(st.last).as_secs_f64();
            st.tokens = (st.tokens + dt * cap).min(cap);
            st.last = now;
            if st.tokens < 1.0 {
                return Some("trunk max_cps reached");
            }
            st.tokens -= 1.0;
        }
        st.active += 1;
        None
    }

    /// Count a call the cluster's shared trunk limits admitted (this node's view).
    /// This node's own prepaid usage per number (month, minutes), for the cluster's account.
    pub(crate) fn prepaid_own_usage(&self) -> Vec<(String, Vec<(String, u64)>)> {
        self.with_prepaid(|p| p.own_usage()).unwrap_or_default()
    }

    /// What to ask Redis about each prepaid number (cluster).
    pub(crate) fn prepaid_asks(&self) -> Vec<(String, crate::prepaid::ClusterAsk)> {
        self.with_prepaid(|p| p.cluster_asks(jiff::Timestamp::now()))
            .unwrap_or_default()
    }

    /// Redis's view of a prepaid number (cluster).
    pub(crate) fn prepaid_note(&self, number: &str, a: &hotline_cluster::PrepaidAnswer) {
        self.with_prepaid(|p| p.note_cluster_available(number, a));
    }

    pub(crate) fn trunk_note(&self, name: &str) {
        if let Some(st) = lock(&self.trunks).get_mut(name) {
            st.active += 1;
        }
    }

    fn trunk_release(&self, name: &str) {
        if let Some(st) = lock(&self.trunks).get_mut(name) {
            st.active = st.active.saturating_sub(1);
        }
    }
}

/// One shard: a proxy core, its UDP socket and the calls whose Call-ID it owns, driven by a
/// loop of its own on its own thread (`Core::run`).
pub struct Core {
    shard: usize,
    shards: usize,
    proxy: Proxy,
    shared: Arc<Shared>,
    dispatch: Dispatch,
    tcp: Tcp,
    inbox: mpsc::Receiver<ShardMsg>,
    drain: watch::Receiver<bool>,
    calls: CallMap,
    clock: Clock,
    seq: u64,
    /// `{shard}-{start ms}-` of [`Core::next_id`].
    id_infix: String,
    draining: bool,
    drain_deadline: Option<Instant>,
    /// After the hunts of a graceful stop: how long to wait for cancelled branches' finals.
    flush_deadline: Option<Instant>,
    /// When the anti-harassment rate entries are next pruned (shard 0 does it).
    next_prune: Instant,
    /// Prepaid renewals: when each answered call must reserve its next minute.
    renewals: BinaryHeap<Reverse<(Instant, CallHandle)>>,
    /// Since when this shard has found unread data on its socket after every read batch
    /// (it is not keeping up); `None` once the socket was found empty.
    behind_since: Option<Instant>,
    /// Messages dropped because their source is neither a trunk nor a target.
    dropped_sources: u64,
    sample: ShardSample,
    limits: Limits,
    /// The further listen addresses' UDP sockets (this shard sends from them too).
    more_udp: transport::MoreUdp,
    /// UDP datagrams of this loop turn for this shard's own socket, sent together.
    sendq: Vec<(Bytes, SocketAddr)>,
}

/// Maps the monotonic `Instant`s the proxy uses to wall-clock timestamps for CDRs.
#[derive(Clone, Copy)]
struct Clock {
    base: Instant,
    base_ts: jiff::Timestamp,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            base: Instant::now(),
            base_ts: jiff::Timestamp::now(),
        }
    }
    /// `base_ts` plus the time since `base`: seconds and nanoseconds added directly (about
    /// 20 conversions per call; jiff's general `checked_add` cost ~110 instructions each),
    /// jiff's addition where that would leave the range.
    fn ts(&self, at: Instant) -> jiff::Timestamp {
        let d = at.saturating_duration_since(self.base);
        let fast = i64::try_from(d.as_secs()).ok().and_then(|s| {
            let mut secs = self.base_ts.as_second().checked_add(s)?;
            let mut nanos = self.base_ts.subsec_nanosecond() + d.subsec_nanos() as i32;
            if nanos >= 1_000_000_000 {
                nanos -= 1_000_000_000;
                secs = secs.checked_add(1)?;
            }
            jiff::Timestamp::new(secs, nanos).ok()
        });
        fast.unwrap_or_else(|| self.ts_general(d))
    }
    fn ts_general(&self, d: std::time::Duration) -> jiff::Timestamp {
        let span = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::ZERO);
        self.base_ts.checked_add(span).unwrap_or(self.base_ts)
    }
}

fn timers(s: &hotline_config::Settings) -> Timers {
    Timers {
        t1: s.sip.t1,
        t2: s.sip.t2,
        t4: s.sip.t4,
    }
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shard: usize,
        shards: usize,
        shared: Arc<Shared>,
        listen: &[SocketAddr],
        more_udp: transport::MoreUdp,
        dispatch: Dispatch,
        tcp: Tcp,
        inbox: mpsc::Receiver<ShardMsg>,
        drain: watch::Receiver<bool>,
    ) -> Core {
        let snap = shared.current.load();
        let s = &snap.settings;
        let first = listen
            .first()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)));
        let mut pcfg = ProxyConfig::new(first);
        pcfg.listen_more = listen.iter().skip(1).copied().collect();
        pcfg.timers = timers(s);
        pcfg.id_first = shard as u64 + 1;
        pcfg.id_step = shards.max(1) as u64;
        pcfg.record_route = s.cluster.as_ref().map(|c| c.address.clone());
        pcfg.hash_key = shared.hash_key;
        let limits = Limits {
            max_message: s.sip.max_message_bytes,
        };
        let now = Instant::now();
        let clock = Clock::now();
        Core {
            shard,
            shards: shards.max(1),
            proxy: Proxy::new(pcfg),
            shared,
            dispatch,
            tcp,
            inbox,
            drain,
            calls: CallMap::default(),
            id_infix: format!("{shard}-{}-", clock.base_ts.as_millisecond()),
            clock,
            seq: 0,
            draining: false,
            drain_deadline: None,
            flush_deadline: None,
            next_prune: now + PRUNE_EVERY,
            renewals: BinaryHeap::new(),
            behind_since: None,
            dropped_sources: 0,
            sample: ShardSample::default(),
            limits,
            more_udp,
            sendq: Vec::with_capacity(crate::mmsg::MAX),
        }
    }

    /// Run until a graceful stop has finished. `udp` is this shard's socket; this runs on
    /// the shard's own thread, which it blocks: one epoll loop (`crate::poller`), no
    /// runtime.
    pub fn run(mut self, udp: std::net::UdpSocket) {
        let udp: transport::UdpFd = Arc::new(udp);
        let mut poller = match Poller::new(&*udp) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(shard = self.shard, error = %e, "cannot watch the UDP socket");
                return;
            }
        };
        let out = Outbound::new(udp.clone(), self.tcp.clone(), self.more_udp.clone());
        let mut rx = transport::RecvBatch::default();
        // This shard's info lines go out in batches (see `logbuf`).
        logbuf::enable();
        let alarm = Alarm::new(Instant::now());
        let mut coalesce = Coalesce::new(self.shared.current.load().settings.coalesce);
        // The graceful-stop signal, as a future polled with the shard's waker.
        let mut drain_rx = self.drain.clone();
        let mut drain = Box::pin(async move {
            while drain_rx.changed().await.is_ok() {
                if *drain_rx.borrow() {
                    return;
                }
            }
        });
        loop {
            if logbuf::due().is_some() {
                logbuf::flush_if_due(Instant::now());
            }
            let deadline = earliest(
                earliest(
                    self.proxy.poll_timeout(),
                    self.renewals.peek().map(|r| r.0 .0),
                ),
                logbuf::due(),
            );
            let rang = match poller.wait(alarm.wait(Instant::now(), deadline)) {
                Ok(rang) => rang,
                Err(e) => {
                    tracing::error!(shard = self.shard, error = %e, "epoll_wait failed");
                    break;
                }
            };
            // Datagrams read from the socket in this turn (for the coalescing decision).
            let mut found = 0usize;
            if rang {
                let mut cx = Context::from_waker(poller.waker());
                if !self.draining && drain.as_mut().poll(&mut cx).is_ready() {
                    self.start_draining();
                }
                let now = Instant::now();
                let mut closed = false;
                // Up to 256 messages a turn; the rest after the socket and the timers.
                for i in 0..=256 {
                    if i == 256 {
                        poller.ring();
                        break;
                    }
                    match self.inbox.poll_recv(&mut cx) {
                        Poll::Ready(Some(m)) => self.on_inbox(now, m),
                        Poll::Ready(None) => {
                            closed = true;
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
                if closed {
                    break;
                }
            }
            if poller.ready.readable {
                let now = Instant::now();
                let snap = self.shared.current.load();
                coalesce.set_window(snap.settings.coalesce);
                let mut drained = false;
                // Up to 8 batches per turn, then timers and sends get their turn.
                for _ in 0..8 {
                    match rx.recv(&udp) {
                        Ok(empty) => {
                            found += rx.len();
                            for (data, from) in rx.datagrams() {
                                if let Some(from) = from {
                                    self.on_datagram(now, &snap, data, from);
                                }
                            }
                            if empty {
                                drained = true;
                                break;
                            }
                        }
                        // ICMP errors (port unreachable) surface here on Linux, once: the
                        // socket stays readable and is read again next turn.
                        Err(_) => break,
                    }
                }
                if drained {
                    poller.ready.readable = false;
                    self.behind_since = None;
                } else {
                    self.behind_since.get_or_insert(now);
                }
            }
            if poller.ready.error {
                poller.ready.error = !self.on_udp_errors(Instant::now(), &udp);
            }
            // Timers are due whatever woke us: under steady traffic a socket is always
            // ready, and they would otherwise starve.
            let now = Instant::now();
            self.admission(now);
            self.proxy.handle_timeout(now);
            self.renew_prepaid(now);
            if self.shard == 0 && now >= self.next_prune {
                self.next_prune = now + PRUNE_EVERY;
                let snap = self.shared.current.load();
                self.shared
                    .live
                    .prune(self.clock.ts(now), snap.longest_rate_window);
            }
            self.after_input(now, &out);
            if self.draining && self.drain_step(Instant::now(), &out) {
                break;
            }
            // Interrupt moderation: after a wake-up that found only a few datagrams, let
            // more arrive before the next poll (crate::coalesce). This thread runs only this
            // shard, so the pause delays nothing but this shard's next turn.
            if let Some(pause) = coalesce.after_turn(found) {
                if !self.draining {
                    std::thread::sleep(pause);
                }
            }
        }
        let _ = logbuf::flush(&mut std::io::stderr());
    }

    /// The socket's error queue has reports: ICMP said a destination is unreachable. Every
    /// shard's transactions towards it fail now (the ICMP may have come to any shard's
    /// socket of the `SO_REUSEPORT` group, and it does not carry a Call-ID).
    /// Returns whether the queue was found empty (or unreadable: never spin on it); `false`
    /// leaves the rest for the next turn.
    fn on_udp_errors(&mut self, now: Instant, udp: &std::net::UdpSocket) -> bool {
        let mut peers = Vec::new();
        let emptied = match transport::unreachable_peers(udp, &mut peers) {
            Ok(empty) => empty,
            Err(e) => {
                tracing::debug!(shard = self.shard, error = %e, "udp error queue");
                true
            }
        };
        peers.sort_unstable();
        peers.dedup();
        for addr in peers {
            self.shared
                .metrics
                .transport
                .udp_unreachable
                .fetch_add(1, Ordering::Relaxed);
            // The shard sockets are the first listen address's.
            let peer = Peer::new(Transport::Udp, addr);
            tracing::debug!(shard = self.shard, %addr, "udp destination unreachable");
            self.dispatch.unreachable(peer, Some(self.shard));
            self.proxy.transport_error(now, peer);
        }
        emptied
    }

    fn start_draining(&mut self) {
        self.shared.metrics.set_draining();
        self.draining = true;
        self.drain_deadline = Some(Instant::now() + DRAIN_GRACE);
        tracing::debug!(
            shard = self.shard,
            hunting = self.proxy.hunting_calls(),
            answered = self.proxy.answered_calls().len(),
            "shard draining"
        );
    }

    /// One step of a graceful stop. Ringing calls finish their hunt (up to [`DRAIN_GRACE`],
    /// then they get 503); then answered calls are ended with BYE both ways so their CDRs
    /// carry the real talk time. Returns true when nothing is left.
    fn drain_step(&mut self, now: Instant, out: &Outbound) -> bool {
        if self.proxy.hunting_calls() > 0 {
            if self.drain_deadline.is_some_and(|d| now >= d) {
                self.proxy
                    .abort_hunts(now, 503, "Service Unavailable - Shutting Down");
                self.after_input(now, out);
            } else {
                return false;
            }
        }
        for call in self.proxy.answered_calls() {
            self.proxy.hangup(now, call);
        }
        self.after_input(now, out);
        // Cancelled branches still owe us their 487, which we must ACK: wait for them, but
        // not past a short bound (a target that never answers its CANCEL is its problem).
        let flush_until = *self.flush_deadline.get_or_insert(now + FLUSH_GRACE);
        self.proxy.pending_client_invites() == 0 || now >= flush_until
    }

    /// A datagram read from this shard's socket: frame, filter, parse, and handle it here or
    /// hand it to the shard owning its Call-ID.
    fn on_datagram(&mut self, now: Instant, snap: &Snapshot, data: &[u8], from: SocketAddr) {
        let source = Peer {
            transport: Transport::Udp,
            addr: from,
            local: 0,
        };
        self.on_datagram_from(now, snap, data, source);
    }

    /// [`Core::on_datagram`] for a datagram read on listen address `source.local`.
    fn on_datagram_from(&mut self, now: Instant, snap: &Snapshot, data: &[u8], source: Peer) {
        let m = &self.shared.metrics;
        m.transport.udp_in.fetch_add(1, Ordering::Relaxed);
        m.inbound(data);
        if !snap.source_allowed(source.addr.ip()) {
            self.refuse_source(snap, source, data);
            return;
        }
        // Framing and parsing in one pass over the headers.
        match parse_datagram(Bytes::copy_from_slice(data), &self.limits) {
            Datagram::Message(msg) => {
                let to = owner(msg.call_id(), self.shards);
                if to == self.shard {
                    self.proxy.handle_parsed(now, source, msg);
                } else {
                    self.dispatch
                        .hand_over(to, ShardMsg::Parsed(source, Box::new(msg)));
                }
            }
            Datagram::KeepAlive => {
                m.transport.keepalives.fetch_add(1, Ordering::Relaxed);
            }
            Datagram::Unframed(e) => {
                // The proxy answers a request with the error's status (513 for an oversize
                // one) or drops a response.
                m.transport.framing_errors.fetch_add(1, Ordering::Relaxed);
                self.proxy.handle_unparsable(source, data, &e);
            }
            Datagram::Unparsed(bytes, _) => self.proxy.handle_message(now, source, bytes),
        }
    }

    fn on_inbox(&mut self, now: Instant, m: ShardMsg) {
        let m = match m {
            ShardMsg::Datagram(source, data) => {
                let snap = self.shared.current.load();
                self.on_datagram_from(now, &snap, &data, source);
                return;
            }
            m => m,
        };
        // Messages from TCP are checked here (UDP ones were checked by the shard that read
        // them, before the hand-over).
        let tcp_source = |m: &ShardMsg| match m {
            ShardMsg::Parsed(p, _) | ShardMsg::Raw(p, _) => {
                (p.transport == Transport::Tcp).then_some(*p)
            }
            ShardMsg::Unreachable(_) | ShardMsg::Datagram(..) | ShardMsg::Cluster(_) => None,
        };
        if let Some(source) = tcp_source(&m) {
            let snap = self.shared.current.load();
            let bytes = match &m {
                ShardMsg::Parsed(_, msg) => msg.bytes().clone(),
                ShardMsg::Raw(_, b) | ShardMsg::Datagram(_, b) => b.clone(),
                ShardMsg::Unreachable(_) | ShardMsg::Cluster(_) => Bytes::new(),
            };
            self.shared.metrics.inbound(&bytes);
            if !snap.source_allowed(source.addr.ip()) {
                self.refuse_source(&snap, source, &bytes);
                return;
            }
        }
        match m {
            ShardMsg::Parsed(source, msg) => self.proxy.handle_parsed(now, source, *msg),
            ShardMsg::Raw(source, bytes) => self.proxy.handle_message(now, source, bytes),
            ShardMsg::Unreachable(peer) => {
                self.proxy.transport_error(now, peer);
            }
            ShardMsg::Datagram(..) => {}
            ShardMsg::Cluster(r) => self.on_cluster_reply(now, *r),
        }
    }

    /// SIP from neither a trunk nor a target: counted, and dropped without an answer
    /// (default: scanners learn nothing) or, with `unknown_sources = "reject"`, requests get a
    /// stateless 403.
    fn refuse_source(&mut self, snap: &Snapshot, source: Peer, data: &[u8]) {
        self.dropped_sources += 1;
        if snap.settings.unknown_sources != UnknownSources::Reject {
            return;
        }
        if let Ok(msg) = Message::parse(Bytes::copy_from_slice(data)) {
            self.proxy
                .reply_stateless(source, &msg, 403, "Forbidden - Unknown Source");
        }
    }

    /// Admission control: when this shard has not caught up with its socket for
    /// [`SHED_AFTER`] (it never found it empty), or its inbox holds more than [`SHED_HIGH`]
    /// messages, new INVITEs get 503 + Retry-After until it catches up. Calls in progress keep
    /// going (their messages are still processed).
    fn admission(&mut self, now: Instant) {
        let behind = self
            .behind_since
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let backlog = self.inbox.len();
        if !self.proxy.overloaded() && (behind > SHED_AFTER || backlog > SHED_HIGH) {
            tracing::warn!(
                shard = self.shard,
                behind_ms = behind.as_millis() as u64,
                backlog,
                "overload: shedding new INVITEs with 503"
            );
            self.proxy.set_overload(Some(RETRY_AFTER_SECS));
        } else if self.proxy.overloaded() && behind < SHED_AFTER / 4 && backlog < SHED_LOW {
            tracing::info!(shard = self.shard, "overload over: taking new calls again");
            self.proxy.set_overload(None);
        }
    }

    /// Prepaid: reserve the next minute of an answered call, or cut it where its paid time
    /// ends. In a cluster the minute is reserved in Redis (the answer comes back as a
    /// `Reply::Prepaid`); while Redis is down, from this node's own view.
    fn renew_call(&mut self, now: Instant, call: CallHandle) {
        let Some(m) = self.calls.get_mut(&call) else {
            return;
        };
        if m.answered_at.is_none() {
            return;
        }
        if self.reserve_shared(call) {
            return;
        }
        let Some(m) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(grant) = self.shared.with_prepaid(|p| {
            p.reserve(&m.record.number, m.reserved_minutes, jiff::Timestamp::now())
        }) else {
            return;
        };
        self.apply_grant(now, call, grant);
    }

    /// Carry out a prepaid grant: one more minute (renew before the next boundary), or cut.
    fn apply_grant(&mut self, now: Instant, call: CallHandle, grant: Grant) {
        let Some(m) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(answered) = m.answered_at else {
            return;
        };
        match grant {
            Grant::Unlimited => {}
            Grant::Minute { renew_after } => {
                m.reserved_minutes += 1;
                self.renewals.push(Reverse((answered + renew_after, call)));
            }
            Grant::Cut { cut_after } => {
                tracing::info!(number = %m.record.number, call_id = %m.record.call_id, "prepaid balance used up: cutting the call");
                self.proxy.limit_call(call, (answered + cut_after).max(now));
            }
        }
    }

    fn renew_prepaid(&mut self, now: Instant) {
        while let Some(Reverse((at, call))) = self.renewals.peek().copied() {
            if at > now {
                break;
            }
            self.renewals.pop();
            self.renew_call(now, call);
        }
    }

    /// Handle events until none are left, then send everything queued.
    fn after_input(&mut self, now: Instant, out: &Outbound) {
        self.process(now);
        // This shard's UDP datagrams go out together at the end of the turn (one `sendmmsg`);
        // TCP and the further listen addresses' sockets one by one.
        while let Some(t) = self.proxy.poll_transmit() {
            self.shared.metrics.outbound(&t.bytes);
            if t.dest.transport == Transport::Udp && t.dest.local == 0 {
                self.sendq.push((t.bytes, t.dest.addr));
            } else {
                out.send(t.dest, t.bytes);
            }
        }
        out.send_udp_batch(&mut self.sendq);
        self.shared.metrics.sync_proxy(
            &mut self.sample,
            self.proxy.stats(),
            self.proxy.transactions(),
            self.calls.len(),
            self.dropped_sources,
        );
    }

    /// The proxy's events and pending hunts, until none are left (what one loop turn does
    /// between reading and sending; no I/O).
    fn process(&mut self, now: Instant) {
        loop {
            let mut any = false;
            while let Some(ev) = self.proxy.poll_event() {
                any = true;
                self.on_event(now, ev);
            }
            let (shared, calls, me) = (&self.shared, &mut self.calls, self.shard);
            let (inbox, clock) = (&self.dispatch, &self.clock);
            // The wall-clock time only when a hunt step is gated (most turns have none).
            let mut ts = None;
            self.proxy.pending_hunts_gated(now, &mut |call, tag| {
                let ts = *ts.get_or_insert_with(|| clock.ts(now));
                gate(shared, calls, inbox, me, call, tag, ts)
            });
            if !any {
                break;
            }
        }
    }

    fn on_event(&mut self, now: Instant, ev: Event) {
        match ev {
            Event::Incoming {
                call,
                request,
                source,
            } => {
                self.shared.metrics.call_started();
                self.on_incoming(now, call, &request, source)
            }
            Event::Redirect { call, contacts } => self.on_redirect(call, &contacts),
            Event::AttemptStarted { call, target, .. } => {
                if let Some(m) = self.calls.get_mut(&call) {
                    m.cl.consume(target);
                }
                self.feed_call(now, call, "ringing", target);
            }
            Event::AttemptEnded(a) => self.on_attempt(a),
            Event::Answered { call, target } => {
                self.shared.metrics.call_answered();
                self.feed_call(now, call, "answered", target);
                if let Some(m) = self.calls.get_mut(&call) {
                    m.answered_at = Some(now);
                }
                self.publish_dialog(now, call, target);
                self.renew_call(now, call);
            }
            Event::CallEnded(c) => self.on_call_ended(c),
            Event::ForeignBye {
                call_id, from_tag, ..
            } => self.on_foreign_bye(now, &call_id, &from_tag),
        }
    }

    /// A record id, `{kind}{shard}-{start ms}-{seq}`: the middle is written once, the
    /// sequence number by the CDR encoder's digit writer (per call and per attempt,
    /// `format!` cost ~1,600 instructions each).
    fn next_id(&mut self, kind: &str) -> String {
        self.seq += 1;
        let mut id = Vec::with_capacity(kind.len() + self.id_infix.len() + 20);
        id.extend_from_slice(kind.as_bytes());
        id.extend_from_slice(self.id_infix.as_bytes());
        hotline_cdr::encode::write_u64(&mut id, self.seq);
        // Built of strings and ASCII digits: always UTF-8.
        String::from_utf8(id).unwrap_or_default()
    }
}

/// The admission gate of the hunt: on a single box [`admit`]; in a cluster the slot is
/// leased in Redis (the hunt waits for the answer, see `cluster`).
fn gate(
    shared: &Shared,
    calls: &mut CallMap,
    dispatch: &Dispatch,
    shard: usize,
    call: CallHandle,
    tag: u32,
    ts: jiff::Timestamp,
) -> Admission {
    match &shared.cluster {
        None => admit(&shared.live, calls, call, tag, ts).into(),
        Some(_) => cluster::gate(shared, calls, dispatch, shard, call, tag, ts),
    }
}

/// The admission gate: per-target concurrency limits shared by every number.
fn admit(live: &Live, calls: &CallMap, call: CallHandle, tag: u32, ts: jiff::Timestamp) -> bool {
    let Some(meta) = calls.get(&call) else {
        return false;
    };
    match meta.snap.table.try_target(TargetId(tag)) {
        Some(t) => live.try_acquire(t, ts),
        None => false,
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod id_tests {
    use std::time::{Duration, Instant};

    /// The direct addition gives what jiff's general one does, across the second's wrap
    /// and for a base before 1970 (negative seconds with positive nanoseconds).
    #[test]
    fn clock_ts_is_jiffs_addition() {
        let base = Instant::now();
        for base_ts in [
            jiff::Timestamp::now(),
            jiff::Timestamp::new(1_764_000_000, 999_999_999).unwrap(),
            jiff::Timestamp::new(-5, 500_000_000).unwrap(),
        ] {
            let clock = super::Clock { base, base_ts };
            for d in [
                0u64,
                1,
                999_999_999,
                1_000_000_000,
                1_500_000_001,
                86_400_123_456_789,
            ] {
                let d = Duration::from_nanos(d);
                assert_eq!(clock.ts(base + d), clock.ts_general(d), "{base_ts} + {d:?}");
            }
            // An instant before the base counts as the base.
            assert_eq!(
                clock.ts(base.checked_sub(Duration::from_secs(1)).unwrap_or(base)),
                base_ts
            );
        }
    }
}
