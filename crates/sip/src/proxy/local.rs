//! Messages Hotline writes itself: local responses to requests (with a To-tag of its own,
//! stable per request), the answer to bytes that did not parse, and requests it originates
//! (BYE).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::msg::{Message, Method};
use crate::rewrite;
use crate::scan::find;

use super::key::HashKey;
use super::txn_table::{Owner, Sent};
use super::{eq_ci, Peer, Proxy};

/// A To-tag for responses Hotline generates itself: stable per request, so retransmitted
/// requests get the same tag.
pub(super) fn local_tag(key: &HashKey, req: &Message) -> LocalTag {
    local_tag_of(key, req.call_id(), req.from_tag().unwrap_or(b""))
}

/// [`local_tag`] of a request with this Call-ID and From tag.
pub(super) fn local_tag_of(key: &HashKey, call_id: &[u8], from_tag: &[u8]) -> LocalTag {
    let h = key.hash(&[call_id, from_tag, b"hotline"]);
    let mut tag = [0u8; 18];
    tag[..2].copy_from_slice(b"hl");
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, slot) in tag[2..].iter_mut().enumerate() {
        *slot = DIGITS[((h >> (60 - 4 * i)) & 15) as usize];
    }
    LocalTag(tag)
}

/// `hl` + 16 hex digits: a To-tag of Hotline's own, kept inline.
#[derive(Clone, Copy)]
pub(super) struct LocalTag(pub(super) [u8; 18]);

impl std::ops::Deref for LocalTag {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A 400 (or `code`) for bytes that did not parse: copy whatever Via, From, To, Call-ID and CSeq lines can
/// be found (a lenient line scan), so the sender can match it. Without a Via there is no way
/// to address a response, and nothing is sent.
pub(super) fn bad_request(
    bytes: &[u8],
    code: u16,
    reason: &str,
    source: SocketAddr,
) -> Option<Vec<u8>> {
    // An oversize message is answered from its first part only.
    let bytes = &bytes[..bytes.len().min(16 * 1024)];
    let head_end = find(bytes, b"\r\n\r\n").unwrap_or(bytes.len());
    let head = &bytes[..head_end];
    let mut out = Vec::with_capacity(256 + head.len());
    out.extend_from_slice(format!("SIP/2.0 {code} ").as_bytes());
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut have_via = false;
    let mut first_via = true;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        let keep = [
            &b"via"[..],
            b"v",
            b"from",
            b"f",
            b"to",
            b"t",
            b"call-id",
            b"i",
            b"cseq",
        ]
        .iter()
        .any(|n| eq_ci(name, n));
        if !keep || line.len() > 2048 {
            continue;
        }
        let is_via = eq_ci(name, b"via") || eq_ci(name, b"v");
        out.extend_from_slice(line);
        if is_via && first_via {
            first_via = false;
            out.extend_from_slice(format!(";received={}", source.ip()).as_bytes());
        }
        have_via |= is_via;
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    have_via.then_some(out)
}

pub(super) fn default_reason(code: u16) -> &'static str {
    match code {
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        487 => "Request Terminated",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Call Failed",
    }
}

impl Proxy {
    /// Answer a request without keeping any state (e.g. 403 to a source that may not talk to
    /// Hotline). Responses and ACKs get nothing.
    pub fn reply_stateless(&mut self, source: Peer, msg: &Message, code: u16, reason: &str) {
        if !msg.is_request() || msg.method() == Some(Method::Ack) {
            return;
        }
        let tag = msg.to_tag().is_none().then(|| local_tag(&self.key, msg));
        let bytes = rewrite::response(msg, code, reason, tag.as_deref(), Some(source.addr), &[]);
        let to = Self::reply_peer(&msg.top_via(), source);
        self.send(to, bytes);
    }

    /// Answer a request statelessly-in-a-transaction with a locally generated response.
    pub(super) fn respond_local(
        &mut self,
        now: Instant,
        sid: u64,
        code: u16,
        reason: &str,
        extra: &[(&str, &[u8])],
    ) {
        let Some(s) = self.servers.get(&sid) else {
            return;
        };
        let Some(request) = s.request.as_deref() else {
            return;
        };
        let tag = if code > 100 && request.to_tag().is_none() {
            Some(local_tag(&self.key, request))
        } else {
            None
        };
        let bytes = rewrite::response(
            request,
            code,
            reason,
            tag.as_deref(),
            Some(s.source.addr),
            extra,
        );
        self.respond(now, sid, code, bytes);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_local_request(
        &mut self,
        now: Instant,
        method: &[u8],
        ruri: &[u8],
        dest: Peer,
        from: &[u8],
        to: &[u8],
        call_id: &[u8],
        cseq: u32,
    ) {
        let dest = self.leaving_from(dest, dest.local);
        let id = self.new_via(0, dest);
        let via = &self.via;
        let mut out = Vec::with_capacity(256 + ruri.len() + from.len() + to.len() + call_id.len());
        for part in [method, b" ", ruri, b" SIP/2.0\r\nVia: ", via] {
            out.extend_from_slice(part);
        }
        for (name, value) in [(&b"From"[..], from), (b"To", to), (b"Call-ID", call_id)] {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
        }
        out.extend_from_slice(b"\r\nCSeq: ");
        rewrite::push_dec(&mut out, u64::from(cseq), 1);
        out.push(b' ');
        out.extend_from_slice(method);
        out.extend_from_slice(b"\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
        let out = Bytes::from(out);
        let sent = Sent::new(out, call_id, Method::from_bytes(method));
        self.start_client(now, id, sent, dest, Owner::Local, None);
    }
}
