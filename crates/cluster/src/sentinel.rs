//! Redis behind Sentinel: `redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]`.
//!
//! The node asks the sentinels which server is the primary of `MASTER`
//! (`SENTINEL get-master-addr-by-name`, the first sentinel that answers wins) and talks to it
//! with the same reconnecting connection as a plain URL. When a heartbeat fails, the sentinels
//! are asked again; a new primary (after a failover) gets a new connection, so the node
//! follows a failover by itself within a heartbeat or two.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::ClusterError;

pub use hotline_config::{SentinelUrl, SENTINEL_SCHEME as SCHEME};

/// The primary's `host:port` as the first sentinel of `url` that answers says.
pub async fn primary(url: &SentinelUrl, timeout: Duration) -> Result<String, ClusterError> {
    let mut last = None;
    for s in &url.sentinels {
        let ask = async {
            let client = redis::Client::open(format!("redis://{s}/"))?;
            let mut c = client.get_multiplexed_async_connection().await?;
            let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&url.master)
                .query_async(&mut c)
                .await?;
            Ok::<_, ClusterError>(addr)
        };
        match tokio::time::timeout(timeout, ask).await {
            Ok(Ok(Some((host, port)))) => return Ok(format!("{host}:{port}")),
            Ok(Ok(None)) => last = Some(ClusterError::Reply("SENTINEL get-master-addr-by-name")),
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(ClusterError::Timeout(timeout)),
        }
    }
    Err(last.unwrap_or(ClusterError::Reply("no sentinel")))
}

/// A (lazy, reconnecting) connection to the primary at `addr`.
pub fn connect(
    url: &SentinelUrl,
    addr: &str,
    cfg: ConnectionManagerConfig,
) -> Result<ConnectionManager, ClusterError> {
    let auth = url
        .password
        .as_ref()
        .map(|p| format!(":{p}@"))
        .unwrap_or_default();
    let conn_url = format!("redis://{auth}{addr}/{}", url.db);
    let client = redis::Client::open(conn_url.as_str()).map_err(|e| ClusterError::Url {
        url: format!("{SCHEME}…/{}", url.master),
        message: e.to_string(),
    })?;
    Ok(ConnectionManager::new_lazy_with_config(client, cfg)?)
}
