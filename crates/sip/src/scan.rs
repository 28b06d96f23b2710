//! Byte-scan helpers shared by the parsers: finding bytes and the end of a header block,
//! decimal numbers, and the character classes of RFC 3261 (token, host, LWS, quoted strings,
//! bytes a URI never holds). They know no message or URI: [`crate::frame`], [`crate::msg`],
//! [`crate::uri`] and the proxy use them, and this module uses none of those.

/// Position of the first `needle` in `hay`: eight bytes at a time (the header scan's inner
/// loop; `iter().position` goes byte by byte).
#[inline]
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    find_any(hay, [needle])
}

/// Position of the first byte of `hay` that is one of `set`, eight bytes at a time.
#[inline]
pub(crate) fn find_any<const N: usize>(hay: &[u8], set: [u8; N]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // Bytes equal to the needle are zero in `x`; the lowest flagged byte is the first zero (a
    // borrow can only flag bytes above a real zero), so with several needles the lowest flag
    // of the union is still a real match.
    let has_zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let flags = |c: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let w = u64::from_le_bytes(w);
        set.iter()
            .fold(0, |z, &n| z | has_zero(w ^ LO.wrapping_mul(u64::from(n))))
    };
    let mut chunks = hay.chunks_exact(8);
    let mut off = 0;
    for c in &mut chunks {
        let z = flags(c);
        if z != 0 {
            return Some(off + (z.trailing_zeros() / 8) as usize);
        }
        off += 8;
    }
    let rest = chunks.remainder();
    if rest.is_empty() {
        return None;
    }
    if hay.len() >= 8 {
        // The last eight bytes, overlapping the ones already searched: those hold no match,
        // so the lowest flag (always a real match) is in the tail.
        let start = hay.len() - 8;
        let z = flags(&hay[start..]);
        return (z != 0).then(|| start + (z.trailing_zeros() / 8) as usize);
    }
    rest.iter().position(|c| set.contains(c)).map(|i| off + i)
}

/// Non-empty ASCII digits (leading zeros allowed) with value ≤ `max`.
pub(crate) fn parse_decimal(d: &[u8], max: u64) -> Option<u64> {
    if d.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
        if v > max {
            return None;
        }
    }
    Some(v)
}

/// Offset of the blank line ending the header block, and of the body, if complete.
pub(crate) fn find_headers_end(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(n) = b.get(i..)?.iter().position(|&c| c == b'\n') {
        let nl = i + n;
        match b.get(nl + 1..) {
            Some([b'\r', b'\n', ..]) => return Some((nl + 1, nl + 3)),
            Some([b'\n', ..]) => return Some((nl + 1, nl + 2)),
            _ => i = nl + 1,
        }
    }
    None
}

#[inline]
pub(crate) fn is_forbidden_in_uri(c: u8) -> bool {
    FORBIDDEN_IN_URI[c as usize]
}

/// Bytes a URI never holds unescaped: controls, space, DEL, `<`, `>`, `"`.
pub(crate) const FORBIDDEN_IN_URI: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b <= b' ' || b == 0x7f || b == b'<' || b == b'>' || b == b'"';
        c += 1;
    }
    t
};

/// RFC 3261 `token` characters, as a table: this test runs for nearly every header byte.
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric();
        c += 1;
    }
    let extra = b"-.!%*_+`'~";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

/// Bytes of a host name or IPv4 address as the parsers accept them: letters, digits, `-`,
/// `.`, `_`.
const HOST: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
        c += 1;
    }
    t
};

/// Host-name bytes (see [`HOST`]).
#[inline]
pub(crate) fn is_host_char(c: u8) -> bool {
    HOST[c as usize]
}

/// Bytes of an unquoted parameter value: token characters, `:`, `[`, `]` (hosts, IPv6).
const PARAM_VALUE: [bool; 256] = {
    let mut t = TOKEN;
    t[b':' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t
};

/// Unquoted parameter value bytes (see [`PARAM_VALUE`]).
#[inline]
pub(crate) fn is_param_value_char(c: u8) -> bool {
    PARAM_VALUE[c as usize]
}

/// RFC 3261 `token` characters.
#[inline]
pub(crate) fn is_token_char(c: u8) -> bool {
    TOKEN[c as usize]
}

/// Linear white space, including the CR/LF of a folded line.
#[inline]
pub(crate) fn is_lws(c: u8) -> bool {
    c == b' ' || c == b'\t' || c == b'\r' || c == b'\n'
}

pub(crate) fn trim_lws(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_lws(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_lws(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Index just past a quoted string starting at `s[start] == '"'`, honouring `\` escapes.
pub(crate) fn skip_quoted(s: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Position of the first occurrence of `needle` (non-empty) in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
