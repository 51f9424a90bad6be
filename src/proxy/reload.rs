//! Hot reload: a changed config file or SIGHUP applies the new settings without closing a
//! client connection. The file is read whole, parsed and validated before any of it is used; a
//! file that does not parse or validate changes nothing (a log line says why).
//!
//! The file is polled once a second (modification time and length) rather than watched with
//! inotify: editors and config-management tools replace files by rename, and bind-mounted
//! Kubernetes ConfigMaps change through symlink swaps, both of which polling sees without
//! special cases. A change is applied only once the file has stayed the same for a whole
//! poll: a file still being written (in place, piece by piece — each piece may well be a
//! valid, smaller cluster) is never applied half-way. Writing to a temporary file and renaming
//! it over the config is still the way to change it at once.
//!
//! What applies live: `[ring]` and `[[nodes]]` (a membership transition; under `[discovery]`
//! the node list is discovery's and the file's `[[nodes]]` is not read), `request_timeout_ms`,
//! `connect_timeout_ms` (for connections opened from then on), `failure_limit`,
//! `conditional_failover_after_ms`, `ack`, `hint_max_keys`/`hint_max_bytes`, and `max_item_size`/`max_inflight_per_connection` (for
//! client connections accepted from then on). `listen`, `metrics_listen`, `max_connections`,
//! `threads`, `connections_per_node`, `[rebalance]` and `[discovery]` need a restart: a reload that changes
//! them logs so and keeps the running values.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Proxy, ProxyConfig};
use crate::error::Error;

/// Starts the watcher task; it ends when the proxy shuts down.
pub fn spawn_watcher(proxy: Arc<Proxy>, path: PathBuf) {
    tokio::spawn(async move {
        let mut seen = stamp(&path);
        // A change seen at the last poll, applied once a poll finds the file unchanged.
        let mut pending = false;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut hup = hangup();
        loop {
            let forced = tokio::select! {
                _ = tick.tick() => false,
                _ = hup.recv() => true,
                _ = proxy.shutdown.cancelled() => return,
            };
            let now = stamp(&path);
            if now != seen || forced {
                seen = now;
                pending = true;
                if !forced || !settled(&path, now).await {
                    continue;
                }
            }
            if !pending {
                continue;
            }
            pending = false;
            match reload(&proxy, &path).await {
                Ok(true) => tracing::info!(path = %path.display(), "config reloaded"),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(path = %path.display(), "config refused, nothing changed: {e}")
                }
            }
        }
    });
}

/// The config read at start counts as the first successful load, as in Prometheus: the
/// timestamp is the start until a reload succeeds.
pub fn record_start() {
    record_outcome(true);
}

/// `ringcache_config_last_reload_successful` and, on success, its timestamp: a refused file
/// leaves the running config in force, which nothing else on `/metrics` would show.
fn record_outcome(ok: bool) {
    use crate::metrics::{CONFIG_LAST_RELOAD_SUCCESSFUL, CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP};
    metrics::gauge!(CONFIG_LAST_RELOAD_SUCCESSFUL).set(if ok { 1.0 } else { 0.0 });
    if ok {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        metrics::gauge!(CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP).set(now);
    }
}

/// After a SIGHUP: whether the file stays as it is for a moment (not being written).
async fn settled(path: &Path, now: Option<(SystemTime, u64)>) -> bool {
    tokio::time::sleep(Duration::from_millis(250)).await;
    stamp(path) == now
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Reads `path` whole, validates it, and applies what can change at run time (see the module
/// comment). Returns whether anything changed. Nothing is applied unless all of it is valid.
/// The outcome is recorded in `ringcache_config_last_reload_successful`.
pub async fn reload(proxy: &Proxy, path: &Path) -> Result<bool, Error> {
    let outcome = apply(proxy, path).await;
    record_outcome(outcome.is_ok());
    outcome
}

/// [`reload`]'s work.
async fn apply(proxy: &Proxy, path: &Path) -> Result<bool, Error> {
    let new = ProxyConfig::load(path)?;
    let opts = new.client_options()?;
    let old = proxy.config();
    let next = old.reloaded(&new);
    let restart = old.restart_only_changes(&new);
    if !restart.is_empty() {
        tracing::warn!(
            settings = %restart.join(", "),
            "these settings change only on a restart; the running values stay"
        );
    }
    if *old == next {
        return Ok(false);
    }
    let client = proxy.router();
    client
        .set_ring(
            // Under discovery, the list discovery applied (`reloaded` keeps it).
            next.nodes.clone(),
            new.ring.hash,
            new.ring.vnodes,
            new.ring.replicas,
        )
        .await?;
    client.reconfigure(&opts);
    proxy.config.store(Arc::new(next));
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
