//! Header names (long and compact forms, the kinds the index knows) and the header-field
//! scan: one field at a time, folded lines included, and comma-separated lists split outside
//! quotes and angle brackets.

use crate::scan::{find_any, find_byte, is_lws, is_token_char, skip_quoted};

use super::{ParseError, Span};

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
    /// Indexed by their first line only (see [`super::Extra`]): what the call path asks of
    /// every INVITE, so it need not scan the header block again.
    UserAgent,
    Privacy,
    PAssertedIdentity,
    Other,
}

/// Compact forms (RFC 3261 §7.3.3 and later registrations).
pub(super) const COMPACT: &[(u8, &str)] = &[
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
pub(super) fn name_is(name: &[u8], lit: &[u8]) -> bool {
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
        (7, b'p') => is(b"Privacy", Kind::Privacy),
        (10, b'u') => is(b"User-Agent", Kind::UserAgent),
        (19, b'p') => is(b"P-Asserted-Identity", Kind::PAssertedIdentity),
        (12, b'm') => is(b"Max-Forwards", Kind::MaxForwards),
        (12, b'r') => is(b"Record-Route", Kind::RecordRoute),
        (14, b'c') => is(b"Content-Length", Kind::ContentLength),
        _ => Kind::Other,
    }
}

/// `rest` starts with `lit` and a colon at once.
#[inline(always)]
fn starts_colon<const N: usize>(rest: &[u8], lit: &[u8; N]) -> bool {
    rest.first_chunk::<N>() == Some(lit) && rest.get(N) == Some(&b':')
}

/// The header names as they are written nearly always (their canonical spelling, the colon
/// right after): the name's length and kind without the byte-by-byte token scan and
/// [`kind_of`]. Exactly what that scan and `kind_of` give for such a line (every name here is
/// a token and the colon is not; the tests check the kinds), `None` for anything else, which
/// then takes the general path.
#[inline]
fn known_name(rest: &[u8]) -> Option<(usize, Kind)> {
    let hit = |yes: bool, n: usize, k: Kind| yes.then_some((n, k));
    match *rest.first()? {
        b'V' => hit(starts_colon(rest, b"Via"), 3, Kind::Via),
        b'F' => hit(starts_colon(rest, b"From"), 4, Kind::From),
        b'T' => hit(starts_colon(rest, b"To"), 2, Kind::To),
        b'C' => match *rest.get(1)? {
            b'a' => hit(starts_colon(rest, b"Call-ID"), 7, Kind::CallId),
            b'S' => hit(starts_colon(rest, b"CSeq"), 4, Kind::CSeq),
            b'o' if starts_colon(rest, b"Contact") => Some((7, Kind::Contact)),
            b'o' if starts_colon(rest, b"Content-Length") => Some((14, Kind::ContentLength)),
            b'o' => hit(starts_colon(rest, b"Content-Type"), 12, Kind::Other),
            _ => None,
        },
        b'M' => hit(starts_colon(rest, b"Max-Forwards"), 12, Kind::MaxForwards),
        b'R' if starts_colon(rest, b"Route") => Some((5, Kind::Route)),
        b'R' => hit(starts_colon(rest, b"Record-Route"), 12, Kind::RecordRoute),
        b'S' => hit(starts_colon(rest, b"Subject"), 7, Kind::Other),
        b'U' => hit(starts_colon(rest, b"User-Agent"), 10, Kind::UserAgent),
        _ => None,
    }
}

/// The name of the field at `p` (a token, optional SP/HT, then the colon), byte by byte:
/// where the name ends and where its colon is.
fn general_name(b: &[u8], p: usize) -> Result<(usize, usize), ParseError> {
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
    Ok((name_end, colon))
}

/// One header field, possibly folded over several lines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderLine {
    /// From the first byte of the name to just past the final line terminator.
    pub(crate) line: Span,
    pub(crate) name: Span,
    /// Value with surrounding LWS trimmed.
    pub(crate) value: Span,
    /// [`kind_of`] the name.
    pub(crate) kind: Kind,
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
    #[inline(always)]
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
        let (name_end, colon, kind) = match known_name(&b[p..]) {
            Some((n, kind)) => (p + n, p + n, kind),
            None => {
                let (name_end, colon) = general_name(b, p)?;
                (name_end, colon, kind_of(&b[p..name_end]))
            }
        };
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
            kind,
        }))
    }
}

/// Position of the first `"`, `<` or `,` in `hay`.
pub(super) fn find_list_special(hay: &[u8]) -> Option<usize> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is the failure report.
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `next_header` without [`known_name`]: the general path for every line.
    fn next_header_general(b: &[u8], p: usize) -> Result<Option<(HeaderLine, usize)>, ParseError> {
        let rest = b.get(p..).unwrap_or(&[]);
        if rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            return Ok(None);
        }
        if rest.is_empty() || rest[0] == b' ' || rest[0] == b'\t' {
            return Err(ParseError::BadHeader);
        }
        let (name_end, colon) = general_name(b, p)?;
        let mut i = colon + 1;
        let line_end = loop {
            let nl = i + b[i..]
                .iter()
                .position(|&c| c == b'\n')
                .ok_or(ParseError::BadHeader)?;
            match b.get(nl + 1) {
                Some(b' ' | b'\t') => i = nl + 1,
                _ => break nl + 1,
            }
        };
        let (mut vs, mut ve) = (colon + 1, line_end);
        while vs < ve && is_lws(b[vs]) {
            vs += 1;
        }
        while ve > vs && is_lws(b[ve - 1]) {
            ve -= 1;
        }
        let h = HeaderLine {
            line: Span::new(p, line_end),
            name: Span::new(p, name_end),
            value: Span::new(vs, ve),
            kind: kind_of(&b[p..name_end]),
        };
        Ok(Some((h, line_end)))
    }

    const KNOWN: &[&str] = &[
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Max-Forwards",
        "Route",
        "Record-Route",
        "Subject",
        "User-Agent",
    ];

    /// Each spelling the fast path knows is a token whose kind is `kind_of`'s, and only the
    /// exact spelling with the colon at once takes it.
    #[test]
    fn known_names_are_kind_of() {
        for n in KNOWN {
            assert!(n.bytes().all(is_token_char), "{n}");
            let line = format!("{n}: x\r\n");
            assert_eq!(
                known_name(line.as_bytes()),
                Some((n.len(), kind_of(n.as_bytes()))),
                "{n}"
            );
            for other in [
                format!("{n} : x"),
                format!("{n}x: x"),
                n.to_ascii_lowercase() + ": x",
                n.to_ascii_uppercase() + ": x",
                n.to_string(),
                n[..n.len() - 1].to_string() + ":",
            ] {
                if other.starts_with(&format!("{n}:")) {
                    continue; // The lower/upper case of an all-case name ("CSeq" stays).
                }
                assert_eq!(known_name(other.as_bytes()), None, "{other}");
            }
        }
        assert_eq!(known_name(b""), None);
        assert_eq!(known_name(b"C"), None);
        assert_eq!(known_name(b"Privacy: id"), None);
    }

    fn scan_all(b: &[u8], start: usize) -> Result<Vec<(HeaderLine, usize)>, ParseError> {
        let mut scan = HeaderScan::new(b, start);
        let mut out = Vec::new();
        while let Some(h) = scan.next_header()? {
            out.push((h, scan.pos));
        }
        Ok(out)
    }

    fn scan_all_general(b: &[u8], start: usize) -> Result<Vec<(HeaderLine, usize)>, ParseError> {
        let mut out = Vec::new();
        let mut p = start;
        while let Some((h, next)) = next_header_general(b, p)? {
            out.push((h, next));
            p = next;
        }
        Ok(out)
    }

    fn same(a: &[(HeaderLine, usize)], b: &[(HeaderLine, usize)]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|((x, xp), (y, yp))| {
                x.line == y.line
                    && x.name == y.name
                    && x.value == y.value
                    && x.kind == y.kind
                    && xp == yp
            })
    }

    fn header_block() -> impl Strategy<Value = Vec<u8>> {
        let name = prop_oneof![
            prop::sample::select(KNOWN.to_vec()).prop_map(str::to_string),
            prop::sample::select(KNOWN.to_vec()).prop_map(|n| n.to_ascii_lowercase()),
            "[A-Za-z-]{1,16}",
            prop::sample::select(vec!["v", "f", "t", "i", "m", "l", "Privacy", "CSeqq", "Cx"])
                .prop_map(str::to_string),
        ];
        let sep = prop::sample::select(vec![":", ": ", " : ", ":\t", "\t:", "", "x:"]);
        let value = "[ -~]{0,20}";
        let end = prop::sample::select(vec!["\r\n", "\n", "\r\n ", "\r\n\t"]);
        prop::collection::vec((name, sep, value, end), 0..10).prop_map(|hs| {
            let mut b = b"INVITE sip:a@b SIP/2.0\r\n".to_vec();
            for (n, s, v, e) in hs {
                b.extend_from_slice(format!("{n}{s}{v}{e}").as_bytes());
            }
            b.extend_from_slice(b"\r\nbody");
            b
        })
    }

    proptest! {
        /// The scan with the known-name path gives what the general path gives, line for
        /// line, error for error.
        #[test]
        fn known_name_path_is_the_general_path(b in header_block()) {
            let start = b.iter().position(|&c| c == b'\n').unwrap() + 1;
            let fast = scan_all(&b, start);
            let general = scan_all_general(&b, start);
            match (&fast, &general) {
                (Ok(f), Ok(g)) => prop_assert!(same(f, g), "{:?}", String::from_utf8_lossy(&b)),
                (Err(f), Err(g)) => prop_assert_eq!(f, g),
                _ => prop_assert!(false, "{:?} {:?}", fast.is_ok(), general.is_ok()),
            }
        }
    }
}
