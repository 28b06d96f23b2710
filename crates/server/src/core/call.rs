//! Call admission: a new INVITE goes through named phases (source, number, the cluster's
//! shared state, routing, prepaid, trunk limits), each returning `Result<_, Refusal>`; the
//! first refusal ends the call with its code, CDR reason and metric (`Core::refuse`), the
//! last phase hands the fork plan to the proxy.

use super::*;

impl Core {
    /// Phase 1, the source: not while stopping; from a known trunk when trunks are listed.
    fn phase_source(&self, snap: &Snapshot, trunk: Option<&str>) -> Result<(), Refusal> {
        if self.draining {
            let r = Refusal::new(Disposition::Failed, "shutting_down", 503);
            return Err(r.reason("Service Unavailable - Shutting Down"));
        }
        if !snap.settings.trunks.is_empty() && trunk.is_none() {
            let r = Refusal::new(Disposition::BlockedList, "unknown_trunk", 403);
            return Err(r.reason("Forbidden - Unknown Trunk"));
        }
        Ok(())
    }

    /// Phase 5, prepaid: a prepaid number whose balance cannot pay a minute is refused with
    /// the configured code.
    fn phase_prepaid(
        &self,
        snap: &Snapshot,
        called: &Number400,
        ts: jiff::Timestamp,
    ) -> Result<(), Refusal> {
        let refused = snap.settings.billing.as_ref().and_then(|b| {
            self.shared
                .with_prepaid(|p| p.admit(called.as_str(), ts))
                .and_then(|ok| (!ok).then_some(b.refuse_code))
        });
        match refused {
            Some(code) => Err(Refusal::new(Disposition::Failed, "prepaid", code)
                .why("prepaid balance exhausted")
                .reason("Payment Required")),
            None => Ok(()),
        }
    }

    /// Phase 6, the trunk's limits (`max_cps`, `max_calls`): in a cluster answered with the
    /// decision (the slot is already this call's), else this node's. Admitted: the call holds
    /// the trunk's slot until it ends.
    fn phase_trunk(
        &self,
        snap: &Snapshot,
        trunk: Option<String>,
        meta: &mut CallMeta,
        now: Instant,
    ) -> Result<(), Refusal> {
        let Some(name) = trunk else {
            return Ok(());
        };
        let why = match meta.cl.trunk.take() {
            Some(v) => v,
            None => self.shared.trunk_admit(snap, &name, now),
        };
        if let Some(why) = why {
            return Err(Refusal::new(Disposition::Failed, "trunk_limit", 503)
                .why(why)
                .retry_after_1s());
        }
        // The call's own copy of the name, taken over (not copied again).
        meta.trunk_slot = Some(name);
        Ok(())
    }

    /// A new INVITE: the call's record (caller and region first, so that every refusal says
    /// where the caller is), then the phases: source, number, the cluster's shared state
    /// (parked while Redis answers), routing, and in [`Core::decide`] prepaid and trunk.
    pub(super) fn on_incoming(
        &mut self,
        now: Instant,
        call: CallHandle,
        req: &Message,
        source: Peer,
    ) {
        let snap = self.shared.current.load();
        let mut record = CallRecord::empty(self.clock.ts(now));
        record.record_id = self.next_id("c");
        record.call_id = String::from_utf8_lossy(req.call_id()).into_owned();
        record.config_generation = snap.table.generation();
        record.config_hash = snap.table.hash().to_owned();
        let caller_raw = req
            .from_user()
            .map(|u| String::from_utf8_lossy(u).into_owned())
            .unwrap_or_default();
        record.caller_raw = caller_raw.clone();
        // Who is screened and routed: the From number, or (anonymous From, e.g. RFC 3323
        // privacy) the P-Asserted-Identity a trusted trunk vouches for; else anonymous.
        let trusted_source = snap
            .settings
            .trunk_for(source.addr.ip())
            .is_some_and(|t| t.trusted);
        let (caller_raw, caller) = screening_identity(req, caller_raw, trusted_source);
        // The caller and its region first, before anything may refuse the call: every record
        // (blocked, rate-limited, unknown trunk ...) says where the caller is (ad reports).
        caller_fields(&mut record, &snap.table, &caller);
        let trunk = snap
            .settings
            .trunks
            .iter()
            .find(|t| t.contains(source.addr.ip()))
            .map(|t| t.name.clone());
        record.trunk = trunk.clone().unwrap_or_default();
        let mut meta = CallMeta {
            snap: snap.clone(),
            record,
            targets: IdHashMap::default(),
            answered: None,
            disposition: None,
            ring: Duration::from_secs(20),
            trunk_slot: None,
            reserved_minutes: 0,
            answered_at: None,
            cl: CallState::default(),
        };
        let called = match self
            .phase_source(&snap, trunk.as_deref())
            .and_then(|()| phase_number(req, &mut meta.record))
        {
            Ok(called) => called,
            Err(r) => return self.refuse(now, call, meta, r),
        };
        meta.record.number = called.as_str().to_owned();
        // A 400 number's carrier is its prefix; a 1010 number's the config's (set once routed
        // or refused by its screening, below).
        meta.record.carrier = called
            .carrier()
            .or_else(|| snap.table.number(called).map(|e| e.carrier))
            .map(|c| c.name_zh().to_owned())
            .unwrap_or_default();
        let ivr_key = self.ivr_key(&snap, req, source);
        let callback = snap
            .settings
            .trunk_for(source.addr.ip())
            .is_some_and(|t| t.role == TrunkRole::MediaServer);
        let ctx = CallContext {
            called,
            caller: &caller_raw,
            trunk: trunk.as_deref(),
            ivr_key,
            seed: call_seed(req.call_id()),
            callback,
        };
        let ts = self.clock.ts(now);
        let Some(meta) = self.park(now, call, req, meta, &ctx, ts) else {
            // Waiting for Redis, or refused because it is down.
            return;
        };
        let decision = resolve(&snap.table, &self.shared.live, &ctx, ts);
        let ident = ReqIdentity::of(req);
        self.decide(now, call, meta, &snap, decision, &called, trunk, ident, ts);
    }

    /// Carry out a routing decision: reject, or (after the prepaid and trunk checks) hunt.
    #[allow(clippy::too_many_arguments)]
    /// Phase 4, the routing decision, then phases 5 and 6 (prepaid, trunk) and the hunt.
    pub(super) fn decide(
        &mut self,
        now: Instant,
        call: CallHandle,
        mut meta: CallMeta,
        snap: &Arc<Snapshot>,
        decision: Decision<'_>,
        called: &Number400,
        trunk: Option<String>,
        ident: ReqIdentity,
        ts: jiff::Timestamp,
    ) {
        match decision {
            Decision::Reject(r) => {
                meta.disposition = Some(reject_disposition(r.cause));
                meta.record.reason = r.reason.to_owned();
                self.calls.insert(call, meta);
                self.shared.metrics.rejected(r.cause);
                self.proxy.reject(now, call, r.code, r.reason);
            }
            Decision::Route(routed) => {
                meta.record.company = routed.number.company.clone();
                meta.record.matched_rule = routed.rule.to_string();
                let trusted = snap
                    .settings
                    .trunks
                    .iter()
                    .any(|t| Some(&t.name) == trunk.as_ref() && t.trusted);
                let mut plan = fork_plan(&snap.table, &routed, called);
                if !trusted {
                    // Identity is asserted only by trusted trunks (RFC 3325 trust domain).
                    plan.remove_headers = vec!["P-Asserted-Identity", "P-Preferred-Identity"];
                }
                set_caller_id(&mut plan, &snap.table, &routed, ident, trusted);
                meta.ring = plan
                    .groups
                    .iter()
                    .flat_map(|g| g.targets.iter().map(|t| t.ring_timeout))
                    .max()
                    .unwrap_or(meta.ring);
                let admitted = self
                    .phase_prepaid(snap, called, ts)
                    .and_then(|()| self.phase_trunk(snap, trunk, &mut meta, now));
                if let Err(r) = admitted {
                    self.refuse(now, call, meta, r);
                    return;
                }
                self.calls.insert(call, meta);
                let (shared, calls, me) = (&self.shared, &mut self.calls, self.shard);
                let inbox = &self.dispatch;
                self.proxy.route_gated(now, call, plan, &mut |c, tag| {
                    gate(shared, calls, inbox, me, c, tag, ts)
                });
            }
        }
    }

    /// The IVR key of a call (`;ivr=N` in the Request-URI), taken only from a media-server
    /// trunk: from anyone else it is ignored (and counted), or a caller could dial a
    /// department directly.
    pub(super) fn ivr_key(&self, snap: &Snapshot, req: &Message, source: Peer) -> Option<u8> {
        let key = req
            .request_uri_parsed()
            .and_then(|u| u.param("ivr"))
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.parse::<u8>().ok())?;
        let media = snap
            .settings
            .trunk_for(source.addr.ip())
            .is_some_and(|t| t.role == TrunkRole::MediaServer);
        if !media {
            self.shared.metrics.ivr_key_ignored();
            tracing::debug!(source = %source.addr, key, "ivr key ignored: not from a media server");
            return None;
        }
        Some(key)
    }

    /// Vet a target's 3xx Contacts. Toll-fraud rule: a redirect may only lead to a host that
    /// is already a configured target's next hop, and a numeric user part must be a domestic
    /// number (mobile or fixed line); anything else is refused and logged.
    pub(super) fn on_redirect(&mut self, call: CallHandle, contacts: &[Bytes]) {
        let Some(meta) = self.calls.get(&call) else {
            return;
        };
        let table = &meta.snap.table;
        let mut targets = Vec::new();
        for c in contacts {
            let Some(peer) = Proxy::resolve_uri(c) else {
                tracing::warn!(contact = %String::from_utf8_lossy(c), "redirect refused: not an IP-literal next hop");
                continue;
            };
            let Some(t) = table.targets().iter().find(|t| t.next_hop == peer.addr) else {
                tracing::warn!(contact = %String::from_utf8_lossy(c), "redirect refused: host is not a configured target");
                continue;
            };
            let user = Uri::parse(c).map(|u| u.user).unwrap_or(b"");
            if !uri_user_allowed(&String::from_utf8_lossy(user)) {
                tracing::warn!(contact = %String::from_utf8_lossy(c), "redirect refused: international or premium-rate number");
                continue;
            }
            targets.push(BranchTarget {
                uri: c.clone(),
                dest: peer,
                ring_timeout: meta.ring,
                tag: t.id.0,
            });
        }
        self.proxy.add_targets(call, targets);
    }
}

pub(super) fn reject_disposition(cause: RejectCause) -> Disposition {
    match cause {
        RejectCause::BlockedRate => Disposition::BlockedRate,
        RejectCause::UnknownNumber | RejectCause::NotA400 | RejectCause::Suspended => {
            Disposition::Failed
        }
        _ => Disposition::BlockedList,
    }
}

/// A per-call seed for the random and weighted strategies.
pub(super) fn call_seed(call_id: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    call_id.hash(&mut h);
    h.finish()
}

/// The number a call is screened and routed by: the From user if it is a usable number; if
/// not (anonymous), the P-Asserted-Identity's from a trusted trunk (RFC 3325: the network
/// asserts it, the caller only asked not to show it) when that is one; else the From user as
/// it is (the routing core then treats the caller as anonymous). With it, its normalisation
/// (worked out here anyway, so the record's caller fields need not do it again).
pub(super) fn screening_identity(
    req: &Message,
    from_user: String,
    trusted: bool,
) -> (String, hotline_route::Caller) {
    let from = normalize_caller(&from_user);
    if !trusted || from.kind != hotline_route::CallerKind::Unknown {
        return (from_user, from);
    }
    let asserted = req
        .headers("P-Asserted-Identity")
        .filter_map(Uri::parse_name_addr)
        .map(|u| String::from_utf8_lossy(u.user).into_owned())
        .map(|u| {
            let c = normalize_caller(&u);
            (u, c)
        })
        .find(|(_, c)| c.kind != hotline_route::CallerKind::Unknown);
    asserted.unwrap_or((from_user, from))
}

/// The normalised caller and its region (province, city) on a call record: the same
/// normalisation and region lookup the routing core screens and routes with.
pub(super) fn caller_fields(
    record: &mut CallRecord,
    table: &hotline_route::RouteTable,
    caller: &hotline_route::Caller,
) {
    record.caller = caller.normalized().to_owned();
    if let Some(region) = table.regions().lookup(caller) {
        record.caller_province = region.province.to_owned();
        record.caller_city = region.city.to_owned();
    }
}

/// How a new call is refused before (or instead of) its hunt: the CDR's disposition and
/// reason, the `hotline_calls_rejected_total` cause, and the response sent.
pub(super) struct Refusal {
    disposition: Disposition,
    why: Option<String>,
    cause: &'static str,
    code: u16,
    reason: &'static str,
    headers: &'static [(&'static str, &'static [u8])],
}

impl Refusal {
    pub(super) fn new(disposition: Disposition, cause: &'static str, code: u16) -> Refusal {
        Refusal {
            disposition,
            why: None,
            cause,
            code,
            reason: "Service Unavailable",
            headers: &[],
        }
    }
    /// The CDR's `reason`.
    pub(super) fn why(mut self, why: impl Into<String>) -> Refusal {
        self.why = Some(why.into());
        self
    }
    /// The response's reason phrase.
    pub(super) fn reason(mut self, reason: &'static str) -> Refusal {
        self.reason = reason;
        self
    }
    /// `Retry-After: 1` on the response (a limit that frees up soon).
    pub(super) fn retry_after_1s(mut self) -> Refusal {
        self.headers = &[("Retry-After", b"1")];
        self
    }
}

impl Core {
    /// Refuse a new call as `r` says; its CDR is written when the proxy reports the end.
    pub(super) fn refuse(
        &mut self,
        now: Instant,
        call: CallHandle,
        mut meta: CallMeta,
        r: Refusal,
    ) {
        meta.disposition = Some(r.disposition);
        if let Some(why) = r.why {
            meta.record.reason = why;
        }
        self.calls.insert(call, meta);
        self.shared.metrics.rejected_as(r.cause);
        self.proxy
            .reject_with(now, call, r.code, r.reason, r.headers);
    }
}

/// Phase 2, the number: the Request-URI's user must be a 400 (or 1010) number.
fn phase_number(req: &Message, record: &mut CallRecord) -> Result<Number400, Refusal> {
    // Borrowed (valid UTF-8, as it normally is): owned only for the record of a refusal.
    let user = req
        .request_uri_parsed()
        .map(|u| String::from_utf8_lossy(u.user))
        .unwrap_or_default();
    match normalize_called(&user) {
        Ok(n) => Ok(n),
        Err(_) => {
            record.number = user.into_owned();
            Err(Refusal::new(Disposition::Failed, "not_a_400", 404).reason("Not A 400 Number"))
        }
    }
}
