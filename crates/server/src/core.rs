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
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
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
use crate::logbuf;
use crate::metrics::{Metrics, ShardSample};
use crate::prepaid::{Grant, Prepaid};
use crate::snapshot::{Current, Snapshot};
use crate::transport::{self, owner, Dispatch, Outbound, ShardMsg, Tcp};
use crate::Error;

mod cluster;

/// What the core remembers of a call for its CDR and its live-state bookkeeping.
struct CallMeta {
    snap: Arc<Snapshot>,
    record: CallRecord,
    /// Attempt index -> target id (for releasing slots).
    targets: HashMap<u32, u32>,
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

/// What is wrong with the `[server.billing] file`, without naming it again (the error's
/// message does), and where a relative path was looked for.
pub(crate) fn billing_error(file: &std::path::Path, e: &hotline_cdr::CdrError) -> String {
    match e {
        hotline_cdr::CdrError::Io { source, .. } if file.is_relative() => {
            let cwd = std::env::current_dir().unwrap_or_default();
            format!(
                "{source} ([server.billing] file is relative to the directory Hotline was started in: {})",
                cwd.join(file).display()
            )
        }
        hotline_cdr::CdrError::Io { source, .. } => source.to_string(),
        hotline_cdr::CdrError::Invalid(m) => {
            let prefix = format!("{}: ", file.display());
            m.lines()
                .map(|l| l.strip_prefix(&prefix).unwrap_or(l))
                .collect::<Vec<_>>()
                .join("\n")
        }
    }
}

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
/// single-threaded runtime on its own thread.
pub struct Core {
    shard: usize,
    shards: usize,
    proxy: Proxy,
    shared: Arc<Shared>,
    dispatch: Dispatch,
    tcp: Tcp,
    inbox: mpsc::Receiver<ShardMsg>,
    drain: watch::Receiver<bool>,
    calls: HashMap<CallHandle, CallMeta>,
    clock: Clock,
    seq: u64,
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
    fn ts(&self, at: Instant) -> jiff::Timestamp {
        let d = at.saturating_duration_since(self.base);
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
        let limits = Limits {
            max_message: s.sip.max_message_bytes,
        };
        let now = Instant::now();
        Core {
            shard,
            shards: shards.max(1),
            proxy: Proxy::new(pcfg),
            shared,
            dispatch,
            tcp,
            inbox,
            drain,
            calls: HashMap::new(),
            clock: Clock::now(),
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
        }
    }

    /// Run until a graceful stop has finished. `udp` is this shard's socket; this must run
    /// on the shard's own (current-thread) runtime.
    pub async fn run(mut self, udp: std::net::UdpSocket) {
        let udp = match transport::register_udp(udp) {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(shard = self.shard, error = %e, "cannot register the UDP socket");
                return;
            }
        };
        let out = Outbound::new(udp.clone(), self.tcp.clone(), self.more_udp.clone());
        let mut rx = transport::RecvBatch::default();
        // This shard's info lines (one per call) go out in batches (see `logbuf`).
        logbuf::enable();
        // One timer, moved when the earliest deadline moves (not a new one per wake-up).
        let mut alarm = Alarm::new(Instant::now());
        loop {
            if logbuf::due().is_some() {
                logbuf::flush_if_due(Instant::now());
            }
            alarm.set(earliest(
                earliest(
                    self.proxy.poll_timeout(),
                    self.renewals.peek().map(|r| r.0 .0),
                ),
                logbuf::due(),
            ));
            tokio::select! {
                biased;
                r = self.drain.changed(), if !self.draining => {
                    if r.is_err() || *self.drain.borrow() {
                        self.start_draining();
                    }
                }
                m = self.inbox.recv() => {
                    let Some(m) = m else { break };
                    let now = Instant::now();
                    self.on_inbox(now, m);
                    for _ in 0..256 {
                        match self.inbox.try_recv() {
                            Ok(m) => self.on_inbox(now, m),
                            Err(_) => break,
                        }
                    }
                }
                r = udp.readable() => {
                    if r.is_ok() {
                        let now = Instant::now();
                        let snap = self.shared.current.load();
                        let mut drained = false;
                        // Up to 8 batches per wake-up, then timers and sends get their turn.
                        for _ in 0..8 {
                            match rx.recv(&udp) {
                                Ok(empty) => {
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
                                // ICMP errors (port unreachable) surface here on Linux.
                                Err(_) => break,
                            }
                        }
                        if drained {
                            self.behind_since = None;
                        } else {
                            self.behind_since.get_or_insert(now);
                        }
                    }
                }
                r = udp.ready(tokio::io::Interest::ERROR) => {
                    if r.is_ok() {
                        self.on_udp_errors(Instant::now(), &udp);
                    }
                }
                _ = alarm.fired() => {}
            }
            // Timers are due whatever woke us: under steady traffic a socket is always
            // ready, and the biased select would otherwise starve them.
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
        }
        let _ = logbuf::flush(&mut std::io::stderr());
    }

    /// The socket's error queue has reports: ICMP said a destination is unreachable. Every
    /// shard's transactions towards it fail now (the ICMP may have come to any shard's
    /// socket of the `SO_REUSEPORT` group, and it does not carry a Call-ID).
    fn on_udp_errors(&mut self, now: Instant, udp: &transport::UdpFd) {
        let mut peers = Vec::new();
        let shard = self.shard;
        let _ = udp.try_io(tokio::io::Interest::ERROR, |s| {
            match transport::unreachable_peers(s, &mut peers) {
                // More than a batch: stay ready, the rest is read next turn.
                Ok(false) => Ok(()),
                // Drained (or unreadable: never spin on it): the readiness is cleared until
                // the next report.
                Ok(true) => Err(std::io::ErrorKind::WouldBlock.into()),
                Err(e) => {
                    tracing::debug!(shard, error = %e, "udp error queue");
                    Err(std::io::ErrorKind::WouldBlock.into())
                }
            }
        });
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
    /// ends.
    fn renew_call(&mut self, now: Instant, call: CallHandle) {
        let Some(m) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(answered) = m.answered_at else {
            return;
        };
        let Some(grant) = self.shared.with_prepaid(|p| {
            p.reserve(&m.record.number, m.reserved_minutes, jiff::Timestamp::now())
        }) else {
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
        loop {
            let mut any = false;
            while let Some(ev) = self.proxy.poll_event() {
                any = true;
                self.on_event(now, ev);
            }
            let (shared, calls, me) = (&self.shared, &mut self.calls, self.shard);
            let inbox = &self.dispatch;
            self.proxy.pending_hunts_gated(now, &mut |call, tag| {
                gate(shared, calls, inbox, me, call, tag, now)
            });
            if !any {
                break;
            }
        }
        while let Some(t) = self.proxy.poll_transmit() {
            self.shared.metrics.outbound(&t.bytes);
            out.send(t.dest, t.bytes);
        }
        self.shared.metrics.sync_proxy(
            &mut self.sample,
            self.proxy.stats(),
            self.proxy.transactions(),
            self.calls.len(),
            self.dropped_sources,
        );
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
            }
            Event::AttemptEnded(a) => self.on_attempt(a),
            Event::Answered { call, target } => {
                self.shared.metrics.call_answered();
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

    fn next_id(&mut self, kind: &str) -> String {
        self.seq += 1;
        format!(
            "{}{}-{}-{}",
            kind,
            self.shard,
            self.clock.base_ts.as_millisecond(),
            self.seq
        )
    }

    fn on_incoming(&mut self, now: Instant, call: CallHandle, req: &Message, source: Peer) {
        let snap = self.shared.current.load();
        let mut record = CallRecord::empty(self.clock.ts(now));
        record.record_id = self.next_id("c");
        record.call_id = String::from_utf8_lossy(req.call_id()).into_owned();
        record.config_generation = snap.table.generation();
        record.config_hash = snap.table.hash().to_owned();
        let caller_raw = Uri::parse_name_addr(req.from_value())
            .map(|u| String::from_utf8_lossy(u.user).into_owned())
            .unwrap_or_default();
        record.caller_raw = caller_raw.clone();
        // Who is screened and routed: the From number, or (anonymous From, e.g. RFC 3323
        // privacy) the P-Asserted-Identity a trusted trunk vouches for; else anonymous.
        let trusted_source = snap
            .settings
            .trunk_for(source.addr.ip())
            .is_some_and(|t| t.trusted);
        let caller_raw = screening_identity(req, caller_raw, trusted_source);
        // The caller and its region first, before anything may refuse the call: every record
        // (blocked, rate-limited, unknown trunk ...) says where the caller is (ad reports).
        caller_fields(&mut record, &snap.table, &caller_raw);
        let trunk = snap
            .settings
            .trunks
            .iter()
            .find(|t| t.contains(source.addr.ip()))
            .map(|t| t.name.clone());
        record.trunk = trunk.clone().unwrap_or_default();
        let mut meta = CallMeta {
            snap: snap.clone(),
            record,
            targets: HashMap::new(),
            answered: None,
            disposition: None,
            ring: Duration::from_secs(20),
            trunk_slot: None,
            reserved_minutes: 0,
            answered_at: None,
            cl: CallState::default(),
        };
        if self.draining {
            let r = Refusal::new(Disposition::Failed, "shutting_down", 503);
            self.refuse(
                now,
                call,
                meta,
                r.reason("Service Unavailable - Shutting Down"),
            );
            return;
        }
        if !snap.settings.trunks.is_empty() && trunk.is_none() {
            let r = Refusal::new(Disposition::BlockedList, "unknown_trunk", 403);
            self.refuse(now, call, meta, r.reason("Forbidden - Unknown Trunk"));
            return;
        }
        let user = Uri::parse(req.request_uri())
            .map(|u| String::from_utf8_lossy(u.user).into_owned())
            .unwrap_or_default();
        let called = match normalize_called(&user) {
            Ok(n) => n,
            Err(_) => {
                meta.record.number = user;
                let r = Refusal::new(Disposition::Failed, "not_a_400", 404);
                self.refuse(now, call, meta, r.reason("Not A 400 Number"));
                return;
            }
        };
        meta.record.number = called.as_str().to_owned();
        // A 400 number's carrier is its prefix; a 1010 number's the config's (set once routed
        // or refused by its screening, below).
        meta.record.carrier = called
            .carrier()
            .or_else(|| snap.table.number(called).map(|e| e.carrier))
            .map(|c| c.name_zh().to_owned())
            .unwrap_or_default();
        let ivr_key = self.ivr_key(&snap, req, source);
        let callback = snap
            .settings
            .trunk_for(source.addr.ip())
            .is_some_and(|t| t.role == TrunkRole::MediaServer);
        let ctx = CallContext {
            called,
            caller: &caller_raw,
            trunk: trunk.as_deref(),
            ivr_key,
            seed: call_seed(req.call_id()),
            callback,
        };
        let ts = self.clock.ts(now);
        let Some(meta) = self.park(now, call, req, meta, &ctx, ts) else {
            // Waiting for Redis, or refused because it is down.
            return;
        };
        let decision = resolve(&snap.table, &self.shared.live, &ctx, ts);
        let ident = ReqIdentity::of(req);
        self.decide(now, call, meta, &snap, decision, &called, trunk, ident, ts);
    }

    /// Carry out a routing decision: reject, or (after the prepaid and trunk checks) hunt.
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &mut self,
        now: Instant,
        call: CallHandle,
        mut meta: CallMeta,
        snap: &Arc<Snapshot>,
        decision: Decision<'_>,
        called: &Number400,
        trunk: Option<String>,
        ident: ReqIdentity,
        ts: jiff::Timestamp,
    ) {
        match decision {
            Decision::Reject(r) => {
                meta.disposition = Some(reject_disposition(r.cause));
                meta.record.reason = r.reason.to_owned();
                self.calls.insert(call, meta);
                self.shared.metrics.rejected(r.cause);
                self.proxy.reject(now, call, r.code, r.reason);
            }
            Decision::Route(routed) => {
                meta.record.company = routed.number.company.clone();
                meta.record.matched_rule = routed.rule.to_string();
                let trusted = snap
                    .settings
                    .trunks
                    .iter()
                    .any(|t| Some(&t.name) == trunk.as_ref() && t.trusted);
                let mut plan = fork_plan(&snap.table, &routed, called);
                if !trusted {
                    // Identity is asserted only by trusted trunks (RFC 3325 trust domain).
                    plan.remove_headers = vec!["P-Asserted-Identity", "P-Preferred-Identity"];
                }
                set_caller_id(&mut plan, &snap.table, &routed, ident, trusted);
                meta.ring = plan
                    .groups
                    .iter()
                    .flat_map(|g| g.targets.iter().map(|t| t.ring_timeout))
                    .max()
                    .unwrap_or(meta.ring);
                let refused = snap.settings.billing.as_ref().and_then(|b| {
                    self.shared
                        .with_prepaid(|p| p.admit(called.as_str(), ts))
                        .and_then(|ok| (!ok).then_some(b.refuse_code))
                });
                if let Some(refuse_code) = refused {
                    let r = Refusal::new(Disposition::Failed, "prepaid", refuse_code)
                        .why("prepaid balance exhausted")
                        .reason("Payment Required");
                    self.refuse(now, call, meta, r);
                    return;
                }
                if let Some(name) = &trunk {
                    // In a cluster the shared limits were checked with the decision (and the
                    // slot is already this call's); else this node's.
                    let why = match meta.cl.trunk.take() {
                        Some(v) => v,
                        None => self.shared.trunk_admit(snap, name, now),
                    };
                    if let Some(why) = why {
                        let r = Refusal::new(Disposition::Failed, "trunk_limit", 503)
                            .why(why)
                            .retry_after_1s();
                        self.refuse(now, call, meta, r);
                        return;
                    }
                    meta.trunk_slot = Some(name.clone());
                }
                self.calls.insert(call, meta);
                let (shared, calls, me) = (&self.shared, &mut self.calls, self.shard);
                let inbox = &self.dispatch;
                self.proxy.route_gated(now, call, plan, &mut |c, tag| {
                    gate(shared, calls, inbox, me, c, tag, now)
                });
            }
        }
    }

    /// The IVR key of a call (`;ivr=N` in the Request-URI), taken only from a media-server
    /// trunk: from anyone else it is ignored (and counted), or a caller could dial a
    /// department directly.
    fn ivr_key(&self, snap: &Snapshot, req: &Message, source: Peer) -> Option<u8> {
        let key = Uri::parse(req.request_uri())
            .and_then(|u| u.param("ivr"))
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.parse::<u8>().ok())?;
        let media = snap
            .settings
            .trunk_for(source.addr.ip())
            .is_some_and(|t| t.role == TrunkRole::MediaServer);
        if !media {
            self.shared.metrics.ivr_key_ignored();
            tracing::debug!(source = %source.addr, key, "ivr key ignored: not from a media server");
            return None;
        }
        Some(key)
    }

    /// Vet a target's 3xx Contacts. Toll-fraud rule: a redirect may only lead to a host that
    /// is already a configured target's next hop, and a numeric user part must be a domestic
    /// number (mobile or fixed line); anything else is refused and logged.
    fn on_redirect(&mut self, call: CallHandle, contacts: &[Bytes]) {
        let Some(meta) = self.calls.get(&call) else {
            return;
        };
        let table = &meta.snap.table;
        let mut targets = Vec::new();
        for c in contacts {
            let Some(peer) = Proxy::resolve_uri(c) else {
                tracing::warn!(contact = %String::from_utf8_lossy(c), "redirect refused: not an IP-literal next hop");
                continue;
            };
            let Some(t) = table.targets().iter().find(|t| t.next_hop == peer.addr) else {
                tracing::warn!(contact = %String::from_utf8_lossy(c), "redirect refused: host is not a configured target");
                continue;
            };
            let user = Uri::parse(c).map(|u| u.user).unwrap_or(b"");
            if !uri_user_allowed(&String::from_utf8_lossy(user)) {
                tracing::warn!(contact = %String::from_utf8_lossy(c), "redirect refused: international or premium-rate number");
                continue;
            }
            targets.push(BranchTarget {
                uri: c.clone(),
                dest: peer,
                ring_timeout: meta.ring,
                tag: t.id.0,
            });
        }
        self.proxy.add_targets(call, targets);
    }

    fn on_attempt(&mut self, a: AttemptInfo) {
        let rec_id = self.next_id("a");
        let clock = self.clock;
        let Some(meta) = self.calls.get_mut(&a.call) else {
            return;
        };
        let table = &meta.snap.table;
        let target = table
            .try_target(TargetId(a.target))
            .map(|t| t.name.to_string())
            .unwrap_or_default();
        // A slot taken by the gate is released when the attempt ends, unless it answered.
        if a.outcome == Outcome::Answered {
            meta.answered = Some(a.target);
        } else if a.outcome != Outcome::LimitReached {
            if let Some(t) = table.try_target(TargetId(a.target)) {
                self.shared.live.release(t);
                if let Some(link) = &self.shared.cluster {
                    link.release(&t.name, &meta.record.call_id);
                }
            }
        } else {
            meta.cl.consume(a.target);
        }
        meta.targets.insert(a.attempt, a.target);
        let rec = AttemptRecord {
            record_id: rec_id,
            call_record_id: meta.record.record_id.clone(),
            call_id: meta.record.call_id.clone(),
            attempt: a.attempt,
            target,
            start: clock.ts(a.started),
            first_ring: a.first_ring.map(|t| clock.ts(t)),
            answer: a.answered.map(|t| clock.ts(t)),
            end: clock.ts(a.ended),
            code: a.code,
            reason: attempt_reason(a.outcome),
            number: meta.record.number.clone(),
        };
        self.shared.metrics.attempt_ended(rec.reason);
        self.shared.cdr.submit(Record::Attempt(rec));
    }

    fn on_call_ended(&mut self, c: CallInfo) {
        let clock = self.clock;
        let Some(mut meta) = self.calls.remove(&c.call) else {
            return;
        };
        if let Some(t) = meta.trunk_slot.take() {
            self.shared.trunk_release(&t);
            if let Some(link) = &self.shared.cluster {
                link.release(
                    &hotline_cluster::keys::trunk_lease_name(&t),
                    &meta.record.call_id,
                );
            }
        }
        // Slots granted to attempts that never started (the call ended while they were
        // decided).
        for (tag, a) in std::mem::take(&mut meta.cl.gate) {
            if a == Admission::Admit {
                if let Some(t) = meta.snap.table.try_target(TargetId(tag)) {
                    self.shared.live.release(t);
                    if let Some(link) = &self.shared.cluster {
                        link.release(&t.name, &meta.record.call_id);
                    }
                }
            }
        }
        if let Some(t) = meta.answered.take() {
            if let Some(t) = meta.snap.table.try_target(TargetId(t)) {
                self.shared.live.release(t);
                if let Some(link) = &self.shared.cluster {
                    link.release(&t.name, &meta.record.call_id);
                }
            }
        }
        let r = &mut meta.record;
        r.first_ring = c.first_ring.map(|t| clock.ts(t));
        r.answer = c.answered.map(|t| clock.ts(t));
        r.end = clock.ts(c.ended);
        r.final_code = c.code;
        r.attempts = c.attempts;
        r.answered_target = c
            .answered_target
            .and_then(|t| meta.snap.table.try_target(TargetId(t)))
            .map(|t| t.name.to_string())
            .unwrap_or_default();
        r.hangup_side = match (c.answered.is_some(), c.hangup) {
            (false, _) => HangupSide::None,
            (true, Hangup::Caller) => HangupSide::Caller,
            (true, Hangup::Callee) => HangupSide::Callee,
            (true, Hangup::System) => HangupSide::System,
        };
        r.disposition = if c.answered.is_some() {
            Disposition::Answered
        } else if c.cancelled {
            Disposition::Cancelled
        } else if let Some(d) = meta.disposition {
            d
        } else {
            match c.last_outcome {
                Some(Outcome::Busy) => Disposition::Busy,
                Some(Outcome::NoAnswer) => Disposition::NoAnswer,
                Some(Outcome::LimitReached) => Disposition::Limit,
                _ => Disposition::Failed,
            }
        };
        if r.reason.is_empty() {
            r.reason = match r.disposition {
                Disposition::Answered => "answered".into(),
                Disposition::Cancelled => "cancelled by caller".into(),
                Disposition::Busy => "busy".into(),
                Disposition::NoAnswer => "no answer".into(),
                Disposition::Limit => "target limit reached".into(),
                _ => format!("failed with {}", c.code),
            };
        }
        let since = |t: Instant| t.saturating_duration_since(c.started);
        self.shared.metrics.call_ended(
            r,
            meta.disposition.is_none(),
            c.answered.map(since),
            c.first_ring.map(since),
            since(c.ended),
        );
        // The one info line per call (docs/OPERATIONS.md, "Logs").
        tracing::info!(
            call_id = %r.call_id, number = %r.number, caller = %r.caller, trunk = %r.trunk,
            code = r.final_code, disposition = %r.disposition, attempts = r.attempts,
            target = %r.answered_target, "call ended"
        );
        if meta.answered_at.is_some() {
            let r = &meta.record;
            self.shared.with_prepaid(|p| {
                p.settle(
                    &r.number,
                    meta.reserved_minutes,
                    r.billable_minutes(),
                    r.start,
                    r.end,
                )
            });
        }
        if meta.cl.duplicate {
            // The call is the other node's: one CDR per call, written there.
            return;
        }
        if let Some(fence) = meta.cl.fence {
            // Published in Redis: the CDR is written by whoever claims the end (here, unless
            // another node took the call over).
            self.end_dialog(meta.record, fence);
            return;
        }
        self.shared.cdr.submit(Record::Call(meta.record));
    }
}

/// The admission gate of the hunt: on a single box [`admit`]; in a cluster the slot is
/// leased in Redis (the hunt waits for the answer, see `cluster`).
fn gate(
    shared: &Shared,
    calls: &mut HashMap<CallHandle, CallMeta>,
    dispatch: &Dispatch,
    shard: usize,
    call: CallHandle,
    tag: u32,
    now: Instant,
) -> Admission {
    match &shared.cluster {
        None => admit(&shared.live, calls, call, tag, now).into(),
        Some(link) => cluster::gate(link, &shared.live, calls, dispatch, shard, call, tag),
    }
}

/// The admission gate: per-target concurrency limits shared by every number.
fn admit(
    live: &Live,
    calls: &HashMap<CallHandle, CallMeta>,
    call: CallHandle,
    tag: u32,
    _now: Instant,
) -> bool {
    let Some(meta) = calls.get(&call) else {
        return false;
    };
    match meta.snap.table.try_target(TargetId(tag)) {
        Some(t) => live.try_acquire(t, jiff::Timestamp::now()),
        None => false,
    }
}

fn reject_disposition(cause: RejectCause) -> Disposition {
    match cause {
        RejectCause::BlockedRate => Disposition::BlockedRate,
        RejectCause::UnknownNumber | RejectCause::NotA400 | RejectCause::Suspended => {
            Disposition::Failed
        }
        _ => Disposition::BlockedList,
    }
}

/// A per-call seed for the random and weighted strategies.
fn call_seed(call_id: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    call_id.hash(&mut h);
    h.finish()
}

fn attempt_reason(o: Outcome) -> AttemptReason {
    match o {
        Outcome::Answered => AttemptReason::Answered,
        Outcome::NoAnswer => AttemptReason::Timeout,
        Outcome::Busy => AttemptReason::Busy,
        Outcome::Rejected | Outcome::GlobalFailure => AttemptReason::Rejected,
        Outcome::Unreachable => AttemptReason::Unreachable,
        Outcome::Redirected => AttemptReason::Redirected,
        Outcome::CancelledByHunt => AttemptReason::CancelledByHunt,
        Outcome::CancelledByCaller => AttemptReason::CancelledByCaller,
        Outcome::LimitReached => AttemptReason::LimitReached,
    }
}

/// Translate a routing decision into the proxy's fork plan.
fn fork_plan(table: &RouteTable, routed: &Routed<'_>, called: &Number400) -> ForkPlan {
    let plan = routed.plan;
    let branch = |m: &hotline_route::Member| -> Option<BranchTarget> {
        let t = table.try_target(m.target)?;
        Some(BranchTarget {
            uri: Bytes::from(t.uri.clone()),
            dest: Peer::new(
                match t.transport {
                    hotline_route::Transport::Udp => Transport::Udp,
                    hotline_route::Transport::Tcp => Transport::Tcp,
                },
                t.next_hop,
            ),
            ring_timeout: m.ring_timeout,
            tag: m.target.0,
        })
    };
    let groups: Vec<ForkGroup> = routed
        .groups()
        .map(|g| ForkGroup {
            parallel: g.group.mode == Mode::Simultaneous,
            targets: g.members().filter_map(branch).collect(),
        })
        .collect();
    // 遇忙 / 无应答 / 不可达转移: per target (its destination rings as long as the member did)
    // and per plan (when the hunt has failed, like the on_fail target).
    let by_cause = |f: &hotline_route::ForwardOn, ring: Duration| -> ByCause {
        let to = |t: Option<TargetId>| {
            branch(&hotline_route::Member {
                target: t?,
                ring_timeout: ring,
                weight: 1,
            })
        };
        ByCause {
            busy: to(f.busy),
            no_answer: to(f.no_answer),
            unreachable: to(f.unreachable),
        }
    };
    // The plan's members, then (each once) the destinations their forwards lead to.
    let mut forwards: Vec<(u32, ByCause)> = Vec::new();
    let mut todo: Vec<(TargetId, Duration)> = routed
        .groups()
        .flat_map(|g| g.members().map(|m| (m.target, m.ring_timeout)))
        .collect();
    todo.reverse();
    let mut seen: Vec<u32> = Vec::new();
    while let Some((id, ring)) = todo.pop() {
        if seen.contains(&id.0) {
            continue;
        }
        seen.push(id.0);
        let Some(t) = table.try_target(id) else {
            continue;
        };
        if !t.forward_on.is_empty() {
            forwards.push((id.0, by_cause(&t.forward_on, ring)));
            todo.extend(t.forward_on.entries().map(|(_, to)| (to, ring)));
        }
    }
    let fallback_by_cause = by_cause(
        &plan.forward_on,
        plan.wait_cap.unwrap_or(Duration::from_secs(60)),
    );
    let (fail_code, fallback) = match plan.on_fail {
        Fallback::BestResponse => (None, None),
        Fallback::Code(c) => (Some(c), None),
        Fallback::Target(t) => {
            // The final target (voicemail, announcement), tried once the hunt has failed,
            // also when the wait cap ended it (unless `wait_cap_skips_on_fail`).
            let ring = plan.wait_cap.unwrap_or(Duration::from_secs(60));
            let m = hotline_route::Member {
                target: t,
                ring_timeout: ring,
                weight: 1,
            };
            (None, branch(&m))
        }
    };
    // RFC 5806 Diversion: the callee sees the call came via the 400 line, and why (a time
    // rule's plan: time-of-day); the proxy adds the hunt's earlier steps.
    let time_rule = routed
        .number
        .rules
        .iter()
        .find(|r| r.name == routed.rule)
        .is_some_and(|r| r.when.is_time_based());
    let diversion = Diversion {
        from: format!("<tel:+86{}>", called.as_str()).into_bytes(),
        reason: if time_rule {
            "time-of-day"
        } else {
            "unconditional"
        },
    };
    ForkPlan {
        groups,
        ring_from_18x: plan.ring_from == RingFrom::First18x,
        wait_cap: plan.wait_cap,
        advance: Advance {
            busy: plan.advance_on.busy,
            no_answer: plan.advance_on.no_answer,
            unreachable: plan.advance_on.unreachable,
            rejected: plan.advance_on.rejected,
            global_failure: false,
        },
        suppress_early_media: plan.early_media == EarlyMedia::Suppress,
        fail_code,
        fallback,
        cap_skips_fallback: plan.wait_cap_skips_on_fail,
        forwards,
        fallback_by_cause,
        // Set by `set_caller_id`.
        caller_id: Presentation::default(),
        caller_id_by_target: Vec::new(),
        add_headers: Vec::new(),
        diversion: Some(diversion),
        remove_headers: Vec::new(),
        max_duration: plan.max_duration,
        history_info: true,
        limit_is_busy: plan.on_target_busy_local == OnTargetBusyLocal::TreatAsBusy,
    }
}

/// 来电显示: what each callee of `plan` is shown as the caller, from the number's `caller_id`
/// and the targets' own. The caller's number is not shown to anyone when it asked for
/// privacy (RFC 3323 `Privacy: id` / `user` / `header`) or has none.
/// What the caller-ID presentation needs of an INVITE: whether the caller asked for privacy
/// (RFC 3323 `Privacy: id / user / header`) and whether it carries a P-Asserted-Identity.
/// Taken when the INVITE arrives, so a decision taken later (a cluster node waiting for Redis)
/// does not need the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReqIdentity {
    pub privacy: bool,
    pub has_pai: bool,
}

impl ReqIdentity {
    pub fn of(req: &Message) -> ReqIdentity {
        ReqIdentity {
            privacy: req.headers("Privacy").any(|v| {
                v.split(|&b| b == b';').any(|t| {
                    let t = t.trim_ascii();
                    t.eq_ignore_ascii_case(b"id")
                        || t.eq_ignore_ascii_case(b"user")
                        || t.eq_ignore_ascii_case(b"header")
                })
            }),
            has_pai: req.header("P-Asserted-Identity").is_some(),
        }
    }
}

fn set_caller_id(
    plan: &mut ForkPlan,
    table: &hotline_route::RouteTable,
    routed: &hotline_route::Routed<'_>,
    ident: ReqIdentity,
    trusted: bool,
) {
    use hotline_route::{CallerId, CallerKind};
    let called = routed.number.number.as_str().to_owned();
    let caller = &routed.caller;
    let private = caller.kind == CallerKind::Unknown || ident.privacy;
    let has_pai = ident.has_pai;
    let make = |mode: CallerId| -> Presentation {
        match mode {
            CallerId::Caller => Presentation::default(),
            CallerId::Number => Presentation {
                from: Some((called.clone().into_bytes(), called.clone().into_bytes())),
                asserted: None,
                hide_asserted: true,
            },
            CallerId::NumberAndCaller => {
                let shown = if private {
                    "Anonymous".to_owned()
                } else {
                    caller.normalized().to_owned()
                };
                // A trusted trunk's caller: keep its P-Asserted-Identity, or assert the number
                // it vouched for in From; an untrusted one's number is shown, never asserted.
                let asserted = (trusted && !private && !has_pai)
                    .then(|| e164_tel(caller.normalized()).into_bytes());
                Presentation {
                    from: Some((shown.into_bytes(), called.clone().into_bytes())),
                    asserted,
                    hide_asserted: private,
                }
            }
        }
    };
    let default = routed.number.caller_id;
    plan.caller_id = make(default);
    let mut tags: Vec<u32> = plan
        .groups
        .iter()
        .flat_map(|g| g.targets.iter().map(|t| t.tag))
        .chain(plan.fallback.iter().map(|t| t.tag))
        .chain(plan.forwards.iter().flat_map(|(_, f)| {
            [&f.busy, &f.no_answer, &f.unreachable]
                .into_iter()
                .flatten()
                .map(|t| t.tag)
        }))
        .chain(
            [
                &plan.fallback_by_cause.busy,
                &plan.fallback_by_cause.no_answer,
                &plan.fallback_by_cause.unreachable,
            ]
            .into_iter()
            .flatten()
            .map(|t| t.tag),
        )
        .collect();
    tags.sort_unstable();
    tags.dedup();
    for tag in tags {
        let own = table.try_target(TargetId(tag)).and_then(|t| t.caller_id);
        if let Some(mode) = own.filter(|m| *m != default) {
            plan.caller_id_by_target.push((tag, make(mode)));
        }
    }
}

/// `<tel:+86...>` for a normalised mainland number (a fixed line loses its leading 0).
fn e164_tel(n: &str) -> String {
    format!("<tel:+86{}>", n.strip_prefix('0').unwrap_or(n))
}

/// The number a call is screened and routed by: the From user if it is a usable number; if
/// not (anonymous), the P-Asserted-Identity's from a trusted trunk (RFC 3325: the network
/// asserts it, the caller only asked not to show it) when that is one; else the From user as
/// it is (the routing core then treats the caller as anonymous).
fn screening_identity(req: &Message, from_user: String, trusted: bool) -> String {
    if !trusted || normalize_caller(&from_user).kind != hotline_route::CallerKind::Unknown {
        return from_user;
    }
    let asserted = req
        .headers("P-Asserted-Identity")
        .filter_map(Uri::parse_name_addr)
        .map(|u| String::from_utf8_lossy(u.user).into_owned())
        .find(|u| normalize_caller(u).kind != hotline_route::CallerKind::Unknown);
    asserted.unwrap_or(from_user)
}

/// The normalised caller and its region (province, city) on a call record: the same
/// normalisation and region lookup the routing core screens and routes with.
fn caller_fields(record: &mut CallRecord, table: &hotline_route::RouteTable, caller_raw: &str) {
    let caller = normalize_caller(caller_raw);
    record.caller = caller.normalized().to_owned();
    if let Some(region) = table.regions().lookup(&caller) {
        record.caller_province = region.province.to_owned();
        record.caller_city = region.city.to_owned();
    }
}

fn cdr_config(s: &hotline_config::Settings) -> hotline_cdr::WriterConfig {
    hotline_cdr::WriterConfig {
        dir: s.cdr.dir.clone(),
        format: match s.cdr.format {
            hotline_config::CdrFormat::Csv => hotline_cdr::Format::Csv,
            hotline_config::CdrFormat::Jsonl => hotline_cdr::Format::Jsonl,
        },
        fsync_interval: s.cdr.fsync_interval,
        rotate_bytes: s.cdr.rotate_bytes,
        rotate_every: match s.cdr.rotate_every {
            hotline_config::Rotate::Hourly => hotline_cdr::Rotate::Hourly,
            hotline_config::Rotate::Daily => hotline_cdr::Rotate::Daily,
            hotline_config::Rotate::Never => hotline_cdr::Rotate::Never,
        },
        channel_capacity: 65536,
        spill_limit: 1_000_000,
    }
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

/// How a new call is refused before (or instead of) its hunt: the CDR's disposition and
/// reason, the `hotline_calls_rejected_total` cause, and the response sent.
struct Refusal {
    disposition: Disposition,
    why: Option<String>,
    cause: &'static str,
    code: u16,
    reason: &'static str,
    headers: &'static [(&'static str, &'static [u8])],
}

impl Refusal {
    fn new(disposition: Disposition, cause: &'static str, code: u16) -> Refusal {
        Refusal {
            disposition,
            why: None,
            cause,
            code,
            reason: "Service Unavailable",
            headers: &[],
        }
    }
    /// The CDR's `reason`.
    fn why(mut self, why: impl Into<String>) -> Refusal {
        self.why = Some(why.into());
        self
    }
    /// The response's reason phrase.
    fn reason(mut self, reason: &'static str) -> Refusal {
        self.reason = reason;
        self
    }
    /// `Retry-After: 1` on the response (a limit that frees up soon).
    fn retry_after_1s(mut self) -> Refusal {
        self.headers = &[("Retry-After", b"1")];
        self
    }
}

impl Core {
    /// Refuse a new call as `r` says; its CDR is written when the proxy reports the end.
    fn refuse(&mut self, now: Instant, call: CallHandle, mut meta: CallMeta, r: Refusal) {
        meta.disposition = Some(r.disposition);
        if let Some(why) = r.why {
            meta.record.reason = why;
        }
        self.calls.insert(call, meta);
        self.shared.metrics.rejected_as(r.cause);
        self.proxy
            .reject_with(now, call, r.code, r.reason, r.headers);
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Diversion reason of the first target: `time-of-day` when a time rule chose the
    /// plan (下班转手机), `unconditional` otherwise.
    #[test]
    fn diversion_reason_follows_the_rule_that_chose_the_plan() {
        let src = r#"
[companies.a]
[targets.desk]
uri = "sip:1@127.0.0.1:5070"
[targets.mobile]
uri = "sip:2@127.0.0.1:5071"
[plans.day]
groups = [{ members = ["desk"] }]
[plans.night]
groups = [{ members = ["mobile"] }]
[numbers."4008001234"]
company = "a"
plan = "day"
rules = [{ name = "night", time = "18:00-09:00", plan = "night" }]
"#;
        let c = match hotline_config::from_toml_str(
            src,
            "t.toml",
            1,
            jiff::civil::date(2026, 11, 24),
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let live = hotline_route::Live::new();
        let called = match normalize_called("4008001234") {
            Ok(n) => n,
            Err(e) => panic!("{e}"),
        };
        let reason = |at: &str| {
            let ts: jiff::Timestamp = at.parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            let ctx = CallContext::new(called, "13800138000");
            match resolve(&c.table, &live, &ctx, ts) {
                Decision::Route(r) => fork_plan(&c.table, &r, &called)
                    .diversion
                    .map(|d| (r.rule.to_string(), d.reason, d.from)),
                Decision::Reject(r) => panic!("{r:?}"),
            }
        };
        // 22:00 and 10:00 in Shanghai.
        assert_eq!(
            reason("2026-10-12T14:00:00Z"),
            Some((
                "night".into(),
                "time-of-day",
                b"<tel:+864008001234>".to_vec()
            ))
        );
        assert_eq!(
            reason("2026-10-12T02:00:00Z"),
            Some((
                "default".into(),
                "unconditional",
                b"<tel:+864008001234>".to_vec()
            ))
        );
    }
}

#[cfg(test)]
mod billing_error_tests {
    use super::*;

    /// #21 item 7: the `[server.billing] file` is named once (by `Error::Billing`), and a
    /// relative one says where it was looked for.
    #[test]
    fn billing_file_errors_name_it_once() {
        let missing = std::path::Path::new("rates/none.toml");
        let Err(e) = hotline_config::billing::load_billing(missing) else {
            panic!("no such file");
        };
        let text = Error::Billing {
            file: missing.to_path_buf(),
            message: billing_error(missing, &e),
        }
        .to_string();
        assert_eq!(text.matches("rates/none.toml").count(), 2, "{text}");
        assert!(
            text.contains("relative to the directory Hotline was started in: /"),
            "{text}"
        );
        let Ok(dir) = tempfile::tempdir() else {
            panic!("tempdir");
        };
        let bad = dir.path().join("billing.toml");
        let _ = std::fs::write(&bad, "[plans.std]\nrate_per_minute = \"x\"\n");
        let Err(e) = hotline_config::billing::load_billing(&bad) else {
            panic!("invalid");
        };
        let text = Error::Billing {
            file: bad.clone(),
            message: billing_error(&bad, &e),
        }
        .to_string();
        assert_eq!(
            text.matches(&bad.display().to_string()).count(),
            1,
            "{text}"
        );
    }
}
