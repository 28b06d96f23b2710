//! Call events for the API's live feed (`hotline_api::Feed`): a target starts ringing, a call
//! is answered, a call ends. Built only while someone listens (`Feed::publish` checks first),
//! so a switch without API clients pays one atomic load per event.

use std::time::Instant;

use hotline_api::{Feed, LiveEvent};
use hotline_cdr::CallRecord;
use hotline_route::TargetId;
use hotline_sip::proxy::CallHandle;

use super::Core;

impl Core {
    /// `ringing` (an attempt started on `target`) or `answered` (by `target`).
    pub(super) fn feed_call(
        &self,
        now: Instant,
        call: CallHandle,
        kind: &'static str,
        target: u32,
    ) {
        let Some(m) = self.calls.get(&call) else {
            return;
        };
        let at = self.clock.ts(now);
        self.shared.feed.publish(|| LiveEvent {
            kind,
            at: at.to_string(),
            call_id: m.record.call_id.clone(),
            number: m.record.number.clone(),
            caller: m.record.caller.clone(),
            target: m
                .snap
                .table
                .try_target(TargetId(target))
                .map(|t| t.name.to_string())
                .unwrap_or_default(),
            disposition: None,
            code: None,
            talk_seconds: None,
        });
    }
}

/// `ended`, from the finished call record.
pub(super) fn ended(feed: &Feed, r: &CallRecord) {
    feed.publish(|| LiveEvent {
        kind: "ended",
        at: r.end.to_string(),
        call_id: r.call_id.clone(),
        number: r.number.clone(),
        caller: r.caller.clone(),
        target: r.answered_target.clone(),
        disposition: Some(r.disposition.as_str().to_string()),
        code: Some(r.final_code),
        talk_seconds: Some(r.talk_seconds()),
    });
}
