//! Rendering `/metrics`: [`Metrics::render`] and the sample writers (HELP/TYPE come from
//! [`super::FAMILIES`]); the `process_*` series from `/proc/self`.

use super::*;

impl Metrics {
    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut o = String::with_capacity(16 * 1024);
        let b = &self.build;
        header(&mut o, "hotline_build_info");
        let _ = writeln!(
            o,
            "hotline_build_info{{version=\"{}\",commit=\"{}\",build_date=\"{}\"}} 1",
            esc(&b.version),
            esc(&b.commit),
            esc(&b.date)
        );
        gauge(
            &mut o,
            "hotline_start_time_seconds",
            self.started_at.as_millisecond() as f64 / 1000.0,
        );
        gauge(
            &mut o,
            "hotline_uptime_seconds",
            self.uptime().as_secs_f64(),
        );
        process_metrics(&mut o);
        gauge(
            &mut o,
            "hotline_ready",
            f64::from(u8::from(self.readiness().is_ok())),
        );
        gauge(
            &mut o,
            "hotline_draining",
            f64::from(u8::from(self.draining())),
        );
        let cfg = self.config();
        gauge(&mut o, "hotline_config_generation", cfg.generation as f64);
        gauge(
            &mut o,
            "hotline_config_loaded_timestamp_seconds",
            cfg.loaded_at
                .map_or(0.0, |t| t.as_millisecond() as f64 / 1000.0),
        );
        gauge(&mut o, "hotline_config_numbers", cfg.numbers as f64);
        labelled(
            &mut o,
            "hotline_config_reloads_total",
            "result",
            &[
                ("ok", self.reloads_ok.load(Ordering::Relaxed)),
                ("failed", self.reloads_failed.load(Ordering::Relaxed)),
            ],
        );

        // Calls.
        counter(&mut o, "hotline_calls_started_total", self.calls_started());
        counter(
            &mut o,
            "hotline_ivr_keys_ignored_total",
            self.ivr_keys_ignored(),
        );
        let by_disp: Vec<(&str, u64)> = Disposition::ALL
            .iter()
            .zip(self.calls_by_disposition.iter())
            .map(|(d, c)| (d.as_str(), c.load(Ordering::Relaxed)))
            .collect();
        labelled(&mut o, "hotline_calls_total", "disposition", &by_disp);
        gauge(&mut o, "hotline_calls_active", self.active_calls() as f64);
        gauge(&mut o, "hotline_calls_talking", self.talking_calls() as f64);
        gauge(
            &mut o,
            "hotline_talk_seconds_total",
            self.talk_micros.load(Ordering::Relaxed) as f64 / 1e6,
        );
        let by_reason: Vec<(&str, u64)> = AttemptReason::ALL
            .iter()
            .zip(self.attempts_by_reason.iter())
            .map(|(r, c)| (r.as_str(), c.load(Ordering::Relaxed)))
            .collect();
        labelled(&mut o, "hotline_hunt_attempts_total", "reason", &by_reason);
        let rejects: Vec<(&str, u64)> = REJECT_CAUSES
            .iter()
            .zip(self.rejects_by_cause.iter())
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
            .collect();
        labelled(&mut o, "hotline_calls_rejected_total", "cause", &rejects);
        let rc = |name: &str| {
            rejects
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0, |(_, v)| *v)
        };
        labelled(
            &mut o,
            "hotline_blocks_total",
            "kind",
            &[
                ("list", rc("blocked_list") + rc("whitelist_only")),
                ("rate", rc("blocked_rate")),
            ],
        );
        self.hunt_attempts.render(&mut o, "hotline_hunt_depth");
        self.time_to_answer
            .render(&mut o, "hotline_time_to_answer_seconds");
        self.ring_time.render(&mut o, "hotline_ring_seconds");

        // Per carrier and trunk.
        let carrier_names = CARRIERS.map(|c| c.map_or("unknown", Carrier::as_str));
        let carrier = |f: fn(&CarrierCounters) -> &AtomicU64| -> Vec<(&str, u64)> {
            carrier_names
                .iter()
                .zip(self.carriers.iter())
                .map(|(n, c)| (*n, f(c).load(Ordering::Relaxed)))
                .collect()
        };
        labelled(
            &mut o,
            "hotline_carrier_calls_total",
            "carrier",
            &carrier(|c| &c.calls),
        );
        labelled(
            &mut o,
            "hotline_carrier_calls_answered_total",
            "carrier",
            &carrier(|c| &c.answered),
        );
        header(&mut o, "hotline_carrier_talk_seconds_total");
        for (n, c) in carrier_names.iter().zip(self.carriers.iter()) {
            let v = c.talk_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                o,
                "hotline_carrier_talk_seconds_total{{carrier=\"{n}\"}} {}",
                fmt_f64(v)
            );
        }
        let trunks = self.trunks.load();
        let mut rows: Vec<(&str, &TrunkCounters)> =
            trunks.iter().map(|(n, c)| (&**n, &**c)).collect();
        rows.push(("none", &self.trunk_none));
        rows.push(("other", &self.trunk_other));
        for (name, f) in [
            (
                "hotline_trunk_calls_total",
                (|c: &TrunkCounters| &c.calls) as fn(&TrunkCounters) -> &AtomicU64,
            ),
            ("hotline_trunk_calls_answered_total", |c: &TrunkCounters| {
                &c.answered
            }),
        ] {
            header(&mut o, name);
            for (t, c) in &rows {
                let _ = writeln!(
                    o,
                    "{name}{{trunk=\"{}\"}} {}",
                    esc(t),
                    f(c).load(Ordering::Relaxed)
                );
            }
        }

        // SIP.
        let methods = method_labels();
        for (name, label, names, vals) in [
            (
                "hotline_sip_requests_received_total",
                "method",
                &methods[..],
                &self.requests_in,
            ),
            (
                "hotline_sip_requests_sent_total",
                "method",
                &methods[..],
                &self.requests_out,
            ),
            (
                "hotline_sip_responses_received_total",
                "class",
                &CLASSES[..],
                &self.responses_in,
            ),
            (
                "hotline_sip_responses_sent_total",
                "class",
                &CLASSES[..],
                &self.responses_out,
            ),
        ] {
            let rows: Vec<(&str, u64)> = names
                .iter()
                .zip(vals.iter())
                .map(|(n, c)| (*n, c.load(Ordering::Relaxed)))
                .collect();
            labelled(&mut o, name, label, &rows);
        }
        gauge(
            &mut o,
            "hotline_sip_transactions",
            self.transactions() as f64,
        );
        labelled(
            &mut o,
            "hotline_sip_retransmissions_total",
            "kind",
            &[
                ("absorbed", self.retrans_absorbed.load(Ordering::Relaxed)),
                ("sent", self.retrans_sent.load(Ordering::Relaxed)),
            ],
        );
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let t = &self.transport;
        counter(
            &mut o,
            "hotline_sip_parse_errors_total",
            ld(&self.proxy_parse_errors),
        );
        counter(
            &mut o,
            "hotline_sip_framing_errors_total",
            ld(&t.framing_errors),
        );
        header(&mut o, "hotline_sip_refused_total");
        for (r, v) in [
            ("bad_request", ld(&self.proxy_bad_requests)),
            ("dropped_response", ld(&self.proxy_dropped_responses)),
            ("loop", ld(&self.loops)),
            ("too_many_hops", ld(&self.too_many_hops)),
            ("extra_2xx", ld(&self.extra_2xx)),
            ("stray_ack", ld(&self.stray_acks)),
            ("scanner", ld(&self.scanners)),
            ("unknown_source", ld(&self.unknown_sources)),
        ] {
            let _ = writeln!(o, "hotline_sip_refused_total{{reason=\"{r}\"}} {v}");
        }
        labelled(
            &mut o,
            "hotline_udp_datagrams_total",
            "direction",
            &[("in", ld(&t.udp_in)), ("out", ld(&t.udp_out))],
        );
        counter(
            &mut o,
            "hotline_udp_send_errors_total",
            ld(&t.udp_send_errors),
        );
        counter(&mut o, "hotline_sip_keepalives_total", ld(&t.keepalives));
        labelled(
            &mut o,
            "hotline_tcp_connections_total",
            "event",
            &[
                ("accepted", ld(&t.tcp_accepted)),
                ("closed", ld(&t.tcp_closed)),
                ("connect_error", ld(&t.tcp_connect_errors)),
            ],
        );
        counter(
            &mut o,
            "hotline_udp_unreachable_total",
            ld(&t.udp_unreachable),
        );
        counter(
            &mut o,
            "hotline_tcp_queue_full_total",
            ld(&t.tcp_queue_full),
        );
        counter(
            &mut o,
            "hotline_overload_sheds_total",
            ld(&self.overload_sheds) + ld(&self.proxy_overload_shed),
        );

        // CDR writer.
        if let Some(s) = self.cdr.get().map(CdrSink::stats) {
            gauge(&mut o, "hotline_cdr_queue_depth", s.queue_depth as f64);
            gauge(&mut o, "hotline_cdr_spill_depth", s.spill_depth as f64);
            gauge(
                &mut o,
                "hotline_cdr_unwritten_records",
                s.submitted.saturating_sub(s.written) as f64,
            );
            gauge(
                &mut o,
                "hotline_cdr_fsync_lag_seconds",
                s.last_fsync_lag.as_secs_f64(),
            );
            labelled(
                &mut o,
                "hotline_cdr_records_total",
                "stage",
                &[
                    ("submitted", s.submitted),
                    ("written", s.written),
                    ("synced", s.synced),
                    ("spilled", s.spilled),
                    ("lost", s.overflowed),
                ],
            );
            counter(&mut o, "hotline_cdr_fsyncs_total", s.fsyncs);
            counter(&mut o, "hotline_cdr_files_sealed_total", s.files_sealed);
            counter(&mut o, "hotline_cdr_write_errors_total", s.write_errors);
            counter(&mut o, "hotline_cdr_torn_recovered_total", s.torn_recovered);
        }
        render_ship(&mut o, self.ship_stats().as_ref());
        match self.prepaid.get() {
            Some(p) => {
                let guard = p.lock().unwrap_or_else(|e| e.into_inner());
                render_prepaid(&mut o, guard.as_ref(), jiff::Timestamp::now());
            }
            None => render_prepaid(&mut o, None, jiff::Timestamp::now()),
        }
        if let Some(l) = self.cluster.get() {
            gauge(
                &mut o,
                "hotline_cluster_redis_up",
                if l.redis.is_up() { 1.0 } else { 0.0 },
            );
            counter(
                &mut o,
                "hotline_cluster_redis_errors_total",
                l.redis.errors(),
            );
            header(&mut o, "hotline_cluster_redis_round_trips_total");
            for (k, n) in hotline_cluster::Trip::ALL.iter().zip(l.redis.round_trips()) {
                let _ = writeln!(
                    o,
                    "hotline_cluster_redis_round_trips_total{{kind=\"{}\"}} {n}",
                    k.name()
                );
            }
            gauge(&mut o, "hotline_cluster_leases_held", l.redis.held() as f64);
            let nodes = l.nodes.load();
            gauge(
                &mut o,
                "hotline_cluster_nodes_alive",
                nodes.iter().filter(|n| n.alive).count() as f64,
            );
        }
        o
    }
}

/// The CDR shipper's series (`[server.cdr.ship]` on).
pub(super) fn render_ship(o: &mut String, s: Option<&hotline_ship::ShipSnapshot>) {
    const SERIES: [&str; 8] = [
        "hotline_cdr_ship_lag_records",
        "hotline_cdr_ship_lag_seconds",
        "hotline_cdr_ship_records_total",
        "hotline_cdr_ship_publish_errors_total",
        "hotline_cdr_ship_batches_total",
        "hotline_cdr_ship_checkpoint_errors_total",
        "hotline_cdr_ship_connected",
        "hotline_cdr_ship_failing",
    ];
    // Without `[server.cdr.ship]` the families are declared with no samples.
    for name in SERIES {
        header(o, name);
        let Some(s) = s else { continue };
        let v = match name {
            "hotline_cdr_ship_lag_records" => s.lag_records as f64,
            "hotline_cdr_ship_lag_seconds" => s.lag.as_secs_f64(),
            "hotline_cdr_ship_records_total" => {
                for (l, v) in [
                    ("stored", s.published),
                    ("duplicate", s.duplicates),
                    ("undecodable", s.undecodable),
                ] {
                    let _ = writeln!(o, "{name}{{result=\"{l}\"}} {v}");
                }
                continue;
            }
            "hotline_cdr_ship_publish_errors_total" => s.publish_errors as f64,
            "hotline_cdr_ship_batches_total" => s.batches as f64,
            "hotline_cdr_ship_checkpoint_errors_total" => s.checkpoint_errors as f64,
            "hotline_cdr_ship_connected" => f64::from(u8::from(s.connected)),
            _ => f64::from(u8::from(s.failing)),
        };
        let _ = writeln!(o, "{name} {}", fmt_f64(v));
    }
}

/// Per-number prepaid figures (续费提醒): the balance `hotline bill` computes, what calls in
/// progress hold, whether it is below the low-balance threshold; plus the prepaid counters.
/// Without prepaid enforcement (`None`) the families are declared with no samples.
pub fn render_prepaid(o: &mut String, p: Option<&crate::prepaid::Prepaid>, now: jiff::Timestamp) {
    let rows = p.map(|p| p.gauges(now)).unwrap_or_default();
    let yuan = |fen: i64| fen as f64 / 100.0;
    for (name, value) in [
        ("hotline_prepaid_balance_yuan", 0usize),
        ("hotline_prepaid_reserved_yuan", 1),
        ("hotline_prepaid_available_yuan", 2),
        ("hotline_prepaid_low_balance", 3),
    ] {
        header(o, name);
        for g in &rows {
            let v = match value {
                0 => fmt_f64(yuan(g.balance_fen)),
                1 => fmt_f64(yuan(g.reserved_fen)),
                2 => fmt_f64(yuan(g.balance_fen - g.reserved_fen)),
                _ => u8::from(g.low).to_string(),
            };
            let _ = writeln!(o, "{name}{{number=\"{}\"}} {v}", esc(&g.number));
        }
    }
    let Some(p) = p else {
        for name in [
            "hotline_prepaid_low_balance_threshold_yuan",
            "hotline_prepaid_low_balance_warnings_total",
            "hotline_prepaid_refused_total",
            "hotline_prepaid_cut_total",
        ] {
            header(o, name);
        }
        return;
    };
    gauge(
        o,
        "hotline_prepaid_low_balance_threshold_yuan",
        yuan(p.low_balance_fen()),
    );
    counter(
        o,
        "hotline_prepaid_low_balance_warnings_total",
        p.low_balance_warnings,
    );
    counter(o, "hotline_prepaid_refused_total", p.refused);
    counter(o, "hotline_prepaid_cut_total", p.cut);
}

/// The Prometheus client conventions' `process_*` series, read from `/proc/self` (Linux; absent
/// where it cannot be read): resource use over time is behaviour, and a quiet switch whose
/// `process_cpu_seconds_total` keeps rising is polling (docs/OPERATIONS.md, "Resource use at rest").
pub(super) fn process_metrics(o: &mut String) {
    let Some(p) = ProcSelf::read() else { return };
    gauge(o, "process_cpu_seconds_total", p.cpu_ticks as f64 / USER_HZ);
    gauge(o, "process_resident_memory_bytes", p.rss_bytes as f64);
    gauge(o, "process_open_fds", p.fds as f64);
    gauge(o, "process_threads", p.threads as f64);
}

/// Clock ticks per second of `/proc/PID/stat` (`USER_HZ`, 100 on every Linux ABI Hotline runs on).
pub(super) const USER_HZ: f64 = 100.0;

/// What [`process_metrics`] reports.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ProcSelf {
    pub(super) cpu_ticks: u64,
    pub(super) threads: u64,
    pub(super) rss_bytes: u64,
    pub(super) fds: u64,
}

impl ProcSelf {
    fn read() -> Option<ProcSelf> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let mut p = ProcSelf::parse_stat(&stat)?;
        p.fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Some(p)
    }

    /// utime (14) + stime (15), threads (20) and rss in pages (24) of a `/proc/PID/stat` line,
    /// fields counted after the command name's last `)` (the name may hold spaces or `)`).
    pub(super) fn parse_stat(stat: &str) -> Option<ProcSelf> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> Option<u64> { f.get(n - 3)?.parse().ok() };
        Some(ProcSelf {
            cpu_ticks: field(14)? + field(15)?,
            threads: field(20)?,
            rss_bytes: field(24)?.saturating_mul(4096),
            fds: 0,
        })
    }
}

/// `# HELP` and `# TYPE` of family `name`, from [`FAMILIES`].
pub(super) fn header(o: &mut String, name: &str) {
    let f = family(name);
    debug_assert!(
        f.is_some(),
        "metric family {name} is not declared in FAMILIES"
    );
    let _ = writeln!(o, "# HELP {name} {}", f.map_or("", |f| f.help));
    let _ = writeln!(o, "# TYPE {name} {}", f.map_or("untyped", |f| f.kind));
}

pub(super) fn counter(o: &mut String, name: &str, v: u64) {
    header(o, name);
    let _ = writeln!(o, "{name} {v}");
}

pub(super) fn gauge(o: &mut String, name: &str, v: f64) {
    header(o, name);
    let _ = writeln!(o, "{name} {}", fmt_f64(v));
}

pub(super) fn labelled(o: &mut String, name: &str, label: &str, rows: &[(&str, u64)]) {
    header(o, name);
    for (l, v) in rows {
        let _ = writeln!(o, "{name}{{{label}=\"{}\"}} {v}", esc(l));
    }
}

/// Escape a label value (backslash, double quote, newline).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}
