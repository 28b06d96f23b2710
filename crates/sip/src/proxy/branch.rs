//! Building a hunt branch: the caller's INVITE forwarded to a target with our Via, Record-Route
//! (double across listen addresses, RFC 5658), History-Info (RFC 7044), Diversion (RFC 5806)
//! and what the callee is shown as the caller.

use std::time::Instant;

use bytes::Bytes;

use crate::msg::Method;
use crate::rewrite::{self, ForwardRequest};

use super::call::{call_deadline, Call};
use super::hunt::{Branch, BranchState};
use super::plan::{BranchTarget, Diversion, Outcome, CAUSE_SERVICE_NUMBER};
use super::txn_table::{Owner, Sent, TimerRef};
use super::{CallHandle, Event, Proxy, Transport, TIMER_C};

/// The earlier attempts of a call that the hunt moved on from (in order): target URI, how it
/// ended, the code.
pub(super) fn moved_from(c: &Call) -> impl Iterator<Item = (&[u8], Outcome, u16)> + '_ {
    c.branches.iter().filter_map(|b| match b.ended {
        Some((o, code))
            if !matches!(
                o,
                Outcome::Answered | Outcome::CancelledByCaller | Outcome::CancelledByHunt
            ) =>
        {
            Some((b.target.uri.as_ref(), o, code))
        }
        _ => None,
    })
}

/// `uri` with `;name=value` added to its parameters (before any `?headers`).
pub(super) fn push_uri_with(out: &mut Vec<u8>, uri: &[u8], param: &[u8]) {
    match uri.iter().position(|&b| b == b'?') {
        Some(q) => {
            out.extend_from_slice(&uri[..q]);
            out.extend_from_slice(param);
            out.extend_from_slice(&uri[q..]);
        }
        None => {
            out.extend_from_slice(uri);
            out.extend_from_slice(param);
        }
    }
}

/// History-Info (RFC 7044) of a branch to `target` of call `c`: the 400 number as index 1,
/// every earlier target as 1.1, 1.2 ... with the response that ended it as an escaped Reason
/// header field (`?Reason=SIP%3Bcause%3D486`; 408 for a ring timeout), then `target` with the
/// RFC 4458 `cause` URI parameter of the move: the last earlier attempt's (486 busy, 408 no
/// answer, 503 unreachable, 480 deflection), or RFC 8119's 380 (service number translation)
/// for the first target. Each is `mp=1`: mapped from the 400 number.
pub(super) fn history_info(v: &mut Vec<u8>, ruri: &[u8], c: &Call, target: &[u8]) {
    v.clear();
    v.push(b'<');
    v.extend_from_slice(ruri);
    v.extend_from_slice(b">;index=1");
    let mut n = 0;
    let mut cause = CAUSE_SERVICE_NUMBER;
    for (uri, outcome, code) in moved_from(c) {
        n += 1;
        v.extend_from_slice(b", <");
        let sep: &[u8] = if uri.contains(&b'?') { b"&" } else { b"?" };
        v.extend_from_slice(uri);
        v.extend_from_slice(sep);
        v.extend_from_slice(format!("Reason=SIP%3Bcause%3D{code}>;index=1.{n};mp=1").as_bytes());
        cause = outcome.diversion_reason().1;
    }
    v.extend_from_slice(b", <");
    push_uri_with(v, target, format!(";cause={cause}").as_bytes());
    v.extend_from_slice(format!(">;index=1.{};mp=1", n + 1).as_bytes());
}

/// Diversion (RFC 5806) of a branch of call `c`: one entry per diversion, most recent first:
/// every earlier target with the reason the hunt left it (`user-busy`, `no-answer`,
/// `unavailable`, `deflection`), then the 400 number with `d.reason`.
pub(super) fn diversion(v: &mut Vec<u8>, d: &Diversion, c: &Call) {
    v.clear();
    let earlier: Vec<(&[u8], Outcome, u16)> = moved_from(c).collect();
    for (uri, outcome, _) in earlier.iter().rev() {
        v.push(b'<');
        v.extend_from_slice(uri);
        v.extend_from_slice(b">;reason=");
        v.extend_from_slice(outcome.diversion_reason().0.as_bytes());
        v.extend_from_slice(b";counter=1, ");
    }
    v.extend_from_slice(&d.from);
    v.extend_from_slice(b";reason=");
    v.extend_from_slice(d.reason.as_bytes());
    v.extend_from_slice(b";counter=1");
}

impl Proxy {
    pub(super) fn start_branch(&mut self, now: Instant, call: u64, mut target: BranchTarget) {
        let Some((lh, inbound)) = self
            .calls
            .get(&call)
            .and_then(|c| Some((self.loop_hash(c.invite.as_deref()?), c.caller_peer.local)))
        else {
            return;
        };
        target.dest = self.leaving_from(target.dest, inbound);
        let cid = self.new_via(lh, target.dest);
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let Some(invite) = c.invite.as_deref() else {
            return;
        };
        if c.plan.history_info {
            history_info(&mut self.history, invite.request_uri(), c, &target.uri);
        }
        if let Some(d) = &c.plan.diversion {
            diversion(&mut self.diversion, d, c);
        }
        let history = c.plan.history_info.then_some(self.history.as_slice());
        let diversion = c
            .plan
            .diversion
            .is_some()
            .then_some(self.diversion.as_slice());
        let rr_in = self.record_route(c.caller_peer, target.dest.transport);
        // Out through another listen address than the call came in on (another IP family,
        // another network): double Record-Route (RFC 5658), the callee's side on top, so each
        // side reaches us at the address it can.
        let rr_double;
        let rr: &str = if target.dest.local == c.caller_peer.local {
            rr_in
        } else {
            let out = self.iface(target.dest.local);
            let both_tcp = c.caller_peer.transport == Transport::Tcp
                && target.dest.transport == Transport::Tcp;
            let top = if both_tcp { &out.rr_tcp } else { &out.rr_udp };
            rr_double = format!("{top}, {rr_in}");
            &rr_double
        };
        let pop = invite.routes().next().is_some_and(|r| self.uri_is_local(r));
        // 来电显示: what this callee is shown as the caller.
        let shown = c
            .plan
            .caller_id_by_target
            .iter()
            .find(|(t, _)| *t == target.tag)
            .map_or(&c.plan.caller_id, |(_, p)| p);
        let from = shown.from.as_ref().map(|(display, user)| {
            let mut v = Vec::with_capacity(64);
            v.push(b'"');
            v.extend_from_slice(display);
            v.extend_from_slice(b"\" <sip:");
            v.extend_from_slice(user);
            v.push(b'@');
            v.extend_from_slice(self.iface(target.dest.local).sent_by.as_bytes());
            v.push(b'>');
            if let Some(tag) = invite.from_tag() {
                v.extend_from_slice(b";tag=");
                v.extend_from_slice(tag);
            }
            v
        });
        let asserted = shown.asserted.as_deref();
        let mut remove: Vec<&str> = Vec::new();
        let drop_asserted = asserted.is_some() || shown.hide_asserted;
        let remove_headers: &[&str] = if from.is_some() || drop_asserted {
            remove.extend(c.plan.remove_headers.iter().copied());
            if from.is_some() {
                remove.push("From");
            }
            if drop_asserted {
                remove.push("P-Asserted-Identity");
            }
            &remove
        } else {
            &c.plan.remove_headers
        };
        // The plan's headers plus Diversion and History-Info (and the shown caller): on the
        // stack unless the plan has many.
        let n = c.plan.add_headers.len()
            + usize::from(history.is_some())
            + usize::from(diversion.is_some())
            + usize::from(from.is_some())
            + usize::from(asserted.is_some());
        let mut inline: [(&str, &[u8]); 8] = [("", &[]); 8];
        let mut spilled: Vec<(&str, &[u8])> = Vec::new();
        let extra = c
            .plan
            .add_headers
            .iter()
            .map(|(n, v)| (*n, v.as_slice()))
            .chain(diversion.map(|d| ("Diversion", d)))
            .chain(history.map(|h| ("History-Info", h)))
            .chain(from.as_deref().map(|f| ("From", f)))
            .chain(asserted.map(|a| ("P-Asserted-Identity", a)));
        let add: &[(&str, &[u8])] = if n <= inline.len() {
            for (slot, h) in inline.iter_mut().zip(extra) {
                *slot = h;
            }
            &inline[..n]
        } else {
            spilled.extend(extra);
            &spilled
        };
        let out = rewrite::forward_request(
            invite,
            &ForwardRequest {
                request_uri: Some(&target.uri),
                via: &self.via,
                record_route: Some(rr.as_bytes()),
                pop_route: pop,
                pop_second_route: false,
                source: Some(c.caller_peer.addr),
                add_headers: add,
                remove_headers,
            },
        );
        let out = Bytes::from(out);
        // The call's Call-ID is shared (cloned), not copied, by its branches.
        let sent = Sent {
            bytes: out,
            call_id: c.call_id.clone(),
            method: Method::Invite,
            parsed: None,
        };
        self.start_client(now, cid, sent, target.dest, Owner::Branch { call }, None);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.attempts += 1;
        let attempt = c.attempts;
        let ring_deadline = if c.plan.ring_from_18x {
            None
        } else {
            Some(now + target.ring_timeout.min(TIMER_C))
        };
        self.events.push_back(Event::AttemptStarted {
            call: CallHandle(call),
            attempt,
            target: target.tag,
        });
        c.branches.push(Branch {
            client: cid,
            target,
            attempt,
            state: BranchState::Trying,
            started: now,
            first_ring: None,
            ring_deadline,
            cancel_pending: None,
            cancel_sent: false,
            trying: false,
            reported: false,
            ended: None,
        });
        let dl = call_deadline(c);
        self.schedule(TimerRef::Call(call), dl);
    }
}
