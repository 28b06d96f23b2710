//! [`NatsServer`]: a real `nats-server` (Debian package `nats-server`, 2.9+) with JetStream,
//! started by a test on a free loopback port with its store in a scratch directory:
//! `nats-server -js -sd <dir>/store -p <port> -a 127.0.0.1`. No system service, no mock.
//!
//! It can be stopped and started again on the same port and store ([`NatsServer::stop`],
//! [`NatsServer::start_again`]) for outage tests; dropping it kills the process.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{Result, TestkitError};
use crate::hotline::{send_signal, wait_timeout};
use crate::ports;

/// How long a start may take until the server accepts connections with JetStream up.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The `nats-server` binary: `NATS_SERVER` if set, else `nats-server` on `PATH`, else the Debian
/// package's `/usr/sbin/nats-server` (not on a normal user's `PATH`).
pub fn nats_server_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return Ok(PathBuf::from(p));
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("nats-server");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    let sbin = PathBuf::from("/usr/sbin/nats-server");
    if sbin.is_file() {
        return Ok(sbin);
    }
    Err(TestkitError::NoBinary(
        "nats-server not found (install the Debian package nats-server; tests/run.sh does)".into(),
    ))
}

/// A running (or stopped, restartable) `nats-server` with JetStream. See the module docs.
pub struct NatsServer {
    child: Option<Child>,
    dir: Option<TempDir>,
    dir_path: PathBuf,
    port: u16,
    starts: u32,
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsServer")
            .field("port", &self.port)
            .field("dir", &self.dir_path)
            .finish()
    }
}

impl NatsServer {
    /// Start a server on a free port with an empty store; panics on failure (a fixture).
    pub fn start() -> NatsServer {
        match Self::try_start() {
            Ok(s) => s,
            Err(e) => panic!("starting nats-server failed: {e}"),
        }
    }

    /// Start a server on a free port with an empty store.
    pub fn try_start() -> Result<NatsServer> {
        let dir = tempfile::Builder::new()
            .prefix("hotline-nats-")
            .tempdir()
            .map_err(|e| TestkitError::io("create tempdir", e))?;
        let mut last = None;
        // The port may be taken between the probe and the bind: try a few.
        for _ in 0..5 {
            let mut s = NatsServer {
                child: None,
                dir_path: dir.path().to_path_buf(),
                dir: None,
                port: ports::free_port()?,
                starts: 0,
            };
            match s.spawn() {
                Ok(()) => {
                    s.dir = Some(dir);
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(TestkitError::NoPort(5)))
    }

    fn spawn(&mut self) -> Result<()> {
        let bin = nats_server_bin()?;
        self.starts += 1;
        let log = self
            .dir_path
            .join(format!("nats-server.{}.log", self.starts));
        let log_file = std::fs::File::create(&log)
            .map_err(|e| TestkitError::io(format!("create {}", log.display()), e))?;
        let mut child = Command::new(&bin)
            .arg("-js")
            .arg("-sd")
            .arg(self.dir_path.join("store"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-a")
            .arg("127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| TestkitError::io(format!("spawn {}", bin.display()), e))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Server is ready") && self.accepts() {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(TestkitError::io(
                    format!("nats-server on port {}", self.port),
                    std::io::Error::other(format!("exited with {status}: {}", tail(&text))),
                ));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TestkitError::Timeout {
                    what: format!("nats-server start ({})", tail(&text)),
                    timeout: START_TIMEOUT,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn accepts(&self) -> bool {
        TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok()
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `nats://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The scratch directory (store and logs).
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stop the server (SIGTERM, then SIGKILL after 10 s); the store stays for
    /// [`NatsServer::start_again`].
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = send_signal(child.id(), "TERM");
        match wait_timeout(&mut child, Duration::from_secs(10)) {
            Ok(Some(_)) => Ok(()),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Ok(())
            }
        }
    }

    /// Start again on the same port and store (after [`NatsServer::stop`]).
    pub fn start_again(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        self.spawn()
    }

    /// The log of the latest start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(
            self.dir_path
                .join(format!("nats-server.{}.log", self.starts)),
        )
        .unwrap_or_default()
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            if let Some(d) = self.dir.take() {
                let kept = d.keep();
                eprintln!("nats-server dir kept: {}", kept.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_stops_and_starts_again_on_the_same_port() {
        let mut s = NatsServer::start();
        assert!(s.accepts(), "{}", s.log());
        assert!(s.log().contains("JetStream"), "{}", s.log());
        let port = s.addr().port();
        assert!(s.stop().is_ok());
        assert!(!s.is_running());
        assert!(!s.accepts());
        assert!(s.start_again().is_ok(), "{}", s.log());
        assert_eq!(s.addr().port(), port);
        assert!(s.accepts());
        assert!(s.url().starts_with("nats://127.0.0.1:"));
    }
}
