//! The shard's side of a cluster: parking a decision while Redis answers, taking it from the
//! answers, and the hunt's gate leasing target slots in Redis (see `crate::cluster`).

use std::time::Instant;

use hotline_cdr::Disposition;
use hotline_cluster::{
    Claim, ClusterError, Decide, Decided, DialogEnd, InviteKey, TrunkAsk, TrunkVerdict,
};
use hotline_config::DownPolicy;
use hotline_route::{resolve, Answers, CallContext, Decision, Live, Recorder, Target, TargetId};
use hotline_sip::proxy::{Admission, CallHandle};
use hotline_sip::Message;

use super::{CallMap, CallMeta, Core, IdHashMap, Refusal};
use crate::cluster::{DialogReply, Link, Parked, Reply};

/// How long a prepaid slice outlives the renewal that should follow it.
const PREPAID_SLICE_GRACE_MS: i64 = 15_000;

/// Longest life of a published call in Redis when its plan has no max duration.
const DIALOG_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
use crate::transport::{Dispatch, ShardMsg};

impl Core {
    /// In a cluster, a decision that needs shared state waits for Redis: the call is parked
    /// (`None` is returned, the answer comes back as a [`Reply::Decided`]). While Redis is
    /// down the policy applies at once: 503 (`None`) or this node's state (`Some(meta)`).
    /// On a single box, and for decisions that need no shared state, `Some(meta)`: decide now.
    pub(super) fn park(
        &mut self,
        now: Instant,
        call: CallHandle,
        req: &Message,
        mut meta: CallMeta,
        ctx: &CallContext<'_>,
        ts: jiff::Timestamp,
    ) -> Option<CallMeta> {
        let Some(link) = self.shared.cluster.clone() else {
            return Some(meta);
        };
        meta.cl.caller_tag = String::from_utf8_lossy(req.from_tag().unwrap_or(b"")).into_owned();
        let rec = Recorder::new();
        if let Decision::Reject(_) = resolve(&meta.snap.table, &rec, ctx, ts) {
            // Refused before any shared state matters (lists, unknown number): no call starts.
            return Some(meta);
        }
        let needs = rec.into_needs();
        if !link.redis.is_up() {
            if let Some(kind) = link.refuse_while_down(&needs, true) {
                self.refuse_redis_down(now, call, meta, kind);
                return None;
            }
            tracing::debug!(call_id = %meta.record.call_id, "redis down: deciding with this node's state");
            return Some(meta);
        }
        // This shard's own inbox: the answer comes back through it.
        let Some(tx) = self.dispatch.inboxes.get(self.shard).cloned() else {
            return Some(meta);
        };
        let invite = InviteKey {
            call_id: String::from_utf8_lossy(req.call_id()).into_owned(),
            from_tag: String::from_utf8_lossy(req.from_tag().unwrap_or(b"")).into_owned(),
            cseq: req.cseq().0,
        };
        // The trunk's limits, shared: asked with the decision.
        let trunk = ctx.trunk.and_then(|name| {
            meta.snap
                .settings
                .trunks
                .iter()
                .find(|t| t.name == name && (t.max_cps.is_some() || t.max_calls.is_some()))
                .map(|t| (t.name.clone(), t.max_cps, t.max_calls))
        });
        meta.cl.parked = Some(Parked {
            called: ctx.called,
            caller_raw: ctx.caller.to_owned(),
            trunk: ctx.trunk.map(str::to_owned),
            ivr_key: ctx.ivr_key,
            seed: ctx.seed,
            callback: ctx.callback,
            ident: crate::core::ReqIdentity::of(req),
            ts,
            needs: needs.clone(),
            claim: true,
        });
        let call_id = meta.record.call_id.clone();
        self.calls.insert(call, meta);
        let redis = link.redis();
        link.spawn(async move {
            let result = redis
                .decide(Decide {
                    invite: Some(&invite),
                    trunk: trunk.as_ref().map(|(name, max_cps, max_calls)| TrunkAsk {
                        name,
                        max_cps: *max_cps,
                        max_calls: *max_calls,
                        call_id: &call_id,
                    }),
                    needs: &needs,
                    now_ms: ts.as_millisecond(),
                })
                .await;
            let _ = tx
                .send(ShardMsg::Cluster(Box::new(Reply::Decided { call, result })))
                .await;
        });
        None
    }

    fn refuse_redis_down(&mut self, now: Instant, call: CallHandle, meta: CallMeta, kind: &str) {
        tracing::warn!(call_id = %meta.record.call_id, kind, "redis down and [cluster.redis_down] says reject: 503");
        let r = Refusal::new(Disposition::Failed, "redis_down", 503)
            .why(format!("redis down ({kind})"))
            .retry_after_1s();
        self.refuse(now, call, meta, r);
    }

    pub(super) fn on_cluster_reply(&mut self, now: Instant, r: Reply) {
        match r {
            Reply::Decided { call, result } => self.on_decided(now, call, result),
            Reply::Leased {
                call,
                tag,
                target,
                call_id,
                result,
            } => self.on_leased(now, call, tag, &target, &call_id, result),
            Reply::Dialog(d) => self.on_dialog_reply(d),
            Reply::Prepaid { call, result } => self.on_prepaid(now, call, result),
        }
    }

    /// In a cluster with Redis up, ask Redis for the next prepaid minute of an answered call
    /// (returns false: not a cluster, Redis down or not a prepaid number: decide here).
    pub(super) fn reserve_shared(&mut self, call: CallHandle) -> bool {
        let Some(link) = self.shared.cluster.clone() else {
            return false;
        };
        if !link.redis.is_up() {
            return false;
        }
        let Some(m) = self.calls.get(&call) else {
            return false;
        };
        let ts = jiff::Timestamp::now();
        let number = m.record.number.clone();
        let Some(ask) = self
            .shared
            .with_prepaid(|p| p.cluster_ask(&number, ts))
            .flatten()
        else {
            return false;
        };
        let Some(tx) = self.dispatch.inboxes.get(self.shard).cloned() else {
            return false;
        };
        let call_id = m.record.call_id.clone();
        // The slice lapses a while after the renewal that should follow it (a dead node's
        // reservation frees itself unless another node takes the call over).
        let expires_ms = ts.as_millisecond() + 60_000 + PREPAID_SLICE_GRACE_MS;
        let redis = link.redis();
        link.spawn(async move {
            let result = redis
                .prepaid_reserve(hotline_cluster::PrepaidAsk {
                    number: &number,
                    call_id: Some(&call_id),
                    slice_fen: ask.rate_fen,
                    expires_ms,
                    now_ms: ts.as_millisecond(),
                    base_fen: ask.base_fen,
                    rate_fen: ask.rate_fen,
                    month: &ask.month,
                })
                .await;
            let _ = tx
                .send(ShardMsg::Cluster(Box::new(Reply::Prepaid { call, result })))
                .await;
        });
        true
    }

    fn on_prepaid(
        &mut self,
        now: Instant,
        call: CallHandle,
        result: Result<hotline_cluster::PrepaidAnswer, ClusterError>,
    ) {
        let Some(m) = self.calls.get(&call) else {
            // Ended meanwhile: its settlement may have come first; drop what was reserved.
            return;
        };
        let (number, minutes) = (m.record.number.clone(), m.reserved_minutes);
        let grant = match result {
            Ok(a) => {
                self.shared.with_prepaid(|p| {
                    p.note_cluster_usage(&number, &a.usage);
                    if a.granted {
                        p.note_reserved(&number);
                    } else {
                        p.cut += 1;
                    }
                });
                crate::prepaid::grant_after(minutes, a.granted)
            }
            Err(e) => {
                tracing::warn!(number = %number, error = %e, "prepaid reservation in redis failed: this node's view decides");
                match self
                    .shared
                    .with_prepaid(|p| p.reserve(&number, minutes, jiff::Timestamp::now()))
                {
                    Some(g) => g,
                    None => return,
                }
            }
        };
        self.apply_grant(now, call, grant);
    }

    /// In a cluster: settle an answered prepaid call in Redis, once per Call-ID, with this
    /// node's usage of its month; `gone` (another node writes its CDR and settles it): only
    /// give the reservation back.
    pub(super) fn settle_shared(&mut self, r: &hotline_cdr::CallRecord, gone: bool) {
        let Some(link) = self.shared.cluster.clone() else {
            return;
        };
        let Some(Some((month, minutes))) = self.shared.with_prepaid(|p| {
            p.cluster_ask(&r.number, r.start)?;
            p.own_month(&r.number, r.start)
        }) else {
            return;
        };
        let (number, call_id) = (r.number.clone(), r.call_id.clone());
        let redis = link.redis.clone();
        link.spawn_main(async move {
            let done = if gone {
                redis.prepaid_release(&number, &call_id).await
            } else {
                redis
                    .prepaid_settle(&number, &call_id, &month, minutes)
                    .await
                    .map(|_| ())
            };
            if let Err(e) = done {
                // The usage reaches Redis with the next seeding round; the reservation lapses.
                tracing::warn!(%number, %call_id, error = %e, "prepaid settlement not written to redis");
            }
        });
    }

    /// Publish an answered call in Redis, so that another node can end its record (BYE
    /// through the cluster address) when this one is dead.
    pub(super) fn publish_dialog(&mut self, now: Instant, call: CallHandle, target: u32) {
        let Some(link) = self.shared.cluster.clone() else {
            return;
        };
        let Some(meta) = self.calls.get(&call) else {
            return;
        };
        let Some(tx) = self.dispatch.inboxes.get(self.shard).cloned() else {
            return;
        };
        let mut rec = meta.record.clone();
        rec.answer = Some(self.clock.ts(now));
        rec.end = self.clock.ts(now);
        rec.final_code = 200;
        rec.disposition = Disposition::Answered;
        rec.reason = "answered".into();
        rec.answered_target = meta
            .snap
            .table
            .try_target(TargetId(target))
            .map(|t| t.name.to_string())
            .unwrap_or_default();
        let mut json = Vec::with_capacity(512);
        hotline_cdr::encode::encode(
            &mut json,
            hotline_cdr::Format::Jsonl,
            &hotline_cdr::Record::Call(rec),
        );
        if json.last() == Some(&b'\n') {
            json.pop();
        }
        // Lives as long as the call can: its max duration, else a day.
        let life = meta
            .snap
            .table
            .plans()
            .iter()
            .filter_map(|p| p.max_duration)
            .max()
            .unwrap_or(DIALOG_LIFETIME)
            .min(DIALOG_LIFETIME)
            + std::time::Duration::from_secs(60);
        // What a take-over needs: the dialog, and when the call is to be cut.
        let mut fields: Vec<(&'static str, Vec<u8>)> = Vec::with_capacity(3);
        if let Some(d) = self.proxy.dialog_state(call) {
            fields.push(("dialog", d.encode()));
        }
        if let Some(at) = self.proxy.hangup_at(call) {
            let ms = self.clock.ts(at).as_millisecond();
            fields.push(("hangup_ms", ms.to_string().into_bytes()));
        }
        fields.push((
            "reserved_minutes",
            meta.reserved_minutes.to_string().into_bytes(),
        ));
        let (call_id, tag) = (meta.record.call_id.clone(), meta.cl.caller_tag.clone());
        let redis = link.redis();
        link.spawn(async move {
            let result = redis.dialog_put(&call_id, &json, &tag, life, &fields).await;
            let _ = tx
                .send(ShardMsg::Cluster(Box::new(Reply::Dialog(
                    DialogReply::Put {
                        call,
                        call_id,
                        result,
                    },
                ))))
                .await;
        });
    }

    /// This node's published call ended: claim the end in Redis, then write the CDR. On the
    /// main runtime, and the CDR written by the task itself: the record must not depend on
    /// the shard still running (a drain ends its loop).
    pub(super) fn end_dialog(
        &mut self,
        record: hotline_cdr::CallRecord,
        fence: u64,
        releases: Vec<String>,
    ) {
        if let Some(link) = &self.shared.cluster {
            crate::cluster::lock(&link.published).remove(&record.call_id);
        }
        let Some(link) = self.shared.cluster.clone() else {
            self.shared.cdr.submit(hotline_cdr::Record::Call(record));
            return;
        };
        let redis = link.redis.clone();
        let cdr = self.shared.cdr.clone();
        link.spawn_main(async move {
            let result = redis
                .dialog_end_releasing(&record.call_id, Some(fence), &releases)
                .await;
            match result {
                Ok(DialogEnd::Claimed { .. }) => cdr.submit(hotline_cdr::Record::Call(record)),
                Ok(DialogEnd::Lost) => {
                    tracing::info!(call_id = %record.call_id, "call unknown to redis (restarted?): writing its CDR here");
                    cdr.submit(hotline_cdr::Record::Call(record))
                }
                Ok(DialogEnd::NotHere) => {
                    tracing::info!(call_id = %record.call_id, "call ended by another node: its CDR is written there")
                }
                Err(e) => {
                    // Redis down: this node's record is the best there is.
                    tracing::warn!(call_id = %record.call_id, error = %e, "end of call not claimed in redis: writing the CDR here");
                    cdr.submit(hotline_cdr::Record::Call(record));
                }
            }
        });
    }

    /// A BYE of a call this node does not carry was relayed: if the call is published (its
    /// node may be dead), claim its end and write its CDR here.
    pub(super) fn on_foreign_bye(&mut self, now: Instant, call_id: &[u8], from_tag: &[u8]) {
        let (Some(link), Some(tx)) = (
            self.shared.cluster.clone(),
            self.dispatch.inboxes.get(self.shard).cloned(),
        ) else {
            return;
        };
        let call_id = String::from_utf8_lossy(call_id).into_owned();
        let from_tag = String::from_utf8_lossy(from_tag).into_owned();
        let at = self.clock.ts(now);
        let redis = link.redis();
        link.spawn(async move {
            let result = redis.dialog_end(&call_id, None).await;
            let _ = tx
                .send(ShardMsg::Cluster(Box::new(Reply::Dialog(
                    DialogReply::Foreign {
                        from_tag,
                        at,
                        result,
                    },
                ))))
                .await;
        });
    }

    fn on_dialog_reply(&mut self, d: DialogReply) {
        match d {
            DialogReply::Put {
                call,
                call_id: call_id_of_put,
                result,
            } => match result {
                Ok(fence) => match (self.calls.get_mut(&call), &self.shared.cluster) {
                    (Some(m), Some(link)) => {
                        m.cl.fence = Some(fence);
                        crate::cluster::lock(&link.published)
                            .insert(m.record.call_id.clone(), (self.shard, call));
                    }
                    (None, Some(link)) => {
                        // The call ended (and wrote its CDR) before the publication was
                        // confirmed: take it back, so no other node ends it again.
                        let redis = link.redis();
                        let call_id = call_id_of_put.clone();
                        link.spawn(async move {
                            let _ = redis.dialog_end(&call_id, Some(fence)).await;
                        });
                    }
                    _ => {}
                },
                Err(e) => {
                    tracing::warn!(error = %e, "answered call not published in redis: only this node can end its record")
                }
            },
            DialogReply::Republish { call } => {
                if let Some(target) = self.calls.get(&call).and_then(|m| m.answered) {
                    self.publish_dialog(Instant::now(), call, target);
                }
            }
            DialogReply::Adopt(d) => self.adopt(Instant::now(), *d),
            DialogReply::EndedElsewhere { call } => {
                if let Some(m) = self.calls.get_mut(&call) {
                    m.cl.gone = true;
                    tracing::info!(call_id = %m.record.call_id, "call ended by a BYE through another node, or taken over by one");
                }
                self.proxy.ended_elsewhere(Instant::now(), call);
            }
            DialogReply::Foreign {
                from_tag,
                at,
                result,
            } => {
                let Ok(DialogEnd::Claimed {
                    record: json,
                    caller_tag,
                    owner,
                }) = result
                else {
                    return;
                };
                let mut call = hotline_cdr::CallRecord::empty(at);
                let mut attempt = hotline_cdr::AttemptRecord::empty(at);
                if let Err(e) = hotline_cdr::decode::from_json_line(
                    &json,
                    hotline_cdr::record::Kind::Call,
                    &mut call,
                    &mut attempt,
                ) {
                    tracing::error!(error = %e, %owner, "published call record unreadable");
                    return;
                }
                call.end = at;
                call.hangup_side = if from_tag == caller_tag {
                    hotline_cdr::HangupSide::Caller
                } else {
                    hotline_cdr::HangupSide::Callee
                };
                tracing::info!(call_id = %call.call_id, %owner, node = %self.shared.cluster.as_ref().map_or("", |l| l.settings.node.as_str()), "BYE of another node's call: its CDR is written here");
                // Its prepaid minutes are settled by the node that writes the CDR: this one.
                let billed = call.billable_minutes();
                self.shared
                    .with_prepaid(|p| p.settle(&call.number, 0, billed, call.start, call.end));
                self.settle_shared(&call, false);
                self.shared.cdr.submit(hotline_cdr::Record::Call(call));
            }
        }
    }

    /// Take over an answered call of a dead node: from now on it is this node's, with its
    /// target slot and trunk slot held, its max-duration cut and its prepaid minutes.
    fn adopt(&mut self, now: Instant, d: hotline_cluster::Adopted) {
        let Some(link) = self.shared.cluster.clone() else {
            return;
        };
        let ts = self.clock.ts(now);
        let mut record = hotline_cdr::CallRecord::empty(ts);
        let mut attempt = hotline_cdr::AttemptRecord::empty(ts);
        if let Err(e) = hotline_cdr::decode::from_json_line(
            &d.record,
            hotline_cdr::record::Kind::Call,
            &mut record,
            &mut attempt,
        ) {
            tracing::error!(call_id = %d.call_id, error = %e, "adopted call: record unreadable; its BYE still ends it");
            return;
        }
        let Some(state) = d
            .field("dialog")
            .and_then(hotline_sip::proxy::DialogState::decode)
        else {
            tracing::warn!(call_id = %d.call_id, "adopted call has no dialog (published by an older node): its BYE still ends it, nobody cuts it");
            return;
        };
        if let Some(&(_, call)) = crate::cluster::lock(&link.published).get(&d.call_id) {
            // This node's own live call (adopted from its previous life's set by mistake of
            // timing): keep it, with the token now current.
            if let Some(m) = self.calls.get_mut(&call) {
                m.cl.fence = Some(d.fence);
            }
            return;
        }
        // Instants on this node's clock from the published wall-clock times.
        let ago = |t: jiff::Timestamp| {
            let ms = ts
                .as_millisecond()
                .saturating_sub(t.as_millisecond())
                .max(0);
            now.checked_sub(std::time::Duration::from_millis(ms as u64))
                .unwrap_or(now)
        };
        let started = ago(record.start);
        let answered = record.answer.map(ago).unwrap_or(now);
        let snap = self.shared.current.load();
        let target = snap
            .table
            .targets()
            .iter()
            .position(|t| *t.name == *record.answered_target)
            .and_then(|i| u32::try_from(i).ok());
        let Some(call) = self.proxy.adopt(
            d.call_id.as_bytes(),
            d.caller_tag.as_bytes(),
            &state,
            started,
            answered,
            target.unwrap_or(u32::MAX),
        ) else {
            return;
        };
        // The dead node's leases on the target and the trunk run out by themselves: hold them
        // here (the next renewal writes them again).
        if let Some(t) = target.and_then(|t| snap.table.try_target(TargetId(t))) {
            self.shared.live.acquire(t, ts);
            link.redis.hold(&t.name, &d.call_id);
        }
        let trunk_slot = snap
            .settings
            .trunks
            .iter()
            .find(|t| t.name == record.trunk && t.max_calls.is_some())
            .map(|t| t.name.clone());
        if let Some(name) = &trunk_slot {
            self.shared.trunk_note(name);
            link.redis
                .hold(&hotline_cluster::keys::trunk_lease_name(name), &d.call_id);
        }
        let reserved_minutes = d
            .field("reserved_minutes")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(0);
        let hangup_ms: Option<i64> = d
            .field("hangup_ms")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
        if let Some(ms) = hangup_ms {
            let left = ms.saturating_sub(ts.as_millisecond()).max(0);
            self.proxy
                .limit_call(call, now + std::time::Duration::from_millis(left as u64));
        }
        let caller_tag = d.caller_tag.clone();
        let mut meta = CallMeta {
            snap: snap.clone(),
            record,
            targets: IdHashMap::default(),
            answered: target,
            disposition: None,
            ring: std::time::Duration::from_secs(20),
            trunk_slot,
            reserved_minutes,
            answered_at: Some(answered),
            cl: crate::cluster::CallState::default(),
        };
        meta.cl.fence = Some(d.fence);
        meta.cl.caller_tag = caller_tag;
        crate::cluster::lock(&link.published).insert(d.call_id.clone(), (self.shard, call));
        self.calls.insert(call, meta);
        self.adopted_prepaid(now, call);
    }

    /// An adopted prepaid call goes on paying by the minute here: the minutes its old owner
    /// reserved are taken as paid (at most one slice of exposure), the next is reserved
    /// before its boundary.
    fn adopted_prepaid(&mut self, now: Instant, call: CallHandle) {
        let Some(m) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(answered) = m.answered_at else {
            return;
        };
        let number = m.record.number.clone();
        let prepaid = self
            .shared
            .with_prepaid(|p| p.cluster_ask(&number, jiff::Timestamp::now()).is_some())
            .unwrap_or(false);
        if !prepaid {
            return;
        }
        let talk = now.saturating_duration_since(answered).as_secs();
        let ahead = crate::prepaid::RENEW_AHEAD.as_secs();
        let reserved = u32::try_from((talk + ahead) / 60 + 1).unwrap_or(u32::MAX);
        m.reserved_minutes = m.reserved_minutes.max(reserved);
        let renew = std::time::Duration::from_secs(60 * u64::from(m.reserved_minutes))
            .saturating_sub(crate::prepaid::RENEW_AHEAD);
        self.renewals
            .push(std::cmp::Reverse(((answered + renew).max(now), call)));
    }

    fn on_decided(
        &mut self,
        now: Instant,
        call: CallHandle,
        result: Result<Decided, ClusterError>,
    ) {
        let Some(link) = self.shared.cluster.clone() else {
            return;
        };
        // Gone meanwhile (the caller cancelled): nothing to decide.
        let Some(mut meta) = self.calls.remove(&call) else {
            return;
        };
        let Some(p) = meta.cl.parked.take() else {
            self.calls.insert(call, meta);
            return;
        };
        let (rates, cursors, stats) = match result {
            Ok(d) => {
                match &d.claim {
                    Some(Claim::Duplicate { owner }) => {
                        tracing::info!(call_id = %meta.record.call_id, %owner, "duplicate INVITE: the call is on another node");
                        meta.cl.duplicate = true;
                        // RFC 3261 8.2.2.2: a merged request.
                        let r = Refusal::new(Disposition::Failed, "duplicate", 482)
                            .why(format!("duplicate of the call on node {owner}"))
                            .reason("Loop Detected");
                        self.refuse(now, call, meta, r);
                        return;
                    }
                    Some(Claim::TakeOver { owner }) => {
                        tracing::info!(call_id = %meta.record.call_id, %owner, "INVITE retried after its node died: this node takes the call");
                    }
                    _ => {}
                }
                if let (Some(v), Some(name)) = (d.trunk, &p.trunk) {
                    meta.cl.trunk = Some(match v {
                        TrunkVerdict::Admit => {
                            // Held from now on: released when the call ends, whatever ends it.
                            meta.trunk_slot = Some(name.clone());
                            self.shared.trunk_note(name);
                            None
                        }
                        TrunkVerdict::Cps => Some("trunk max_cps reached"),
                        TrunkVerdict::Calls => Some("trunk max_calls reached"),
                    });
                }
                (d.rates, d.cursors, d.stats)
            }
            Err(e) => {
                tracing::warn!(call_id = %meta.record.call_id, error = %e, "redis round trip failed");
                if let Some(kind) = link.refuse_while_down(&p.needs, p.claim) {
                    self.refuse_redis_down(now, call, meta, kind);
                    return;
                }
                (Vec::new(), Vec::new(), Vec::new())
            }
        };
        let shared = self.shared.clone();
        let snap = meta.snap.clone();
        let ctx = CallContext {
            called: p.called,
            caller: &p.caller_raw,
            trunk: p.trunk.as_deref(),
            ivr_key: p.ivr_key,
            seed: p.seed,
            callback: p.callback,
        };
        let answers = Answers::new(rates, cursors, stats, &shared.live);
        let decision = resolve(&snap.table, &answers, &ctx, p.ts);
        self.decide(
            now,
            call,
            meta,
            &snap,
            decision,
            &p.called,
            p.trunk.clone(),
            p.ident,
            p.ts,
        );
    }

    fn on_leased(
        &mut self,
        now: Instant,
        call: CallHandle,
        tag: u32,
        target: &str,
        call_id: &str,
        result: Result<bool, ClusterError>,
    ) {
        let Some(link) = self.shared.cluster.clone() else {
            return;
        };
        let ts = self.clock.ts(now);
        let Some(meta) = self.calls.get_mut(&call) else {
            // The call ended while its lease was on the way: give it back.
            if matches!(result, Ok(true)) {
                link.release(target, call_id);
            }
            return;
        };
        meta.cl.asked.retain(|t| *t != tag);
        let a = match (meta.snap.table.try_target(TargetId(tag)), result) {
            (None, Ok(true)) => {
                link.release(target, call_id);
                Admission::Refuse
            }
            (None, _) => Admission::Refuse,
            (Some(t), Ok(true)) => {
                // Counted here too: this node's view (explain, and the fallback while Redis
                // is down) follows its own calls.
                self.shared.live.acquire(t, ts);
                Admission::Admit
            }
            (Some(_), Ok(false)) => Admission::Refuse,
            (Some(t), Err(e)) => {
                tracing::warn!(target = %t.name, error = %e, "lease round trip failed");
                lease_while_down(&link, &self.shared.live, t, call_id, ts)
            }
        };
        meta.cl.gate.push((tag, a));
        if meta.cl.asked.is_empty() {
            let (shared, calls, shard) = (&self.shared, &mut self.calls, self.shard);
            let dispatch = &self.dispatch;
            self.proxy.resume_hunt(now, call, &mut |c, t| {
                super::gate(shared, calls, dispatch, shard, c, t, ts)
            });
        }
    }
}

/// A lease while Redis is down: this node's count against the limit (`local`, and the lease
/// is written to Redis by the next renewal once it is back), or refused (`reject`).
fn lease_while_down(
    link: &Link,
    live: &Live,
    t: &Target,
    call_id: &str,
    ts: jiff::Timestamp,
) -> Admission {
    match link.settings.redis_down.leases {
        DownPolicy::Local => {
            if live.try_acquire(t, ts) {
                link.redis.hold(&t.name, call_id);
                Admission::Admit
            } else {
                Admission::Refuse
            }
        }
        DownPolicy::Reject => {
            tracing::warn!(target = %t.name, call_id, "redis down and leases = \"reject\": target not rung");
            Admission::Refuse
        }
    }
}

/// The hunt's gate in a cluster: the answer for this target if known, else ask Redis for a
/// lease on a task and wait (the hunt resumes in `on_leased`).
pub(super) fn gate(
    shared: &super::Shared,
    calls: &mut CallMap,
    dispatch: &Dispatch,
    shard: usize,
    call: CallHandle,
    tag: u32,
    ts: jiff::Timestamp,
) -> Admission {
    let (Some(link), live) = (&shared.cluster, &shared.live) else {
        return Admission::Refuse;
    };
    let Some(meta) = calls.get_mut(&call) else {
        return Admission::Refuse;
    };
    if let Some(a) = meta.cl.answer(tag) {
        return a;
    }
    if meta.cl.asked.contains(&tag) {
        return Admission::Wait;
    }
    let Some(t) = meta.snap.table.try_target(TargetId(tag)) else {
        return Admission::Refuse;
    };
    if !link.redis.is_up() {
        let a = lease_while_down(link, live, t, &meta.record.call_id, ts);
        meta.cl.gate.push((tag, a));
        return a;
    }
    let Some(tx) = dispatch.inboxes.get(shard).cloned() else {
        return Admission::Refuse;
    };
    meta.cl.asked.push(tag);
    let redis = link.redis();
    let (target, limit) = (t.name.clone(), t.max_concurrent);
    let call_id = meta.record.call_id.clone();
    link.spawn(async move {
        let result = redis
            .lease(&target, limit, &call_id, ts.as_millisecond())
            .await;
        let _ = tx
            .send(ShardMsg::Cluster(Box::new(Reply::Leased {
                call,
                tag,
                target,
                call_id,
                result,
            })))
            .await;
    });
    Admission::Wait
}
