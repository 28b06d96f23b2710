//! `[server]`: listeners, SIP timers, CDR output, trunks, admin endpoint.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Process settings from the `[server]` section. Every key is documented in docs/config.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Addresses to listen on, UDP and TCP on each (default `["127.0.0.1:5060"]`).
    pub listen: Vec<SocketAddr>,
    /// SIP protocol settings.
    pub sip: SipSettings,
    /// CDR output.
    pub cdr: CdrSettings,
    /// Carrier trunks calls may come from.
    pub trunks: Vec<Trunk>,
    /// Admin (metrics, reload) HTTP endpoint; `None` when `admin = "off"` (default `127.0.0.1:9060`).
    pub admin: Option<SocketAddr>,
    /// Prepaid enforcement; `None` when `[server.billing]` is absent.
    pub billing: Option<BillingSettings>,
    /// Shards (threads, each with its own UDP socket); 0 = one per CPU core.
    pub workers: usize,
    /// Wake-up coalescing window of each shard (`server.coalesce_us`; zero = off): after a
    /// wake-up that found only a few datagrams the shard waits this long before it polls
    /// its socket again, so that one wake-up serves many datagrams.
    pub coalesce: Duration,
    /// SIP from neither a trunk nor a target: dropped (default) or answered 403.
    pub unknown_sources: UnknownSources,
    /// Log filter (`info`, `debug`, `info,hotline_sip=trace`) applied at start and on every
    /// reload; `None` leaves the level to `HOTLINE_LOG` / `hotline log-level`.
    pub log_level: Option<String>,
    /// `[cluster]`: shared live state in Redis; `None` = the single box (no Redis).
    pub cluster: Option<crate::cluster::ClusterSettings>,
    /// `[server.api]`: the company API and console; `None` = off (the default).
    pub api: Option<ApiSettings>,
}

/// `[server.api]` (docs/API.md). Read at start, like the admin address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    /// Listener of the API and the console (its own, not the admin endpoint's).
    pub listen: SocketAddr,
    /// The token file (hashed tokens); relative paths are relative to the main config file's
    /// directory.
    pub tokens: PathBuf,
    /// The audit log (JSON lines); `None` = `api-audit.jsonl` in the CDR directory.
    pub audit_log: Option<PathBuf>,
    /// Largest request body accepted (default 65536).
    pub max_body_bytes: usize,
    /// Whether a company may bind a `sip:` URI (default false: phone numbers only, through
    /// `gateway`). The operator token may always.
    pub allow_sip_uri: bool,
    /// The `[gateways.NAME]` a company's phone numbers are reached through.
    pub gateway: Option<String>,
    /// Serve the web console at `/` (default true).
    pub console: bool,
}

/// `[server.sip]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipSettings {
    /// RFC 3261 T1, RTT estimate (default 500 ms).
    pub t1: Duration,
    /// RFC 3261 T2, maximum retransmit interval for non-INVITE (default 4 s).
    pub t2: Duration,
    /// RFC 3261 T4, maximum time a message stays in the network (default 5 s).
    pub t4: Duration,
    /// Largest SIP message accepted (default 65536).
    pub max_message_bytes: usize,
    /// Idle TCP connections are closed after this (default 60 s).
    pub tcp_idle_timeout: Duration,
    /// A message begun on a TCP connection must be complete within this (default 10 s):
    /// slow-drip senders are cut off.
    pub tcp_header_timeout: Duration,
    /// Open TCP connections at most (default 4096); further connections are closed at once.
    pub tcp_max_connections: usize,
}

/// What happens to SIP from an address that is neither a trunk nor a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownSources {
    /// No answer at all (default): scanners learn nothing.
    #[default]
    Drop,
    /// Requests get `403 Forbidden` (statelessly); responses are dropped.
    Reject,
}

/// CDR file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CdrFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// When CDR files are rotated by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotate {
    /// A new file every hour.
    Hourly,
    /// A new file every day (default).
    Daily,
    /// Only by size.
    Never,
}

/// `[server.cdr]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrSettings {
    /// Directory for CDR files (default `./cdr`).
    pub dir: PathBuf,
    /// File format (default CSV).
    pub format: CdrFormat,
    /// Longest time a written record waits for fsync (default 200 ms).
    pub fsync_interval: Duration,
    /// Rotate when a file reaches this size (default 100 MiB; 0 = never by size).
    pub rotate_bytes: u64,
    /// Rotate by time (default daily).
    pub rotate_every: Rotate,
    /// Shipping to NATS JetStream (`[server.cdr.ship]`); `None`: off (the default).
    pub ship: Option<ShipSettings>,
}

/// `[server.cdr.ship]`: stream every CDR to NATS JetStream (docs/cdr.md, docs/config.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipSettings {
    /// NATS servers, `nats://host:port` (required).
    pub urls: Vec<String>,
    /// Node name in record ids; `None`: the cluster's node name, else the host name (the
    /// server resolves it in one place).
    pub node: Option<String>,
    /// JetStream stream (default `CDR`), created when missing.
    pub stream: String,
    /// Subjects are `<subject_prefix>.<400 number>` (default `cdr`).
    pub subject_prefix: String,
    /// Replicas of a created stream (default 1).
    pub replicas: usize,
    /// Retention by age of a created stream; zero = no age limit (default 0).
    pub max_age: Duration,
    /// Retention by size of a created stream, bytes; 0 = no limit (default 0).
    pub max_bytes: u64,
    /// JetStream duplicate window of a created stream (default 2 min).
    pub duplicate_window: Duration,
    /// Records per publish batch (default 1000).
    pub batch: usize,
    /// How often the CDR files are checked for new records (default 200 ms).
    pub poll_interval: Duration,
    /// Longest wait for an ack (default 5 s).
    pub ack_timeout: Duration,
    /// Longest pause between two tries of a failing record (default 5 s).
    pub retry_max: Duration,
    /// The checkpoint file; `None`: `SHIP_CHECKPOINT` in the CDR directory.
    pub checkpoint: Option<PathBuf>,
}

impl Default for ShipSettings {
    fn default() -> Self {
        ShipSettings {
            urls: Vec::new(),
            node: None,
            stream: "CDR".into(),
            subject_prefix: "cdr".into(),
            replicas: 1,
            max_age: Duration::ZERO,
            max_bytes: 0,
            duplicate_window: Duration::from_secs(120),
            batch: 1000,
            poll_interval: Duration::from_millis(200),
            ack_timeout: Duration::from_secs(5),
            retry_max: Duration::from_secs(5),
            checkpoint: None,
        }
    }
}

/// `[[server.trunks]]`: where calls may come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// Name for logs, CDRs and `CallContext::trunk`.
    pub name: String,
    /// Source networks as (address, prefix length) CIDRs.
    pub sources: Vec<(IpAddr, u8)>,
    /// Whether identity headers (P-Asserted-Identity) from this trunk are believed.
    pub trusted: bool,
    /// What sends calls from it: a carrier, or a media server (IVR) sending calls back.
    pub role: TrunkRole,
    /// New calls per second taken from this trunk (token bucket, burst = one second's worth);
    /// beyond it new INVITEs get 503 + Retry-After. `None`: no limit.
    pub max_cps: Option<u32>,
    /// Calls in progress (ringing or answered) from this trunk; beyond it 503. `None`: no limit.
    pub max_calls: Option<u32>,
}

/// `[server.billing]`: prepaid enforcement on the call path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingSettings {
    /// The rate plans and accounts (the file `hotline bill` reads), relative to the working
    /// directory like `server.cdr.dir`.
    pub file: PathBuf,
    /// Code for a call refused because the balance cannot pay one minute (default 402).
    pub refuse_code: u16,
    /// Warn (log + metric) when a balance falls below this, in fen (default 5000 = 50 元).
    pub low_balance_fen: i64,
}

/// What a trunk is (`[[server.trunks]] role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrunkRole {
    /// A carrier interconnect (default): an IVR key (`;ivr=N` in the Request-URI) from it is
    /// ignored, so a caller cannot choose a department by dialling it.
    #[default]
    Carrier,
    /// A media server that plays a 400 number's voice menu and sends the call back with the
    /// key pressed: the only source whose `;ivr=N` routes.
    MediaServer,
}

impl Trunk {
    /// Whether `ip` is inside one of this trunk's networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.sources
            .iter()
            .any(|&(net, len)| cidr_contains(net, len, ip))
    }
}

/// Whether `ip` is in `net/len`. Mixed address families never match.
pub fn cidr_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            (u32::from(n) & mask) == (u32::from(i) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            (u128::from(n) & mask) == (u128::from(i) & mask)
        }
        _ => false,
    }
}

impl Settings {
    /// The first trunk whose networks contain `ip`.
    pub fn trunk_for(&self, ip: IpAddr) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.contains(ip))
    }
}

impl Default for SipSettings {
    fn default() -> Self {
        SipSettings {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            max_message_bytes: 65536,
            tcp_idle_timeout: Duration::from_secs(60),
            tcp_header_timeout: Duration::from_secs(10),
            tcp_max_connections: 4096,
        }
    }
}

impl Default for CdrSettings {
    fn default() -> Self {
        CdrSettings {
            dir: PathBuf::from("./cdr"),
            format: CdrFormat::Csv,
            fsync_interval: Duration::from_millis(200),
            rotate_bytes: 100 * 1024 * 1024,
            rotate_every: Rotate::Daily,
            ship: None,
        }
    }
}

/// `server.coalesce_us` when absent (docs/PERFORMANCE.md, "Wake-up coalescing", has the
/// measured trade-off it was chosen from).
pub const DEFAULT_COALESCE: Duration = Duration::from_micros(0);
/// Longest `server.coalesce_us` accepted: a pause adds up to this to every hop.
pub const MAX_COALESCE: Duration = Duration::from_millis(1);

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5060))],
            sip: SipSettings::default(),
            cdr: CdrSettings::default(),
            trunks: Vec::new(),
            admin: Some(SocketAddr::from(([127, 0, 0, 1], 9060))),
            billing: None,
            workers: 0,
            coalesce: DEFAULT_COALESCE,
            unknown_sources: UnknownSources::Drop,
            log_level: None,
            cluster: None,
            api: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let n: IpAddr = [127, 0, 0, 0].into();
        assert!(cidr_contains(n, 8, [127, 1, 2, 3].into()));
        assert!(!cidr_contains(n, 8, [10, 0, 0, 1].into()));
        assert!(cidr_contains(n, 0, [10, 0, 0, 1].into()));
        assert!(cidr_contains(
            [10, 0, 0, 1].into(),
            32,
            [10, 0, 0, 1].into()
        ));
        let v6: IpAddr = "::1".parse().unwrap_or(n);
        assert!(cidr_contains(v6, 128, v6));
        assert!(!cidr_contains(n, 8, v6));
    }
}
