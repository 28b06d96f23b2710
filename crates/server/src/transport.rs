//! Sockets: one UDP socket per shard, all bound to the first listen address with
//! `SO_REUSEPORT` (the kernel spreads datagrams over them), one TCP listener on that address,
//! outbound TCP connections made on demand, stream framing per connection, idle timeouts.
//! Each further listen address ([`bind_more`]) gets one UDP socket, read by a task on the
//! main runtime that hands every datagram to shard 0 ([`ShardMsg::Datagram`]), and one TCP
//! listener; every shard sends from any of them (`Peer::local` says which).
//!
//! Every message belongs to the shard that owns its Call-ID ([`owner`]): a shard that reads
//! a datagram for another hands it over through that shard's inbox, parsed; TCP connections
//! (served on the main runtime) do the same. With one shard nothing is ever handed over.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::io::IoSliceMut;
use std::os::fd::AsRawFd;

use bytes::Bytes;
use dashmap::DashMap;
use hotline_sip::frame::{Limits, StreamFramer};
use hotline_sip::proxy::{Peer, Transport};
use hotline_sip::Message;
use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A message for a shard.
#[derive(Debug)]
pub enum ShardMsg {
    /// Parsed by whoever received it; this shard owns its Call-ID.
    Parsed(Peer, Box<Message>),
    /// Did not parse: the shard answers 400 (requests) or drops it (responses).
    Raw(Peer, Bytes),
    /// The transport could not reach this peer (ICMP unreachable, refused TCP connect): the
    /// shard fails its transactions towards it at once ([`hotline_sip::proxy::Proxy::transport_error`]).
    /// Sent to every shard: the error does not say which call it is about.
    Unreachable(Peer),
    /// A datagram read on a further listen address, as received: shard 0 checks its source,
    /// frames and parses it as one read from its own socket.
    Datagram(Peer, Bytes),
    /// An answer from Redis for one of this shard's calls (cluster).
    Cluster(Box<crate::cluster::Reply>),
}

/// Transport counters (read by metrics).
#[derive(Debug, Default)]
pub struct TransportStats {
    pub udp_in: AtomicU64,
    pub udp_out: AtomicU64,
    pub udp_send_errors: AtomicU64,
    pub framing_errors: AtomicU64,
    pub keepalives: AtomicU64,
    pub tcp_accepted: AtomicU64,
    pub tcp_closed: AtomicU64,
    pub tcp_connect_errors: AtomicU64,
    pub tcp_queue_full: AtomicU64,
    /// Messages handed from one shard to another (or from TCP to a shard).
    pub handed_over: AtomicU64,
    /// Hand-overs dropped because the owner's inbox was full (UDP retransmission recovers).
    pub handover_dropped: AtomicU64,
    /// TCP connections refused because `tcp_max_connections` were open.
    pub tcp_refused: AtomicU64,
    /// TCP connections closed because a message did not complete within the header timeout.
    pub tcp_slow: AtomicU64,
    /// ICMP destination-unreachable reports read from the UDP sockets' error queues.
    pub udp_unreachable: AtomicU64,
}

/// The shard that owns a Call-ID.
pub fn owner(call_id: &[u8], shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    // FNV-1a: cheap, stable, good enough to spread Call-IDs.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in call_id {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards as u64) as usize
}

/// Where messages go: every shard's inbox.
#[derive(Clone)]
pub struct Dispatch {
    pub inboxes: Arc<Vec<mpsc::Sender<ShardMsg>>>,
    pub stats: Arc<TransportStats>,
}

impl Dispatch {
    /// Hand a message to its owner (never blocks; a full inbox drops it and counts).
    pub fn hand_over(&self, to: usize, msg: ShardMsg) {
        let Some(tx) = self.inboxes.get(to) else {
            return;
        };
        self.stats.handed_over.fetch_add(1, Ordering::Relaxed);
        if tx.try_send(msg).is_err() {
            self.stats.handover_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Tell every shard but `except` that `peer` cannot be reached.
    pub fn unreachable(&self, peer: Peer, except: Option<usize>) {
        for (i, tx) in self.inboxes.iter().enumerate() {
            if Some(i) != except && tx.try_send(ShardMsg::Unreachable(peer)).is_err() {
                self.stats.handover_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Parse `bytes` and hand it to the shard owning its Call-ID (TCP path).
    pub fn dispatch(&self, source: Peer, bytes: Bytes) {
        match Message::parse(bytes.clone()) {
            Ok(m) => {
                let to = owner(m.call_id(), self.inboxes.len());
                self.hand_over(to, ShardMsg::Parsed(source, Box::new(m)));
            }
            Err(_) => self.hand_over(0, ShardMsg::Raw(source, bytes)),
        }
    }
}

type ConnMap = Arc<DashMap<SocketAddr, mpsc::Sender<Bytes>>>;

/// The UDP sockets of the further listen addresses (`Peer::local` 1, 2, ...), for sending.
pub type MoreUdp = Arc<Vec<std::net::UdpSocket>>;

/// The TCP side, shared by every shard: sends queue to the connection's writer task.
#[derive(Clone)]
pub struct Tcp {
    conns: ConnMap,
    dispatch: Dispatch,
    limits: Limits,
    idle: Duration,
    /// A message begun must be complete within this (slow-drip senders are cut off).
    header_timeout: Duration,
    max_conns: usize,
    rt: tokio::runtime::Handle,
}

impl Tcp {
    /// A TCP side with no listener (unit tests of the call path: nothing goes over TCP).
    #[cfg(test)]
    pub(crate) fn detached(dispatch: Dispatch) -> Tcp {
        Tcp {
            conns: Arc::new(DashMap::new()),
            dispatch,
            limits: Limits::default(),
            idle: Duration::from_secs(60),
            header_timeout: Duration::from_secs(5),
            max_conns: 16,
            rt: tokio::runtime::Handle::current(),
        }
    }

    /// Send without waiting: queue to the connection (made on demand; messages read on a
    /// connection we made count as arrived on listen address 0).
    pub fn send(&self, dest: SocketAddr, bytes: Bytes) {
        let existing = self.conns.get(&dest).map(|e| e.value().clone());
        match existing {
            Some(tx) => {
                if tx.try_send(bytes).is_err() {
                    self.dispatch
                        .stats
                        .tcp_queue_full
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            None => self.connect(dest, bytes),
        }
    }

    fn connect(&self, addr: SocketAddr, first: Bytes) {
        let (tx, rx) = mpsc::channel(256);
        self.conns.insert(addr, tx.clone());
        // The first message waits in the queue until the connection is up.
        let _ = tx.try_send(first);
        let this = self.clone();
        self.rt.spawn(async move {
            match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    run_connection(stream, addr, 0, rx, this).await;
                }
                r => {
                    this.dispatch
                        .stats
                        .tcp_connect_errors
                        .fetch_add(1, Ordering::Relaxed);
                    let error = match r {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_string(),
                    };
                    tracing::debug!(%addr, %error, "tcp connect failed");
                    this.conns.remove(&addr);
                    // A transport error (RFC 3261 §8.1.3.1): the branches towards it fail
                    // now, not when their timers run out.
                    let peer = Peer::new(Transport::Tcp, addr);
                    this.dispatch.unreachable(peer, None);
                }
            }
        });
    }
}

/// Datagrams read per system call (`recvmmsg`).
pub const BATCH: usize = 32;
/// One receive slot: the largest UDP payload fits (65,507 over IPv4), so nothing is cut.
const SLOT: usize = 65_536;

/// One shard's UDP socket, watched by its loop for readability only (`crate::poller`). Sends
/// never wait (a full send buffer drops the datagram, as a lossy network would), so write
/// readiness is of no use, and costs: on loopback every datagram sent frees its buffer at
/// once, and a registration for writability (as `tokio::net::UdpSocket` makes) is woken by
/// each of those frees, one more `epoll_wait` per loop turn.
pub type UdpFd = Arc<std::net::UdpSocket>;

/// The receiving side of one shard: up to [`BATCH`] datagrams per `recvmmsg`, so a wake-up
/// that finds several datagrams costs one system call, not one per datagram plus a final
/// `EAGAIN`.
pub struct RecvBatch {
    hdrs: MultiHeaders<SockaddrStorage>,
    bufs: Vec<u8>,
    got: Vec<(usize, Option<SocketAddr>)>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            hdrs: MultiHeaders::preallocate(BATCH, None),
            bufs: vec![0; BATCH * SLOT],
            got: Vec::with_capacity(BATCH),
        }
    }
}

impl RecvBatch {
    /// Read what the socket holds, up to [`BATCH`] datagrams, without waiting (they are then
    /// in [`RecvBatch::datagrams`]). Returns whether the socket was found empty (fewer than
    /// [`BATCH`]); then the loop forgets its readiness, and the next read waits for a new
    /// datagram instead of paying a system call to learn that there is none.
    pub fn recv(&mut self, udp: &std::net::UdpSocket) -> io::Result<bool> {
        match self.read(udp) {
            Ok(n) => Ok(n < BATCH),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn read(&mut self, udp: &std::net::UdpSocket) -> io::Result<usize> {
        self.got.clear();
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] = {
            let mut chunks = self.bufs.chunks_exact_mut(SLOT);
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or(&mut []))])
        };
        let res = recvmmsg(
            udp.as_raw_fd(),
            &mut self.hdrs,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        for r in res {
            let from = r.address.as_ref().and_then(std_addr);
            self.got.push((r.bytes, from));
        }
        Ok(self.got.len())
    }

    /// How many datagrams the last [`RecvBatch::recv`] read.
    pub fn len(&self) -> usize {
        self.got.len()
    }

    /// Whether the last [`RecvBatch::recv`] read nothing.
    pub fn is_empty(&self) -> bool {
        self.got.is_empty()
    }

    /// The datagrams of the last [`RecvBatch::recv`]: payload and source (`None` when the
    /// kernel gave no usable address, which does not happen for UDP/IP).
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], Option<SocketAddr>)> + '_ {
        self.got.iter().enumerate().map(|(i, &(n, from))| {
            let start = i * SLOT;
            (&self.bufs[start..start + n.min(SLOT)], from)
        })
    }
}

fn std_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// Error-queue entries read per wake-up at most (the rest wait for the next turn).
const ERRQUEUE_BATCH: usize = 64;

/// Read the socket's error queue (`IP_RECVERR`, see [`udp_socket`]) without waiting: the
/// destinations of datagrams an ICMP (or ICMPv6) destination unreachable came back for (port,
/// host, network unreachable; administratively prohibited) go to `out`. Other reports
/// (fragmentation needed, time exceeded) are read and ignored. Returns whether the queue was
/// found empty.
///
/// On Linux an unconnected UDP socket hears of ICMP errors only this way: the report's
/// `msg_name` is the original datagram's destination (ip(7)), the `sock_extended_err` says
/// what came back. The same error also sets the socket's pending error, which a plain read
/// returns once (`ECONNREFUSED`); reading the queue clears it.
pub fn unreachable_peers(udp: &impl AsRawFd, out: &mut Vec<SocketAddr>) -> io::Result<bool> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    // What the kernel gives back of the original datagram is not needed: a small buffer
    // (the report is truncated, MSG_TRUNC, which is fine).
    let mut buf = [0u8; 64];
    let mut cmsg = nix::cmsg_space!(nix::libc::sock_extended_err, nix::libc::sockaddr_in6);
    for _ in 0..ERRQUEUE_BATCH {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let r = recvmsg::<SockaddrStorage>(
            udp.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        );
        let msg = match r {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN) => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        let dest = msg.address.as_ref().and_then(std_addr);
        let Ok(cmsgs) = msg.cmsgs() else { continue };
        for c in cmsgs {
            let unreachable = match c {
                ControlMessageOwned::Ipv4RecvErr(ee, _) => {
                    ee.ee_origin == nix::libc::SO_EE_ORIGIN_ICMP && ee.ee_type == 3
                }
                ControlMessageOwned::Ipv6RecvErr(ee, _) => {
                    ee.ee_origin == nix::libc::SO_EE_ORIGIN_ICMP6 && ee.ee_type == 1
                }
                _ => false,
            };
            if let (true, Some(d)) = (unreachable, dest) {
                out.push(d);
            }
        }
    }
    Ok(false)
}

/// Sending side of one shard: its own UDP socket, the further listen addresses' sockets,
/// and the shared TCP side.
#[derive(Clone)]
pub struct Outbound {
    udp: UdpFd,
    more: MoreUdp,
    tcp: Tcp,
}

impl Outbound {
    pub fn new(udp: UdpFd, tcp: Tcp, more: MoreUdp) -> Outbound {
        Outbound { udp, more, tcp }
    }

    /// Send without waiting. A failure is counted; the transaction layer's timers deal with
    /// the loss as they would with a lost datagram.
    pub fn send(&self, dest: Peer, bytes: Bytes) {
        let stats = &self.tcp.dispatch.stats;
        match dest.transport {
            Transport::Udp => match self.udp_for(dest.local).send_to(&bytes, dest.addr) {
                Ok(_) => {
                    stats.udp_out.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.udp_send_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(dest = %dest.addr, error = %e, "udp send failed");
                }
            },
            Transport::Tcp => self.tcp.send(dest.addr, bytes),
        }
    }

    /// Send the UDP datagrams of `queue` (this shard's own socket) with as few system calls
    /// as the kernel allows (`sendmmsg`, up to [`crate::mmsg::MAX`] per call), in order, and
    /// empty it. A datagram the kernel refuses is counted and skipped, as [`Outbound::send`]
    /// does; the rest still go.
    pub fn send_udp_batch(&self, queue: &mut Vec<(Bytes, SocketAddr)>) {
        let stats = &self.tcp.dispatch.stats;
        let sock = &*self.udp;
        let mut i = 0;
        while i < queue.len() {
            match crate::mmsg::send(sock, &queue[i..]) {
                Ok(k) if k > 0 => {
                    stats.udp_out.fetch_add(k as u64, Ordering::Relaxed);
                    i += k;
                }
                Ok(_) => break,
                Err(e) => {
                    stats.udp_send_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(dest = %queue[i].1, error = %e, "udp send failed");
                    i += 1;
                }
            }
        }
        queue.clear();
    }

    /// The socket of listen address `local` (0: this shard's own).
    fn udp_for(&self, local: u8) -> &std::net::UdpSocket {
        match usize::from(local).checked_sub(1) {
            Some(i) => self.more.get(i).unwrap_or(&self.udp),
            None => &self.udp,
        }
    }
}

/// Bound sockets, before the shards start.
pub struct Listeners {
    /// One UDP socket per shard (std, non-blocking; each shard registers its own).
    pub udp: Vec<std::net::UdpSocket>,
    pub tcp: TcpListener,
    pub local: SocketAddr,
}

fn udp_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    udp_socket_with(addr, true)
}

fn udp_socket_with(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // Queue ICMP errors for this unconnected socket, so that a target with nothing listening
    // is known at once ([`unreachable_peers`]); without it Linux tells only connected sockets.
    {
        use nix::sys::socket::{setsockopt, sockopt};
        let r = if addr.is_ipv6() {
            setsockopt(&s, sockopt::Ipv6RecvErr, &true)
        } else {
            setsockopt(&s, sockopt::Ipv4RecvErr, &true)
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "IP_RECVERR unavailable: unreachable UDP targets wait out their timers");
        }
    }
    // Room for bursts: a shard that falls behind for a moment loses nothing.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Bind `shards` UDP sockets (SO_REUSEPORT) and one TCP listener on the same address.
///
/// Port 0: the TCP listener picks the port (an ephemeral TCP port is never shared), then the
/// UDP sockets bind that exact port. Binding UDP port 0 with SO_REUSEPORT first would let the
/// kernel hand out a port another process's reuseport socket (of the same user) already holds,
/// and it would then split datagrams between them.
pub async fn bind(addr: SocketAddr, shards: usize) -> io::Result<Listeners> {
    let mut last_err = None;
    for _ in 0..20 {
        let tcp = TcpListener::bind(addr).await?;
        let local = tcp.local_addr()?;
        let mut udp = Vec::with_capacity(shards.max(1));
        let mut failed = None;
        for _ in 0..shards.max(1) {
            match udp_socket(local) {
                Ok(s) => udp.push(s),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => return Ok(Listeners { udp, tcp, local }),
            // The UDP side of that TCP port is taken: try another port.
            Some(e) if addr.port() == 0 => last_err = Some(e),
            Some(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("could not bind UDP and TCP on one port")))
}

/// A further listen address, bound: one UDP socket (no `SO_REUSEPORT`: nothing else may
/// share it) and one TCP listener on the same port.
pub struct MoreListener {
    pub udp: std::net::UdpSocket,
    pub tcp: TcpListener,
    pub local: SocketAddr,
}

/// Bind a further listen address: TCP first (port 0 picks it), then UDP on that port.
pub async fn bind_more(addr: SocketAddr) -> io::Result<MoreListener> {
    let mut last_err = None;
    for _ in 0..20 {
        let tcp = TcpListener::bind(addr).await?;
        let local = tcp.local_addr()?;
        match udp_socket_with(local, false) {
            Ok(udp) => return Ok(MoreListener { udp, tcp, local }),
            Err(e) if addr.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("could not bind UDP and TCP on one port")))
}

/// Read listen address `local`'s UDP socket on the current runtime and hand every datagram
/// to shard 0 (which filters, frames and parses it). Ends when the socket fails to register.
pub fn start_udp_reader(local: u8, udp: std::net::UdpSocket, dispatch: Dispatch) {
    tokio::spawn(async move {
        let sock = match tokio::net::UdpSocket::from_std(udp) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(local, error = %e, "cannot register a listen socket");
                return;
            }
        };
        let mut buf = vec![0u8; SLOT];
        loop {
            match sock.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    let peer = Peer {
                        transport: Transport::Udp,
                        addr: from,
                        local,
                    };
                    let data = Bytes::copy_from_slice(&buf[..n.min(SLOT)]);
                    dispatch.hand_over(0, ShardMsg::Datagram(peer, data));
                }
                // ICMP errors (port unreachable) surface here on Linux: read the error queue
                // (IP_RECVERR is on for this socket too; left unread, its reports would take
                // the receive buffer) and fail the branches towards those peers at once.
                Err(_) => {
                    let mut peers = Vec::new();
                    for _ in 0..16 {
                        match unreachable_peers(&sock, &mut peers) {
                            Ok(false) => continue,
                            Ok(true) | Err(_) => break,
                        }
                    }
                    peers.sort_unstable();
                    peers.dedup();
                    for addr in peers {
                        dispatch
                            .stats
                            .udp_unreachable
                            .fetch_add(1, Ordering::Relaxed);
                        let peer = Peer {
                            transport: Transport::Udp,
                            addr,
                            local,
                        };
                        dispatch.unreachable(peer, None);
                    }
                    tokio::task::yield_now().await;
                }
            }
        }
    });
}

/// TCP limits from `[server.sip]`.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub idle: Duration,
    pub header_timeout: Duration,
    pub max_connections: usize,
}

/// Start accepting TCP connections on the current runtime. Returns the shared TCP side.
pub fn start_tcp(listener: TcpListener, limits: Limits, tl: TcpLimits, dispatch: Dispatch) -> Tcp {
    let tcp = Tcp {
        conns: Arc::new(DashMap::new()),
        dispatch,
        limits,
        idle: tl.idle,
        header_timeout: tl.header_timeout,
        max_conns: tl.max_connections,
        rt: tokio::runtime::Handle::current(),
    };
    accept(tcp.clone(), listener, 0);
    tcp
}

impl Tcp {
    /// Accept connections on a further listen address (`local`), into the same TCP side.
    pub fn accept_more(&self, listener: TcpListener, local: u8) {
        accept(self.clone(), listener, local);
    }
}

/// The accept loop of one TCP listener (listen address `local`), on the current runtime.
fn accept(acc: Tcp, listener: TcpListener, local: u8) {
    tokio::spawn(async move {
        loop {
            let (stream, from) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if acc.conns.len() >= acc.max_conns {
                // At the cap: close at once (the peer sees a reset), count it.
                acc.dispatch
                    .stats
                    .tcp_refused
                    .fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
            acc.dispatch
                .stats
                .tcp_accepted
                .fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            let (tx, rx) = mpsc::channel(256);
            acc.conns.insert(from, tx);
            let this = acc.clone();
            tokio::spawn(run_connection(stream, from, local, rx, this));
        }
    });
}

/// Read and write one TCP connection until it breaks, its framing breaks, or it idles out.
async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    local: u8,
    mut outq: mpsc::Receiver<Bytes>,
    tcp: Tcp,
) {
    let (mut rd, mut wr) = stream.into_split();
    let mut framer = StreamFramer::new(tcp.limits);
    let idle = tcp.idle;
    let source = Peer {
        transport: Transport::Tcp,
        addr: peer,
        local,
    };
    let stats = tcp.dispatch.stats.clone();
    // When the bytes of an unfinished message started to arrive.
    let mut partial_since: Option<tokio::time::Instant> = None;
    loop {
        let wait = match partial_since {
            Some(t) => tcp.header_timeout.saturating_sub(t.elapsed()).min(idle),
            None => idle,
        };
        tokio::select! {
            r = tokio::time::timeout(wait, rd.read_buf(framer.buffer())) => {
                match r {
                    Err(_) if partial_since.is_some() => {
                        stats.tcp_slow.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "tcp message not completed in time, closing");
                        break;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "tcp idle timeout");
                        break;
                    }
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => {}
                }
                let mut broken = false;
                let mut completed = false;
                loop {
                    match framer.next_message() {
                        Ok(Some(bytes)) => {
                            completed = true;
                            tcp.dispatch.dispatch(source, bytes);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            stats.framing_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, error = %e, "tcp framing broken, closing");
                            broken = true;
                            break;
                        }
                    }
                }
                if broken {
                    break;
                }
                // The clock runs from the first byte of the message still unfinished: a busy
                // trunk whose reads end mid-message restarts it with every message completed.
                partial_since = match (framer.buffered(), partial_since) {
                    (0, _) => None,
                    (_, Some(t)) if !completed => Some(t),
                    (_, _) => Some(tokio::time::Instant::now()),
                };
            }
            msg = outq.recv() => {
                let Some(msg) = msg else { break };
                if wr.write_all(&msg).await.is_err() {
                    break;
                }
            }
        }
    }
    stats.tcp_closed.fetch_add(1, Ordering::Relaxed);
    tcp.conns.remove(&peer);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram to a loopback port nobody listens on comes back as an ICMP port
    /// unreachable, which the (unconnected) socket reads from its error queue.
    #[test]
    fn icmp_port_unreachable_names_the_destination() {
        let s = udp_socket("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let dead = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let dead_addr = dead.local_addr().expect("local addr");
        drop(dead);
        assert!(s.send_to(b"OPTIONS", dead_addr).is_ok());
        let mut got = Vec::new();
        // Bounded wait: loopback ICMP is immediate, allow 2 s.
        for _ in 0..200 {
            if unreachable_peers(&s, &mut got).is_ok() && !got.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(got, vec![dead_addr]);
        // The queue is empty again and a plain read finds nothing, not a stale error.
        let mut more = Vec::new();
        assert!(matches!(unreachable_peers(&s, &mut more), Ok(true)));
        assert!(more.is_empty());
        let mut buf = [0u8; 16];
        let r = s.recv_from(&mut buf);
        assert!(
            matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
            "{r:?}"
        );
    }
}
