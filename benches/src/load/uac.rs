//! The caller role: open-loop paced calls over one socket / connection per worker thread.
//!
//! Worker `w` of `W` owns the calls with global index `g ≡ w (mod W)`; call `g` is due at
//! `start + g / rate`, whatever happened to the calls before it (open loop: a slow proxy
//! does not slow the offered load down). Latencies are measured from the moment the INVITE
//! was actually sent; how late the scheduler was is reported separately (`late_starts`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hotline_sip::{Message, Method};

use super::net::{self, Rx, Tx};
use super::sip::{self, put, put_hex, put_u64};
use super::{check_loopback, Scenario, SipTimers};

#[derive(Debug, Clone)]
pub struct UacOpts {
    /// Hotline's address.
    pub target: SocketAddr,
    pub tcp: bool,
    pub threads: usize,
    /// Calls per second offered (all workers together).
    pub rate: f64,
    /// Stop after this many calls (all workers together).
    pub calls: Option<u64>,
    /// Stop starting calls after this long.
    pub duration: Duration,
    /// Time from the 200 to the BYE.
    pub hold: Duration,
    pub scenario: Scenario,
    /// The 400 number dialled (default: the scenario's).
    pub number: String,
    pub timers: SipTimers,
    /// A call not answered this long after its INVITE fails ("setup timeout").
    pub setup_timeout: Duration,
    /// Print a progress line every second.
    pub progress: bool,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct UacReport {
    pub attempted: u64,
    pub completed: u64,
    pub failed: u64,
    /// Failure causes (`486`, `setup timeout`, `bye timeout`, ...) and counts.
    pub failures: BTreeMap<String, u64>,
    pub retransmissions: u64,
    /// Time over which calls were started (first to last INVITE).
    pub send_window: Duration,
    pub wall: Duration,
    /// INVITE → first 18x, µs.
    pub ring: Histogram<u64>,
    /// INVITE → 200, µs.
    pub answer: Histogram<u64>,
    /// Calls whose INVITE left more than 1 ms after its scheduled time.
    pub late_starts: u64,
    pub max_lag: Duration,
    /// 2xx without Record-Route (Hotline should always record-route).
    pub no_record_route: u64,
    pub stray: u64,
    pub peak_in_flight: u64,
}

pub fn hist() -> Histogram<u64> {
    // 1 µs .. 10 min at 3 significant digits: valid bounds, creation cannot fail.
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!("valid sigfig")))
}

impl UacReport {
    fn empty() -> UacReport {
        UacReport {
            attempted: 0,
            completed: 0,
            failed: 0,
            failures: BTreeMap::new(),
            retransmissions: 0,
            send_window: Duration::ZERO,
            wall: Duration::ZERO,
            ring: hist(),
            answer: hist(),
            late_starts: 0,
            max_lag: Duration::ZERO,
            no_record_route: 0,
            stray: 0,
            peak_in_flight: 0,
        }
    }
    fn merge(&mut self, o: UacReport) {
        self.attempted += o.attempted;
        self.completed += o.completed;
        self.failed += o.failed;
        for (k, v) in o.failures {
            *self.failures.entry(k).or_default() += v;
        }
        self.retransmissions += o.retransmissions;
        self.send_window = self.send_window.max(o.send_window);
        let _ = self.ring.add(&o.ring);
        let _ = self.answer.add(&o.answer);
        self.late_starts += o.late_starts;
        self.max_lag = self.max_lag.max(o.max_lag);
        self.no_record_route += o.no_record_route;
        self.stray += o.stray;
        self.peak_in_flight += o.peak_in_flight;
    }
    fn fail(&mut self, why: &str) {
        self.failed += 1;
        match self.failures.get_mut(why) {
            Some(n) => *n += 1,
            None => {
                self.failures.insert(why.to_string(), 1);
            }
        }
    }
    /// Calls started per second over the send window.
    pub fn offered_cps(&self) -> f64 {
        self.attempted as f64 / self.send_window.as_secs_f64().max(1e-3)
    }
    /// Completed calls per second over the send window.
    pub fn completed_cps(&self) -> f64 {
        self.completed as f64 / self.send_window.as_secs_f64().max(1e-3)
    }
    pub fn failed_pct(&self) -> f64 {
        self.failed as f64 * 100.0 / self.attempted.max(1) as f64
    }
    /// One `key=value` line for scripts (benches/load.sh parses it).
    pub fn result_line(&self) -> String {
        let q = |h: &Histogram<u64>, p: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(p)
            }
        };
        format!(
            "RESULT attempted={} completed={} failed={} failed_pct={:.4} offered_cps={:.1} cps={:.1} \
ring_p50_us={} ring_p99_us={} ring_p999_us={} answer_p50_us={} answer_p90_us={} answer_p99_us={} answer_p999_us={} answer_max_us={} \
retransmissions={} late_starts={} max_lag_us={} stray={} no_record_route={} peak_in_flight={}",
            self.attempted,
            self.completed,
            self.failed,
            self.failed_pct(),
            self.offered_cps(),
            self.completed_cps(),
            q(&self.ring, 0.5),
            q(&self.ring, 0.99),
            q(&self.ring, 0.999),
            q(&self.answer, 0.5),
            q(&self.answer, 0.9),
            q(&self.answer, 0.99),
            q(&self.answer, 0.999),
            if self.answer.is_empty() { 0 } else { self.answer.max() },
            self.retransmissions,
            self.late_starts,
            self.max_lag.as_micros(),
            self.stray,
            self.no_record_route,
            self.peak_in_flight,
        )
    }
    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let row = |s: &mut String, k: &str, v: String| {
            s.push_str(&format!("  {k:<28} {v}\n"));
        };
        row(&mut s, "attempted", self.attempted.to_string());
        row(&mut s, "completed", self.completed.to_string());
        row(
            &mut s,
            "failed",
            format!("{} ({:.3} %)", self.failed, self.failed_pct()),
        );
        for (k, v) in &self.failures {
            row(&mut s, &format!("  failed: {k}"), v.to_string());
        }
        row(
            &mut s,
            "offered / completed CPS",
            format!("{:.1} / {:.1}", self.offered_cps(), self.completed_cps()),
        );
        row(
            &mut s,
            "send window / wall",
            format!(
                "{:.2} s / {:.2} s",
                self.send_window.as_secs_f64(),
                self.wall.as_secs_f64()
            ),
        );
        for (name, h) in [
            ("INVITE→18x (µs)", &self.ring),
            ("INVITE→200 (µs)", &self.answer),
        ] {
            if h.is_empty() {
                row(&mut s, name, "-".into());
            } else {
                row(
                    &mut s,
                    name,
                    format!(
                        "p50 {} p90 {} p99 {} p99.9 {} max {}",
                        h.value_at_quantile(0.5),
                        h.value_at_quantile(0.9),
                        h.value_at_quantile(0.99),
                        h.value_at_quantile(0.999),
                        h.max()
                    ),
                );
            }
        }
        row(&mut s, "retransmissions", self.retransmissions.to_string());
        row(
            &mut s,
            "late starts (>1 ms) / max lag",
            format!("{} / {} µs", self.late_starts, self.max_lag.as_micros()),
        );
        row(
            &mut s,
            "peak calls in flight",
            self.peak_in_flight.to_string(),
        );
        if self.stray > 0 || self.no_record_route > 0 {
            row(
                &mut s,
                "stray / 2xx without RR",
                format!("{} / {}", self.stray, self.no_record_route),
            );
        }
        s
    }
}

/// Run the UAC: spawn the workers, wait for them, merge their reports.
pub fn run(opts: &UacOpts) -> io::Result<UacReport> {
    check_loopback(opts.target).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if !(opts.rate > 0.0 && opts.rate.is_finite()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "rate must be > 0",
        ));
    }
    let workers = opts.threads.max(1);
    let run_id = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()))
        & 0xffff_ffff;
    // Open every connection before the clock starts.
    let mut conns = Vec::with_capacity(workers);
    for _ in 0..workers {
        conns.push(net::open(opts.target, opts.tcp)?);
    }
    let opts = Arc::new(opts.clone());
    let start = Instant::now() + Duration::from_millis(20);
    let wall = Instant::now();
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(w, (tx, rx, local))| {
            let opts = opts.clone();
            std::thread::spawn(move || {
                let worker = Worker::new(w, workers, tx, local, &opts, run_id, start);
                Ok::<_, io::Error>(run_worker(worker, rx))
            })
        })
        .collect();
    let mut total = UacReport::empty();
    for h in handles {
        match h.join() {
            Ok(Ok(r)) => total.merge(r),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::other("a UAC worker panicked")),
        }
    }
    total.wall = wall.elapsed();
    Ok(total)
}

/// A worker: a pacing thread (this one) and a receiving thread, sharing the call table
/// behind one mutex (two threads, so contention is low; sends happen under the lock, which
/// also keeps TCP writes whole).
fn run_worker(worker: Worker<'_>, mut rx: Rx) -> UacReport {
    let shared = Mutex::new(worker);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                match rx.recv() {
                    Ok(Some(b)) => {
                        let msg = Message::parse(b).ok();
                        if let Ok(mut w) = shared.lock() {
                            w.on_message(msg);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        if let Ok(mut w) = shared.lock() {
                            w.transport_error = Some(e.to_string());
                        }
                        break;
                    }
                }
            }
        });
        loop {
            let next = match shared.lock() {
                Ok(mut w) => w.step(Instant::now()),
                Err(_) => None,
            };
            match next {
                Some(d) => std::thread::sleep(d.min(Duration::from_millis(1))),
                None => break,
            }
        }
        done.store(true, Ordering::Relaxed);
    });
    match shared.into_inner() {
        Ok(w) => w.r,
        Err(p) => p.into_inner().r,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Calling,
    Proceeding,
    Answered,
    Byeing,
}

struct Call {
    st: St,
    sent: Instant,
    ringing: bool,
    retx_due: Option<Instant>,
    retx_iv: Duration,
    ack: Vec<u8>,
    bye: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tk {
    Retx,
    Setup,
    SendBye,
    ByeTimeout,
}

struct Worker<'o> {
    w: u64,
    workers: u64,
    tx: Tx,
    o: &'o UacOpts,
    run_id: u64,
    start: Instant,
    /// `host` and `host:port` of us and of the proxy, formatted once.
    local_host: Vec<u8>,
    local_hp: Vec<u8>,
    target_host: Vec<u8>,
    target_hp: Vec<u8>,
    via_proto: &'static [u8],
    calls: HashMap<u64, Call>,
    timers: BinaryHeap<Reverse<(Instant, u64, Tk)>>,
    out: Vec<u8>,
    sdp: Vec<u8>,
    r: UacReport,
    next_g: u64,
    first_sent: Option<Instant>,
    last_sent: Option<Instant>,
    last_progress: Instant,
    transport_error: Option<String>,
}

impl<'o> Worker<'o> {
    fn new(
        w: usize,
        workers: usize,
        tx: Tx,
        local: SocketAddr,
        o: &'o UacOpts,
        run_id: u64,
        start: Instant,
    ) -> Worker<'o> {
        let mut sdp = Vec::new();
        sip::sdp(&mut sdp, &local.ip().to_string(), 30_000);
        let host = |a: SocketAddr| match a {
            SocketAddr::V4(v4) => v4.ip().to_string().into_bytes(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()).into_bytes(),
        };
        Worker {
            local_host: host(local),
            local_hp: local.to_string().into_bytes(),
            target_host: host(o.target),
            target_hp: o.target.to_string().into_bytes(),
            w: w as u64,
            workers: workers as u64,
            via_proto: if tx.is_tcp() { b"TCP" } else { b"UDP" },
            tx,
            o,
            run_id,
            start,
            calls: HashMap::new(),
            timers: BinaryHeap::new(),
            out: Vec::with_capacity(2048),
            sdp,
            r: UacReport::empty(),
            next_g: w as u64,
            first_sent: None,
            last_sent: None,
            last_progress: Instant::now(),
            transport_error: None,
        }
    }

    fn due_at(&self, g: u64) -> Instant {
        self.start + Duration::from_secs_f64(g as f64 / self.o.rate)
    }

    fn sending(&self, now: Instant) -> bool {
        !matches!(self.o.calls, Some(n) if self.next_g >= n)
            && self.due_at(self.next_g) < self.start + self.o.duration
            && now >= self.start - Duration::from_millis(20)
    }

    /// One pass of the pacing thread: start due calls, fire due timers. Returns how long to
    /// sleep, or `None` when the worker is finished.
    fn step(&mut self, now: Instant) -> Option<Duration> {
        if let Some(e) = self.transport_error.take() {
            eprintln!("hotline-load: worker {}: {e}", self.w);
            for _ in 0..self.calls.len() {
                self.r.fail("transport error");
            }
            self.calls.clear();
            self.finish();
            return None;
        }
        // Start every call that is due (catching up in a burst if we were late).
        while self.sending(now) && self.due_at(self.next_g) <= now {
            let g = self.next_g;
            let lag = now.saturating_duration_since(self.due_at(g));
            if lag > Duration::from_millis(1) {
                self.r.late_starts += 1;
            }
            self.r.max_lag = self.r.max_lag.max(lag);
            self.start_call(g, now);
            self.next_g += self.workers;
        }
        while let Some(Reverse((t, g, k))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            self.on_timer(now, t, g, k);
        }
        let still_sending = self.sending(now);
        if !still_sending && self.calls.is_empty() {
            self.finish();
            return None;
        }
        if !still_sending {
            let drain =
                self.o.hold + self.o.setup_timeout + self.o.timers.t1 * 64 + Duration::from_secs(1);
            if now > self.last_sent.unwrap_or(self.start) + drain {
                for _ in 0..self.calls.len() {
                    self.r.fail("unfinished at end of drain");
                }
                self.calls.clear();
                self.finish();
                return None;
            }
        }
        if self.o.progress
            && self.w == 0
            && now.duration_since(self.last_progress) >= Duration::from_secs(1)
        {
            self.last_progress = now;
            eprintln!(
                "[uac w0] t={:.0}s started={} completed={} failed={} in_flight={}",
                now.saturating_duration_since(self.start).as_secs_f64(),
                self.r.attempted,
                self.r.completed,
                self.r.failed,
                self.calls.len()
            );
        }
        let mut wake = now + Duration::from_millis(1);
        if still_sending {
            wake = wake.min(self.due_at(self.next_g));
        }
        if let Some(Reverse((t, _, _))) = self.timers.peek() {
            wake = wake.min(*t);
        }
        Some(wake.saturating_duration_since(now))
    }

    fn finish(&mut self) {
        if let (Some(a), Some(b)) = (self.first_sent, self.last_sent) {
            // One inter-call gap is added so a window of N calls at rate R is N/R long.
            self.r.send_window =
                b.duration_since(a) + Duration::from_secs_f64(self.workers as f64 / self.o.rate);
        }
    }

    fn call_id(&self, out: &mut Vec<u8>, g: u64) {
        put_hex(out, self.run_id, 8);
        out.push(b'-');
        put_hex(out, g, 12);
        out.extend_from_slice(b"@hl-load");
    }

    /// Global index from a Call-ID of this run.
    fn parse_call_id(&self, cid: &[u8]) -> Option<u64> {
        let (run, rest) = (cid.get(..8)?, cid.get(9..21)?);
        let run = u64::from_str_radix(std::str::from_utf8(run).ok()?, 16).ok()?;
        if run != self.run_id || cid.get(8) != Some(&b'-') {
            return None;
        }
        u64::from_str_radix(std::str::from_utf8(rest).ok()?, 16).ok()
    }

    fn put_from(&self, out: &mut Vec<u8>, g: u64) {
        // Callers: mobiles in a few provinces (so Hotline's region lookup does real work).
        let caller = 13_800_000_000u64 + (g % 7) * 10_000_000 + (g % 9_999_991) % 10_000_000;
        out.extend_from_slice(b"From: <sip:");
        put_u64(out, caller);
        put(out, &[b"@", &self.local_host, b">;tag="]);
        put_hex(out, g ^ 0x5a5a, 12);
        out.extend_from_slice(b"\r\n");
    }

    fn via(&self, out: &mut Vec<u8>, g: u64, kind: u8) {
        put(
            out,
            &[
                b"Via: SIP/2.0/",
                self.via_proto,
                b" ",
                &self.local_hp,
                b";branch=z9hG4bK-",
            ],
        );
        put_hex(out, self.run_id, 8);
        out.push(kind);
        put_hex(out, g, 12);
        out.extend_from_slice(b";rport\r\n");
    }

    fn build_invite(&mut self, g: u64) {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        put(
            &mut out,
            &[
                b"INVITE sip:",
                self.o.number.as_bytes(),
                b"@",
                &self.target_hp,
                b" SIP/2.0\r\n",
            ],
        );
        self.via(&mut out, g, b'i');
        out.extend_from_slice(b"Max-Forwards: 70\r\n");
        self.put_from(&mut out, g);
        put(
            &mut out,
            &[
                b"To: <sip:",
                self.o.number.as_bytes(),
                b"@",
                &self.target_host,
                b">\r\nCall-ID: ",
            ],
        );
        self.call_id(&mut out, g);
        put(
            &mut out,
            &[
                b"\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@",
                &self.local_hp,
            ],
        );
        if self.tx.is_tcp() {
            out.extend_from_slice(b";transport=tcp");
        }
        out.extend_from_slice(
            b">\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\nUser-Agent: hotline-load\r\nContent-Type: application/sdp\r\n",
        );
        sip::finish(&mut out, &self.sdp);
        self.out = out;
    }

    fn send_out(&mut self) -> bool {
        self.tx.send(&self.out).is_ok()
    }

    fn start_call(&mut self, g: u64, now: Instant) {
        self.build_invite(g);
        self.r.attempted += 1;
        self.first_sent.get_or_insert(now);
        self.last_sent = Some(now);
        if !self.send_out() {
            self.r.fail("send error");
            return;
        }
        let reliable = self.tx.is_tcp();
        let t1 = self.o.timers.t1;
        self.calls.insert(
            g,
            Call {
                st: St::Calling,
                sent: now,
                ringing: false,
                retx_due: (!reliable).then_some(now + t1),
                retx_iv: t1,
                ack: Vec::new(),
                bye: Vec::new(),
            },
        );
        self.r.peak_in_flight = self.r.peak_in_flight.max(self.calls.len() as u64);
        if !reliable {
            self.timers.push(Reverse((now + t1, g, Tk::Retx)));
        }
        self.timers
            .push(Reverse((now + self.o.setup_timeout, g, Tk::Setup)));
    }

    fn on_timer(&mut self, now: Instant, t: Instant, g: u64, k: Tk) {
        let Some(c) = self.calls.get_mut(&g) else {
            return;
        };
        match k {
            Tk::Retx => {
                if c.retx_due != Some(t) {
                    return;
                }
                let t2 = self.o.timers.t2;
                match c.st {
                    St::Calling => {
                        c.retx_iv *= 2;
                        c.retx_due = Some(now + c.retx_iv);
                        let due = now + c.retx_iv;
                        self.build_invite(g);
                        self.timers.push(Reverse((due, g, Tk::Retx)));
                    }
                    St::Byeing => {
                        c.retx_iv = (c.retx_iv * 2).min(t2);
                        c.retx_due = Some(now + c.retx_iv);
                        let due = now + c.retx_iv;
                        self.out.clear();
                        self.out.extend_from_slice(&c.bye);
                        self.timers.push(Reverse((due, g, Tk::Retx)));
                    }
                    _ => return,
                }
                self.r.retransmissions += 1;
                let _ = self.send_out();
            }
            Tk::Setup => {
                if matches!(c.st, St::Calling | St::Proceeding) {
                    self.calls.remove(&g);
                    self.r.fail("setup timeout");
                }
            }
            Tk::SendBye => {
                if c.st != St::Answered {
                    return;
                }
                c.st = St::Byeing;
                let reliable = self.tx.is_tcp();
                let t1 = self.o.timers.t1;
                c.retx_iv = t1;
                c.retx_due = (!reliable).then_some(now + t1);
                self.out.clear();
                self.out.extend_from_slice(&c.bye);
                if !reliable {
                    self.timers.push(Reverse((now + t1, g, Tk::Retx)));
                }
                self.timers
                    .push(Reverse((now + t1 * 64, g, Tk::ByeTimeout)));
                let _ = self.send_out();
            }
            Tk::ByeTimeout => {
                if c.st == St::Byeing {
                    self.calls.remove(&g);
                    self.r.fail("BYE timeout");
                }
            }
        }
    }

    fn on_message(&mut self, msg: Option<Message>) {
        let Some(msg) = msg else {
            self.r.stray += 1;
            return;
        };
        if msg.is_request() {
            self.on_request(&msg);
            return;
        }
        let Some(g) = self.parse_call_id(msg.call_id()) else {
            self.r.stray += 1;
            return;
        };
        let code = msg.status().unwrap_or(0);
        let now = Instant::now();
        match msg.cseq().1 {
            Method::Invite => self.on_invite_response(now, g, code, &msg),
            Method::Bye => {
                if code < 200 {
                    if let Some(c) = self.calls.get_mut(&g) {
                        // Proceeding: Timer E goes on at T2 (RFC 3261 §17.1.2.2).
                        if c.st == St::Byeing && c.retx_due.is_some() {
                            c.retx_iv = self.o.timers.t2 / 2;
                        }
                    }
                    return;
                }
                if self.calls.get(&g).is_some_and(|c| c.st == St::Byeing) {
                    self.calls.remove(&g);
                    if (200..300).contains(&code) {
                        self.r.completed += 1;
                    } else {
                        self.r.fail(&format!("BYE got {code}"));
                    }
                }
            }
            _ => {}
        }
    }

    fn on_invite_response(&mut self, now: Instant, g: u64, code: u16, msg: &Message) {
        if code >= 300 {
            // ACK every non-2xx final (retransmissions too), statelessly (§17.1.1.3).
            self.build_non2xx_ack(msg);
            let _ = self.send_out();
            if self
                .calls
                .get(&g)
                .is_some_and(|c| matches!(c.st, St::Calling | St::Proceeding))
            {
                self.calls.remove(&g);
                self.r.fail(&code.to_string());
            }
            return;
        }
        let Some(c) = self.calls.get_mut(&g) else {
            return;
        };
        if code < 200 {
            if c.st == St::Calling {
                c.st = St::Proceeding;
                c.retx_due = None;
            }
            if code > 100 && !c.ringing && c.st == St::Proceeding {
                c.ringing = true;
                let us = now.duration_since(c.sent).as_micros() as u64;
                let _ = self.r.ring.record(us.max(1));
            }
            return;
        }
        match c.st {
            St::Calling | St::Proceeding => {
                let us = now.duration_since(c.sent).as_micros() as u64;
                let _ = self.r.answer.record(us.max(1));
                c.st = St::Answered;
                c.retx_due = None;
                if msg.record_routes().next().is_none() {
                    self.r.no_record_route += 1;
                }
                let mut ack = std::mem::take(&mut c.ack);
                let mut bye = std::mem::take(&mut c.bye);
                self.build_in_dialog(&mut ack, g, msg, "ACK", 1);
                self.build_in_dialog(&mut bye, g, msg, "BYE", 2);
                self.out.clear();
                self.out.extend_from_slice(&ack);
                if let Some(c) = self.calls.get_mut(&g) {
                    c.ack = ack;
                    c.bye = bye;
                }
                let _ = self.send_out();
                self.timers
                    .push(Reverse((now + self.o.hold, g, Tk::SendBye)));
            }
            St::Answered | St::Byeing => {
                // A retransmitted 2xx: our ACK was lost; send it again.
                self.out.clear();
                self.out.extend_from_slice(&c.ack);
                let _ = self.send_out();
            }
        }
    }

    /// ACK / BYE inside the dialog the 2xx created (§12.2.1.1): Request-URI = the callee's
    /// Contact, Route = the Record-Route set reversed.
    fn build_in_dialog(&self, out: &mut Vec<u8>, g: u64, ok: &Message, method: &str, cseq: u32) {
        out.clear();
        let contact = ok
            .contacts()
            .next()
            .map(sip::addr_spec)
            .unwrap_or(b"sip:unknown@127.0.0.1");
        put(out, &[method.as_bytes(), b" ", contact, b" SIP/2.0\r\n"]);
        self.via(out, g, if method == "ACK" { b'a' } else { b'b' });
        let rrs: Vec<&[u8]> = ok.record_routes().collect();
        for rr in rrs.iter().rev() {
            put(out, &[b"Route: ", rr, b"\r\n"]);
        }
        out.extend_from_slice(b"Max-Forwards: 70\r\n");
        self.put_from(out, g);
        put(
            out,
            &[
                b"To: ",
                ok.to_value(),
                b"\r\nCall-ID: ",
                ok.call_id(),
                b"\r\nCSeq: ",
            ],
        );
        put_u64(out, u64::from(cseq));
        put(out, &[b" ", method.as_bytes(), b"\r\n"]);
        sip::finish(out, b"");
    }

    /// ACK for a non-2xx final: same branch and Request-URI as the INVITE (§17.1.1.3).
    fn build_non2xx_ack(&mut self, resp: &Message) {
        let mut buf = std::mem::take(&mut self.out);
        let out = &mut buf;
        out.clear();
        put(
            out,
            &[b"ACK sip:", self.o.number.as_bytes(), b"@", &self.target_hp],
        );
        put(
            out,
            &[
                b" SIP/2.0\r\nVia: ",
                resp.top_via().raw,
                b"\r\nMax-Forwards: 70\r\nFrom: ",
                resp.from_value(),
            ],
        );
        put(
            out,
            &[
                b"\r\nTo: ",
                resp.to_value(),
                b"\r\nCall-ID: ",
                resp.call_id(),
                b"\r\nCSeq: ",
            ],
        );
        put_u64(out, u64::from(resp.cseq().0));
        out.extend_from_slice(b" ACK\r\n");
        sip::finish(out, b"");
        self.out = buf;
    }

    /// A request from the proxy (a BYE from the callee side, OPTIONS): 200, statelessly.
    fn on_request(&mut self, msg: &Message) {
        if msg.method() == Some(Method::Ack) {
            return;
        }
        if msg.method() == Some(Method::Bye) {
            if let Some(g) = self.parse_call_id(msg.call_id()) {
                if self.calls.remove(&g).is_some() {
                    self.r.completed += 1;
                }
            }
        }
        let mut out = std::mem::take(&mut self.out);
        sip::response(&mut out, msg, 200, "OK", b"uac", None, false, None, b"");
        self.out = out;
        let _ = self.send_out();
    }
}
