//! Building a hunt branch: the caller's INVITE forwarded to a target with our Via, Record-Route
//! (double across listen addresses, RFC 5658), History-Info (RFC 7044), Diversion (RFC 5806)
//! and what the callee is shown as the caller.

use std::time::Instant;

use bytes::Bytes;

use crate::msg::Method;
use crate::rewrite::{self, ForwardRequest};

use super::call::call_deadline;
use super::hunt::Hunt;
use super::plan::{Diversion, Outcome, CAUSE_SERVICE_NUMBER};
use super::txn_table::{Owner, Sent, TimerRef};
use super::{Proxy, Transport};

/// `uri` with `;cause=<cause>` added to its parameters (before any `?headers`).
fn push_uri_with_cause(out: &mut Vec<u8>, uri: &[u8], cause: u16) {
    let (head, headers) = match uri.iter().position(|&b| b == b'?') {
        Some(q) => uri.split_at(q),
        None => (uri, &[][..]),
    };
    out.extend_from_slice(head);
    out.extend_from_slice(b";cause=");
    rewrite::push_dec(out, u64::from(cause), 0);
    out.extend_from_slice(headers);
}

/// History-Info (RFC 7044) of a branch to `target` of `hunt`: the 400 number as index 1,
/// every earlier target as 1.1, 1.2 ... with the response that ended it as an escaped Reason
/// header field (`?Reason=SIP%3Bcause%3D486`; 408 for a ring timeout), then `target` with the
/// RFC 4458 `cause` URI parameter of the move: the last earlier attempt's (486 busy, 408 no
/// answer, 503 unreachable, 480 deflection), or RFC 8119's 380 (service number translation)
/// for the first target. Each is `mp=1`: mapped from the 400 number.
pub(super) fn history_info(v: &mut Vec<u8>, ruri: &[u8], hunt: &Hunt, target: &[u8]) {
    v.clear();
    v.push(b'<');
    v.extend_from_slice(ruri);
    v.extend_from_slice(b">;index=1");
    let mut n: u64 = 0;
    let mut cause = CAUSE_SERVICE_NUMBER;
    for (uri, outcome, code) in hunt.moved_from() {
        n += 1;
        v.extend_from_slice(b", <");
        let sep: &[u8] = if uri.contains(&b'?') { b"&" } else { b"?" };
        v.extend_from_slice(uri);
        v.extend_from_slice(sep);
        v.extend_from_slice(b"Reason=SIP%3Bcause%3D");
        rewrite::push_dec(v, u64::from(code), 0);
        v.extend_from_slice(b">;index=1.");
        rewrite::push_dec(v, n, 0);
        v.extend_from_slice(b";mp=1");
        cause = outcome.diversion_reason().1;
    }
    v.extend_from_slice(b", <");
    push_uri_with_cause(v, target, cause);
    v.extend_from_slice(b">;index=1.");
    rewrite::push_dec(v, n + 1, 0);
    v.extend_from_slice(b";mp=1");
}

/// Diversion (RFC 5806) of a branch of `hunt`: one entry per diversion, most recent first:
/// every earlier target with the reason the hunt left it (`user-busy`, `no-answer`,
/// `unavailable`, `deflection`), then the 400 number with `d.reason`.
pub(super) fn diversion(v: &mut Vec<u8>, d: &Diversion, hunt: &Hunt) {
    v.clear();
    let earlier: Vec<(&[u8], Outcome, u16)> = hunt.moved_from().collect();
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
    /// Build and send the INVITE of branch `bi` of `call`, which its hunt has just started:
    /// the caller's INVITE with the branch's Request-URI, our Via (its client transaction's
    /// id), Record-Route and the plan's headers.
    pub(super) fn start_branch(&mut self, now: Instant, call: u64, bi: usize) {
        let Some((lh, inbound, dest, cid)) = self.calls.get(&call).and_then(|c| {
            let b = c.hunt.branches.get(bi)?;
            let lh = self.loop_hash(c.invite.as_deref()?);
            Some((lh, c.caller_peer.local, b.target.dest, b.client))
        }) else {
            return;
        };
        let dest = self.leaving_from(dest, inbound);
        self.write_via(cid, lh, dest);
        let Some(b) = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.hunt.branches.get_mut(bi))
        else {
            return;
        };
        b.target.dest = dest;
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let Some(invite) = c.invite.as_deref() else {
            return;
        };
        let Some(target) = c.hunt.branches.get(bi).map(|b| &b.target) else {
            return;
        };
        let plan = &c.hunt.plan;
        if plan.history_info {
            history_info(
                &mut self.history,
                invite.request_uri(),
                &c.hunt,
                &target.uri,
            );
        }
        if let Some(d) = &plan.diversion {
            diversion(&mut self.diversion, d, &c.hunt);
        }
        let history = plan.history_info.then_some(self.history.as_slice());
        let diversion = plan
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
        let shown = plan
            .caller_id_by_target
            .iter()
            .find(|(t, _)| *t == target.tag)
            .map_or(&plan.caller_id, |(_, p)| p);
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
            remove.extend(plan.remove_headers.iter().copied());
            if from.is_some() {
                remove.push("From");
            }
            if drop_asserted {
                remove.push("P-Asserted-Identity");
            }
            &remove
        } else {
            &plan.remove_headers
        };
        // The plan's headers plus Diversion and History-Info (and the shown caller): on the
        // stack unless the plan has many.
        let n = plan.add_headers.len()
            + usize::from(history.is_some())
            + usize::from(diversion.is_some())
            + usize::from(from.is_some())
            + usize::from(asserted.is_some());
        let mut inline: [(&str, &[u8]); 8] = [("", &[]); 8];
        let mut spilled: Vec<(&str, &[u8])> = Vec::new();
        let extra = plan
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
        self.start_client(now, cid, sent, dest, Owner::Branch { call }, None);
        let dl = self.calls.get(&call).and_then(call_deadline);
        self.schedule(TimerRef::Call(call), dl);
    }
}

#[cfg(test)]
mod tests {
    use super::push_uri_with_cause;

    #[test]
    fn cause_goes_before_uri_headers() {
        let with = |uri: &[u8], cause| {
            let mut v = Vec::new();
            push_uri_with_cause(&mut v, uri, cause);
            String::from_utf8(v).expect("ascii")
        };
        assert_eq!(
            with(b"sip:1001@10.0.0.1", 380),
            "sip:1001@10.0.0.1;cause=380"
        );
        assert_eq!(
            with(b"sip:1001@h;user=phone", 486),
            "sip:1001@h;user=phone;cause=486"
        );
        assert_eq!(
            with(b"sip:1001@h?X=1&Y=2", 408),
            "sip:1001@h;cause=408?X=1&Y=2"
        );
        assert_eq!(with(b"tel:+861001", 65535), "tel:+861001;cause=65535");
    }
}
