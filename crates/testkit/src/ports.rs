//! Free loopback ports for SIPp instances.
//!
//! A port is "free" when both a UDP socket and a TCP listener can bind it on 127.0.0.1. The
//! probe sockets are dropped before the port is handed out, so another process may still grab
//! it: callers that start a server on it check that the server really bound it and retry with a
//! fresh port otherwise ([`crate::sipp::SippProcess`] does). Within one test process a port is
//! handed out at most once, so parallel tests never collide with each other.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::{Mutex, OnceLock};

use crate::error::{Result, TestkitError};

const ATTEMPTS: u32 = 200;

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static SET: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    SET.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A loopback port currently free for both UDP and TCP, never returned before in this process.
pub fn free_port() -> Result<u16> {
    for _ in 0..ATTEMPTS {
        let Ok(udp) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) else {
            continue;
        };
        let Ok(port) = udp.local_addr().map(|a| a.port()) else {
            continue;
        };
        let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) else {
            continue;
        };
        drop(tcp);
        drop(udp);
        let mut set = match handed_out().lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if set.insert(port) {
            return Ok(port);
        }
    }
    Err(TestkitError::NoPort(ATTEMPTS))
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// True when something holds `port` on 127.0.0.1 for the given transport (a bind probe fails).
pub fn is_bound(port: u16, tcp: bool) -> bool {
    if tcp {
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err()
    } else {
        UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_err()
    }
}

/// True when something holds `port` on `ip` for the given transport (a bind probe fails).
pub fn is_bound_on(ip: IpAddr, port: u16, tcp: bool) -> bool {
    if tcp {
        TcpListener::bind((ip, port)).is_err()
    } else {
        UdpSocket::bind((ip, port)).is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_free() {
        let a = free_port().unwrap_or(0);
        let b = free_port().unwrap_or(0);
        assert_ne!(a, 0);
        assert_ne!(a, b);
        assert!(!is_bound(a, false));
        let held = UdpSocket::bind(loopback(a));
        assert!(held.is_ok());
        assert!(is_bound(a, false));
        assert!(is_bound_on(IpAddr::V4(Ipv4Addr::LOCALHOST), a, false));
    }
}
