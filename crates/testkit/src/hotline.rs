//! [`Hotline`]: the real `hotline` binary running on an ephemeral loopback port.
//!
//! [`Hotline::spawn`] writes the config into a fresh temporary directory (replacing
//! [`CDR_DIR_PLACEHOLDER`] with `<dir>/cdr`), runs `hotline run --config <dir>/hotline.toml`
//! with that directory as working directory, copies its stderr into `<dir>/hotline.stderr.log`
//! and waits (at most [`READY_TIMEOUT`]) for the log line containing `listening sip=ADDR`.
//! Dropping the value kills the process; when the test is panicking the last log lines are
//! printed and the directory is kept for inspection.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{Result, TestkitError};
use crate::paths;

/// Written into the config where the CDR directory goes; replaced by `<tempdir>/cdr`.
pub const CDR_DIR_PLACEHOLDER: &str = "@CDR_DIR@";
/// How long [`Hotline::spawn`] waits for the `listening sip=` line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Hotline::stop`] waits for a graceful exit after SIGTERM before killing.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The marker Hotline logs once its listeners are bound.
pub const LISTENING_MARKER: &str = "listening sip=";
/// The marker Hotline logs when its admin endpoint is bound (`admin endpoint http://ADDR`).
pub const ADMIN_MARKER: &str = "admin endpoint http://";

/// A running `hotline` process. See the module docs.
pub struct Hotline {
    child: Option<Child>,
    dir: Option<TempDir>,
    dir_path: PathBuf,
    sip_addr: SocketAddr,
    cdr_dir: PathBuf,
    log_path: PathBuf,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    exit: Option<ExitStatus>,
}

impl std::fmt::Debug for Hotline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hotline")
            .field("sip_addr", &self.sip_addr)
            .field("dir", &self.dir_path)
            .finish()
    }
}

/// Polls `child` until it exits or `timeout` passes; `Ok(None)` on timeout.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` (e.g. `"TERM"`, `"USR1"`) to `pid` with the `kill` command.
pub fn send_signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| TestkitError::io("run kill", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(TestkitError::io(
            format!("kill -{signal} {pid}"),
            std::io::Error::other(format!("exit {status}")),
        ))
    }
}

/// Removes ANSI escape sequences (`ESC [ ... letter`) so log matching ignores colours.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The address in a `... listening sip=127.0.0.1:PORT ...` line, if this is that line.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(LISTENING_MARKER)? + LISTENING_MARKER.len()..];
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',' && *c != '"')
        .collect();
    token.parse().ok()
}

/// A plain HTTP/1.1 GET on loopback with a 5 s timeout; the body of a 200 response.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    use std::io::Read;
    let what = format!("GET http://{addr}{path}");
    let timeout = Duration::from_secs(5);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| TestkitError::io(what.clone(), e))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| TestkitError::io(what.clone(), e))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| TestkitError::io(what.clone(), e))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| TestkitError::io(what.clone(), e))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(TestkitError::io(
            what,
            std::io::Error::other("no HTTP header end"),
        ));
    };
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        let status = head.lines().next().unwrap_or("").to_string();
        return Err(TestkitError::io(what, std::io::Error::other(status)));
    }
    Ok(body.to_string())
}

/// The value of one sample in Prometheus text, by its full name with labels as printed, e.g.
/// `hotline_sip_refused_total{reason="extra_2xx"}`.
pub fn metric_value(text: &str, sample: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The `VmRSS:` value (KiB) of a `/proc/PID/status` text.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Hotline {
    /// Starts Hotline with `config_toml`; panics with the stderr log path if it does not come
    /// up. Use [`Hotline::try_spawn`] to handle the error.
    pub fn spawn(config_toml: &str) -> Hotline {
        match Self::try_spawn(config_toml) {
            Ok(h) => h,
            Err(e) => panic!("Hotline::spawn failed: {e}"),
        }
    }

    /// Starts Hotline with `config_toml` and waits for its listening line.
    pub fn try_spawn(config_toml: &str) -> Result<Hotline> {
        Self::try_spawn_with(config_toml, &[])
    }

    /// [`Hotline::try_spawn`] with more files written beside `hotline.toml` first (paths
    /// relative to its directory, e.g. `companies/acme.toml`, the CDR placeholder filled in):
    /// a config split across files with `include`, a token file.
    pub fn try_spawn_with(config_toml: &str, files: &[(&str, &str)]) -> Result<Hotline> {
        let bin = paths::hotline_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("hotline-e2e-")
            .tempdir()
            .map_err(|e| TestkitError::io("create tempdir", e))?;
        let dir_path = dir.path().to_path_buf();
        let cdr_dir = dir_path.join("cdr");
        std::fs::create_dir_all(&cdr_dir)
            .map_err(|e| TestkitError::io(format!("create {}", cdr_dir.display()), e))?;
        let config = config_toml.replace(CDR_DIR_PLACEHOLDER, &cdr_dir.to_string_lossy());
        for (rel, text) in files {
            let p = dir_path.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| TestkitError::io(format!("create {}", parent.display()), e))?;
            }
            let text = text.replace(CDR_DIR_PLACEHOLDER, &cdr_dir.to_string_lossy());
            std::fs::write(&p, text)
                .map_err(|e| TestkitError::io(format!("write {}", p.display()), e))?;
        }
        let config_path = dir_path.join("hotline.toml");
        std::fs::write(&config_path, config)
            .map_err(|e| TestkitError::io(format!("write {}", config_path.display()), e))?;
        let log_path = dir_path.join("hotline.stderr.log");
        let stdout_path = dir_path.join("hotline.stdout.log");
        let stdout = std::fs::File::create(&stdout_path)
            .map_err(|e| TestkitError::io(format!("create {}", stdout_path.display()), e))?;
        let mut log = std::fs::File::create(&log_path)
            .map_err(|e| TestkitError::io(format!("create {}", log_path.display()), e))?;

        let mut child = Command::new(&bin)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .current_dir(&dir_path)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TestkitError::io(format!("spawn {}", bin.display()), e))?;

        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        let reader = child.stderr.take().map(|stderr| {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                let mut stderr = BufReader::new(stderr);
                let mut buf = Vec::new();
                let mut sent = false;
                loop {
                    buf.clear();
                    match stderr.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let _ = log.write_all(&buf);
                    let _ = log.flush();
                    let line = strip_ansi(String::from_utf8_lossy(&buf).trim_end());
                    if !sent {
                        if let Some(addr) = parse_listening(&line) {
                            sent = tx.send(addr).is_ok();
                        }
                    }
                    match lines.lock() {
                        Ok(mut l) => l.push(line),
                        Err(p) => p.into_inner().push(line),
                    }
                }
            })
        });

        let mut hotline = Hotline {
            child: None,
            dir: Some(dir),
            dir_path,
            sip_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            cdr_dir,
            log_path: log_path.clone(),
            lines,
            reader,
            exit: None,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        let ready = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(addr) => break Ok(addr),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err("stderr closed before the listening line".to_string())
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Give the reader a moment to deliver a line printed just before exit.
                if let Ok(addr) = rx.recv_timeout(Duration::from_millis(200)) {
                    break Ok(addr);
                }
                break Err(format!("hotline exited with {status}"));
            }
            if Instant::now() >= deadline {
                break Err("no `listening sip=` line".to_string());
            }
        };
        hotline.child = Some(child);
        match ready {
            Ok(addr) => {
                hotline.sip_addr = addr;
                Ok(hotline)
            }
            Err(reason) => {
                let tail = hotline.stderr_tail(40);
                // Keep the directory so the log stays readable after the error.
                if let Some(d) = hotline.dir.take() {
                    let _ = d.keep();
                }
                Err(TestkitError::NotReady {
                    timeout: READY_TIMEOUT,
                    reason: format!("{reason}\n--- last stderr lines ---\n{tail}"),
                    log: log_path,
                })
            }
        }
    }

    /// The SIP address Hotline listens on (UDP and TCP).
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip_addr
    }

    /// The SIP URI of Hotline for a user part, e.g. `sip:4008001234@127.0.0.1:PORT`.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.sip_addr)
    }

    /// The CDR directory configured for this instance.
    pub fn cdr_dir(&self) -> &Path {
        &self.cdr_dir
    }

    /// The temporary directory holding config, logs and CDRs.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// The admin endpoint's address, when the config turned it on
    /// ([`crate::HotlineConfig::with_admin`]); read from the log line Hotline prints.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.stderr_lines().iter().find_map(|l| {
            let rest = &l[l.find(ADMIN_MARKER)? + ADMIN_MARKER.len()..];
            let token: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '/')
                .collect();
            token.parse().ok()
        })
    }

    /// The company API's address (`[server.api]`), from the log line Hotline prints
    /// (`company API and console http://ADDR`).
    pub fn api_addr(&self) -> Option<SocketAddr> {
        const MARKER: &str = "company API and console http://";
        self.stderr_lines().iter().find_map(|l| {
            let rest = &l[l.find(MARKER)? + MARKER.len()..];
            let token: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '/')
                .collect();
            token.parse().ok()
        })
    }

    /// `GET /metrics` from the admin endpoint (Prometheus text).
    pub fn metrics(&self) -> Result<String> {
        let addr = self
            .admin_addr()
            .ok_or_else(|| TestkitError::NoBinary("the admin endpoint is off".into()))?;
        http_get(addr, "/metrics")
    }

    /// The config file Hotline runs with (`<dir>/hotline.toml`): the file a reload re-reads.
    pub fn config_path(&self) -> PathBuf {
        self.dir_path.join("hotline.toml")
    }

    /// Replaces the config file with `config_toml` (the CDR placeholder filled in as at spawn),
    /// atomically: written beside it under a name that is not `*.toml`, then renamed over it,
    /// so Hotline's file watcher never reads a half-written file. Hotline picks the change up
    /// by its own polling; call [`Hotline::reload`] to reload at once.
    pub fn write_config(&self, config_toml: &str) -> Result<()> {
        let config = config_toml.replace(CDR_DIR_PLACEHOLDER, &self.cdr_dir.to_string_lossy());
        let tmp = self.dir_path.join("hotline.toml.next");
        std::fs::write(&tmp, config)
            .map_err(|e| TestkitError::io(format!("write {}", tmp.display()), e))?;
        let path = self.config_path();
        std::fs::rename(&tmp, &path)
            .map_err(|e| TestkitError::io(format!("rename to {}", path.display()), e))
    }

    /// Sends SIGHUP (reload the config files now).
    pub fn reload(&self) -> Result<()> {
        match self.pid() {
            Some(pid) => send_signal(pid, "HUP"),
            None => Err(TestkitError::NoBinary("hotline is not running".into())),
        }
    }

    /// Waits until at least `n` stderr lines contain `needle`; false on timeout.
    pub fn wait_for_stderr_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr_matching(needle).len() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The file that receives Hotline's stderr.
    pub fn stderr_log(&self) -> &Path {
        &self.log_path
    }

    /// The process id (while running).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Every stderr line so far (ANSI colours removed).
    pub fn stderr_lines(&self) -> Vec<String> {
        match self.lines.lock() {
            Ok(l) => l.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The last `n` stderr lines joined with newlines.
    pub fn stderr_tail(&self, n: usize) -> String {
        let lines = self.stderr_lines();
        let start = lines.len().saturating_sub(n);
        lines[start..].join("\n")
    }

    /// Stderr lines containing `needle`.
    pub fn stderr_matching(&self, needle: &str) -> Vec<String> {
        self.stderr_lines()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect()
    }

    /// Waits until a stderr line contains `needle`; false on timeout.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.stderr_matching(needle).is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Graceful shutdown: SIGTERM, then wait up to [`STOP_TIMEOUT`] (killed after that, which
    /// is reported as [`TestkitError::Timeout`]). Returns the exit status; idempotent.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.exit {
            return Ok(status);
        }
        let Some(child) = self.child.as_mut() else {
            return Err(TestkitError::NoBinary("hotline was never started".into()));
        };
        if let Ok(Some(status)) = child.try_wait() {
            self.exit = Some(status);
            self.join_reader();
            return Ok(status);
        }
        send_signal(child.id(), "TERM")?;
        let waited = wait_timeout(child, STOP_TIMEOUT)
            .map_err(|e| TestkitError::io("wait for hotline", e))?;
        match waited {
            Some(status) => {
                self.exit = Some(status);
                self.join_reader();
                Ok(status)
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                self.join_reader();
                Err(TestkitError::Timeout {
                    what: "hotline graceful shutdown after SIGTERM".into(),
                    timeout: STOP_TIMEOUT,
                })
            }
        }
    }

    /// Sends SIGTERM and returns at once (the switch drains; see [`Hotline::wait_exit`]).
    pub fn terminate(&mut self) -> Result<()> {
        match self.child.as_ref() {
            Some(c) => send_signal(c.id(), "TERM"),
            None => Err(TestkitError::NoBinary("hotline was never started".into())),
        }
    }

    /// Waits up to `timeout` for the process to exit by itself; `Ok(None)` if it is still
    /// running then (it is left running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        if let Some(status) = self.exit {
            return Ok(Some(status));
        }
        let Some(child) = self.child.as_mut() else {
            return Err(TestkitError::NoBinary("hotline was never started".into()));
        };
        let waited =
            wait_timeout(child, timeout).map_err(|e| TestkitError::io("wait for hotline", e))?;
        if let Some(status) = waited {
            self.exit = Some(status);
            self.join_reader();
        }
        Ok(waited)
    }

    /// Resident set size of the running process in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        parse_vm_rss(&status)
    }

    fn join_reader(&mut self) {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    /// Keeps the temporary directory after drop (for debugging) and returns its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        if let Some(d) = self.dir.take() {
            let _ = d.keep();
        }
        self.dir_path.clone()
    }
}

impl Drop for Hotline {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.join_reader();
        if std::thread::panicking() {
            let dir = self.keep_dir();
            eprintln!(
                "--- hotline stderr (last 60 lines; full log {}; dir kept: {}) ---\n{}\n---",
                self.log_path.display(),
                dir.display(),
                self.stderr_tail(60)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_samples_are_found_by_full_name() {
        let text = "# HELP x y\nhotline_sip_refused_total{reason=\"loop\"} 0\nhotline_sip_refused_total{reason=\"extra_2xx\"} 2\nhotline_calls 3.5\n";
        assert_eq!(
            metric_value(text, "hotline_sip_refused_total{reason=\"extra_2xx\"}"),
            Some(2.0)
        );
        assert_eq!(metric_value(text, "hotline_calls"), Some(3.5));
        assert_eq!(metric_value(text, "hotline_call"), None);
    }

    #[test]
    fn vm_rss_is_read_from_proc_status() {
        let text = "Name:\thotline\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(text), Some(12345));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        let own = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        assert!(parse_vm_rss(&own).is_some_and(|kib| kib > 0));
    }

    #[test]
    fn listening_line_is_parsed_with_and_without_colours() {
        let plain = "2026-01-01T00:00:00Z  INFO hotline: listening sip=127.0.0.1:40123 tcp=on";
        assert_eq!(
            parse_listening(plain),
            Some(SocketAddr::from(([127, 0, 0, 1], 40123)))
        );
        let coloured = "\u{1b}[32m INFO\u{1b}[0m listening \u{1b}[3msip\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:5060";
        assert_eq!(
            parse_listening(&strip_ansi(coloured)),
            Some(SocketAddr::from(([127, 0, 0, 1], 5060)))
        );
        assert_eq!(parse_listening("listening sip=nonsense"), None);
        assert_eq!(parse_listening("starting"), None);
    }
}
