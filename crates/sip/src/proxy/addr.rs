//! Addressing: which hosts are us (listen addresses, aliases, the cluster address), next
//! hops from URIs and Route sets (loose routing, §16.4), where responses go (Via, rport), the
//! listen address a request leaves from, and our Via and Record-Route values.

use std::net::SocketAddr;

use crate::msg::{Message, Method, Via};
use crate::rewrite;
use crate::uri::Uri;

use super::{Peer, Proxy, Transport};

/// Whether `host` + `port` (as found in a URI or Via, brackets stripped) name the cluster
/// address `rr` (`host`, `host:port`, `[v6]`, `[v6]:port`; no port = 5060).
pub(super) fn cluster_address_is(rr: &str, host: &str, port: u16) -> bool {
    let (h, p) = if let Some(rest) = rr.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':').map(str::parse)),
            None => (rr, None),
        }
    } else if rr.matches(':').count() == 1 {
        match rr.split_once(':') {
            Some((h, p)) => (h, Some(p.parse())),
            None => (rr, None),
        }
    } else {
        (rr, None)
    };
    let p = match p {
        None => 5060,
        Some(Ok(p)) => p,
        Some(Err(_)) => return false,
    };
    p == port && h.eq_ignore_ascii_case(host)
}

/// One listen address as we write it (formatted once).
pub(super) struct Iface {
    pub(super) addr: SocketAddr,
    /// `host:port` as written in Via.
    pub(super) sent_by: String,
    /// The IP as `Display` writes it (without brackets): a host written exactly like this is
    /// us without parsing it.
    pub(super) ip: String,
    pub(super) rr_udp: String,
    pub(super) rr_tcp: String,
}

impl Iface {
    /// The interface of listen address `addr`; `rr`: the cluster address to Record-Route with
    /// instead of `addr` itself.
    pub(super) fn new(addr: SocketAddr, rr: Option<&str>) -> Iface {
        let sent_by = match addr {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        let route = rr.unwrap_or(&sent_by);
        Iface {
            addr,
            rr_udp: format!("<sip:{route};lr>"),
            rr_tcp: format!("<sip:{route};transport=tcp;lr>"),
            ip: addr.ip().to_string(),
            sent_by,
        }
    }
}

pub(super) const BRANCH_PREFIX: &str = "z9hG4bK-hl";

impl Proxy {
    pub(super) fn is_local(&self, host: &[u8], port: Option<u16>) -> bool {
        let port = port.unwrap_or(5060);
        let host = host
            .strip_prefix(b"[")
            .and_then(|h| h.strip_suffix(b"]"))
            .unwrap_or(host);
        if self
            .ifaces
            .iter()
            .any(|i| port == i.addr.port() && host == i.ip.as_bytes())
        {
            // What the parse below would find for our own address as we write it.
            return true;
        }
        let Ok(h) = std::str::from_utf8(host) else {
            return false;
        };
        if let Some(rr) = &self.cfg.record_route {
            if cluster_address_is(rr, h, port) {
                return true;
            }
        }
        let Some(ip) = crate::uri::parse_ip(host) else {
            return false;
        };
        self.cfg
            .listen_addrs()
            .chain(self.cfg.aliases.iter())
            .any(|a| a.port() == port && (a.ip() == ip || a.ip().is_unspecified()))
    }

    pub(super) fn uri_is_local(&self, uri: &[u8]) -> bool {
        // A Route is usually our own Record-Route copied back byte for byte (RFC 3261
        // §12.1.2): that is us without parsing it (the parse would find our host and port).
        if self
            .ifaces
            .iter()
            .any(|i| uri == i.rr_udp.as_bytes() || uri == i.rr_tcp.as_bytes())
        {
            return true;
        }
        match Uri::parse_name_addr(uri) {
            Some(u) if !u.host.is_empty() => self.is_local(u.host, u.port),
            _ => false,
        }
    }

    /// Next hop for a URI: IP literal host + port, transport from `;transport=` (the URI
    /// parser's reading, as config validates targets with). `None` for a host that is not an
    /// IP literal or a transport Hotline does not speak (`tls`, `sctp`, ...): not reachable,
    /// rather than sent over UDP.
    pub fn resolve_uri(uri: &[u8]) -> Option<Peer> {
        Self::resolve_parsed(&Uri::parse_name_addr(uri)?)
    }

    /// [`Proxy::resolve_uri`] of a URI parsed already.
    fn resolve_parsed(u: &Uri<'_>) -> Option<Peer> {
        let ip = u.ip()?;
        let transport = u.transport().ok()?;
        Some(Peer::new(
            transport,
            SocketAddr::new(ip, u.port.unwrap_or(5060)),
        ))
    }

    pub(super) fn reply_peer(via: &Via<'_>, source: Peer) -> Peer {
        if source.transport == Transport::Tcp || via.rport.is_some() {
            return source;
        }
        Peer {
            transport: source.transport,
            addr: SocketAddr::new(source.addr.ip(), via.port.unwrap_or(5060)),
            local: source.local,
        }
    }

    /// The listen address a request to `dest` leaves from: `prefer` (the one the call came
    /// in on) when it is of `dest`'s IP family, else the first of that family, else `prefer`
    /// (the send then fails as it would have anyway).
    pub(super) fn iface_for(&self, dest: SocketAddr, prefer: u8) -> u8 {
        let fits = |i: &Iface| i.addr.is_ipv4() == dest.is_ipv4();
        if self.ifaces.get(usize::from(prefer)).is_some_and(fits) {
            return prefer;
        }
        self.ifaces
            .iter()
            .position(fits)
            .and_then(|i| u8::try_from(i).ok())
            .unwrap_or(prefer)
    }

    /// `dest` with the listen address it is to be sent from (see [`Proxy::iface_for`]).
    pub(super) fn leaving_from(&self, dest: Peer, prefer: u8) -> Peer {
        Peer {
            local: self.iface_for(dest.addr, prefer),
            ..dest
        }
    }

    pub(super) fn iface(&self, local: u8) -> &Iface {
        // `ifaces` is never empty (it holds `cfg.local`).
        self.ifaces
            .get(usize::from(local))
            .unwrap_or(&self.ifaces[0])
    }

    /// A new branch id and our Via value carrying it
    /// (`SIP/2.0/UDP host:port;branch=z9hG4bK-hl<loop hash, 16 hex>-<id, hex>;rport`), written
    /// into `self.via` (reused: no allocation per message). `dest.local` says which of our
    /// addresses it names.
    pub(super) fn new_via(&mut self, loop_hash: u64, dest: Peer) -> u64 {
        let id = self.id();
        self.write_via(id, loop_hash, dest);
        id
    }

    /// [`Proxy::new_via`] for branch id `id`, allocated already.
    pub(super) fn write_via(&mut self, id: u64, loop_hash: u64, dest: Peer) {
        let i = usize::from(dest.local).min(self.ifaces.len() - 1);
        let v = &mut self.via;
        v.clear();
        v.extend_from_slice(b"SIP/2.0/");
        v.extend_from_slice(dest.transport.via_name().as_bytes());
        v.push(b' ');
        v.extend_from_slice(self.ifaces[i].sent_by.as_bytes());
        v.extend_from_slice(b";branch=");
        v.extend_from_slice(BRANCH_PREFIX.as_bytes());
        rewrite::push_hex(v, loop_hash, 16);
        v.push(b'-');
        rewrite::push_hex(v, id, 1);
        v.extend_from_slice(b";rport");
    }

    /// One Record-Route entry serves both sides: we listen on UDP and TCP at the same address.
    /// Across transports the entry names none, so each side reaches us over UDP by default
    /// (RFC 5658 double record-routing is not needed for that). It names the listen address
    /// the request came in on (`inbound.local`).
    pub(super) fn record_route(&self, inbound: Peer, outbound: Transport) -> &str {
        let i = self.iface(inbound.local);
        if inbound.transport == Transport::Tcp && outbound == Transport::Tcp {
            &i.rr_tcp
        } else {
            &i.rr_udp
        }
    }

    /// Branch id carried in one of our branch parameters.
    pub(super) fn branch_id(branch: &[u8]) -> Option<u64> {
        let rest = branch.strip_prefix(BRANCH_PREFIX.as_bytes())?;
        let dash = rest.iter().position(|&b| b == b'-')?;
        let id = std::str::from_utf8(&rest[dash + 1..]).ok()?;
        u64::from_str_radix(id, 16).ok()
    }

    pub(super) fn loop_hash(&self, msg: &Message) -> u64 {
        let cseq = msg.cseq().0.to_be_bytes();
        self.key.hash(&[
            msg.request_uri(),
            msg.from_tag().unwrap_or(b""),
            msg.to_tag().unwrap_or(b""),
            msg.call_id(),
            &cseq,
        ])
    }

    /// The key of a request's server transaction (§17.2.3): top Via branch and sent-by, and
    /// the method (an ACK matches its INVITE).
    pub(super) fn server_key(&self, msg: &Message) -> u64 {
        let method = match msg.method() {
            Some(Method::Ack) => b"INVITE".as_slice(),
            _ => msg.method_bytes(),
        };
        self.via_key(&msg.top_via(), method)
    }

    /// The server transaction key of a request with top Via `via` and `method`.
    pub(super) fn via_key(&self, via: &Via<'_>, method: &[u8]) -> u64 {
        self.key.hash(&[
            via.branch.unwrap_or(b""),
            via.host,
            &via.port.unwrap_or(5060).to_be_bytes(),
            method,
        ])
    }

    /// Loose routing (§16.4, §16.12): pop the Route entries that name us (one, or the two of
    /// a double Record-Route), then the next hop is the next Route entry or the Request-URI.
    /// Returns the hop and how many entries to pop.
    pub(super) fn next_hop(&self, msg: &Message) -> Option<(Peer, u8)> {
        let mut routes = msg.routes();
        let first = routes.next();
        match first {
            Some(r) if self.uri_is_local(r) => {
                let mut pops = 1;
                let mut next = routes.next();
                if next.is_some_and(|n| self.uri_is_local(n)) {
                    pops = 2;
                    next = routes.next();
                }
                match next {
                    Some(next) => Some((Self::resolve_uri(next)?, pops)),
                    // The Request-URI as the start line's check parsed it (`Uri::parse`, what
                    // `parse_name_addr` gives for a value without '<').
                    None => {
                        let peer = match msg.request_uri_parsed() {
                            Some(u) => Self::resolve_parsed(&u),
                            None => Self::resolve_uri(msg.request_uri()),
                        };
                        Some((peer?, pops))
                    }
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod cluster_address_tests {
    use super::*;
    use crate::proxy::ProxyConfig;
    use bytes::Bytes;

    #[test]
    fn next_hops_take_the_uri_parsers_transport() {
        let hop = |u: &[u8]| Proxy::resolve_uri(u).map(|p| (p.transport, p.addr.to_string()));
        assert_eq!(
            hop(b"sip:a@10.0.0.9:5070"),
            Some((Transport::Udp, "10.0.0.9:5070".into()))
        );
        assert_eq!(
            hop(b"<sip:a@[::1];transport=TCP;lr>"),
            Some((Transport::Tcp, "[::1]:5060".into()))
        );
        assert_eq!(
            hop(b"sip:a@10.0.0.9;transport=sctp"),
            None,
            "not spoken: not reachable"
        );
        assert_eq!(hop(b"sip:a@10.0.0.9;transport=tls"), None);
        assert_eq!(hop(b"sip:a@host.example"), None, "no DNS");
    }

    #[test]
    fn own_record_route_is_local_verbatim_or_parsed() {
        let p = Proxy::new(ProxyConfig::new(SocketAddr::from(([127, 0, 0, 2], 5080))));
        let i = &p.ifaces[0];
        assert!(p.uri_is_local(i.rr_udp.as_bytes()), "verbatim");
        assert!(p.uri_is_local(i.rr_tcp.as_bytes()), "verbatim");
        assert!(p.uri_is_local(b"<sip:127.0.0.2:5080;lr;x=1>"), "parsed");
        assert!(p.uri_is_local(b"sip:127.0.0.2:5080;lr"), "parsed");
        assert!(!p.uri_is_local(b"<sip:127.0.0.2:5081;lr>"));
        assert!(!p.uri_is_local(b"<sip:127.0.0.3:5080;lr>"));
    }

    /// Our Route popped, the next hop is the Request-URI, read as the start line's check
    /// parsed it: its `;transport=` and port count, as `resolve_uri` reads them.
    #[test]
    fn next_hop_after_our_route_is_the_parsed_request_uri() {
        let p = Proxy::new(ProxyConfig::new(SocketAddr::from(([127, 0, 0, 2], 5080))));
        let hop = |ruri: &str, routes: &str| {
            let m = format!(
                "BYE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n{routes}\
                 From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c\r\n\
                 CSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            let m = Message::parse(Bytes::from(m)).expect("parses");
            p.next_hop(&m)
                .map(|(peer, pops)| (peer.transport, peer.addr.to_string(), pops))
        };
        let rr = p.ifaces[0].rr_udp.clone();
        assert_eq!(
            hop(
                "sip:u@10.0.0.9:5070;transport=tcp",
                &format!("Route: {rr}\r\n")
            ),
            Some((Transport::Tcp, "10.0.0.9:5070".into(), 1))
        );
        assert_eq!(
            hop("sip:u@10.0.0.9", &format!("Route: {rr}\r\n")),
            Some((Transport::Udp, "10.0.0.9:5060".into(), 1))
        );
        assert_eq!(
            hop(
                "sip:u@10.0.0.9",
                &format!("Route: {rr}, <sip:10.0.0.7:5062;lr>\r\n")
            ),
            Some((Transport::Udp, "10.0.0.7:5062".into(), 1))
        );
        assert_eq!(
            hop("sip:u@host.example", &format!("Route: {rr}\r\n")),
            None,
            "no DNS"
        );
        assert_eq!(hop("sip:u@10.0.0.9", ""), None, "no Route of ours");
    }

    #[test]
    fn cluster_address_matches_host_and_port() {
        assert!(cluster_address_is("sip.example", "SIP.example", 5060));
        assert!(!cluster_address_is("sip.example", "sip.example", 5070));
        assert!(cluster_address_is("sip.example:5070", "sip.example", 5070));
        assert!(cluster_address_is("10.0.0.9:5070", "10.0.0.9", 5070));
        assert!(cluster_address_is("[::1]:5070", "::1", 5070));
        assert!(cluster_address_is("::1", "::1", 5060));
        assert!(!cluster_address_is("a.example:x", "a.example", 5060));
    }

    #[test]
    fn record_route_names_the_cluster_address_which_counts_as_us() {
        let mut cfg = ProxyConfig::new(SocketAddr::from(([127, 0, 0, 2], 5080)));
        cfg.record_route = Some("sip.hotline.example:5090".into());
        let p = Proxy::new(cfg);
        // Every interface Record-Routes with the cluster address.
        for i in &p.ifaces {
            assert_eq!(i.rr_udp, "<sip:sip.hotline.example:5090;lr>");
            assert_eq!(i.rr_tcp, "<sip:sip.hotline.example:5090;transport=tcp;lr>");
        }
        assert!(p.uri_is_local(b"<sip:sip.hotline.example:5090;lr>"));
        assert!(p.uri_is_local(b"<sip:127.0.0.2:5080;lr>"));
        assert!(!p.uri_is_local(b"<sip:other.example:5090;lr>"));
        assert!(
            p.ifaces[0].sent_by.starts_with("127.0.0.2:5080"),
            "Via stays the node's own"
        );
    }
}
