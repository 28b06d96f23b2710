//! Dialogs answered through Hotline: ACKs of 2xx and in-dialog requests relayed by loose
//! routing or by the dialog's remote targets, the BYE that ends a call, and the BYEs Hotline
//! sends itself (max duration, prepaid cut-off).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::msg::{Message, Method};
use crate::rewrite::{self, ForwardRequest};
use crate::uri::Uri;

use super::call::{call_deadline, CallState};
use super::txn_table::{Owner, Sent, TimerRef};
use super::{CallHandle, Event, Hangup, Peer, Proxy};

/// The dialog of an answered call. Its five byte strings share one buffer (one allocation
/// per answered call instead of five).
#[derive(Clone)]
pub(super) struct DialogSides {
    /// caller_from, callee_to, caller_target, callee_tag, callee_target, back to back.
    pub(super) buf: Bytes,
    /// End offsets of the five parts in `buf`.
    pub(super) ends: [u32; 5],
    /// Highest CSeq each side has used in the dialog.
    pub(super) caller_cseq: u32,
    pub(super) callee_cseq: u32,
    pub(super) caller_peer: Peer,
    pub(super) callee_peer: Peer,
}

impl DialogSides {
    /// The dialog a 2xx `answer` to the caller's `invite` makes: the callee's remote target is
    /// the answer's Contact (else `callee_uri`, the branch's Request-URI), the caller's the
    /// INVITE's Contact (else its Request-URI).
    pub(super) fn of_answer(
        invite: &Message,
        answer: &Message,
        callee_uri: &[u8],
        caller_peer: Peer,
        callee_peer: Peer,
    ) -> DialogSides {
        let callee_target = answer
            .contacts()
            .next()
            .and_then(addr_spec)
            .unwrap_or(callee_uri);
        let caller_target = invite
            .contacts()
            .next()
            .and_then(addr_spec)
            .unwrap_or_else(|| invite.request_uri());
        let (buf, ends) = DialogSides::pack(
            invite.from_value(),
            answer.to_value(),
            caller_target,
            answer.to_tag().unwrap_or(b""),
            callee_target,
        );
        DialogSides {
            buf,
            ends,
            caller_cseq: invite.cseq().0,
            callee_cseq: 0,
            caller_peer,
            callee_peer,
        }
    }

    /// From and To header values of the caller's INVITE / the answer (tags included), the
    /// remote targets of both sides and the callee's tag.
    pub(super) fn pack(
        caller_from: &[u8],
        callee_to: &[u8],
        caller_target: &[u8],
        callee_tag: &[u8],
        callee_target: &[u8],
    ) -> (Bytes, [u32; 5]) {
        let parts = [
            caller_from,
            callee_to,
            caller_target,
            callee_tag,
            callee_target,
        ];
        let mut buf = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0u32; 5];
        for (end, p) in ends.iter_mut().zip(parts) {
            buf.extend_from_slice(p);
            // Header values of one parsed message: far below u32::MAX.
            *end = buf.len() as u32;
        }
        (Bytes::from(buf), ends)
    }
    pub(super) fn part(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.buf.get(start..self.ends[i] as usize).unwrap_or(&[])
    }
    pub(super) fn caller_from(&self) -> &[u8] {
        self.part(0)
    }
    pub(super) fn callee_to(&self) -> &[u8] {
        self.part(1)
    }
    pub(super) fn caller_target(&self) -> &[u8] {
        self.part(2)
    }
    pub(super) fn callee_tag(&self) -> &[u8] {
        self.part(3)
    }
    pub(super) fn callee_target(&self) -> &[u8] {
        self.part(4)
    }
}

impl Proxy {
    pub(super) fn on_ack(&mut self, source: Peer, msg: Message) {
        // ACK for a 2xx: its own transaction, forwarded statelessly along the route set.
        if msg.to_tag().is_none() {
            self.stats.stray_acks += 1;
            return;
        }
        let Some((dest, pop, ruri)) = self.in_dialog_hop(&msg) else {
            self.stats.stray_acks += 1;
            return;
        };
        let dest = self.leaving_from(dest, source.local);
        self.new_via(self.loop_hash(&msg), dest);
        let out = rewrite::forward_request(
            &msg,
            &ForwardRequest {
                request_uri: ruri.as_deref(),
                via: &self.via,
                pop_route: pop > 0,
                pop_second_route: pop > 1,
                ..Default::default()
            },
        );
        self.send(dest, out);
    }

    /// Where an ACK of a 2xx or an in-dialog request goes: by its Route (loose routing: the hop
    /// and how many entries of ours to pop) or, without one naming us, by the dialog (the other
    /// side's remote target, which becomes the Request-URI).
    fn in_dialog_hop(&self, msg: &Message) -> Option<(Peer, u8, Option<Bytes>)> {
        match self.next_hop(msg) {
            Some((dest, pop)) => Some((dest, pop, None)),
            None => self
                .dialog_route(msg)
                .map(|(dest, ruri)| (dest, 0, Some(ruri))),
        }
    }

    /// Route an in-dialog request that carries no Route naming us by the dialog Hotline
    /// answered: to the other side's remote target (its Contact), with the Request-URI set to
    /// it. Requests for dialogs Hotline does not know get nothing: it is no open relay.
    pub(super) fn dialog_route(&self, msg: &Message) -> Option<(Peer, Bytes)> {
        let call = self.dialogs.get(&self.key.hash(&[msg.call_id()]))?;
        let c = self.calls.get(call)?;
        if c.call_id.as_ref() != msg.call_id() {
            return None;
        }
        let d = c.dialog.as_ref()?;
        let from = msg.from_tag().unwrap_or(b"");
        if from == c.caller_from_tag.as_ref() {
            Some((d.callee_peer, Bytes::copy_from_slice(d.callee_target())))
        } else if from == d.callee_tag() {
            Some((d.caller_peer, Bytes::copy_from_slice(d.caller_target())))
        } else {
            None
        }
    }

    pub(super) fn forward_in_dialog(&mut self, now: Instant, source: Peer, msg: Message, key: u64) {
        // One message, shared by the server transaction and this hop (no copy of it).
        let msg = Arc::new(msg);
        let sid = self.new_server(now, source, msg.clone(), key);
        if msg.max_forwards() == Some(0) {
            self.respond_local(now, sid, 483, "Too Many Hops", &[]);
            return;
        }
        let Some((dest, pop, ruri)) = self.in_dialog_hop(&msg) else {
            self.respond_local(now, sid, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        };
        let dest = self.leaving_from(dest, source.local);
        let cid = self.new_via(self.loop_hash(&msg), dest);
        let out = rewrite::forward_request(
            &msg,
            &ForwardRequest {
                request_uri: ruri.as_deref(),
                via: &self.via,
                pop_route: pop > 0,
                pop_second_route: pop > 1,
                source: Some(source.addr),
                ..Default::default()
            },
        );
        let out = Bytes::from(out);
        let sent = Sent::new(out, msg.call_id(), msg.cseq().1);
        self.note_cseq(&msg);
        if msg.method() == Some(Method::Bye) && !self.note_bye(now, &msg) {
            self.events.push_back(Event::ForeignBye {
                call_id: Bytes::copy_from_slice(msg.call_id()),
                from_tag: Bytes::copy_from_slice(msg.from_tag().unwrap_or(b"")),
                to_tag: Bytes::copy_from_slice(msg.to_tag().unwrap_or(b"")),
            });
        }
        if let Some(s) = self.servers.get_mut(&sid) {
            s.call = Some(cid);
        }
        self.start_client(now, cid, sent, dest, Owner::Relay { server: sid }, None);
    }

    /// Track the highest CSeq each side used, for the BYEs Hotline may have to send.
    pub(super) fn note_cseq(&mut self, msg: &Message) {
        let Some(&call) = self.dialogs.get(&self.key.hash(&[msg.call_id()])) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let from = msg.from_tag().unwrap_or(b"");
        let caller = from == c.caller_from_tag.as_ref();
        let Some(d) = c.dialog.as_mut() else {
            return;
        };
        let n = msg.cseq().0;
        if caller {
            d.caller_cseq = d.caller_cseq.max(n);
        } else {
            d.callee_cseq = d.callee_cseq.max(n);
        }
    }

    /// A BYE through us ends the call it belongs to. Returns false when no call of ours has
    /// this Call-ID (the dialog is another node's).
    pub(super) fn note_bye(&mut self, now: Instant, bye: &Message) -> bool {
        let h = self.key.hash(&[bye.call_id()]);
        let Some(&call) = self.dialogs.get(&h) else {
            return false;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        if c.call_id.as_ref() != bye.call_id() {
            return false;
        }
        if c.state != CallState::Answered {
            return true;
        }
        // Only a BYE of the answered dialog ends the call: a second 2xx (forked, racing)
        // made a dialog of its own, with the same Call-ID but another callee tag.
        let Some(callee_tag) = c.dialog.as_ref().map(|d| d.callee_tag()) else {
            return true;
        };
        let from = bye.from_tag().unwrap_or(b"");
        let to = bye.to_tag().unwrap_or(b"");
        let hangup = if from == c.caller_from_tag.as_ref() && to == callee_tag {
            Hangup::Caller
        } else if from == callee_tag && to == c.caller_from_tag.as_ref() {
            Hangup::Callee
        } else {
            return true;
        };
        self.end_answered(now, call, hangup);
        true
    }

    /// Answered call `call` ends now (`hangup`: who ended it): [`Event::CallEnded`], and its
    /// dialog lingers for late in-dialog requests.
    fn end_answered(&mut self, now: Instant, call: u64, hangup: Hangup) {
        let linger = now + self.cfg.dialog_linger;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.state = CallState::Ended;
        c.linger_until = Some(linger);
        let info = c.info(CallHandle(call), now, 200, hangup);
        self.events.push_back(Event::CallEnded(info));
        self.schedule(TimerRef::Call(call), Some(linger));
    }

    /// Cut an answered call at `at` (prepaid balance, max duration): BYE to both sides then.
    pub fn limit_call(&mut self, call: CallHandle, at: Instant) {
        let Some(c) = self.calls.get_mut(&call.0) else {
            return;
        };
        if c.state != CallState::Answered {
            return;
        }
        c.hangup_at = Some(c.hangup_at.map_or(at, |t| t.min(at)));
        let dl = call_deadline(c);
        self.schedule(TimerRef::Call(call.0), dl);
    }

    /// End an answered call now: BYE to the caller and to the callee, `CallEnded` with
    /// hangup `System`. Responses to the BYEs are absorbed.
    pub fn hangup(&mut self, now: Instant, call: CallHandle) {
        let Some(c) = self.calls.get_mut(&call.0) else {
            return;
        };
        if c.state != CallState::Answered {
            return;
        }
        let Some(d) = c.dialog.as_mut() else {
            return;
        };
        d.caller_cseq = d.caller_cseq.saturating_add(1);
        d.callee_cseq = d.callee_cseq.saturating_add(1);
        let d = d.clone();
        let call_id = c.call_id.clone();
        self.end_answered(now, call.0, Hangup::System);
        // Toward the callee we speak for the caller, and the other way round.
        self.send_local_request(
            now,
            b"BYE",
            d.callee_target(),
            d.callee_peer,
            d.caller_from(),
            d.callee_to(),
            &call_id,
            d.caller_cseq,
        );
        self.send_local_request(
            now,
            b"BYE",
            d.caller_target(),
            d.caller_peer,
            d.callee_to(),
            d.caller_from(),
            &call_id,
            d.callee_cseq,
        );
    }

    /// An answered call was ended elsewhere (a BYE went through another node of a cluster):
    /// forget it without sending anything; [`Event::CallEnded`] follows, with the caller as
    /// the side that hung up (as far as this proxy knows).
    pub fn ended_elsewhere(&mut self, now: Instant, call: CallHandle) {
        let Some(c) = self.calls.get_mut(&call.0) else {
            return;
        };
        if c.state != CallState::Answered {
            return;
        }
        self.end_answered(now, call.0, Hangup::Caller);
    }
}

/// The addr-spec of a name-addr or addr-spec header value (`"A" <sip:a@h>;tag=x` → `sip:a@h`),
/// if it parses as a URI.
pub(super) fn addr_spec(v: &[u8]) -> Option<&[u8]> {
    let spec = match v.iter().position(|&b| b == b'<') {
        Some(lt) => {
            let rest = &v[lt + 1..];
            &rest[..rest.iter().position(|&b| b == b'>')?]
        }
        // Without angle brackets, header parameters start at the first ';'.
        None => v[..v.iter().position(|&b| b == b';').unwrap_or(v.len())].trim_ascii(),
    };
    Uri::parse(spec).map(|_| spec)
}
