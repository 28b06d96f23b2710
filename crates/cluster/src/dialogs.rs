//! Answered calls in Redis: publication, the end claimed once, what became of a node's
//! calls, and the take-over of a dead node's calls.

use std::time::Duration;

use redis::Value;

use crate::*;

impl RedisState {
    /// Publish an answered call (its CDR so far); returns the fencing token this node holds.
    pub async fn dialog_put(
        &self,
        call_id: &str,
        record: &[u8],
        caller_tag: &str,
        lifetime: Duration,
        fields: &[(&str, Vec<u8>)],
    ) -> Result<u64, ClusterError> {
        let mut pipe = redis::pipe();
        let mut inv = self.inner.scripts.dlg_put.key(keys::dialog(call_id));
        inv.key(keys::owned(self.node()))
            .arg(self.node())
            .arg(record)
            .arg(caller_tag)
            .arg(ms(lifetime))
            .arg(call_id);
        for (k, v) in fields {
            inv.arg(*k).arg(v.as_slice());
        }
        pipe.invoke_script(&inv);
        let v = self.run(&pipe, Trip::Publish).await?;
        let f = int(v.into_iter().next()).ok_or(ClusterError::Reply("dlg_put.lua"))?;
        Ok(u64::try_from(f).unwrap_or(0))
    }

    /// Claim the end of an answered call. `fence`: `Some(token)` when the owner ends its own
    /// call (refused if it was taken over), `None` when a BYE of another node's call reached
    /// this one.
    pub async fn dialog_end(
        &self,
        call_id: &str,
        fence: Option<u64>,
    ) -> Result<DialogEnd, ClusterError> {
        self.dialog_end_releasing(call_id, fence, &[]).await
    }

    /// [`RedisState::dialog_end`] by the owner, giving back in the same round trip the slots
    /// the call holds (`targets`: lease names, e.g. the answered target and
    /// `keys::trunk_lease_name(trunk)`), unless another node took the call over.
    pub async fn dialog_end_releasing(
        &self,
        call_id: &str,
        fence: Option<u64>,
        targets: &[String],
    ) -> Result<DialogEnd, ClusterError> {
        let mut pipe = redis::pipe();
        let mut inv = self.inner.scripts.dlg_end.key(keys::dialog(call_id));
        inv.key(keys::dialog_ended(call_id));
        for t in targets {
            lock(&self.inner.held).remove(&(t.as_str().into(), call_id.into()));
            inv.key(keys::lease(t));
        }
        pipe.invoke_script(
            inv.arg(self.node())
                .arg(if fence.is_some() { "owner" } else { "bye" })
                .arg(fence.unwrap_or(0))
                .arg(ms(ENDED_MARK_TTL))
                .arg(keys::OWNED_PREFIX)
                .arg(call_id),
        );
        let v = self.run(&pipe, Trip::End).await?;
        match v.into_iter().next() {
            Some(Value::Nil) | None => Ok(DialogEnd::NotHere),
            Some(Value::BulkString(b)) if b == b"lost" => Ok(DialogEnd::Lost),
            Some(Value::SimpleString(s)) if s == "lost" => Ok(DialogEnd::Lost),
            Some(Value::Array(a)) => {
                let mut it = a.into_iter();
                let record = match it.next() {
                    Some(Value::BulkString(b)) => b,
                    _ => return Err(ClusterError::Reply("dlg_end.lua")),
                };
                let caller_tag = it.next().and_then(text).unwrap_or_default();
                let owner = it.next().and_then(text).unwrap_or_default();
                Ok(DialogEnd::Claimed {
                    record,
                    caller_tag,
                    owner,
                })
            }
            Some(_) => Err(ClusterError::Reply("dlg_end.lua")),
        }
    }

    /// What became of these calls (this node's, published): still ours, ended by a BYE
    /// through another node or taken over by one, or unknown to Redis (restarted empty).
    pub async fn dialog_fates(&self, call_ids: &[String]) -> Result<Vec<DialogFate>, ClusterError> {
        if call_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for c in call_ids {
            pipe.exists(keys::dialog_ended(c));
            pipe.hget(keys::dialog(c), "owner");
        }
        let v = self.run(&pipe, Trip::Background).await?;
        let mut it = v.into_iter();
        let mut out = Vec::with_capacity(call_ids.len());
        while let (Some(ended), Some(owner)) = (it.next(), it.next()) {
            out.push(if int(Some(ended)) == Some(1) {
                DialogFate::Gone
            } else {
                match text(owner) {
                    None => DialogFate::Missing,
                    Some(o) if o == self.node() => DialogFate::Ours,
                    Some(_) => DialogFate::Gone,
                }
            });
        }
        Ok(out)
    }

    /// Take over up to `max` answered calls of node `dead` if its heartbeat has expired (or
    /// `dead` is this node's own name: the calls of its previous life, after a restart).
    pub async fn adopt(&self, dead: &str, max: usize) -> Result<Vec<Adopted>, ClusterError> {
        let mut pipe = redis::pipe();
        pipe.invoke_script(
            self.inner
                .scripts
                .dlg_adopt
                .key(keys::owned(dead))
                .key(keys::node(dead))
                .key(keys::owned(self.node()))
                .arg(self.node())
                .arg(dead)
                .arg(keys::DIALOG_PREFIX)
                .arg(max.max(1)),
        );
        let v = self.run(&pipe, Trip::Background).await?;
        let Some(Value::Array(rows)) = v.into_iter().next() else {
            return Err(ClusterError::Reply("dlg_adopt.lua"));
        };
        let bytes = |v: Value| match v {
            Value::BulkString(b) => b,
            Value::SimpleString(s) => s.into_bytes(),
            _ => Vec::new(),
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Value::Array(f) = row else {
                return Err(ClusterError::Reply("dlg_adopt.lua"));
            };
            let mut it = f.into_iter();
            let call_id = it.next().and_then(text).unwrap_or_default();
            let fence = int(it.next())
                .and_then(|f| u64::try_from(f).ok())
                .unwrap_or(0);
            let record = it.next().map(bytes).unwrap_or_default();
            let caller_tag = it.next().and_then(text).unwrap_or_default();
            let mut fields = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                fields.push((text(k).unwrap_or_default(), bytes(v)));
            }
            out.push(Adopted {
                call_id,
                fence,
                record,
                caller_tag,
                fields,
            });
        }
        Ok(out)
    }
}
