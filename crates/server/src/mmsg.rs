//! `sendmmsg(2)`: the UDP datagrams of one loop turn, to any destinations, in one system call.
//!
//! The one `unsafe` of the server crate, for a measured need (docs/PERFORMANCE.md, "Batched
//! sends"): nix's `sendmmsg` cannot say how many datagrams the kernel took without reading
//! its uninitialised address array, and std has no `sendmmsg`. What is unsafe here is only
//! the system call's raw pointers: every one of them points into locals that live across
//! the call (`addrs`, `iovs`, `hdrs`, on the stack) or into the caller's slices.
#![allow(unsafe_code)]

use std::io;
use std::mem::{self, MaybeUninit};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::libc;
use socket2::SockAddr;

/// Datagrams per system call at most (more are the caller's next call).
pub const MAX: usize = 32;

/// Send `msgs` (payload, destination) in order, without waiting. Returns how many the
/// kernel took from the front: fewer than `msgs.len()` when the first one not taken failed
/// (its error is then the next call's, which the caller makes for the rest) or when more
/// than [`MAX`] were given.
pub fn send<B: AsRef<[u8]>>(sock: &impl AsRawFd, msgs: &[(B, SocketAddr)]) -> io::Result<usize> {
    let n = msgs.len().min(MAX);
    if n == 0 {
        return Ok(0);
    }
    // Exactly `n` entries of each array are written, on the stack: no allocation and no
    // zeroing of [`MAX`] entries (a turn sends one to a few datagrams).
    let mut addrs = [const { MaybeUninit::<SockAddr>::uninit() }; MAX];
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; MAX];
    let mut hdrs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; MAX];
    for (i, m) in msgs[..n].iter().enumerate() {
        let a: &SockAddr = addrs[i].write(m.1.into());
        let data = m.0.as_ref();
        let iov: &mut libc::iovec = iovs[i].write(libc::iovec {
            iov_base: data.as_ptr().cast::<libc::c_void>().cast_mut(),
            iov_len: data.len(),
        });
        // SAFETY: mmsghdr is a plain C struct, for which all-zero is a valid value.
        let mut h: libc::mmsghdr = unsafe { mem::zeroed() };
        h.msg_hdr.msg_name = a.as_ptr().cast::<libc::c_void>().cast_mut();
        h.msg_hdr.msg_namelen = a.len();
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        hdrs[i].write(h);
    }
    // SAFETY: the first `n` entries of `hdrs` are initialised (above) and point at `iovs`,
    // `addrs` and `msgs`' payloads, all alive and unmoved until this returns; the kernel
    // reads only those `n` (and writes each one's `msg_len`).
    let r = unsafe {
        libc::sendmmsg(
            sock.as_raw_fd(),
            hdrs.as_mut_ptr().cast::<libc::mmsghdr>(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    #[test]
    fn sends_to_several_destinations_in_order() {
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
        }
        let (aa, ba) = (a.local_addr().expect("addr"), b.local_addr().expect("addr"));
        let msgs: Vec<(&[u8], SocketAddr)> = vec![
            (b"one", aa),
            (b"two", ba),
            (b"three", aa),
            (b"", ba), // an empty datagram is a datagram
        ];
        assert_eq!(send(&tx, &msgs).expect("sendmmsg"), 4);
        let mut buf = [0u8; 64];
        let mut got = |s: &UdpSocket| {
            let (n, from) = s.recv_from(&mut buf).expect("recv");
            assert_eq!(from, tx.local_addr().expect("addr"));
            buf[..n].to_vec()
        };
        assert_eq!(got(&a), b"one");
        assert_eq!(got(&a), b"three");
        assert_eq!(got(&b), b"two");
        assert_eq!(got(&b), b"");
    }

    #[test]
    fn takes_at_most_max_per_call_and_nothing_is_a_no_op() {
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = rx.local_addr().expect("addr");
        assert_eq!(send::<&[u8]>(&tx, &[]).expect("empty"), 0);
        let payload = [7u8; 10];
        let msgs: Vec<(&[u8], SocketAddr)> = (0..MAX + 5).map(|_| (&payload[..], to)).collect();
        assert_eq!(send(&tx, &msgs).expect("sendmmsg"), MAX);
    }

    #[test]
    fn an_unsendable_first_datagram_is_an_error_and_ipv6_works() {
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        // Larger than any UDP datagram can be: EMSGSIZE for the first, so the call fails.
        let big = vec![0u8; 70_000];
        let to: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        assert!(send(&tx, &[(&big[..], to)]).is_err());
        if let Ok(v6) = UdpSocket::bind("[::1]:0") {
            let rx = UdpSocket::bind("[::1]:0").expect("bind v6");
            rx.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            let to = rx.local_addr().expect("addr");
            assert_eq!(send(&v6, &[(b"six", to)]).expect("v6"), 1);
            let mut buf = [0u8; 8];
            let (n, _) = rx.recv_from(&mut buf).expect("recv");
            assert_eq!(&buf[..n], b"six");
        }
    }
}
