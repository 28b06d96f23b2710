//! The admin endpoint: a minimal HTTP/1.1 server (one request per connection) on
//! `[server] admin` (default `127.0.0.1:9060`).
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/metrics` | Prometheus text format ([`crate::metrics`]) |
//! | GET | `/healthz` | 200 while the process runs |
//! | GET | `/readyz` | 200 when listening, config loaded, CDR writer keeping up; 503 with the reasons otherwise (before ready and while draining) |
//! | GET | `/status` | JSON: version, build, uptime, config generation / hash / load time, calls, CDR queue |
//! | POST | `/reload` | re-read the config; 200 with the summary, 422 with every error (the old config keeps running) |
//! | GET / POST | `/log-level` | read / set the log filter (`debug`, `info,hotline_sip=trace`) |
//!
//! Hardening: requests are bounded ([`MAX_HEAD`] bytes of head, [`MAX_BODY`] of body), each
//! connection has [`READ_TIMEOUT`] to send its request, at most [`MAX_CONNECTIONS`] are served at
//! once, and nothing in here panics on bad input (bad requests get 4xx). There is no
//! authentication: keep it on loopback or a management network (see docs/OPERATIONS.md).

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::metrics::Metrics;
use crate::Control;

/// Largest request head (request line + headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest request body.
pub const MAX_BODY: usize = 4 * 1024;
/// Time a client has to send its whole request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the core to answer a reload.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections served at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 32;

/// Reads (`None`) or sets (`Some(filter)`) the log filter; returns the filter in force or an
/// error for a bad filter. Set up by the binary (tracing-subscriber's reload layer).
pub type LogLevelHook = Arc<dyn Fn(Option<&str>) -> Result<String, String> + Send + Sync>;

/// What the admin server reads and whom it asks.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub control: mpsc::Sender<Control>,
    pub log_level: Option<LogLevelHook>,
    /// The SIP address, once bound.
    pub sip: OnceLock<SocketAddr>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("sip", &self.sip.get())
            .finish_non_exhaustive()
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub body: Vec<u8>,
}

/// A response to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    /// The bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Result of feeding the bytes received so far to [`parse_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Need more bytes.
    Partial,
    /// A whole request.
    Done(Request),
    /// A malformed or oversized request: answer this and close.
    Error(u16, &'static str),
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parse an HTTP/1.x request from `buf` (everything received so far). Pure; never panics.
pub fn parse_request(buf: &[u8]) -> Parsed {
    let (head_end, sep) = match (find(buf, b"\r\n\r\n"), find(buf, b"\n\n")) {
        (Some(a), Some(b)) if b + 2 <= a + 4 => (b, 2),
        (Some(a), _) => (a, 4),
        (None, Some(b)) => (b, 2),
        (None, None) => {
            return if buf.len() > MAX_HEAD {
                Parsed::Error(431, "request head too large")
            } else {
                Parsed::Partial
            }
        }
    };
    if head_end > MAX_HEAD {
        return Parsed::Error(431, "request head too large");
    }
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
        return Parsed::Error(400, "request head is not UTF-8");
    };
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Error(400, "malformed request line");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Parsed::Error(400, "malformed method");
    }
    if !target.starts_with('/') {
        return Parsed::Error(400, "request target must be a path");
    }
    if !version.starts_with("HTTP/1.") {
        return Parsed::Error(400, "only HTTP/1.x is served");
    }
    let mut content_length: Option<usize> = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Parsed::Error(400, "malformed header line");
        };
        let name = name.trim();
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let Ok(n) = value.parse::<usize>() else {
                return Parsed::Error(400, "bad Content-Length");
            };
            if content_length.is_some_and(|c| c != n) {
                return Parsed::Error(400, "conflicting Content-Length");
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Error(
                501,
                "Transfer-Encoding is not supported; send Content-Length",
            );
        }
    }
    let len = content_length.unwrap_or(0);
    if len > MAX_BODY {
        return Parsed::Error(413, "request body too large");
    }
    let body_start = head_end + sep;
    let have = buf.len().saturating_sub(body_start);
    if have < len {
        return Parsed::Partial;
    }
    let path = target.split('?').next().unwrap_or(target);
    Parsed::Done(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        body: buf[body_start..body_start + len].to_vec(),
    })
}

/// Bind the admin listener.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve admin requests on `listener` until the runtime stops.
pub fn spawn(listener: TcpListener, state: Arc<AdminState>) -> tokio::task::JoinHandle<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let (mut stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tokio::spawn(async move {
                    let r = Response::text(503, "too many admin connections\n");
                    let _ =
                        tokio::time::timeout(READ_TIMEOUT, stream.write_all(&r.to_bytes())).await;
                });
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                serve_connection(stream, peer, &state).await;
                drop(permit);
            });
        }
    })
}

async fn serve_connection(mut stream: TcpStream, peer: SocketAddr, state: &AdminState) {
    let parsed = match tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)).await {
        Ok(Ok(p)) => p,
        Ok(Err(_)) => return,
        Err(_) => Parsed::Error(408, "request not received in time"),
    };
    let response = match parsed {
        Parsed::Done(req) => {
            tracing::debug!(%peer, method = %req.method, path = %req.path, "admin request");
            handle(state, &req).await
        }
        Parsed::Error(code, why) => Response::text(code, format!("{why}\n")),
        Parsed::Partial => Response::text(400, "incomplete request\n"),
    };
    let _ = tokio::time::timeout(READ_TIMEOUT, async {
        stream.write_all(&response.to_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

async fn read_request(stream: &mut TcpStream) -> io::Result<Parsed> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(match parse_request(&buf) {
                Parsed::Partial => Parsed::Error(400, "connection closed mid-request"),
                p => p,
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        match parse_request(&buf) {
            Parsed::Partial if buf.len() > MAX_HEAD + MAX_BODY + 4 => {
                return Ok(Parsed::Error(413, "request too large"))
            }
            Parsed::Partial => {}
            p => return Ok(p),
        }
    }
}

/// Answer one request.
pub async fn handle(state: &AdminState, req: &Request) -> Response {
    let m = &state.metrics;
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/metrics") => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: m.render(),
        },
        ("GET", "/healthz") => Response::text(200, "ok\n"),
        ("GET", "/readyz") => match m.readiness() {
            Ok(()) => match m.degraded() {
                None => Response::text(200, "ready\n"),
                Some(d) => Response::text(200, format!("ready (degraded: {d})\n")),
            },
            Err(why) => Response::text(503, format!("not ready: {}\n", why.join("; "))),
        },
        ("GET", "/status") => Response {
            status: 200,
            content_type: "application/json",
            body: status_json(state),
        },
        ("POST", "/reload") => reload(state).await,
        ("GET", "/log-level") => match &state.log_level {
            Some(hook) => match hook(None) {
                Ok(f) => Response::text(200, format!("{f}\n")),
                Err(e) => Response::text(500, format!("{e}\n")),
            },
            None => Response::text(404, "log level control is not available\n"),
        },
        ("POST" | "PUT", "/log-level") => {
            let Some(hook) = &state.log_level else {
                return Response::text(404, "log level control is not available\n");
            };
            let Ok(filter) = std::str::from_utf8(&req.body) else {
                return Response::text(400, "the body must be a UTF-8 log filter\n");
            };
            let filter = filter.trim();
            if filter.is_empty() {
                return Response::text(400, "empty log filter (try `debug` or `info,hotline_sip=trace`)\n");
            }
            match hook(Some(filter)) {
                Ok(f) => {
                    tracing::info!(filter = %f, "log level changed");
                    Response::text(200, format!("{f}\n"))
                }
                Err(e) => Response::text(400, format!("{e}\n")),
            }
        }
        ("GET", "/") => Response::text(
            200,
            "hotline admin: GET /metrics /healthz /readyz /status /log-level; POST /reload /log-level\n",
        ),
        (_, "/metrics" | "/healthz" | "/readyz" | "/status" | "/reload" | "/log-level" | "/") => {
            Response::text(405, "method not allowed\n")
        }
        _ => Response::text(404, "not found\n"),
    }
}

async fn reload(state: &AdminState) -> Response {
    let (tx, rx) = oneshot::channel();
    if state.control.send(Control::Reload(tx)).await.is_err() {
        return Response::text(503, "server stopped\n");
    }
    match tokio::time::timeout(RELOAD_TIMEOUT, rx).await {
        Ok(Ok(Ok(msg))) => Response::text(200, format!("{msg}\n")),
        Ok(Ok(Err(errors))) => Response::text(
            422,
            format!("reload failed, the running config is unchanged:\n{errors}\n"),
        ),
        Ok(Err(_)) => Response::text(503, "server stopped\n"),
        Err(_) => Response::text(504, "the core did not answer the reload in time\n"),
    }
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// The `/status` document.
pub fn status_json(state: &AdminState) -> String {
    let m = &state.metrics;
    let b = &m.build;
    let cfg = m.config();
    let ready = m.readiness();
    let reasons: Vec<String> = match &ready {
        Ok(()) => Vec::new(),
        Err(v) => v.iter().map(|r| json_str(r)).collect(),
    };
    let cdr = match m.cdr_stats() {
        Some(s) => format!(
            "{{\"queue_depth\":{},\"spill_depth\":{},\"unwritten\":{},\"lost\":{},\"write_errors\":{}}}",
            s.queue_depth,
            s.spill_depth,
            s.submitted.saturating_sub(s.written),
            s.overflowed,
            s.write_errors
        ),
        None => "null".into(),
    };
    format!(
        concat!(
            "{{\"version\":{},\"commit\":{},\"build_date\":{},",
            "\"started_at\":{},\"uptime_seconds\":{},",
            "\"ready\":{},\"not_ready\":[{}],\"draining\":{},\"sip\":{},",
            "\"config\":{{\"generation\":{},\"hash\":{},\"loaded_at\":{},\"numbers\":{},\"source\":{}}},",
            "\"calls\":{{\"active\":{},\"talking\":{},\"started_total\":{}}},",
            "\"transactions\":{},\"cdr\":{},\"cluster\":{}}}\n"
        ),
        json_str(&b.version),
        json_str(&b.commit),
        json_str(&b.date),
        json_str(&m.started_at().to_string()),
        m.uptime().as_secs(),
        ready.is_ok(),
        reasons.join(","),
        m.draining(),
        state
            .sip
            .get()
            .map_or_else(|| "null".to_owned(), |a| json_str(&a.to_string())),
        cfg.generation,
        json_str(&cfg.hash),
        cfg.loaded_at
            .map_or_else(|| "null".to_owned(), |t| json_str(&t.to_string())),
        cfg.numbers,
        json_str(&cfg.source),
        m.active_calls(),
        m.talking_calls(),
        m.calls_started(),
        m.transactions(),
        cdr,
        cluster_json(m),
    )
}

/// `"cluster"` of `/status`: this node, Redis health, every node seen and the config hash it
/// runs (`hashes_agree` false when the nodes' routing differs); `null` on a single box.
fn cluster_json(m: &crate::metrics::Metrics) -> String {
    let Some(l) = m.cluster() else {
        return "null".into();
    };
    let nodes = l.nodes.load();
    let alive: Vec<_> = nodes.iter().filter(|n| n.alive).collect();
    let agree = alive
        .windows(2)
        .all(|w| w[0].config_hash == w[1].config_hash);
    let list: Vec<String> = nodes
        .iter()
        .map(|n| {
            format!(
                "{{\"node\":{},\"alive\":{},\"sip\":{},\"config_hash\":{},\"generation\":{},\"version\":{},\"seen_ms\":{}}}",
                json_str(&n.node),
                n.alive,
                json_str(&n.sip),
                json_str(&n.config_hash),
                n.generation,
                json_str(&n.version),
                n.seen_ms
            )
        })
        .collect();
    format!(
        "{{\"node\":{},\"address\":{},\"redis_up\":{},\"redis_errors\":{},\"leases_held\":{},\"hashes_agree\":{},\"nodes\":[{}]}}",
        json_str(&l.settings.node),
        json_str(&l.settings.address),
        l.redis.is_up(),
        l.redis.errors(),
        l.redis.held(),
        agree,
        list.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(p: Parsed) -> Request {
        match p {
            Parsed::Done(r) => r,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn parses_get_and_post_with_body() {
        let r = done(parse_request(
            b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
        ));
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/metrics");
        assert!(r.body.is_empty());
        let r = done(parse_request(
            b"POST /log-level HTTP/1.1\r\nContent-Length: 5\r\n\r\ndebug",
        ));
        assert_eq!(r.body, b"debug");
        // Bare LF line ends (hand-typed with nc) are accepted too.
        let r = done(parse_request(b"GET /healthz HTTP/1.0\n\n"));
        assert_eq!(r.path, "/healthz");
    }

    #[test]
    fn partial_until_head_and_body_are_complete() {
        assert_eq!(parse_request(b""), Parsed::Partial);
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost"),
            Parsed::Partial
        );
        assert_eq!(
            parse_request(b"POST /log-level HTTP/1.1\r\nContent-Length: 5\r\n\r\ndeb"),
            Parsed::Partial
        );
    }

    #[test]
    fn rejects_bad_and_oversized_requests() {
        let code = |b: &[u8]| match parse_request(b) {
            Parsed::Error(c, _) => c,
            other => panic!(
                "expected an error for {:?}, got {other:?}",
                String::from_utf8_lossy(b)
            ),
        };
        assert_eq!(code(b"GET\r\n\r\n"), 400);
        assert_eq!(code(b"get /x HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(code(b"GET x HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(code(b"GET /x SPDY/3\r\n\r\n"), 400);
        assert_eq!(code(b"GET /x HTTP/1.1 extra\r\n\r\n"), 400);
        assert_eq!(code(b"GET /x HTTP/1.1\r\nno colon\r\n\r\n"), 400);
        assert_eq!(code(b"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
        assert_eq!(
            code(b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
            400
        );
        assert_eq!(
            code(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            501
        );
        assert_eq!(
            code(b"POST /x HTTP/1.1\r\nContent-Length: 999999\r\n\r\n"),
            413
        );
        assert_eq!(code(b"GET /\xff HTTP/1.1\r\n\r\n"), 400);
        let mut big = b"GET /x HTTP/1.1\r\n".to_vec();
        big.extend(vec![b'a'; MAX_HEAD + 10]);
        assert_eq!(code(&big), 431);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every prefix and byte flip of a valid request.
        let base = b"POST /log-level HTTP/1.1\r\nContent-Length: 4\r\n\r\ninfo".to_vec();
        for i in 0..=base.len() {
            let _ = parse_request(&base[..i]);
        }
        for i in 0..base.len() {
            for flip in [0u8, b'\n', b':', b' ', 0xff] {
                let mut b = base.clone();
                b[i] = flip;
                let _ = parse_request(&b);
            }
        }
    }

    #[test]
    fn response_bytes() {
        let r = Response::text(503, "not ready\n");
        let s = String::from_utf8(r.to_bytes()).unwrap_or_default();
        assert!(s.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(s.contains("Content-Length: 10\r\n"));
        assert!(s.ends_with("\r\n\r\nnot ready\n"));
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(json_str("电信"), "\"电信\"");
    }

    fn state() -> (Arc<AdminState>, mpsc::Receiver<Control>) {
        let (tx, rx) = mpsc::channel(4);
        let level = Arc::new(std::sync::Mutex::new("info".to_owned()));
        let hook: LogLevelHook = Arc::new(move |req: Option<&str>| {
            let mut l = level.lock().map_err(|_| "poisoned".to_owned())?;
            match req {
                Some("bogus=") => Err("invalid filter".into()),
                Some(f) => {
                    *l = f.to_owned();
                    Ok(l.clone())
                }
                None => Ok(l.clone()),
            }
        });
        let st = AdminState {
            metrics: Arc::new(Metrics::default()),
            control: tx,
            log_level: Some(hook),
            sip: OnceLock::new(),
        };
        (Arc::new(st), rx)
    }

    fn req(method: &str, path: &str, body: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn routes_answer() {
        let (st, mut rx) = state();
        assert_eq!(handle(&st, &req("GET", "/healthz", "")).await.status, 200);
        let r = handle(&st, &req("GET", "/readyz", "")).await;
        assert_eq!(r.status, 503);
        assert!(r.body.contains("not listening yet"), "{}", r.body);
        let r = handle(&st, &req("GET", "/metrics", "")).await;
        assert!(r.body.contains("# TYPE hotline_calls_total counter"));
        let r = handle(&st, &req("GET", "/status", "")).await;
        assert_eq!(r.content_type, "application/json");
        assert!(r.body.contains("\"ready\":false"), "{}", r.body);
        assert!(
            r.body.contains("\"config\":{\"generation\":0,"),
            "{}",
            r.body
        );
        assert_eq!(
            handle(&st, &req("DELETE", "/metrics", "")).await.status,
            405
        );
        assert_eq!(handle(&st, &req("GET", "/nope", "")).await.status, 404);
        // Log level: set, read back, bad filter.
        assert_eq!(
            handle(&st, &req("POST", "/log-level", "debug\n"))
                .await
                .status,
            200
        );
        assert_eq!(
            handle(&st, &req("GET", "/log-level", "")).await.body,
            "debug\n"
        );
        assert_eq!(
            handle(&st, &req("POST", "/log-level", "bogus="))
                .await
                .status,
            400
        );
        assert_eq!(
            handle(&st, &req("POST", "/log-level", " ")).await.status,
            400
        );
        // Reload: a fake core answers once with success and once with errors.
        let core = tokio::spawn(async move {
            let mut n = 0;
            while let Some(c) = rx.recv().await {
                if let Control::Reload(reply) = c {
                    n += 1;
                    let _ = reply.send(if n == 1 {
                        Ok("generation 2 loaded".into())
                    } else {
                        Err("hotline.toml:3: bad".into())
                    });
                }
            }
        });
        let r = handle(&st, &req("POST", "/reload", "")).await;
        assert_eq!((r.status, r.body.as_str()), (200, "generation 2 loaded\n"));
        let r = handle(&st, &req("POST", "/reload", "")).await;
        assert_eq!(r.status, 422);
        assert!(r.body.contains("hotline.toml:3: bad"));
        core.abort();
    }

    #[tokio::test]
    async fn serves_over_tcp_and_survives_garbage() {
        let (st, _rx) = state();
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let addr = listener
            .local_addr()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let server = spawn(listener, st);
        async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
            let Ok(mut s) = TcpStream::connect(addr).await else {
                return String::new();
            };
            let _ = s.write_all(bytes).await;
            let _ = s.shutdown().await;
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out).await;
            String::from_utf8_lossy(&out).into_owned()
        }
        let r = exchange(addr, b"\x00\x01garbage\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
        let r = exchange(addr, b"GET /healthz HTTP/1.1\r\n").await;
        assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
        let r = exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nok\n"), "{r}");
        server.abort();
    }
}
