//! `[cluster]`: several Hotline nodes sharing their live state in Redis (docs/CLUSTER.md).
//!
//! Without this section Hotline is the single box: live state in memory, no Redis. Every key
//! is documented in docs/config.md ("[cluster]").

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::compile::parse_duration;
use crate::schema::DurationRaw;

/// The raw `[cluster]` table.
#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub redis: Option<Spanned<String>>,
    pub node: Option<Spanned<String>>,
    pub address: Option<Spanned<String>>,
    pub lease: Option<Spanned<DurationRaw>>,
    pub timeout: Option<Spanned<DurationRaw>>,
    pub redis_down: Option<RawRedisDown>,
}

/// The raw `[cluster.redis_down]` table.
#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedisDown {
    pub leases: Option<Spanned<String>>,
    pub rates: Option<Spanned<String>>,
    pub distribution: Option<Spanned<String>>,
    pub duplicates: Option<Spanned<String>>,
    pub prepaid: Option<Spanned<String>>,
}

/// What a node does with one kind of shared state while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownPolicy {
    /// Decide with this node's own (in-memory) state, and log it: the cluster-wide limit may
    /// be exceeded by up to one node's worth while Redis is down.
    Local,
    /// Refuse the new call with 503 + Retry-After.
    Reject,
}

/// The Redis-down policy per kind of shared state (`[cluster.redis_down]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisDown {
    /// Per-target concurrency leases (default local).
    pub leases: DownPolicy,
    /// Anti-harassment windows (default local).
    pub rates: DownPolicy,
    /// Round-robin cursors and least-recent / fewest-calls state (default local).
    pub distribution: DownPolicy,
    /// The duplicate-INVITE guard across nodes (default local).
    pub duplicates: DownPolicy,
    /// Prepaid reservations (default reject: money is not spent on a guess).
    pub prepaid: DownPolicy,
}

impl Default for RedisDown {
    fn default() -> Self {
        RedisDown {
            leases: DownPolicy::Local,
            rates: DownPolicy::Local,
            distribution: DownPolicy::Local,
            duplicates: DownPolicy::Local,
            prepaid: DownPolicy::Reject,
        }
    }
}

/// `[cluster]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Redis URL (`redis://host:port/db`, `rediss://...`, `unix:///path`).
    pub redis: String,
    /// This node's name, unique in the cluster (owner of leases and dialogs, CDR record ids).
    pub node: String,
    /// The cluster's SIP address (`host` or `host:port`; a DNS name per RFC 3263 or a VIP),
    /// written in Record-Route instead of the node's own address.
    pub address: String,
    /// Lease lifetime of a target slot (default 30 s); the owner renews every third of it.
    pub lease: Duration,
    /// Longest wait for one Redis round trip (default 250 ms); beyond it Redis counts as
    /// down for that call.
    pub timeout: Duration,
    /// Policy per kind of state while Redis is down.
    pub redis_down: RedisDown,
    /// SHA-256 of the configuration with what differs by node left out (see
    /// [`shared_hash`]): equal on nodes that route the same way (`hotline status` compares).
    pub config_hash: String,
}

/// Keys whose values differ from node to node by design: left out of [`shared_hash`].
const PER_NODE: &[(&str, &str)] = &[
    ("server", "listen"),
    ("server", "admin"),
    ("server", "cdr"),
    ("server", "log_level"),
    ("server", "workers"),
    ("cluster", "node"),
];

/// SHA-256 over the parsed values of every file (in order, file names and formatting and
/// comments ignored) without the per-node keys (`server.listen`, `server.admin`,
/// `server.cdr`, `server.log_level`, `server.workers`, `cluster.node`): two nodes whose files
/// route calls the same way get the same hash.
pub fn shared_hash(sources: &[crate::Source]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for s in sources {
        match toml::from_str::<toml::Table>(&s.text) {
            Ok(mut t) => {
                for (table, key) in PER_NODE {
                    if let Some(toml::Value::Table(sub)) = t.get_mut(*table) {
                        sub.remove(*key);
                    }
                }
                h.update(toml::to_string(&t).unwrap_or_default().as_bytes());
            }
            Err(_) => h.update(s.text.as_bytes()),
        }
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// An error found in `[cluster]`: span, key path, message, hint.
pub(crate) type Report<'a> = &'a mut dyn FnMut(Range<usize>, String, String, Option<String>);

fn policy(v: &Spanned<String>, key: &str, report: Report<'_>) -> Option<DownPolicy> {
    match v.get_ref().as_str() {
        "local" => Some(DownPolicy::Local),
        "reject" => Some(DownPolicy::Reject),
        other => {
            report(
                v.span(),
                key.into(),
                format!("{other:?} is not a Redis-down policy"),
                Some(
                    "write \"local\" (decide with this node's state, log) or \"reject\" (503)"
                        .into(),
                ),
            );
            None
        }
    }
}

/// Whether `s` is a valid node name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_node_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Whether `s` is `host` or `host:port` with a DNS name or an IP literal (`[v6]:port`).
fn valid_address(s: &str) -> bool {
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        return a.port() != 0;
    }
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if let Some(p) = port {
        if !matches!(p.parse::<u16>(), Ok(n) if n > 0) {
            return false;
        }
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A parsed `redis+sentinel://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// `host:port` of each sentinel, in order.
    pub sentinels: Vec<String>,
    /// The monitored master's name.
    pub master: String,
    /// The database on the primary.
    pub db: i64,
    /// The primary's password, if any (the sentinels are asked without one).
    pub password: Option<String>,
}

/// The URL scheme of a Redis behind Sentinel.
pub const SENTINEL_SCHEME: &str = "redis+sentinel://";

impl SentinelUrl {
    /// Parse; `None` when `url` is not a `redis+sentinel://` URL, `Some(Err)` when it is
    /// one but malformed.
    pub fn parse(url: &str) -> Option<Result<SentinelUrl, String>> {
        let rest = url.strip_prefix(SENTINEL_SCHEME)?;
        Some(Self::parse_rest(rest))
    }

    fn parse_rest(rest: &str) -> Result<SentinelUrl, String> {
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let password = match auth {
            None => None,
            Some(a) => Some(
                a.strip_prefix(':')
                    .ok_or("write the password as :PASSWORD@")?
                    .to_owned(),
            ),
        };
        let mut parts = rest.split('/');
        let hosts = parts.next().unwrap_or("");
        let master = parts.next().unwrap_or("").to_owned();
        let db = match parts.next() {
            None | Some("") => 0,
            Some(d) => d
                .parse()
                .map_err(|_| format!("database {d:?} is not a number"))?,
        };
        if parts.next().is_some() {
            return Err("expected HOSTS/MASTER[/DB]".into());
        }
        let mut sentinels = Vec::new();
        for h in hosts.split(',') {
            let (host, port) = h
                .rsplit_once(':')
                .ok_or_else(|| format!("sentinel {h:?}: write HOST:PORT"))?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(format!("sentinel {h:?}: write HOST:PORT"));
            }
            sentinels.push(h.to_owned());
        }
        if master.is_empty() {
            return Err("the master's name is missing (…/MASTER)".into());
        }
        Ok(SentinelUrl {
            sentinels,
            master,
            db,
            password,
        })
    }
}

fn valid_redis_url(s: &str) -> bool {
    let rest = ["redis://", "rediss://", "unix://", "redis+unix://"]
        .iter()
        .find_map(|p| s.strip_prefix(p));
    matches!(rest, Some(r) if !r.is_empty() && !r.contains(char::is_whitespace))
}

fn required<'a>(
    v: &'a Option<Spanned<String>>,
    header: &Range<usize>,
    key: &str,
    hint: &str,
    report: Report<'_>,
) -> Option<&'a Spanned<String>> {
    if v.is_none() {
        report(
            header.clone(),
            format!("cluster.{key}"),
            format!("[cluster] needs {key}"),
            Some(hint.into()),
        );
    }
    v.as_ref()
}

/// Validate `[cluster]`; every error goes to `report`. `None` when something was wrong.
pub(crate) fn build(
    raw: &RawCluster,
    header: Range<usize>,
    report: Report<'_>,
) -> Option<ClusterSettings> {
    let mut ok = true;
    let redis = required(
        &raw.redis,
        &header,
        "redis",
        "e.g. redis = \"redis://10.0.0.5:6379/0\"",
        report,
    );
    let node = required(
        &raw.node,
        &header,
        "node",
        "e.g. node = \"hl-a\" (unique per node)",
        report,
    );
    let address = required(
        &raw.address,
        &header,
        "address",
        "the cluster's SIP address for Record-Route, e.g. address = \"sip.hotline.example\"",
        report,
    );
    if let Some(r) = redis {
        if let Some(Err(why)) = SentinelUrl::parse(r.get_ref().trim()) {
            ok = false;
            report(
                r.span(),
                "cluster.redis".into(),
                format!("{:?}: {why}", r.get_ref()),
                Some(
                    "write e.g. \"redis+sentinel://10.0.0.5:26379,10.0.0.6:26379/hotline/0\""
                        .into(),
                ),
            );
        } else if SentinelUrl::parse(r.get_ref().trim()).is_none()
            && !valid_redis_url(r.get_ref().trim())
        {
            ok = false;
            report(
                r.span(),
                "cluster.redis".into(),
                format!("{:?} is not a Redis URL", r.get_ref()),
                Some(
                    "write e.g. \"redis://127.0.0.1:6379/0\", \"unix:///run/redis.sock\" or \"redis+sentinel://HOST:PORT,HOST:PORT/MASTER/0\"".into(),
                ),
            );
        }
    }
    if let Some(n) = node {
        if !valid_node_name(n.get_ref()) {
            ok = false;
            report(
                n.span(),
                "cluster.node".into(),
                format!("{:?} is not a node name", n.get_ref()),
                Some("1 to 64 letters, digits, '.', '_' or '-', unique per node".into()),
            );
        }
    }
    if let Some(a) = address {
        if !valid_address(a.get_ref().trim()) {
            ok = false;
            report(
                a.span(),
                "cluster.address".into(),
                format!("{:?} is not a SIP host or host:port", a.get_ref()),
                Some("a DNS name or IP of the cluster (SRV name or VIP), e.g. \"sip.hotline.example:5060\"".into()),
            );
        }
    }
    let mut duration = |v: &Option<Spanned<DurationRaw>>,
                        key: &str,
                        default: Duration,
                        min: Duration,
                        max: Duration,
                        report: Report<'_>| {
        let Some(v) = v else { return default };
        match parse_duration(v.get_ref()) {
            Ok(d) if d >= min && d <= max => d,
            Ok(d) => {
                ok = false;
                report(
                    v.span(),
                    format!("cluster.{key}"),
                    format!("{d:?} is out of range"),
                    Some(format!("between {min:?} and {max:?}")),
                );
                default
            }
            Err(m) => {
                ok = false;
                report(
                    v.span(),
                    format!("cluster.{key}"),
                    m,
                    Some("write e.g. \"30s\" or \"250ms\"".into()),
                );
                default
            }
        }
    };
    let lease = duration(
        &raw.lease,
        "lease",
        Duration::from_secs(30),
        Duration::from_secs(1),
        Duration::from_secs(3600),
        report,
    );
    let timeout = duration(
        &raw.timeout,
        "timeout",
        Duration::from_millis(250),
        Duration::from_millis(10),
        Duration::from_secs(10),
        report,
    );
    let mut redis_down = RedisDown::default();
    if let Some(d) = &raw.redis_down {
        let mut set = |v: &Option<Spanned<String>>, key: &str, slot: &mut DownPolicy| {
            if let Some(v) = v {
                match policy(v, &format!("cluster.redis_down.{key}"), report) {
                    Some(p) => *slot = p,
                    None => ok = false,
                }
            }
        };
        set(&d.leases, "leases", &mut redis_down.leases);
        set(&d.rates, "rates", &mut redis_down.rates);
        set(
            &d.distribution,
            "distribution",
            &mut redis_down.distribution,
        );
        set(&d.duplicates, "duplicates", &mut redis_down.duplicates);
        set(&d.prepaid, "prepaid", &mut redis_down.prepaid);
    }
    let (redis, node, address) = (redis?, node?, address?);
    ok.then(|| ClusterSettings {
        redis: redis.get_ref().trim().to_owned(),
        node: node.get_ref().clone(),
        address: address.get_ref().trim().to_owned(),
        lease,
        timeout,
        redis_down,
        config_hash: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for ok in [
            "sip.hotline.example",
            "sip.hotline.example:5060",
            "10.0.0.1",
            "10.0.0.1:5070",
            "[::1]:5060",
            "::1",
        ] {
            assert!(valid_address(ok), "{ok}");
        }
        for bad in [
            "",
            "sip..example",
            "-a.example",
            "host:0",
            "host:x",
            "a b",
            "10.0.0.1:0",
        ] {
            assert!(!valid_address(bad), "{bad}");
        }
    }

    #[test]
    fn sentinel_urls() {
        assert_eq!(SentinelUrl::parse("redis://x:1/0"), None);
        assert_eq!(
            SentinelUrl::parse("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/hotline/2"),
            Some(Ok(SentinelUrl {
                sentinels: vec!["10.0.0.1:26379".into(), "10.0.0.2:26379".into()],
                master: "hotline".into(),
                db: 2,
                password: None,
            }))
        );
        assert_eq!(
            SentinelUrl::parse("redis+sentinel://:s3cret@h:26379/m"),
            Some(Ok(SentinelUrl {
                sentinels: vec!["h:26379".into()],
                master: "m".into(),
                db: 0,
                password: Some("s3cret".into()),
            }))
        );
        for bad in [
            "redis+sentinel://h:26379",
            "redis+sentinel://h:26379/",
            "redis+sentinel://h/m",
            "redis+sentinel://h:x/m",
            "redis+sentinel://:26379/m",
            "redis+sentinel://h:1/m/z",
            "redis+sentinel://h:1/m/0/x",
            "redis+sentinel://user@h:1/m",
        ] {
            assert!(
                matches!(SentinelUrl::parse(bad), Some(Err(_))),
                "{bad} is refused"
            );
        }
    }

    #[test]
    fn redis_urls_and_node_names() {
        assert!(valid_redis_url("redis://127.0.0.1:6379/0"));
        assert!(valid_redis_url("unix:///run/redis.sock"));
        assert!(!valid_redis_url("http://x"));
        assert!(!valid_redis_url("redis://"));
        assert!(valid_node_name("hl-a.1_x"));
        assert!(!valid_node_name("a b"));
        assert!(!valid_node_name(""));
    }
}

#[cfg(test)]
mod section_tests {
    use super::*;
    use crate::from_toml_str;

    use crate::TEST_BASE as BASE;

    #[test]
    fn no_cluster_section_is_the_single_box() -> Result<(), String> {
        let c = from_toml_str(BASE, "t.toml", 1, jiff::civil::date(2026, 11, 24))
            .map_err(|e| e.to_string())?;
        assert_eq!(c.settings.cluster, None);
        Ok(())
    }

    #[test]
    fn cluster_section_parses_with_defaults() -> Result<(), String> {
        let src = format!(
            "[cluster]\nredis = \"redis://127.0.0.1:6379/0\"\nnode = \"hl-a\"\n\
             address = \"sip.hotline.example:5060\"\nlease = \"10s\"\n\
             [cluster.redis_down]\nleases = \"reject\"\n{BASE}"
        );
        let c = from_toml_str(&src, "t.toml", 1, jiff::civil::date(2026, 11, 24))
            .map_err(|e| e.to_string())?;
        let k = c.settings.cluster.ok_or("cluster")?;
        assert_eq!(k.node, "hl-a");
        assert_eq!(k.redis, "redis://127.0.0.1:6379/0");
        assert_eq!(k.address, "sip.hotline.example:5060");
        assert_eq!(k.lease, Duration::from_secs(10));
        assert_eq!(k.timeout, Duration::from_millis(250));
        assert_eq!(k.redis_down.leases, DownPolicy::Reject);
        assert_eq!(k.redis_down.rates, DownPolicy::Local);
        assert_eq!(k.redis_down.prepaid, DownPolicy::Reject);
        // Two nodes with the same files but their own names compare equal.
        let other = from_toml_str(
            &src.replace("hl-a", "hl-b"),
            "t.toml",
            1,
            jiff::civil::date(2026, 11, 24),
        )
        .map_err(|e| e.to_string())?;
        let o = other.settings.cluster.ok_or("cluster")?;
        assert_eq!(o.node, "hl-b");
        assert_eq!(o.config_hash, k.config_hash);
        assert_eq!(o.config_hash.len(), 64);
        assert_ne!(other.table.hash(), c.table.hash());
        let changed = from_toml_str(
            &src.replace("5070", "5071"),
            "t.toml",
            1,
            jiff::civil::date(2026, 11, 24),
        )
        .map_err(|e| e.to_string())?;
        assert_ne!(
            changed.settings.cluster.ok_or("cluster")?.config_hash,
            k.config_hash
        );
        Ok(())
    }

    #[test]
    fn prepaid_in_a_cluster_is_shared_and_not_warned_about() -> Result<(), String> {
        let src = format!(
            "[server.billing]\nfile = \"b.toml\"\n[cluster]\nredis = \"redis://127.0.0.1:6379/0\"\n\
             node = \"a\"\naddress = \"sip.x\"\n{BASE}"
        );
        let c = from_toml_str(&src, "t.toml", 1, jiff::civil::date(2026, 11, 24))
            .map_err(|e| e.to_string())?;
        assert!(c.settings.cluster.is_some() && c.settings.billing.is_some());
        assert!(
            c.warnings.iter().all(|w| w.key != "cluster"),
            "prepaid credit is shared in redis: {:?}",
            c.warnings
        );
        Ok(())
    }

    #[test]
    fn cluster_errors_name_key_line_and_hint() {
        let src = format!(
            "[cluster]\nredis = \"http://x\"\nnode = \"a b\"\nlease = \"0s\"\n\
             [cluster.redis_down]\nrates = \"maybe\"\n{BASE}"
        );
        let Err(e) = from_toml_str(&src, "t.toml", 1, jiff::civil::date(2026, 11, 24)) else {
            panic!("must fail");
        };
        let text = e.to_string();
        for needle in [
            "cluster.redis",
            "cluster.node",
            "cluster.address",
            "cluster.lease",
            "cluster.redis_down.rates",
            "t.toml:2",
            "\"local\"",
        ] {
            assert!(text.contains(needle), "{needle} missing in: {text}");
        }
        let Err(e) = from_toml_str(
            &format!(
                "[cluster]\nredis = \"redis+sentinel://10.0.0.5:26379\"\nnode = \"a\"\n\
                 address = \"sip.x\"\n{BASE}"
            ),
            "t.toml",
            1,
            jiff::civil::date(2026, 11, 24),
        ) else {
            panic!("a sentinel URL without the master's name must fail");
        };
        let text = e.to_string();
        assert!(
            text.contains("cluster.redis")
                && text.contains("t.toml:2")
                && text.contains("master's name is missing")
                && text.contains("redis+sentinel://10.0.0.5:26379,10.0.0.6:26379/hotline/0"),
            "{text}"
        );
        let ok = from_toml_str(
            &format!(
                "[cluster]\nredis = \"redis+sentinel://10.0.0.5:26379/hotline/0\"\nnode = \"a\"\n\
                 address = \"sip.x\"\n{BASE}"
            ),
            "t.toml",
            1,
            jiff::civil::date(2026, 11, 24),
        );
        assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.to_string()));
        let Err(e) = from_toml_str(
            &format!("[cluster]\nnodes = \"a\"\n{BASE}"),
            "t.toml",
            1,
            jiff::civil::date(2026, 11, 24),
        ) else {
            panic!("unknown key must fail");
        };
        // Reported in ops words with the key path (issue 21's error translator).
        let text = e.to_string();
        assert!(
            text.contains("cluster.nodes: unknown key `nodes`")
                && text.contains("did you mean `node`?"),
            "{e}"
        );
    }
}
