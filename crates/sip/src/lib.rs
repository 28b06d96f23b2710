//! Hotline's sans-IO SIP core.
//!
//! Owns: turning bytes into SIP messages (framing for datagrams and streams, a zero-copy index of
//! the headers a proxy needs), splicing forwarded messages out of received bytes, the RFC 3261
//! §17 transaction state machines, and the §16 forking proxy core.
//!
//! Must not: open sockets, spawn tasks, sleep or read the clock. Every entry point takes bytes or
//! an event plus `now: Instant`; outputs are messages to transmit, events for the transaction
//! user, and the next deadline. Knows nothing about 400 numbers or routing rules: the proxy core
//! asks its user for a [`proxy::ForkPlan`] and executes it.
//!
//! # Layout
//! - [`frame`]: datagram and stream framing (Content-Length, size caps).
//! - [`msg`]: [`msg::Message`], a parsed message as `Bytes` plus a fixed-size header index.
//! - [`uri`]: borrowing SIP/tel URI parsing (user, host, port, params).
//! - `scan`: byte-scan helpers and RFC 3261 character classes, below all of the above (no
//!   module of the crate is imported by it).
//! - [`rewrite`]: building forwarded requests/responses and local responses by splicing bytes.
//! - [`idmap`]: the proxy's id-keyed maps, split so that growing never stalls a shard.
//! - [`txn`]: client/server INVITE and non-INVITE transactions with timers A–M.
//! - [`proxy`]: the transaction-stateful forking proxy core.
#![forbid(unsafe_code)]

pub mod frame;
pub mod idmap;
pub mod msg;
pub mod proxy;
pub mod rewrite;
mod scan;
pub mod txn;
pub mod uri;

pub use frame::{Datagram, Framed, Limits, StreamFramer};
pub use msg::{Message, Method, ParseError, Via};
