//! `hotline status | reload | log-level`: talk to a running instance's admin endpoint.
//!
//! The address is `--admin ADDR`, else `[server] admin` of `--config` (read with a bare TOML
//! parse, so `hotline reload` still finds the instance when the config has just been broken),
//! else the embedded default's. A blocking HTTP/1.1 client with timeouts: no runtime needed.
//!
//! Exit status: 0 done; 1 the instance refused (reload errors, bad log filter, not ready);
//! 2 the instance cannot be reached or the admin endpoint is off.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Where `hotline_config` puts the admin endpoint when the config says nothing.
pub const DEFAULT_ADMIN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9060);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A reload compiles the whole config: allow it time.
const IO_TIMEOUT: Duration = Duration::from_secs(70);
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// The admin address to use (see the module docs). `Err` explains why there is none.
pub fn admin_addr(flag: Option<SocketAddr>, config: Option<&Path>) -> Result<SocketAddr, String> {
    if let Some(a) = flag {
        return Ok(connectable(a));
    }
    let text = match config {
        None => hotline_config::DEFAULT_CONFIG.to_owned(),
        Some(p) => {
            let main = if p.is_dir() {
                p.join("hotline.toml")
            } else {
                p.to_path_buf()
            };
            std::fs::read_to_string(&main).map_err(|e| {
                format!(
                    "{}: cannot read: {e} (or pass --admin ADDR)",
                    main.display()
                )
            })?
        }
    };
    admin_from_toml(&text).map(connectable)
}

/// `[server] admin` of a config text: the default when absent, an error when `"off"`.
pub fn admin_from_toml(text: &str) -> Result<SocketAddr, String> {
    let value = match toml::from_str::<toml::Table>(text) {
        Ok(table) => table
            .get("server")
            .and_then(|s| s.get("admin"))
            .and_then(|a| a.as_str())
            .map(str::to_owned),
        // A broken config is exactly when `hotline reload` must still reach the instance
        // (to report the errors): find the line by hand.
        Err(_) => admin_line(text),
    };
    match value.as_deref().map(str::trim) {
        None => Ok(DEFAULT_ADMIN),
        Some("" | "off") => {
            Err("the admin endpoint is off in this config ([server] admin = \"off\")".into())
        }
        Some(v) => v
            .parse()
            .map_err(|_| format!("[server] admin = {v:?} is not an IP:port address")),
    }
}

/// `admin = "..."` inside the `[server]` table, found line by line (the file may not parse);
/// `None` (the default address) when there is no such line.
fn admin_line(text: &str) -> Option<String> {
    let mut in_server = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_server = l.trim_start_matches('[').trim_end_matches(']').trim() == "server";
            continue;
        }
        if !in_server {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            if k.trim() == "admin" {
                let v = v.split('#').next().unwrap_or(v).trim();
                return Some(v.trim_matches('"').to_owned());
            }
        }
    }
    None
}

/// A wildcard listen address is reached on loopback.
fn connectable(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), a.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), a.port())
        }
        _ => a,
    }
}

/// One request, `Connection: close`.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Result<Answer, String> {
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| format!("cannot reach hotline's admin endpoint at {addr}: {e} (is it running? is [server] admin set?)"))?;
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: hotline-cli\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{addr}: send failed: {e}"))?;
    let mut raw = Vec::new();
    s.take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(|e| format!("{addr}: no answer: {e}"))?;
    parse_response(&raw).ok_or_else(|| format!("{addr}: not an HTTP answer"))
}

/// Status and body of a `Connection: close` response.
pub fn parse_response(raw: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status_line = head.lines().next()?;
    let mut parts = status_line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some(Answer {
        status,
        body: body.to_owned(),
    })
}

fn finish(r: Result<Answer, String>, ok: impl FnOnce(&str)) -> ExitCode {
    match r {
        Ok(a) if a.status == 200 => {
            ok(&a.body);
            ExitCode::SUCCESS
        }
        Ok(a) => {
            eprint!("{}", a.body);
            if !a.body.ends_with('\n') {
                eprintln!();
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// `hotline status`: the `/status` JSON, summarised (or raw with `--json`).
pub fn status(addr: SocketAddr, json: bool) -> ExitCode {
    let r = request(addr, "GET", "/status", "");
    finish(r, |body| {
        if json {
            print!("{body}");
            return;
        }
        match serde_json::from_str::<serde_json::Value>(body) {
            Ok(v) => print!("{}", summary(&v)),
            Err(_) => print!("{body}"),
        }
    })
}

/// A human summary of the `/status` document.
pub fn summary(v: &serde_json::Value) -> String {
    let s = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    let c = &v["config"];
    let ready = if v["ready"] == true {
        "ready".to_owned()
    } else {
        let why: Vec<String> = v["not_ready"]
            .as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default();
        format!("NOT READY ({})", why.join("; "))
    };
    let uptime = v["uptime_seconds"].as_u64().unwrap_or(0);
    let cluster = cluster_summary(&v["cluster"]);
    let mut out = format!(
        "hotline {} (commit {}, built {})\n\
         state:     {ready}\n\
         sip:       {}\n\
         uptime:    {}d {:02}h {:02}m {:02}s (since {})\n\
         config:    generation {} hash {} loaded {} ({} numbers) from {}\n\
         calls:     {} active, {} talking, {} since start\n\
         sip txns:  {}\n\
         cdr:       {}\n",
        s(&v["version"]),
        s(&v["commit"]),
        s(&v["build_date"]),
        s(&v["sip"]),
        uptime / 86_400,
        uptime % 86_400 / 3600,
        uptime % 3600 / 60,
        uptime % 60,
        s(&v["started_at"]),
        s(&c["generation"]),
        s(&c["hash"]),
        s(&c["loaded_at"]),
        s(&c["numbers"]),
        s(&c["source"]),
        s(&v["calls"]["active"]),
        s(&v["calls"]["talking"]),
        s(&v["calls"]["started_total"]),
        s(&v["transactions"]),
        match &v["cdr"] {
            serde_json::Value::Null => "-".to_owned(),
            d => format!(
                "queue {} spill {} unwritten {} lost {}",
                s(&d["queue_depth"]),
                s(&d["spill_depth"]),
                s(&d["unwritten"]),
                s(&d["lost"])
            ),
        }
    );
    out.push_str(&cluster);
    out
}

/// The `cluster` part of `hotline status` (empty on a single box): this node, Redis, and
/// every node seen with its config hash; a warning when live nodes disagree.
fn cluster_summary(c: &serde_json::Value) -> String {
    if c.is_null() {
        return String::new();
    }
    let s = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    let mut out = format!(
        "cluster:   node {} address {} redis {} ({} errors) leases held {}\n",
        s(&c["node"]),
        s(&c["address"]),
        if c["redis_up"] == true { "up" } else { "DOWN" },
        s(&c["redis_errors"]),
        s(&c["leases_held"]),
    );
    for n in c["nodes"].as_array().map(Vec::as_slice).unwrap_or_default() {
        out.push_str(&format!(
            "  node {:<16} {:<5} sip {} config {} (generation {}) version {}\n",
            s(&n["node"]),
            if n["alive"] == true { "alive" } else { "gone" },
            s(&n["sip"]),
            s(&n["config_hash"]),
            s(&n["generation"]),
            s(&n["version"]),
        ));
    }
    if c["hashes_agree"] == false {
        out.push_str("  WARNING: the live nodes run different configurations\n");
    }
    out
}

/// `hotline reload`: prints the new generation, or every config error (exit 1).
pub fn reload(addr: SocketAddr) -> ExitCode {
    finish(request(addr, "POST", "/reload", ""), |b| print!("{b}"))
}

/// `hotline log-level [FILTER]`: set (or show) the log filter.
pub fn log_level(addr: SocketAddr, filter: Option<&str>) -> ExitCode {
    let r = match filter {
        Some(f) => request(addr, "POST", "/log-level", f),
        None => request(addr, "GET", "/log-level", ""),
    };
    finish(r, |b| print!("log filter: {b}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_summary_shows_the_cluster_and_warns_on_disagreeing_nodes() {
        let v: serde_json::Value = serde_json::json!({
            "cluster": {"node": "a", "address": "sip.x", "redis_up": true, "redis_errors": 0,
                "leases_held": 2, "hashes_agree": false, "nodes": [
                {"node": "a", "alive": true, "sip": "10.0.0.1:5060", "config_hash": "h1", "generation": 1, "version": "0.1.0"},
                {"node": "b", "alive": true, "sip": "10.0.0.2:5060", "config_hash": "h2", "generation": 1, "version": "0.1.0"}]}
        });
        let text = summary(&v);
        assert!(
            text.contains("cluster:   node a address sip.x redis up"),
            "{text}"
        );
        assert!(
            text.contains("node b") && text.contains("config h2"),
            "{text}"
        );
        assert!(
            text.contains("WARNING: the live nodes run different configurations"),
            "{text}"
        );
        let single = summary(&serde_json::json!({"cluster": null}));
        assert!(!single.contains("cluster:"), "{single}");
    }

    #[test]
    fn admin_address_from_config_text() {
        assert_eq!(
            admin_from_toml("[server]\nlisten = []\n"),
            Ok(DEFAULT_ADMIN)
        );
        assert_eq!(
            admin_from_toml("[server]\nadmin = \"10.0.0.1:9999\"\n"),
            Ok("10.0.0.1:9999".parse().unwrap_or(DEFAULT_ADMIN))
        );
        assert!(admin_from_toml("[server]\nadmin = \"off\"\n").is_err());
        assert!(admin_from_toml("[server]\nadmin = \"nope\"\n").is_err());
        // A config that does not parse: the line is found by hand.
        assert_eq!(
            admin_from_toml("[server]\nadmin = \"127.0.0.1:9999\" # x\n[numbers\n"),
            Ok("127.0.0.1:9999".parse().unwrap_or(DEFAULT_ADMIN))
        );
        assert_eq!(admin_from_toml("[server\n"), Ok(DEFAULT_ADMIN));
        assert!(admin_from_toml("[server]\nadmin = \"off\"\nx = [\n").is_err());
        // The embedded default config names 127.0.0.1:9060.
        assert_eq!(admin_addr(None, None), Ok(DEFAULT_ADMIN));
        let wild: SocketAddr = "0.0.0.0:9061".parse().unwrap_or(DEFAULT_ADMIN);
        assert_eq!(
            admin_addr(Some(wild), None),
            Ok("127.0.0.1:9061".parse().unwrap_or(DEFAULT_ADMIN))
        );
    }

    #[test]
    fn responses_parse() {
        let a =
            parse_response(b"HTTP/1.1 422 Unprocessable Entity\r\nContent-Length: 3\r\n\r\nbad");
        assert_eq!(a.map(|a| (a.status, a.body)), Some((422, "bad".to_owned())));
        assert!(parse_response(b"garbage").is_none());
        assert!(parse_response(b"SIP/2.0 200 OK\r\n\r\n").is_none());
    }

    #[test]
    fn unreachable_instance_is_exit_2() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(request(addr, "GET", "/status", "").is_err());
        assert_eq!(status(addr, false), ExitCode::from(2));
    }

    #[test]
    fn summary_of_a_status_document() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"version":"0.1.0","commit":"abc","build_date":"2026-11-24","started_at":"x",
            "uptime_seconds":90061,"ready":false,"not_ready":["draining: shutting down"],
            "draining":true,"sip":"127.0.0.1:5060","config":{"generation":3,"hash":"h",
            "loaded_at":"t","numbers":2,"source":"/etc/hotline"},"calls":{"active":1,
            "talking":0,"started_total":9},"transactions":4,"cdr":null}"#,
        )
        .unwrap_or_default();
        let s = summary(&v);
        assert!(s.contains("NOT READY (draining: shutting down)"), "{s}");
        assert!(s.contains("uptime:    1d 01h 01m 01s"), "{s}");
        assert!(s.contains("generation 3 hash h"), "{s}");
        assert!(s.contains("1 active, 0 talking, 9 since start"), "{s}");
    }
}
