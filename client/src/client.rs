//! [`Client`]: the typed API an application embeds — `get`, `set`, `cas`, `incr`, locks —
//! over the cluster engine ([`Router`]), which it owns.
//!
//! Everything a request needs beyond its types (placement, replication, failover, health,
//! transitions) is the engine's; this file only checks keys, builds the engine's requests and
//! turns its replies into Rust values. The proxy drives the engine directly with raw requests
//! and never goes through this type (docs/architecture.md, "The crates and their layers").
//!
//! ```no_run
//! # async fn demo() -> Result<(), ringcache_client::Error> {
//! use ringcache_client::Client;
//! let client = Client::builder()
//!     .nodes(["127.0.0.1:11311", "127.0.0.1:11312", "127.0.0.1:11313"])
//!     .replicas(2)
//!     .build()
//!     .await?;
//! client.set(b"greeting", b"hello".to_vec(), 0, 0).await?;
//! let item = client.get(b"greeting").await?.expect("just set");
//! assert_eq!(&item.value[..], b"hello");
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::Error;
use crate::lock::{Lease, LockOptions};
use crate::protocol::{valid_key, ArithCmd, GetCmd, Request, Response, StoreCmd};
use crate::ring::{HashKind, NodeSpec};
use crate::router::migrate::RebalanceStatus;
use crate::router::{unexpected, Ack, Lookup, Router, RouterBuilder, RouterOptions};
use crate::topology::Topology;

/// One cached item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub value: Bytes,
    pub flags: u32,
    /// The CAS unique (0 when the server did not say).
    pub cas: u64,
}

/// The outcome of `cas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasResult {
    Stored,
    /// Someone else modified the item since its CAS was read.
    Exists,
    NotFound,
}

/// The result of [`Client::get_many`]: one slot per requested key, in request order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetMany {
    pub items: Vec<Option<Item>>,
    /// Keys that could not be read from any replica (counted as misses in `items`).
    pub errors: usize,
}

/// A cluster client: `Clone + Send + Sync`, cheap to clone, no lock on the request path.
#[derive(Clone, Debug)]
pub struct Client {
    router: Router,
}

impl RouterBuilder {
    /// Connects to the nodes (waiting up to the connect timeout for them) and learns what each
    /// supports. Nodes that are not up yet are marked down and probed in the background.
    pub async fn build(self) -> Result<Client, Error> {
        Ok(Client {
            router: self.build_router().await?,
        })
    }
}

impl Client {
    /// Starts building a client.
    pub fn builder() -> RouterBuilder {
        RouterBuilder::default()
    }

    /// The engine under this client, for what the typed API does not cover (raw requests,
    /// as the proxy sends them).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The current topology (ring + nodes).
    pub fn topology(&self) -> Arc<Topology> {
        self.router.topology()
    }

    /// Replaces the membership (see [`Router::set_nodes`]).
    pub async fn set_nodes(&self, specs: Vec<NodeSpec>) -> Result<(), Error> {
        self.router.set_nodes(specs).await
    }

    /// Replaces membership and ring settings together (see [`Router::set_ring`]).
    pub async fn set_ring(
        &self,
        specs: Vec<NodeSpec>,
        hash: HashKind,
        vnodes: u32,
        replicas: usize,
    ) -> Result<(), Error> {
        self.router.set_ring(specs, hash, vnodes, replicas).await
    }

    /// Applies the options that can change while the client runs (see
    /// [`Router::reconfigure`]).
    pub fn reconfigure(&self, opts: &RouterOptions) {
        self.router.reconfigure(opts)
    }

    /// The options in force now.
    pub fn options(&self) -> RouterOptions {
        self.router.options()
    }

    /// The write acknowledgement policy in force now.
    pub fn ack_policy(&self) -> Ack {
        self.router.ack_policy()
    }

    /// Where the data movement of the current membership change stands.
    pub fn rebalance_status(&self) -> RebalanceStatus {
        self.router.rebalance_status()
    }

    /// Whether a membership change is still moving data.
    pub fn in_transition(&self) -> bool {
        self.router.in_transition()
    }

    /// Waits up to `limit` for the current transition to finish; true if it did.
    pub async fn wait_settled(&self, limit: Duration) -> bool {
        self.router.wait_settled(limit).await
    }

    /// `version` of every node, by node name.
    pub async fn version(&self) -> Vec<(String, Result<String, Error>)> {
        self.router.version().await
    }

    /// `stats` of every node, by node name.
    pub async fn stats(&self) -> Vec<(String, Result<Vec<(String, String)>, Error>)> {
        self.router.stats().await
    }

    /// `flush_all <delay>` on every live node.
    pub async fn flush_all_delay(&self, delay: i64) -> Result<(), Error> {
        self.router.flush_all_delay(delay).await
    }

    /// Takes the lock `name` for `owner` for `ttl` (see [`crate::lock::lock`]).
    pub async fn lock(
        &self,
        name: &[u8],
        owner: &[u8],
        ttl: Duration,
    ) -> Result<Option<Lease>, Error> {
        crate::lock::lock(&self.router, &LockOptions::default(), name, owner, ttl).await
    }

    /// [`Client::lock`] with explicit options (every router of the cluster must use the same).
    pub async fn lock_with(
        &self,
        opts: &LockOptions,
        name: &[u8],
        owner: &[u8],
        ttl: Duration,
    ) -> Result<Option<Lease>, Error> {
        crate::lock::lock(&self.router, opts, name, owner, ttl).await
    }

    /// Reads `key` from its primary, failing over to the next replica on error or when the
    /// node is down; a fenced node's miss falls through to the next replica, and a hit found
    /// there is copied back to it.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Item>, Error> {
        check_key(key)?;
        let key = Bytes::copy_from_slice(key);
        let resp = self
            .router
            .read(&key, |k| Request::Get {
                cmd: GetCmd::Gets,
                exptime: None,
                keys: vec![k.clone()],
            })
            .await?;
        Ok(first_item(resp))
    }

    /// `gat`: read and update the TTL (on every replica that has the item).
    pub async fn gat(&self, key: &[u8], exptime: i64) -> Result<Option<Item>, Error> {
        check_key(key)?;
        let key = Bytes::copy_from_slice(key);
        let resp = self
            .router
            .read(&key, |k| Request::Get {
                cmd: GetCmd::Gats,
                exptime: Some(exptime),
                keys: vec![k.clone()],
            })
            .await?;
        let item = first_item(resp);
        if item.is_some() {
            Box::pin(self.router.copy_ttl(&key, exptime)).await;
        }
        Ok(item)
    }

    /// Reads many keys: one request per node, all nodes concurrently, results in request
    /// order. Keys of a failed node are retried once on their next replica; what still fails
    /// counts as a miss and in `errors`.
    pub async fn get_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<GetMany, Error> {
        for k in keys {
            check_key(k.as_ref())?;
        }
        let keys: Vec<Bytes> = keys
            .iter()
            .map(|k| Bytes::copy_from_slice(k.as_ref()))
            .collect();
        let values = self.router.get_values(GetCmd::Gets, None, &keys).await;
        let errors = values
            .iter()
            .filter(|v| matches!(v, Lookup::Failed))
            .count();
        Ok(GetMany {
            items: values
                .into_iter()
                .map(|v| match v {
                    Lookup::Hit(v) => Some(Item {
                        value: v.data,
                        flags: v.flags,
                        cas: v.cas.unwrap_or(0),
                    }),
                    _ => None,
                })
                .collect(),
            errors,
        })
    }

    /// Stores `value` unconditionally on every replica, with one router-chosen CAS so every
    /// replica holds the same CAS (and `gets`/`cas` keep working after a failover).
    pub async fn set(
        &self,
        key: &[u8],
        value: impl Into<Bytes>,
        flags: u32,
        exptime: i64,
    ) -> Result<(), Error> {
        check_key(key)?;
        match self
            .router
            .set_all(Bytes::copy_from_slice(key), value.into(), flags, exptime)
            .await?
        {
            Response::Stored => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// `add`: stored only if absent.
    pub async fn add(
        &self,
        key: &[u8],
        value: impl Into<Bytes>,
        flags: u32,
        exptime: i64,
    ) -> Result<bool, Error> {
        self.store_cond(StoreCmd::Add, key, value.into(), flags, exptime, 0)
            .await
            .map(|r| r == CasResult::Stored)
    }

    /// `replace`: stored only if present.
    pub async fn replace(
        &self,
        key: &[u8],
        value: impl Into<Bytes>,
        flags: u32,
        exptime: i64,
    ) -> Result<bool, Error> {
        self.store_cond(StoreCmd::Replace, key, value.into(), flags, exptime, 0)
            .await
            .map(|r| r == CasResult::Stored)
    }

    /// `append` to an existing value (flags and TTL kept).
    pub async fn append(&self, key: &[u8], value: impl Into<Bytes>) -> Result<bool, Error> {
        self.store_cond(StoreCmd::Append, key, value.into(), 0, 0, 0)
            .await
            .map(|r| r == CasResult::Stored)
    }

    /// `prepend` to an existing value (flags and TTL kept).
    pub async fn prepend(&self, key: &[u8], value: impl Into<Bytes>) -> Result<bool, Error> {
        self.store_cond(StoreCmd::Prepend, key, value.into(), 0, 0, 0)
            .await
            .map(|r| r == CasResult::Stored)
    }

    /// `cas`: stored only if the item's CAS is still `cas`.
    pub async fn cas(
        &self,
        key: &[u8],
        value: impl Into<Bytes>,
        flags: u32,
        exptime: i64,
        cas: u64,
    ) -> Result<CasResult, Error> {
        self.store_cond(StoreCmd::Cas, key, value.into(), flags, exptime, cas)
            .await
    }

    async fn store_cond(
        &self,
        cmd: StoreCmd,
        key: &[u8],
        value: Bytes,
        flags: u32,
        exptime: i64,
        cas: u64,
    ) -> Result<CasResult, Error> {
        check_key(key)?;
        let req = Request::Store {
            cmd,
            key: Bytes::copy_from_slice(key),
            flags,
            exptime,
            cas,
            value,
            noreply: false,
        };
        match self.router.conditional(req).await? {
            Response::Stored => Ok(CasResult::Stored),
            Response::NotStored => Ok(CasResult::NotFound),
            Response::Exists => Ok(CasResult::Exists),
            Response::NotFound => Ok(CasResult::NotFound),
            other => Err(unexpected(&other)),
        }
    }

    /// `delete` on every live replica; true if any replica had the key.
    pub async fn delete(&self, key: &[u8]) -> Result<bool, Error> {
        check_key(key)?;
        match self.router.delete(Bytes::copy_from_slice(key)).await? {
            Response::Deleted => Ok(true),
            Response::NotFound => Ok(false),
            other => Err(unexpected(&other)),
        }
    }

    /// `incr`: the new value, or `None` if the key is missing.
    pub async fn incr(&self, key: &[u8], delta: u64) -> Result<Option<u64>, Error> {
        self.arith(ArithCmd::Incr, key, delta).await
    }

    /// `decr` (stops at 0): the new value, or `None` if the key is missing.
    pub async fn decr(&self, key: &[u8], delta: u64) -> Result<Option<u64>, Error> {
        self.arith(ArithCmd::Decr, key, delta).await
    }

    async fn arith(&self, cmd: ArithCmd, key: &[u8], delta: u64) -> Result<Option<u64>, Error> {
        check_key(key)?;
        let req = Request::Arith {
            cmd,
            key: Bytes::copy_from_slice(key),
            delta,
            noreply: false,
        };
        match self.router.conditional(req).await? {
            Response::Number(n) => Ok(Some(n)),
            Response::NotFound => Ok(None),
            other => Err(unexpected(&other)),
        }
    }

    /// `touch`: set a new TTL; false if the key is missing.
    pub async fn touch(&self, key: &[u8], exptime: i64) -> Result<bool, Error> {
        check_key(key)?;
        let req = Request::Touch {
            key: Bytes::copy_from_slice(key),
            exptime,
            noreply: false,
        };
        match self.router.conditional(req).await? {
            Response::Touched => Ok(true),
            Response::NotFound => Ok(false),
            other => Err(unexpected(&other)),
        }
    }

    /// `flush_all` on every live node.
    pub async fn flush_all(&self) -> Result<(), Error> {
        self.router.flush_all_delay(0).await
    }
}

fn check_key(key: &[u8]) -> Result<(), Error> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(Error::InvalidKey(String::from_utf8_lossy(key).into_owned()))
    }
}

fn first_item(resp: Response) -> Option<Item> {
    match resp {
        Response::Values(mut v) if !v.is_empty() => {
            let v = v.swap_remove(0);
            Some(Item {
                value: v.data,
                flags: v.flags,
                cas: v.cas.unwrap_or(0),
            })
        }
        _ => None,
    }
}
