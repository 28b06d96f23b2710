//! `[server.api]`: starts the company API (`hotline-api`) beside the admin endpoint, on its
//! own listener, and answers what it asks of the running server ([`hotline_api::Host`]):
//! the running table (explain, who owns a number) and reloads, which go through the same
//! control task as `hotline reload`, SIGHUP and the file watcher.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hotline_route::{CallContext, Live};
use tokio::sync::{mpsc, oneshot};

use crate::core::Shared;
use crate::Control;

struct ServerHost {
    shared: Arc<Shared>,
    control: mpsc::Sender<Control>,
}

impl hotline_api::Host for ServerHost {
    fn company_of(&self, number: &str) -> Option<String> {
        let n = hotline_route::normalize_called(number).ok()?;
        let snap = self.shared.current.load();
        snap.table.number(n).map(|e| e.company.clone())
    }

    fn explain(
        &self,
        number: hotline_route::Number400,
        caller: &str,
        key: Option<u8>,
        at: jiff::Timestamp,
    ) -> hotline_route::Explanation {
        let snap = self.shared.current.load();
        let mut ctx = CallContext::new(number, caller);
        ctx.ivr_key = key;
        hotline_route::explain(&snap.table, &Live::new(), &ctx, at)
    }

    fn generation(&self) -> u64 {
        self.shared.current.load().generation()
    }

    fn reload(&self) -> hotline_api::BoxFuture<Result<String, String>> {
        let control = self.control.clone();
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            control
                .send(Control::Reload(tx))
                .await
                .map_err(|_| "server stopped".to_owned())?;
            rx.await.map_err(|_| "server stopped".to_owned())?
        })
    }
}

/// Start the API when `[server.api]` is set; its bound address.
pub async fn start(
    shared: Arc<Shared>,
    control: mpsc::Sender<Control>,
    source: Option<PathBuf>,
) -> Result<Option<SocketAddr>, crate::Error> {
    let snap = shared.current.load();
    let Some(settings) = snap.settings.api.clone() else {
        return Ok(None);
    };
    let Some(config_path) = source else {
        return Err(crate::Error::Api(
            "[server.api] needs config files to edit: start with --config PATH".into(),
        ));
    };
    let cfg = hotline_api::ApiConfig {
        settings,
        config_path,
        cdr_dir: snap.settings.cdr.dir.clone(),
    };
    let feed = shared.feed.clone();
    let host = Arc::new(ServerHost { shared, control });
    let bound = hotline_api::start(cfg, host, feed)
        .await
        .map_err(|e| crate::Error::Api(e.to_string()))?;
    tracing::info!("company API and console http://{bound}");
    Ok(Some(bound))
}
