//! Framing: where one SIP message ends (RFC 3261 §18.3).
//!
//! - UDP: one datagram holds one message. Content-Length is optional (absent = rest of the
//!   datagram); octets beyond it are discarded; a Content-Length larger than what arrived is
//!   an error (RFC 4475 §3.1.2.2). A datagram of only CR/LF is a keep-alive.
//! - TCP: [`StreamFramer`] buffers the byte stream and pops whole messages. Content-Length is
//!   required; CR/LF between messages (RFC 5626 keep-alives) is skipped. A missing or bad
//!   Content-Length, or a message (headers + body) over [`Limits::max_message`], is an error
//!   after which the stream cannot be re-synchronised: the caller closes the connection.
//!
//! Framing checks only what it needs to find the end; [`crate::msg::Message::parse`] validates
//! the rest. [`parse_datagram`] does both for a datagram with one scan of the header block (the
//! receive path); [`frame_datagram`] frames only.

use bytes::{Buf, Bytes, BytesMut};

use crate::msg::{datagram_end, HeaderScan, Kind, Message, ParseError, UdpError};
use crate::scan::{find_headers_end, parse_decimal};

/// Size caps applied while framing. Default max message 64 KiB.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: 64 * 1024,
        }
    }
}

/// Result of framing a datagram.
#[derive(Debug)]
pub enum Framed {
    /// One whole message (trailing bytes beyond Content-Length on UDP are discarded per §18.3).
    Message(Bytes),
    /// Keep-alive (CRLF / CRLFCRLF, RFC 5626) — ignore.
    KeepAlive,
}

/// Result of [`parse_datagram`]: framing and parsing of one datagram in one pass.
#[derive(Debug)]
// A `Message` is a few hundred bytes, the other variants a few words: the value is matched
// at once by the receiver, and boxing would cost an allocation per datagram.
#[allow(clippy::large_enum_variant)]
pub enum Datagram {
    /// The parsed message (trailing bytes beyond Content-Length discarded per §18.3).
    Message(Message),
    /// Keep-alive (CRLF / CRLFCRLF, RFC 5626) — ignore.
    KeepAlive,
    /// Framing failed: the error [`frame_datagram`] returns.
    Unframed(ParseError),
    /// Framed but not a valid message: the framed bytes (what [`frame_datagram`] returns)
    /// and the error [`Message::parse`] gives for them.
    Unparsed(Bytes, ParseError),
}

/// Frame and parse one UDP datagram: the outcome of [`frame_datagram`] followed by
/// [`Message::parse`] of the framed bytes, for every input, but with one scan of the header
/// block instead of two (and no clone of the framed bytes).
pub fn parse_datagram(mut datagram: Bytes, limits: &Limits) -> Datagram {
    let lead = skip_crlf(&datagram);
    if lead == datagram.len() {
        return Datagram::KeepAlive;
    }
    if datagram.len() > limits.max_message {
        return Datagram::Unframed(ParseError::TooLarge);
    }
    if datagram.len() > u32::MAX as usize {
        // Beyond the index's offsets: the two steps as they are.
        return match frame_datagram(datagram, limits) {
            Ok(Framed::Message(b)) => match Message::parse_or_return(b) {
                Ok(m) => Datagram::Message(m),
                Err((b, e)) => Datagram::Unparsed(b, e),
            },
            Ok(Framed::KeepAlive) => Datagram::KeepAlive,
            Err(e) => Datagram::Unframed(e),
        };
    }
    datagram.advance(lead);
    match Message::parse_udp(datagram) {
        Ok(m) => Datagram::Message(m),
        Err(UdpError::Framing(e)) => Datagram::Unframed(e),
        Err(UdpError::Parse(b, e)) => Datagram::Unparsed(b, e),
    }
}

/// Content-Length of a header block: `Ok(None)` when absent; repeated differing values or a
/// non-numeric value are [`ParseError::BadContentLength`].
fn content_length(b: &[u8]) -> Result<Option<usize>, ParseError> {
    let first_nl = b
        .iter()
        .position(|&c| c == b'\n')
        .ok_or(ParseError::BadStartLine)?;
    let mut scan = HeaderScan::new(b, first_nl + 1);
    let mut found: Option<u64> = None;
    while let Some(h) = scan.next_header()? {
        if h.kind == Kind::ContentLength {
            let n = parse_decimal(&b[h.value.range()], u32::MAX as u64)
                .ok_or(ParseError::BadContentLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(ParseError::BadContentLength);
            }
            found = Some(n);
        }
    }
    Ok(found.map(|n| n as usize))
}

fn skip_crlf(b: &[u8]) -> usize {
    b.iter().take_while(|&&c| c == b'\r' || c == b'\n').count()
}

/// Frame one UDP datagram. Content-Length optional on UDP (absent = rest of datagram).
pub fn frame_datagram(datagram: Bytes, limits: &Limits) -> Result<Framed, ParseError> {
    let lead = skip_crlf(&datagram);
    if lead == datagram.len() {
        return Ok(Framed::KeepAlive);
    }
    if datagram.len() > limits.max_message {
        return Err(ParseError::TooLarge);
    }
    let b = &datagram[lead..];
    let (_, body_start) = find_headers_end(b, 0).ok_or(ParseError::BadHeader)?;
    let end = datagram_end(body_start, content_length(&b[..body_start])?, b.len())?;
    Ok(Framed::Message(datagram.slice(lead..lead + end)))
}

/// Incremental framer for a TCP byte stream: push bytes, pop whole messages. Content-Length is
/// required. An error means the stream is broken and must be closed.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: Limits,
    /// How far the search for the blank line has got (avoids rescanning on every read).
    scanned: usize,
    /// Total length of the message at the front once its headers are complete.
    pending: Option<usize>,
}

impl StreamFramer {
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            buf: BytesMut::with_capacity(limits.max_message.min(16 * 1024)),
            limits,
            scanned: 0,
            pending: None,
        }
    }
    /// Buffer to read into (append received bytes here).
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }
    /// Append received bytes (same as extending [`StreamFramer::buffer`]).
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    /// Bytes buffered but not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
    /// Next whole message, `Ok(None)` if more bytes are needed. Leading CRLF keep-alives skipped.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, ParseError> {
        if self.pending.is_none() {
            let lead = skip_crlf(&self.buf);
            if lead > 0 {
                self.buf.advance(lead);
                self.scanned = 0;
            }
            if self.buf.is_empty() {
                return Ok(None);
            }
            // Resume a little before where the last search stopped: the blank line may
            // straddle two reads.
            let from = self.scanned.saturating_sub(3);
            match find_headers_end(&self.buf, from) {
                None => {
                    if self.buf.len() >= self.limits.max_message {
                        return Err(ParseError::TooLarge);
                    }
                    self.scanned = self.buf.len();
                    return Ok(None);
                }
                Some((_, body_start)) => {
                    if body_start > self.limits.max_message {
                        return Err(ParseError::TooLarge);
                    }
                    let cl = content_length(&self.buf[..body_start])?
                        .ok_or(ParseError::BadContentLength)?;
                    let total = body_start.checked_add(cl).ok_or(ParseError::TooLarge)?;
                    if total > self.limits.max_message {
                        return Err(ParseError::TooLarge);
                    }
                    self.pending = Some(total);
                }
            }
        }
        match self.pending {
            Some(total) if self.buf.len() >= total => {
                self.pending = None;
                self.scanned = 0;
                Ok(Some(self.buf.split_to(total).freeze()))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is the failure report.
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nl: 3\r\n\r\nabc";

    #[test]
    fn datagram_keepalive_and_trailing_bytes() {
        let lim = Limits::default();
        assert!(matches!(
            frame_datagram(Bytes::from_static(b"\r\n\r\n"), &lim),
            Ok(Framed::KeepAlive)
        ));
        assert!(matches!(
            frame_datagram(Bytes::new(), &lim),
            Ok(Framed::KeepAlive)
        ));
        let mut d = MSG.to_vec();
        d.extend_from_slice(b"garbage");
        match frame_datagram(Bytes::from(d), &lim) {
            Ok(Framed::Message(m)) => assert_eq!(&m[..], MSG),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn datagram_errors() {
        let lim = Limits { max_message: 64 };
        let big = Bytes::from(vec![b'A'; 65]);
        assert_eq!(frame_datagram(big, &lim).err(), Some(ParseError::TooLarge));
        let lim = Limits::default();
        let short = Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\nl: 9\r\n\r\nabc");
        assert_eq!(
            frame_datagram(short, &lim).err(),
            Some(ParseError::ContentLengthMismatch)
        );
        let bad = Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\nl: -9\r\n\r\nabc");
        assert_eq!(
            frame_datagram(bad, &lim).err(),
            Some(ParseError::BadContentLength)
        );
        let open = Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n");
        assert_eq!(
            frame_datagram(open, &lim).err(),
            Some(ParseError::BadHeader)
        );
    }

    #[test]
    fn stream_two_messages_with_keepalives() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"\r\n\r\n");
        f.push(MSG);
        f.push(b"\r\n");
        f.push(&MSG[..10]);
        assert_eq!(f.next_message().unwrap().as_deref(), Some(MSG));
        assert_eq!(f.next_message().unwrap(), None);
        f.push(&MSG[10..]);
        assert_eq!(f.next_message().unwrap().as_deref(), Some(MSG));
        assert_eq!(f.next_message().unwrap(), None);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn stream_requires_content_length_and_caps_size() {
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n");
        assert_eq!(f.next_message(), Err(ParseError::BadContentLength));

        let mut f = StreamFramer::new(Limits { max_message: 100 });
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1000\r\n\r\n");
        assert_eq!(f.next_message(), Err(ParseError::TooLarge));

        let mut f = StreamFramer::new(Limits { max_message: 100 });
        f.push(&[b'X'; 100]);
        assert_eq!(f.next_message(), Err(ParseError::TooLarge));
    }
}
