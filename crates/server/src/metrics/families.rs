//! The one table of metric families (name, type, help) that `/metrics` renders.

/// Every metric family `/metrics` shows, declared once: name, Prometheus type, help. The
/// renderers write samples by name and take `# HELP` / `# TYPE` from here; docs/OPERATIONS.md
/// lists the same names (test `families_are_declared_once_and_documented`).
pub struct Family {
    pub name: &'static str,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    pub help: &'static str,
}

pub static FAMILIES: &[Family] = &[
    Family {
        name: "hotline_build_info",
        kind: "gauge",
        help: "Build of the running binary (value 1).",
    },
    Family {
        name: "hotline_start_time_seconds",
        kind: "gauge",
        help: "Unix time the process started.",
    },
    Family {
        name: "hotline_uptime_seconds",
        kind: "gauge",
        help: "Seconds since the process started.",
    },
    Family {
        name: "hotline_ready",
        kind: "gauge",
        help: "1 when /readyz answers 200 (listening, config loaded, CDR writer keeping up, not draining).",
    },
    Family {
        name: "hotline_draining",
        kind: "gauge",
        help: "1 after SIGTERM while calls finish.",
    },
    Family {
        name: "hotline_config_generation",
        kind: "gauge",
        help: "Generation of the routing config in use (1 at start, +1 per successful reload).",
    },
    Family {
        name: "hotline_config_loaded_timestamp_seconds",
        kind: "gauge",
        help: "Unix time the config in use was loaded.",
    },
    Family {
        name: "hotline_config_numbers",
        kind: "gauge",
        help: "400 numbers in the config in use.",
    },
    Family {
        name: "hotline_config_reloads_total",
        kind: "counter",
        help: "Config reloads (SIGHUP, POST /reload) by result.",
    },
    Family {
        name: "hotline_calls_started_total",
        kind: "counter",
        help: "INVITEs that became calls. CPS = rate(hotline_calls_started_total[1m]).",
    },
    Family {
        name: "hotline_ivr_keys_ignored_total",
        kind: "counter",
        help: "Calls whose Request-URI carried an ivr= key from a source that is not a media-server trunk (the key was ignored).",
    },
    Family {
        name: "hotline_calls_total",
        kind: "counter",
        help: "Finished calls by disposition (the CDR's disposition field).",
    },
    Family {
        name: "hotline_calls_active",
        kind: "gauge",
        help: "Calls in progress (deciding, hunting or answered).",
    },
    Family {
        name: "hotline_calls_talking",
        kind: "gauge",
        help: "Answered calls in progress.",
    },
    Family {
        name: "hotline_talk_seconds_total",
        kind: "counter",
        help: "Talk time of finished calls, seconds.",
    },
    Family {
        name: "hotline_hunt_attempts_total",
        kind: "counter",
        help: "Hunt attempts (branches to a target) by how they ended.",
    },
    Family {
        name: "hotline_calls_rejected_total",
        kind: "counter",
        help: "Calls refused before any hunt, by cause.",
    },
    Family {
        name: "hotline_blocks_total",
        kind: "counter",
        help: "Callers blocked: list = blacklist or whitelist-only, rate = anti-harassment limit.",
    },
    Family {
        name: "hotline_hunt_depth",
        kind: "histogram",
        help: "Attempts per routed call (1 = the first target answered or the hunt ended there).",
    },
    Family {
        name: "hotline_time_to_answer_seconds",
        kind: "histogram",
        help: "From the INVITE to the answer, answered calls.",
    },
    Family {
        name: "hotline_ring_seconds",
        kind: "histogram",
        help: "From the first ringing (18x) to the answer or the end of the call.",
    },
    Family {
        name: "hotline_carrier_calls_total",
        kind: "counter",
        help: "Finished calls by the carrier of the called 400 number's prefix.",
    },
    Family {
        name: "hotline_carrier_calls_answered_total",
        kind: "counter",
        help: "Answered calls by carrier of the 400 number.",
    },
    Family {
        name: "hotline_carrier_talk_seconds_total",
        kind: "counter",
        help: "Talk time by carrier of the 400 number, seconds.",
    },
    Family {
        name: "hotline_trunk_calls_total",
        kind: "counter",
        help: "Finished calls by inbound trunk (none = source matched no trunk).",
    },
    Family {
        name: "hotline_trunk_calls_answered_total",
        kind: "counter",
        help: "Answered calls by inbound trunk.",
    },
    Family {
        name: "hotline_sip_requests_received_total",
        kind: "counter",
        help: "SIP requests received, by method.",
    },
    Family {
        name: "hotline_sip_requests_sent_total",
        kind: "counter",
        help: "SIP requests sent (forwarded or generated), by method.",
    },
    Family {
        name: "hotline_sip_responses_received_total",
        kind: "counter",
        help: "SIP responses received, by class.",
    },
    Family {
        name: "hotline_sip_responses_sent_total",
        kind: "counter",
        help: "SIP responses sent (relayed or generated), by class.",
    },
    Family {
        name: "hotline_sip_transactions",
        kind: "gauge",
        help: "SIP transactions alive (server + client).",
    },
    Family {
        name: "hotline_sip_retransmissions_total",
        kind: "counter",
        help: "Retransmissions: absorbed = duplicates received and answered from the transaction, sent = our timer retransmissions.",
    },
    Family {
        name: "hotline_sip_parse_errors_total",
        kind: "counter",
        help: "Messages the SIP parser rejected (requests get 400, responses are dropped).",
    },
    Family {
        name: "hotline_sip_framing_errors_total",
        kind: "counter",
        help: "Datagrams or TCP streams whose framing was broken (size cap, Content-Length).",
    },
    Family {
        name: "hotline_sip_refused_total",
        kind: "counter",
        help: "Requests refused or messages dropped by the proxy core, by reason.",
    },
    Family {
        name: "hotline_udp_datagrams_total",
        kind: "counter",
        help: "UDP datagrams by direction.",
    },
    Family {
        name: "hotline_udp_send_errors_total",
        kind: "counter",
        help: "UDP sends that failed (socket buffer full, unreachable).",
    },
    Family {
        name: "hotline_sip_keepalives_total",
        kind: "counter",
        help: "CRLF keep-alives received.",
    },
    Family {
        name: "hotline_tcp_connections_total",
        kind: "counter",
        help: "TCP connections: accepted, closed, failed outbound connects.",
    },
    Family {
        name: "hotline_udp_unreachable_total",
        kind: "counter",
        help: "ICMP destination-unreachable reports for datagrams sent (the branch fails at once, 503).",
    },
    Family {
        name: "hotline_tcp_queue_full_total",
        kind: "counter",
        help: "Messages not sent because a TCP connection's send queue was full.",
    },
    Family {
        name: "hotline_overload_sheds_total",
        kind: "counter",
        help: "Work refused by overload protection (new INVITEs answered 503 + Retry-After).",
    },
    Family {
        name: "hotline_cdr_queue_depth",
        kind: "gauge",
        help: "CDR records waiting in the writer's channel.",
    },
    Family {
        name: "hotline_cdr_spill_depth",
        kind: "gauge",
        help: "CDR records waiting in the memory spill (channel full: disk too slow).",
    },
    Family {
        name: "hotline_cdr_unwritten_records",
        kind: "gauge",
        help: "CDR records submitted but not yet written (lag, in records).",
    },
    Family {
        name: "hotline_cdr_fsync_lag_seconds",
        kind: "gauge",
        help: "Age of the oldest record covered by the last fsync when it completed.",
    },
    Family {
        name: "hotline_cdr_records_total",
        kind: "counter",
        help: "CDR records: submitted, written (to the OS), synced (fsynced), spilled (went through the memory spill), lost (channel and spill full).",
    },
    Family {
        name: "hotline_cdr_fsyncs_total",
        kind: "counter",
        help: "CDR fsyncs.",
    },
    Family {
        name: "hotline_cdr_files_sealed_total",
        kind: "counter",
        help: "CDR files rotated and sealed.",
    },
    Family {
        name: "hotline_cdr_write_errors_total",
        kind: "counter",
        help: "Failed CDR write / fsync / rename calls (retried).",
    },
    Family {
        name: "hotline_cdr_torn_recovered_total",
        kind: "counter",
        help: "Torn CDR tails cut at start-up.",
    },
    Family {
        name: "hotline_cluster_redis_up",
        kind: "gauge",
        help: "1 while the last Redis round trip succeeded, 0 while Redis is down.",
    },
    Family {
        name: "hotline_cluster_redis_errors_total",
        kind: "counter",
        help: "Redis round trips that failed or timed out.",
    },
    Family {
        name: "hotline_cluster_redis_round_trips_total",
        kind: "counter",
        help: "Redis round trips by purpose (decide, lease, release, publish, end, background).",
    },
    Family {
        name: "hotline_cluster_leases_held",
        kind: "gauge",
        help: "Target slot leases this node holds (renewed until released).",
    },
    Family {
        name: "hotline_cluster_nodes_alive",
        kind: "gauge",
        help: "Nodes whose heartbeat is current in Redis (this one included).",
    },
    Family {
        name: "hotline_cdr_ship_lag_records",
        kind: "gauge",
        help: "CDR records in the local files not yet acknowledged by NATS JetStream.",
    },
    Family {
        name: "hotline_cdr_ship_lag_seconds",
        kind: "gauge",
        help: "Age of the oldest CDR record not yet acknowledged by JetStream (0 when none waits).",
    },
    Family {
        name: "hotline_cdr_ship_records_total",
        kind: "counter",
        help: "CDR records acknowledged by JetStream: stored (new) or duplicate (a re-publish JetStream dropped by Nats-Msg-Id); undecodable lines skipped.",
    },
    Family {
        name: "hotline_cdr_ship_publish_errors_total",
        kind: "counter",
        help: "Failed CDR publishes (NATS away, subject refused, no ack in time); each record is retried.",
    },
    Family {
        name: "hotline_cdr_ship_batches_total",
        kind: "counter",
        help: "Publishing rounds of the shipper (each sends the records pending in its window).",
    },
    Family {
        name: "hotline_cdr_ship_checkpoint_errors_total",
        kind: "counter",
        help: "Failed saves of the shipper's checkpoint file.",
    },
    Family {
        name: "hotline_cdr_ship_connected",
        kind: "gauge",
        help: "1 while the shipper is connected to NATS.",
    },
    Family {
        name: "hotline_cdr_ship_failing",
        kind: "gauge",
        help: "1 while a CDR record is being refused or not acknowledged (it is retried).",
    },
    Family {
        name: "hotline_prepaid_balance_yuan",
        kind: "gauge",
        help: "Prepaid balance per 400 number, yuan, as hotline bill computes it (closed months' minimum charged), before reservations.",
    },
    Family {
        name: "hotline_prepaid_reserved_yuan",
        kind: "gauge",
        help: "Prepaid money held by answered calls in progress (whole minutes), yuan.",
    },
    Family {
        name: "hotline_prepaid_available_yuan",
        kind: "gauge",
        help: "Balance minus reservations: what new calls are admitted against, yuan.",
    },
    Family {
        name: "hotline_prepaid_low_balance",
        kind: "gauge",
        help: "1 when the balance is below [server.billing] low_balance (time to top up: 续费提醒), else 0.",
    },
    Family {
        name: "hotline_prepaid_low_balance_threshold_yuan",
        kind: "gauge",
        help: "[server.billing] low_balance, yuan.",
    },
    Family {
        name: "hotline_prepaid_low_balance_warnings_total",
        kind: "counter",
        help: "Times a balance fell below the low-balance threshold.",
    },
    Family {
        name: "hotline_prepaid_refused_total",
        kind: "counter",
        help: "New calls refused for lack of balance (or outside the plan's dates).",
    },
    Family {
        name: "hotline_prepaid_cut_total",
        kind: "counter",
        help: "Answered calls cut because their next minute could not be paid.",
    },
    Family {
        name: "process_cpu_seconds_total",
        kind: "counter",
        help: "User and system CPU time of every thread, in seconds.",
    },
    Family {
        name: "process_resident_memory_bytes",
        kind: "gauge",
        help: "Resident memory in bytes.",
    },
    Family {
        name: "process_open_fds",
        kind: "gauge",
        help: "Open file descriptors.",
    },
    Family {
        name: "process_threads",
        kind: "gauge",
        help: "OS threads.",
    },
];

/// The declaration of family `name`.
pub fn family(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.name == name)
}
