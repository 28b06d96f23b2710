//! One CDR as a JetStream message (docs/cdr.md, "Shipping to NATS JetStream"):
//!
//! * subject `<prefix>.<400 number>` (e.g. `cdr.4008001234`), calls and attempts alike;
//! * payload: the record as one JSON Lines object, exactly as a `.jsonl` CDR file holds it
//!   (`{"v":1,"kind":"call",...}`, no trailing newline), whatever the local file format;
//! * one header: `Nats-Msg-Id` (the stable record id below, JetStream's dedupe key). The node
//!   is the id's first field ([`node_of_id`]), the kind the payload's `kind`: nats-server parses
//!   every header byte of every message, so there are no others (earlier shippers also
//!   sent `Hotline-Node` and `Hotline-Kind`; the reader still takes `Hotline-Node` when present).
//!
//! The record id is `<node>:<Call-ID>:<attempt>:<local record id>`, attempt 0 for the call
//! record. Node, Call-ID and attempt are what identify a record across the platform; the local
//! record id (unique per process run, written in the file) is appended so that a carrier
//! re-using a Call-ID for a new INVITE never makes two records one. Re-reading a file always
//! gives the same id, which is what makes a re-publish after a crash a duplicate JetStream drops.

use hotline_cdr::reader::RecordRef;
use hotline_cdr::{Format, Kind};

/// The subject for a record of `number`: `<prefix>.<number>`. Characters a subject token must
/// not hold (space, `.`, `*`, `>`, control characters) become `_`; an empty number is `_`.
pub fn subject(prefix: &str, number: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 1 + number.len().max(1));
    s.push_str(prefix);
    s.push('.');
    if number.is_empty() {
        s.push('_');
    }
    for c in number.chars() {
        if c.is_control() || c.is_whitespace() || matches!(c, '.' | '*' | '>') {
            s.push('_');
        } else {
            s.push(c);
        }
    }
    s
}

/// The stable record id (see the module docs). Control characters (never in a valid Call-ID,
/// but a header value must not hold them) become `_`.
pub fn record_id(node: &str, rec: RecordRef<'_>) -> String {
    let (call_id, attempt, local) = match rec {
        RecordRef::Call(c) => (c.call_id.as_str(), 0, c.record_id.as_str()),
        RecordRef::Attempt(a) => (a.call_id.as_str(), a.attempt, a.record_id.as_str()),
    };
    let mut s = String::with_capacity(node.len() + call_id.len() + local.len() + 16);
    s.push_str(node);
    s.push(':');
    s.push_str(call_id);
    s.push(':');
    s.push_str(&attempt.to_string());
    s.push(':');
    s.push_str(local);
    if s.chars().any(char::is_control) {
        s = s
            .chars()
            .map(|c| if c.is_control() { '_' } else { c })
            .collect();
    }
    s
}

/// The node of a record id: everything before its first `:` (node names are `[A-Za-z0-9_.-]`,
/// never a `:`); the whole id if it has none.
pub fn node_of_id(id: &str) -> &str {
    id.split_once(':').map_or(id, |(node, _)| node)
}

/// The 400 number a record belongs to.
pub fn number(rec: RecordRef<'_>) -> &str {
    match rec {
        RecordRef::Call(c) => &c.number,
        RecordRef::Attempt(a) => &a.number,
    }
}

/// The record kind.
pub fn kind(rec: RecordRef<'_>) -> Kind {
    match rec {
        RecordRef::Call(_) => Kind::Call,
        RecordRef::Attempt(_) => Kind::Attempt,
    }
}

/// The JSON Lines payload (no trailing newline), appended to `out`.
pub fn payload(out: &mut Vec<u8>, rec: RecordRef<'_>) {
    match rec {
        RecordRef::Call(c) => hotline_cdr::encode::encode_call(out, Format::Jsonl, c),
        RecordRef::Attempt(a) => hotline_cdr::encode::encode_attempt(out, Format::Jsonl, a),
    }
    if out.last() == Some(&b'\n') {
        out.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotline_cdr::{AttemptRecord, CallRecord};
    use jiff::Timestamp;

    #[test]
    fn subjects_ids_and_payloads() {
        assert_eq!(subject("cdr", "4008001234"), "cdr.4008001234");
        assert_eq!(subject("hl.cdr", ""), "hl.cdr._");
        assert_eq!(subject("cdr", "40 0.8*>"), "cdr.40_0_8__");
        let mut c = CallRecord::empty(Timestamp::UNIX_EPOCH);
        c.call_id = "abc@host".into();
        c.record_id = "c0-1-7".into();
        c.number = "4008001234".into();
        let mut a = AttemptRecord::empty(Timestamp::UNIX_EPOCH);
        a.call_id = "abc@host".into();
        a.attempt = 2;
        a.record_id = "a0-1-8".into();
        assert_eq!(record_id("n1", RecordRef::Call(&c)), "n1:abc@host:0:c0-1-7");
        assert_eq!(
            node_of_id(&record_id("sh-01.a_b", RecordRef::Call(&c))),
            "sh-01.a_b"
        );
        assert_eq!(node_of_id("nocolon"), "nocolon");
        assert_eq!(
            record_id("n1", RecordRef::Attempt(&a)),
            "n1:abc@host:2:a0-1-8"
        );
        a.call_id = "x\r\ny".into();
        assert_eq!(record_id("n1", RecordRef::Attempt(&a)), "n1:x__y:2:a0-1-8");
        let mut out = Vec::new();
        payload(&mut out, RecordRef::Call(&c));
        assert!(out.starts_with(b"{\"v\":1,\"kind\":\"call\""));
        assert!(out.ends_with(b"}"));
        let mut back = CallRecord::empty(Timestamp::UNIX_EPOCH);
        let mut back_a = AttemptRecord::empty(Timestamp::UNIX_EPOCH);
        let r = hotline_cdr::decode::from_json_line(&out, Kind::Call, &mut back, &mut back_a);
        assert!(r.is_ok());
        assert_eq!(back, c);
        assert_eq!(number(RecordRef::Call(&c)), "4008001234");
        assert_eq!(kind(RecordRef::Attempt(&a)), Kind::Attempt);
    }
}
