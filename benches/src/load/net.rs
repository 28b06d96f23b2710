//! Transports of the load roles: blocking std sockets with short read timeouts, one socket or
//! connection per worker thread (no shared state on the send/receive path).

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use bytes::Bytes;
use hotline_sip::frame::{frame_datagram, Framed, Limits, StreamFramer};

/// Largest datagram we expect (Hotline caps messages at 64 KiB).
pub const MAX_DATAGRAM: usize = 65_535;

/// Sending half of a worker's connection to the proxy.
#[derive(Debug)]
pub enum Tx {
    Udp { sock: UdpSocket, peer: SocketAddr },
    Tcp { stream: TcpStream },
}

/// Receiving half: blocking reads (no timer granularity on the receive path: socket
/// timeouts are rounded to jiffies, so pacing lives in another thread) with a 50 ms timeout
/// so the thread notices the end of the run.
#[derive(Debug)]
pub enum Rx {
    Udp {
        sock: UdpSocket,
        buf: Vec<u8>,
    },
    Tcp {
        stream: TcpStream,
        framer: StreamFramer,
        buf: Vec<u8>,
        closed: bool,
    },
}

/// A UDP socket on an ephemeral loopback port, or a TCP connection, to `peer`.
pub fn open(peer: SocketAddr, tcp: bool) -> io::Result<(Tx, Rx, SocketAddr)> {
    let local: SocketAddr = if peer.is_ipv4() {
        SocketAddr::from(([127, 0, 0, 1], 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
    };
    let timeout = Some(Duration::from_millis(50));
    if tcp {
        let stream = TcpStream::connect_timeout(&peer, Duration::from_secs(3))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(timeout)?;
        let local = stream.local_addr()?;
        let rx = stream.try_clone()?;
        Ok((
            Tx::Tcp { stream },
            Rx::Tcp {
                stream: rx,
                framer: StreamFramer::new(Limits::default()),
                buf: vec![0; MAX_DATAGRAM],
                closed: false,
            },
            local,
        ))
    } else {
        let sock = UdpSocket::bind(local)?;
        big_buffers(&sock);
        sock.set_read_timeout(timeout)?;
        let local = sock.local_addr()?;
        let rx = sock.try_clone()?;
        Ok((
            Tx::Udp { sock, peer },
            Rx::Udp {
                sock: rx,
                buf: vec![0; MAX_DATAGRAM],
            },
            local,
        ))
    }
}

impl Tx {
    pub fn is_tcp(&self) -> bool {
        matches!(self, Tx::Tcp { .. })
    }
    /// Send one message to the proxy.
    pub fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        match self {
            Tx::Udp { sock, peer } => sock.send_to(msg, *peer).map(|_| ()),
            Tx::Tcp { stream } => stream.write_all(msg),
        }
    }
}

impl Rx {
    /// One message, `Ok(None)` after the 50 ms timeout.
    pub fn recv(&mut self) -> io::Result<Option<Bytes>> {
        match self {
            Rx::Udp { sock, buf } => match sock.recv_from(buf) {
                Ok((n, _)) => Ok(frame(&buf[..n])),
                Err(e) if is_timeout(&e) => Ok(None),
                Err(e) => Err(e),
            },
            Rx::Tcp {
                stream,
                framer,
                buf,
                closed,
            } => {
                if let Some(m) = next_framed(framer)? {
                    return Ok(Some(m));
                }
                if *closed {
                    return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "closed"));
                }
                match stream.read(buf) {
                    Ok(0) => {
                        *closed = true;
                        Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "proxy closed the connection",
                        ))
                    }
                    Ok(n) => {
                        framer.push(&buf[..n]);
                        next_framed(framer)
                    }
                    Err(e) if is_timeout(&e) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Frame one datagram; keep-alives and garbage are dropped.
pub fn frame(d: &[u8]) -> Option<Bytes> {
    match frame_datagram(Bytes::copy_from_slice(d), &Limits::default()) {
        Ok(Framed::Message(m)) => Some(m),
        _ => None,
    }
}

fn next_framed(framer: &mut StreamFramer) -> io::Result<Option<Bytes>> {
    framer
        .next_message()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad framing: {e:?}")))
}

/// 4 MiB socket buffers (capped by `net.core.rmem_max`/`wmem_max`): a load-generator thread
/// that is descheduled for a few milliseconds on a busy box must not lose datagrams in its
/// own socket (SIPp's `-buff_size` does the same). Best effort: the kernel's default stays if
/// refused.
pub fn big_buffers(sock: &UdpSocket) {
    let s = socket2::SockRef::from(sock);
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
}
