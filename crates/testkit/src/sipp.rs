//! Running SIPp (Debian package `sip-tester`) as caller or target, always on 127.0.0.1 and always
//! bounded in time.
//!
//! [`Sipp`] is a builder; [`Sipp::spawn`] picks a free port (retrying when another process wins
//! the race for it), starts `sipp` in its own temporary directory with `-trace_msg`,
//! `-trace_stat`, `-trace_err` and `-trace_screen` files there, and for a server (no remote
//! address) waits until the port is really bound. [`SippProcess::wait`] / [`SippProcess::stop`]
//! give a [`SippResult`]: exit code, the final statistics row, and every SIP message SIPp sent
//! or received, so tests can assert e.g. that a target saw a CANCEL.
//!
//! SIPp exit codes: 0 all calls succeeded, 1 some failed, 97 stopped by an internal command,
//! 99 no call processed, 255 fatal error, 254 could not bind its socket.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{Result, TestkitError};
use crate::hotline::{send_signal, wait_timeout};
use crate::paths;
use crate::ports;
use crate::sip::SipMessage;

/// The transport SIPp uses (`-t u1` or `-t t1`: one socket / one connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn sipp_flag(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }
    /// `UDP` / `TCP`, as in a Via header.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

#[derive(Debug, Clone)]
enum Scenario {
    File(PathBuf),
    BuiltIn(String),
}

/// Exit code SIPp uses when it cannot bind its main socket.
const EXIT_BIND_FAILED: i32 = 254;
/// Start attempts (each on a fresh port) before giving up.
const START_ATTEMPTS: u32 = 5;
/// How long a server may take to bind its port.
const BIND_TIMEOUT: Duration = Duration::from_secs(5);
/// Grace period after the SIPp-level timeout before the process is killed.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// The `sipp` executable: `$SIPP_BIN` or `sipp` on PATH.
pub fn sipp_bin() -> Result<PathBuf> {
    static CHECKED: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let bin = std::env::var_os("SIPP_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("sipp"));
            match Command::new(&bin)
                .arg("-v")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
            {
                Ok(_) => Ok(bin),
                Err(e) => Err(format!("{}: {e}", bin.display())),
            }
        })
        .clone()
        .map_err(TestkitError::NoSipp)
}

/// Builder for one SIPp run. See the module docs.
#[derive(Debug, Clone)]
pub struct Sipp {
    scenario: Scenario,
    remote: Option<SocketAddr>,
    transport: Transport,
    calls: Option<u32>,
    rate: Option<u32>,
    limit: Option<u32>,
    duration_ms: Option<u64>,
    service: Option<String>,
    keys: Vec<(String, String)>,
    sets: Vec<(String, String)>,
    extra: Vec<String>,
    timeout: Duration,
    local_ip: IpAddr,
}

impl Sipp {
    fn new(scenario: Scenario, remote: Option<SocketAddr>) -> Sipp {
        Sipp {
            scenario,
            remote,
            transport: Transport::Udp,
            calls: None,
            rate: None,
            limit: None,
            duration_ms: None,
            service: None,
            keys: Vec::new(),
            sets: Vec::new(),
            extra: Vec::new(),
            timeout: Duration::from_secs(30),
            local_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// A target (UAS) running `tests/sipp/<scenario>.xml`.
    pub fn uas(scenario: &str) -> Sipp {
        Sipp::new(Scenario::File(paths::scenario(scenario)), None).arg("-aa")
    }

    /// A caller (UAC) running `tests/sipp/<scenario>.xml` against `remote`. The scenarios in
    /// tests/sipp that start with `uac` take the calling number from the global variable
    /// `caller` (default `13800138000`, see [`Sipp::caller`]).
    pub fn uac(scenario: &str, remote: SocketAddr) -> Sipp {
        let s = Sipp::new(Scenario::File(paths::scenario(scenario)), Some(remote));
        if scenario.starts_with("uac") {
            s.caller("13800138000")
        } else {
            s
        }
    }

    /// SIPp's embedded scenario `name` (`uac`, `uas`, ...): `-sn name`; `remote` for clients.
    pub fn builtin(name: &str, remote: Option<SocketAddr>) -> Sipp {
        Sipp::new(Scenario::BuiltIn(name.to_string()), remote)
    }

    /// `-t u1` (default) or `-t t1`.
    pub fn transport(mut self, t: Transport) -> Self {
        self.transport = t;
        self
    }
    /// `-m n`: stop after n calls.
    pub fn calls(mut self, n: u32) -> Self {
        self.calls = Some(n);
        self
    }
    /// `-r n`: n new calls per second.
    pub fn rate(mut self, per_second: u32) -> Self {
        self.rate = Some(per_second);
        self
    }
    /// `-l n`: at most n simultaneous calls.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
    /// `-d ms`: the length of `<pause/>` (talk time for callers, ring time for ring-then-answer).
    pub fn duration_ms(mut self, ms: u64) -> Self {
        self.duration_ms = Some(ms);
        self
    }
    /// `-s user`: the Request-URI user part (the dialled number).
    pub fn service(mut self, user: &str) -> Self {
        self.service = Some(user.to_string());
        self
    }
    /// The calling number (`-set caller ...`, for the tests/sipp UAC scenarios).
    pub fn caller(mut self, number: &str) -> Self {
        self.sets.retain(|(k, _)| k != "caller");
        self.sets.push(("caller".into(), number.to_string()));
        self
    }
    /// `-key name value`: `[name]` in the scenario's messages.
    pub fn key(mut self, name: &str, value: &str) -> Self {
        self.keys.push((name.to_string(), value.to_string()));
        self
    }
    /// `-set name value`: a global scenario variable.
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.sets.push((name.to_string(), value.to_string()));
        self
    }
    /// Any other SIPp argument.
    pub fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.to_string());
        self
    }
    /// The loopback address SIPp binds and advertises (`-i`/`-mi`; default 127.0.0.1), e.g.
    /// `::1` for IPv6 tests.
    pub fn local_ip(mut self, ip: IpAddr) -> Self {
        self.local_ip = ip;
        self
    }
    /// Hard limit for the whole run (SIPp's `-timeout`, then a kill). Default 30 s.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    fn label(&self) -> String {
        match &self.scenario {
            Scenario::File(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scenario".into()),
            Scenario::BuiltIn(n) => format!("sn-{n}"),
        }
    }

    fn args(&self, port: u16) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        match &self.scenario {
            Scenario::File(p) => {
                a.push("-sf".into());
                a.push(p.to_string_lossy().into_owned());
            }
            Scenario::BuiltIn(n) => {
                a.push("-sn".into());
                a.push(n.clone());
            }
        }
        let secs = self.timeout.as_secs().max(1);
        let ip = self.local_ip.to_string();
        for s in [
            "-i",
            &ip,
            "-mi",
            &ip,
            "-p",
            &port.to_string(),
            "-t",
            self.transport.sipp_flag(),
            "-nostdin",
            "-trace_msg",
            "-message_file",
            "messages.log",
            "-trace_stat",
            "-stf",
            "stat.csv",
            "-trace_err",
            "-error_file",
            "errors.log",
            "-trace_screen",
            "-screen_file",
            "screen.log",
            "-timeout",
            &format!("{secs}s"),
            "-timeout_error",
        ] {
            a.push(s.to_string());
        }
        if let Some(m) = self.calls {
            a.extend(["-m".into(), m.to_string()]);
        }
        if let Some(r) = self.rate {
            a.extend(["-r".into(), r.to_string(), "-rp".into(), "1000".into()]);
        }
        if let Some(l) = self.limit {
            a.extend(["-l".into(), l.to_string()]);
        }
        if let Some(d) = self.duration_ms {
            a.extend(["-d".into(), d.to_string()]);
        }
        if let Some(s) = &self.service {
            a.extend(["-s".into(), s.clone()]);
        }
        for (k, v) in &self.keys {
            a.extend(["-key".into(), k.clone(), v.clone()]);
        }
        for (k, v) in &self.sets {
            a.extend(["-set".into(), k.clone(), v.clone()]);
        }
        a.extend(self.extra.iter().cloned());
        if let Some(remote) = self.remote {
            a.push(remote.to_string());
        }
        a
    }

    /// Starts SIPp (see the module docs); a server is bound when this returns.
    pub fn spawn(self) -> Result<SippProcess> {
        let bin = sipp_bin()?;
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = ports::free_port()?;
            let dir = tempfile::Builder::new()
                .prefix(&format!("sipp-{}-", self.label()))
                .tempdir()
                .map_err(|e| TestkitError::io("create sipp tempdir", e))?;
            let screen = std::fs::File::create(dir.path().join("stdout.log"))
                .map_err(|e| TestkitError::io("create sipp stdout.log", e))?;
            let stderr = std::fs::File::create(dir.path().join("stderr.log"))
                .map_err(|e| TestkitError::io("create sipp stderr.log", e))?;
            let args = self.args(port);
            let child = Command::new(&bin)
                .args(&args)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(screen)
                .stderr(stderr)
                .spawn()
                .map_err(|e| TestkitError::io(format!("spawn {}", bin.display()), e))?;
            let mut proc = SippProcess {
                child: Some(child),
                dir: Some(dir),
                port,
                transport: self.transport,
                label: self.label(),
                args,
                timeout: self.timeout,
                started: Instant::now(),
                local_ip: self.local_ip,
            };
            match proc.wait_started(self.remote.is_none())? {
                Started::Ok => return Ok(proc),
                Started::Retry(why) => last_error = why,
                Started::Failed(code, why) => {
                    return Err(TestkitError::SippStart { code, detail: why })
                }
            }
        }
        Err(TestkitError::SippStart {
            code: Some(EXIT_BIND_FAILED),
            detail: format!("gave up after {START_ATTEMPTS} ports: {last_error}"),
        })
    }

    /// Starts SIPp and waits for it to finish (a caller retries on a port collision).
    pub fn run(self) -> Result<SippResult> {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let result = self.clone().spawn()?.wait()?;
            if result.exit_code == Some(EXIT_BIND_FAILED) && result.created() == 0 {
                last = Some(result);
                continue;
            }
            return Ok(result);
        }
        last.ok_or(TestkitError::NoPort(START_ATTEMPTS))
    }
}

enum Started {
    Ok,
    Retry(String),
    Failed(Option<i32>, String),
}

/// A running SIPp. Dropping it kills the process.
pub struct SippProcess {
    child: Option<Child>,
    dir: Option<TempDir>,
    port: u16,
    transport: Transport,
    label: String,
    args: Vec<String>,
    timeout: Duration,
    started: Instant,
    local_ip: IpAddr,
}

impl std::fmt::Debug for SippProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SippProcess")
            .field("label", &self.label)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .finish()
    }
}

impl SippProcess {
    fn dir_path(&self) -> PathBuf {
        self.dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default()
    }

    fn wait_started(&mut self, server: bool) -> Result<Started> {
        let deadline = Instant::now() + BIND_TIMEOUT;
        let tcp = self.transport == Transport::Tcp;
        loop {
            let Some(child) = self.child.as_mut() else {
                return Ok(Started::Failed(None, "no child".into()));
            };
            if let Some(status) = child
                .try_wait()
                .map_err(|e| TestkitError::io("try_wait sipp", e))?
            {
                let detail = format!(
                    "{}\n{}",
                    read_lossy(&self.dir_path().join("stderr.log")),
                    read_lossy(&self.dir_path().join("errors.log"))
                );
                if !server {
                    // A client may legitimately finish quickly; wait() reports it.
                    return Ok(Started::Ok);
                }
                return Ok(
                    if status.code() == Some(EXIT_BIND_FAILED) || detail.contains("bind") {
                        Started::Retry(detail)
                    } else {
                        Started::Failed(status.code(), detail)
                    },
                );
            }
            if !server || ports::is_bound_on(self.local_ip, self.port, tcp) {
                return Ok(Started::Ok);
            }
            if Instant::now() >= deadline {
                return Ok(Started::Failed(
                    None,
                    format!("port {} not bound after {BIND_TIMEOUT:?}", self.port),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `127.0.0.1:port` (or the [`Sipp::local_ip`] address) SIPp listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.local_ip, self.port)
    }

    /// The local port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `sip:user@127.0.0.1:port` (with `;transport=tcp` for TCP).
    pub fn uri(&self, user: &str) -> String {
        match self.transport {
            Transport::Udp => format!("sip:{user}@{}", self.addr()),
            Transport::Tcp => format!("sip:{user}@{};transport=tcp", self.addr()),
        }
    }

    /// The directory with SIPp's logs.
    pub fn dir(&self) -> PathBuf {
        self.dir_path()
    }

    /// Waits until SIPp exits by itself (after `-m` calls) or its timeout passes (then it is
    /// asked to quit, and killed after a grace period).
    pub fn wait(mut self) -> Result<SippResult> {
        let left = self.timeout.saturating_sub(self.started.elapsed()) + KILL_GRACE;
        self.finish(left)
    }

    /// Waits at most `timeout` for SIPp to exit by itself, then stops it as [`SippProcess::stop`].
    pub fn wait_for(mut self, timeout: Duration) -> Result<SippResult> {
        self.finish(timeout)
    }

    /// Asks SIPp to quit now (SIGUSR1: graceful, final statistics written) and collects the result.
    pub fn stop(mut self) -> Result<SippResult> {
        self.finish(Duration::ZERO)
    }

    fn finish(&mut self, wait: Duration) -> Result<SippResult> {
        let Some(mut child) = self.child.take() else {
            return Err(TestkitError::SippStart {
                code: None,
                detail: "already finished".into(),
            });
        };
        let mut status =
            wait_timeout(&mut child, wait).map_err(|e| TestkitError::io("wait for sipp", e))?;
        let mut timed_out = false;
        if status.is_none() {
            let _ = send_signal(child.id(), "USR1");
            status = wait_timeout(&mut child, KILL_GRACE)
                .map_err(|e| TestkitError::io("wait for sipp", e))?;
            if status.is_none() {
                timed_out = true;
                let _ = child.kill();
                status = child.wait().ok();
            }
        }
        let dir = self.dir.take();
        let path = dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default();
        let mut result = SippResult::read(&path, status.and_then(|s| s.code()));
        result.signal = status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s));
        result.killed = timed_out;
        result.label = self.label.clone();
        result.args = self.args.clone();
        result.dir_guard = dir;
        Ok(result)
    }
}

impl Drop for SippProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            if let Some(d) = self.dir.take() {
                eprintln!(
                    "--- sipp {} logs kept in {} ---",
                    self.label,
                    d.keep().display()
                );
            }
        }
    }
}

fn read_lossy(p: &Path) -> String {
    std::fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Whether SIPp sent or received a logged message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Sent,
    Received,
}

/// One message from SIPp's `-trace_msg` log.
#[derive(Debug, Clone)]
pub struct LoggedMessage {
    pub direction: Direction,
    /// `UDP` or `TCP`.
    pub transport: String,
    /// Wall-clock time of the entry in seconds since the Unix epoch (local time as logged).
    pub at: f64,
    pub message: SipMessage,
}

/// Seconds since 1970-01-01 for `YYYY-MM-DD HH:MM:SS.ffffff` (as written, no zone).
fn parse_timestamp(s: &str) -> Option<f64> {
    let mut parts = s.split_whitespace();
    let date = parts.next()?;
    let time = parts.next()?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let h: f64 = t.next()?.parse().ok()?;
    let mi: f64 = t.next()?.parse().ok()?;
    let sec: f64 = t.next()?.parse().ok()?;
    // days from civil (Howard Hinnant)
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + mi * 60.0 + sec)
}

/// Parses a SIPp `-trace_msg` log into messages (entries that are not messages are skipped).
pub fn parse_message_log(text: &str) -> Vec<LoggedMessage> {
    const SEP: &str = "-----------------------------------------------";
    let mut out = Vec::new();
    let mut entries: Vec<(String, Vec<&str>)> = Vec::new();
    for line in text.split('\n') {
        let trimmed = line.trim_end_matches('\r');
        if let Some(rest) = trimmed.strip_prefix(SEP) {
            if rest.starts_with(' ') && !rest.starts_with(" -") {
                entries.push((rest.trim().to_string(), Vec::new()));
                continue;
            }
        }
        if let Some((_, body)) = entries.last_mut() {
            body.push(trimmed);
        }
    }
    for (stamp, lines) in entries {
        let Some(first) = lines.first() else { continue };
        let direction = if first.contains("message received") {
            Direction::Received
        } else if first.contains("message sent") {
            Direction::Sent
        } else {
            continue;
        };
        let transport = first.split_whitespace().next().unwrap_or("").to_string();
        // Skip the description line and the blank line after it.
        let mut body: Vec<&str> = lines[1..].to_vec();
        while body.first().is_some_and(|l| l.is_empty()) {
            body.remove(0);
        }
        while body.last().is_some_and(|l| l.is_empty()) {
            body.pop();
        }
        let mut text = body.join("\r\n");
        if !text.contains("\r\n\r\n") {
            text.push_str("\r\n\r\n");
        }
        if let Ok(message) = SipMessage::parse(text.as_bytes()) {
            out.push(LoggedMessage {
                direction,
                transport,
                at: parse_timestamp(&stamp).unwrap_or(0.0),
                message,
            });
        }
    }
    out
}

/// What a finished SIPp run did.
#[derive(Debug, Default)]
pub struct SippResult {
    /// Process exit code (`None` if killed by a signal).
    pub exit_code: Option<i32>,
    /// True if SIPp had to be killed (it ignored SIGUSR1).
    pub killed: bool,
    /// The signal that ended SIPp, if one did (e.g. 13 = SIGPIPE when a peer closed TCP).
    pub signal: Option<i32>,
    /// The last row of the `-trace_stat` CSV, by column name.
    pub stats: HashMap<String, String>,
    /// Every message sent or received, in log order.
    pub messages: Vec<LoggedMessage>,
    /// SIPp's `-trace_err` log (unexpected messages, aborted calls, timeouts).
    pub errors: String,
    /// SIPp's final statistics screen.
    pub screen: String,
    /// SIPp's stderr.
    pub stderr: String,
    /// Scenario name.
    pub label: String,
    /// The command-line arguments used.
    pub args: Vec<String>,
    /// Where the logs are (deleted with this value unless a test panics).
    pub dir: PathBuf,
    dir_guard: Option<TempDir>,
}

impl Drop for SippResult {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(d) = self.dir_guard.take() {
                eprintln!(
                    "--- sipp {} logs kept in {} ---",
                    self.label,
                    d.keep().display()
                );
            }
        }
    }
}

impl SippResult {
    fn read(dir: &Path, exit_code: Option<i32>) -> SippResult {
        let stat_text = read_lossy(&dir.join("stat.csv"));
        let mut rows = stat_text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = rows
            .next()
            .map(|h| h.split(';').collect())
            .unwrap_or_default();
        let last: Vec<&str> = rows
            .next_back()
            .map(|l| l.split(';').collect())
            .unwrap_or_default();
        let stats = header
            .iter()
            .zip(last.iter())
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut r = SippResult::default();
        r.exit_code = exit_code;
        r.stats = stats;
        r.messages = parse_message_log(&read_lossy(&dir.join("messages.log")));
        r.errors = read_lossy(&dir.join("errors.log"));
        r.screen = read_lossy(&dir.join("screen.log"));
        r.stderr = read_lossy(&dir.join("stderr.log"));
        r.dir = dir.to_path_buf();
        r
    }

    /// A numeric statistics column (e.g. `"SuccessfulCall(C)"`).
    pub fn stat(&self, column: &str) -> Option<u64> {
        self.stats.get(column)?.parse().ok()
    }

    /// Calls that completed their scenario.
    pub fn successful(&self) -> u64 {
        self.stat("SuccessfulCall(C)").unwrap_or(0)
    }

    /// Calls that failed (unexpected message, timeout, ...).
    pub fn failed(&self) -> u64 {
        self.stat("FailedCall(C)").unwrap_or(0)
    }

    /// Calls created (outgoing for a caller, incoming for a target).
    pub fn created(&self) -> u64 {
        self.stat("TotalCallCreated").unwrap_or(0)
    }

    /// True when SIPp exited 0 and exactly `n` calls succeeded with none failed.
    pub fn all_ok(&self, n: u64) -> bool {
        self.exit_code == Some(0) && self.successful() == n && self.failed() == 0
    }

    /// Messages received by SIPp.
    pub fn received(&self) -> impl Iterator<Item = &SipMessage> {
        self.messages
            .iter()
            .filter(|m| m.direction == Direction::Received)
            .map(|m| &m.message)
    }

    /// Messages sent by SIPp.
    pub fn sent(&self) -> impl Iterator<Item = &SipMessage> {
        self.messages
            .iter()
            .filter(|m| m.direction == Direction::Sent)
            .map(|m| &m.message)
    }

    /// Received requests with `method` (retransmissions included).
    pub fn received_requests(&self, method: &str) -> Vec<&SipMessage> {
        self.received()
            .filter(|m| m.method() == Some(method))
            .collect()
    }

    /// Distinct Call-IDs of received requests with `method` (retransmissions folded).
    pub fn received_request_calls(&self, method: &str) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for m in self.received_requests(method) {
            let id = m.header("Call-ID").unwrap_or_default();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// True if SIPp received at least one `method` request (e.g. `"CANCEL"`).
    pub fn saw_request(&self, method: &str) -> bool {
        !self.received_requests(method).is_empty()
    }

    /// Received responses to `cseq_method` requests, e.g. every response to INVITE.
    pub fn received_responses(&self, cseq_method: &str) -> Vec<&SipMessage> {
        self.received()
            .filter(|m| m.is_response() && m.cseq_method().as_deref() == Some(cseq_method))
            .collect()
    }

    /// The first final status received for each INVITE (one per Call-ID, in order): what the
    /// caller "got".
    pub fn final_codes(&self) -> Vec<u16> {
        let mut seen: Vec<String> = Vec::new();
        let mut codes = Vec::new();
        for m in self.received_responses("INVITE") {
            let Some(code) = m.status() else { continue };
            if code < 200 {
                continue;
            }
            let id = m.header("Call-ID").unwrap_or_default();
            if !seen.contains(&id) {
                seen.push(id);
                codes.push(code);
            }
        }
        codes
    }

    /// A short report for assertion messages: exit code, counts, and the error log tail.
    pub fn summary(&self) -> String {
        let errors: Vec<&str> = self.errors.lines().rev().take(8).collect();
        format!(
            "sipp {} exit={:?} signal={:?} killed={} created={} ok={} failed={} (logs: {})\nerrors (last lines, newest first):\n{}\nstderr: {}",
            self.label,
            self.exit_code,
            self.signal,
            self.killed,
            self.created(),
            self.successful(),
            self.failed(),
            self.dir.display(),
            errors.join("\n"),
            self.stderr.trim()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "----------------------------------------------- 2026-11-24 22:23:40.859245\nUDP message received [505] bytes :\n\nINVITE sip:4008001234@127.0.0.1:15070 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:15060;branch=z9hG4bK-1\nCall-ID: 1-8469@127.0.0.1\nCSeq: 1 INVITE\nContent-Length: 4\n\nv=0\n\n----------------------------------------------- 2026-11-24 22:23:41.359347\nUDP message sent (311 bytes):\n\nSIP/2.0 180 Ringing\nCall-ID: 1-8469@127.0.0.1\nCSeq: 1 INVITE\nContent-Length: 0\n\n\n";

    #[test]
    fn message_log_is_parsed() {
        let msgs = parse_message_log(LOG);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].direction, Direction::Received);
        assert_eq!(msgs[0].transport, "UDP");
        assert_eq!(msgs[0].message.method(), Some("INVITE"));
        assert_eq!(msgs[0].message.body().trim(), "v=0");
        assert_eq!(msgs[1].direction, Direction::Sent);
        assert_eq!(msgs[1].message.status(), Some(180));
        let dt = msgs[1].at - msgs[0].at;
        assert!((dt - 0.500102).abs() < 1e-3, "dt = {dt}");
    }

    #[test]
    fn timestamps_count_days() {
        let a = parse_timestamp("1970-01-02 00:00:01.5").unwrap_or(-1.0);
        assert!((a - 86_401.5).abs() < 1e-9);
        assert_eq!(parse_timestamp("garbage"), None);
    }
}
