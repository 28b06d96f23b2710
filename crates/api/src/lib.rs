//! The company-facing HTTP API and web console (`[server.api]`, docs/API.md).
//!
//! Owns: the `/api/v1` routes and their OpenAPI document, API tokens (argon2 hashes in a token
//! file, rate-limited checks), the isolation of one company from another, edits of a company's
//! TOML file (`toml_edit`, comments kept) that are compiled by `hotline-config` exactly as
//! `hotline check` does before they are written atomically and reloaded, the audit log, call
//! records and statistics from the CDR files, the live call feed (server-sent events), and
//! the static console files built into the binary.
//!
//! Must not: know SIP or the server's internals. The server hands it a [`Host`] (the running
//! table, reload) and publishes call events into a [`Feed`]; everything else is files.
//!
//! # Layout
//! - [`model`]: request and response bodies.
//! - `auth`: the token file, verification, rate limiting, the verified-token cache.
//! - `edit`: the pure edits of a company's TOML document (unit-tested, no disk).
//! - `store`: the config files: which file is a company's, check, atomic write, audit.
//! - `records`: call records and statistics of a company's numbers.
//! - `routes`: the HTTP handlers, errors, the OpenAPI document, the console.
#![forbid(unsafe_code)]

mod auth;
mod edit;
pub mod model;
mod records;
mod routes;
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

pub use auth::{hash_secret, new_token, TokenLine};

/// A call event for the live feed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LiveEvent {
    /// `ringing` (a target is being tried), `answered`, `ended`.
    pub kind: &'static str,
    /// RFC 3339, UTC.
    pub at: String,
    pub call_id: String,
    pub number: String,
    pub caller: String,
    /// The target ringing / answering (its name); empty when none.
    pub target: String,
    /// `ended` only: the CDR disposition and final code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub talk_seconds: Option<f64>,
}

/// Where the server publishes call events. Cheap to clone; publishing never blocks, and when
/// nobody listens the event is not even built.
#[derive(Clone, Debug)]
pub struct Feed(broadcast::Sender<Arc<LiveEvent>>);

impl Default for Feed {
    fn default() -> Self {
        Feed::new()
    }
}

impl Feed {
    /// Events a slow listener may lag behind before it misses some (it is told).
    pub const CAPACITY: usize = 1024;

    pub fn new() -> Feed {
        Feed(broadcast::channel(Self::CAPACITY).0)
    }

    /// Whether anyone listens (the call path skips building events otherwise).
    pub fn active(&self) -> bool {
        self.0.receiver_count() > 0
    }

    /// Publish; `make` runs only when someone listens.
    pub fn publish(&self, make: impl FnOnce() -> LiveEvent) {
        if self.active() {
            let _ = self.0.send(Arc::new(make()));
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.0.subscribe()
    }
}

/// A boxed future (the reload answer).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the running server offers the API.
pub trait Host: Send + Sync + 'static {
    /// The company that owns `number` in the running table.
    fn company_of(&self, number: &str) -> Option<String>;
    /// `hotline explain` against the running table (empty live state).
    fn explain(
        &self,
        number: hotline_route::Number400,
        caller: &str,
        key: Option<u8>,
        at: jiff::Timestamp,
    ) -> hotline_route::Explanation;
    /// The running config generation.
    fn generation(&self) -> u64;
    /// Reload through the server's one reload path (`hotline reload`, SIGHUP, the watcher).
    fn reload(&self) -> BoxFuture<Result<String, String>>;
}

/// What the API needs to start.
pub struct ApiConfig {
    pub settings: hotline_config::ApiSettings,
    /// The `--config` path (file or directory) the server loads and reloads.
    pub config_path: PathBuf,
    /// The CDR directory (records, statistics).
    pub cdr_dir: PathBuf,
}

/// Errors starting the API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr} (server.api.listen): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server.api: {0}")]
    Config(String),
}

/// Bind the listener and serve the API on the current tokio runtime. Returns the bound address.
pub async fn start(cfg: ApiConfig, host: Arc<dyn Host>, feed: Feed) -> Result<SocketAddr, Error> {
    let addr = cfg.settings.listen;
    let state = routes::State::new(cfg, host, feed)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let app = routes::router(Arc::new(state));
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the API listener stopped");
        }
    });
    Ok(bound)
}

/// The OpenAPI document (JSON), as `GET /api/v1/openapi.json` serves it.
pub fn openapi_json() -> String {
    routes::openapi_json()
}
