//! Parsing a message: the start line, one scan of the header block that fills the index
//! (and, for a datagram, finds where the message ends), then the checks of RFC 3261 §8.1.1 /
//! §16.3 for what a proxy needs.

use bytes::Bytes;

use crate::scan::{
    find_byte, find_headers_end, is_forbidden_in_uri, is_lws, is_token_char, parse_decimal,
};
use crate::uri::{NameAddr, Uri};

use super::header::{split_list, HeaderScan, Kind};
use super::via::Via;
use super::{Extra, LineBlock, Message, Method, ParseError, Span, SpanList, UriIdx, ViaIdx};

/// What the scan collected before validation.
pub(super) struct Found {
    call_id: Option<Span>,
    call_id_dup: bool,
    cseq: Option<Span>,
    cseq_dup: bool,
    from: Option<Span>,
    from_dup: bool,
    to: Option<Span>,
    to_dup: bool,
    max_forwards: Option<Span>,
    max_forwards_dup: bool,
    content_length: Option<u32>,
    content_length_bad: bool,
    via_bad: bool,
    /// UDP: the first indexing error, reported once framing has succeeded.
    index_err: Option<ParseError>,
}

/// Why [`Message::parse_udp`] failed.
pub(crate) enum UdpError {
    /// Framing failed (the error `frame_datagram` reports).
    Framing(ParseError),
    /// Framed (these are the framed bytes) but not a valid message.
    Parse(Bytes, ParseError),
}

impl Message {
    /// Parse exactly one message (framing already done). Validates the start line, the
    /// mandatory headers for requests (Via, From, To, Call-ID, CSeq, Max-Forwards optional),
    /// CSeq method == request method (except ACK/CANCEL rules are the same), Content-Length vs
    /// body. Never panics.
    pub fn parse(buf: Bytes) -> Result<Message, ParseError> {
        Message::parse_or_return(buf).map_err(|(_, e)| e)
    }

    /// [`Message::parse`] that hands the bytes back on failure, so a caller that needs them
    /// for its error reply does not have to clone (a clone of a fresh `Bytes` allocates).
    pub(crate) fn parse_or_return(buf: Bytes) -> Result<Message, (Bytes, ParseError)> {
        if buf.len() > u32::MAX as usize {
            return Err((buf, ParseError::TooLarge));
        }
        let mut m = Message::empty();
        let b: &[u8] = &buf;
        let indexed = m
            .parse_start_line(b)
            .and_then(|()| m.scan_headers::<false>(b, true))
            .and_then(|found| m.validate(b, found));
        match indexed {
            Ok(()) => {
                m.buf = buf;
                Ok(m)
            }
            Err(e) => Err((buf, e)),
        }
    }

    /// Frame and parse one UDP datagram in one pass over its headers: what
    /// [`crate::frame::frame_datagram`] then [`Message::parse`] give, without scanning the
    /// header block twice. `buf` starts at the first byte after any leading CR/LF, is not
    /// empty and is at most `u32::MAX` bytes (the caller checks [`crate::frame::Limits`]).
    ///
    /// Framing errors (no blank line, a malformed header line, a bad or short
    /// Content-Length) win over parse errors, as they do when framing runs first. Octets
    /// beyond Content-Length are cut off the buffer (RFC 3261 §18.3).
    #[inline]
    pub(crate) fn parse_udp(mut buf: Bytes) -> Result<Message, UdpError> {
        let mut m = Message::empty();
        let b: &[u8] = &buf;
        // The start line is checked first, but its error only counts once framing succeeds;
        // the header index is not built after an error (it could not be used).
        let start = m.parse_start_line(b);
        if start == Err(ParseError::BadStartLine) && m.headers_start == 0 {
            // No LF at all: no blank line either.
            return Err(UdpError::Framing(ParseError::BadHeader));
        }
        let mut found = m
            .scan_headers::<true>(b, start.is_ok())
            .map_err(UdpError::Framing)?;
        let end = datagram_end(
            m.body_start as usize,
            found.content_length.map(|cl| cl as usize),
            b.len(),
        )
        .map_err(UdpError::Framing)?;
        if end < buf.len() {
            buf.truncate(end);
        }
        if let Err(e) = start {
            return Err(UdpError::Parse(buf, e));
        }
        if let Some(e) = found.index_err.take() {
            return Err(UdpError::Parse(buf, e));
        }
        match m.validate(&buf, found) {
            Ok(()) => {
                m.buf = buf;
                Ok(m)
            }
            Err(e) => Err(UdpError::Parse(buf, e)),
        }
    }

    /// A message with nothing indexed yet.
    fn empty() -> Message {
        Message {
            buf: Bytes::new(),
            request: false,
            method: Method::Other,
            method_span: Span::EMPTY,
            uri: Span::EMPTY,
            status: 0,
            reason: Span::EMPTY,
            headers_start: 0,
            headers_end: 0,
            body_start: 0,
            call_id: Span::EMPTY,
            cseq_num: 0,
            cseq_method: Method::Other,
            cseq_method_span: Span::EMPTY,
            cseq: Span::EMPTY,
            from: Span::EMPTY,
            to: Span::EMPTY,
            from_tag: None,
            from_user: None,
            to_tag: None,
            max_forwards: None,
            max_forwards_span: Span::EMPTY,
            content_length: None,
            max_forwards_lines: 0,
            vias: SpanList::new(),
            top_via: ViaIdx::default(),
            top_via_line: Span::EMPTY,
            via_lines: LineBlock::default(),
            routes: SpanList::new(),
            first_route_line: Span::EMPTY,
            route_lines: LineBlock::default(),
            record_routes: SpanList::new(),
            contacts: SpanList::new(),
            uri_parsed: None,
            user_agent: Extra::NONE,
            privacy: Extra::NONE,
            asserted: Extra::NONE,
        }
    }

    fn parse_start_line(&mut self, b: &[u8]) -> Result<(), ParseError> {
        let nl = find_byte(b, b'\n').ok_or(ParseError::BadStartLine)?;
        self.headers_start = nl as u32 + 1;
        let line_end = if nl > 0 && b[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let line = &b[..line_end];
        if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
            // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
            let sp = find_byte(line, b' ').ok_or(ParseError::BadStartLine)?;
            check_version(&line[..sp])?;
            let rest = &line[sp + 1..];
            let code = rest.get(..3).ok_or(ParseError::BadStartLine)?;
            if !code.iter().all(u8::is_ascii_digit) {
                return Err(ParseError::BadStartLine);
            }
            let status = code.iter().fold(0u16, |a, &c| a * 10 + u16::from(c - b'0'));
            if !(100..=699).contains(&status) {
                return Err(ParseError::BadStartLine);
            }
            let reason_start = match rest.get(3) {
                None => sp + 4,
                Some(b' ') => sp + 5,
                Some(_) => return Err(ParseError::BadStartLine),
            };
            if line[reason_start..]
                .iter()
                .any(|&c| (c < b' ' && c != b'\t') || c == 0x7f)
            {
                return Err(ParseError::BadStartLine);
            }
            self.request = false;
            self.status = status;
            self.reason = Span::new(reason_start, line_end);
            return Ok(());
        }
        // Request-Line = Method SP Request-URI SP SIP-Version: exactly two single spaces.
        let sp1 = find_byte(line, b' ').ok_or(ParseError::BadStartLine)?;
        let sp2 = sp1 + 1 + find_byte(&line[sp1 + 1..], b' ').ok_or(ParseError::BadStartLine)?;
        let method = &line[..sp1];
        let uri = &line[sp1 + 1..sp2];
        let version = &line[sp2 + 1..];
        if method.is_empty() || !method.iter().all(|&c| is_token_char(c)) {
            return Err(ParseError::BadStartLine);
        }
        let parsed_uri = match valid_request_uri(uri) {
            RequestUri::Bad => return Err(ParseError::BadStartLine),
            RequestUri::Parsed(u) => Some(UriIdx::of(b, &u)),
            RequestUri::Other => None,
        };
        if version.len() < 4 || !version[..4].eq_ignore_ascii_case(b"SIP/") {
            return Err(ParseError::BadStartLine);
        }
        check_version(version)?;
        self.request = true;
        self.method = Method::from_bytes(method);
        self.method_span = Span::new(0, sp1);
        self.uri = Span::new(sp1 + 1, sp2);
        self.uri_parsed = parsed_uri;
        Ok(())
    }

    /// Scan the header block once, indexing it when `index` is set. `UDP`: this scan also
    /// frames the datagram, so a bad Content-Length is an error at once (as framing reports
    /// it) and an indexing error is kept in [`Found::index_err`] (framing errors win) while
    /// the scan goes on without indexing.
    fn scan_headers<const UDP: bool>(
        &mut self,
        b: &[u8],
        mut index: bool,
    ) -> Result<Found, ParseError> {
        let mut f = Found {
            call_id: None,
            call_id_dup: false,
            cseq: None,
            cseq_dup: false,
            from: None,
            from_dup: false,
            to: None,
            to_dup: false,
            max_forwards: None,
            max_forwards_dup: false,
            content_length: None,
            content_length_bad: false,
            via_bad: false,
            index_err: None,
        };
        let mut scan = HeaderScan::new(b, self.headers_start as usize);
        while let Some(h) = scan.next_header()? {
            let kind = h.kind;
            if kind == Kind::ContentLength {
                match parse_decimal(&b[h.value.range()], u32::MAX as u64) {
                    Some(n) => {
                        let n = n as u32;
                        if f.content_length.is_some_and(|old| old != n) {
                            if UDP {
                                return Err(udp_content_length_error(b));
                            }
                            f.content_length_bad = true;
                        }
                        f.content_length.get_or_insert(n);
                    }
                    None if UDP => return Err(udp_content_length_error(b)),
                    None => f.content_length_bad = true,
                }
                continue;
            }
            if !index {
                continue;
            }
            let set = |slot: &mut Option<Span>, dup: &mut bool| {
                if slot.is_some_and(|old| b[old.range()] != b[h.value.range()]) {
                    *dup = true;
                }
                slot.get_or_insert(h.value);
            };
            let indexed = match kind {
                Kind::Via => 'via: {
                    let first = self.vias.len == 0;
                    let mut bad = false;
                    let mut top = None;
                    if let Err(e) = split_list(
                        b,
                        h.value,
                        |s| {
                            match Via::parse(&b[s.range()], s.s as usize) {
                                Some(v) if self.vias.len == 0 => top = Some(ViaIdx::of(b, &v)),
                                Some(_) => {}
                                None => bad = true,
                            }
                            self.vias.push(s)
                        },
                        ParseError::BadVia,
                    ) {
                        break 'via Err(e);
                    }
                    f.via_bad |= bad;
                    if let Some(top) = top {
                        self.top_via = top;
                    }
                    if first {
                        self.top_via_line = h.line;
                    }
                    self.via_lines.add(h.line);
                    Ok(())
                }
                Kind::Route => {
                    if self.routes.len == 0 {
                        self.first_route_line = h.line;
                    }
                    let r = split_list(b, h.value, |s| self.routes.push(s), ParseError::BadHeader);
                    self.route_lines.add(h.line);
                    r
                }
                Kind::RecordRoute => split_list(
                    b,
                    h.value,
                    |s| self.record_routes.push(s),
                    ParseError::BadHeader,
                ),
                Kind::Contact => {
                    split_list(b, h.value, |s| self.contacts.push(s), ParseError::BadHeader)
                }
                Kind::CallId => {
                    set(&mut f.call_id, &mut f.call_id_dup);
                    Ok(())
                }
                Kind::CSeq => {
                    set(&mut f.cseq, &mut f.cseq_dup);
                    Ok(())
                }
                Kind::From => {
                    set(&mut f.from, &mut f.from_dup);
                    Ok(())
                }
                Kind::To => {
                    set(&mut f.to, &mut f.to_dup);
                    Ok(())
                }
                Kind::MaxForwards => {
                    self.max_forwards_lines = self.max_forwards_lines.saturating_add(1);
                    set(&mut f.max_forwards, &mut f.max_forwards_dup);
                    Ok(())
                }
                Kind::UserAgent => {
                    self.user_agent.add(h.value);
                    Ok(())
                }
                Kind::Privacy => {
                    self.privacy.add(h.value);
                    Ok(())
                }
                Kind::PAssertedIdentity => {
                    self.asserted.add(h.value);
                    Ok(())
                }
                Kind::ContentLength | Kind::Other => Ok(()),
            };
            if let Err(e) = indexed {
                if !UDP {
                    return Err(e);
                }
                f.index_err = Some(e);
                index = false;
            }
        }
        let (headers_end, body_start) = scan.end.ok_or(ParseError::BadHeader)?;
        self.headers_end = headers_end as u32;
        self.body_start = body_start as u32;
        Ok(f)
    }

    fn validate(&mut self, b: &[u8], f: Found) -> Result<(), ParseError> {
        // Via: at least one, every value well formed.
        if self.vias.len == 0 || f.via_bad {
            return Err(ParseError::BadVia);
        }
        // From / To: required in requests, URIs checked in full; in responses indexed when
        // their structure holds (the proxy needs their tags, not their URIs).
        for (slot, dup, err, is_from) in [
            (f.from, f.from_dup, ParseError::MissingFrom, true),
            (f.to, f.to_dup, ParseError::MissingTo, false),
        ] {
            let parsed = slot.and_then(|s| {
                let v = &b[s.range()];
                if self.request {
                    // With a '<' in the value this parse is the one `parse_name_addr` makes
                    // (it tries the value as a bare URI only without one): its user is kept.
                    let (_, uri, tag) = NameAddr::parse_full(v)?;
                    let user = uri
                        .filter(|_| v.contains(&b'<'))
                        .map(|u| Span::within(b, u.user));
                    Some((s, tag, user))
                } else {
                    NameAddr::response_tag(v).map(|t| (s, t, None))
                }
            });
            match parsed {
                Some((s, tag, user)) if !dup => {
                    let tag = tag.map(|t| Span::within(b, t));
                    if is_from {
                        self.from = s;
                        self.from_tag = tag;
                        self.from_user = user;
                    } else {
                        self.to = s;
                        self.to_tag = tag;
                    }
                }
                _ if self.request => return Err(err),
                _ => {}
            }
        }
        // Call-ID.
        match f.call_id {
            _ if f.call_id_dup => return Err(ParseError::BadHeader),
            Some(s) if s.s < s.e => self.call_id = s,
            _ => return Err(ParseError::MissingCallId),
        }
        // CSeq.
        let cseq = match f.cseq {
            Some(s) if !f.cseq_dup => s,
            _ => return Err(ParseError::BadCSeq),
        };
        let v = &b[cseq.range()];
        let digits = v.iter().take_while(|c| c.is_ascii_digit()).count();
        let num = parse_decimal(&v[..digits], i32::MAX as u64).ok_or(ParseError::BadCSeq)?;
        let mut ms = digits;
        while ms < v.len() && is_lws(v[ms]) {
            ms += 1;
        }
        let method = &v[ms..];
        if ms == digits || method.is_empty() || !method.iter().all(|&c| is_token_char(c)) {
            return Err(ParseError::BadCSeq);
        }
        self.cseq = cseq;
        self.cseq_num = num as u32;
        self.cseq_method = Method::from_bytes(method);
        self.cseq_method_span = Span::new(cseq.s as usize + ms, cseq.e as usize);
        if self.request && method != &b[self.method_span.range()] {
            return Err(ParseError::CSeqMethodMismatch);
        }
        // Max-Forwards: 1*DIGIT, 0..=255.
        if let Some(s) = f.max_forwards {
            if f.max_forwards_dup {
                return Err(ParseError::BadMaxForwards);
            }
            let n = parse_decimal(&b[s.range()], 255).ok_or(ParseError::BadMaxForwards)?;
            self.max_forwards = Some(n as u32);
            self.max_forwards_span = s;
        }
        // Content-Length against the body.
        if f.content_length_bad {
            return Err(ParseError::BadContentLength);
        }
        if let Some(cl) = f.content_length {
            if cl as usize != b.len() - self.body_start as usize {
                return Err(ParseError::ContentLengthMismatch);
            }
        }
        self.content_length = f.content_length;
        Ok(())
    }
}

/// The framing error for a bad Content-Length in a datagram: framing looks for the blank
/// line first, so without one the error is [`ParseError::BadHeader`].
#[cold]
pub(super) fn udp_content_length_error(b: &[u8]) -> ParseError {
    match find_headers_end(b, 0) {
        Some(_) => ParseError::BadContentLength,
        None => ParseError::BadHeader,
    }
}

pub(super) fn check_version(v: &[u8]) -> Result<(), ParseError> {
    if v == b"SIP/2.0" {
        return Ok(());
    }
    if v.len() < 4 || !v[..4].eq_ignore_ascii_case(b"SIP/") {
        return Err(ParseError::BadStartLine);
    }
    let num = &v[4..];
    let well_formed = num.iter().filter(|&&c| c == b'.').count() == 1
        && num.iter().all(|&c| c.is_ascii_digit() || c == b'.')
        && num.first().is_some_and(u8::is_ascii_digit)
        && num.last().is_some_and(u8::is_ascii_digit);
    if !well_formed {
        return Err(ParseError::BadStartLine);
    }
    if num != b"2.0" {
        return Err(ParseError::BadVersion);
    }
    Ok(())
}

/// What [`valid_request_uri`] found.
pub(super) enum RequestUri<'a> {
    /// Not a valid Request-URI.
    Bad,
    /// A sip, sips or tel URI, as [`Uri::parse`] gives it.
    Parsed(Uri<'a>),
    /// Valid, of another scheme ([`Uri::parse`] gives `None`).
    Other,
}

/// `scheme ":" rest` without white space, quotes or angle brackets; `sip`/`sips` URIs must
/// parse and carry no `?headers` (RFC 3261 §19.1.5, RFC 4475 §3.1.2.11).
pub(super) fn valid_request_uri(uri: &[u8]) -> RequestUri<'_> {
    let Some(colon) = find_byte(uri, b':') else {
        return RequestUri::Bad;
    };
    let scheme = &uri[..colon];
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.');
    if !scheme_ok || colon + 1 == uri.len() {
        return RequestUri::Bad;
    }
    if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
        // The scheme holds no forbidden byte: Uri::parse checks the rest.
        if let Some(u) = Uri::parse_at(uri, colon) {
            // A '?' after the host starts URI headers, not allowed in a Request-URI.
            let host_end = u.host.as_ptr() as usize - uri.as_ptr() as usize + u.host.len();
            if !uri[host_end..].contains(&b'?') {
                return RequestUri::Parsed(u);
            }
        }
        return RequestUri::Bad;
    }
    if uri.iter().any(|&c| is_forbidden_in_uri(c)) {
        return RequestUri::Bad;
    }
    if scheme.eq_ignore_ascii_case(b"tel") {
        return match Uri::parse_at(uri, colon) {
            Some(u) => RequestUri::Parsed(u),
            None => RequestUri::Bad,
        };
    }
    RequestUri::Other
}

/// Where a datagram's message ends (RFC 3261 §18.3): `Content-Length` bytes after the body's
/// start (octets beyond are discarded), or at the datagram's end without one; a body shorter
/// than announced is an error.
pub(crate) fn datagram_end(
    body_start: usize,
    content_length: Option<usize>,
    len: usize,
) -> Result<usize, ParseError> {
    let Some(cl) = content_length else {
        return Ok(len);
    };
    let end = body_start
        .checked_add(cl)
        .ok_or(ParseError::BadContentLength)?;
    if end > len {
        return Err(ParseError::ContentLengthMismatch);
    }
    Ok(end)
}
