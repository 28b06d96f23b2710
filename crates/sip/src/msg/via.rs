//! The Via header field value: sent-by, transport and the parameters a proxy needs (branch,
//! received, rport), parsed without allocating.

use crate::scan::{
    find_byte, is_host_char, is_lws, is_param_value_char, is_token_char, skip_quoted,
};
use crate::uri::parse_port;

use super::header::name_is;

/// One Via header value (one hop), borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// [`Via::bare_rport_end`], found by the parse.
    pub(super) bare_rport: Option<usize>,
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
            bare_rport: None,
        };
        loop {
            c.lws();
            if c.i == raw.len() {
                return Some(via);
            }
            c.byte(b';')?;
            c.lws();
            let name = c.token()?;
            let name_end = c.i;
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
                        None => {
                            via.bare_rport = Some(start + name_end);
                            None
                        }
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
    /// where `=<port>` is spliced in. Kept by the parse (the first `rport` parameter, as
    /// [`Via::rport`]), not searched for again.
    pub(crate) fn bare_rport_end(&self) -> Option<usize> {
        self.bare_rport.filter(|_| self.rport == Some(None))
    }

    pub(super) fn empty() -> Via<'static> {
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
            bare_rport: None,
        }
    }
}

pub(super) struct Cursor<'a> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is the failure report.
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `bare_rport_end` was before the parse kept it: a search of the value.
    fn bare_rport_end_search(v: &Via<'_>) -> Option<usize> {
        if v.rport != Some(None) {
            return None;
        }
        let raw = v.raw;
        let mut i = 0;
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
                            return Some(v.start + j);
                        }
                    }
                    i = j.max(i + 1);
                }
                _ => i += 1,
            }
        }
        None
    }

    fn via_value() -> impl Strategy<Value = String> {
        let param = prop::sample::select(vec![
            ";rport",
            "; rport",
            ";RPort",
            ";rport=5062",
            ";rport = 7",
            ";rport ",
            ";rportx",
            ";xrport",
            ";branch=z9hG4bK1",
            ";received=10.0.0.1",
            ";x=\"a;rport\"",
            ";maddr=h",
            ";ttl=3",
            ";rport=",
        ]);
        (
            prop::sample::select(vec!["SIP/2.0/UDP ", "SIP / 2.0 / TCP  "]),
            prop::sample::select(vec!["h", "10.0.0.1:5060", "[::1]:5", "rport"]),
            prop::collection::vec(param, 0..5),
        )
            .prop_map(|(p, h, ps)| format!("{p}{h}{}", ps.concat()))
    }

    proptest! {
        /// The parse's `bare_rport_end` is the search's, for the value parsed alone and for
        /// the top Via of a message (kept in its index).
        #[test]
        fn bare_rport_end_is_the_search(v in via_value(), start in 0usize..100) {
            if let Some(via) = Via::parse(v.as_bytes(), start) {
                prop_assert_eq!(via.bare_rport_end(), bare_rport_end_search(&via), "{}", v);
                let msg = format!(
                    "OPTIONS sip:a@b SIP/2.0\r\nVia: {v}\r\nFrom: <sip:c@d>;tag=1\r\n\
                     To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
                );
                if let Ok(m) = crate::msg::Message::parse(bytes::Bytes::from(msg.clone())) {
                    let top = m.top_via();
                    prop_assert_eq!(top.bare_rport_end(), bare_rport_end_search(&top), "{}", msg);
                }
            }
        }
    }

    #[test]
    fn bare_rport_end_where_the_name_ends() {
        let v = Via::parse(b"SIP/2.0/UDP h;branch=z9hG4bK1;rport", 40).unwrap();
        assert_eq!(v.bare_rport_end(), Some(40 + 35));
        let v = Via::parse(b"SIP/2.0/UDP h;rport=5;rport", 0).unwrap();
        assert_eq!(v.bare_rport_end(), None);
        let v = Via::parse(b"SIP/2.0/UDP h;rport;rport=5", 0).unwrap();
        assert_eq!(v.bare_rport_end(), Some(19));
    }
}
