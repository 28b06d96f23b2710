//! Building SIP messages into reused buffers (no `format!` per message) and the few parsing
//! helpers the load roles need. Incoming messages are indexed with `hotline_sip::Message`,
//! which does not allocate.

use std::net::SocketAddr;

use hotline_sip::Message;

/// Append `v` in decimal.
pub fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Append `v` as lowercase hex, zero-padded to `width` digits.
pub fn put_hex(out: &mut Vec<u8>, v: u64, width: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for k in (0..width).rev() {
        out.push(HEX[((v >> (k * 4)) & 0xf) as usize]);
    }
}

/// Append `addr` as a SIP host:port (`[v6]:port` for IPv6).
pub fn put_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    use std::io::Write as _;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{addr}");
}

pub fn put(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// The SDP offer/answer body the roles send (a realistic size; no media flows).
pub fn sdp(out: &mut Vec<u8>, ip: &str, port: u16) {
    put(
        out,
        &[
            b"v=0\r\no=- 1 1 IN IP4 ",
            ip.as_bytes(),
            b"\r\ns=-\r\nc=IN IP4 ",
        ],
    );
    put(out, &[ip.as_bytes(), b"\r\nt=0 0\r\nm=audio "]);
    put_u64(out, u64::from(port));
    out.extend_from_slice(
        b" RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n",
    );
}

/// Finish a message: `Content-Length`, blank line, body.
pub fn finish(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(b"Content-Length: ");
    put_u64(out, body.len() as u64);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// The user part of a SIP URI (`sip:user@host...`), or empty.
pub fn uri_user(uri: &[u8]) -> &[u8] {
    let uri = uri.strip_prefix(b"<").unwrap_or(uri);
    let rest = uri
        .strip_prefix(b"sip:")
        .or_else(|| uri.strip_prefix(b"sips:"))
        .unwrap_or(uri);
    match rest.iter().position(|&b| b == b'@') {
        Some(at) => &rest[..at],
        None => b"",
    }
}

/// The URI inside a name-addr (`"x" <sip:a@b>;tag=1` → `sip:a@b`), or the value itself.
pub fn addr_spec(v: &[u8]) -> &[u8] {
    match (
        v.iter().position(|&b| b == b'<'),
        v.iter().position(|&b| b == b'>'),
    ) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v.split(|&b| b == b';').next().unwrap_or(v),
    }
}

/// FNV-1a, for tags and map keys.
pub fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A response to `req` built from its headers (what a UAS does, RFC 3261 §8.2.6): every Via,
/// From, To (with `to_tag` added when it has none), Call-ID, CSeq (method replaced by
/// `cseq_method` when given: the 487 to an INVITE built from its CANCEL), Record-Route copied
/// when `with_dialog`, then `contact`, then the body.
#[allow(clippy::too_many_arguments)]
pub fn response(
    out: &mut Vec<u8>,
    req: &Message,
    code: u16,
    reason: &str,
    to_tag: &[u8],
    cseq_method: Option<&str>,
    with_dialog: bool,
    contact: Option<&[u8]>,
    body: &[u8],
) {
    out.clear();
    out.extend_from_slice(b"SIP/2.0 ");
    put_u64(out, u64::from(code));
    put(out, &[b" ", reason.as_bytes(), b"\r\n"]);
    for v in req.vias() {
        put(out, &[b"Via: ", v.raw, b"\r\n"]);
    }
    if with_dialog {
        for rr in req.record_routes() {
            put(out, &[b"Record-Route: ", rr, b"\r\n"]);
        }
    }
    put(
        out,
        &[b"From: ", req.from_value(), b"\r\nTo: ", req.to_value()],
    );
    if req.to_tag().is_none() && code > 100 {
        put(out, &[b";tag=", to_tag]);
    }
    put(out, &[b"\r\nCall-ID: ", req.call_id(), b"\r\nCSeq: "]);
    match cseq_method {
        Some(m) => {
            put_u64(out, u64::from(req.cseq().0));
            put(out, &[b" ", m.as_bytes()]);
        }
        None => out.extend_from_slice(req.cseq_value()),
    }
    out.extend_from_slice(b"\r\n");
    if let Some(c) = contact {
        put(out, &[b"Contact: ", c, b"\r\n"]);
    }
    if !body.is_empty() {
        out.extend_from_slice(b"Content-Type: application/sdp\r\n");
    }
    finish(out, body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn numbers_format() {
        let mut v = Vec::new();
        put_u64(&mut v, 0);
        v.push(b' ');
        put_u64(&mut v, 18_446_744_073_709_551_615);
        v.push(b' ');
        put_hex(&mut v, 0xab, 4);
        assert_eq!(v, b"0 18446744073709551615 00ab");
    }

    #[test]
    fn uri_helpers() {
        assert_eq!(uri_user(b"sip:busy@127.0.0.1:5070"), b"busy");
        assert_eq!(uri_user(b"<sip:answer@127.0.0.1>"), b"answer");
        assert_eq!(uri_user(b"sip:127.0.0.1"), b"");
        assert_eq!(
            addr_spec(b"\"a\" <sip:x@1.2.3.4:5>;tag=9"),
            b"sip:x@1.2.3.4:5"
        );
        assert_eq!(addr_spec(b"sip:x@h;lr"), b"sip:x@h");
    }

    #[test]
    fn response_echoes_the_request_and_parses() {
        let req = "INVITE sip:answer@127.0.0.1:5070 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-hl1;rport\r\n\
Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-c1;rport=40000\r\n\
Record-Route: <sip:127.0.0.1:5060;lr>\r\n\
Max-Forwards: 69\r\n\
From: <sip:13800000000@127.0.0.1>;tag=f1\r\n\
To: <sip:4008000001@127.0.0.1>\r\n\
Call-ID: c1@load\r\n\
CSeq: 7 INVITE\r\n\
Content-Length: 0\r\n\r\n";
        let req = Message::parse(Bytes::from_static(req.as_bytes())).expect("request parses");
        let mut out = Vec::new();
        let mut body = Vec::new();
        sdp(&mut body, "127.0.0.1", 4000);
        response(
            &mut out,
            &req,
            200,
            "OK",
            b"t1",
            None,
            true,
            Some(b"<sip:answer@127.0.0.1:5070>"),
            &body,
        );
        let r = Message::parse(Bytes::from(out.clone())).expect("response parses");
        assert_eq!(r.status(), Some(200));
        assert_eq!(r.vias().count(), 2);
        assert_eq!(r.to_tag(), Some(&b"t1"[..]));
        assert_eq!(r.record_routes().count(), 1);
        assert_eq!(r.body(), &body[..]);
        assert_eq!(r.cseq_value(), b"7 INVITE");
        // A 487 built from a CANCEL names the INVITE.
        response(
            &mut out,
            &req,
            487,
            "Request Terminated",
            b"t1",
            Some("INVITE"),
            false,
            None,
            b"",
        );
        let r = Message::parse(Bytes::from(out)).expect("487 parses");
        assert_eq!(r.cseq_value(), b"7 INVITE");
        assert_eq!(r.record_routes().count(), 0);
    }
}
