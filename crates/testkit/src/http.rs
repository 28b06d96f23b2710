//! A small HTTP/1.1 client for the API tests: one request per connection (`Connection:
//! close`), any method, headers and body, a 10 s timeout; and a server-sent-events reader.
//! Loopback only, like everything in the testkit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::error::TestkitError;

type Result<T> = std::result::Result<T, TestkitError>;

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first header called `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn connect(addr: SocketAddr, what: &str) -> Result<TcpStream> {
    let timeout = Duration::from_secs(10);
    let s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| TestkitError::io(what.to_string(), e))?;
    s.set_read_timeout(Some(timeout))
        .and_then(|_| s.set_write_timeout(Some(timeout)))
        .map_err(|e| TestkitError::io(what.to_string(), e))?;
    Ok(s)
}

fn head_text(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req.push_str("Content-Type: application/json\r\n");
        }
    }
    req.push_str("\r\n");
    req
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size else { break };
        b = &b[eol + 2..];
        if size == 0 || b.len() < size {
            out.extend_from_slice(&b[..size.min(b.len())]);
            break;
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or(&[]);
    }
    out
}

/// Send one request, read the whole answer.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpResponse> {
    let what = format!("{method} http://{addr}{path}");
    let mut s = connect(addr, &what)?;
    let head = head_text(addr, method, path, headers, body);
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(body))
        .map_err(|e| TestkitError::io(what.clone(), e))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| TestkitError::io(what.clone(), e))?;
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(TestkitError::io(
            what,
            std::io::Error::other("no HTTP header end"),
        ));
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// An open server-sent-events stream.
pub struct SseStream {
    stream: TcpStream,
    buf: String,
    /// The answer's status line.
    pub status_line: String,
}

impl SseStream {
    /// `GET path` and keep the connection open for events.
    pub fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<SseStream> {
        let what = format!("GET http://{addr}{path} (SSE)");
        let mut s = connect(addr, &what)?;
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        h.push(("Accept", "text/event-stream"));
        s.write_all(head_text(addr, "GET", path, &h, b"").as_bytes())
            .map_err(|e| TestkitError::io(what.clone(), e))?;
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| TestkitError::io(what.clone(), e))?;
        let mut me = SseStream {
            stream: s,
            buf: String::new(),
            status_line: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !me.buf.contains("\r\n\r\n") && Instant::now() < deadline {
            me.fill();
        }
        me.status_line = me.buf.lines().next().unwrap_or("").to_string();
        Ok(me)
    }

    fn fill(&mut self) {
        let mut b = [0u8; 8192];
        match self.stream.read(&mut b) {
            Ok(n) if n > 0 => self.buf.push_str(&String::from_utf8_lossy(&b[..n])),
            _ => {}
        }
    }

    /// The `data:` payloads received so far, waiting until `done` says they are enough or
    /// `timeout` passes.
    pub fn data_until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let data: Vec<String> = self
                .buf
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .map(|d| d.trim().to_string())
                .collect();
            if done(&data) || Instant::now() >= deadline {
                return data;
            }
            self.fill();
        }
    }
}

/// A new API token made by `hotline api-token` (as an operator would): `(token, [[token]]
/// entry for the token file)`. `company` None = an operator token.
pub fn api_token(id: &str, company: Option<&str>) -> Result<(String, String)> {
    let bin = crate::paths::hotline_bin()?;
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("api-token").arg(id);
    match company {
        Some(c) => cmd.arg("--company").arg(c),
        None => cmd.arg("--operator"),
    };
    let out = cmd
        .output()
        .map_err(|e| TestkitError::io(format!("run {} api-token", bin.display()), e))?;
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    let entry = err
        .find("[[token]]")
        .map(|i| err[i..].to_string())
        .unwrap_or_default();
    if !out.status.success() || token.is_empty() || entry.is_empty() {
        return Err(TestkitError::io(
            "hotline api-token",
            std::io::Error::other(err.into_owned()),
        ));
    }
    Ok((token, entry))
}
