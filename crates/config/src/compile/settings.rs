//! `[server]`: listen addresses, SIP timers, CDR files and shipping, trunks, billing, admin.

use super::*;

/// `[server]` and `[cluster]`, each in the main file only.
pub(crate) fn compile_server(cx: &mut Ctx<'_>, files: &[(usize, RawFile)]) -> Settings {
    let sources = cx.sources;
    let mut settings = Settings::default();
    let mut server_seen: Option<usize> = None;
    for (fi, f) in files {
        if let Some(srv) = &f.server {
            if let Some(prev) = server_seen {
                let prev_name = sources[prev].name.clone();
                cx.err(
                    *fi,
                    header_span(&sources[*fi].text, "server"),
                    "server",
                    format!("[server] is also defined in {prev_name}"),
                    Some("keep [server] in the main file only".into()),
                );
                continue;
            }
            server_seen = Some(*fi);
            settings = build_settings(cx, *fi, srv);
        }
    }
    // `[server.api] gateway` names a gateway of any file.
    for (fi, f) in files {
        let Some(g) = f
            .server
            .as_ref()
            .and_then(|s| s.api.as_ref())
            .and_then(|a| a.gateway.as_ref())
        else {
            continue;
        };
        let known = files
            .iter()
            .any(|(_, f)| f.gateways.keys().any(|k| k.get_ref() == g.get_ref()));
        if !known {
            cx.err(
                *fi,
                g.span(),
                "server.api.gateway",
                format!("unknown gateway {:?}", g.get_ref()),
                Some(
                    "name a [gateways.NAME] entry: the companies' phone numbers are reached through it"
                        .into(),
                ),
            );
            settings.api = None;
        }
    }

    // 2b. Cluster (main file only, like [server]).
    let mut cluster_seen: Option<usize> = None;
    for (fi, f) in files {
        if let Some(raw) = &f.cluster {
            let header = header_span(&sources[*fi].text, "cluster");
            if let Some(prev) = cluster_seen {
                let prev_name = sources[prev].name.clone();
                cx.err(
                    *fi,
                    header,
                    "cluster",
                    format!("[cluster] is also defined in {prev_name}"),
                    Some("keep [cluster] in the main file only".into()),
                );
                continue;
            }
            cluster_seen = Some(*fi);
            let fi = *fi;
            settings.cluster = crate::cluster::build(raw, header, &mut |span, key, msg, hint| {
                cx.err(fi, span, key, msg, hint)
            });
        }
    }

    settings
}

/// Most addresses `server.listen` may name (each is a UDP socket and a TCP listener).
pub(crate) const MAX_LISTEN: usize = 16;

/// Why `a` cannot be bound beside the addresses already listed, and the fix: the same
/// address twice, or a wildcard (`0.0.0.0`, `[::]`) and an address of its family on the same
/// port (the first UDP socket shares its port with `SO_REUSEPORT`, so the kernel would let
/// both bind and split the datagrams between them). Port 0 picks a fresh port each time.
pub(crate) fn listen_clash(before: &[SocketAddr], a: SocketAddr) -> Option<(String, String)> {
    let b = before.iter().find(|b| {
        a.port() != 0
            && b.port() == a.port()
            && b.is_ipv4() == a.is_ipv4()
            && (b.ip() == a.ip() || b.ip().is_unspecified() || a.ip().is_unspecified())
    })?;
    if *b == a {
        Some((
            format!("{a} is listed twice"),
            "list each address once".into(),
        ))
    } else {
        Some((
            format!("{a} overlaps {b}: a wildcard address already covers every address of its family on that port"),
            "keep the wildcard alone, or list the addresses one by one".into(),
        ))
    }
}

/// A name made of `[A-Za-z0-9_-]` (stream names, subject tokens, node names also allow `.`).
pub(crate) fn token_ok(s: &str, dot: bool) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || (dot && c == '.'))
}

/// `nats://host:port` (host a name or IP, `[v6]` in brackets); `Err` says what is wrong.
pub(crate) fn check_nats_url(u: &str) -> Result<(), String> {
    let Some(rest) = u.strip_prefix("nats://") else {
        return Err(format!("{u:?} is not a nats:// url"));
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (h, p),
        _ => return Err(format!("{u:?} lacks host:port")),
    };
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("{u:?}: {port:?} is not a port"));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<IpAddr>().is_err()
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(format!("{u:?}: {host:?} is not a host"));
    }
    Ok(())
}

/// `[server.cdr.ship]`; `None` when `enabled = false` (still validated).
pub(crate) fn build_ship(cx: &mut Ctx<'_>, fi: usize, raw: &RawShip) -> Option<ShipSettings> {
    let mut d = ShipSettings::default();
    let key = |k: &str| format!("server.cdr.ship.{k}");
    match &raw.url {
        None => cx.err(
            fi,
            raw.stream
                .as_ref()
                .map(|s| s.span())
                .or_else(|| raw.enabled.as_ref().map(|e| e.span()))
                .unwrap_or(0..0),
            key("url"),
            "missing: the NATS server(s) to ship to",
            Some("add url = \"nats://127.0.0.1:4222\" (or a list), or remove the section".into()),
        ),
        Some(u) => {
            let urls = u.get_ref().to_vec();
            if urls.is_empty() {
                cx.err(fi, u.span(), key("url"), "empty list", None);
            }
            for x in &urls {
                if let Err(m) = check_nats_url(x) {
                    cx.err(
                        fi,
                        u.span(),
                        key("url"),
                        m,
                        Some("write e.g. \"nats://127.0.0.1:4222\"".into()),
                    );
                }
            }
            d.urls = urls;
        }
    }
    if let Some(n) = &raw.node {
        if token_ok(n.get_ref(), true) {
            d.node = Some(n.get_ref().clone());
        } else {
            cx.err(
                fi,
                n.span(),
                key("node"),
                format!("{:?} is not a node name", n.get_ref()),
                Some(
                    "1 to 64 of A-Z a-z 0-9 _ - . (unique per node: it is part of every record id)"
                        .into(),
                ),
            );
        }
    }
    if let Some(s) = &raw.stream {
        if token_ok(s.get_ref(), false) {
            d.stream = s.get_ref().clone();
        } else {
            cx.err(
                fi,
                s.span(),
                key("stream"),
                format!("{:?} is not a JetStream stream name", s.get_ref()),
                Some("1 to 64 of A-Z a-z 0-9 _ -".into()),
            );
        }
    }
    if let Some(p) = &raw.subject_prefix {
        let v = p.get_ref();
        if v.split('.').all(|t| token_ok(t, false)) {
            d.subject_prefix = v.clone();
        } else {
            cx.err(
                fi,
                p.span(),
                key("subject_prefix"),
                format!("{v:?} is not a subject prefix"),
                Some("dot-separated tokens of A-Z a-z 0-9 _ -, no wildcards, e.g. \"cdr\" or \"hotline.cdr\"".into()),
            );
        }
    }
    if let Some(r) = &raw.replicas {
        match usize::try_from(*r.get_ref()) {
            Ok(n) if (1..=5).contains(&n) => d.replicas = n,
            _ => cx.err(
                fi,
                r.span(),
                key("replicas"),
                format!("{} replicas", r.get_ref()),
                Some("1 to 5 (JetStream's limit); 3 on a three-server cluster".into()),
            ),
        }
    }
    if let Some(b) = &raw.max_bytes {
        match u64::try_from(*b.get_ref()) {
            Ok(n) => d.max_bytes = n,
            Err(_) => cx.err(
                fi,
                b.span(),
                key("max_bytes"),
                "must not be negative",
                Some("0 for no size limit".into()),
            ),
        }
    }
    if let Some(b) = &raw.batch {
        match usize::try_from(*b.get_ref()) {
            Ok(n) if (1..=4096).contains(&n) => d.batch = n,
            _ => cx.err(
                fi,
                b.span(),
                key("batch"),
                format!("{} records per batch", b.get_ref()),
                Some("1 to 4096".into()),
            ),
        }
    }
    let mut duration = |v: &Option<Spanned<DurationRaw>>,
                        name: &str,
                        min: Duration,
                        max: Duration,
                        out: &mut Duration| {
        let Some(v) = v else { return };
        if let Some(x) = dur(cx, fi, key(name), v) {
            if x < min || x > max {
                cx.err(
                    fi,
                    v.span(),
                    key(name),
                    format!("{x:?} is out of range"),
                    Some(format!("between {min:?} and {max:?}")),
                );
            } else {
                *out = x;
            }
        }
    };
    let day = Duration::from_secs(86_400);
    duration(
        &raw.max_age,
        "max_age",
        Duration::ZERO,
        36_500 * day,
        &mut d.max_age,
    );
    duration(
        &raw.duplicate_window,
        "duplicate_window",
        Duration::from_secs(1),
        day,
        &mut d.duplicate_window,
    );
    duration(
        &raw.poll_interval,
        "poll_interval",
        Duration::from_millis(10),
        Duration::from_secs(10),
        &mut d.poll_interval,
    );
    duration(
        &raw.ack_timeout,
        "ack_timeout",
        Duration::from_millis(100),
        Duration::from_secs(60),
        &mut d.ack_timeout,
    );
    duration(
        &raw.retry_max,
        "retry_max",
        Duration::from_millis(100),
        Duration::from_secs(300),
        &mut d.retry_max,
    );
    if !d.max_age.is_zero() && d.duplicate_window > d.max_age {
        let span = raw
            .duplicate_window
            .as_ref()
            .map(|v| v.span())
            .or_else(|| raw.max_age.as_ref().map(|v| v.span()))
            .unwrap_or(0..0);
        cx.err(
            fi,
            span,
            key("duplicate_window"),
            "longer than max_age (JetStream refuses such a stream)",
            Some("make duplicate_window at most max_age".into()),
        );
    }
    if let Some(c) = &raw.checkpoint {
        if c.get_ref().trim().is_empty() {
            cx.err(fi, c.span(), key("checkpoint"), "empty path", None);
        } else {
            d.checkpoint = Some(PathBuf::from(c.get_ref()));
        }
    }
    if raw.enabled.as_ref().is_some_and(|e| !*e.get_ref()) {
        return None;
    }
    Some(d)
}

pub(crate) fn build_settings(cx: &mut Ctx<'_>, fi: usize, srv: &RawServer) -> Settings {
    let mut s = Settings::default();
    settings_listen(cx, fi, srv, &mut s);
    settings_process(cx, fi, srv, &mut s);
    settings_sip(cx, fi, srv, &mut s);
    settings_cdr(cx, fi, srv, &mut s);
    settings_trunks(cx, fi, srv, &mut s);
    settings_billing(cx, fi, srv, &mut s);
    if let Some(a) = &srv.api {
        s.api = api_settings(cx, fi, a);
    }
    s
}

/// `[server.api]`: every key checked; `None` when something is wrong (the errors say what).
fn api_settings(
    cx: &mut Ctx<'_>,
    fi: usize,
    a: &crate::schema::RawApi,
) -> Option<crate::settings::ApiSettings> {
    let before = cx.errors.len();
    let listen = match a.listen.get_ref().trim().parse::<SocketAddr>() {
        Ok(l) => l,
        Err(_) => {
            cx.err(
                fi,
                a.listen.span(),
                "server.api.listen",
                format!("{:?} is not an IP:port address", a.listen.get_ref()),
                Some("write e.g. \"127.0.0.1:9070\"".into()),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        }
    };
    if a.tokens.get_ref().trim().is_empty() {
        cx.err(
            fi,
            a.tokens.span(),
            "server.api.tokens",
            "the token file path is empty",
            Some(
                "e.g. tokens = \"api-tokens.toml\" (make entries with `hotline api-token`)".into(),
            ),
        );
    }
    let mut max_body_bytes = 65536;
    if let Some(m) = &a.max_body_bytes {
        match usize::try_from(*m.get_ref()) {
            Ok(n) if (1024..=1 << 20).contains(&n) => max_body_bytes = n,
            _ => cx.err(
                fi,
                m.span(),
                "server.api.max_body_bytes",
                format!("{} is not a body size limit", m.get_ref()),
                Some("1024 to 1048576 bytes".into()),
            ),
        }
    }
    let gateway = a.gateway.as_ref().map(|g| g.get_ref().clone());
    if let Some(l) = &a.audit_log {
        if l.get_ref().trim().is_empty() {
            cx.err(
                fi,
                l.span(),
                "server.api.audit_log",
                "the audit log path is empty",
                Some("leave it out for api-audit.jsonl in the CDR directory".into()),
            );
        }
    }
    (cx.errors.len() == before).then(|| crate::settings::ApiSettings {
        listen,
        tokens: PathBuf::from(a.tokens.get_ref().trim()),
        audit_log: a
            .audit_log
            .as_ref()
            .map(|l| PathBuf::from(l.get_ref().trim())),
        max_body_bytes,
        allow_sip_uri: a.allow_sip_uri.unwrap_or(false),
        gateway,
        console: a.console.unwrap_or(true),
    })
}

/// `listen`: the SIP addresses (UDP and TCP each).
fn settings_listen(cx: &mut Ctx<'_>, fi: usize, srv: &RawServer, s: &mut Settings) {
    if let Some(listen) = &srv.listen {
        let mut out: Vec<SocketAddr> = Vec::new();
        for (i, l) in listen.iter().enumerate() {
            match l.get_ref().parse::<SocketAddr>() {
                Ok(a) => {
                    if let Some((msg, hint)) = listen_clash(&out, a) {
                        cx.err(fi, l.span(), format!("server.listen[{i}]"), msg, Some(hint));
                    } else if out.len() == MAX_LISTEN {
                        cx.err(
                            fi,
                            l.span(),
                            format!("server.listen[{i}]"),
                            format!("more than {MAX_LISTEN} listen addresses"),
                            Some(
                                "listen on a wildcard (\"0.0.0.0:5060\", \"[::]:5060\") instead"
                                    .into(),
                            ),
                        );
                    } else {
                        out.push(a);
                    }
                }
                Err(_) => cx.err(
                    fi,
                    l.span(),
                    format!("server.listen[{i}]"),
                    format!("{:?} is not an IP:port address", l.get_ref()),
                    Some("write e.g. \"127.0.0.1:5060\" or \"[::1]:5060\"".into()),
                ),
            }
        }
        if out.is_empty() && listen.is_empty() {
            cx.err(
                fi,
                0..0,
                "server.listen",
                "listen is empty",
                Some("give at least one address".into()),
            );
        }
        s.listen = out;
    }
}

/// `log_level`, `unknown_sources`, `workers`, `admin`.
fn settings_process(cx: &mut Ctx<'_>, fi: usize, srv: &RawServer, s: &mut Settings) {
    if let Some(l) = &srv.log_level {
        let v = l.get_ref().trim();
        // The same characters tracing's EnvFilter takes; the filter itself is checked when
        // it is applied (a bad one is logged and the old level stays).
        if v.is_empty()
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_,=:.-[]{}\"*".contains(c))
        {
            cx.err(
                fi,
                l.span(),
                "server.log_level",
                format!("{v:?} is not a log filter"),
                Some("e.g. \"info\", \"debug\" or \"info,hotline_sip=trace\"".into()),
            );
        } else {
            s.log_level = Some(v.to_string());
        }
    }
    if let Some(u) = srv.unknown_sources {
        s.unknown_sources = match u {
            UnknownSourcesRaw::Drop => UnknownSources::Drop,
            UnknownSourcesRaw::Reject => UnknownSources::Reject,
        };
    }
    if let Some(w) = &srv.workers {
        match usize::try_from(*w.get_ref()) {
            Ok(n) if n <= 256 => s.workers = n,
            _ => cx.err(
                fi,
                w.span(),
                "server.workers",
                format!("{} is not a number of shards", w.get_ref()),
                Some("0 (one per CPU core) or 1 to 256".into()),
            ),
        }
    }
    if let Some(c) = &srv.coalesce_us {
        match u64::try_from(*c.get_ref()) {
            Ok(us) if Duration::from_micros(us) <= crate::MAX_COALESCE => {
                s.coalesce = Duration::from_micros(us)
            }
            _ => cx.err(
                fi,
                c.span(),
                "server.coalesce_us",
                format!("{} is not a coalescing window in µs", c.get_ref()),
                Some("0 (off) to 1000 µs; the default is 0 (docs/config.md)".into()),
            ),
        }
    }
    if let Some(a) = &srv.admin {
        let v = a.get_ref().trim();
        if v.is_empty() || v == "off" {
            s.admin = None;
        } else {
            match v.parse::<SocketAddr>() {
                Ok(addr) => s.admin = Some(addr),
                Err(_) => cx.err(
                    fi,
                    a.span(),
                    "server.admin",
                    format!("{v:?} is not an IP:port address"),
                    Some("write e.g. \"127.0.0.1:9060\", or \"off\"".into()),
                ),
            }
        }
    }
}

/// `[server.sip]`: timers and limits.
fn settings_sip(cx: &mut Ctx<'_>, fi: usize, srv: &RawServer, s: &mut Settings) {
    if let Some(sip) = &srv.sip {
        let mut d = SipSettings::default();
        if let Some(v) = &sip.t1 {
            d.t1 = dur(cx, fi, "server.sip.t1".into(), v).unwrap_or(d.t1);
        }
        if let Some(v) = &sip.t2 {
            d.t2 = dur(cx, fi, "server.sip.t2".into(), v).unwrap_or(d.t2);
        }
        if let Some(v) = &sip.t4 {
            d.t4 = dur(cx, fi, "server.sip.t4".into(), v).unwrap_or(d.t4);
        }
        if let Some(v) = &sip.tcp_idle_timeout {
            d.tcp_idle_timeout =
                dur(cx, fi, "server.sip.tcp_idle_timeout".into(), v).unwrap_or(d.tcp_idle_timeout);
        }
        if let Some(v) = &sip.tcp_header_timeout {
            d.tcp_header_timeout = dur(cx, fi, "server.sip.tcp_header_timeout".into(), v)
                .unwrap_or(d.tcp_header_timeout);
        }
        if let Some(v) = &sip.tcp_max_connections {
            match usize::try_from(*v.get_ref()) {
                Ok(n) if n >= 1 => d.tcp_max_connections = n,
                _ => cx.err(
                    fi,
                    v.span(),
                    "server.sip.tcp_max_connections",
                    format!("{} is not a positive number", v.get_ref()),
                    None,
                ),
            }
        }
        if let Some(v) = &sip.max_message_bytes {
            match usize::try_from(*v.get_ref()) {
                Ok(n) if (1024..=16 * 1024 * 1024).contains(&n) => d.max_message_bytes = n,
                _ => cx.err(
                    fi,
                    v.span(),
                    "server.sip.max_message_bytes",
                    format!("{} is out of range", v.get_ref()),
                    Some("between 1024 and 16777216".into()),
                ),
            }
        }
        if d.t1.is_zero() || d.t2 < d.t1 {
            // Point at the key that breaks the rule: t2 if it is set, else t1.
            let (span, key) = match (&sip.t2, &sip.t1) {
                (Some(v), _) if !d.t1.is_zero() => (v.span(), "server.sip.t2"),
                (_, Some(v)) => (v.span(), "server.sip.t1"),
                (Some(v), None) => (v.span(), "server.sip.t2"),
                (None, None) => (0..0, "server.sip"),
            };
            cx.err(
                fi,
                span,
                key,
                format!(
                    "t1 must be positive and t2 at least t1 (t1 = {:?}, t2 = {:?})",
                    d.t1, d.t2
                ),
                Some(
                    "RFC 3261 timers: t1 = \"500ms\", t2 = \"4s\" (t2 caps the doubling of t1)"
                        .into(),
                ),
            );
        }
        s.sip = d;
    }
}

/// `[server.cdr]`: CDR files and shipping.
fn settings_cdr(cx: &mut Ctx<'_>, fi: usize, srv: &RawServer, s: &mut Settings) {
    if let Some(c) = &srv.cdr {
        let mut d = CdrSettings::default();
        if let Some(dir) = &c.dir {
            d.dir = PathBuf::from(dir);
        }
        if let Some(f) = c.format {
            d.format = match f {
                CdrFormatRaw::Csv => CdrFormat::Csv,
                CdrFormatRaw::Jsonl => CdrFormat::Jsonl,
            };
        }
        if let Some(v) = &c.fsync_interval {
            d.fsync_interval =
                dur(cx, fi, "server.cdr.fsync_interval".into(), v).unwrap_or(d.fsync_interval);
        }
        if let Some(v) = &c.rotate_bytes {
            match u64::try_from(*v.get_ref()) {
                Ok(n) => d.rotate_bytes = n,
                Err(_) => cx.err(
                    fi,
                    v.span(),
                    "server.cdr.rotate_bytes",
                    "must not be negative",
                    None,
                ),
            }
        }
        if let Some(r) = c.rotate_every {
            d.rotate_every = match r {
                RotateRaw::Hourly => Rotate::Hourly,
                RotateRaw::Daily => Rotate::Daily,
                RotateRaw::Never => Rotate::Never,
            };
        }
        if let Some(raw) = &c.ship {
            d.ship = build_ship(cx, fi, raw);
        }
        s.cdr = d;
    }
}

/// `[[server.trunks]]`.
fn settings_trunks(cx: &mut Ctx<'_>, fi: usize, srv: &RawServer, s: &mut Settings) {
    let mut names = HashSet::new();
    for (i, t) in srv.trunks.iter().enumerate() {
        let raw = t.get_ref();
        let key = format!("server.trunks[{i}]");
        if !names.insert(raw.name.clone()) {
            cx.err(
                fi,
                t.span(),
                format!("{key}.name"),
                format!("duplicate trunk name {:?}", raw.name),
                None,
            );
        }
        let mut sources = Vec::new();
        for (j, src) in raw.sources.iter().enumerate() {
            match parse_cidr(src.get_ref()) {
                Ok(c) => sources.push(c),
                Err(m) => cx.err(
                    fi,
                    src.span(),
                    format!("{key}.sources[{j}]"),
                    m,
                    Some("write e.g. \"192.0.2.0/24\" or \"127.0.0.1\"".into()),
                ),
            }
        }
        if raw.sources.is_empty() {
            cx.err(
                fi,
                t.span(),
                format!("{key}.sources"),
                "a trunk needs at least one source network",
                None,
            );
        }
        let mut limit = |v: &Option<Spanned<i64>>, what: &str| -> Option<u32> {
            let v = v.as_ref()?;
            match u32::try_from(*v.get_ref()) {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    cx.err(
                        fi,
                        v.span(),
                        format!("{key}.{what}"),
                        format!("{} is not a positive whole number", v.get_ref()),
                        Some("leave the key out for no limit".into()),
                    );
                    None
                }
            }
        };
        let max_cps = limit(&raw.max_cps, "max_cps");
        let max_calls = limit(&raw.max_calls, "max_calls");
        s.trunks.push(Trunk {
            name: raw.name.clone(),
            sources,
            trusted: raw.trusted,
            role: match raw.role {
                Some(TrunkRoleRaw::MediaServer) => TrunkRole::MediaServer,
                _ => TrunkRole::Carrier,
            },
            max_cps,
            max_calls,
        });
    }
}

/// `[server.billing]`.
fn settings_billing(cx: &mut Ctx<'_>, fi: usize, srv: &RawServer, s: &mut Settings) {
    if let Some(b) = &srv.billing {
        let mut d = BillingSettings {
            file: PathBuf::from(b.file.get_ref()),
            refuse_code: 402,
            low_balance_fen: 5000,
        };
        if let Some(c) = &b.refuse_code {
            match u16::try_from(*c.get_ref()) {
                Ok(n) if (400..=699).contains(&n) => d.refuse_code = n,
                _ => cx.err(
                    fi,
                    c.span(),
                    "server.billing.refuse_code",
                    format!("{} is not a SIP failure code", c.get_ref()),
                    Some("use a code from 400 to 699, e.g. 402 or 480".into()),
                ),
            }
        }
        if let Some(l) = &b.low_balance {
            match hotline_cdr::billing::parse_yuan(l.get_ref()) {
                Ok(f) => d.low_balance_fen = f,
                Err(e) => cx.err(
                    fi,
                    l.span(),
                    "server.billing.low_balance",
                    match e {
                        hotline_cdr::billing::MoneyError::Malformed => {
                            format!("{:?} is not an amount in yuan", l.get_ref())
                        }
                        e => format!("{:?} is {e}", l.get_ref()),
                    },
                    Some("write e.g. \"50.00\"".into()),
                ),
            }
        }
        s.billing = Some(d);
    }
}

#[cfg(test)]
mod billing_and_trunk_limit_tests {
    use crate::from_toml_str;

    use crate::TEST_BASE as BASE;

    #[test]
    fn billing_and_trunk_limits_parse() -> Result<(), String> {
        let src = format!(
            "[server.billing]\nfile = \"billing.toml\"\nrefuse_code = 480\nlow_balance = \"12.5\"\n\
             [[server.trunks]]\nname = \"ct\"\nsources = [\"127.0.0.1\"]\nmax_cps = 50\nmax_calls = 200\n{BASE}"
        );
        let c = from_toml_str(&src, "t.toml", 1, jiff::civil::date(2026, 11, 24))
            .map_err(|e| e.to_string())?;
        let b = c.settings.billing.ok_or("billing")?;
        assert_eq!(b.refuse_code, 480);
        assert_eq!(b.low_balance_fen, 1250);
        assert_eq!(b.file, std::path::PathBuf::from("billing.toml"));
        assert_eq!(c.settings.trunks[0].max_cps, Some(50));
        assert_eq!(c.settings.trunks[0].max_calls, Some(200));
        Ok(())
    }

    #[test]
    fn bad_billing_and_limits_are_errors_with_key_paths() {
        let src = format!(
            "[server.billing]\nfile = \"b.toml\"\nrefuse_code = 200\nlow_balance = \"1.234\"\n\
             [[server.trunks]]\nname = \"ct\"\nsources = [\"127.0.0.1\"]\nmax_cps = 0\n{BASE}"
        );
        let Err(e) = from_toml_str(&src, "t.toml", 1, jiff::civil::date(2026, 11, 24)) else {
            panic!("must fail");
        };
        let text = e.to_string();
        assert!(text.contains("server.billing.refuse_code"), "{text}");
        assert!(text.contains("server.billing.low_balance"), "{text}");
        assert!(text.contains("server.trunks[0].max_cps"), "{text}");
        assert!(text.contains("t.toml:3"), "line of refuse_code: {text}");
    }

    /// `low_balance` goes through the one money parser (hotline_cdr::billing::parse_yuan):
    /// a negative or oversized threshold is an error that says which, as in the rate file.
    #[test]
    fn low_balance_negative_and_overflow() {
        let msg = |v: &str| {
            let src = format!("[server.billing]\nfile = \"b.toml\"\nlow_balance = \"{v}\"\n{BASE}");
            match from_toml_str(&src, "t.toml", 1, jiff::civil::date(2026, 11, 24)) {
                Ok(_) => String::new(),
                Err(e) => e.to_string(),
            }
        };
        assert_eq!(
            msg("-5"),
            "t.toml:3: server.billing.low_balance: \"-5\" is negative: amounts are 0 or more (hint: write e.g. \"50.00\")"
        );
        assert!(
            msg("99999999999999999999").contains("is too large: at most 13 digits"),
            "{}",
            msg("99999999999999999999")
        );
        assert_eq!(msg("9999999999999.99"), "");
    }
}

#[cfg(test)]
mod api_settings_tests {
    use crate::from_toml_str;

    const BASE: &str = r#"
[gateways.gw]
address = "127.0.0.1:5080"
[companies.c]
name = "C"
[targets.t]
uri = "sip:1@127.0.0.1:5070"
[plans.p]
[[plans.p.groups]]
members = ["t"]
[numbers."4008001234"]
company = "c"
plan = "p"
"#;

    fn day() -> jiff::civil::Date {
        jiff::civil::date(2026, 11, 24)
    }

    #[test]
    fn api_is_off_by_default_and_parses() -> Result<(), String> {
        let c = from_toml_str(BASE, "x.toml", 1, day()).map_err(|e| e.to_string())?;
        assert!(c.settings.api.is_none(), "off unless configured");
        let src = format!(
            "[server.api]\nlisten = \"127.0.0.1:9070\"\ntokens = \"api-tokens.toml\"\ngateway = \"gw\"\n{BASE}"
        );
        let c = from_toml_str(&src, "x.toml", 1, day()).map_err(|e| e.to_string())?;
        let a = c.settings.api.ok_or("api")?;
        assert_eq!(a.listen.to_string(), "127.0.0.1:9070");
        assert_eq!(a.max_body_bytes, 65536);
        assert!(!a.allow_sip_uri && a.console);
        assert_eq!(a.gateway.as_deref(), Some("gw"));
        Ok(())
    }

    #[test]
    fn bad_api_settings_are_every_error_with_key_paths() {
        let src = format!(
            "[server.api]\nlisten = \"localhost\"\ntokens = \"\"\nmax_body_bytes = 10\ngateway = \"nope\"\n{BASE}"
        );
        let text = from_toml_str(&src, "x.toml", 1, day())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        for k in [
            "server.api.listen",
            "server.api.tokens",
            "server.api.max_body_bytes",
            "server.api.gateway",
        ] {
            assert!(text.contains(k), "{k} missing from:\n{text}");
        }
        let src =
            format!("[server.api]\nlisten = \"127.0.0.1:0\"\ntokens = \"t\"\nport = 1\n{BASE}");
        let text = from_toml_str(&src, "x.toml", 1, day())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(text.contains("port"), "unknown keys are refused: {text}");
    }
}
