//! A parsed SIP message: the received `Bytes` plus a small index of the headers a proxy
//! needs. Accessors return slices of the original buffer.
//!
//! The index holds `u32` offsets: up to [`MAX_VIAS`] Via values, [`MAX_ROUTES`] Route values,
//! [`MAX_RECORD_ROUTES`] Record-Route values and [`MAX_CONTACTS`] Contact values; more gives
//! [`ParseError::TooManyHeaders`]. The first 6 Vias, 4 Routes, 4 Record-Routes and 2 Contacts
//! are stored inline, so parsing an ordinary message allocates nothing; only a list longer
//! than that goes to the heap. Every other header stays as bytes and is found by
//! [`Message::header`], a cold-path scan.
//!
//! Header folding (continuation lines starting with SP/HT) is not unfolded: values that span
//! several lines are returned as written, and every tokenizer here treats CR/LF as white space.

use std::fmt;

use bytes::Bytes;

use crate::scan::{
    find_any, find_byte, find_headers_end, is_forbidden_in_uri, is_host_char, is_lws,
    is_param_value_char, is_token_char, parse_decimal, skip_quoted,
};
use crate::uri::{parse_port, NameAddr};

/// Most Via values indexed (RFC 4475 §3.1.1.7 has 34; Max-Forwards 70 bounds a sane path).
pub const MAX_VIAS: usize = 70;
/// Most Route values indexed.
pub const MAX_ROUTES: usize = 16;
/// Most Record-Route values indexed.
pub const MAX_RECORD_ROUTES: usize = 32;
/// Most Contact values indexed.
pub const MAX_CONTACTS: usize = 16;

/// Request methods Hotline distinguishes; anything else is `Other` (compare `method_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Prack,
    Update,
    Info,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other,
}

impl Method {
    /// Case-sensitive per RFC 3261 (method names are case-sensitive tokens).
    pub fn from_bytes(b: &[u8]) -> Method {
        match b {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"OPTIONS" => Method::Options,
            b"REGISTER" => Method::Register,
            b"PRACK" => Method::Prack,
            b"UPDATE" => Method::Update,
            b"INFO" => Method::Info,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"PUBLISH" => Method::Publish,
            _ => Method::Other,
        }
    }

    /// The method name; `"OTHER"` for [`Method::Other`] (use `method_bytes` for the real one).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Info => "INFO",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other => "OTHER",
        }
    }
}

/// Why a message could not be parsed. `reason()` is the reason phrase used in a 400 reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message too large")]
    TooLarge,
    #[error("malformed start line")]
    BadStartLine,
    #[error("malformed header line")]
    BadHeader,
    #[error("missing Call-ID")]
    MissingCallId,
    #[error("missing or bad CSeq")]
    BadCSeq,
    #[error("missing or malformed From")]
    MissingFrom,
    #[error("missing or malformed To")]
    MissingTo,
    #[error("missing or bad Via")]
    BadVia,
    #[error("bad Max-Forwards")]
    BadMaxForwards,
    #[error("bad Content-Length")]
    BadContentLength,
    #[error("Content-Length mismatch")]
    ContentLengthMismatch,
    #[error("CSeq method does not match request method")]
    CSeqMethodMismatch,
    #[error("unsupported SIP version")]
    BadVersion,
    #[error("too many headers")]
    TooManyHeaders,
}

impl ParseError {
    /// Reason phrase for the 400 response ("Bad Request - Missing Call-ID" style is not used:
    /// the phrase itself names the problem, e.g. "Missing Call-ID").
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::TooLarge => "Message Too Large",
            ParseError::BadStartLine => "Malformed Start Line",
            ParseError::BadHeader => "Malformed Header",
            ParseError::MissingCallId => "Missing Call-ID",
            ParseError::BadCSeq => "Bad CSeq",
            ParseError::MissingFrom => "Missing or Malformed From",
            ParseError::MissingTo => "Missing or Malformed To",
            ParseError::BadVia => "Bad Via",
            ParseError::BadMaxForwards => "Bad Max-Forwards",
            ParseError::BadContentLength => "Bad Content-Length",
            ParseError::ContentLengthMismatch => "Content-Length Mismatch",
            ParseError::CSeqMethodMismatch => "CSeq Method Mismatch",
            ParseError::BadVersion => "Version Not Supported",
            ParseError::TooManyHeaders => "Too Many Headers",
        }
    }

    /// Status code for the error reply to a request: 505 for a SIP version other than 2.0,
    /// 513 for an oversized message (RFC 3261 §21.5.11, §21.5.14), 400 for everything else.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::BadVersion => 505,
            ParseError::TooLarge => 513,
            _ => 400,
        }
    }
}

/// One Via header value (one hop), borrowed from the message.
#[derive(Debug, Clone, Copy)]
pub struct Via<'a> {
    /// Whole value, e.g. `SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport`.
    pub raw: &'a [u8],
    /// `UDP`, `TCP`, ... as written.
    pub transport: &'a [u8],
    pub host: &'a [u8],
    pub port: Option<u16>,
    pub branch: Option<&'a [u8]>,
    /// `None`: no rport param; `Some(None)`: `;rport` without value; `Some(Some(p))`: `;rport=p`.
    pub rport: Option<Option<u16>>,
    pub received: Option<&'a [u8]>,
    /// Byte offsets of `raw` within the message buffer.
    pub start: usize,
    pub end: usize,
}

impl<'a> Via<'a> {
    /// Parse one Via value (`sent-protocol LWS sent-by *(SEMI via-params)`). `start` is the
    /// offset of `raw` in its message, copied into the result. `None` if malformed.
    pub fn parse(raw: &'a [u8], start: usize) -> Option<Via<'a>> {
        let mut c = Cursor { s: raw, i: 0 };
        if raw.starts_with(b"SIP/2.0/") {
            // What the general steps below find for this (usual) prefix, without them.
            c.i = 8;
        } else {
            c.lws();
            let _name = c.token()?;
            c.lws();
            c.byte(b'/')?;
            c.lws();
            let _version = c.token()?;
            c.lws();
            c.byte(b'/')?;
            c.lws();
        }
        let transport = c.token()?;
        if c.lws() == 0 {
            return None;
        }
        let host_start = c.i;
        if c.peek() == Some(b'[') {
            let close = find_byte(&raw[c.i..], b']')?;
            c.i += close + 1;
        } else {
            c.skip_while(is_host_char);
        }
        let host = &raw[host_start..c.i];
        // A host of letters, digits, '-', '.', '_' (the loop above) only has to be non-empty;
        // an IPv6 reference is checked as split_hostport does.
        if host.first() == Some(&b'[') {
            crate::uri::split_hostport(host)?;
        } else if host.is_empty() {
            return None;
        }
        c.lws();
        let mut port = None;
        if c.peek() == Some(b':') {
            c.i += 1;
            c.lws();
            let ps = c.i;
            c.skip_while(|b| b.is_ascii_digit());
            port = Some(parse_port(&raw[ps..c.i])?);
        }
        let mut via = Via {
            raw,
            transport,
            host,
            port,
            branch: None,
            rport: None,
            received: None,
            start,
            end: start + raw.len(),
        };
        loop {
            c.lws();
            if c.i == raw.len() {
                return Some(via);
            }
            c.byte(b';')?;
            c.lws();
            let name = c.token()?;
            c.lws();
            let value = if c.peek() == Some(b'=') {
                c.i += 1;
                c.lws();
                if c.peek() == Some(b'"') {
                    let end = skip_quoted(raw, c.i)?;
                    let v = &raw[c.i..end];
                    c.i = end;
                    Some(v)
                } else {
                    let vs = c.i;
                    c.skip_while(is_param_value_char);
                    if c.i == vs {
                        return None;
                    }
                    Some(&raw[vs..c.i])
                }
            } else {
                None
            };
            // By length first: most parameters are none of the three.
            match name.len() {
                6 if name_is(name, b"branch") && via.branch.is_none() => {
                    via.branch = Some(value?);
                }
                5 if name_is(name, b"rport") && via.rport.is_none() => {
                    via.rport = Some(match value {
                        None => None,
                        Some(v) => Some(parse_port(v)?),
                    });
                }
                8 if name_is(name, b"received") && via.received.is_none() => {
                    via.received = Some(value?);
                }
                _ => {}
            }
        }
    }

    /// Offset (in the message) just after the `rport` parameter name, when it has no value:
    /// where `=<port>` is spliced in.
    pub(crate) fn bare_rport_end(&self) -> Option<usize> {
        if self.rport != Some(None) {
            return None;
        }
        let mut i = 0;
        let raw = self.raw;
        while i < raw.len() {
            match raw[i] {
                b'"' => i = skip_quoted(raw, i).unwrap_or(raw.len()),
                b';' => {
                    let mut j = i + 1;
                    while j < raw.len() && is_lws(raw[j]) {
                        j += 1;
                    }
                    let ns = j;
                    while j < raw.len() && is_token_char(raw[j]) {
                        j += 1;
                    }
                    if raw[ns..j].eq_ignore_ascii_case(b"rport") {
                        let mut k = j;
                        while k < raw.len() && is_lws(raw[k]) {
                            k += 1;
                        }
                        if k == raw.len() || raw[k] == b';' {
                            return Some(self.start + j);
                        }
                    }
                    i = j.max(i + 1);
                }
                _ => i += 1,
            }
        }
        None
    }

    fn empty() -> Via<'static> {
        Via {
            raw: b"",
            transport: b"",
            host: b"",
            port: None,
            branch: None,
            rport: None,
            received: None,
            start: 0,
            end: 0,
        }
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    /// Skip bytes while `f` holds.
    #[inline]
    fn skip_while(&mut self, f: impl Fn(u8) -> bool) {
        while let Some(&b) = self.s.get(self.i) {
            if !f(b) {
                break;
            }
            self.i += 1;
        }
    }
    /// Skip LWS; returns how many bytes were skipped.
    fn lws(&mut self) -> usize {
        let st = self.i;
        self.skip_while(is_lws);
        self.i - st
    }
    fn byte(&mut self, b: u8) -> Option<()> {
        if self.peek() == Some(b) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }
    fn token(&mut self) -> Option<&'a [u8]> {
        let st = self.i;
        self.skip_while(is_token_char);
        self.s.get(st..self.i).filter(|t| !t.is_empty())
    }
}

/// Byte range `[s, e)` in the message buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) s: u32,
    pub(crate) e: u32,
}

impl Span {
    const EMPTY: Span = Span { s: 0, e: 0 };
    fn new(s: usize, e: usize) -> Span {
        // Offsets fit: parse rejects buffers longer than u32::MAX.
        Span {
            s: s as u32,
            e: e as u32,
        }
    }
    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.s as usize..self.e as usize
    }
}

/// List of at most `N` spans: the first `I` inline, more on the heap. Ordinary messages fit
/// inline (parsing them allocates nothing); a full inline array of `N` made every `Message`
/// 1.3 KB, copied on every move and clone.
#[derive(Clone)]
pub(crate) struct SpanList<const N: usize, const I: usize> {
    len: usize,
    inline: [Span; I],
    /// Every span once there are more than `I` (empty until then: no allocation).
    spilled: Vec<Span>,
}

impl<const N: usize, const I: usize> SpanList<N, I> {
    const fn new() -> Self {
        SpanList {
            len: 0,
            inline: [Span::EMPTY; I],
            spilled: Vec::new(),
        }
    }
    fn push(&mut self, s: Span) -> Result<(), ParseError> {
        if self.len >= N {
            return Err(ParseError::TooManyHeaders);
        }
        match self.inline.get_mut(self.len) {
            Some(slot) if self.spilled.is_empty() => *slot = s,
            _ => {
                if self.spilled.is_empty() {
                    self.spilled.reserve(2 * I.max(1));
                    self.spilled
                        .extend_from_slice(&self.inline[..self.len.min(I)]);
                }
                self.spilled.push(s);
            }
        }
        self.len += 1;
        Ok(())
    }
    pub(crate) fn as_slice(&self) -> &[Span] {
        if self.spilled.is_empty() {
            &self.inline[..self.len.min(I)]
        } else {
            &self.spilled
        }
    }
}

impl<const N: usize, const I: usize> fmt::Debug for SpanList<N, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// Headers the index knows, by long or compact name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Via,
    From,
    To,
    CallId,
    CSeq,
    MaxForwards,
    Route,
    RecordRoute,
    Contact,
    ContentLength,
    Other,
}

/// Compact forms (RFC 3261 §7.3.3 and later registrations).
const COMPACT: &[(u8, &str)] = &[
    (b'a', "Accept-Contact"),
    (b'b', "Referred-By"),
    (b'c', "Content-Type"),
    (b'd', "Request-Disposition"),
    (b'e', "Content-Encoding"),
    (b'f', "From"),
    (b'i', "Call-ID"),
    (b'j', "Reject-Contact"),
    (b'k', "Supported"),
    (b'l', "Content-Length"),
    (b'm', "Contact"),
    (b'n', "Identity-Info"),
    (b'o', "Event"),
    (b'r', "Refer-To"),
    (b's', "Subject"),
    (b't', "To"),
    (b'u', "Allow-Events"),
    (b'v', "Via"),
    (b'x', "Session-Expires"),
    (b'y', "Identity"),
];

/// Long name of a header written in compact form (`b"v"` → `"Via"`); `None` if not compact.
pub fn expand_compact(name: &[u8]) -> Option<&'static str> {
    match name {
        [c] => {
            let c = c.to_ascii_lowercase();
            COMPACT.iter().find(|(k, _)| *k == c).map(|(_, long)| *long)
        }
        _ => None,
    }
}

/// Whether a header name as written (`name`, long or compact, any case) denotes `wanted`
/// (long or compact, any case).
pub fn header_name_matches(name: &[u8], wanted: &str) -> bool {
    let canon = |n: &[u8]| -> Option<&'static str> { expand_compact(n) };
    let a = canon(name);
    let b = canon(wanted.as_bytes());
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        (Some(a), None) => a.as_bytes().eq_ignore_ascii_case(wanted.as_bytes()),
        (None, Some(b)) => name.eq_ignore_ascii_case(b.as_bytes()),
        (None, None) => name.eq_ignore_ascii_case(wanted.as_bytes()),
    }
}

/// `name` equals `lit` ignoring ASCII case. The usual spelling compares as a few words; any
/// other case byte by byte.
#[inline]
fn name_is(name: &[u8], lit: &[u8]) -> bool {
    name == lit || name.eq_ignore_ascii_case(lit)
}

pub(crate) fn kind_of(name: &[u8]) -> Kind {
    // By length and first letter (`| 0x20` lower-cases a letter and maps nothing else onto
    // one), then one case-insensitive comparison at most. Compact forms of RFC 3261 §7.3.3
    // for the one-letter names; the other compact letters are not indexed.
    let Some(&first) = name.first() else {
        return Kind::Other;
    };
    let is = |long: &[u8], kind: Kind| {
        if name_is(name, long) {
            kind
        } else {
            Kind::Other
        }
    };
    match (name.len(), first | 0x20) {
        (1, b'v') => Kind::Via,
        (1, b'f') => Kind::From,
        (1, b't') => Kind::To,
        (1, b'i') => Kind::CallId,
        (1, b'm') => Kind::Contact,
        (1, b'l') => Kind::ContentLength,
        (2, b't') => is(b"To", Kind::To),
        (3, b'v') => is(b"Via", Kind::Via),
        (4, b'f') => is(b"From", Kind::From),
        (4, b'c') => is(b"CSeq", Kind::CSeq),
        (5, b'r') => is(b"Route", Kind::Route),
        (7, b'c') => match name[1] | 0x20 {
            b'a' => is(b"Call-ID", Kind::CallId),
            _ => is(b"Contact", Kind::Contact),
        },
        (12, b'm') => is(b"Max-Forwards", Kind::MaxForwards),
        (12, b'r') => is(b"Record-Route", Kind::RecordRoute),
        (14, b'c') => is(b"Content-Length", Kind::ContentLength),
        _ => Kind::Other,
    }
}

/// One header field, possibly folded over several lines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderLine {
    /// From the first byte of the name to just past the final line terminator.
    pub(crate) line: Span,
    pub(crate) name: Span,
    /// Value with surrounding LWS trimmed.
    pub(crate) value: Span,
}

/// Iterates header fields from `pos` (the byte after the start line) to the blank line.
pub(crate) struct HeaderScan<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of the blank line and of the body once the end is reached.
    pub(crate) end: Option<(usize, usize)>,
}

impl<'a> HeaderScan<'a> {
    pub(crate) fn new(buf: &'a [u8], pos: usize) -> Self {
        HeaderScan {
            buf,
            pos,
            end: None,
        }
    }

    /// Next header, `Ok(None)` at the blank line (then `end` is set).
    pub(crate) fn next_header(&mut self) -> Result<Option<HeaderLine>, ParseError> {
        let b = self.buf;
        let p = self.pos;
        if self.end.is_some() {
            return Ok(None);
        }
        match &b[p.min(b.len())..] {
            [b'\r', b'\n', ..] => {
                self.end = Some((p, p + 2));
                return Ok(None);
            }
            [b'\n', ..] => {
                self.end = Some((p, p + 1));
                return Ok(None);
            }
            [] => return Err(ParseError::BadHeader),
            [b' ' | b'\t', ..] => return Err(ParseError::BadHeader),
            _ => {}
        }
        // The name: a token, optional SP/HT, then the colon (the first colon of the field).
        let mut name_end = p;
        while name_end < b.len() && is_token_char(b[name_end]) {
            name_end += 1;
        }
        let mut colon = name_end;
        while colon < b.len() && (b[colon] == b' ' || b[colon] == b'\t') {
            colon += 1;
        }
        if name_end == p || b.get(colon) != Some(&b':') {
            return Err(ParseError::BadHeader);
        }
        // The end of this field: a LF not followed by SP/HT.
        let mut i = colon + 1;
        let line_end = loop {
            let nl = match b.get(i..).and_then(|r| find_byte(r, b'\n')) {
                Some(n) => i + n,
                None => return Err(ParseError::BadHeader),
            };
            match b.get(nl + 1) {
                Some(b' ' | b'\t') => i = nl + 1,
                _ => break nl + 1,
            }
        };
        let mut vs = colon + 1;
        // Usually the line ends in CRLF after a non-blank byte: step over both at once.
        let mut ve = match b.get(line_end.saturating_sub(3)..line_end) {
            Some([c, b'\r', b'\n']) if !is_lws(*c) && line_end - 2 > vs => line_end - 2,
            _ => line_end,
        };
        while vs < ve && is_lws(b[vs]) {
            vs += 1;
        }
        while ve > vs && is_lws(b[ve - 1]) {
            ve -= 1;
        }
        self.pos = line_end;
        Ok(Some(HeaderLine {
            line: Span::new(p, line_end),
            name: Span::new(p, name_end),
            value: Span::new(vs, ve),
        }))
    }
}

/// Position of the first `"`, `<` or `,` in `hay`.
fn find_list_special(hay: &[u8]) -> Option<usize> {
    find_any(hay, [b'"', b'<', b','])
}

/// Split a comma-separated header value at commas outside quoted strings and `<...>`, calling
/// `f` with each element's span (trimmed). Empty elements, unterminated quotes or brackets
/// are errors.
pub(crate) fn split_list(
    buf: &[u8],
    value: Span,
    mut f: impl FnMut(Span) -> Result<(), ParseError>,
    err: ParseError,
) -> Result<(), ParseError> {
    let (vs, ve) = (value.s as usize, value.e as usize);
    let v = &buf[vs..ve];
    let mut i = 0;
    let mut start = 0;
    let mut emit = |a: usize, b: usize| -> Result<(), ParseError> {
        let mut a = a;
        let mut b = b;
        while a < b && is_lws(v[a]) {
            a += 1;
        }
        while b > a && is_lws(v[b - 1]) {
            b -= 1;
        }
        if a == b {
            return Err(err.clone());
        }
        f(Span::new(vs + a, vs + b))
    };
    while i < v.len() {
        // Only quotes, '<' and ',' matter here: jump to the next one.
        i += find_list_special(&v[i..]).unwrap_or(v.len() - i);
        let Some(&c) = v.get(i) else {
            break;
        };
        match c {
            b'"' => i = skip_quoted(v, i).ok_or_else(|| err.clone())?,
            b'<' => {
                let close = find_byte(&v[i..], b'>').ok_or_else(|| err.clone())?;
                i += close + 1;
            }
            b',' => {
                emit(start, i)?;
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    emit(start, v.len())
}

/// The top Via as parsed during the scan, as offsets: [`Message::top_via`] rebuilds it without
/// parsing again.
#[derive(Clone, Copy, Default)]
struct ViaIdx {
    raw: Span,
    transport: Span,
    host: Span,
    port: Option<u16>,
    branch: Option<Span>,
    rport: Option<Option<u16>>,
    received: Option<Span>,
}

impl ViaIdx {
    /// Offsets of `v`'s slices, which all point into `b`.
    fn of(b: &[u8], v: &Via<'_>) -> ViaIdx {
        let span = |x: &[u8]| {
            let off = x.as_ptr() as usize - b.as_ptr() as usize;
            Span::new(off, off + x.len())
        };
        ViaIdx {
            raw: Span::new(v.start, v.end),
            transport: span(v.transport),
            host: span(v.host),
            port: v.port,
            branch: v.branch.map(span),
            rport: v.rport,
            received: v.received.map(span),
        }
    }
}

/// Where the lines of one header kind (Via, Route) sit: from the first line's start to the
/// last line's end, and how many bytes the lines themselves take. When the two agree the
/// lines are adjacent and can be copied as one range.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct LineBlock {
    pub(crate) first: u32,
    pub(crate) last_end: u32,
    pub(crate) total: u32,
}

impl LineBlock {
    fn add(&mut self, line: Span) {
        if self.total == 0 {
            self.first = line.s;
        }
        self.last_end = line.e;
        self.total += line.e - line.s;
    }
    /// The one range holding every line, when they are adjacent (or there are none).
    pub(crate) fn contiguous(&self) -> Option<std::ops::Range<usize>> {
        (self.last_end - self.first == self.total)
            .then_some(self.first as usize..self.last_end as usize)
    }
}

#[derive(Clone)]
pub struct Message {
    buf: Bytes,
    request: bool,
    method: Method,
    method_span: Span,
    uri: Span,
    status: u16,
    reason: Span,
    /// Offset just past the start line's terminator (first header byte).
    headers_start: u32,
    /// Offset of the blank line.
    headers_end: u32,
    body_start: u32,
    call_id: Span,
    cseq_num: u32,
    cseq_method: Method,
    cseq_method_span: Span,
    cseq: Span,
    from: Span,
    to: Span,
    from_tag: Option<Span>,
    to_tag: Option<Span>,
    max_forwards: Option<u32>,
    max_forwards_span: Span,
    content_length: Option<u32>,
    /// How many Max-Forwards header lines (saturating).
    max_forwards_lines: u8,
    vias: SpanList<MAX_VIAS, 6>,
    top_via: ViaIdx,
    top_via_line: Span,
    via_lines: LineBlock,
    routes: SpanList<MAX_ROUTES, 4>,
    first_route_line: Span,
    route_lines: LineBlock,
    record_routes: SpanList<MAX_RECORD_ROUTES, 4>,
    contacts: SpanList<MAX_CONTACTS, 2>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        if self.request {
            d.field(
                "method",
                &String::from_utf8_lossy(self.method_bytes()).as_ref(),
            )
            .field("uri", &String::from_utf8_lossy(self.request_uri()).as_ref());
        } else {
            d.field("status", &self.status);
        }
        d.field("call_id", &String::from_utf8_lossy(self.call_id()).as_ref())
            .field("cseq", &self.cseq_num)
            .field("len", &self.buf.len())
            .finish()
    }
}

/// What the scan collected before validation.
struct Found {
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
        if !valid_request_uri(uri) {
            return Err(ParseError::BadStartLine);
        }
        if version.len() < 4 || !version[..4].eq_ignore_ascii_case(b"SIP/") {
            return Err(ParseError::BadStartLine);
        }
        check_version(version)?;
        self.request = true;
        self.method = Method::from_bytes(method);
        self.method_span = Span::new(0, sp1);
        self.uri = Span::new(sp1 + 1, sp2);
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
            let kind = kind_of(&b[h.name.range()]);
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
        // From / To: required in requests; in responses indexed when well formed.
        for (slot, dup, err, is_from) in [
            (f.from, f.from_dup, ParseError::MissingFrom, true),
            (f.to, f.to_dup, ParseError::MissingTo, false),
        ] {
            let parsed = slot.and_then(|s| NameAddr::parse_tag(&b[s.range()]).map(|(_, t)| (s, t)));
            match parsed {
                Some((s, tag)) if !dup => {
                    let tag = tag.map(|t| {
                        let off = t.as_ptr() as usize - b.as_ptr() as usize;
                        Span::new(off, off + t.len())
                    });
                    if is_from {
                        self.from = s;
                        self.from_tag = tag;
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

    fn slice(&self, s: Span) -> &[u8] {
        self.buf.get(s.range()).unwrap_or(&[])
    }

    pub fn bytes(&self) -> &Bytes {
        &self.buf
    }
    pub fn is_request(&self) -> bool {
        self.request
    }
    /// `None` for responses.
    pub fn method(&self) -> Option<Method> {
        self.request.then_some(self.method)
    }
    /// Request method as written; empty for responses.
    pub fn method_bytes(&self) -> &[u8] {
        self.slice(self.method_span)
    }
    /// `None` for requests.
    pub fn status(&self) -> Option<u16> {
        (!self.request).then_some(self.status)
    }
    /// Empty for requests (and for responses without a reason phrase).
    pub fn reason_phrase(&self) -> &[u8] {
        self.slice(self.reason)
    }
    /// Empty for responses.
    pub fn request_uri(&self) -> &[u8] {
        self.slice(self.uri)
    }
    pub fn call_id(&self) -> &[u8] {
        self.slice(self.call_id)
    }
    pub fn cseq(&self) -> (u32, Method) {
        (self.cseq_num, self.cseq_method)
    }
    /// The CSeq method as written (for `Method::Other`).
    pub fn cseq_method_bytes(&self) -> &[u8] {
        self.slice(self.cseq_method_span)
    }
    /// Whole CSeq value, e.g. `1 INVITE`.
    pub fn cseq_value(&self) -> &[u8] {
        self.slice(self.cseq)
    }
    /// Whole From value; empty when absent (responses only).
    pub fn from_value(&self) -> &[u8] {
        self.slice(self.from)
    }
    /// Whole To value; empty when absent (responses only).
    pub fn to_value(&self) -> &[u8] {
        self.slice(self.to)
    }
    pub fn from_tag(&self) -> Option<&[u8]> {
        self.from_tag.map(|s| self.slice(s))
    }
    pub fn to_tag(&self) -> Option<&[u8]> {
        self.to_tag.map(|s| self.slice(s))
    }
    pub fn max_forwards(&self) -> Option<u32> {
        self.max_forwards
    }
    /// Content-Length as written, `None` when the header is absent.
    pub fn content_length(&self) -> Option<u32> {
        self.content_length
    }
    /// The topmost Via value. A parsed message always has one (parsed once, by the scan).
    pub fn top_via(&self) -> Via<'_> {
        let t = &self.top_via;
        if self.vias.len == 0 {
            return Via::empty();
        }
        Via {
            raw: self.slice(t.raw),
            transport: self.slice(t.transport),
            host: self.slice(t.host),
            port: t.port,
            branch: t.branch.map(|s| self.slice(s)),
            rport: t.rport,
            received: t.received.map(|s| self.slice(s)),
            start: t.raw.s as usize,
            end: t.raw.e as usize,
        }
    }
    /// Every Via value, top first.
    pub fn vias(&self) -> impl Iterator<Item = Via<'_>> {
        self.vias
            .as_slice()
            .iter()
            .filter_map(move |s| Via::parse(self.slice(*s), s.s as usize))
    }
    /// Number of Via values.
    pub fn via_count(&self) -> usize {
        self.vias.len
    }
    /// Route values in order (each a name-addr such as `<sip:p1.example.com;lr>`).
    pub fn routes(&self) -> impl Iterator<Item = &[u8]> {
        self.routes.as_slice().iter().map(move |s| self.slice(*s))
    }
    pub fn record_routes(&self) -> impl Iterator<Item = &[u8]> {
        self.record_routes
            .as_slice()
            .iter()
            .map(move |s| self.slice(*s))
    }
    pub fn contacts(&self) -> impl Iterator<Item = &[u8]> {
        self.contacts.as_slice().iter().map(move |s| self.slice(*s))
    }
    /// First value of the named header (long or compact name, any case), LWS-trimmed; folded
    /// values are returned as written. Cold path: scans the header block.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_lines()
            .find(|h| header_name_matches(self.slice(h.name), name))
            .map(|h| self.slice(h.value))
    }
    /// Values of every header line with this name (a line with commas is one item).
    pub fn headers<'m>(&'m self, name: &'m str) -> impl Iterator<Item = &'m [u8]> + 'm {
        self.header_lines()
            .filter(move |h| header_name_matches(self.slice(h.name), name))
            .map(move |h| self.slice(h.value))
    }
    /// Every header as (name as written, value).
    pub fn all_headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.header_lines()
            .map(move |h| (self.slice(h.name), self.slice(h.value)))
    }
    pub(crate) fn header_lines(&self) -> impl Iterator<Item = HeaderLine> + '_ {
        let mut scan = HeaderScan::new(&self.buf, self.headers_start as usize);
        std::iter::from_fn(move || scan.next_header().ok().flatten())
    }
    pub fn body(&self) -> &[u8] {
        self.buf.get(self.body_start as usize..).unwrap_or(&[])
    }

    // Offsets for rewrite.rs.
    pub(crate) fn uri_span(&self) -> Span {
        self.uri
    }
    pub(crate) fn headers_start(&self) -> usize {
        self.headers_start as usize
    }
    pub(crate) fn headers_end(&self) -> usize {
        self.headers_end as usize
    }
    pub(crate) fn via_spans(&self) -> &[Span] {
        self.vias.as_slice()
    }
    pub(crate) fn top_via_line(&self) -> Span {
        self.top_via_line
    }
    pub(crate) fn route_spans(&self) -> &[Span] {
        self.routes.as_slice()
    }
    pub(crate) fn first_route_line(&self) -> Span {
        self.first_route_line
    }
    pub(crate) fn via_lines(&self) -> LineBlock {
        self.via_lines
    }
    pub(crate) fn route_lines(&self) -> LineBlock {
        self.route_lines
    }
    pub(crate) fn max_forwards_lines(&self) -> u8 {
        self.max_forwards_lines
    }
    pub(crate) fn max_forwards_span(&self) -> Option<Span> {
        self.max_forwards.map(|_| self.max_forwards_span)
    }
}

/// The framing error for a bad Content-Length in a datagram: framing looks for the blank
/// line first, so without one the error is [`ParseError::BadHeader`].
#[cold]
fn udp_content_length_error(b: &[u8]) -> ParseError {
    match find_headers_end(b, 0) {
        Some(_) => ParseError::BadContentLength,
        None => ParseError::BadHeader,
    }
}

fn check_version(v: &[u8]) -> Result<(), ParseError> {
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

/// `scheme ":" rest` without white space, quotes or angle brackets; `sip`/`sips` URIs must
/// parse and carry no `?headers` (RFC 3261 §19.1.5, RFC 4475 §3.1.2.11).
fn valid_request_uri(uri: &[u8]) -> bool {
    let Some(colon) = find_byte(uri, b':') else {
        return false;
    };
    let scheme = &uri[..colon];
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.');
    if !scheme_ok || colon + 1 == uri.len() {
        return false;
    }
    if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
        // The scheme holds no forbidden byte: Uri::parse checks the rest.
        if let Some(u) = crate::uri::Uri::parse_at(uri, colon) {
            // A '?' after the host starts URI headers, not allowed in a Request-URI.
            let host_end = u.host.as_ptr() as usize - uri.as_ptr() as usize + u.host.len();
            return !uri[host_end..].contains(&b'?');
        }
        return false;
    }
    if uri.iter().any(|&c| is_forbidden_in_uri(c)) {
        return false;
    }
    if scheme.eq_ignore_ascii_case(b"tel") {
        return crate::uri::Uri::parse_at(uri, colon).is_some();
    }
    true
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is the failure report.
mod tests {
    use super::*;

    fn msg(s: &str) -> Result<Message, ParseError> {
        Message::parse(Bytes::from(s.replace('\n', "\r\n")))
    }

    const INVITE: &str = "INVITE sip:4008001234@hotline.example SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport
Max-Forwards: 70
To: <sip:4008001234@hotline.example>
From: \"Alice\" <sip:alice@example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@192.0.2.10>
Content-Length: 5

v=0
";

    #[test]
    fn parses_basic_invite() {
        let m = msg(INVITE).unwrap();
        assert!(m.is_request());
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.method_bytes(), b"INVITE");
        assert_eq!(m.request_uri(), b"sip:4008001234@hotline.example");
        assert_eq!(m.call_id(), b"a84b4c76e66710@pc33.example.com");
        assert_eq!(m.cseq(), (314159, Method::Invite));
        assert_eq!(m.from_tag(), Some(&b"1928301774"[..]));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.max_forwards(), Some(70));
        assert_eq!(m.content_length(), Some(5));
        assert_eq!(m.body(), b"v=0\r\n");
        let v = m.top_via();
        assert_eq!(v.transport, b"UDP");
        assert_eq!(v.host, b"192.0.2.10");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch, Some(&b"z9hG4bK776asdhds"[..]));
        assert_eq!(v.rport, Some(None));
        assert_eq!(&m.bytes()[v.start..v.end], v.raw);
        assert_eq!(
            m.contacts().collect::<Vec<_>>(),
            vec![&b"<sip:alice@192.0.2.10>"[..]]
        );
        assert_eq!(m.status(), None);
    }

    #[test]
    fn method_round_trip() {
        for m in [
            Method::Invite,
            Method::Ack,
            Method::Bye,
            Method::Cancel,
            Method::Options,
            Method::Register,
            Method::Prack,
            Method::Update,
            Method::Info,
            Method::Subscribe,
            Method::Notify,
            Method::Refer,
            Method::Message,
            Method::Publish,
        ] {
            assert_eq!(Method::from_bytes(m.as_str().as_bytes()), m);
        }
        assert_eq!(Method::from_bytes(b"invite"), Method::Other);
        assert_eq!(Method::from_bytes(b"FOO"), Method::Other);
    }

    #[test]
    fn via_parse_variants() {
        let v = Via::parse(
            b"SIP/2.0/TCP [2001:db8::1]:5061;received=2001:db8::9;rport=5062;branch=z9hG4bKx",
            7,
        )
        .unwrap();
        assert_eq!(v.transport, b"TCP");
        assert_eq!(v.host, b"[2001:db8::1]");
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.received, Some(&b"2001:db8::9"[..]));
        assert_eq!(v.rport, Some(Some(5062)));
        assert_eq!(v.branch, Some(&b"z9hG4bKx"[..]));
        assert_eq!((v.start, v.end), (7, 7 + v.raw.len()));

        let v = Via::parse(
            b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw",
            0,
        )
        .unwrap();
        assert_eq!(v.transport, b"UDP");
        assert_eq!(v.host, b"192.0.2.2");
        assert_eq!(v.port, None);
        assert_eq!(v.rport, None);

        let v = Via::parse(b"SIP/2.0/UDP h ; rport ; branch = z9hG4bK1", 10).unwrap();
        assert_eq!(v.rport, Some(None));
        assert_eq!(v.bare_rport_end(), Some(10 + 21));

        for bad in [
            &b"SIP/2.0/UDP"[..],
            b"SIP/2.0 192.0.2.1",
            b"SIP/2.0/UDP 192.0.2.15;;",
            b"SIP/2.0/UDP host:99999",
            b"SIP/2.0/UDP host;branch=",
            b"SIP/2.0/UDP host;rport=x",
            b"SIP/2.0/UDP [::1;branch=z9hG4bK1",
            b"SIP/2.0/UDP host junk",
        ] {
            assert!(
                Via::parse(bad, 0).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn compact_names_and_header_lookup() {
        assert_eq!(expand_compact(b"V"), Some("Via"));
        assert_eq!(expand_compact(b"q"), None);
        assert!(header_name_matches(b"i", "Call-ID"));
        assert!(header_name_matches(b"CALL-ID", "i"));
        assert!(header_name_matches(b"x-foo", "X-Foo"));
        assert!(!header_name_matches(b"f", "To"));
        assert_eq!(kind_of(b"l"), Kind::ContentLength);
        assert_eq!(kind_of(b"record-route"), Kind::RecordRoute);
        assert_eq!(kind_of(b"X"), Kind::Other);
    }

    /// `kind_of` as it was before the dispatch on the first letter.
    fn kind_of_reference(name: &[u8]) -> Kind {
        let is = |long: &str| name.eq_ignore_ascii_case(long.as_bytes());
        match name.len() {
            1 => match name[0].to_ascii_lowercase() {
                b'v' => Kind::Via,
                b'f' => Kind::From,
                b't' => Kind::To,
                b'i' => Kind::CallId,
                b'm' => Kind::Contact,
                b'l' => Kind::ContentLength,
                _ => Kind::Other,
            },
            2 if is("To") => Kind::To,
            3 if is("Via") => Kind::Via,
            4 if is("From") => Kind::From,
            4 if is("CSeq") => Kind::CSeq,
            5 if is("Route") => Kind::Route,
            7 if is("Call-ID") => Kind::CallId,
            7 if is("Contact") => Kind::Contact,
            12 if is("Max-Forwards") => Kind::MaxForwards,
            12 if is("Record-Route") => Kind::RecordRoute,
            14 if is("Content-Length") => Kind::ContentLength,
            _ => Kind::Other,
        }
    }

    #[test]
    fn kind_of_matches_reference() {
        let names = [
            "Via",
            "From",
            "To",
            "Call-ID",
            "CSeq",
            "Max-Forwards",
            "Route",
            "Record-Route",
            "Contact",
            "Content-Length",
            "Subject",
            "Content-Type",
            "Allow",
            "Supported",
            "Cseq",
            "Call-Id",
            "Contact2",
            "Max-Forward",
            "Record-Routes",
            "Content-Lengt",
            "Tx",
            "Vib",
            "Frm",
            "Roure",
            "Callid",
            "Max_Forwards",
            "Record_Route",
            "Content_Length",
        ];
        for n in names {
            for v in [
                n.to_string(),
                n.to_ascii_lowercase(),
                n.to_ascii_uppercase(),
            ] {
                assert_eq!(
                    kind_of(v.as_bytes()),
                    kind_of_reference(v.as_bytes()),
                    "{v}"
                );
            }
        }
        // Every one-byte name, every two-byte name, and each known name with one byte changed.
        for a in 0..=255u8 {
            assert_eq!(kind_of(&[a]), kind_of_reference(&[a]));
            for b in 0..=255u8 {
                assert_eq!(kind_of(&[a, b]), kind_of_reference(&[a, b]));
            }
        }
        for n in names {
            for i in 0..n.len() {
                for c in 0..=255u8 {
                    let mut v = n.as_bytes().to_vec();
                    v[i] = c;
                    assert_eq!(kind_of(&v), kind_of_reference(&v), "{v:?}");
                }
            }
        }
        assert_eq!(kind_of(b""), Kind::Other);
    }

    #[test]
    fn reasons_and_statuses() {
        assert_eq!(ParseError::MissingCallId.reason(), "Missing Call-ID");
        assert_eq!(
            ParseError::ContentLengthMismatch.reason(),
            "Content-Length Mismatch"
        );
        assert_eq!(ParseError::TooLarge.reason(), "Message Too Large");
        assert_eq!(ParseError::BadCSeq.reason(), "Bad CSeq");
        assert_eq!(ParseError::BadVersion.status(), 505);
        assert_eq!(ParseError::TooLarge.status(), 513);
        assert_eq!(ParseError::BadVia.status(), 400);
    }

    #[test]
    fn message_stays_small_enough_to_move() {
        // Inline index, no heap: keep an eye on the cost of moving a Message around.
        let size = std::mem::size_of::<Message>();
        eprintln!("size_of::<Message>() = {size}");
        assert!(size <= 640, "{size}");
    }

    #[test]
    fn find_any_agrees_with_position() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for len in 0..40 {
            for _ in 0..200 {
                let hay: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        [b'a', b';', b'"', b'\n', 0x80, 0xff, 0x00, b'<'][(x % 8) as usize]
                    })
                    .collect();
                let set = [b';', b'"', b'<'];
                assert_eq!(
                    find_any(&hay, set),
                    hay.iter().position(|c| set.contains(c)),
                    "{hay:?}"
                );
                assert_eq!(find_byte(&hay, b'\n'), hay.iter().position(|&c| c == b'\n'));
            }
        }
    }

    #[test]
    fn decimal_limits() {
        assert_eq!(parse_decimal(b"0068", 255), Some(68));
        assert_eq!(parse_decimal(b"256", 255), None);
        assert_eq!(parse_decimal(b"", 255), None);
        assert_eq!(parse_decimal(b"-1", 255), None);
        assert_eq!(
            parse_decimal(b"2147483647", i32::MAX as u64),
            Some(2147483647)
        );
        assert_eq!(parse_decimal(b"2147483648", i32::MAX as u64), None);
        assert_eq!(
            parse_decimal(b"36893488147419103232", i32::MAX as u64),
            None
        );
    }
}
