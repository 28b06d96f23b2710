//! Building outgoing messages by copying received bytes and splicing in changes.
//!
//! Nothing is re-serialised: a forwarded message is the received bytes with a few ranges
//! replaced, so unknown headers, folding and header order survive untouched (RFC 3261 §16.6).
//! Every function computes an upper bound of its output size first and writes into one
//! `Vec` of that capacity: one allocation per message.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::msg::{header_name_matches, HeaderScan, Kind, Message, Span};

/// What to change when forwarding a request (RFC 3261 §16.6).
#[derive(Debug, Default)]
pub struct ForwardRequest<'a> {
    /// Replace the Request-URI with this (e.g. `sip:13800000000@10.0.0.9:5060`).
    pub request_uri: Option<&'a [u8]>,
    /// Full value of the Via to insert on top, e.g. `SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK..;rport`.
    pub via: &'a [u8],
    /// Value of a Record-Route to insert on top, e.g. `<sip:127.0.0.1:5060;lr>`.
    pub record_route: Option<&'a [u8]>,
    /// Remove the first Route value (it addressed us: loose routing §16.4).
    pub pop_route: bool,
    /// With `pop_route`: remove the second Route value too (it addressed us as well: the two
    /// entries of an RFC 5658 double Record-Route, one per listen address).
    pub pop_second_route: bool,
    /// The received top Via gets `received=`/`rport=` (RFC 3261 §18.2.1, RFC 3581) for this source.
    pub source: Option<SocketAddr>,
    /// Headers added just before the blank line: (name, value).
    pub add_headers: &'a [(&'a str, &'a [u8])],
    /// Headers (all occurrences, compact forms too) removed, e.g. `P-Asserted-Identity`.
    pub remove_headers: &'a [&'a str],
}

/// Room for `;received=<IPv6>` plus `=<port>`.
const VIA_FIX_MAX: usize = ";received=".len() + 45 + "=65535".len();
const CRLF: &[u8] = b"\r\n";

/// Splices for the received top Via (RFC 3261 §18.2.1, RFC 3581 §4).
struct ViaFix {
    /// Offset after a bare `rport` where `=<port>` goes.
    rport_at: Option<usize>,
    port: u16,
    /// `;received=<ip>` appended at the end of the value.
    received: Option<IpAddr>,
    end: usize,
}

fn via_fix(msg: &Message, source: Option<SocketAddr>) -> Option<ViaFix> {
    let src = source?;
    let v = msg.top_via();
    if v.raw.is_empty() {
        return None;
    }
    let rport_at = v.bare_rport_end();
    let host = v
        .host
        .strip_prefix(b"[")
        .and_then(|h| h.strip_suffix(b"]"))
        .unwrap_or(v.host);
    let same_host = crate::uri::parse_ip(host).is_some_and(|ip| ip == src.ip());
    let received = (v.received.is_none() && (!same_host || v.rport.is_some())).then_some(src.ip());
    if rport_at.is_none() && received.is_none() {
        return None;
    }
    Some(ViaFix {
        rport_at,
        port: src.port(),
        received,
        end: v.end,
    })
}

/// Copy `b[from..to]` with the Via splices applied (they must fall inside the range).
fn write_with_fix(out: &mut Vec<u8>, b: &[u8], from: usize, to: usize, fix: &ViaFix) {
    let mut pos = from;
    if let Some(at) = fix.rport_at {
        out.extend_from_slice(&b[pos..at]);
        out.push(b'=');
        push_dec(out, u64::from(fix.port), 1);
        pos = at;
    }
    if let Some(ip) = fix.received {
        out.extend_from_slice(&b[pos..fix.end]);
        out.extend_from_slice(b";received=");
        push_ip(out, ip);
        pos = fix.end;
    }
    out.extend_from_slice(&b[pos..to]);
}

/// `n` in decimal, zero-padded to at least `width` digits (`write!(out, "{n:0width$}")`
/// without the formatting machinery: this runs for nearly every message).
pub(crate) fn push_dec(out: &mut Vec<u8>, n: u64, width: usize) {
    push_radix::<10>(out, n, width);
}

/// `n` in lower-case hex, zero-padded to at least `width` digits.
pub(crate) fn push_hex(out: &mut Vec<u8>, n: u64, width: usize) {
    push_radix::<16>(out, n, width);
}

#[inline]
fn push_radix<const RADIX: u64>(out: &mut Vec<u8>, n: u64, width: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        // Lossless: the remainder is below 16.
        buf[i] = DIGITS[(n % RADIX) as usize];
        n /= RADIX;
        if n == 0 {
            break;
        }
    }
    // Zero padding (at most 20 digits): `buf` is '0' below the digits.
    let start = i.min(buf.len() - width.min(buf.len()));
    out.extend_from_slice(&buf[start..]);
}

/// An IP address as `Display` writes it (IPv4 by hand, IPv6 through `fmt`).
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_dec(out, u64::from(o), 1);
            }
        }
        // Writing into a Vec cannot fail.
        IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(CRLF);
}

/// Upper bound of [`forward_request`]'s output length.
pub(crate) fn forward_request_capacity(msg: &Message, fwd: &ForwardRequest<'_>) -> usize {
    msg.bytes().len()
        + fwd.request_uri.map_or(0, <[u8]>::len)
        + "Via: \r\n".len()
        + fwd.via.len()
        + fwd
            .record_route
            .map_or(0, |r| "Record-Route: \r\n".len() + r.len())
        + VIA_FIX_MAX
        + "Max-Forwards: 70\r\n".len()
        + "Content-Length: 4294967295\r\n".len()
        + fwd
            .add_headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>()
}

/// Forwarded request: Max-Forwards decremented (inserted as 70 when absent), Content-Length kept.
///
/// Layout: start line (Request-URI replaced), the new `Via:` line, the new `Record-Route:`
/// line, then the received headers in order (top Via with `received`/`rport`, Max-Forwards
/// decremented, first Route value popped, `remove_headers` dropped), then `Max-Forwards: 70`
/// and `Content-Length` if they were absent, then `add_headers`, the blank line and the body.
/// A request arriving with `Max-Forwards: 0` must be answered with 483 by the caller, not
/// forwarded; this function leaves 0 as 0.
pub fn forward_request(msg: &Message, fwd: &ForwardRequest<'_>) -> Vec<u8> {
    let b: &[u8] = msg.bytes();
    let uri_span = msg.uri_span().range();
    let uri = fwd.request_uri.unwrap_or(&b[uri_span.clone()]);
    let fix = via_fix(msg, fwd.source);
    let cap = forward_request_capacity(msg, fwd);
    let mut out = Vec::with_capacity(cap);

    out.extend_from_slice(&b[..uri_span.start]);
    out.extend_from_slice(uri);
    out.extend_from_slice(&b[uri_span.end..msg.headers_start()]);
    header_line(&mut out, b"Via", fwd.via);
    if let Some(rr) = fwd.record_route {
        header_line(&mut out, b"Record-Route", rr);
    }

    if fwd.remove_headers.is_empty() && msg.max_forwards_lines() <= 1 && !fwd.pop_second_route {
        splice_headers(&mut out, msg, fix.as_ref(), fwd.pop_route);
    } else {
        copy_headers(&mut out, msg, fwd, fix.as_ref());
    }
    if msg.max_forwards().is_none() {
        out.extend_from_slice(b"Max-Forwards: 70\r\n");
    }
    if msg.content_length().is_none() {
        out.extend_from_slice(b"Content-Length: ");
        push_dec(&mut out, msg.body().len() as u64, 1);
        out.extend_from_slice(CRLF);
    }
    for (name, value) in fwd.add_headers {
        header_line(&mut out, name.as_bytes(), value);
    }
    out.extend_from_slice(&b[msg.headers_end()..]);
    out
}

/// The received header lines, in order, as forwarding changes them: `remove_headers`
/// dropped, the top Via fixed (`received`/`rport`), Max-Forwards decremented (repeats
/// dropped), the first Route value popped. The general case: every line is looked at.
fn copy_headers(out: &mut Vec<u8>, msg: &Message, fwd: &ForwardRequest<'_>, fix: Option<&ViaFix>) {
    let b: &[u8] = msg.bytes();
    let top_via_line = msg.top_via_line();
    let first_route_line = msg.first_route_line();
    let routes = msg.route_spans();
    let mf = msg.max_forwards_span();
    for h in msg.header_lines() {
        let line = h.line.range();
        let name = &b[h.name.range()];
        if fwd
            .remove_headers
            .iter()
            .any(|r| header_name_matches(name, r))
        {
            continue;
        }
        if h.line == top_via_line {
            match fix {
                Some(fix) => write_with_fix(out, b, line.start, line.end, fix),
                None => out.extend_from_slice(&b[line]),
            }
            continue;
        }
        if let Some(mf) = mf.filter(|s| s.s >= h.line.s && s.e <= h.line.e) {
            let n = msg.max_forwards().unwrap_or(0).saturating_sub(1);
            out.extend_from_slice(&b[line.start..mf.s as usize]);
            push_dec(out, u64::from(n), 1);
            out.extend_from_slice(&b[mf.e as usize..line.end]);
            continue;
        }
        if mf.is_some() && header_name_matches(name, "Max-Forwards") {
            // A repeated Max-Forwards (the parser accepts equal duplicates): one decremented
            // header goes out, not a decremented one plus a stale copy.
            continue;
        }
        if fwd.pop_route && fwd.pop_second_route && header_name_matches(name, "Route") {
            // The first two Route values go, wherever they are (one line or two).
            let in_line = |r: &&Span| r.s >= h.line.s && r.s < h.line.e;
            let first = routes.iter().position(|r| in_line(&r));
            let after = routes
                .iter()
                .rposition(|r| in_line(&r))
                .map_or(0, |i| i + 1);
            match first {
                Some(_) if after <= 2 => continue,
                Some(first) if first < 2 => {
                    out.extend_from_slice(&b[line.start..routes[first].s as usize]);
                    out.extend_from_slice(&b[routes[2].s as usize..line.end]);
                    continue;
                }
                _ => {}
            }
        } else if fwd.pop_route && !routes.is_empty() && h.line == first_route_line {
            // Keep the rest of the line when it carries more values.
            if let Some(next) = routes.get(1).filter(|n| n.s < h.line.e) {
                out.extend_from_slice(&b[line.start..routes[0].s as usize]);
                out.extend_from_slice(&b[next.s as usize..line.end]);
            }
            continue;
        }
        out.extend_from_slice(&b[line]);
    }
}

/// [`copy_headers`] when nothing is removed by name and there is at most one Max-Forwards
/// line: only the top Via, the Max-Forwards value and the first Route change, so the header
/// block is copied in runs between those few splices, without walking its lines.
fn splice_headers(out: &mut Vec<u8>, msg: &Message, fix: Option<&ViaFix>, pop_route: bool) {
    #[derive(Clone, Copy)]
    enum Edit {
        Rport(u16),
        Received(IpAddr),
        MaxForwards(u32),
        Drop,
    }
    let b: &[u8] = msg.bytes();
    // (start, end, edit) in message order; at most four.
    let mut edits: [(usize, usize, Edit); 4] = [(0, 0, Edit::Drop); 4];
    let mut n = 0;
    let mut add = |start: usize, end: usize, e: Edit| {
        // Stable insertion by start: an rport and a received at the same offset keep their
        // order (rport first), as in `write_with_fix`.
        let mut i = n;
        while i > 0 && edits[i - 1].0 > start {
            edits[i] = edits[i - 1];
            i -= 1;
        }
        edits[i] = (start, end, e);
        n += 1;
    };
    if let Some(fix) = fix {
        if let Some(at) = fix.rport_at {
            add(at, at, Edit::Rport(fix.port));
        }
        if let Some(ip) = fix.received {
            add(fix.end, fix.end, Edit::Received(ip));
        }
    }
    if let Some(mf) = msg.max_forwards_span() {
        let v = msg.max_forwards().unwrap_or(0).saturating_sub(1);
        add(mf.s as usize, mf.e as usize, Edit::MaxForwards(v));
    }
    let routes = msg.route_spans();
    if pop_route && !routes.is_empty() {
        let line = msg.first_route_line();
        // Keep the rest of the line when it carries more values.
        match routes.get(1).filter(|next| next.s < line.e) {
            Some(next) => add(routes[0].s as usize, next.s as usize, Edit::Drop),
            None => add(line.s as usize, line.e as usize, Edit::Drop),
        }
    }
    let mut pos = msg.headers_start();
    for &(start, end, edit) in &edits[..n] {
        out.extend_from_slice(&b[pos..start]);
        match edit {
            Edit::Rport(port) => {
                out.push(b'=');
                push_dec(out, u64::from(port), 1);
            }
            Edit::Received(ip) => {
                out.extend_from_slice(b";received=");
                push_ip(out, ip);
            }
            Edit::MaxForwards(v) => push_dec(out, u64::from(v), 1),
            Edit::Drop => {}
        }
        pos = end;
    }
    out.extend_from_slice(&b[pos..msg.headers_end()]);
}

/// Forwarded response: the top Via value removed (only that value if a line carries several).
pub fn forward_response(msg: &Message) -> Vec<u8> {
    let b: &[u8] = msg.bytes();
    let vias = msg.via_spans();
    let line = msg.top_via_line();
    let Some(top) = vias.first() else {
        return b.to_vec();
    };
    let next = vias.get(1).filter(|n| n.s < line.e);
    // Exactly the output's size: a Vec without spare capacity becomes `Bytes` without the
    // separate shared header `Bytes::from` allocates otherwise.
    let removed = match next {
        Some(next) => next.s.saturating_sub(top.s),
        None => line.e.saturating_sub(line.s),
    };
    let mut out = Vec::with_capacity(b.len().saturating_sub(removed as usize));
    out.extend_from_slice(&b[..line.s as usize]);
    if let Some(next) = next {
        out.extend_from_slice(&b[line.s as usize..top.s as usize]);
        out.extend_from_slice(&b[next.s as usize..line.e as usize]);
    }
    out.extend_from_slice(&b[line.e as usize..]);
    out
}

/// [`forward_response`] with the From header field's value set to `from`: a proxy that showed
/// the callee another From (来电显示: the 400 number) gives the caller back its own, so the
/// response's From equals its request's (RFC 3261 §8.2.6). Only such calls pay the second
/// parse.
pub fn forward_response_with_from(msg: &Message, from: &[u8]) -> Vec<u8> {
    let out = forward_response(msg);
    match Message::parse(bytes::Bytes::from(out.clone())) {
        Ok(m) => replace_header(&m, "From", from),
        Err(_) => out,
    }
}

/// `msg` with its first `name` header line (long or compact form) replaced by
/// `name: value`; unchanged without one.
pub fn replace_header(msg: &Message, name: &str, value: &[u8]) -> Vec<u8> {
    let b: &[u8] = msg.bytes();
    let mut out = Vec::with_capacity(b.len() + value.len() + name.len() + 4);
    let mut pos = 0;
    if let Some(h) = msg
        .header_lines()
        .find(|h| header_name_matches(&b[h.name.range()], name))
    {
        let line = h.line.range();
        out.extend_from_slice(&b[..line.start]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(CRLF);
        pos = line.end;
    }
    out.extend_from_slice(&b[pos..]);
    out
}

/// A locally generated response to `req` (§8.2.6): Via(s) copied (top one with received/rport
/// for `source`), From, To (adding `to_tag` when the request's To has none and code > 100),
/// Call-ID, CSeq, then `extra` headers, `Content-Length: 0`.
///
/// Via lines are copied as received (name spelling, several values per line), in order.
pub fn response(
    req: &Message,
    code: u16,
    reason: &str,
    to_tag: Option<&[u8]>,
    source: Option<SocketAddr>,
    extra: &[(&str, &[u8])],
) -> Vec<u8> {
    let b: &[u8] = req.bytes();
    let fix = via_fix(req, source);
    let add_tag = to_tag.filter(|_| code > 100 && req.to_tag().is_none());
    let via_block = req.via_lines();
    let via_lines = via_block.total as usize;
    let cap = "SIP/2.0 000 \r\n".len()
        + reason.len()
        + via_lines
        + VIA_FIX_MAX
        + "From: \r\n".len()
        + req.from_value().len()
        + "To: \r\n".len()
        + req.to_value().len()
        + add_tag.map_or(0, |t| ";tag=".len() + t.len())
        + "Call-ID: \r\n".len()
        + req.call_id().len()
        + "CSeq: \r\n".len()
        + req.cseq_value().len()
        + extra
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>()
        + "Content-Length: 0\r\n\r\n".len();
    let mut out = Vec::with_capacity(cap);
    out.extend_from_slice(b"SIP/2.0 ");
    push_dec(&mut out, u64::from(code), 3);
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(CRLF);
    if let Some(lines) = via_block.contiguous() {
        // The usual case: the Via lines are adjacent (the top one first).
        match &fix {
            Some(fix) => write_with_fix(&mut out, b, lines.start, lines.end, fix),
            None => out.extend_from_slice(&b[lines]),
        }
    } else {
        let top = req.top_via_line();
        for h in req.header_lines() {
            if h.kind != Kind::Via {
                continue;
            }
            let line = h.line.range();
            match (&fix, h.line == top) {
                (Some(fix), true) => write_with_fix(&mut out, b, line.start, line.end, fix),
                _ => out.extend_from_slice(&b[line]),
            }
        }
    }
    header_line(&mut out, b"From", req.from_value());
    out.extend_from_slice(b"To: ");
    match add_tag {
        Some(tag) => {
            // `<sip:b@h>;` has an empty parameter: `;;tag=` would not parse again.
            let to = req.to_value();
            let end = to
                .iter()
                .rposition(|&c| c != b';' && !c.is_ascii_whitespace())
                .map_or(0, |i| i + 1);
            out.extend_from_slice(&to[..end]);
            out.extend_from_slice(b";tag=");
            out.extend_from_slice(tag);
        }
        None => out.extend_from_slice(req.to_value()),
    }
    out.extend_from_slice(CRLF);
    header_line(&mut out, b"Call-ID", req.call_id());
    header_line(&mut out, b"CSeq", req.cseq_value());
    for (name, value) in extra {
        header_line(&mut out, name.as_bytes(), value);
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

/// What a CANCEL and a non-2xx ACK copy from the INVITE they follow (§9.1, §17.1.1.3).
struct Sibling<'a> {
    uri: &'a [u8],
    /// The top Via value (the proxy's own, the only Via of the sibling).
    via: &'a [u8],
    from: &'a [u8],
    call_id: &'a [u8],
    cseq: u32,
}

/// Shared shape of CANCEL and ACK built from a sent INVITE: `routes` writes its Route
/// header lines (`route_len` bytes) unchanged.
fn write_sibling(
    s: &Sibling<'_>,
    method: &str,
    to: &[u8],
    route_len: usize,
    routes: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let cap = method.len()
        + 1
        + s.uri.len()
        + " SIP/2.0\r\n".len()
        + "Via: \r\n".len()
        + s.via.len()
        + route_len
        + "Max-Forwards: 70\r\n".len()
        + "From: \r\n".len()
        + s.from.len()
        + "To: \r\n".len()
        + to.len()
        + "Call-ID: \r\n".len()
        + s.call_id.len()
        + "CSeq: 4294967295 \r\n".len()
        + method.len()
        + "Content-Length: 0\r\n\r\n".len();
    let mut out = Vec::with_capacity(cap);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(s.uri);
    out.extend_from_slice(b" SIP/2.0\r\n");
    header_line(&mut out, b"Via", s.via);
    routes(&mut out);
    out.extend_from_slice(b"Max-Forwards: 70\r\n");
    header_line(&mut out, b"From", s.from);
    header_line(&mut out, b"To", to);
    header_line(&mut out, b"Call-ID", s.call_id);
    out.extend_from_slice(b"CSeq: ");
    push_dec(&mut out, u64::from(s.cseq), 1);
    out.push(b' ');
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(CRLF);
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

/// CANCEL or ACK of a parsed INVITE.
fn invite_sibling(inv: &Message, method: &str, to: &[u8]) -> Vec<u8> {
    let b: &[u8] = inv.bytes();
    let route_block = inv.route_lines();
    let s = Sibling {
        uri: inv.request_uri(),
        via: inv.top_via().raw,
        from: inv.from_value(),
        call_id: inv.call_id(),
        cseq: inv.cseq().0,
    };
    write_sibling(
        &s,
        method,
        to,
        route_block.total as usize,
        |out| match route_block.contiguous() {
            Some(lines) => out.extend_from_slice(&b[lines]),
            None => {
                for h in inv.header_lines() {
                    if h.kind == Kind::Route {
                        out.extend_from_slice(&b[h.line.range()]);
                    }
                }
            }
        },
    )
}

/// The sibling fields of an INVITE this proxy built and sent, by one walk over its header
/// lines instead of a full parse (which validates every URI: ~9,000 instructions for an
/// INVITE, once per hunt step). `None` for anything that is not plainly what the proxy
/// writes (a folded or comma-joined top Via, a repeated From/To/Call-ID/CSeq, a bad start
/// line): the caller then parses the message, so the result never differs.
fn sent_sibling(b: &[u8]) -> Option<(Sibling<'_>, &[u8], Vec<Span>)> {
    let nl = crate::scan::find_byte(b, b'\n')?;
    let uri = b[..nl]
        .strip_suffix(b"\r")?
        .strip_prefix(b"INVITE ")?
        .strip_suffix(b" SIP/2.0")?;
    if uri.is_empty() || uri.iter().any(|&c| c == b' ' || c == b'\t') {
        return None;
    }
    let (mut via, mut from, mut to, mut call_id, mut cseq) = (None, None, None, None, None);
    let mut routes = Vec::new();
    let mut scan = HeaderScan::new(b, nl + 1);
    while let Some(h) = scan.next_header().ok()? {
        let v = &b[h.value.range()];
        let ok = match h.kind {
            Kind::Via if via.is_none() => {
                via = Some(v);
                !v.iter().any(|&c| c == b'\n' || c == b',')
            }
            Kind::Route => {
                routes.push(h.line);
                true
            }
            Kind::From => once(&mut from, v),
            Kind::To => once(&mut to, v),
            Kind::CallId => once(&mut call_id, v),
            Kind::CSeq => {
                let digits = v.iter().take_while(|c| c.is_ascii_digit()).count();
                let n = crate::scan::parse_decimal(&v[..digits], i32::MAX as u64)?;
                let spaced = v.get(digits).is_some_and(|&c| c == b' ' || c == b'\t');
                let method = v[digits..].trim_ascii_start();
                cseq.replace(n as u32).is_none() && spaced && method == b"INVITE"
            }
            _ => true,
        };
        if !ok {
            return None;
        }
    }
    let s = Sibling {
        uri,
        via: via?,
        from: from?,
        call_id: call_id.filter(|c| !c.is_empty())?,
        cseq: cseq?,
    };
    Some((s, to?, routes))
}

/// Sets `slot` to `v`; false if it was set already (a repeated header).
fn once<'a>(slot: &mut Option<&'a [u8]>, v: &'a [u8]) -> bool {
    slot.replace(v).is_none()
}

fn sent_sibling_msg(b: &[u8], method: &str, to: Option<&[u8]>) -> Option<Vec<u8>> {
    let (s, sent_to, routes) = sent_sibling(b)?;
    let route_len = routes.iter().map(|r| r.range().len()).sum();
    Some(write_sibling(
        &s,
        method,
        to.unwrap_or(sent_to),
        route_len,
        |out| {
            for r in &routes {
                out.extend_from_slice(&b[r.range()]);
            }
        },
    ))
}

/// CANCEL for a forwarded INVITE (§9.1): same Request-URI, top Via (only ours), Route headers,
/// Call-ID, From, To, CSeq number with method CANCEL, Max-Forwards 70, Content-Length 0.
pub fn cancel_for(sent_invite: &Message) -> Vec<u8> {
    invite_sibling(sent_invite, "CANCEL", sent_invite.to_value())
}

/// [`cancel_for`] from the bytes of an INVITE this proxy sent, without parsing them (see
/// [`ack_for_sent`]); `None` when they are not plainly what the proxy writes.
pub fn cancel_for_sent(sent_invite: &[u8]) -> Option<Vec<u8>> {
    sent_sibling_msg(sent_invite, "CANCEL", None)
}

/// ACK for a non-2xx final response to a forwarded INVITE (§17.1.1.3): Request-URI, top Via
/// and Route headers from the INVITE, To from the response (with its tag), CSeq number + ACK.
pub fn ack_for(sent_invite: &Message, response: &Message) -> Vec<u8> {
    invite_sibling(sent_invite, "ACK", response.to_value())
}

/// [`ack_for`] from the bytes of an INVITE this proxy built and sent: one walk over its
/// header lines instead of a parse. Byte for byte what [`ack_for`] gives for the parsed
/// INVITE; `None` when the bytes are not plainly what the proxy writes (the caller then
/// parses them and uses [`ack_for`]).
pub fn ack_for_sent(sent_invite: &[u8], response: &Message) -> Option<Vec<u8>> {
    sent_sibling_msg(sent_invite, "ACK", Some(response.to_value()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is the failure report.
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    proptest! {
        /// The hand-written digit writers are `format!` with zero padding (up to 20 digits, the
        /// most a u64 needs; wider is not padded further).
        #[test]
        fn digits_are_formats(n: u64, width in 0usize..=20) {
            let mut out = b"x".to_vec();
            push_dec(&mut out, n, width);
            prop_assert_eq!(out, format!("x{n:0width$}").into_bytes());
            let mut out = Vec::new();
            push_hex(&mut out, n, width);
            prop_assert_eq!(out, format!("{n:0width$x}").into_bytes());
        }
    }

    fn parse(s: &str) -> Message {
        Message::parse(Bytes::from(s.replace('\n', "\r\n"))).unwrap()
    }

    const REQ: &str = "INVITE sip:4008001234@hotline.example SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa;rport
Max-Forwards: 70
Route: <sip:hotline.example;lr>, <sip:next.example;lr>
From: <sip:alice@example.com>;tag=1
To: <sip:4008001234@hotline.example>
Call-ID: c1
CSeq: 1 INVITE
Content-Length: 0

";

    /// The CANCEL and ACK built from a sent INVITE's bytes are byte for byte those built from
    /// its parse, for every shape the proxy may have sent; anything unusual gives `None` (and
    /// the caller parses).
    #[test]
    fn siblings_from_sent_bytes_equal_those_from_the_parse() {
        let ours = "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-hl-1-2\n";
        let fwd = REQ
            .replace(
                "INVITE sip:4008001234@hotline.example",
                "INVITE sip:1001@192.0.2.20:5070",
            )
            .replacen("Via: ", &format!("{ours}Via: "), 1);
        let same = [
            fwd.clone(),
            REQ.to_string(),
            // Route lines apart, compact names, odd spacing, a body.
            fwd.replace(
                "Route: <sip:hotline.example;lr>, <sip:next.example;lr>\n",
                "Route: <sip:hotline.example;lr>\nX-A: 1\nRoute:   <sip:next.example;lr>\n",
            ),
            fwd.replace("From: ", "f: ")
                .replace("To: ", "t:  ")
                .replace("Call-ID: ", "i: "),
            fwd.replace("CSeq: 1 INVITE", "CSeq:   2147483647\tINVITE"),
            fwd.replace(
                "Route: <sip:hotline.example;lr>, <sip:next.example;lr>\n",
                "",
            ),
            fwd.replace(
                "Content-Length: 0\n\n",
                "Content-Type: application/sdp\nContent-Length: 5\n\nv=0\n",
            ),
        ];
        let busy = parse(
            "SIP/2.0 486 Busy Here\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-hl-1-2\n\
             From: <sip:alice@example.com>;tag=1\nTo: <sip:4008001234@hotline.example>;tag=b9\n\
             Call-ID: c1\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
        );
        for v in &same {
            let bytes = v.replace('\n', "\r\n");
            let inv = parse(v);
            assert_eq!(
                ack_for_sent(bytes.as_bytes(), &busy).as_deref(),
                Some(&ack_for(&inv, &busy)[..]),
                "ACK of\n{v}"
            );
            assert_eq!(
                cancel_for_sent(bytes.as_bytes()).as_deref(),
                Some(&cancel_for(&inv)[..]),
                "CANCEL of\n{v}"
            );
        }
        let unusual = [
            // A folded top Via, two Vias on one line, a repeated From, no Call-ID, no CSeq
            // space, not an INVITE, LF-only line ends.
            fwd.replacen(
                "Via: SIP/2.0/UDP 127.0.0.1:5060;",
                "Via: SIP/2.0/UDP\n 127.0.0.1:5060;",
                1,
            ),
            fwd.replacen(
                ";branch=z9hG4bK-hl-1-2\nVia: ",
                ";branch=z9hG4bK-hl-1-2, ",
                1,
            ),
            fwd.replace("From: ", "From: <sip:x@y>;tag=2\nFrom: "),
            fwd.replace("Call-ID: c1\n", ""),
            fwd.replace("CSeq: 1 INVITE", "CSeq: 1INVITE"),
            fwd.replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS")
                .replacen("INVITE ", "OPTIONS ", 1),
        ];
        for v in &unusual {
            let bytes = v.replace('\n', "\r\n");
            assert_eq!(ack_for_sent(bytes.as_bytes(), &busy), None, "{v}");
            assert_eq!(cancel_for_sent(bytes.as_bytes()), None, "{v}");
        }
        assert_eq!(cancel_for_sent(fwd.as_bytes()), None, "LF-only start line");
    }

    #[test]
    fn splicing_and_the_line_walk_agree() {
        let variants = [
            REQ.to_string(),
            REQ.replace("Max-Forwards: 70\n", ""),
            REQ.replace(";rport", ";rport;x=1").replace(
                "Route: <sip:hotline.example;lr>, <sip:next.example;lr>\n",
                "Route: <sip:hotline.example;lr>\nRoute: <sip:next.example;lr>\n",
            ),
            REQ.replace(
                "Route: <sip:hotline.example;lr>, <sip:next.example;lr>\n",
                "",
            ),
            REQ.replace(
                "branch=z9hG4bKa;rport",
                "branch=z9hG4bKa;received=192.0.2.1;rport",
            ),
        ];
        let sources: [Option<SocketAddr>; 4] = [
            None,
            Some("192.0.2.10:5060".parse().unwrap()),
            Some("198.51.100.7:40000".parse().unwrap()),
            Some("[2001:db8::1]:5062".parse().unwrap()),
        ];
        for text in &variants {
            let m = parse(text);
            for pop in [false, true] {
                for source in sources {
                    let fix = via_fix(&m, source);
                    let fwd = ForwardRequest {
                        pop_route: pop,
                        source,
                        ..Default::default()
                    };
                    let mut spliced = Vec::new();
                    splice_headers(&mut spliced, &m, fix.as_ref(), pop);
                    let mut walked = Vec::new();
                    copy_headers(&mut walked, &m, &fwd, fix.as_ref());
                    assert_eq!(
                        String::from_utf8_lossy(&spliced),
                        String::from_utf8_lossy(&walked)
                    );
                }
            }
        }
    }

    #[test]
    fn output_fits_the_capacity_computed_up_front() {
        let m = parse(REQ);
        let add: &[(&str, &[u8])] = &[("X-Hotline", b"1")];
        let fwd = ForwardRequest {
            request_uri: Some(b"sip:13800000000@10.0.0.9:5060"),
            via: b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp",
            record_route: Some(b"<sip:10.0.0.1;lr>"),
            pop_route: true,
            pop_second_route: false,
            source: Some("[2001:db8::ffff:1234]:40000".parse().unwrap()),
            add_headers: add,
            remove_headers: &["X-None"],
        };
        let out = forward_request(&m, &fwd);
        // Capacity unchanged means the Vec never grew: one allocation.
        assert_eq!(out.capacity(), forward_request_capacity(&m, &fwd));
        assert!(out.len() <= out.capacity());
        let r = response(
            &m,
            486,
            "Busy Here",
            Some(b"t"),
            fwd.source,
            &[("Retry-After", b"30")],
        );
        let text = String::from_utf8_lossy(&r);
        assert!(
            text.contains(";rport=40000;received=2001:db8::ffff:1234"),
            "{text}"
        );
    }
}
