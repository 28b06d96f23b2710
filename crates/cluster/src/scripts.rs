//! The Lua scripts (`lua/*.lua`), compiled into the binary, called by SHA1 (EVALSHA).
//! A pipeline that meets NOSCRIPT (Redis restarted or `SCRIPT FLUSH`) loads them all and is
//! sent once more (`RedisState::run`).

use redis::aio::ConnectionManager;
use redis::Script;

pub(crate) struct Scripts {
    pub lease: Script,
    pub renew: Script,
    pub rate: Script,
    pub stats: Script,
    pub dedup: Script,
}

impl Scripts {
    pub fn new() -> Scripts {
        Scripts {
            lease: Script::new(include_str!("../lua/lease.lua")),
            renew: Script::new(include_str!("../lua/renew.lua")),
            rate: Script::new(include_str!("../lua/rate.lua")),
            stats: Script::new(include_str!("../lua/stats.lua")),
            dedup: Script::new(include_str!("../lua/dedup.lua")),
        }
    }

    /// SCRIPT LOAD each, in one round trip.
    pub async fn load(&self, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for s in [
            &self.lease,
            &self.renew,
            &self.rate,
            &self.stats,
            &self.dedup,
        ] {
            pipe.load_script(s).ignore();
        }
        pipe.query_async::<()>(conn).await
    }
}
