//! The callee role. Stateless per request except for 2xx retransmission on UDP (RFC 3261
//! §13.3.1.4: T1 doubling up to T2 until the ACK, giving up after 64·T1).
//!
//! Behaviour by Request-URI user: `busy…` → 486; `noans…` / `ring…` → 180 and wait for CANCEL
//! (→ 200 to the CANCEL + 487); anything else → 180 + 200 with SDP. BYE, OPTIONS and other
//! requests get 200. To-tags are a hash of Call-ID and user, so a retransmitted INVITE gets
//! the same answer.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_sip::frame::{Limits, StreamFramer};
use hotline_sip::{Message, Method};

use super::net::{frame, is_timeout, MAX_DATAGRAM};
use super::sip::{self, fnv, put_hex};
use super::SipTimers;

#[derive(Debug, Clone)]
pub struct UasOpts {
    /// UDP and TCP are both served on this address.
    pub listen: SocketAddr,
    /// UDP receive threads sharing the socket.
    pub threads: usize,
    pub timers: SipTimers,
}

/// Counters, shared by the role's threads.
#[derive(Debug, Default)]
pub struct UasStats {
    pub invites: AtomicU64,
    pub answered: AtomicU64,
    pub busy: AtomicU64,
    pub cancelled: AtomicU64,
    pub acks: AtomicU64,
    pub byes: AtomicU64,
    pub other_requests: AtomicU64,
    pub responses_in: AtomicU64,
    pub retransmitted_2xx: AtomicU64,
    pub no_ack: AtomicU64,
    pub parse_errors: AtomicU64,
    pub tcp_connections: AtomicU64,
}

impl UasStats {
    pub fn summary(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "uas: invites={} answered={} busy={} cancelled={} acks={} byes={} other={} responses_in={} retransmitted_2xx={} no_ack={} parse_errors={} tcp_connections={}",
            g(&self.invites),
            g(&self.answered),
            g(&self.busy),
            g(&self.cancelled),
            g(&self.acks),
            g(&self.byes),
            g(&self.other_requests),
            g(&self.responses_in),
            g(&self.retransmitted_2xx),
            g(&self.no_ack),
            g(&self.parse_errors),
            g(&self.tcp_connections),
        )
    }
}

const SHARDS: usize = 16;

struct Pending2xx {
    bytes: Vec<u8>,
    dest: SocketAddr,
    interval: Duration,
    due: Instant,
    give_up: Instant,
}

#[derive(Default)]
struct Shard {
    map: HashMap<u64, Pending2xx>,
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
}

/// 2xx responses waiting for their ACK (UDP only), sharded by key.
struct Pending {
    shards: Vec<Mutex<Shard>>,
    timers: SipTimers,
}

impl Pending {
    fn new(timers: SipTimers) -> Pending {
        Pending {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            timers,
        }
    }
    fn shard(&self, key: u64) -> &Mutex<Shard> {
        &self.shards[(key as usize) % SHARDS]
    }
    fn insert(&self, key: u64, bytes: &[u8], dest: SocketAddr, now: Instant) {
        let due = now + self.timers.t1;
        if let Ok(mut s) = self.shard(key).lock() {
            s.map.insert(
                key,
                Pending2xx {
                    bytes: bytes.to_vec(),
                    dest,
                    interval: self.timers.t1,
                    due,
                    give_up: now + self.timers.t1 * 64,
                },
            );
            s.heap.push(Reverse((due, key)));
        }
    }
    fn ack(&self, key: u64) {
        if let Ok(mut s) = self.shard(key).lock() {
            s.map.remove(&key);
        }
    }
    /// Whether no 2xx waits for its ACK.
    fn is_empty(&self) -> bool {
        self.shards
            .iter()
            .all(|s| s.lock().map_or(true, |s| s.heap.is_empty()))
    }

    /// Retransmit what is due; drop what gave up.
    fn run_due(&self, now: Instant, sock: &UdpSocket, stats: &UasStats) {
        for shard in &self.shards {
            let Ok(mut s) = shard.lock() else { continue };
            while let Some(Reverse((due, key))) = s.heap.peek().copied() {
                if due > now {
                    break;
                }
                s.heap.pop();
                let t2 = self.timers.t2;
                let mut resched = None;
                let mut remove = false;
                if let Some(p) = s.map.get_mut(&key) {
                    if p.due != due {
                        continue;
                    }
                    if now >= p.give_up {
                        remove = true;
                    } else {
                        let _ = sock.send_to(&p.bytes, p.dest);
                        stats.retransmitted_2xx.fetch_add(1, Ordering::Relaxed);
                        p.interval = (p.interval * 2).min(t2);
                        p.due = now + p.interval;
                        resched = Some(p.due);
                    }
                }
                if remove {
                    s.map.remove(&key);
                    stats.no_ack.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(d) = resched {
                    s.heap.push(Reverse((d, key)));
                }
            }
        }
    }
}

/// A running UAS; [`Uas::stop`] joins its threads.
pub struct Uas {
    pub stats: Arc<UasStats>,
    pub local: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Uas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uas").field("local", &self.local).finish()
    }
}

impl Uas {
    pub fn stop(self) -> Arc<UasStats> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.stats
    }
}

/// What a handler needs: reused buffers and the answer body.
struct Handler {
    out: Vec<u8>,
    tag: Vec<u8>,
    contact: Vec<u8>,
    sdp: Vec<u8>,
    local: SocketAddr,
    tcp: bool,
    stats: Arc<UasStats>,
}

impl Handler {
    fn new(local: SocketAddr, tcp: bool, stats: Arc<UasStats>) -> Handler {
        let mut sdp = Vec::new();
        sip::sdp(&mut sdp, &local.ip().to_string(), 20_000);
        Handler {
            out: Vec::with_capacity(2048),
            tag: Vec::with_capacity(16),
            contact: Vec::with_capacity(64),
            sdp,
            local,
            tcp,
            stats,
        }
    }

    /// Handle one message; `send` is called for each response, with `Some(key)` for a 2xx to
    /// an INVITE (to be retransmitted until its ACK).
    fn on_message(
        &mut self,
        msg: &Message,
        send: &mut dyn FnMut(&[u8], Option<u64>),
        ack: &mut dyn FnMut(u64),
    ) {
        let inc = |a: &AtomicU64| {
            a.fetch_add(1, Ordering::Relaxed);
        };
        let Some(method) = msg.method() else {
            inc(&self.stats.responses_in);
            return;
        };
        let user = sip::uri_user(msg.request_uri()).to_vec();
        self.tag.clear();
        put_hex(&mut self.tag, fnv(&[msg.call_id(), &user]), 16);
        let key = fnv(&[msg.call_id(), &self.tag]);
        match method {
            Method::Invite => {
                inc(&self.stats.invites);
                self.contact.clear();
                sip::put(&mut self.contact, &[b"<sip:", &user, b"@"]);
                sip::put_addr(&mut self.contact, self.local);
                if self.tcp {
                    self.contact.extend_from_slice(b";transport=tcp");
                }
                self.contact.push(b'>');
                if user.starts_with(b"busy") {
                    inc(&self.stats.busy);
                    sip::response(
                        &mut self.out,
                        msg,
                        486,
                        "Busy Here",
                        &self.tag,
                        None,
                        false,
                        None,
                        b"",
                    );
                    send(&self.out, None);
                    return;
                }
                sip::response(
                    &mut self.out,
                    msg,
                    180,
                    "Ringing",
                    &self.tag,
                    None,
                    true,
                    Some(&self.contact),
                    b"",
                );
                send(&self.out, None);
                if user.starts_with(b"noans") || user.starts_with(b"ring") {
                    return;
                }
                inc(&self.stats.answered);
                sip::response(
                    &mut self.out,
                    msg,
                    200,
                    "OK",
                    &self.tag,
                    None,
                    true,
                    Some(&self.contact),
                    &self.sdp,
                );
                send(&self.out, Some(key));
            }
            Method::Ack => {
                inc(&self.stats.acks);
                let key = fnv(&[msg.call_id(), msg.to_tag().unwrap_or(b"")]);
                ack(key);
            }
            Method::Cancel => {
                inc(&self.stats.cancelled);
                sip::response(
                    &mut self.out,
                    msg,
                    200,
                    "OK",
                    &self.tag,
                    None,
                    false,
                    None,
                    b"",
                );
                send(&self.out, None);
                sip::response(
                    &mut self.out,
                    msg,
                    487,
                    "Request Terminated",
                    &self.tag,
                    Some("INVITE"),
                    false,
                    None,
                    b"",
                );
                send(&self.out, None);
            }
            Method::Bye => {
                inc(&self.stats.byes);
                sip::response(
                    &mut self.out,
                    msg,
                    200,
                    "OK",
                    &self.tag,
                    None,
                    false,
                    None,
                    b"",
                );
                send(&self.out, None);
            }
            _ => {
                inc(&self.stats.other_requests);
                sip::response(
                    &mut self.out,
                    msg,
                    200,
                    "OK",
                    &self.tag,
                    None,
                    false,
                    None,
                    b"",
                );
                send(&self.out, None);
            }
        }
    }
}

/// Start the UAS: `opts.threads` UDP threads, a 2xx retransmission thread, a TCP acceptor.
pub fn start(opts: &UasOpts) -> io::Result<Uas> {
    super::check_loopback(opts.listen)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let udp = UdpSocket::bind(opts.listen)?;
    super::net::big_buffers(&udp);
    let local = udp.local_addr()?;
    let listener = TcpListener::bind(local)?;
    listener.set_nonblocking(true)?;
    let stats = Arc::new(UasStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let pending = Arc::new(Pending::new(opts.timers));
    let mut threads = Vec::new();
    for _ in 0..opts.threads.max(1) {
        let sock = udp.try_clone()?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let (stats, stop, pending) = (stats.clone(), stop.clone(), pending.clone());
        threads.push(std::thread::spawn(move || {
            udp_loop(sock, local, stats, stop, pending)
        }));
    }
    {
        let sock = udp.try_clone()?;
        let (stats, stop, pending) = (stats.clone(), stop.clone(), pending.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // 10 ms steps while a 2xx waits for its ACK; with none, only the stop flag
                // is polled (an idle UAS should hardly wake).
                let step = if pending.is_empty() { 50 } else { 10 };
                std::thread::sleep(Duration::from_millis(step));
                pending.run_due(Instant::now(), &sock, &stats);
            }
        }));
    }
    {
        let (stats, stop) = (stats.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            tcp_accept(listener, local, stats, stop)
        }));
    }
    Ok(Uas {
        stats,
        local,
        stop,
        threads,
    })
}

fn udp_loop(
    sock: UdpSocket,
    local: SocketAddr,
    stats: Arc<UasStats>,
    stop: Arc<AtomicBool>,
    pending: Arc<Pending>,
) {
    let mut h = Handler::new(local, false, stats.clone());
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if is_timeout(&e) => continue,
            Err(_) => continue,
        };
        let Some(bytes) = frame(&buf[..n]) else {
            continue;
        };
        let Ok(msg) = Message::parse(bytes) else {
            stats.parse_errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let now = Instant::now();
        h.on_message(
            &msg,
            &mut |out, key| {
                let _ = sock.send_to(out, from);
                if let Some(k) = key {
                    pending.insert(k, out, from, now);
                }
            },
            &mut |k| pending.ack(k),
        );
    }
}

fn tcp_accept(
    listener: TcpListener,
    local: SocketAddr,
    stats: Arc<UasStats>,
    stop: Arc<AtomicBool>,
) {
    let mut conns = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
                let (stats, stop) = (stats.clone(), stop.clone());
                conns.push(std::thread::spawn(move || {
                    tcp_conn(stream, local, stats, stop)
                }));
            }
            // No connection waiting: poll again in 50 ms (connections come at the start of
            // a run; a 5 ms poll cost 200 wake-ups a second for nothing).
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    for c in conns {
        let _ = c.join();
    }
}

fn tcp_conn(mut stream: TcpStream, local: SocketAddr, stats: Arc<UasStats>, stop: Arc<AtomicBool>) {
    if stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .is_err()
        || stream.set_nonblocking(false).is_err()
    {
        return;
    }
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut h = Handler::new(local, true, stats.clone());
    let mut framer = StreamFramer::new(Limits::default());
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => framer.push(&buf[..n]),
            Err(e) if is_timeout(&e) => continue,
            Err(_) => return,
        }
        loop {
            let bytes: Bytes = match framer.next_message() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(_) => {
                    stats.parse_errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            let Ok(msg) = Message::parse(bytes) else {
                stats.parse_errors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let mut broken = false;
            h.on_message(
                &msg,
                &mut |out, _| {
                    broken |= writer.write_all(out).is_err();
                },
                &mut |_| {},
            );
            if broken {
                return;
            }
        }
    }
}
