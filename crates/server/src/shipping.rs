//! Glue between `[server.cdr.ship]` and the CDR shipper (`hotline-ship`): the shipper runs
//! beside the CDR writer, reads its files, and never touches the call path. Started once at
//! start-up; a reload does not restart it (changes to `[server.cdr.ship]` need a restart).

use std::time::Duration;

use hotline_config::Settings;
use hotline_ship::{ShipConfig, ShipHandle, StreamSettings};

/// How long a stopping server keeps shipping what the writer sealed last.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The node name in record ids. The one place that decides it: the cluster's `[cluster] node`
/// (the node's identity for leases and dialogs too), else `[server.cdr.ship] node`, else the
/// host name.
pub fn node_name(settings: &Settings) -> String {
    settings
        .cluster
        .as_ref()
        .map(|c| c.node.clone())
        .or_else(|| settings.cdr.ship.as_ref().and_then(|s| s.node.clone()))
        .unwrap_or_else(hotline_ship::hostname)
}

/// The shipper's settings from the config; `None` when shipping is off.
pub fn ship_config(settings: &Settings) -> Option<ShipConfig> {
    let s = settings.cdr.ship.as_ref()?;
    let dir = settings.cdr.dir.clone();
    let mut c = ShipConfig::new(&dir, s.urls.clone(), &node_name(settings));
    c.subject_prefix = s.subject_prefix.clone();
    c.stream = StreamSettings {
        name: s.stream.clone(),
        replicas: s.replicas,
        max_age: s.max_age,
        max_bytes: i64::try_from(s.max_bytes).unwrap_or(i64::MAX),
        duplicate_window: s.duplicate_window,
    };
    c.batch = s.batch;
    c.poll_interval = s.poll_interval;
    c.ack_timeout = s.ack_timeout;
    c.retry_max = s.retry_max;
    if let Some(p) = &s.checkpoint {
        c.checkpoint = p.clone();
    }
    Some(c)
}

/// Start the shipper if configured. A failure (unreadable checkpoint) is logged and the switch
/// runs without shipping: the records stay in the files, the call path is unaffected.
pub fn start(settings: &Settings) -> Option<ShipHandle> {
    let cfg = ship_config(settings)?;
    let (node, stream) = (cfg.node.clone(), cfg.stream.name.clone());
    match hotline_ship::spawn(cfg) {
        Ok(h) => {
            tracing::info!(node = %node, stream = %stream, "CDR shipping to NATS JetStream on");
            Some(h)
        }
        Err(e) => {
            tracing::error!(error = %e, "CDR shipping NOT started (records stay in the CDR files): fix or remove the checkpoint and restart");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_node_from_the_section_or_host() {
        let mut s = Settings::default();
        assert!(ship_config(&s).is_none());
        assert_eq!(node_name(&s), hotline_ship::hostname());
        s.cdr.ship = Some(hotline_config::ShipSettings {
            urls: vec!["nats://127.0.0.1:4222".into()],
            node: Some("sh-01".into()),
            checkpoint: Some("/tmp/cp".into()),
            ..Default::default()
        });
        let c = ship_config(&s).expect("configured");
        assert_eq!(c.node, "sh-01");
        assert_eq!(c.checkpoint, std::path::PathBuf::from("/tmp/cp"));
        assert_eq!(c.dir, s.cdr.dir);
        assert_eq!(c.stream.name, "CDR");
    }
}
