//! A shard thread's event loop primitive: one epoll instance watching the shard's UDP socket
//! and one eventfd, the shard's bell, that everything else wakes the shard through.
//!
//! Owns: waiting, and what a wake-up found. Must not: read the socket or decide what is due
//! (the shard loop in `core` does both; [`crate::alarm`] says how long it may wait).
//!
//! Why not a tokio runtime per shard: at a few thousand calls per second nearly every
//! datagram is a wake-up, and a current-thread runtime spent ~24,000 instructions per call
//! (docs/PERFORMANCE.md, issue 17) on its reactor turn, timer wheel, task wake-ups and the
//! select over five futures, where this loop needs one `epoll_wait` and a flag test.
//!
//! - The socket is registered edge-triggered, as tokio registers it: a wake-up says "became
//!   readable" (or "an error report arrived"), and the loop remembers that until a read finds
//!   the socket empty ([`Readiness`]), so it never spins on a level it has not drained and
//!   never misses one it left for the next turn.
//! - The bell is a [`std::task::Waker`]: the shard polls its inbox (a tokio `mpsc`) and its
//!   drain signal (a tokio `watch`) with it, so a sender on any thread (another shard, a TCP
//!   reader, a Redis task on the main runtime) wakes the shard by waking that waker. The
//!   eventfd is written only on the first wake after the shard looked (an atomic flag), so a
//!   burst of hand-overs costs one write, not one per message.

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

const SOCKET: u64 = 0;
const BELL: u64 = 1;

/// The eventfd behind a shard's waker.
struct Bell {
    fd: EventFd,
    /// Set by the first wake since the shard last looked; cleared by the shard.
    rung: AtomicBool,
}

impl Wake for Bell {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.rung.swap(true, Ordering::AcqRel) {
            // A full counter (2^64 - 2 unread wakes) cannot happen: the shard reads it on
            // every wake-up. Any other failure leaves the shard to its next timer.
            let _ = self.fd.write(1);
        }
    }
}

/// What the socket is known to hold, kept across turns (edge-triggered: the kernel says it
/// once).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// Datagrams may be waiting: read until a read comes back short.
    pub readable: bool,
    /// The error queue has reports (ICMP unreachable): read it until empty.
    pub error: bool,
}

impl Readiness {
    /// Work is left over from an earlier turn: the next wait must not block.
    pub fn any(self) -> bool {
        self.readable || self.error
    }
}

/// See the module docs.
pub struct Poller {
    ep: Epoll,
    bell: Arc<Bell>,
    waker: Waker,
    events: [EpollEvent; 4],
    /// The socket's readiness, as far as this loop knows.
    pub ready: Readiness,
}

impl Poller {
    /// Watch `socket` (edge-triggered, readable and error reports) and the bell.
    pub fn new(socket: &impl AsFd) -> io::Result<Poller> {
        let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let fd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        ep.add(
            socket,
            EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLET, SOCKET),
        )?;
        ep.add(&fd, EpollEvent::new(EpollFlags::EPOLLIN, BELL))?;
        let bell = Arc::new(Bell {
            fd,
            // Rung: the first turn looks at the inbox and the drain signal, which registers
            // the waker with them.
            rung: AtomicBool::new(true),
        });
        Ok(Poller {
            ep,
            waker: Waker::from(bell.clone()),
            bell,
            events: [EpollEvent::empty(); 4],
            ready: Readiness {
                // A datagram may have arrived before the registration: look once.
                readable: true,
                error: false,
            },
        })
    }

    /// The waker that rings this shard's bell (give it to whatever the shard polls).
    pub fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Ring the bell from the shard itself: the next [`Poller::wait`] returns at once and
    /// says the bell rang (work was left in the inbox).
    pub fn ring(&self) {
        self.waker.wake_by_ref();
    }

    /// Wait until the socket or the bell has something, or `timeout` has passed (rounded up
    /// to whole milliseconds, epoll's unit; the shard's timers are on a 10 ms grid anyway).
    /// Does not block when [`Poller::ready`] says work is left. Updates [`Poller::ready`]
    /// and returns whether the bell rang (then the inbox and the drain signal are to be
    /// polled; the bell is re-armed before this returns, so a wake during that polling is
    /// not lost).
    pub fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        let ms = if self.ready.any() || self.bell.rung.load(Ordering::Acquire) {
            EpollTimeout::ZERO
        } else {
            let ms = timeout.as_nanos().div_ceil(1_000_000);
            EpollTimeout::try_from(ms).unwrap_or(EpollTimeout::MAX)
        };
        let n = match self.ep.wait(&mut self.events, ms) {
            Ok(n) => n,
            // A signal (the process's handlers run on other threads, but a debugger's may
            // land here): an empty turn.
            Err(Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        let mut bell_event = false;
        for ev in &self.events[..n] {
            bell_event |= ev.data() == BELL;
            if ev.data() == SOCKET {
                let flags = ev.events();
                if flags.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP) {
                    self.ready.readable = true;
                }
                if flags.contains(EpollFlags::EPOLLERR) {
                    self.ready.error = true;
                }
            }
        }
        // The bell: whatever rang it is polled by the caller after this; re-arm first, so
        // that a wake racing with that polling writes the eventfd again.
        let rung = self.bell.rung.swap(false, Ordering::AcqRel);
        if rung || bell_event {
            // Reset the counter (EAGAIN: a wake from before the flag was set, already read).
            // Also when the flag was clear: a waker that set the flag, lost the race to the
            // swap of an earlier turn (which found the counter still 0) and only then wrote
            // it leaves the counter at 1 with the flag clear, and the level-triggered eventfd
            // would then end every later wait at once, a busy loop until the next wake.
            // Reading it here cannot lose a wake: one that comes after the swap sets the flag
            // again, and the next wait does not block.
            let _ = self.bell.fd.read();
        }
        Ok(rung || bell_event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Instant;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        a.set_nonblocking(true).expect("nonblocking");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
        (a, b)
    }

    fn drain(s: &UdpSocket) -> usize {
        let mut buf = [0u8; 64];
        let mut n = 0;
        while s.recv(&mut buf).is_ok() {
            n += 1;
        }
        n
    }

    #[test]
    fn the_first_turn_looks_at_everything_then_a_quiet_socket_blocks_until_the_timeout() {
        let (a, _b) = pair();
        let mut p = Poller::new(&a).expect("poller");
        // First turn: the bell counts as rung and the socket as readable, without waiting.
        let t = Instant::now();
        assert!(p.wait(Duration::from_secs(5)).expect("wait"));
        assert!(p.ready.readable);
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(drain(&a), 0);
        p.ready.readable = false;
        // Nothing left: it blocks for the timeout (rounded up to whole ms), and says nothing.
        let t = Instant::now();
        assert!(!p.wait(Duration::from_micros(20_500)).expect("wait"));
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(20), "{took:?}");
        assert_eq!(p.ready, Readiness::default());
    }

    #[test]
    fn a_datagram_wakes_it_and_stays_readable_until_drained() {
        let (a, b) = pair();
        let mut p = Poller::new(&a).expect("poller");
        p.wait(Duration::ZERO).expect("first turn");
        p.ready = Readiness::default();
        b.send_to(b"one", a.local_addr().expect("addr"))
            .expect("send");
        assert!(!p.wait(Duration::from_secs(5)).expect("wait"));
        assert!(p.ready.readable);
        // Edge-triggered: not drained, the readiness is remembered, so the next wait does
        // not block even though no new datagram arrives.
        let t = Instant::now();
        p.wait(Duration::from_secs(5)).expect("wait");
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(p.ready.readable);
        assert_eq!(drain(&a), 1);
        p.ready.readable = false;
        assert!(!p.wait(Duration::from_millis(1)).expect("wait"));
        assert!(!p.ready.readable);
    }

    #[test]
    fn a_wake_from_another_thread_rings_once_per_look() {
        let (a, _b) = pair();
        let mut p = Poller::new(&a).expect("poller");
        p.wait(Duration::ZERO).expect("first turn");
        p.ready = Readiness::default();
        let w = p.waker().clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            for _ in 0..1000 {
                w.wake_by_ref();
            }
        });
        let start = Instant::now();
        assert!(p.wait(Duration::from_secs(10)).expect("wait"));
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().expect("thread");
        // The thousand wakes were one ring, or two when some of them came after the shard
        // re-armed the bell (the thread runs on while the shard wakes up): at most one more
        // look, then the wait blocks.
        if p.wait(Duration::from_millis(5)).expect("wait") {
            assert!(!p.wait(Duration::from_millis(5)).expect("wait"));
        }
        // And a wake by the shard itself makes the next wait return at once, rung.
        p.ring();
        let start = Instant::now();
        assert!(p.wait(Duration::from_secs(10)).expect("wait"));
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    /// The state a wake leaves when it sets the flag, loses the race to the shard's swap
    /// (which found the counter still 0) and only then writes the eventfd: counter 1, flag
    /// clear. One wait returns (and the caller looks at the inbox once more); the next blocks
    /// again instead of returning at once, turn after turn.
    #[test]
    fn a_wake_written_after_the_flag_was_cleared_does_not_keep_the_loop_awake() {
        let (a, _b) = pair();
        let mut p = Poller::new(&a).expect("poller");
        p.wait(Duration::ZERO).expect("first turn");
        p.ready = Readiness::default();
        p.bell.fd.write(1).expect("write the counter");
        assert!(!p.bell.rung.load(Ordering::Acquire));
        let t = Instant::now();
        assert!(p.wait(Duration::from_secs(5)).expect("wait"), "looks once");
        assert!(t.elapsed() < Duration::from_secs(1));
        for _ in 0..3 {
            let t = Instant::now();
            assert!(!p.wait(Duration::from_millis(30)).expect("wait"));
            assert!(
                t.elapsed() >= Duration::from_millis(29),
                "{:?}",
                t.elapsed()
            );
        }
    }

    #[test]
    fn the_bell_drives_a_tokio_channel_polled_without_a_runtime() {
        use std::future::Future;
        use std::task::{Context, Poll};
        let (a, _b) = pair();
        let mut p = Poller::new(&a).expect("poller");
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(8);
        assert!(p.wait(Duration::ZERO).expect("first turn"));
        p.ready = Readiness::default();
        let mut cx = Context::from_waker(p.waker());
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            tx.try_send(7).expect("send");
        });
        assert!(p.wait(Duration::from_secs(10)).expect("wait"));
        let mut cx = Context::from_waker(p.waker());
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(7)));
        t.join().expect("thread");
        // The sender is gone: the channel says closed, through the same path.
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
        // A watch's change future wakes it the same way.
        let (wtx, mut wrx) = tokio::sync::watch::channel(false);
        let mut fut = Box::pin(async move { wrx.changed().await.is_ok() });
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Pending);
        wtx.send(true).expect("send");
        assert!(p.wait(Duration::from_secs(10)).expect("wait"));
        let mut cx = Context::from_waker(p.waker());
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(true));
    }
}
