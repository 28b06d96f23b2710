//! The server's side of a cluster (`[cluster]`): the Redis link, the messages its tasks send
//! back to a shard, and what a call remembers while it waits for Redis.
//!
//! A shard never waits on Redis. A new INVITE whose decision needs shared state is parked
//! (the proxy already sent 100 Trying and absorbs retransmissions); its questions
//! (`hotline_route::Recorder`) go to Redis in one pipelined round trip on a task of the main
//! runtime; the answer comes back through the shard's inbox ([`Reply`]) and the decision is
//! made then, from the answers (`hotline_route::Answers`). A target slot is leased the same
//! way when the hunt reaches the target: the proxy's gate answers `Admission::Wait` and the
//! hunt resumes with the lease's answer. While Redis is down (the last round trip failed)
//! nothing waits: each kind of state follows its `[cluster.redis_down]` policy at once.
//! Answered calls are published at the answer and their end is claimed once (by the owner,
//! or by the node a BYE of the call reached); [`Link::start`] also tells a shard when one of
//! its calls was ended by a BYE through another node.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use hotline_cluster::{
    Adopted, ClusterError, Decided, DialogEnd, DialogFate, NodeInfo, Options, RedisState,
};
use hotline_config::{ClusterSettings, DownPolicy};
use hotline_route::{Needs, Number400};
use hotline_sip::proxy::{Admission, CallHandle};

use crate::transport::ShardMsg;

/// A node's own prepaid usage per number: (month `YYYY-MM`, minutes).
pub type OwnUsage = Vec<(String, Vec<(String, u64)>)>;
/// Takes Redis's answer about a prepaid number.
pub type NoteAnswer = Box<dyn Fn(&str, &hotline_cluster::PrepaidAnswer) + Send>;

/// What the cluster's maintenance task reads and writes of the node's prepaid accounts.
pub struct PrepaidHooks {
    /// This node's own usage per number: (month, minutes).
    pub usage: Box<dyn Fn() -> OwnUsage + Send>,
    /// What to ask Redis about each prepaid number.
    pub asks: Box<dyn Fn() -> Vec<(String, crate::prepaid::ClusterAsk)> + Send>,
    /// Redis's answer about a number.
    pub note: NoteAnswer,
}

/// Calls taken over per Redis round trip.
const ADOPT_BATCH: usize = 100;

/// A node's link to the cluster.
pub struct Link {
    /// The Redis client (shared connection, leases held, health).
    pub redis: RedisState,
    /// `[cluster]`.
    pub settings: ClusterSettings,
    /// The main runtime: Redis tasks run there, never on a shard's thread.
    rt: tokio::runtime::Handle,
    /// The nodes last seen in Redis (for `/status`), refreshed by the maintenance task.
    pub nodes: ArcSwap<Vec<NodeInfo>>,
    /// This node's answered calls published in Redis: Call-ID -> (shard, call).
    pub published: Mutex<HashMap<String, (usize, CallHandle)>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("redis", &self.redis).finish()
    }
}

impl Link {
    /// Build the link (does not connect yet). Must run inside the main runtime.
    pub fn new(settings: &ClusterSettings) -> Result<Link, ClusterError> {
        let redis = RedisState::new(Options {
            url: settings.redis.clone(),
            node: settings.node.clone(),
            lease: settings.lease,
            timeout: settings.timeout,
        })?;
        Ok(Link {
            redis,
            settings: settings.clone(),
            rt: tokio::runtime::Handle::current(),
            nodes: ArcSwap::from_pointee(Vec::new()),
            published: Mutex::new(HashMap::new()),
        })
    }

    /// Run `f` on the runtime of the caller if it has one, else (a shard's thread, which runs
    /// no runtime: `crate::poller`) the main runtime; its answer comes back through the
    /// shard's inbox, whose waker rings the shard.
    pub fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(f);
            }
            Err(_) => {
                self.rt.spawn(f);
            }
        }
    }

    /// Run `f` on the main runtime (work that must finish even if the calling shard stops).
    pub fn spawn_main(&self, f: impl Future<Output = ()> + Send + 'static) {
        self.rt.spawn(f);
    }

    /// The Redis client for the calling thread: on a shard's thread one with a connection of
    /// its own (a shard's trips do not queue behind another shard's on one connection),
    /// driven by the main runtime; shared state (health, leases held, counters) is the
    /// node's.
    pub fn redis(&self) -> RedisState {
        thread_local! {
            static OWN: std::cell::RefCell<Option<RedisState>> = const { std::cell::RefCell::new(None) };
        }
        OWN.with(|o| {
            let mut o = o.borrow_mut();
            match o.as_ref() {
                Some(r) if r.shares_state_with(&self.redis) => r.clone(),
                _ => {
                    // The connection's driver task needs a runtime; a shard thread has none.
                    let _rt = self.rt.enter();
                    o.insert(self.redis.own_connection()).clone()
                }
            }
        })
    }

    /// Give back a slot leased in Redis (on a task; an unreachable Redis lets it expire).
    pub fn release(&self, target: &str, call_id: &str) {
        let redis = self.redis();
        let (t, c) = (target.to_owned(), call_id.to_owned());
        self.spawn(async move {
            if let Err(e) = redis.release(&t, &c).await {
                tracing::debug!(target = %t, call_id = %c, error = %e, "lease not released in redis: it expires by itself");
            }
        });
    }

    /// Start the heartbeat / lease renewal task, the node list refresh, and the check for
    /// this node's answered calls that a BYE ended on another node (their shard is told, so
    /// that the call and its slot do not linger here).
    pub fn start(
        self: &Arc<Self>,
        info: impl Fn() -> NodeInfo + Send + 'static,
        inboxes: Arc<Vec<tokio::sync::mpsc::Sender<ShardMsg>>>,
        prepaid: PrepaidHooks,
    ) {
        self.spawn(self.redis.clone().maintain(info));
        let me = self.clone();
        self.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut agreed = true;
            // The calls of this node's previous life (a restart under the same name) are
            // adopted at the first round that reaches Redis.
            let mut own_adopted = false;
            // This node's prepaid usage (its CDR files, then its settlements) is written at
            // the first round that reaches Redis, then repaired every round (Redis restarted
            // empty, a settlement that failed).
            let mut seeded = false;
            loop {
                tick.tick().await;
                let mut ok = true;
                for (number, usage) in (prepaid.usage)() {
                    if let Err(e) = me.redis.prepaid_seed(&number, &usage, !seeded).await {
                        tracing::debug!(%number, error = %e, "prepaid usage not written to redis");
                        ok = false;
                        break;
                    }
                }
                seeded |= ok;
                // Every node's usage and reservations, for admitting new calls without a
                // round trip on their path.
                for (number, ask) in (prepaid.asks)() {
                    let now = hotline_cluster::now_ms();
                    let q = hotline_cluster::PrepaidAsk {
                        number: &number,
                        call_id: None,
                        slice_fen: ask.rate_fen,
                        expires_ms: now,
                        now_ms: now,
                        base_fen: ask.base_fen,
                        rate_fen: ask.rate_fen,
                        month: &ask.month,
                    };
                    match me.redis.prepaid_reserve(q).await {
                        Ok(a) => (prepaid.note)(&number, &a),
                        Err(_) => break,
                    }
                }
                if let Ok(n) = me.redis.nodes(hotline_cluster::now_ms()).await {
                    let alive: Vec<_> = n.iter().filter(|x| x.alive).collect();
                    let agree = alive.windows(2).all(|w| w[0].config_hash == w[1].config_hash);
                    if agree != agreed {
                        agreed = agree;
                        if agree {
                            tracing::info!("cluster: the live nodes run the same configuration again");
                        } else {
                            let hashes: Vec<String> = alive
                                .iter()
                                .map(|x| format!("{}={}", x.node, &x.config_hash[..x.config_hash.len().min(12)]))
                                .collect();
                            tracing::warn!(nodes = %hashes.join(" "), "cluster: the live nodes run different configurations");
                        }
                    }
                    let mut dead: Vec<String> = n
                        .iter()
                        .filter(|x| !x.alive && x.node != me.settings.node)
                        .map(|x| x.node.clone())
                        .collect();
                    if !own_adopted {
                        dead.push(me.settings.node.clone());
                    }
                    me.nodes.store(Arc::new(n));
                    if me.adopt_from(&dead, &inboxes).await {
                        own_adopted = true;
                    }
                }
                me.check_published(&inboxes).await;
            }
        });
    }

    /// Take over the answered calls of dead nodes (each goes to the shard its Call-ID
    /// belongs to). Returns whether Redis answered for every node.
    async fn adopt_from(
        &self,
        dead: &[String],
        inboxes: &[tokio::sync::mpsc::Sender<ShardMsg>],
    ) -> bool {
        let mut ok = true;
        for node in dead {
            // Batches of ADOPT_BATCH until the node has no calls left.
            loop {
                let got = match self.redis.adopt(node, ADOPT_BATCH).await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::debug!(%node, error = %e, "take-over round failed");
                        ok = false;
                        break;
                    }
                };
                let n = got.len();
                for d in got {
                    tracing::info!(call_id = %d.call_id, from = %node, "taking over an answered call of a dead node");
                    let shard = crate::transport::owner(d.call_id.as_bytes(), inboxes.len());
                    if let Some(tx) = inboxes.get(shard) {
                        let _ = tx
                            .send(ShardMsg::Cluster(Box::new(Reply::Dialog(
                                DialogReply::Adopt(Box::new(d)),
                            ))))
                            .await;
                    }
                }
                if n < ADOPT_BATCH {
                    break;
                }
            }
        }
        ok
    }

    /// This node's published calls: let go of those a BYE ended through another node or
    /// another node took over; publish again those Redis lost (restarted empty).
    async fn check_published(&self, inboxes: &[tokio::sync::mpsc::Sender<ShardMsg>]) {
        let calls: Vec<(String, (usize, CallHandle))> = lock(&self.published)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let ids: Vec<String> = calls.iter().map(|(k, _)| k.clone()).collect();
        let Ok(fates) = self.redis.dialog_fates(&ids).await else {
            return;
        };
        for ((id, (shard, call)), fate) in calls.into_iter().zip(fates) {
            let msg = match fate {
                DialogFate::Ours => continue,
                DialogFate::Gone => {
                    lock(&self.published).remove(&id);
                    DialogReply::EndedElsewhere { call }
                }
                DialogFate::Missing => {
                    tracing::info!(call_id = %id, "answered call unknown to redis (restarted empty?): publishing it again");
                    DialogReply::Republish { call }
                }
            };
            if let Some(tx) = inboxes.get(shard) {
                let _ = tx
                    .send(ShardMsg::Cluster(Box::new(Reply::Dialog(msg))))
                    .await;
            }
        }
    }

    /// Whether a new call is refused (503) because Redis is down and a kind of state it needs
    /// is configured `reject`: `Some(kind)` names that kind.
    pub fn refuse_while_down(&self, needs: &Needs, claim: bool) -> Option<&'static str> {
        let p = &self.settings.redis_down;
        if claim && p.duplicates == DownPolicy::Reject {
            return Some("duplicates");
        }
        if !needs.rates.is_empty() && p.rates == DownPolicy::Reject {
            return Some("rates");
        }
        if (!needs.cursors.is_empty() || !needs.stats.is_empty())
            && p.distribution == DownPolicy::Reject
        {
            return Some("distribution");
        }
        None
    }

    /// Whether any kind of state refuses calls while Redis is down.
    pub fn strict(&self) -> bool {
        let p = &self.settings.redis_down;
        [p.leases, p.rates, p.distribution, p.duplicates].contains(&DownPolicy::Reject)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a Redis task sends back to the shard that asked.
#[derive(Debug)]
pub enum Reply {
    /// The answers of a parked decision.
    Decided {
        call: CallHandle,
        result: Result<Decided, ClusterError>,
    },
    /// About an answered call.
    Dialog(DialogReply),
    /// A prepaid minute asked of Redis for an answered call.
    Prepaid {
        call: CallHandle,
        result: Result<hotline_cluster::PrepaidAnswer, ClusterError>,
    },
    /// A lease on target `tag` for a waiting hunt step.
    Leased {
        call: CallHandle,
        tag: u32,
        target: String,
        call_id: String,
        result: Result<bool, ClusterError>,
    },
}

/// Replies about answered calls published in Redis (see `Reply`).
#[derive(Debug)]
pub enum DialogReply {
    /// The call is published; the token is this node's.
    Put {
        call: CallHandle,
        call_id: String,
        result: Result<u64, ClusterError>,
    },
    /// A BYE ended this node's call on another node (which wrote its CDR), or another node
    /// took it over.
    EndedElsewhere { call: CallHandle },
    /// Redis lost this node's published call (restarted empty): publish it again.
    Republish { call: CallHandle },
    /// An answered call of a dead node, this node's from now on.
    Adopt(Box<Adopted>),
    /// A BYE of another node's call was relayed here.
    Foreign {
        from_tag: String,
        at: jiff::Timestamp,
        result: Result<DialogEnd, ClusterError>,
    },
}

/// A decision waiting for Redis: what is needed to take it again from the answers.
#[derive(Debug)]
pub struct Parked {
    pub called: Number400,
    pub caller_raw: String,
    pub trunk: Option<String>,
    pub ivr_key: Option<u8>,
    pub seed: u64,
    /// The call came back from the media server (`CallContext::callback`).
    pub callback: bool,
    /// What the caller-ID presentation needs of the INVITE (it is not kept).
    pub ident: crate::core::ReqIdentity,
    pub ts: jiff::Timestamp,
    pub needs: Needs,
    pub claim: bool,
}

/// A call's cluster state.
#[derive(Debug, Default)]
pub struct CallState {
    /// Set while the decision waits for Redis.
    pub parked: Option<Parked>,
    /// Gate answers not used yet (target tag -> answer), consumed when the attempt starts
    /// or ends refused.
    pub gate: Vec<(u32, Admission)>,
    /// Leases asked for and not answered yet.
    pub asked: Vec<u32>,
    /// A copy of an INVITE another (live) node carries: refused, and no CDR here.
    pub duplicate: bool,
    /// The caller's From tag (tells who sent a BYE another node relays).
    pub caller_tag: String,
    /// The shared trunk limits' answer: `Some(None)` admitted (slot held), `Some(Some(why))`
    /// refused; `None`: not asked (the node's own limits apply).
    pub trunk: Option<Option<&'static str>>,
    /// Fencing token of the call published in Redis at the answer.
    pub fence: Option<u64>,
    /// A BYE ended the call through another node, or another node took it over: that node
    /// writes its CDR and settles its prepaid minutes.
    pub gone: bool,
}

impl CallState {
    /// The gate's answer for `tag`, if known.
    pub fn answer(&self, tag: u32) -> Option<Admission> {
        self.gate.iter().find(|(t, _)| *t == tag).map(|(_, a)| *a)
    }
    /// Forget the answer for `tag` (its attempt has started or ended).
    pub fn consume(&mut self, tag: u32) {
        if let Some(i) = self.gate.iter().position(|(t, _)| *t == tag) {
            self.gate.swap_remove(i);
        }
    }
}
