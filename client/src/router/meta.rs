//! Meta routing: a raw meta request (`mg`, `ms`, `md`, `ma`, `me`) routed the way its verb
//! needs, as a read, a replicated write, a conditional write or a delete.

use bytes::Bytes;
use futures_util::future::join_all;

use super::requests::is_meta;
use super::Router;
use crate::error::Error;
use crate::protocol::{MetaCmd, MetaRequest, MetaStatus, Request, Response};
use crate::topology::CasSupport;

impl Router {
    /// `me <key>` answered by the key's first live owner (falling over like a read).
    pub async fn debug(&self, key: Bytes, base64: bool) -> Result<Response, Error> {
        self.read(&key, |k| Request::MetaDebug {
            key: k.clone(),
            base64,
        })
        .await
    }

    /// Routes a raw meta request the way its verb needs: `mg` as a read, `ms` without compare
    /// as a replicated write (with a router-chosen `E` CAS), other `ms`/`ma` as conditional
    /// writes, `md` on every replica. Quiet mode must be stripped by the caller: every request
    /// here gets a reply.
    pub async fn meta(&self, mut req: Box<MetaRequest>) -> Result<Response, Error> {
        match req.cmd {
            MetaCmd::Get => {
                let r = req.clone();
                self.read(&req.key, move |_| Request::Meta(r.clone())).await
            }
            MetaCmd::Set
                if req.flags.compare_cas.is_none()
                    && matches!(req.flags.mode, None | Some(b'S')) =>
            {
                let topo = self.topology();
                let owners = self.required_in(&topo, &req.key)?;
                // Mid-transition a moved key's past owners too (`past_owners.rs`), not
                // counted in the acknowledgement.
                let past = Self::past_targets(&topo, &req.key);
                // Set on the typed flags only: the encoder appends `E` after the client's own
                // flags, whose order the node's reply must keep.
                if req.flags.new_cas.is_none() {
                    req.flags.new_cas = Some(self.next_cas());
                }
                let mut results = join_all(owners.iter().chain(&past).map(|n| {
                    let mut r = req.clone();
                    if n.cas_support() == CasSupport::No {
                        r.flags.new_cas = None;
                    }
                    self.send_write(n, Request::Meta(r))
                }))
                .await;
                results.truncate(owners.len());
                self.acknowledge(results, |r| is_meta(r, MetaStatus::Hd))
            }
            MetaCmd::Delete => {
                let key = req.key.clone();
                let results = self.delete_everywhere(&key, Request::Meta(req)).await?;
                // The primary's answer unless it failed, or a past owner's `HD` if the item
                // had not moved yet (it existed, and is now deleted).
                let mut first_ok = None;
                let mut first_err = None;
                for r in results {
                    match r {
                        Ok(resp) if is_meta(&resp, MetaStatus::Hd) => return Ok(resp),
                        Ok(resp) => {
                            first_ok.get_or_insert(resp);
                        }
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                first_ok.ok_or_else(|| first_err.unwrap_or(Error::NoReplica))
            }
            MetaCmd::Set | MetaCmd::Arith => self.conditional(Request::Meta(req)).await,
        }
    }
}
