//! Helpers shared by `execution_plans` and `reload`: CDR attempt records, message times in
//! SIPp logs, and target fixtures. (Kept beside those modules; `hotline_e2e` holds the
//! helpers every module uses.)

use std::path::Path;
use std::time::Duration;

use hotline_cdr::reader::{scan_dir, RecordRef};
use hotline_cdr::{AttemptRecord, CallRecord, Kind};
use hotline_e2e::{Direction, Sipp, SippResult};

/// Every call and attempt record of a CDR directory.
#[derive(Debug, Default)]
pub struct Cdrs {
    pub calls: Vec<CallRecord>,
    pub attempts: Vec<AttemptRecord>,
}

impl Cdrs {
    /// Reads `dir` (read errors are printed and give what was read so far).
    pub fn read(dir: &Path) -> Cdrs {
        let mut out = Cdrs::default();
        let r = scan_dir(dir, &[Kind::Call, Kind::Attempt], |r| match r {
            RecordRef::Call(c) => out.calls.push(c.clone()),
            RecordRef::Attempt(a) => out.attempts.push(a.clone()),
        });
        if let Err(e) = r {
            eprintln!("reading CDRs in {}: {e}", dir.display());
        }
        out
    }

    /// The attempts linked to `call` (by `call_record_id`), in attempt order.
    pub fn attempts_of(&self, call: &CallRecord) -> Vec<&AttemptRecord> {
        let mut v: Vec<&AttemptRecord> = self
            .attempts
            .iter()
            .filter(|a| a.call_record_id == call.record_id)
            .collect();
        v.sort_by_key(|a| a.attempt);
        v
    }

    /// The only call record, with its attempts; panics with the records otherwise.
    #[track_caller]
    pub fn single(&self) -> (&CallRecord, Vec<&AttemptRecord>) {
        assert_eq!(self.calls.len(), 1, "one call record expected: {self:#?}");
        let call = &self.calls[0];
        let attempts = self.attempts_of(call);
        assert_eq!(
            attempts.len() as u32,
            call.attempts,
            "the call's `attempts` column counts its attempt records: {self:#?}"
        );
        for (i, a) in attempts.iter().enumerate() {
            assert_eq!(
                a.attempt as usize,
                i + 1,
                "attempt indexes 1..=n: {self:#?}"
            );
            assert_eq!(
                a.call_id, call.call_id,
                "attempt carries the call's Call-ID"
            );
        }
        (call, attempts)
    }
}

/// True when a CDR target column names the target `name` (docs: its SIP URI; the config name
/// is accepted too, as the other e2e modules do).
pub fn is_target(column: &str, name: &str, uri: &str) -> bool {
    column == name || column == uri
}

/// A SIPp target running `scenario` for one call, bounded to 20 s.
pub fn uas(scenario: &str) -> Sipp {
    Sipp::uas(scenario)
        .calls(1)
        .timeout(Duration::from_secs(20))
}

/// Log time of the first message SIPp received matching `pred`.
pub fn received_at(r: &SippResult, pred: impl Fn(&hotline_e2e::SipMessage) -> bool) -> Option<f64> {
    r.messages
        .iter()
        .find(|m| m.direction == Direction::Received && pred(&m.message))
        .map(|m| m.at)
}

/// Log time of the first message SIPp sent matching `pred`.
pub fn sent_at(r: &SippResult, pred: impl Fn(&hotline_e2e::SipMessage) -> bool) -> Option<f64> {
    r.messages
        .iter()
        .find(|m| m.direction == Direction::Sent && pred(&m.message))
        .map(|m| m.at)
}

/// When a target received its first INVITE.
pub fn invite_received_at(r: &SippResult) -> Option<f64> {
    received_at(r, |m| m.method() == Some("INVITE"))
}

/// When a caller sent its first INVITE.
pub fn invite_sent_at(r: &SippResult) -> Option<f64> {
    sent_at(r, |m| m.method() == Some("INVITE"))
}

/// When a caller received its first final response to INVITE.
pub fn final_received_at(r: &SippResult) -> Option<f64> {
    received_at(r, |m| {
        m.cseq_method().as_deref() == Some("INVITE") && m.status().is_some_and(|s| s >= 200)
    })
}

/// Milliseconds from `a` to `b` (both must be known).
#[track_caller]
pub fn ms_between(a: Option<f64>, b: Option<f64>, what: &str) -> i64 {
    match (a, b) {
        (Some(a), Some(b)) => hotline_e2e::elapsed_ms(a, b),
        _ => panic!("{what}: a message time is missing ({a:?}, {b:?})"),
    }
}

/// Asserts `ms` lies in `range`, naming what was measured.
#[track_caller]
pub fn assert_ms(ms: i64, range: std::ops::Range<i64>, what: &str) {
    assert!(range.contains(&ms), "{what}: {ms} ms, expected {range:?}");
}

/// A silent target: a loopback UDP socket that is bound but never read, so what is sent to it
/// vanishes without an answer and without an ICMP port unreachable (a port nothing listens on
/// is a transport error, which Hotline takes as a 503 at once: `hunt.rs`). Keep the socket
/// for the test's length.
#[track_caller]
pub fn silent_port() -> (std::net::UdpSocket, u16) {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a silent target");
    match s.local_addr() {
        Ok(a) => {
            let port = a.port();
            (s, port)
        }
        Err(e) => panic!("{e}"),
    }
}
