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
//!
//! # Layout
//! - this file: [`Message`] (the buffer and its index) and its accessors, [`Method`],
//!   [`ParseError`].
//! - `parse`: the start line, the one-pass scan of the header block that fills the index (and
//!   finds a datagram's end), the checks a proxy needs.
//! - `header`: header names (long and compact forms) and the header-field scan.
//! - `via`: [`Via`].

use std::fmt;

use bytes::Bytes;

mod header;
mod parse;
mod via;

pub use header::{expand_compact, header_name_matches};
pub(crate) use header::{kind_of, HeaderLine, HeaderScan, Kind};
pub(crate) use parse::{datagram_end, UdpError};
pub use via::Via;

use crate::uri::Uri;

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
    /// Where `sub`, a slice of `base`, lies in it.
    fn within(base: &[u8], sub: &[u8]) -> Span {
        let off = sub.as_ptr() as usize - base.as_ptr() as usize;
        Span::new(off, off + sub.len())
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
    bare_rport: Option<u32>,
}

impl ViaIdx {
    /// Offsets of `v`'s slices, which all point into `b`.
    fn of(b: &[u8], v: &Via<'_>) -> ViaIdx {
        let span = |x: &[u8]| Span::within(b, x);
        ViaIdx {
            raw: Span::new(v.start, v.end),
            transport: span(v.transport),
            host: span(v.host),
            port: v.port,
            branch: v.branch.map(span),
            rport: v.rport,
            received: v.received.map(span),
            bare_rport: v.bare_rport_end().map(|e| e as u32),
        }
    }
}

/// The Request-URI as its check parsed it, as offsets: [`Message::request_uri_parsed`]
/// rebuilds it without parsing again.
#[derive(Clone, Copy)]
struct UriIdx {
    scheme: Span,
    user: Span,
    host: Span,
    port: Option<u16>,
    params: Span,
    raw: Span,
}

impl UriIdx {
    /// Offsets of `u`'s slices, which all point into `b`.
    fn of(b: &[u8], u: &Uri<'_>) -> UriIdx {
        UriIdx {
            scheme: Span::within(b, u.scheme),
            user: Span::within(b, u.user),
            host: Span::within(b, u.host),
            port: u.port,
            params: Span::within(b, u.params),
            raw: Span::within(b, u.raw()),
        }
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
    /// The From URI's user part as `validate` parsed it, kept when that parse is the one
    /// [`Uri::parse_name_addr`] makes (a request's From with a '<'): [`Message::from_user`].
    from_user: Option<Span>,
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
    /// The Request-URI as parsed by the start line's check (sip, sips, tel).
    uri_parsed: Option<UriIdx>,
    user_agent: Extra,
    privacy: Extra,
    asserted: Extra,
}

/// A header the scan indexes by its first line and a count of its lines (User-Agent,
/// Privacy, P-Asserted-Identity): [`Message::header`] and [`Message::headers`] answer from
/// it without scanning the header block again, unless the header has several lines.
#[derive(Clone, Copy)]
pub(crate) struct Extra {
    first: Span,
    lines: u8,
}

impl Extra {
    const NONE: Extra = Extra {
        first: Span::EMPTY,
        lines: 0,
    };
    fn add(&mut self, value: Span) {
        if self.lines == 0 {
            self.first = value;
        }
        self.lines = self.lines.saturating_add(1);
    }
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

impl Message {
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
    /// The Request-URI parsed: what `Uri::parse(self.request_uri())` gives, kept from the
    /// parse of the message (`None` for responses and for schemes other than sip, sips, tel).
    pub fn request_uri_parsed(&self) -> Option<Uri<'_>> {
        let u = self.uri_parsed?;
        Some(Uri::from_parts(
            self.slice(u.scheme),
            self.slice(u.user),
            self.slice(u.host),
            u.port,
            self.slice(u.params),
            self.slice(u.raw),
        ))
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
    /// The user part of the From URI: what `Uri::parse_name_addr(self.from_value())` gives
    /// (`None` where that is `None`), without parsing again where the message's check has
    /// done that parse already.
    pub fn from_user(&self) -> Option<&[u8]> {
        match self.from_user {
            Some(s) => Some(self.slice(s)),
            None => Uri::parse_name_addr(self.from_value()).map(|u| u.user),
        }
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
            bare_rport: t.bare_rport.map(|e| e as usize),
        }
    }
    /// Every Via value, top first (all are checked when the message is parsed).
    pub fn vias(&self) -> impl Iterator<Item = Via<'_>> {
        // The top one as the parse kept it; the others parsed now.
        let top = (self.vias.len > 0).then(|| self.top_via());
        top.into_iter().chain(
            self.vias
                .as_slice()
                .iter()
                .skip(1)
                .filter_map(move |s| Via::parse(self.slice(*s), s.s as usize)),
        )
    }
    /// The `n`th Via value (0 = top), parsed; `None` if there is none.
    pub fn via(&self, n: usize) -> Option<Via<'_>> {
        let s = *self.vias.as_slice().get(n)?;
        Via::parse(self.slice(s), s.s as usize)
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
        if let Some(x) = self.extra(name) {
            return (x.lines > 0).then(|| self.slice(x.first));
        }
        self.header_lines()
            .find(|h| header_name_matches(self.slice(h.name), name))
            .map(|h| self.slice(h.value))
    }
    /// Values of every header line with this name (a line with commas is one item).
    pub fn headers<'m>(&'m self, name: &'m str) -> impl Iterator<Item = &'m [u8]> + 'm {
        // An indexed header with at most one line: its value, or nothing; else the scan.
        let (single, scan) = match self.extra(name) {
            Some(x) if x.lines <= 1 => ((x.lines == 1).then(|| self.slice(x.first)), false),
            _ => (None, true),
        };
        let lines = scan.then(|| self.header_lines()).into_iter().flatten();
        single.into_iter().chain(
            lines
                .filter(move |h| header_name_matches(self.slice(h.name), name))
                .map(move |h| self.slice(h.value)),
        )
    }
    /// The index of `name` when it is one of the [`Extra`] headers.
    fn extra(&self, name: &str) -> Option<Extra> {
        match kind_of(name.as_bytes()) {
            Kind::UserAgent => Some(self.user_agent),
            Kind::Privacy => Some(self.privacy),
            Kind::PAssertedIdentity => Some(self.asserted),
            _ => None,
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is the failure report.
mod tests {
    use super::*;
    use crate::scan::{find_any, find_byte, parse_decimal};

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

    /// `from_user` is what `Uri::parse_name_addr` of the From value gives, whether it was kept
    /// from the check (a request's From with '<') or is parsed on demand.
    #[test]
    fn from_user_is_the_parse_name_addr_user() {
        let froms = [
            "\"Alice\" <sip:alice@example.com>;tag=1",
            "<sip:13800138000@10.0.0.1;user=phone>;tag=2",
            "<sip:10.0.0.1>;tag=3",
            "<tel:+8613800138000>;tag=4",
            "sip:bob@example.com;tag=5",
            "sip:u;x=1@h;tag=6",
            "\"a<b\" <sip:carol@h>;tag=7",
            "Anonymous <sip:anonymous@anonymous.invalid>;tag=8",
            "<sips:d%41ve@h:5061>;tag=9",
            "<mailto:x@y>;tag=10",
        ];
        let mut compared = 0;
        for from in froms {
            for request in [true, false] {
                let start = if request {
                    "BYE sip:x@h SIP/2.0"
                } else {
                    "SIP/2.0 200 OK"
                };
                let text = format!(
                    "{start}\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: {from}\nTo: <sip:x@h>\n\
                     Call-ID: c\nCSeq: 1 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n"
                );
                let Ok(m) = msg(&text) else {
                    continue; // not a message: nothing to compare
                };
                let expect = Uri::parse_name_addr(m.from_value()).map(|u| u.user);
                assert_eq!(m.from_user(), expect, "{from} (request {request})");
                compared += 1;
            }
        }
        assert!(compared >= 18, "{compared} of 20 parsed");
        let m = msg(INVITE).unwrap();
        assert_eq!(m.from_user(), Some(&b"alice"[..]));
        assert!(
            m.from_user.is_some(),
            "kept from the check, not parsed again"
        );
    }

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

    /// A response's From/To are checked for their structure and tags, not their URIs (a
    /// proxy forwards it and needs only the tags); a request's in full. Every Via of both
    /// is checked (a forwarded response's next Via becomes its top one).
    #[test]
    fn responses_are_checked_for_what_a_proxy_uses() {
        let resp = "SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKtheirs
From: <sip:@@[bad>;tag=ft
To: <sip:4008001234@[::1>;tag=tt
Call-ID: c1
CSeq: 1 INVITE
Content-Length: 0

";
        let m = msg(resp).unwrap();
        assert_eq!(m.top_via().branch, Some(&b"z9hG4bKours"[..]));
        assert_eq!(m.via(1).and_then(|v| v.branch), Some(&b"z9hG4bKtheirs"[..]));
        assert_eq!(m.vias().count(), 2);
        assert_eq!(m.from_tag(), Some(&b"ft"[..]));
        assert_eq!(m.to_tag(), Some(&b"tt"[..]));
        // Structure still counts: an unclosed '<' leaves the tag unindexed.
        let m = msg(&resp.replace("<sip:4008001234@[::1>;tag=tt", "<sip:x@y;tag=tt")).unwrap();
        assert_eq!(m.to_tag(), None);
        // The same headers in a request are errors.
        let req = resp.replace("SIP/2.0 200 OK", "INVITE sip:a@b SIP/2.0");
        assert_eq!(msg(&req).unwrap_err(), ParseError::MissingFrom);
        // A bad Via, top or below, is an error in a response too.
        for good in [
            "127.0.0.1:5060;branch=z9hG4bKours",
            "10.0.0.2:5060;branch=z9hG4bKtheirs",
        ] {
            assert_eq!(
                msg(&resp.replace(good, ";;")).unwrap_err(),
                ParseError::BadVia
            );
        }
    }

    /// The indexed headers answer as the scan of the header block does: none, one line,
    /// several lines (then the scan), folded, any case; other names still scan.
    #[test]
    fn indexed_headers_answer_as_the_scan() {
        let scan = |m: &Message, name: &str| -> Vec<Vec<u8>> {
            m.header_lines()
                .filter(|h| header_name_matches(m.slice(h.name), name))
                .map(|h| m.slice(h.value).to_vec())
                .collect()
        };
        let base = INVITE;
        let extras = [
            "",
            "User-Agent: softphone 1.0\n",
            "user-agent: a\nPrivacy: id\nPRIVACY: user\n",
            "P-Asserted-Identity: <sip:+8613800138000@a>\nX-A: 1\nP-Asserted-Identity: <tel:+8613800138001>\n",
            "Privacy: header;\n  user\nSubject: hi\n",
        ];
        for extra in extras {
            let text = base.replacen("Contact:", &format!("{extra}Contact:"), 1);
            let m = msg(&text).unwrap();
            for name in [
                "User-Agent",
                "Privacy",
                "P-Asserted-Identity",
                "Subject",
                "Contact",
            ] {
                let want = scan(&m, name);
                let got: Vec<Vec<u8>> = m.headers(name).map(<[u8]>::to_vec).collect();
                assert_eq!(got, want, "{name} in {extra:?}");
                assert_eq!(m.header(name).map(<[u8]>::to_vec), want.first().cloned());
                let lower = name.to_ascii_lowercase();
                assert_eq!(m.headers(&lower).count(), want.len());
            }
        }
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
            7 if is("Privacy") => Kind::Privacy,
            10 if is("User-Agent") => Kind::UserAgent,
            19 if is("P-Asserted-Identity") => Kind::PAssertedIdentity,
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
            "Privacy",
            "Privacz",
            "User-Agent",
            "User-Agents",
            "Unsupported",
            "P-Asserted-Identity",
            "P-Preferred-Identity",
            "P-Asserted-Identitx",
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
