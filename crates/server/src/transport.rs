//! Sockets: one UDP socket and one TCP listener on the same address, outbound TCP connections
//! made on demand, stream framing per connection, idle timeouts.
//!
//! Everything received is handed to the core task as [`Inbound`]; the core sends through
//! [`Outbound`], which never blocks: UDP uses `try_send_to`, TCP queues to the connection's
//! writer task through a bounded channel.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use hotline_sip::frame::{frame_datagram, Framed, Limits, StreamFramer};
use hotline_sip::proxy::{Peer, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// One framed message from the network.
#[derive(Debug)]
pub struct Inbound {
    pub source: Peer,
    pub bytes: Bytes,
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
}

type ConnMap = Arc<DashMap<SocketAddr, mpsc::Sender<Bytes>>>;

/// Sending side, owned by the core task.
#[derive(Clone)]
pub struct Outbound {
    udp: Arc<UdpSocket>,
    conns: ConnMap,
    inbound: mpsc::Sender<Inbound>,
    limits: Limits,
    idle: Duration,
    stats: Arc<TransportStats>,
}

impl Outbound {
    /// Send without waiting. A failure is counted; the transaction layer's timers deal with
    /// the loss as they would with a lost datagram.
    pub fn send(&self, dest: Peer, bytes: Bytes) {
        match dest.transport {
            Transport::Udp => match self.udp.try_send_to(&bytes, dest.addr) {
                Ok(_) => {
                    self.stats.udp_out.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.stats.udp_send_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(dest = %dest.addr, error = %e, "udp send failed");
                }
            },
            Transport::Tcp => {
                let existing = self.conns.get(&dest.addr).map(|e| e.value().clone());
                match existing {
                    Some(tx) => {
                        if tx.try_send(bytes).is_err() {
                            self.stats.tcp_queue_full.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => self.connect(dest.addr, bytes),
                }
            }
        }
    }

    fn connect(&self, addr: SocketAddr, first: Bytes) {
        let (tx, rx) = mpsc::channel(256);
        self.conns.insert(addr, tx.clone());
        // The first message waits in the queue until the connection is up.
        let _ = tx.try_send(first);
        let this = self.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    run_connection(stream, addr, rx, this).await;
                }
                _ => {
                    this.stats
                        .tcp_connect_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%addr, "tcp connect failed");
                    this.conns.remove(&addr);
                }
            }
        });
    }

    pub fn stats(&self) -> &Arc<TransportStats> {
        &self.stats
    }
}

/// Bound sockets, before the tasks start.
pub struct Listeners {
    pub udp: Arc<UdpSocket>,
    pub tcp: TcpListener,
    pub local: SocketAddr,
}

/// Bind UDP and TCP on the same address. Port 0 picks one free port for both (retrying when
/// the TCP side of the UDP-chosen port is taken).
pub async fn bind(addr: SocketAddr) -> io::Result<Listeners> {
    let mut last_err = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await?;
        let local = udp.local_addr()?;
        match TcpListener::bind(local).await {
            Ok(tcp) => {
                return Ok(Listeners {
                    udp: Arc::new(udp),
                    tcp,
                    local,
                })
            }
            Err(e) if addr.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("could not bind UDP and TCP on one port")))
}

/// Start the receive tasks. Returns the sending half and the receiving channel for the core.
pub fn start(
    listeners: Listeners,
    limits: Limits,
    idle: Duration,
    stats: Arc<TransportStats>,
) -> (Outbound, mpsc::Receiver<Inbound>) {
    let (in_tx, in_rx) = mpsc::channel::<Inbound>(8192);
    let out = Outbound {
        udp: listeners.udp.clone(),
        conns: Arc::new(DashMap::new()),
        inbound: in_tx.clone(),
        limits,
        idle,
        stats: stats.clone(),
    };
    // UDP receive loop.
    let udp = listeners.udp;
    let tx = in_tx.clone();
    let st = stats.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = match udp.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    // ICMP port unreachable surfaces here on Linux; keep going.
                    tracing::trace!(error = %e, "udp recv error");
                    continue;
                }
            };
            st.udp_in.fetch_add(1, Ordering::Relaxed);
            let datagram = Bytes::copy_from_slice(&buf[..n]);
            match frame_datagram(datagram, &limits) {
                Ok(Framed::Message(bytes)) => {
                    let source = Peer {
                        transport: Transport::Udp,
                        addr: from,
                    };
                    if tx.send(Inbound { source, bytes }).await.is_err() {
                        return;
                    }
                }
                Ok(Framed::KeepAlive) => {
                    st.keepalives.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    // Let the core answer 400 when it is a request: pass it on unframed.
                    st.framing_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%from, error = %e, "udp framing error");
                    let source = Peer {
                        transport: Transport::Udp,
                        addr: from,
                    };
                    let bytes = Bytes::copy_from_slice(&buf[..n.min(limits.max_message)]);
                    if tx.send(Inbound { source, bytes }).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    // TCP accept loop.
    let tcp = listeners.tcp;
    let acc = out.clone();
    tokio::spawn(async move {
        loop {
            let (stream, from) = match tcp.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            acc.stats.tcp_accepted.fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            let (tx, rx) = mpsc::channel(256);
            acc.conns.insert(from, tx);
            let this = acc.clone();
            tokio::spawn(run_connection(stream, from, rx, this));
        }
    });
    (out, in_rx)
}

/// Read and write one TCP connection until it breaks, its framing breaks, or it idles out.
async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    mut outq: mpsc::Receiver<Bytes>,
    out: Outbound,
) {
    let (mut rd, mut wr) = stream.into_split();
    let mut framer = StreamFramer::new(out.limits);
    let idle = out.idle;
    let source = Peer {
        transport: Transport::Tcp,
        addr: peer,
    };
    loop {
        tokio::select! {
            r = tokio::time::timeout(idle, rd.read_buf(framer.buffer())) => {
                match r {
                    Err(_) => {
                        tracing::debug!(%peer, "tcp idle timeout");
                        break;
                    }
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => {}
                }
                let mut broken = false;
                loop {
                    match framer.next_message() {
                        Ok(Some(bytes)) => {
                            if out.inbound.send(Inbound { source, bytes }).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            out.stats.framing_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, error = %e, "tcp framing broken, closing");
                            broken = true;
                            break;
                        }
                    }
                }
                if broken {
                    break;
                }
            }
            msg = outq.recv() => {
                let Some(msg) = msg else { break };
                if wr.write_all(&msg).await.is_err() {
                    break;
                }
            }
        }
    }
    out.stats.tcp_closed.fetch_add(1, Ordering::Relaxed);
    out.conns.remove(&peer);
}
