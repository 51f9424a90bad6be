//! Admin fan-outs: requests that go to every node rather than to a key's owners (`flush_all`,
//! `version`, `stats`, and the admin requests a proxy passes on).

use futures_util::future::join_all;

use super::requests::unexpected;
use super::Router;
use crate::error::Error;
use crate::protocol::{Request, Response};

impl Router {
    /// `flush_all <delay>` on every live node.
    pub async fn flush_all_delay(&self, delay: i64) -> Result<(), Error> {
        let topo = self.topology();
        // Nodes draining out of the membership too: what they hold must not come back.
        let nodes = topo.all_nodes();
        // A node that is down misses the flush: it is flushed when it answers again.
        for n in nodes.iter().filter(|n| !n.health.is_usable()) {
            n.health.force_flush();
        }
        let results = join_all(nodes.iter().filter(|n| n.health.is_usable()).map(|n| {
            self.send_write(
                n,
                Request::FlushAll {
                    delay,
                    noreply: false,
                },
            )
        }))
        .await;
        for r in results {
            match r? {
                Response::Ok => {}
                other => return Err(unexpected(&other)),
            }
        }
        Ok(())
    }

    /// `version` of every node, by node name.
    pub async fn version(&self) -> Vec<(String, Result<String, Error>)> {
        let topo = self.topology();
        join_all(topo.nodes.iter().map(|n| async move {
            let r = match self.send(n, Request::Version).await {
                Ok(Response::Version(v)) => Ok(String::from_utf8_lossy(&v).into_owned()),
                Ok(other) => Err(unexpected(&other)),
                Err(e) => Err(e),
            };
            (n.name.clone(), r)
        }))
        .await
    }

    /// `req` sent to every node of the ring, by node name: the admin requests a proxy fans
    /// out (`stats reset`, `stats cachedump`, `lru_crawler metadump`), answered each as the
    /// node answered.
    pub async fn each_node(&self, req: Request) -> Vec<(String, Result<Response, Error>)> {
        let topo = self.topology();
        join_all(topo.nodes.iter().map(|n| {
            let req = req.clone();
            async move { (n.name.clone(), self.send(n, req).await) }
        }))
        .await
    }

    /// `stats` of every node, by node name.
    pub async fn stats(&self) -> Vec<(String, Result<Vec<(String, String)>, Error>)> {
        let topo = self.topology();
        join_all(topo.nodes.iter().map(|n| async move {
            let r = match self.send(n, Request::Stats { group: None }).await {
                Ok(Response::Stats(s)) => Ok(s
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            String::from_utf8_lossy(&k).into_owned(),
                            String::from_utf8_lossy(&v).into_owned(),
                        )
                    })
                    .collect()),
                Ok(Response::Values(v)) if v.is_empty() => Ok(Vec::new()),
                Ok(other) => Err(unexpected(&other)),
                Err(e) => Err(e),
            };
            (n.name.clone(), r)
        }))
        .await
    }
}
