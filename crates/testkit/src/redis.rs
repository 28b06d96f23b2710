//! [`RedisServer`]: a real `redis-server` for one test, on a free loopback port, in a scratch
//! directory, without persistence; killed when dropped. [`RedisServer::restart`] keeps the port
//! (a restarted Redis, empty, as after a crash without persistence). [`RedisServer::query`] is
//! a tiny RESP client for assertions (no Redis crate needed by the tests).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Result, TestkitError};
use crate::ports::free_port;

/// How long a started redis-server has to answer PING.
const READY: Duration = Duration::from_secs(10);

/// A RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:1`.
    Int(i64),
    /// `$n` bulk string; `None` for the nil bulk.
    Bulk(Option<String>),
    /// `*n` array; `None` for the nil array.
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// The integer, if this is one.
    pub fn int(&self) -> Option<i64> {
        match self {
            Resp::Int(i) => Some(*i),
            Resp::Bulk(Some(s)) | Resp::Simple(s) => s.parse().ok(),
            _ => None,
        }
    }
    /// The text of a simple or bulk string.
    pub fn text(&self) -> Option<&str> {
        match self {
            Resp::Simple(s) | Resp::Bulk(Some(s)) => Some(s),
            _ => None,
        }
    }
}

/// A running redis-server owned by one test.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// Extra command-line arguments (a replica's `--replicaof`).
    extra: Vec<String>,
    /// Run as a sentinel of (master name, primary's port).
    sentinel: Option<(String, u16)>,
}

impl RedisServer {
    /// Start `redis-server` (Debian package redis-server; tests/run.sh installs it).
    pub fn start() -> Result<RedisServer> {
        Self::start_with(Vec::new(), None)
    }

    /// Start a replica of `primary`.
    pub fn start_replica_of(primary: &RedisServer) -> Result<RedisServer> {
        Self::start_with(
            vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                primary.port().to_string(),
            ],
            None,
        )
    }

    /// Start a sentinel watching `primary` as master `name` (quorum 1, down after 1 s,
    /// failover timeout 3 s): `redis-server sentinel.conf --sentinel`.
    pub fn start_sentinel(name: &str, primary: &RedisServer) -> Result<RedisServer> {
        Self::start_with(Vec::new(), Some((name.to_owned(), primary.port())))
    }

    fn start_with(extra: Vec<String>, sentinel: Option<(String, u16)>) -> Result<RedisServer> {
        let dir = tempfile::Builder::new()
            .prefix("hotline-redis-")
            .tempdir()
            .map_err(|e| TestkitError::io("temp dir for redis-server", e))?;
        let mut r = RedisServer {
            child: None,
            port: 0,
            dir,
            extra,
            sentinel,
        };
        let mut last = None;
        for _ in 0..5 {
            r.port = free_port()?;
            match r.spawn() {
                Ok(()) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(TestkitError::NoPort(5)))
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.dir.path().join("redis.log"))
            .map_err(|e| TestkitError::io("redis.log", e))?;
        let mut cmd = Command::new("redis-server");
        if let Some((name, primary)) = &self.sentinel {
            // A sentinel rewrites its config file: one of its own, in the scratch dir.
            let conf = self.dir.path().join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "sentinel monitor {name} 127.0.0.1 {primary} 1\n\
                     sentinel down-after-milliseconds {name} 1000\n\
                     sentinel failover-timeout {name} 3000\n"
                ),
            )
            .map_err(|e| TestkitError::io("sentinel.conf", e))?;
            cmd.arg(&conf).arg("--sentinel");
        }
        let child = cmd
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                TestkitError::io(
                    "spawn redis-server (install redis-server; tests/run.sh does)",
                    e,
                )
            })?;
        self.child = Some(child);
        let until = Instant::now() + READY;
        while Instant::now() < until {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                break;
            }
            if matches!(self.query(&["PING"]), Ok(Resp::Simple(s)) if s == "PONG") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(TestkitError::Timeout {
            what: format!(
                "redis-server on port {} (log in {})",
                self.port,
                self.dir.path().display()
            ),
            timeout: READY,
        })
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The scratch directory (holds `redis.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kill it (SIGKILL): clients see the connection drop.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port, empty (no persistence), as after a crash.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let until = Instant::now() + READY;
        // The port may linger a moment after the kill.
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= until => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Whether it is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Send one command and read its reply (a fresh connection each time, 2 s timeout).
    pub fn query(&self, args: &[&str]) -> Result<Resp> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let io = |e| TestkitError::io(format!("redis {args:?} on port {}", self.port), e);
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(io)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(io)?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).map_err(io)?;
        let mut r = BufReader::new(s);
        read_resp(&mut r).map_err(io)
    }

    /// `query` for an integer reply (ZCARD, GET of a counter ...); `None` for nil or non-numbers.
    pub fn int(&self, args: &[&str]) -> Result<Option<i64>> {
        Ok(self.query(args)?.int())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn bad(m: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string())
}

fn read_resp(r: &mut impl BufRead) -> std::io::Result<Resp> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(bad("connection closed"));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "+" => Ok(Resp::Simple(rest.into())),
        "-" => Ok(Resp::Error(rest.into())),
        ":" => rest.parse().map(Resp::Int).map_err(|_| bad(line)),
        "$" => {
            let n: i64 = rest.parse().map_err(|_| bad(line))?;
            if n < 0 {
                return Ok(Resp::Bulk(None));
            }
            let mut buf = vec![0u8; usize::try_from(n).map_err(|_| bad(line))? + 2];
            r.read_exact(&mut buf)?;
            buf.truncate(buf.len() - 2);
            Ok(Resp::Bulk(Some(String::from_utf8_lossy(&buf).into_owned())))
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| bad(line))?;
            if n < 0 {
                return Ok(Resp::Array(None));
            }
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(read_resp(r)?);
            }
            Ok(Resp::Array(Some(v)))
        }
        _ => Err(bad(line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_restarts_empty() -> Result<()> {
        let mut r = RedisServer::start()?;
        assert_eq!(r.query(&["SET", "k", "7"])?, Resp::Simple("OK".into()));
        assert_eq!(r.int(&["GET", "k"])?, Some(7));
        assert_eq!(r.query(&["GET", "nope"])?, Resp::Bulk(None));
        let port = r.port();
        r.restart()?;
        assert_eq!(r.port(), port);
        assert_eq!(r.query(&["GET", "k"])?, Resp::Bulk(None), "no persistence");
        r.kill();
        assert!(r.query(&["PING"]).is_err());
        Ok(())
    }
}
