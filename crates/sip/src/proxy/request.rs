//! Requests that start something: the matching of a request to its server transaction, new
//! out-of-dialog requests (scanner drop, local OPTIONS, 483, 482, overload 503, 405), the new
//! INVITE that becomes a call, and CANCEL (§9.2, §16.10).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::msg::{Message, Method};

use super::addr::BRANCH_PREFIX;
use super::call::{Call, CallState};
use super::hunt::Hunt;
use super::local::local_tag;
use super::{eq_ci, CallHandle, Event, Peer, Proxy};

impl Proxy {
    pub(super) fn on_request(&mut self, now: Instant, source: Peer, msg: Message) {
        let method = msg.method().unwrap_or(Method::Other);
        let key = self.server_key(&msg);
        // Retransmission or ACK of an existing server transaction.
        if let Some(&sid) = self.server_keys.get(&key) {
            if self.on_server_match(now, sid, method) {
                // An ACK that reused the INVITE's branch, in Accepted: the ACK of the 2xx,
                // which belongs to the TU (RFC 6026 §7.1) and goes on end to end.
                self.on_ack(source, msg);
            }
            return;
        }
        match method {
            Method::Ack => self.on_ack(source, msg),
            Method::Cancel => self.on_cancel(now, source, msg, key),
            _ => {
                let in_dialog = msg.to_tag().is_some();
                if in_dialog {
                    self.forward_in_dialog(now, source, msg, key);
                } else {
                    self.on_initial(now, source, msg, key, method);
                }
            }
        }
    }

    pub(super) fn on_initial(
        &mut self,
        now: Instant,
        source: Peer,
        msg: Message,
        key: u64,
        method: Method,
    ) {
        if self.is_scanner(&msg) {
            self.stats.scanners += 1;
            return;
        }
        // One message, shared by the server transaction, the call and the user's event.
        let request = Arc::new(msg);
        let msg: &Message = &request;
        // Parsed once. A parsed Request-URI has no white space and no '<' (Message::parse
        // checks), so this is what `uri_is_local` would find.
        let ruri = msg.request_uri_parsed();
        let ruri_local = match ruri {
            Some(u) => !u.host.is_empty() && self.is_local(u.host, u.port),
            None => self.uri_is_local(msg.request_uri()),
        };
        let has_user = ruri.is_some_and(|u| !u.user.is_empty());
        let sid = self.new_server(now, source, request.clone(), key);
        if ruri.is_none() {
            // A Request-URI that is no URI (e.g. `sip:2001:db8::10`, an unbracketed IPv6
            // address: RFC 5118 4.2) or one of a scheme Hotline does not serve.
            let ruri = msg.request_uri();
            let known = [&b"sip:"[..], b"sips:", b"tel:"]
                .iter()
                .any(|p| ruri.len() >= p.len() && eq_ci(&ruri[..p.len()], p));
            if known {
                self.respond_local(now, sid, 400, "Malformed Request-URI", &[]);
            } else {
                self.respond_local(now, sid, 416, "Unsupported URI Scheme", &[]);
            }
            return;
        }
        if method == Method::Options && (ruri_local || !has_user) {
            let allow = self.cfg.allow;
            self.respond_local(
                now,
                sid,
                200,
                "OK",
                &[("Allow", allow.as_bytes()), ("Accept", b"application/sdp")],
            );
            return;
        }
        if msg.max_forwards() == Some(0) {
            self.stats.too_many_hops += 1;
            self.respond_local(now, sid, 483, "Too Many Hops", &[]);
            return;
        }
        if self.is_loop(msg) {
            self.stats.loops += 1;
            self.respond_local(now, sid, 482, "Loop Detected", &[]);
            return;
        }
        match method {
            Method::Invite if self.overload.is_some() => {
                self.stats.overload_shed += 1;
                let secs = self.overload.unwrap_or(5).to_string();
                self.respond_local(
                    now,
                    sid,
                    503,
                    "Service Unavailable",
                    &[("Retry-After", secs.as_bytes())],
                );
            }
            Method::Invite => self.on_invite(now, sid, source, request),
            Method::Options => {
                let allow = self.cfg.allow;
                self.respond_local(now, sid, 200, "OK", &[("Allow", allow.as_bytes())]);
            }
            _ => {
                let allow = self.cfg.allow;
                self.respond_local(
                    now,
                    sid,
                    405,
                    "Method Not Allowed",
                    &[("Allow", allow.as_bytes())],
                );
            }
        }
    }

    pub(super) fn is_scanner(&self, msg: &Message) -> bool {
        let Some(ua) = msg.header("User-Agent") else {
            return false;
        };
        self.cfg.scanner_user_agents.iter().any(|s| {
            ua.windows(s.len())
                .any(|w| w.eq_ignore_ascii_case(s.as_bytes()))
        })
    }

    pub(super) fn is_loop(&self, msg: &Message) -> bool {
        let mut ours = msg.vias().filter(|v| self.is_local(v.host, v.port));
        let Some(first) = ours.next() else {
            return false;
        };
        let h = format!("{:016x}", self.loop_hash(msg));
        std::iter::once(first).chain(ours).any(|v| {
            v.branch
                .and_then(|b| b.strip_prefix(BRANCH_PREFIX.as_bytes()))
                .is_some_and(|rest| rest.starts_with(h.as_bytes()))
        })
    }

    pub(super) fn on_invite(&mut self, now: Instant, sid: u64, source: Peer, shared: Arc<Message>) {
        let msg: &Message = &shared;
        // 100 Trying at once: this proxy always runs a hunt that may take time (§16.2).
        self.respond_local(now, sid, 100, "Trying", &[]);
        let cid = self.id();
        // Call-ID and the caller's tag in one buffer; every later clone (branches, events)
        // shares it.
        let (call_id, caller_from_tag) = {
            let (id, tag) = (msg.call_id(), msg.from_tag().unwrap_or(b""));
            let mut both = Vec::with_capacity(id.len() + tag.len());
            both.extend_from_slice(id);
            both.extend_from_slice(tag);
            let both = Bytes::from(both);
            (both.slice(..id.len()), both.slice(id.len()..))
        };
        let local_tag = local_tag(&self.key, msg);
        self.calls.insert(
            cid,
            Call {
                server: sid,
                invite: Some(shared.clone()),
                call_id,
                caller_peer: source,
                state: CallState::Deciding,
                hunt: Hunt::new(CallHandle(cid), now),
                caller_from_tag,
                linger_until: None,
                scheduled: None,
                sent_ringing: false,
                local_tag,
                dialog: None,
                restore_from: None,
                hangup_at: None,
            },
        );
        if let Some(s) = self.servers.get_mut(&sid) {
            s.call = Some(cid);
        }
        self.events.push_back(Event::Incoming {
            call: CallHandle(cid),
            request: shared,
            source,
        });
    }

    pub(super) fn on_cancel(&mut self, now: Instant, source: Peer, msg: Message, key: u64) {
        // The INVITE it cancels has the same branch and sent-by (§9.2).
        let via = msg.top_via();
        let invite_key = self.via_key(&via, b"INVITE");
        let sid = self.new_server(now, source, Arc::new(msg), key);
        let Some(&inv_sid) = self.server_keys.get(&invite_key) else {
            self.respond_local(now, sid, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        };
        self.respond_local(now, sid, 200, "OK", &[]);
        let call = self.servers.get(&inv_sid).and_then(|s| s.call);
        let Some(call) = call else { return };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if !matches!(c.state, CallState::Deciding | CallState::Hunting) {
            return;
        }
        c.hunt.caller_cancelled(now, &mut self.events);
        self.send_cancels(now, call);
        self.finish_unanswered(now, call, Some("Request Terminated"));
    }
}
