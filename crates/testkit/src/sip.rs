//! Hand-written SIP over UDP: [`RawRequest`] builds a request from a few fields (or take any
//! bytes, malformed on purpose), [`SipUdpClient`] sends it from 127.0.0.1 and waits (bounded)
//! for responses, [`SipMessage`] reads a received message without trusting it.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Result, TestkitError};

/// Full header name for a compact form (RFC 3261 §7.3.3), lower case.
fn expand_compact(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "v" => "via",
        "i" => "call-id",
        "f" => "from",
        "t" => "to",
        "m" => "contact",
        "l" => "content-length",
        "k" => "supported",
        "s" => "subject",
        "c" => "content-type",
        "e" => "content-encoding",
        other => other,
    }
    .to_string()
}

/// A received SIP message (request or response), kept as text and read lazily.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMessage {
    raw: String,
}

impl SipMessage {
    /// Wraps received bytes; fails only when there is no start line at all.
    pub fn parse(bytes: &[u8]) -> Result<SipMessage> {
        let raw = String::from_utf8_lossy(bytes).into_owned();
        if raw.trim().is_empty() {
            return Err(TestkitError::BadMessage("empty".into()));
        }
        Ok(SipMessage { raw })
    }

    /// The whole message text.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    fn head(&self) -> &str {
        match self.raw.find("\r\n\r\n") {
            Some(i) => &self.raw[..i],
            None => match self.raw.find("\n\n") {
                Some(i) => &self.raw[..i],
                None => &self.raw,
            },
        }
    }

    /// The body (after the blank line), empty if none.
    pub fn body(&self) -> &str {
        if let Some(i) = self.raw.find("\r\n\r\n") {
            &self.raw[i + 4..]
        } else if let Some(i) = self.raw.find("\n\n") {
            &self.raw[i + 2..]
        } else {
            ""
        }
    }

    /// The first line without its line ending.
    pub fn start_line(&self) -> &str {
        self.head().lines().next().unwrap_or("").trim_end()
    }

    /// True for responses (`SIP/2.0 code reason`).
    pub fn is_response(&self) -> bool {
        self.start_line().starts_with("SIP/2.0 ")
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        if !self.is_response() {
            return None;
        }
        self.start_line().split_whitespace().nth(1)?.parse().ok()
    }

    /// The reason phrase of a response.
    pub fn reason(&self) -> Option<&str> {
        if !self.is_response() {
            return None;
        }
        let line = self.start_line();
        let mut parts = line.splitn(3, ' ');
        parts.next()?;
        parts.next()?;
        Some(parts.next().unwrap_or("").trim())
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&str> {
        if self.is_response() {
            return None;
        }
        self.start_line().split_whitespace().next()
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<&str> {
        if self.is_response() {
            return None;
        }
        self.start_line().split_whitespace().nth(1)
    }

    /// Every value of header `name` (case-insensitive, compact forms understood, folded lines
    /// joined), one entry per header line, in order.
    pub fn headers(&self, name: &str) -> Vec<String> {
        let want = expand_compact(name);
        let mut out: Vec<String> = Vec::new();
        let mut current: Option<String> = None;
        for line in self.head().lines().skip(1) {
            let line = line.trim_end_matches('\r');
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(c) = current.as_mut() {
                    c.push(' ');
                    c.push_str(line.trim());
                }
                continue;
            }
            if let Some(c) = current.take() {
                out.push(c);
            }
            if let Some((n, v)) = line.split_once(':') {
                if expand_compact(n.trim()) == want {
                    current = Some(v.trim().to_string());
                }
            }
        }
        if let Some(c) = current {
            out.push(c);
        }
        out
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }

    /// The `tag` parameter of header `name` (e.g. the To-tag of a response).
    pub fn tag(&self, name: &str) -> Option<String> {
        let v = self.header(name)?;
        let params = match v.rfind('>') {
            Some(i) => &v[i + 1..],
            None => v.as_str(),
        };
        params
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("tag"))
            .map(|(_, t)| t.trim().to_string())
    }

    /// The URI inside the first value of header `name` (`"A" <sip:a@h>;x` → `sip:a@h`).
    pub fn header_uri(&self, name: &str) -> Option<String> {
        let v = self.header(name)?;
        Some(match (v.find('<'), v.find('>')) {
            (Some(a), Some(b)) if a < b => v[a + 1..b].to_string(),
            _ => v.split(';').next().unwrap_or("").trim().to_string(),
        })
    }

    /// The method named in CSeq.
    pub fn cseq_method(&self) -> Option<String> {
        self.header("CSeq")?
            .split_whitespace()
            .nth(1)
            .map(str::to_string)
    }
}

fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}x{}x{}", std::process::id(), nanos, n)
}

/// A SIP request built from fields; `to_bytes` renders it with a correct Content-Length.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    pub uri: String,
    /// Where responses should go (Via sent-by and Contact).
    pub local: SocketAddr,
    pub from_user: String,
    pub from_tag: String,
    /// `To` header value; defaults to `<uri>`.
    pub to: String,
    pub call_id: String,
    pub branch: String,
    pub cseq: u32,
    /// `None` omits the header.
    pub max_forwards: Option<u32>,
    pub extra_headers: Vec<String>,
    pub content_type: Option<String>,
    pub body: String,
    /// Headers (by lower-case name) to leave out, for malformed-request tests.
    pub omit: Vec<String>,
}

impl RawRequest {
    /// A request with fresh Call-ID, branch and tag, `Max-Forwards: 70`, no body.
    pub fn new(method: &str, uri: &str, local: SocketAddr) -> RawRequest {
        let id = unique();
        RawRequest {
            method: method.to_string(),
            uri: uri.to_string(),
            local,
            from_user: "13800138000".into(),
            from_tag: format!("t{id}"),
            to: format!("<{uri}>"),
            call_id: format!("c{id}@127.0.0.1"),
            branch: format!("z9hG4bK{id}"),
            cseq: 1,
            max_forwards: Some(70),
            extra_headers: Vec::new(),
            content_type: None,
            body: String::new(),
            omit: Vec::new(),
        }
    }

    /// An INVITE with a small SDP offer.
    pub fn invite(uri: &str, local: SocketAddr) -> RawRequest {
        let mut r = RawRequest::new("INVITE", uri, local);
        r.content_type = Some("application/sdp".into());
        r.body = format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            ip = local.ip()
        );
        r
    }

    /// Sets Max-Forwards (`None` leaves the header out).
    pub fn max_forwards(mut self, mf: Option<u32>) -> Self {
        self.max_forwards = mf;
        self
    }

    /// Adds a raw header line (`Name: value`).
    pub fn header(mut self, line: &str) -> Self {
        self.extra_headers.push(line.to_string());
        self
    }

    /// Leaves out a standard header (e.g. `"call-id"`).
    pub fn without(mut self, name: &str) -> Self {
        self.omit.push(name.to_ascii_lowercase());
        self
    }

    /// Renders the request (CRLF line ends, Content-Length of the body).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("{} {} SIP/2.0\r\n", self.method, self.uri);
        let mut push = |name: &str, value: String| {
            if !self.omit.iter().any(|o| o == &name.to_ascii_lowercase()) {
                s.push_str(&format!("{name}: {value}\r\n"));
            }
        };
        push(
            "Via",
            format!("SIP/2.0/UDP {};branch={};rport", self.local, self.branch),
        );
        if let Some(mf) = self.max_forwards {
            push("Max-Forwards", mf.to_string());
        }
        push(
            "From",
            format!(
                "<sip:{}@{}>;tag={}",
                self.from_user,
                self.local.ip(),
                self.from_tag
            ),
        );
        push("To", self.to.clone());
        push("Call-ID", self.call_id.clone());
        push("CSeq", format!("{} {}", self.cseq, self.method));
        push(
            "Contact",
            format!("<sip:{}@{}>", self.from_user, self.local),
        );
        if let Some(ct) = &self.content_type {
            push("Content-Type", ct.clone());
        }
        push("Content-Length", self.body.len().to_string());
        for h in &self.extra_headers {
            s.push_str(h);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        s.push_str(&self.body);
        s.into_bytes()
    }

    /// A request inside the dialog a 2xx `response` to this INVITE created, as the caller
    /// sends it (RFC 3261 §12.2.1.1): Request-URI = the response's Contact, Route = its
    /// Record-Route in reverse order, To with the response's tag, a new branch, CSeq `cseq`
    /// with `method` (for the ACK of a 2xx: the INVITE's CSeq number and `"ACK"`).
    pub fn in_dialog(&self, method: &str, response: &SipMessage, cseq: u32) -> RawRequest {
        let mut req = self.clone();
        req.method = method.into();
        if let Some(contact) = response.header_uri("Contact") {
            req.uri = contact;
        }
        if let Some(to) = response.header("To") {
            req.to = to;
        }
        req.cseq = cseq;
        req.branch = format!("z9hG4bK{}", unique());
        req.content_type = None;
        req.body.clear();
        req.omit.clear();
        req.max_forwards = Some(70);
        let mut rr: Vec<String> = response
            .headers("Record-Route")
            .iter()
            .flat_map(|v| v.split(',').map(|x| x.trim().to_string()))
            .filter(|x| !x.is_empty())
            .collect();
        rr.reverse();
        req.extra_headers = rr.into_iter().map(|r| format!("Route: {r}")).collect();
        req
    }

    /// The ACK for a non-2xx final response to this INVITE (same branch, the response's To).
    pub fn ack_for(&self, response: &SipMessage) -> RawRequest {
        let mut ack = self.clone();
        ack.method = "ACK".into();
        ack.content_type = None;
        ack.body.clear();
        ack.extra_headers.clear();
        ack.omit.clear();
        ack.max_forwards = Some(70);
        if let Some(to) = response.header("To") {
            ack.to = to;
        }
        ack
    }
}

/// A UDP socket on 127.0.0.1 for sending hand-written SIP and reading the answers.
#[derive(Debug)]
pub struct SipUdpClient {
    socket: UdpSocket,
}

impl SipUdpClient {
    /// Binds 127.0.0.1 on an ephemeral port.
    pub fn bind() -> Result<SipUdpClient> {
        Self::bind_ip(Ipv4Addr::LOCALHOST)
    }

    /// Binds a loopback address other than 127.0.0.1 (e.g. `127.0.0.2`, to come from a second
    /// trunk) on an ephemeral port. Anything outside 127.0.0.0/8 is refused.
    pub fn bind_ip(ip: Ipv4Addr) -> Result<SipUdpClient> {
        if !ip.is_loopback() {
            return Err(TestkitError::io(
                format!("bind {ip}"),
                std::io::Error::other("the testkit binds loopback addresses only"),
            ));
        }
        let socket =
            UdpSocket::bind((ip, 0)).map_err(|e| TestkitError::io("bind UDP client", e))?;
        Ok(SipUdpClient { socket })
    }

    /// Every message received during `window` (no early stop), in arrival order.
    pub fn recv_for(&self, window: Duration) -> Result<Vec<SipMessage>> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(got);
            }
            match self.recv(left)? {
                Some(m) => got.push(m),
                None => return Ok(got),
            }
        }
    }

    /// The client's address (use it as `local` in [`RawRequest`]).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.socket
            .local_addr()
            .map_err(|e| TestkitError::io("local_addr", e))
    }

    /// Sends raw bytes to `to`.
    pub fn send_to(&self, bytes: &[u8], to: SocketAddr) -> Result<()> {
        self.socket
            .send_to(bytes, to)
            .map(|_| ())
            .map_err(|e| TestkitError::io(format!("send to {to}"), e))
    }

    /// The next datagram within `timeout`; `Ok(None)` on timeout.
    pub fn recv(&self, timeout: Duration) -> Result<Option<SipMessage>> {
        let timeout = timeout.max(Duration::from_millis(1));
        self.socket
            .set_read_timeout(Some(timeout))
            .map_err(|e| TestkitError::io("set_read_timeout", e))?;
        let mut buf = vec![0u8; 65536];
        match self.socket.recv_from(&mut buf) {
            Ok((n, _from)) => SipMessage::parse(&buf[..n]).map(Some),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                Ok(None)
            }
            Err(e) => Err(TestkitError::io("recv", e)),
        }
    }

    /// Every message received within `timeout`, provisionals included; stops at the first final
    /// response (≥ 200). The last element is the final response when one came.
    pub fn recv_until_final(&self, timeout: Duration) -> Result<Vec<SipMessage>> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(got);
            }
            match self.recv(left)? {
                Some(m) => {
                    let is_final = m.status().is_some_and(|s| s >= 200);
                    got.push(m);
                    if is_final {
                        return Ok(got);
                    }
                }
                None => return Ok(got),
            }
        }
    }

    /// Sends `req` to `to` and returns the final response within `timeout` (provisionals are
    /// skipped). For an INVITE answered with a non-2xx, the ACK is sent as well.
    pub fn request(
        &self,
        req: &RawRequest,
        to: SocketAddr,
        timeout: Duration,
    ) -> Result<Option<SipMessage>> {
        self.send_to(&req.to_bytes(), to)?;
        let final_response = self
            .recv_until_final(timeout)?
            .into_iter()
            .rfind(|m| m.status().is_some_and(|s| s >= 200));
        if let Some(resp) = &final_response {
            if req.method == "INVITE" && resp.status().is_some_and(|s| s >= 300) {
                self.send_to(&req.ack_for(resp).to_bytes(), to)?;
            }
        }
        Ok(final_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_responses_with_compact_and_folded_headers() {
        let m = SipMessage::parse(
            b"SIP/2.0 404 Not Found here\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b\r\nCSeq: 7\r\n  INVITE\r\nl: 0\r\n\r\n",
        );
        let Ok(m) = m else {
            panic!("parse failed");
        };
        assert_eq!(m.status(), Some(404));
        assert_eq!(m.reason(), Some("Not Found here"));
        assert_eq!(m.headers("via").len(), 2);
        assert_eq!(m.header("Content-Length").as_deref(), Some("0"));
        assert_eq!(m.cseq_method().as_deref(), Some("INVITE"));
        assert_eq!(m.method(), None);
    }

    #[test]
    fn request_renders_and_round_trips() {
        let local = SocketAddr::from(([127, 0, 0, 1], 5099));
        let req = RawRequest::invite("sip:4008001234@127.0.0.1:5060", local)
            .max_forwards(Some(0))
            .without("call-id");
        let Ok(m) = SipMessage::parse(&req.to_bytes()) else {
            panic!("parse failed");
        };
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.header("max-forwards").as_deref(), Some("0"));
        assert!(m.header("call-id").is_none());
        let len: usize = m
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(usize::MAX);
        assert_eq!(len, m.body().len());
        let resp = SipMessage::parse(b"SIP/2.0 486 Busy\r\nTo: <sip:x@y>;tag=abc\r\n\r\n").ok();
        let Some(resp) = resp else {
            panic!("parse failed")
        };
        let ack = req.ack_for(&resp);
        assert_eq!(ack.method, "ACK");
        assert_eq!(ack.branch, req.branch);
        assert_eq!(ack.to, "<sip:x@y>;tag=abc");
    }

    #[test]
    fn in_dialog_request_follows_the_2xx() {
        let local = SocketAddr::from(([127, 0, 0, 1], 5099));
        let inv = RawRequest::invite("sip:4008001234@127.0.0.1:5060", local);
        let ok = SipMessage::parse(
            b"SIP/2.0 200 OK\r\nRecord-Route: <sip:p1;lr>, <sip:p2;lr>\r\nRecord-Route: <sip:p3;lr>\r\nTo: <sip:4008001234@127.0.0.1>;tag=xyz\r\nContact: \"t\" <sip:1001@127.0.0.1:5070;transport=UDP>;expires=3\r\nCSeq: 1 INVITE\r\n\r\n",
        );
        let Ok(ok) = ok else { panic!("parse failed") };
        assert_eq!(ok.tag("To").as_deref(), Some("xyz"));
        let ack = inv.in_dialog("ACK", &ok, 1);
        let Ok(m) = SipMessage::parse(&ack.to_bytes()) else {
            panic!("parse failed")
        };
        assert_eq!(m.method(), Some("ACK"));
        assert_eq!(
            m.request_uri(),
            Some("sip:1001@127.0.0.1:5070;transport=UDP")
        );
        assert_eq!(
            m.headers("Route"),
            vec!["<sip:p3;lr>", "<sip:p2;lr>", "<sip:p1;lr>"]
        );
        assert_eq!(m.tag("To").as_deref(), Some("xyz"));
        assert_eq!(m.header("CSeq").as_deref(), Some("1 ACK"));
        assert_ne!(ack.branch, inv.branch, "a 2xx ACK is a new transaction");
        assert_eq!(m.header("Call-ID"), Some(inv.call_id.clone()));
        assert!(m.body().is_empty());
        assert!(SipUdpClient::bind_ip(Ipv4Addr::new(10, 0, 0, 1)).is_err());
    }

    #[test]
    fn udp_client_times_out_and_receives() {
        let a = SipUdpClient::bind().ok();
        let b = SipUdpClient::bind().ok();
        let (Some(a), Some(b)) = (a, b) else {
            panic!("bind failed")
        };
        let started = Instant::now();
        assert!(matches!(a.recv(Duration::from_millis(50)), Ok(None)));
        assert!(started.elapsed() < Duration::from_secs(2));
        let to = a.local_addr().ok();
        let Some(to) = to else { panic!("no addr") };
        assert!(b.send_to(b"SIP/2.0 200 OK\r\nl: 0\r\n\r\n", to).is_ok());
        let got = a
            .recv_until_final(Duration::from_secs(2))
            .unwrap_or_default();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].status(), Some(200));
    }
}
