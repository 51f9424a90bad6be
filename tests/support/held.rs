//! What the nodes hold, read past every router: a node's values of some keys read from it
//! directly (over any transport), and the sum of the members' `curr_items` from a router's
//! `stats` fan-out. The rebalance and zone tests check where keys landed with these.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use ringcache_client::connection::{ConnectOptions, Connection};
use ringcache_client::protocol::{GetCmd, Request, Response};
use ringcache_client::transport::Connector;
use ringcache_client::Error;

/// What the node at `addr` holds of `keys`, read from it directly (multi-gets of 100) over
/// `connector`, each connect and request bounded by `limit`: not through any router.
pub async fn held_on(
    addr: &str,
    connector: &Connector,
    keys: &[String],
    limit: Duration,
) -> HashMap<String, Vec<u8>> {
    let opts = ConnectOptions {
        connect_timeout: limit,
        transport: connector.clone(),
        ..ConnectOptions::default()
    };
    let conn = Connection::connect(addr, opts)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let mut out = HashMap::new();
    for chunk in keys.chunks(100) {
        let req = Request::Get {
            cmd: GetCmd::Get,
            exptime: None,
            keys: chunk.iter().map(|k| Bytes::from(k.clone())).collect(),
        };
        match conn.request(req, limit).await {
            Ok(Response::Values(vals)) => {
                for v in vals {
                    let k = String::from_utf8_lossy(&v.key).into_owned();
                    out.insert(k, v.data.to_vec());
                }
            }
            other => panic!("get from {addr}: {other:?}"),
        }
    }
    out
}

/// A router's `stats` fan-out (`Client::stats`, `Router::stats`): each member's name and its
/// stats, or why it has none.
pub type FanOut = Vec<(String, Result<Vec<(String, String)>, Error>)>;

/// The sum of `curr_items` over a router's `stats` fan-out; panics naming the member whose
/// stats failed or lacked it.
pub fn curr_items_sum(stats: FanOut) -> u64 {
    stats
        .into_iter()
        .map(|(name, s)| {
            let s = s.unwrap_or_else(|e| panic!("stats of {name}: {e}"));
            s.iter()
                .find(|(k, _)| k == "curr_items")
                .and_then(|(_, v)| v.parse::<u64>().ok())
                .expect("curr_items")
        })
        .sum()
}
