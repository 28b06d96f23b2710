//! An answered call's dialog as bytes another node can take over (a cluster's take-over of a
//! dead node's calls): [`Proxy::dialog_state`] at the answer, [`Proxy::adopt`] elsewhere.
//!
//! The adopted call is an ordinary answered call of this proxy: in-dialog requests find it,
//! [`Proxy::limit_call`] and [`Proxy::hangup`] cut it with a BYE to both sides, and its end is
//! an [`super::Event::CallEnded`] like any other.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::call::{Call, CallState};
use super::dialog::DialogSides;
use super::hunt::Hunt;
use super::local::local_tag_of;
use super::{CallHandle, Peer, Proxy, Transport};

/// How far the CSeqs of an adopted dialog jump: the old owner may have relayed requests after
/// the publication (a re-INVITE raises a side's CSeq); a BYE must carry a higher one
/// (RFC 3261 12.2.1.1: CSeqs only need to increase, gaps are allowed).
const CSEQ_JUMP: u32 = 1000;

/// What another proxy needs to end an answered call: both sides' From / To (tags included),
/// remote targets and transport addresses, and the highest CSeqs seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogState {
    pub caller_from: Vec<u8>,
    pub callee_to: Vec<u8>,
    pub caller_target: Vec<u8>,
    pub callee_tag: Vec<u8>,
    pub callee_target: Vec<u8>,
    pub caller_cseq: u32,
    pub callee_cseq: u32,
    pub caller: (Transport, SocketAddr),
    pub callee: (Transport, SocketAddr),
}

impl DialogState {
    /// Length-prefixed fields: `v1 LEN:BYTES …`, binary safe, no escaping.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + self.caller_from.len()
                + self.callee_to.len()
                + self.caller_target.len()
                + self.callee_tag.len()
                + self.callee_target.len(),
        );
        out.extend_from_slice(b"v1 ");
        let t = |t: Transport| if t == Transport::Tcp { "tcp" } else { "udp" };
        let caller = format!("{} {}", t(self.caller.0), self.caller.1);
        let callee = format!("{} {}", t(self.callee.0), self.callee.1);
        let cseqs = format!("{} {}", self.caller_cseq, self.callee_cseq);
        for f in [
            &self.caller_from[..],
            &self.callee_to,
            &self.caller_target,
            &self.callee_tag,
            &self.callee_target,
            caller.as_bytes(),
            callee.as_bytes(),
            cseqs.as_bytes(),
        ] {
            out.extend_from_slice(f.len().to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(f);
        }
        out
    }

    /// The inverse of [`DialogState::encode`]; `None` for anything else.
    pub fn decode(mut b: &[u8]) -> Option<DialogState> {
        b = b.strip_prefix(b"v1 ")?;
        let mut fields: Vec<&[u8]> = Vec::with_capacity(8);
        while !b.is_empty() {
            let colon = b.iter().position(|&c| c == b':')?;
            let len: usize = std::str::from_utf8(&b[..colon]).ok()?.parse().ok()?;
            let rest = &b[colon + 1..];
            fields.push(rest.get(..len)?);
            b = &rest[len..];
        }
        let [caller_from, callee_to, caller_target, callee_tag, callee_target, caller, callee, cseqs] =
            fields[..]
        else {
            return None;
        };
        let peer = |f: &[u8]| -> Option<(Transport, SocketAddr)> {
            let s = std::str::from_utf8(f).ok()?;
            let (t, a) = s.split_once(' ')?;
            let t = match t {
                "udp" => Transport::Udp,
                "tcp" => Transport::Tcp,
                _ => return None,
            };
            Some((t, a.parse().ok()?))
        };
        let (a, c) = std::str::from_utf8(cseqs).ok()?.split_once(' ')?;
        Some(DialogState {
            caller_from: caller_from.to_vec(),
            callee_to: callee_to.to_vec(),
            caller_target: caller_target.to_vec(),
            callee_tag: callee_tag.to_vec(),
            callee_target: callee_target.to_vec(),
            caller_cseq: a.parse().ok()?,
            callee_cseq: c.parse().ok()?,
            caller: peer(caller)?,
            callee: peer(callee)?,
        })
    }
}

impl Proxy {
    /// The dialog of an answered call, for another node to take it over.
    pub fn dialog_state(&self, call: CallHandle) -> Option<DialogState> {
        let c = self.calls.get(&call.0)?;
        if c.state != CallState::Answered {
            return None;
        }
        let d = c.dialog.as_ref()?;
        Some(DialogState {
            caller_from: d.caller_from().to_vec(),
            callee_to: d.callee_to().to_vec(),
            caller_target: d.caller_target().to_vec(),
            callee_tag: d.callee_tag().to_vec(),
            callee_target: d.callee_target().to_vec(),
            caller_cseq: d.caller_cseq,
            callee_cseq: d.callee_cseq,
            caller: (d.caller_peer.transport, d.caller_peer.addr),
            callee: (d.callee_peer.transport, d.callee_peer.addr),
        })
    }

    /// When an answered call is to be cut (max duration, prepaid), if it is.
    pub fn hangup_at(&self, call: CallHandle) -> Option<Instant> {
        let c = self.calls.get(&call.0)?;
        (c.state == CallState::Answered).then_some(c.hangup_at)?
    }

    /// Take over an answered call another node carried: from now on it is this proxy's
    /// answered call (`answered` and `started` as this node's clock says they were; `target`
    /// the tag reported in its [`super::Event::CallEnded`]). `None` when a call with this Call-ID is
    /// in a dialog here already.
    pub fn adopt(
        &mut self,
        call_id: &[u8],
        caller_tag: &[u8],
        d: &DialogState,
        started: Instant,
        answered: Instant,
        target: u32,
    ) -> Option<CallHandle> {
        let h = self.key.hash(&[call_id]);
        if self.dialogs.get(&h).is_some() {
            return None;
        }
        let (buf, ends) = DialogSides::pack(
            &d.caller_from,
            &d.callee_to,
            &d.caller_target,
            &d.callee_tag,
            &d.callee_target,
        );
        let caller_from_tag = Bytes::copy_from_slice(caller_tag);
        let cid = self.id();
        let local_tag = local_tag_of(&self.key, call_id, &caller_from_tag);
        let caller_peer = Peer::new(d.caller.0, d.caller.1);
        self.calls.insert(
            cid,
            Call {
                // No server transaction: the INVITE's ended on the node that took the call.
                server: u64::MAX,
                invite: None,
                call_id: Bytes::copy_from_slice(call_id),
                caller_peer,
                state: CallState::Answered,
                hunt: Hunt::adopted(CallHandle(cid), started, answered, target),
                caller_from_tag,
                linger_until: None,
                scheduled: None,
                sent_ringing: true,
                local_tag,
                dialog: Some(DialogSides {
                    buf,
                    ends,
                    caller_cseq: d.caller_cseq.saturating_add(CSEQ_JUMP),
                    callee_cseq: d.callee_cseq.saturating_add(CSEQ_JUMP),
                    caller_peer,
                    callee_peer: Peer::new(d.callee.0, d.callee.1),
                }),
                restore_from: None,
                hangup_at: None,
            },
        );
        self.dialogs.insert(h, cid);
        Some(CallHandle(cid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> DialogState {
        DialogState {
            caller_from: b"<sip:13800138000@carrier>;tag=abc".to_vec(),
            callee_to: b"<sip:4008001234@hotline>;tag=x:y 1".to_vec(),
            caller_target: b"sip:13800138000@127.0.0.1:5070".to_vec(),
            callee_tag: b"x:y 1".to_vec(),
            callee_target: b"sip:agent@127.0.0.1:5080;transport=tcp".to_vec(),
            caller_cseq: 1,
            callee_cseq: 0,
            caller: (Transport::Udp, "127.0.0.1:5070".parse().expect("addr")),
            callee: (Transport::Tcp, "[::1]:5080".parse().expect("addr")),
        }
    }

    #[test]
    fn dialog_state_round_trips_binary_safe() {
        let s = state();
        assert_eq!(DialogState::decode(&s.encode()), Some(s.clone()));
        let enc = s.encode();
        // Every truncation or corruption is refused, never misread.
        for cut in 0..enc.len() {
            assert_eq!(DialogState::decode(&enc[..cut]), None, "cut at {cut}");
        }
        assert_eq!(DialogState::decode(b"v2 1:a"), None);
        assert_eq!(DialogState::decode(b"v1 99999999999999999999:a"), None);
    }
}
