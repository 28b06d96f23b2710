//! Hotline's I/O shell.
//!
//! Owns: the UDP and TCP sockets, the task that drives the sans-IO proxy core
//! (`hotline_sip::proxy`) with real time, the routing snapshot (swapped whole on reload), the
//! live routing state, and turning proxy events into CDR records.
//!
//! Must not: parse or build SIP itself (that is `hotline-sip`), decide routes (that is
//! `hotline-route`), or block the call path on disk (CDRs go through `hotline-cdr`'s
//! non-blocking sink).
//!
//! # Layout
//! - [`transport`]: sockets, TCP connections, framing, idle timeouts.
//! - [`poller`]: a shard's event loop primitive: epoll on its socket, an eventfd bell.
//! - [`alarm`]: a shard's one timer, aimed at its earliest deadline on a 10 ms grid.
//! - [`cluster`]: `[cluster]`: the Redis link, replies of its tasks to the shards, a call's
//!   cluster state (parked decision, lease answers).
//! - [`core`]: the core task: proxy driver and transaction user (routing, limits, CDRs).
//! - [`logbuf`]: the shard threads' log lines, written in batches.
//! - [`prepaid`]: prepaid balances: admission, per-minute reservation, settlement.
//! - [`shipping`]: `[server.cdr.ship]` -> the CDR shipper to NATS JetStream (`hotline-ship`).
//! - [`snapshot`]: the routing snapshot and its reload.
//! - [`watch`]: reload when the config files change.
//! - [`metrics`]: live counters and gauges (`metrics.rs`: recording), every family declared once
//!   (`metrics/families.rs`), rendered in Prometheus text format (`metrics/render.rs`).
//! - [`api`]: `[server.api]`: starts the company API and console (`hotline-api`).
//! - [`admin`]: the admin HTTP endpoint (`/metrics`, `/healthz`, `/readyz`, `/status`, `/reload`, `/log-level`).
// `deny`, not `forbid`: `mmsg` (sendmmsg(2), a measured need: docs/PERFORMANCE.md) lifts it
// for its one system call; no other module may.
#![deny(unsafe_code)]

pub mod admin;
pub mod alarm;
pub mod api;
pub mod cluster;
pub mod coalesce;
pub mod core;
pub mod logbuf;
pub mod metrics;
mod mmsg;
pub mod poller;
pub mod prepaid;
pub mod shipping;
pub mod snapshot;
pub mod transport;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hotline_config::Compiled;
use tokio::sync::{mpsc, oneshot};

pub use snapshot::Snapshot;

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr} (server.listen): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the CDR writer in {dir}: {source}")]
    Cdr {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("no listen address configured")]
    NoListen,
    #[error("cannot load the billing file {file}: {message}")]
    Billing { file: PathBuf, message: String },
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("{0}")]
    Api(String),
}

/// A request to the running core.
#[derive(Debug)]
pub enum Control {
    /// Re-read the config files and swap the snapshot; replies with a summary or every error.
    Reload(oneshot::Sender<Result<String, String>>),
    /// Stop taking calls, finish, flush CDRs.
    Shutdown,
}

/// How often the config files are checked for changes.
pub const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Handle of a running server.
pub struct Running {
    /// The SIP address actually bound (port 0 in the config resolves to a real port): the
    /// first of `listen`.
    pub local: SocketAddr,
    /// Every SIP address bound (UDP and TCP on each), in the order of `server.listen`.
    pub listen: Vec<SocketAddr>,
    /// The admin HTTP address actually bound (`None` when `admin = "off"`).
    pub admin: Option<SocketAddr>,
    /// The company API's address (`None` without `[server.api]`).
    pub api: Option<SocketAddr>,
    /// Live counters (what `/metrics` shows).
    pub metrics: Arc<metrics::Metrics>,
    control: mpsc::Sender<Control>,
    join: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Reload the configuration from the files it was loaded from.
    pub async fn reload(&self) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::Reload(tx))
            .await
            .map_err(|_| "server stopped".to_owned())?;
        rx.await.map_err(|_| "server stopped".to_owned())?
    }

    /// A sender for control messages (signal handlers).
    pub fn control(&self) -> mpsc::Sender<Control> {
        self.control.clone()
    }

    /// Ask the server to stop and wait until it has flushed its CDRs.
    pub async fn shutdown(self) {
        let _ = self.control.send(Control::Shutdown).await;
        let _ = self.join.await;
    }

    /// Wait until the server stops by itself (after a Shutdown sent through `control`).
    pub async fn wait(self) {
        let _ = self.join.await;
    }
}

/// Start Hotline with a compiled configuration. `source` is where it came from (a path to
/// re-read on reload; `None` for the embedded default, which reloads to itself).
pub async fn start(compiled: Compiled, source: Option<PathBuf>) -> Result<Running, Error> {
    start_with(compiled, source, Options::default()).await
}

/// What the binary hands the server besides the config.
#[derive(Default)]
pub struct Options {
    /// Version and build, shown by `/status` and `hotline_build_info`.
    pub build: metrics::BuildInfo,
    /// Runtime log filter control for `/log-level`.
    pub log_level: Option<admin::LogLevelHook>,
}

/// [`start`] with build info and a log-level hook. The admin endpoint (if configured) is bound
/// first, so `/readyz` answers 503 until the SIP listeners and the CDR writer are up.
pub async fn start_with(
    compiled: Compiled,
    source: Option<PathBuf>,
    options: Options,
) -> Result<Running, Error> {
    let addr = *compiled.settings.listen.first().ok_or(Error::NoListen)?;
    let metrics = Arc::new(metrics::Metrics::new(options.build));
    let (control_tx, control_rx) = mpsc::channel(16);
    let log_hook = options.log_level.clone();
    let apply_level = move |level: Option<&String>| {
        if let (Some(hook), Some(level)) = (&log_hook, level) {
            match hook(Some(level)) {
                Ok(now) => tracing::info!(filter = %now, "log level from the config"),
                Err(e) => tracing::error!(error = %e, "server.log_level not applied"),
            }
        }
    };
    apply_level(compiled.settings.log_level.as_ref());
    let admin_state = Arc::new(admin::AdminState {
        metrics: metrics.clone(),
        control: control_tx.clone(),
        log_level: options.log_level,
        sip: std::sync::OnceLock::new(),
    });
    let admin = match compiled.settings.admin {
        Some(a) => {
            let listener = admin::bind(a)
                .await
                .map_err(|source| Error::Bind { addr: a, source })?;
            let bound = listener.local_addr().unwrap_or(a);
            if !bound.ip().is_loopback() {
                tracing::warn!(
                    "admin endpoint on {bound} is not loopback: it has no authentication"
                );
            }
            admin::spawn(listener, admin_state.clone());
            tracing::info!("admin endpoint http://{bound}");
            Some(bound)
        }
        None => None,
    };
    let workers = match compiled.settings.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let listeners = transport::bind(addr, workers)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let local = listeners.local;
    // Every further address is bound before anything starts: one that cannot be is an error.
    let mut more = Vec::new();
    for &addr in compiled.settings.listen.iter().skip(1) {
        more.push(
            transport::bind_more(addr)
                .await
                .map_err(|source| Error::Bind { addr, source })?,
        );
    }
    let listen: Vec<SocketAddr> = std::iter::once(local)
        .chain(more.iter().map(|m| m.local))
        .collect();
    let mut more_udp = Vec::with_capacity(more.len());
    for m in &more {
        let clone = m.udp.try_clone().map_err(|source| Error::Bind {
            addr: m.local,
            source,
        })?;
        more_udp.push(clone);
    }
    let more_udp = Arc::new(more_udp);
    let _ = admin_state.sip.set(local);
    if let Some(path) = &source {
        watch::spawn(path.clone(), WATCH_EVERY, control_tx.clone());
    }
    let snap = Arc::new(Snapshot::new(compiled, source).map_err(|b| b.into_error())?);
    let s = &snap.settings;
    let limits = hotline_sip::frame::Limits {
        max_message: s.sip.max_message_bytes,
    };
    let idle = s.sip.tcp_idle_timeout;
    let (shared, cdr_handle) = core::Shared::new(snap.clone(), metrics.clone())?;
    let shared = Arc::new(shared);
    let api = api::start(shared.clone(), control_tx.clone(), snap.source.clone()).await?;
    let ship = shipping::start(&snap.settings);
    if let Some(h) = &ship {
        metrics.set_ship(h.stats());
    }
    let mut inboxes = Vec::with_capacity(workers);
    let mut receivers = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = mpsc::channel(8192);
        inboxes.push(tx);
        receivers.push(rx);
    }
    let dispatch = transport::Dispatch {
        inboxes: Arc::new(inboxes),
        stats: metrics.transport.clone(),
    };
    if let Some(link) = &shared.cluster {
        metrics.set_cluster(link.clone());
        let sh = shared.clone();
        let version = metrics.build.version.clone();
        let node = link.settings.node.clone();
        link.start(
            move || {
                let snap = sh.current.load();
                hotline_cluster::NodeInfo {
                    node: node.clone(),
                    sip: local.to_string(),
                    config_hash: snap
                        .settings
                        .cluster
                        .as_ref()
                        .map_or_else(|| snap.table.hash().to_owned(), |c| c.config_hash.clone()),
                    generation: snap.table.generation(),
                    version: version.clone(),
                    ..Default::default()
                }
            },
            dispatch.inboxes.clone(),
            cluster::PrepaidHooks {
                usage: Box::new({
                    let sh = shared.clone();
                    move || sh.prepaid_own_usage()
                }),
                asks: Box::new({
                    let sh = shared.clone();
                    move || sh.prepaid_asks()
                }),
                note: Box::new({
                    let sh = shared.clone();
                    move |n, a| sh.prepaid_note(n, a)
                }),
            },
        );
        tracing::info!(node = %link.settings.node, redis = %link.settings.redis, address = %link.settings.address, "cluster node: live state in redis");
    }
    let tcp_limits = transport::TcpLimits {
        idle,
        header_timeout: s.sip.tcp_header_timeout,
        max_connections: s.sip.tcp_max_connections,
    };
    let tcp = transport::start_tcp(listeners.tcp, limits, tcp_limits, dispatch.clone());
    for (i, m) in more.into_iter().enumerate() {
        // `Peer::local` is a u8; the config allows at most 16 listen addresses.
        let local = u8::try_from(i + 1).unwrap_or(u8::MAX);
        tcp.accept_more(m.tcp, local);
        transport::start_udp_reader(local, m.udp, dispatch.clone());
    }
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(workers);
    for (i, (udp, inbox)) in listeners.udp.into_iter().zip(receivers).enumerate() {
        let core = core::Core::new(
            i,
            workers,
            shared.clone(),
            &listen,
            more_udp.clone(),
            dispatch.clone(),
            tcp.clone(),
            inbox,
            drain_rx.clone(),
        );
        let done = done_tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("hotline-shard-{i}"))
            .spawn(move || {
                core.run(udp);
                let _ = done.try_send(());
            });
        if let Err(e) = spawned {
            return Err(Error::Bind {
                addr: local,
                source: e,
            });
        }
    }
    drop(done_tx);
    // The control task: reloads, the stop signal, and the CDR flush once every shard is done.
    let ctl_shared = shared.clone();
    let join = tokio::spawn(async move {
        let mut control_rx = control_rx;
        let mut finished = 0;
        // Once every control sender is gone, `recv` is ready at once with `None`: stop
        // selecting on it (else the task spins until the shards have drained).
        let mut control_open = true;
        while finished < workers {
            tokio::select! {
                c = control_rx.recv(), if control_open => match c {
                    Some(Control::Reload(reply)) => {
                        let s = ctl_shared.clone();
                        let r = tokio::task::spawn_blocking(move || s.reload())
                            .await
                            .unwrap_or_else(|e| Err(format!("reload task failed: {e}")));
                        if r.is_ok() {
                            apply_level(ctl_shared.current.load().settings.log_level.as_ref());
                        }
                        let _ = reply.send(r);
                    }
                    Some(Control::Shutdown) | None => {
                        control_open &= c.is_some();
                        if !*drain_tx.borrow() {
                            ctl_shared.metrics.set_draining();
                            tracing::info!(
                                active_calls = ctl_shared.metrics.active_calls(),
                                "draining: new calls get 503"
                            );
                            let _ = drain_tx.send(true);
                        }
                    }
                },
                d = done_rx.recv() => match d {
                    Some(()) => finished += 1,
                    None => break,
                },
            }
        }
        match tokio::task::spawn_blocking(move || cdr_handle.shutdown()).await {
            Ok(Ok(stats)) => tracing::info!(?stats, "CDR writer flushed"),
            Ok(Err(e)) => tracing::error!(error = %e, "CDR writer shutdown failed"),
            Err(e) => tracing::error!(error = %e, "CDR writer shutdown task failed"),
        }
        if let Some(h) = ship {
            let grace = shipping::SHUTDOWN_GRACE;
            if let Ok(s) = tokio::task::spawn_blocking(move || h.shutdown(grace)).await {
                tracing::info!(lag_records = s.lag_records, "CDR shipper stopped");
            }
        }
    });
    metrics.set_listening(true);
    let all: Vec<String> = listen.iter().map(|a| format!("sip={a}")).collect();
    tracing::info!(
        "listening {} (udp+tcp on each, {workers} shards)",
        all.join(" ")
    );
    Ok(Running {
        local,
        listen,
        admin,
        api,
        metrics,
        control: control_tx,
        join,
    })
}
