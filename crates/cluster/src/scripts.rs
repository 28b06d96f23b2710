//! The Lua scripts (`lua/*.lua`), compiled into the binary, called by SHA1 (EVALSHA).
//! A pipeline that meets NOSCRIPT (Redis restarted or `SCRIPT FLUSH`) loads them all and is
//! sent once more (`RedisState::run`). That is safe because a pipeline that may be resent
//! holds only EVALSHAs of these scripts, which are loaded together and vanish together (a
//! restart, a flush, a failover): when one is missing none ran. Plain commands with side
//! effects never share a pipeline with them.

use redis::aio::ConnectionManager;
use redis::Script;

pub(crate) struct Scripts {
    pub lease: Script,
    pub renew: Script,
    pub rate: Script,
    pub stats: Script,
    pub dedup: Script,
    pub cursor: Script,
    pub dlg_put: Script,
    pub dlg_end: Script,
    pub dlg_adopt: Script,
    pub pp_reserve: Script,
    pub pp_settle: Script,
    pub pp_seed: Script,
    pub cps: Script,
}

impl Scripts {
    pub fn new() -> Scripts {
        Scripts {
            lease: Script::new(include_str!("../lua/lease.lua")),
            renew: Script::new(include_str!("../lua/renew.lua")),
            rate: Script::new(include_str!("../lua/rate.lua")),
            stats: Script::new(include_str!("../lua/stats.lua")),
            dedup: Script::new(include_str!("../lua/dedup.lua")),
            cursor: Script::new(include_str!("../lua/cursor.lua")),
            dlg_put: Script::new(include_str!("../lua/dlg_put.lua")),
            dlg_end: Script::new(include_str!("../lua/dlg_end.lua")),
            dlg_adopt: Script::new(include_str!("../lua/dlg_adopt.lua")),
            pp_reserve: Script::new(include_str!("../lua/pp_reserve.lua")),
            pp_settle: Script::new(include_str!("../lua/pp_settle.lua")),
            pp_seed: Script::new(include_str!("../lua/pp_seed.lua")),
            cps: Script::new(include_str!("../lua/cps.lua")),
        }
    }

    /// Every script (what [`Scripts::load`] loads: keep it complete, see the module docs).
    fn all(&self) -> [&Script; 13] {
        [
            &self.lease,
            &self.renew,
            &self.rate,
            &self.stats,
            &self.dedup,
            &self.cursor,
            &self.dlg_put,
            &self.dlg_end,
            &self.dlg_adopt,
            &self.pp_reserve,
            &self.pp_settle,
            &self.pp_seed,
            &self.cps,
        ]
    }

    /// SCRIPT LOAD each, in one round trip.
    pub async fn load(&self, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for s in self.all() {
            pipe.load_script(s).ignore();
        }
        pipe.query_async::<()>(conn).await
    }
}
