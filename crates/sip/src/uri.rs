//! Borrowing URI parsing for `sip:`, `sips:` and `tel:` URIs, and name-addr header values
//! (`"Display" <sip:u@h>;tag=x`). Nothing here allocates: every field is a slice of the input.
//!
//! Escapes (`%41`) are left as written: comparing escaped and unescaped forms is the caller's
//! business (RFC 3261 §19.1.4).

use std::net::IpAddr;

use crate::proxy::Transport;
use crate::scan::{
    find_any, find_byte, is_forbidden_in_uri, is_host_char, is_lws, is_param_value_char,
    is_token_char, skip_quoted, trim_lws, FORBIDDEN_IN_URI,
};

/// A parsed URI borrowing from its input. Also accepts a name-addr (`"x" <sip:..>;tag=..`) via
/// [`Uri::parse_name_addr`], which returns the URI inside the angle brackets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    /// `sip`, `sips` or `tel` (lower-cased comparison by the caller).
    pub scheme: &'a [u8],
    /// User part (sip) or the number (tel), without params; may be empty.
    pub user: &'a [u8],
    /// Host (sip); empty for tel. IPv6 references keep their brackets.
    pub host: &'a [u8],
    pub port: Option<u16>,
    /// Everything after the first `;` of the URI (without headers `?..`), e.g. `lr;transport=tcp`.
    pub params: &'a [u8],
    /// The whole URI as parsed (see [`Uri::raw`]).
    raw: &'a [u8],
}

impl<'a> Uri<'a> {
    /// A URI from parts an earlier parse found (a message's kept Request-URI).
    pub(crate) fn from_parts(
        scheme: &'a [u8],
        user: &'a [u8],
        host: &'a [u8],
        port: Option<u16>,
        params: &'a [u8],
        raw: &'a [u8],
    ) -> Uri<'a> {
        Uri {
            scheme,
            user,
            host,
            port,
            params,
            raw,
        }
    }

    /// Parse a `sip:`, `sips:` or `tel:` URI. Any other scheme, whitespace, angle brackets or
    /// quotes, an empty or malformed host, or a port outside 0..=65535 give `None`.
    pub fn parse(s: &'a [u8]) -> Option<Uri<'a>> {
        Uri::parse_at(s, find_byte(s, b':')?)
    }

    /// [`Uri::parse`] when the first ':' of `s` is known to be at `colon`.
    pub(crate) fn parse_at(s: &'a [u8], colon: usize) -> Option<Uri<'a>> {
        let scheme = &s[..colon];
        let rest = &s[colon + 1..];
        if rest.is_empty() {
            return None;
        }
        if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
            // One pass: no forbidden byte, and where the last '@' is.
            let mut at = None;
            for (i, &c) in rest.iter().enumerate() {
                match URI_CLASS[c as usize] {
                    0 => {}
                    FORBIDDEN => return None,
                    _ => at = Some(i),
                }
            }
            parse_sip(s, scheme, rest, at)
        } else if rest.iter().any(|&c| is_forbidden_in_uri(c)) {
            None
        } else if scheme.eq_ignore_ascii_case(b"tel") {
            let (number, params) = match rest.iter().position(|&c| c == b';') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            if number.is_empty() {
                return None;
            }
            Some(Uri {
                scheme,
                user: number,
                host: &rest[..0],
                port: None,
                params,
                raw: s,
            })
        } else {
            None
        }
    }

    /// Parse the addr-spec out of a name-addr or addr-spec header value.
    ///
    /// Without angle brackets the whole value is first tried as a URI, so a bare Request-URI
    /// such as `sip:u@10.0.0.9;transport=tcp` keeps its parameters; a header value in
    /// addr-spec form (`sip:u@h;tag=1`) then reports `tag=1` among `params` too (use
    /// [`NameAddr`] to tell URI and header parameters apart).
    pub fn parse_name_addr(s: &'a [u8]) -> Option<Uri<'a>> {
        let t = trim_lws(s);
        if !t.contains(&b'<') {
            if let Some(u) = Uri::parse(t) {
                return Some(u);
            }
        }
        // NameAddr::parse has parsed a sip/sips/tel URI already; other schemes give None.
        NameAddr::parse_with_uri(s)?.1
    }

    /// Value of a URI parameter (`Some(b"")` for a flag like `lr`); case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&'a [u8]> {
        find_param(self.params, name.as_bytes(), b';')
    }

    /// The whole URI as written, e.g. `sip:alice@192.0.2.10:5060;transport=tcp` (without the
    /// angle brackets of a name-addr).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether the scheme is `sips` (case-insensitive).
    pub fn is_sips(&self) -> bool {
        self.scheme.eq_ignore_ascii_case(b"sips")
    }

    /// The transport `;transport=` names (case-insensitive), UDP when there is none. Any other
    /// value (`tls`, `sctp`, `ws` ...) is returned as the error: Hotline speaks UDP and TCP
    /// only, and a URI that asks for another transport must not be taken for UDP.
    pub fn transport(&self) -> Result<Transport, &'a [u8]> {
        match self.param("transport") {
            None => Ok(Transport::Udp),
            Some(t) if t.eq_ignore_ascii_case(b"udp") => Ok(Transport::Udp),
            Some(t) if t.eq_ignore_ascii_case(b"tcp") => Ok(Transport::Tcp),
            Some(other) => Err(other),
        }
    }

    /// The host as an IP address (an IPv6 reference without its brackets); `None` for a
    /// domain name or a tel: URI.
    pub fn ip(&self) -> Option<IpAddr> {
        let host = self
            .host
            .strip_prefix(b"[")
            .and_then(|h| h.strip_suffix(b"]"))
            .unwrap_or(self.host);
        parse_ip(host)
    }
}

/// `host` (without brackets) as an IP address, exactly as `str::parse::<IpAddr>` reads it,
/// but a dotted quad without going through `str` and std's general address parser (a
/// message's Via and URI hosts are IPv4 literals nearly always, several per message).
pub(crate) fn parse_ip(host: &[u8]) -> Option<IpAddr> {
    if let Some(v4) = parse_ipv4(host) {
        return Some(IpAddr::V4(v4));
    }
    if !host.contains(&b':') {
        // Not an IPv6 literal, and not a dotted quad: std would say no too.
        return None;
    }
    std::str::from_utf8(host).ok()?.parse().ok()
}

/// Four decimal octets separated by dots, each 0-255 in one to three digits without a
/// leading zero: std's `Ipv4Addr` grammar.
fn parse_ipv4(b: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, o) in octets.iter_mut().enumerate() {
        if n > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v: u32 = 0;
        while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if i - start == 3 {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || (digits > 1 && b[start] == b'0') {
            return None;
        }
        *o = u8::try_from(v).ok()?;
    }
    (i == b.len()).then(|| std::net::Ipv4Addr::from(octets))
}

/// `at`: the position of the last '@' in `rest`.
fn parse_sip<'a>(
    raw: &'a [u8],
    scheme: &'a [u8],
    rest: &'a [u8],
    at: Option<usize>,
) -> Option<Uri<'a>> {
    // Headers (`?a=b`) never contain an unescaped '@', so the last '@' ends the userinfo even
    // when the user part holds ';', '?' or ',' (RFC 4475 §3.1.1.2, §3.1.1.9).
    let (user, hostpart) = match at {
        Some(at) => {
            let userinfo = &rest[..at];
            let user_end = find_byte(userinfo, b':').unwrap_or(userinfo.len());
            (&userinfo[..user_end], &rest[at + 1..])
        }
        None => (&rest[..0], rest),
    };
    let (hostport, params) = {
        let end = find_any(hostpart, [b';', b'?']).unwrap_or(hostpart.len());
        let params = if hostpart.get(end) == Some(&b';') {
            let p = &hostpart[end + 1..];
            let pend = p.iter().position(|&c| c == b'?').unwrap_or(p.len());
            &p[..pend]
        } else {
            &hostpart[hostpart.len()..]
        };
        (&hostpart[..end], params)
    };
    let (host, port) = split_hostport(hostport)?;
    Some(Uri {
        scheme,
        user,
        host,
        port,
        params,
        raw,
    })
}

/// Split `host[:port]` (IPv6 references in brackets). Validates host characters and the port.
pub(crate) fn split_hostport(hp: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let (host, after) = if hp.first() == Some(&b'[') {
        let close = hp.iter().position(|&c| c == b']')?;
        let inner = &hp[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return None;
        }
        (&hp[..=close], &hp[close + 1..])
    } else {
        let end = find_byte(hp, b':').unwrap_or(hp.len());
        let host = &hp[..end];
        if host.is_empty() || !host.iter().all(|&c| is_host_char(c)) {
            return None;
        }
        (host, &hp[end..])
    };
    let port = match after {
        [] => None,
        [b':', digits @ ..] => Some(parse_port(digits)?),
        _ => return None,
    };
    Some((host, port))
}

/// 1–5 ASCII digits with a value ≤ 65535.
pub(crate) fn parse_port(d: &[u8]) -> Option<u16> {
    if d.is_empty() || d.len() > 5 {
        return None;
    }
    let mut v = 0u32;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    u16::try_from(v).ok()
}

/// [`URI_CLASS`] of a byte a URI never holds unescaped.
const FORBIDDEN: u8 = 1;

/// Bytes a sip URI parse looks for in one pass: 0 for most, [`FORBIDDEN`], 2 for '@'.
const URI_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        if FORBIDDEN_IN_URI[c] {
            t[c] = FORBIDDEN;
        }
        c += 1;
    }
    t[b'@' as usize] = 2;
    t
};

/// Find `name` in a `sep`-separated parameter list (`a=1;b;c = "x"`), LWS-tolerant,
/// case-insensitive on the name. Returns the value (quotes kept) or `b""` for a flag.
pub(crate) fn find_param<'a>(params: &'a [u8], name: &[u8], sep: u8) -> Option<&'a [u8]> {
    let mut i = 0;
    while i <= params.len() {
        // One parameter runs to the next separator outside quotes.
        let mut j = i;
        while j < params.len() && params[j] != sep {
            if params[j] == b'"' {
                j = skip_quoted(params, j).unwrap_or(params.len());
            } else {
                j += 1;
            }
        }
        let item = &params[i..j.min(params.len())];
        let (n, v) = match item.iter().position(|&c| c == b'=') {
            Some(eq) => (trim_lws(&item[..eq]), Some(trim_lws(&item[eq + 1..]))),
            None => (trim_lws(item), None),
        };
        if !n.is_empty() && n.eq_ignore_ascii_case(name) {
            return Some(v.unwrap_or(&item[..0]));
        }
        i = j + 1;
    }
    None
}

/// The parts of a name-addr / addr-spec header value (From, To, Contact, Route, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written: quoted (with its quotes) or tokens; empty when absent.
    pub display: &'a [u8],
    /// The URI (inside `<...>` when present).
    pub uri: &'a [u8],
    /// Header parameters after the URI, without the leading `;` (e.g. `tag=1;expires=60`).
    pub params: &'a [u8],
}

impl<'a> NameAddr<'a> {
    /// Split a header value into display name, URI and header parameters. Checks the display
    /// name grammar (quoted string or tokens), balanced quotes and brackets, and that the URI is
    /// `scheme:rest` without white space; `sip`/`sips`/`tel` URIs must also pass [`Uri::parse`].
    /// Unknown schemes are accepted (RFC 4475 §3.3.2): routing them is the caller's choice.
    pub fn parse(s: &'a [u8]) -> Option<NameAddr<'a>> {
        NameAddr::parse_with_uri(s).map(|(n, _)| n)
    }

    /// [`NameAddr::parse`], plus the parsed URI when its scheme is sip, sips or tel.
    fn parse_with_uri(s: &'a [u8]) -> Option<(NameAddr<'a>, Option<Uri<'a>>)> {
        NameAddr::parse_full(s).map(|(n, u, _)| (n, u))
    }

    /// The `tag` of a From or To header in a response: the name-addr's structure (display
    /// name, `<…>` or addr-spec, header parameters) as [`NameAddr::parse_full`] checks it,
    /// but the URI only as `scheme ":" rest`: a proxy forwards a response and needs its tags,
    /// not its URIs (the requests it relays are checked in full). `None` where the structure
    /// is broken.
    pub(crate) fn response_tag(s: &'a [u8]) -> Option<Option<&'a [u8]>> {
        check_params(NameAddr::split(s)?.params)
    }

    /// Display name, URI, and the header parameters after it (without their `;`), checked
    /// for structure only (the URI as `scheme ":" rest`).
    fn split(s: &'a [u8]) -> Option<NameAddr<'a>> {
        let s = trim_lws(s);
        // Where is the '<' (outside quotes), if any?
        let mut i = 0;
        let mut open = None;
        while let Some(n) = find_any(&s[i..], [b'"', b'<']) {
            i += n;
            if s[i] == b'<' {
                open = Some(i);
                break;
            }
            i = skip_quoted(s, i)?;
        }
        let (display, uri, after) = match open {
            Some(lt) => {
                let display = trim_lws(&s[..lt]);
                if !valid_display_name(display) {
                    return None;
                }
                let close = lt + find_byte(&s[lt..], b'>')?;
                (display, &s[lt + 1..close], &s[close + 1..])
            }
            None => {
                // addr-spec form: parameters after the first ';' are header parameters.
                let end = find_byte(s, b';').unwrap_or(s.len());
                (&s[..0], trim_lws(&s[..end]), &s[end..])
            }
        };
        let colon = find_byte(uri, b':')?;
        if colon == 0 || colon + 1 == uri.len() {
            return None;
        }
        let params = match trim_lws(after) {
            [] => &after[..0],
            [b';', rest @ ..] => rest,
            _ => return None,
        };
        Some(NameAddr {
            display,
            uri,
            params,
        })
    }

    /// The name-addr, its sip/sips/tel URI as [`Uri::parse`] gives it (`None` for another
    /// scheme) and its `tag` parameter (found while the parameters are checked, without a
    /// second pass).
    #[allow(clippy::type_complexity)]
    pub(crate) fn parse_full(
        s: &'a [u8],
    ) -> Option<(NameAddr<'a>, Option<Uri<'a>>, Option<&'a [u8]>)> {
        let n = NameAddr::split(s)?;
        let parsed = generic_uri(n.uri)?;
        let tag = check_params(n.params)?;
        Some((n, parsed, tag))
    }

    /// A header parameter (`tag`, `expires`, ...), case-insensitive name; `Some(b"")` for flags.
    pub fn param(&self, name: &str) -> Option<&'a [u8]> {
        find_param(self.params, name.as_bytes(), b';')
    }
}

fn valid_display_name(d: &[u8]) -> bool {
    if d.is_empty() {
        return true;
    }
    if d[0] == b'"' {
        return skip_quoted(d, 0) == Some(d.len());
    }
    d.iter().all(|&c| is_token_char(c) || is_lws(c))
}

/// `scheme ":" rest` without white space, quotes or angle brackets: `None` if not;
/// `Some(None)` for a well-formed URI of another scheme; `Some(Some(uri))` for a sip, sips or
/// tel URI that parses ([`Uri::parse`], which checks everything the generic rule does).
fn generic_uri(uri: &[u8]) -> Option<Option<Uri<'_>>> {
    let colon = find_byte(uri, b':')?;
    let scheme = &uri[..colon];
    let known = [&b"sip"[..], b"sips", b"tel"]
        .iter()
        .any(|k| scheme.eq_ignore_ascii_case(k));
    if known {
        return Uri::parse_at(uri, colon).map(Some);
    }
    let ok_scheme = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.');
    if !ok_scheme || colon + 1 == uri.len() || uri.iter().any(|&c| is_forbidden_in_uri(c)) {
        return None;
    }
    Some(None)
}

/// The usual parameter list, `name[=value]` items joined by ';' without white space or quotes,
/// in one pass: `Some(tag)` when `params` (not empty) has that form, which
/// [`check_params`] accepts with the same `tag`; `None` for anything else (not necessarily
/// invalid: `check_params` decides).
fn simple_params(params: &[u8]) -> Option<Option<&[u8]>> {
    let mut tag = None;
    let mut i = 0;
    loop {
        let ns = i;
        while i < params.len() && is_token_char(params[i]) {
            i += 1;
        }
        if i == ns {
            return None;
        }
        let name = &params[ns..i];
        let value = if params.get(i) == Some(&b'=') {
            i += 1;
            let vs = i;
            while i < params.len() && is_param_value_char(params[i]) {
                i += 1;
            }
            if i == vs {
                return None;
            }
            &params[vs..i]
        } else {
            &params[ns..ns]
        };
        if tag.is_none() && name.len() == 3 && name.eq_ignore_ascii_case(b"tag") {
            tag = Some(value);
        }
        match params.get(i) {
            None => return Some(tag),
            Some(b';') => i += 1,
            Some(_) => return None,
        }
    }
}

/// `*( SEMI generic-param )` after the leading ';' was removed: every parameter has a
/// non-empty token name; values are tokens, hosts or quoted strings. `None` if not; else the
/// value of the first `tag` parameter as [`find_param`] gives it.
fn check_params(params: &[u8]) -> Option<Option<&[u8]>> {
    if params.is_empty() {
        return Some(None);
    }
    if let Some(tag) = simple_params(params) {
        return Some(tag);
    }
    let mut tag = None;
    let mut i = 0;
    loop {
        // One parameter runs to the next ';' outside quotes.
        let mut j = i;
        loop {
            match find_any(&params[j..], [b';', b'"']) {
                None => {
                    j = params.len();
                    break;
                }
                Some(n) => {
                    j += n;
                    if params[j] == b';' {
                        break;
                    }
                    j = skip_quoted(params, j)?;
                }
            }
        }
        let item = &params[i..j];
        let (n, v) = match find_byte(item, b'=') {
            Some(eq) => (trim_lws(&item[..eq]), Some(trim_lws(&item[eq + 1..]))),
            None => (trim_lws(item), None),
        };
        if n.is_empty() || !n.iter().all(|&c| is_token_char(c)) {
            return None;
        }
        if let Some(v) = v {
            let ok = if v.first() == Some(&b'"') {
                skip_quoted(v, 0) == Some(v.len())
            } else {
                !v.is_empty() && v.iter().all(|&c| is_param_value_char(c))
            };
            if !ok {
                return None;
            }
        }
        if tag.is_none() && n.eq_ignore_ascii_case(b"tag") {
            tag = Some(v.unwrap_or(&item[..0]));
        }
        if j >= params.len() {
            return Some(tag);
        }
        i = j + 1;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is the failure report.
mod tests {

    use super::*;
    use proptest::prelude::*;

    fn std_ip(b: &[u8]) -> Option<IpAddr> {
        std::str::from_utf8(b).ok()?.parse().ok()
    }

    #[test]
    fn ip_literals_read_as_std_reads_them() {
        for s in [
            "0.0.0.0",
            "255.255.255.255",
            "192.0.2.1",
            "256.0.0.1",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3",
            "1.2.3.4.",
            ".1.2.3.4",
            "1..2.3",
            "1.2.3.4 ",
            "1234.1.1.1",
            "0.00.0.0",
            "::1",
            "2001:db8::1",
            "::ffff:1.2.3.4",
            "1.2.3.4:5060",
            "a.b.c.d",
            "",
            "1.2.3.-4",
            "+1.2.3.4",
            "1.2.3.4\0",
            "99.199.249.250",
        ] {
            assert_eq!(parse_ip(s.as_bytes()), std_ip(s.as_bytes()), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn ip_parse_matches_std_on_any_short_text(s in "[0-9.:a-f ]{0,20}") {
            prop_assert_eq!(parse_ip(s.as_bytes()), std_ip(s.as_bytes()));
        }

        #[test]
        fn every_ipv4_address_round_trips(a: u32) {
            let ip = std::net::Ipv4Addr::from(a);
            prop_assert_eq!(parse_ip(ip.to_string().as_bytes()), Some(IpAddr::V4(ip)));
        }
    }

    /// The transport parameter is reported, not guessed: an unknown one is an error (it was
    /// silently UDP); the host reads as an IP when it is one.
    #[test]
    fn transport_and_ip() {
        let t = |s: &str| Uri::parse(s.as_bytes()).map(|u| u.transport().map_err(<[u8]>::to_vec));
        assert_eq!(t("sip:a@192.0.2.1"), Some(Ok(Transport::Udp)));
        assert_eq!(t("sip:a@192.0.2.1;transport=UDP"), Some(Ok(Transport::Udp)));
        assert_eq!(
            t("sip:a@192.0.2.1;lr;transport=Tcp"),
            Some(Ok(Transport::Tcp))
        );
        assert_eq!(
            t("sip:a@192.0.2.1;transport=sctp"),
            Some(Err(b"sctp".to_vec()))
        );
        assert_eq!(
            t("sip:a@192.0.2.1;transport=tls;lr"),
            Some(Err(b"tls".to_vec()))
        );
        let ip = |s: &str| Uri::parse(s.as_bytes()).and_then(|u| u.ip());
        assert_eq!(ip("sip:a@192.0.2.1:5070"), "192.0.2.1".parse().ok());
        assert_eq!(ip("sip:a@[2001:db8::1]:5070"), "2001:db8::1".parse().ok());
        assert_eq!(ip("sip:a@pbx.example.com"), None);
        assert_eq!(ip("tel:+8613800138000"), None);
    }

    #[test]
    fn sip_uri_fields() {
        let u = Uri::parse(b"sip:alice@example.com:5070;transport=tcp;lr?X=1").unwrap();
        assert_eq!(u.scheme, b"sip");
        assert_eq!(u.user, b"alice");
        assert_eq!(u.host, b"example.com");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.params, b"transport=tcp;lr");
        assert_eq!(u.param("TRANSPORT"), Some(&b"tcp"[..]));
        assert_eq!(u.param("lr"), Some(&b""[..]));
        assert_eq!(u.param("maddr"), None);
        assert_eq!(u.raw(), b"sip:alice@example.com:5070;transport=tcp;lr?X=1");
        let u = Uri::parse_name_addr(b"\"A\" <sip:a@192.0.2.1;transport=tcp>;expires=60").unwrap();
        assert_eq!(u.raw(), b"sip:a@192.0.2.1;transport=tcp");
    }

    #[test]
    fn sip_uri_without_user_and_ipv6() {
        let u = Uri::parse(b"sip:[2001:db8::10]:5060;lr").unwrap();
        assert_eq!(u.user, b"");
        assert_eq!(u.host, b"[2001:db8::10]");
        assert_eq!(u.port, Some(5060));
        let u = Uri::parse(b"sips:[::1]").unwrap();
        assert!(u.is_sips());
        assert_eq!(u.host, b"[::1]");
        assert_eq!(u.port, None);
    }

    #[test]
    fn user_with_password_and_odd_characters() {
        let u = Uri::parse(b"sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, b"user;par=u%40example.net");
        assert_eq!(u.host, b"example.com");
        let u = Uri::parse(b"sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com").unwrap();
        assert_eq!(
            u.user,
            &b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..]
        );
        assert_eq!(u.host, b"example.com");
    }

    #[test]
    fn tel_uri() {
        let u = Uri::parse(b"tel:+86-400-800-1234;phone-context=example.com").unwrap();
        assert_eq!(u.scheme, b"tel");
        assert_eq!(u.user, b"+86-400-800-1234");
        assert_eq!(u.host, b"");
        assert_eq!(u.param("phone-context"), Some(&b"example.com"[..]));
    }

    #[test]
    fn bad_uris() {
        for bad in [
            &b"sip:"[..],
            b"sip:user@",
            b"sip:user@host:99999",
            b"sip:user@host:",
            b"sip:user@ho st",
            b"sip:[::1",
            b"http://example.com",
            b"sipexample.com",
            b"<sip:a@b>",
            b"tel:",
        ] {
            assert!(
                Uri::parse(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn name_addr_forms() {
        let n =
            NameAddr::parse(b"\"Bell, Alexander\" <sip:a.g.bell@example.com>;tag=433423").unwrap();
        assert_eq!(n.display, b"\"Bell, Alexander\"");
        assert_eq!(n.uri, b"sip:a.g.bell@example.com");
        assert_eq!(n.param("tag"), Some(&b"433423"[..]));

        let n = NameAddr::parse(b"caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display, b"caller");
        assert_eq!(n.param("tag"), Some(&b"323"[..]));

        let n =
            NameAddr::parse(b"sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(n.uri, b"sip:vivekg@chair-dnrc.example.com");
        assert_eq!(n.param("tag"), Some(&b"1918181833n"[..]));

        let n = NameAddr::parse(
            b"\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(n.param("tag"), Some(&b"98asjd8"[..]));

        let u = Uri::parse_name_addr(b"sip:13800000000@10.0.0.9:5060;transport=tcp").unwrap();
        assert_eq!(u.param("transport"), Some(&b"tcp"[..]));
        assert_eq!(u.port, Some(5060));
        let u = Uri::parse_name_addr(b" <sip:p1.example.com;lr>;x=1").unwrap();
        assert_eq!(u.params, b"lr");

        let u = Uri::parse_name_addr(b"Alice <sip:alice@[::1]:5062>").unwrap();
        assert_eq!(u.host, b"[::1]");
        assert_eq!(u.port, Some(5062));

        // Unknown schemes are syntactically fine in a name-addr.
        assert!(NameAddr::parse(b"<http://www.example.com>;tag=3234233").is_some());
        assert!(NameAddr::parse(b"isbn:2983792873").is_some());
        assert!(Uri::parse_name_addr(b"isbn:2983792873").is_none());
    }

    #[test]
    fn bad_name_addrs() {
        for bad in [
            &b"\"Mr. J. User <sip:j.user@example.com>"[..],
            b"Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            b"\"Watson, Thomas\" < sip:t.watson@example.org >",
            b"<sip:a@b",
            b"<sip:a@b>;;",
            b"<sip:a@b> junk",
            b"",
            b"<sip:>",
        ] {
            assert!(
                NameAddr::parse(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
