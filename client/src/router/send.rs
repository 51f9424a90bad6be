//! Sending: one request to one node with the request timeout, the node's health and metrics
//! kept current by its answer, and which of a key's owners a request may go to.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::requests::request_key;
use super::Router;
use crate::error::Error;
use crate::protocol::{MetaCmd, MetaFlags, MetaRequest, MetaResponse, Request, Response};
use crate::topology::{NodeEntry, Topology};

impl Router {
    /// Sends one request to one node, with the request timeout, keeping its health current.
    ///
    /// The request is checked, encoded into the node connection's buffer and dropped when this
    /// is called; the future returned waits for the reply and holds no copy of the request
    /// (see [`Connection::request_checked`](crate::connection::Connection)).
    pub(crate) fn send<'a>(
        &'a self,
        node: &'a Arc<NodeEntry>,
        req: Request,
    ) -> impl Future<Output = Result<Response, Error>> + Send + 'a {
        self.send_ref(node, &req)
    }

    /// When a request written now starts, for its latency, and its deadline for
    /// [`Connection::send_now`](crate::connection::Connection): one clock read for both.
    pub(crate) fn started_now(&self) -> (Instant, tokio::time::Instant) {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started) + self.inner.live.request_timeout();
        (started, deadline)
    }

    /// [`Router::send`] for a request the caller keeps: it is encoded when this is called, so
    /// the future returned does not borrow it, and a request already held (a proxied get, as
    /// its client sent it) goes out without a copy being built.
    pub(crate) fn send_ref<'a>(
        &'a self,
        node: &'a Arc<NodeEntry>,
        req: &Request,
    ) -> impl Future<Output = Result<Response, Error>> + Send + 'a {
        // A request that cannot be written safely is refused before a byte goes out; that
        // says nothing about the node's health.
        let checked = req.check_wire();
        let started = Instant::now();
        // Only these verbs have free-form replies (`RESET`, `OK`, lru_crawler's lines, the
        // shutdown refusal); any other request answered with a line memcached never sends
        // means the backend is not speaking memcached, and it is failed like a broken socket.
        let free_form = matches!(
            req,
            Request::Stats { .. } | Request::Shutdown { .. } | Request::LruCrawler { .. }
        );
        let sent = checked.map(|()| {
            node.metrics.requests.increment(1);
            node.conn()
                .request_checked(req, self.inner.live.request_timeout())
        });
        async move {
            let sent = match sent {
                Ok(sent) => sent,
                Err(e) => return Err(e),
            };
            self.answered(node, started, free_form, sent.await)
        }
    }

    /// What [`Router::send_ref`] does with a node's answer: a free-form line to a request that
    /// has none is a broken backend; the answer's latency, and the node's health.
    pub(super) fn answered(
        &self,
        node: &Arc<NodeEntry>,
        started: Instant,
        free_form: bool,
        r: Result<Response, Error>,
    ) -> Result<Response, Error> {
        let r = match r {
            Ok(Response::Other(line)) if !free_form => Err(Error::UnexpectedReply(format!(
                "{}: {:?}",
                node.name,
                String::from_utf8_lossy(&line)
            ))),
            r => r,
        };
        node.metrics.latency.record(started.elapsed().as_secs_f64());
        match &r {
            Ok(_) => node.health.success(),
            Err(e) => {
                node.metrics.errors.increment(1);
                self.failed(node, e);
            }
        }
        r
    }

    /// Sends a write that keeps replicas identical. A replica that fails it may now hold an
    /// older value than its peers: it is marked down at once (not after K failures) and the
    /// key is hinted, so the probe replays it before the node serves reads again.
    pub(crate) async fn send_write(
        &self,
        node: &Arc<NodeEntry>,
        req: Request,
    ) -> Result<Response, Error> {
        let key = request_key(&req);
        let flush = matches!(req, Request::FlushAll { .. });
        let r = self.send(node, req).await;
        // A request refused before any byte was written (`Request::check_wire`) reached no
        // replica, so none missed it: every owner refuses it alike and none is marked down.
        if matches!(r, Err(Error::InvalidKey(_))) {
            return r;
        }
        if r.is_err() {
            // Down before the hint is taken, so the hint waits for the probe instead of
            // starting a replay on a node still counted as serving.
            let newly = node.health.mark_down();
            match key {
                Some(k) => self.missed(node, &k),
                // A missed flush cannot be replayed key by key: the node gets a full flush.
                None if flush => node.health.force_flush(),
                None => {}
            }
            self.marked_down(node, newly, "a replica missed a write; down until repaired");
        }
        r
    }

    /// `mg <key>` with `flags` on one node (the engine's own reads of an item's state: its
    /// CAS, or what a copy needs): the node's meta reply, any other reply an error.
    pub(crate) async fn mg(
        &self,
        node: &Arc<NodeEntry>,
        key: &Bytes,
        flags: MetaFlags,
    ) -> Result<MetaResponse, Error> {
        let req = MetaRequest::new(MetaCmd::Get, key.clone(), flags, None);
        match self.send(node, Request::Meta(Box::new(req))).await? {
            Response::Meta(m) => Ok(m),
            other => Err(Error::UnexpectedReply(format!(
                "{}: to mg: {other:?}",
                node.name
            ))),
        }
    }

    /// The live owners of `key`, primary first.
    pub(crate) fn live_owners(topo: &Topology, key: &[u8]) -> Vec<Arc<NodeEntry>> {
        topo.owners(key)
            .as_slice()
            .iter()
            .map(|&i| topo.nodes[i].clone())
            .filter(|n| n.health.is_usable())
            .collect()
    }

    /// The live owners of `key` a write goes to, primary first; the owners that are down get
    /// a hint (they miss this write).
    pub(crate) fn write_owners(&self, topo: &Topology, key: &[u8]) -> Vec<Arc<NodeEntry>> {
        let mut out = Vec::with_capacity(topo.replicas);
        for &i in topo.owners(key).as_slice() {
            let n = &topo.nodes[i];
            if n.health.is_usable() {
                out.push(n.clone());
            } else {
                self.missed(n, &Bytes::copy_from_slice(key));
            }
        }
        out
    }

    /// The live owners of `key` for a write in `topo`; an error when none is left.
    pub(super) fn required_in(
        &self,
        topo: &Topology,
        key: &[u8],
    ) -> Result<Vec<Arc<NodeEntry>>, Error> {
        let owners = self.write_owners(topo, key);
        if owners.is_empty() {
            return Err(Error::NoReplica);
        }
        Ok(owners)
    }
}

/// Whether `node`, an owner of `key`, may answer a read of it: [`Health::may_serve`], or, when
/// no owner of the key may, a suspect one that otherwise could
/// ([`Health::may_serve_if_suspect`]). Costs nothing more while the node may serve.
///
/// [`Health::may_serve`]: crate::health::Health::may_serve
/// [`Health::may_serve_if_suspect`]: crate::health::Health::may_serve_if_suspect
pub(super) fn may_read(topo: &Topology, key: &[u8], node: &NodeEntry) -> bool {
    node.health.may_serve(key)
        || (node.health.may_serve_if_suspect(key)
            && !topo.owner_nodes(key).any(|n| n.health.may_serve(key)))
}
