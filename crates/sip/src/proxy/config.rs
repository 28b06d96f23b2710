//! [`ProxyConfig`]: the static configuration of the proxy core.

use std::net::SocketAddr;
use std::time::Duration;

use crate::txn::Timers;

use super::key::HashKey;

/// Static configuration of the proxy core.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub timers: Timers,
    /// Our own address as written in Via and Record-Route (`host:port`): the first listen
    /// address.
    pub local: SocketAddr,
    /// Our further listen addresses (`Peer::local` 1, 2, ...). A request is Record-Routed
    /// with the address it came in on; a request we send leaves from (and names in its Via)
    /// the address it came in on when that is of the destination's IP family, else the first
    /// listen address of that family.
    pub listen_more: Vec<SocketAddr>,
    /// Extra addresses that count as "us" in Request-URIs and Route headers.
    pub aliases: Vec<SocketAddr>,
    /// Value of the Allow header in 405 and OPTIONS responses.
    pub allow: &'static str,
    /// How long a finished call's dialog is remembered for late in-dialog requests.
    pub dialog_linger: Duration,
    /// How many 3xx a call may follow (recursion depth).
    pub max_redirects: u32,
    /// Out-of-dialog requests whose User-Agent contains one of these (ASCII case-insensitive)
    /// are dropped without an answer: SIP scanners.
    pub scanner_user_agents: Vec<&'static str>,
    /// Ids (in branches, call handles) are `first, first + step, ...`: several proxies sharing
    /// one address (shards) get disjoint ids.
    pub id_first: u64,
    pub id_step: u64,
    /// A cluster's shared address (`host` or `host:port`) written in Record-Route instead of
    /// `local`, so in-dialog requests reach whichever node is alive; it counts as "us" in
    /// Request-URIs and Route headers. `None`: `local`.
    pub record_route: Option<String>,
    /// The secret of the keyed hashes behind transaction keys, the loop hash in our branch
    /// parameters and the To-tags of local responses ([`HashKey`]). [`ProxyConfig::new`] draws
    /// a random one; shards of one server share the server's; a test fixes it to make every
    /// byte sent a function of the inputs.
    pub hash_key: HashKey,
}

/// User agents of well-known SIP scanners and war-diallers.
pub const SCANNERS: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipsak",
    "sundayddr",
    "iwar",
    "vaxsipuseragent",
    "smap",
    "pplsip",
];

impl ProxyConfig {
    /// Every listen address, in `Peer::local` order.
    pub fn listen_addrs(&self) -> impl Iterator<Item = &SocketAddr> + '_ {
        std::iter::once(&self.local).chain(self.listen_more.iter())
    }

    pub fn new(local: SocketAddr) -> Self {
        ProxyConfig {
            timers: Timers::default(),
            local,
            listen_more: Vec::new(),
            aliases: Vec::new(),
            allow: "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO",
            // Retransmitted BYEs are absorbed by their server transaction; the dialog itself
            // is needed only briefly after the end.
            dialog_linger: Duration::from_secs(4),
            max_redirects: 3,
            scanner_user_agents: SCANNERS.to_vec(),
            id_first: 1,
            id_step: 1,
            record_route: None,
            hash_key: HashKey::random(),
        }
    }
}
