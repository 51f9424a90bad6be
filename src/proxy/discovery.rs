//! The proxy's node list from DNS (`[discovery]`, docs/cluster.md): the embedded client's
//! discovery loop (`ringcache_client::discovery`) applies each resolved change to the proxy's
//! client, and here the list in force is also recorded in the proxy's config, so that a config
//! reload keeps it (`ProxyConfig::reloaded`) instead of applying the file's empty `[[nodes]]`.

use std::sync::Arc;

use ringcache_client::discovery::{Discovery, DiscoverySettings};

use super::Proxy;
use crate::error::Error;

/// Resolves once (before the proxy accepts clients), then keeps re-resolving until the proxy
/// shuts down.
pub async fn start(proxy: &Arc<Proxy>, settings: &DiscoverySettings) -> Result<(), Error> {
    let weak = Arc::downgrade(proxy);
    let record = Box::new(move |nodes: &[ringcache_client::ring::NodeSpec]| {
        if let Some(p) = weak.upgrade() {
            let mut cfg = (*p.config()).clone();
            cfg.nodes = nodes.to_vec();
            p.config.store(Arc::new(cfg));
        }
    });
    let handle = Discovery::start(proxy.router(), settings, Some(record)).await?;
    let shutdown = proxy.shutdown.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        drop(handle);
    });
    Ok(())
}
