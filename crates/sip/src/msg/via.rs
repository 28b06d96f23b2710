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
