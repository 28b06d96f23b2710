//! Call records: proxy events (attempts, call ends) become CDR records, slots are released
//! and prepaid minutes settled; the CDR writer's settings from the config.

use super::*;

impl Core {
    pub(super) fn on_attempt(&mut self, a: AttemptInfo) {
        let rec_id = self.next_id("a");
        let clock = self.clock;
        let Some(meta) = self.calls.get_mut(&a.call) else {
            return;
        };
        let table = &meta.snap.table;
        let target = table
            .try_target(TargetId(a.target))
            .map(|t| t.name.to_string())
            .unwrap_or_default();
        // A slot taken by the gate is released when the attempt ends, unless it answered.
        if a.outcome == Outcome::Answered {
            meta.answered = Some(a.target);
        } else if a.outcome != Outcome::LimitReached {
            if let Some(t) = table.try_target(TargetId(a.target)) {
                self.shared.live.release(t);
                if let Some(link) = &self.shared.cluster {
                    link.release(&t.name, &meta.record.call_id);
                }
            }
        } else {
            meta.cl.consume(a.target);
        }
        meta.targets.insert(a.attempt, a.target);
        let rec = AttemptRecord {
            record_id: rec_id,
            call_record_id: meta.record.record_id.clone(),
            call_id: meta.record.call_id.clone(),
            attempt: a.attempt,
            target,
            start: clock.ts(a.started),
            first_ring: a.first_ring.map(|t| clock.ts(t)),
            answer: a.answered.map(|t| clock.ts(t)),
            end: clock.ts(a.ended),
            code: a.code,
            reason: attempt_reason(a.outcome),
            number: meta.record.number.clone(),
        };
        self.shared.metrics.attempt_ended(rec.reason);
        self.shared.cdr.submit(Record::Attempt(rec));
    }

    pub(super) fn on_call_ended(&mut self, c: CallInfo) {
        let clock = self.clock;
        let Some(mut meta) = self.calls.remove(&c.call) else {
            return;
        };
        // A published call gives its slots back with the claim of its end (one round trip).
        let published = meta.cl.fence.is_some() && self.shared.cluster.is_some();
        let mut with_end: Vec<String> = Vec::new();
        if let Some(t) = meta.trunk_slot.take() {
            self.shared.trunk_release(&t);
            if let Some(link) = &self.shared.cluster {
                let name = hotline_cluster::keys::trunk_lease_name(&t);
                if published {
                    with_end.push(name);
                } else {
                    link.release(&name, &meta.record.call_id);
                }
            }
        }
        // Slots granted to attempts that never started (the call ended while they were
        // decided).
        for (tag, a) in std::mem::take(&mut meta.cl.gate) {
            if a == Admission::Admit {
                if let Some(t) = meta.snap.table.try_target(TargetId(tag)) {
                    self.shared.live.release(t);
                    if let Some(link) = &self.shared.cluster {
                        link.release(&t.name, &meta.record.call_id);
                    }
                }
            }
        }
        if let Some(t) = meta.answered.take() {
            if let Some(t) = meta.snap.table.try_target(TargetId(t)) {
                self.shared.live.release(t);
                if let Some(link) = &self.shared.cluster {
                    if published {
                        with_end.push(t.name.to_string());
                    } else {
                        link.release(&t.name, &meta.record.call_id);
                    }
                }
            }
        }
        let r = &mut meta.record;
        r.first_ring = c.first_ring.map(|t| clock.ts(t));
        r.answer = c.answered.map(|t| clock.ts(t));
        r.end = clock.ts(c.ended);
        r.final_code = c.code;
        r.attempts = c.attempts;
        r.answered_target = c
            .answered_target
            .and_then(|t| meta.snap.table.try_target(TargetId(t)))
            .map(|t| t.name.to_string())
            .unwrap_or_default();
        r.hangup_side = match (c.answered.is_some(), c.hangup) {
            (false, _) => HangupSide::None,
            (true, Hangup::Caller) => HangupSide::Caller,
            (true, Hangup::Callee) => HangupSide::Callee,
            (true, Hangup::System) => HangupSide::System,
        };
        r.disposition = if c.answered.is_some() {
            Disposition::Answered
        } else if c.cancelled {
            Disposition::Cancelled
        } else if let Some(d) = meta.disposition {
            d
        } else {
            match c.last_outcome {
                Some(Outcome::Busy) => Disposition::Busy,
                Some(Outcome::NoAnswer) => Disposition::NoAnswer,
                Some(Outcome::LimitReached) => Disposition::Limit,
                _ => Disposition::Failed,
            }
        };
        if r.reason.is_empty() {
            r.reason = match r.disposition {
                Disposition::Answered => "answered".into(),
                Disposition::Cancelled => "cancelled by caller".into(),
                Disposition::Busy => "busy".into(),
                Disposition::NoAnswer => "no answer".into(),
                Disposition::Limit => "target limit reached".into(),
                _ => format!("failed with {}", c.code),
            };
        }
        let since = |t: Instant| t.saturating_duration_since(c.started);
        self.shared.metrics.call_ended(
            r,
            meta.disposition.is_none(),
            c.answered.map(since),
            c.first_ring.map(since),
            since(c.ended),
        );
        // One debug line per call (docs/OPERATIONS.md, "Logs"): the CDR is the per-call
        // record; at info it cost ~13,000 instructions and a write per call, and journald's
        // default rate limit drops such lines above ~330 calls/s anyway.
        tracing::debug!(
            call_id = %r.call_id, number = %r.number, caller = %r.caller, trunk = %r.trunk,
            code = r.final_code, disposition = %r.disposition, attempts = r.attempts,
            target = %r.answered_target, "call ended"
        );
        if meta.answered_at.is_some() {
            let r = &meta.record;
            // Settled by the node that writes the CDR: a call a BYE ended through another
            // node (which writes it) only gives its reservation back here.
            let billed = if meta.cl.gone {
                0
            } else {
                r.billable_minutes()
            };
            self.shared.with_prepaid(|p| {
                p.settle(&r.number, meta.reserved_minutes, billed, r.start, r.end)
            });
            self.settle_shared(&meta.record, meta.cl.gone);
        }
        feed::ended(&self.shared.feed, &meta.record);
        if meta.cl.duplicate {
            // The call is the other node's: one CDR per call, written there.
            return;
        }
        if let Some(fence) = meta.cl.fence {
            // Published in Redis: the CDR is written by whoever claims the end (here, unless
            // another node took the call over).
            self.end_dialog(meta.record, fence, with_end);
            return;
        }
        self.shared.cdr.submit(Record::Call(meta.record));
    }
}

pub(super) fn attempt_reason(o: Outcome) -> AttemptReason {
    match o {
        Outcome::Answered => AttemptReason::Answered,
        Outcome::NoAnswer => AttemptReason::Timeout,
        Outcome::Busy => AttemptReason::Busy,
        Outcome::Rejected | Outcome::GlobalFailure => AttemptReason::Rejected,
        Outcome::Unreachable => AttemptReason::Unreachable,
        Outcome::Redirected => AttemptReason::Redirected,
        Outcome::CancelledByHunt => AttemptReason::CancelledByHunt,
        Outcome::CancelledByCaller => AttemptReason::CancelledByCaller,
        Outcome::LimitReached => AttemptReason::LimitReached,
    }
}

pub(super) fn cdr_config(s: &hotline_config::Settings) -> hotline_cdr::WriterConfig {
    hotline_cdr::WriterConfig {
        dir: s.cdr.dir.clone(),
        format: match s.cdr.format {
            hotline_config::CdrFormat::Csv => hotline_cdr::Format::Csv,
            hotline_config::CdrFormat::Jsonl => hotline_cdr::Format::Jsonl,
        },
        fsync_interval: s.cdr.fsync_interval,
        rotate_bytes: s.cdr.rotate_bytes,
        rotate_every: match s.cdr.rotate_every {
            hotline_config::Rotate::Hourly => hotline_cdr::Rotate::Hourly,
            hotline_config::Rotate::Daily => hotline_cdr::Rotate::Daily,
            hotline_config::Rotate::Never => hotline_cdr::Rotate::Never,
        },
        channel_capacity: 65536,
        spill_limit: 1_000_000,
    }
}

/// What is wrong with the `[server.billing] file`, without naming it again (the error's
/// message does), and where a relative path was looked for.
pub(crate) fn billing_error(file: &std::path::Path, e: &hotline_cdr::CdrError) -> String {
    match e {
        hotline_cdr::CdrError::Io { source, .. } if file.is_relative() => {
            let cwd = std::env::current_dir().unwrap_or_default();
            format!(
                "{source} ([server.billing] file is relative to the directory Hotline was started in: {})",
                cwd.join(file).display()
            )
        }
        hotline_cdr::CdrError::Io { source, .. } => source.to_string(),
        hotline_cdr::CdrError::Invalid(m) => {
            let prefix = format!("{}: ", file.display());
            m.lines()
                .map(|l| l.strip_prefix(&prefix).unwrap_or(l))
                .collect::<Vec<_>>()
                .join("\n")
        }
    }
}

#[cfg(test)]
mod billing_error_tests {
    use super::*;

    /// #21 item 7: the `[server.billing] file` is named once (by `Error::Billing`), and a
    /// relative one says where it was looked for.
    #[test]
    fn billing_file_errors_name_it_once() {
        let missing = std::path::Path::new("rates/none.toml");
        let Err(e) = hotline_config::billing::load_billing(missing) else {
            panic!("no such file");
        };
        let text = Error::Billing {
            file: missing.to_path_buf(),
            message: billing_error(missing, &e),
        }
        .to_string();
        assert_eq!(text.matches("rates/none.toml").count(), 2, "{text}");
        assert!(
            text.contains("relative to the directory Hotline was started in: /"),
            "{text}"
        );
        let Ok(dir) = tempfile::tempdir() else {
            panic!("tempdir");
        };
        let bad = dir.path().join("billing.toml");
        let _ = std::fs::write(&bad, "[plans.std]\nrate_per_minute = \"x\"\n");
        let Err(e) = hotline_config::billing::load_billing(&bad) else {
            panic!("invalid");
        };
        let text = Error::Billing {
            file: bad.clone(),
            message: billing_error(&bad, &e),
        }
        .to_string();
        assert_eq!(
            text.matches(&bad.display().to_string()).count(),
            1,
            "{text}"
        );
    }
}
