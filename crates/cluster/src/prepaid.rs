//! Prepaid credit shared by the nodes: minute slices reserved, settled once per Call-ID, each
//! node's usage written (see `lua/pp_*.lua`).

use redis::Value;

use crate::*;

impl RedisState {
    /// Reserve a slice of a prepaid account's credit (or ask what is available).
    pub async fn prepaid_reserve(&self, q: PrepaidAsk<'_>) -> Result<PrepaidAnswer, ClusterError> {
        let mut pipe = redis::pipe();
        pipe.invoke_script(
            self.inner
                .scripts
                .pp_reserve
                .key(keys::prepaid(q.number))
                .arg(q.call_id.unwrap_or(""))
                .arg(q.slice_fen)
                .arg(q.expires_ms)
                .arg(q.now_ms)
                .arg(q.base_fen)
                .arg(q.rate_fen)
                .arg(q.month),
        );
        let v = self.run(&pipe, Trip::Prepaid).await?;
        let Some(Value::Array(a)) = v.into_iter().next() else {
            return Err(ClusterError::Reply("pp_reserve.lua"));
        };
        let mut it = a.into_iter();
        let granted = int(it.next()) == Some(1);
        let available_fen = int(it.next()).ok_or(ClusterError::Reply("pp_reserve.lua"))?;
        let mut usage = Vec::new();
        while let (Some(f), Some(v)) = (it.next(), it.next()) {
            let (Some(f), Some(v)) = (text(f), text(v)) else {
                continue;
            };
            let mut parts = f.splitn(3, ':');
            if let (Some("used"), Some(m), Some(n)) = (parts.next(), parts.next(), parts.next()) {
                usage.push((m.to_owned(), n.to_owned(), v.parse().unwrap_or(0)));
            }
        }
        Ok(PrepaidAnswer {
            granted,
            available_fen,
            usage,
        })
    }

    /// Settle a prepaid call once: this node's usage of `month` is now `minutes` (absolute,
    /// the call included); the call's reservation is dropped. `Ok(false)`: settled before.
    pub async fn prepaid_settle(
        &self,
        number: &str,
        call_id: &str,
        month: &str,
        minutes: u64,
    ) -> Result<bool, ClusterError> {
        let mut pipe = redis::pipe();
        pipe.invoke_script(
            self.inner
                .scripts
                .pp_settle
                .key(keys::prepaid(number))
                .key(keys::prepaid_settled(number, call_id))
                .arg(call_id)
                .arg(format!("used:{month}:{}", self.node()))
                .arg(minutes)
                .arg(ms(SETTLED_MARK_TTL)),
        );
        let v = self.run(&pipe, Trip::Prepaid).await?;
        Ok(int(v.into_iter().next()) == Some(1))
    }

    /// Drop a prepaid call's reservation without settling it (another node settles it).
    pub async fn prepaid_release(&self, number: &str, call_id: &str) -> Result<(), ClusterError> {
        let mut pipe = redis::pipe();
        pipe.hdel(
            keys::prepaid(number),
            &[format!("res:{call_id}"), format!("exp:{call_id}")],
        )
        .ignore();
        self.run(&pipe, Trip::Prepaid).await.map(|_| ())
    }

    /// Write this node's own prepaid usage of a number: `(month, minutes)`. `at_start`: the
    /// figures replace what Redis has (the CDR files are the truth); later only larger
    /// figures are written (a repair after Redis lost them).
    pub async fn prepaid_seed(
        &self,
        number: &str,
        usage: &[(String, u64)],
        at_start: bool,
    ) -> Result<(), ClusterError> {
        if usage.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        let mut inv = self.inner.scripts.pp_seed.key(keys::prepaid(number));
        inv.arg(if at_start { "set" } else { "max" });
        for (m, n) in usage {
            inv.arg(format!("used:{m}:{}", self.node())).arg(*n);
        }
        pipe.invoke_script(&inv);
        self.run(&pipe, Trip::Background).await.map(|_| ())
    }
}
