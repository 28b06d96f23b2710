//! Test helpers for Hotline's end-to-end tests (publish = false).
//!
//! Owns: spawning the real `hotline` binary on an ephemeral loopback port and reading back its
//! log and CDRs ([`Hotline`]); running SIPp as caller or target with bounded time and parsing
//! what it did ([`Sipp`]); a raw UDP SIP client for hand-written messages ([`SipUdpClient`]);
//! the one template that turns a test's intent into a Hotline config ([`HotlineConfig`]).
//!
//! Must not: touch anything but 127.0.0.1; block without a deadline; depend on Hotline's
//! internal crates (it drives the binary from the outside, like an operator would); use
//! `unsafe` (signals are sent with the `kill` command).
//!
//! # Layout
//! - [`error`]: [`TestkitError`], the one error type.
//! - [`paths`]: workspace root, SIPp scenario directory, locating/building the `hotline` binary.
//! - [`ports`]: picking free loopback ports that no other test in this process holds.
//! - [`config`]: [`HotlineConfig`], the config template (adapt the schema here, in one place).
//! - [`hotline`]: [`Hotline`], the running switch (spawn, listening port, rewrite config +
//!   SIGHUP reload, stop, stderr log).
//! - [`sipp`]: [`Sipp`] builder, [`SippProcess`], [`SippResult`], message-log parsing.
//! - [`redis`]: [`RedisServer`], a real redis-server per test (free port, scratch dir,
//!   restart), with a tiny RESP client for assertions.
//! - [`http`]: [`http_request`], [`SseStream`]: a minimal HTTP/1.1 client and SSE reader (API tests).
//! - [`sip`]: [`SipUdpClient`], [`RawRequest`], [`SipMessage`] for hand-written SIP.
//! - [`proc`]: [`proc::Usage`], a process's CPU time, threads, fds and RSS from `/proc`.
//! - [`nats`]: [`NatsServer`], a real `nats-server` with JetStream on a free port and a scratch
//!   store, stoppable and restartable for outage tests.
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod hotline;
pub mod http;
pub mod nats;
pub mod paths;
pub mod ports;
pub mod proc;
pub mod redis;
pub mod sip;
pub mod sipp;

pub use config::{Group, HotlineConfig, Plan, Target, Trunk};
pub use error::TestkitError;
pub use hotline::{http_get, metric_value, Hotline};
pub use http::{api_token, http_request, HttpResponse, SseStream};
pub use nats::NatsServer;
pub use redis::{RedisServer, Resp};
pub use sip::{RawRequest, SipMessage, SipUdpClient};
pub use sipp::{Direction, LoggedMessage, Sipp, SippProcess, SippResult, Transport};
