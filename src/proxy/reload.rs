//! Hot reload: a changed config file (checked once a second) or SIGHUP swaps membership and ring
//! settings without closing a client connection. A file that does not parse or validate is
//! refused with a log line and the config in force stays.
//!
//! The file is polled (modification time and length) rather than watched with inotify: editors
//! and config-management tools replace files by rename, and bind-mounted Kubernetes ConfigMaps
//! change through symlink swaps, both of which polling sees without special cases.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Proxy, ProxyConfig};
use crate::error::Error;

/// Starts the watcher task; it ends when the proxy shuts down.
pub fn spawn_watcher(proxy: Arc<Proxy>, path: PathBuf) {
    tokio::spawn(async move {
        let mut seen = stamp(&path);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut hup = hangup();
        loop {
            let forced = tokio::select! {
                _ = tick.tick() => false,
                _ = hup.recv() => true,
                _ = proxy.shutdown.cancelled() => return,
            };
            let now = stamp(&path);
            if !forced && now == seen {
                continue;
            }
            seen = now;
            match reload(&proxy, &path).await {
                Ok(true) => tracing::info!(path = %path.display(), "config reloaded"),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(path = %path.display(), "config refused, keeping the old one: {e}")
                }
            }
        }
    });
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Reads `path` and applies what can change at run time (membership and ring settings).
/// Returns whether anything changed.
pub async fn reload(proxy: &Proxy, path: &Path) -> Result<bool, Error> {
    let new = ProxyConfig::load(path)?;
    let old = proxy.config();
    if *old == new {
        return Ok(false);
    }
    if new.listen != old.listen || new.metrics_listen != old.metrics_listen {
        tracing::warn!("listen addresses change only on restart; other settings applied");
    }
    proxy
        .client()
        .set_ring(
            new.nodes.clone(),
            new.ring.hash,
            new.ring.vnodes,
            new.ring.replicas,
        )
        .await?;
    proxy.config.store(Arc::new(new));
    proxy.reloads.inc();
    Ok(true)
}

/// SIGHUP as a stream; it never fires if the handler cannot be installed.
struct HangupStream(Option<tokio::signal::unix::Signal>);

fn hangup() -> HangupStream {
    use tokio::signal::unix::{signal, SignalKind};
    HangupStream(signal(SignalKind::hangup()).ok())
}

impl HangupStream {
    async fn recv(&mut self) {
        match &mut self.0 {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
}
