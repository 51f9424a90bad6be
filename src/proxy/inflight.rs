//! One client connection's requests in flight, and their replies in the order they arrived.
//!
//! Most of what a pipelining client sends is gets of one key. Such a get, when no earlier
//! request in flight touches its key, is written to its owner's connection as soon as it is
//! read: the engine's read request, `Get` (`Router::get_now`), and what this queue keeps of
//! it is a few words: the slot its reply will land in, the request and its ordering ticket.
//! No future, box or task is made for it. A multi-get is the same `Get`: one piece per owner
//! is written at once, and the line keeps the pieces' reply slots; a key that must go on to
//! another owner is walked on by the `Get` itself. Every other request (and a get that must
//! wait for an earlier request on its key, or that cannot be written at once) runs as a boxed
//! future in a `FuturesOrdered`, which drives them all at once. One line holds the order of
//! both kinds, and its head is the next reply the connection writes (docs/architecture.md,
//! "The proxy's data path").

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures_util::stream::{FuturesOrdered, Stream, StreamExt};
use ringcache_client::protocol::{Request, Response, Value};
use ringcache_client::router::{Found, Get};

use super::order::{KeyOrder, Ticket};
use super::{route, Proxy};

/// A request running as a future of its own.
pub(super) type Pending = Pin<Box<dyn Future<Output = Finished> + Send>>;

/// A request that finished: its reply and the bytes it had reserved.
pub(super) struct Finished {
    pub reply: Reply,
    pub reserved: usize,
}

/// Encoded by the connection into its write buffer (`protocol/response.rs`), so a reply's
/// way back does not come through this file again.
pub(super) enum Reply {
    /// A whole reply (none when the client asked for none).
    Full(Option<Response>),
    /// The hits of one piece of a multi-get; the last piece ends with `END`.
    Piece { values: Vec<Value>, last: bool },
}

/// A place in line. Most places of a pipelining client's line are gets, so the get is kept
/// inline: boxing it to shrink the rare `Boxed` place would cost every get an allocation.
#[allow(clippy::large_enum_variant)]
enum Entry {
    /// Its reply comes out of [`Inflight::boxed`], in order.
    Boxed,
    /// A get written to its keys' owners when it was decoded (`piece: Some(last)`: one
    /// piece of a split multi-get), polled at the head of the line; the engine's [`Get`]
    /// runs the rest of its walk itself when a key must go on to another owner.
    Get {
        get: Get,
        req: Request,
        ticket: Ticket,
        reserved: usize,
        piece: Option<bool>,
    },
}

/// The requests in flight on one client connection. A `Stream` of their replies, in order.
pub(super) struct Inflight {
    proxy: Arc<Proxy>,
    line: VecDeque<Entry>,
    boxed: FuturesOrdered<Pending>,
    /// Replies of boxed requests that finished before a request ahead of them in line.
    boxed_done: VecDeque<Finished>,
    order: KeyOrder,
}

impl Inflight {
    pub fn new(proxy: Arc<Proxy>) -> Inflight {
        Inflight {
            proxy,
            line: VecDeque::new(),
            boxed: FuturesOrdered::new(),
            boxed_done: VecDeque::new(),
            order: KeyOrder::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.line.len()
    }

    pub fn is_empty(&self) -> bool {
        self.line.is_empty()
    }

    /// Queues a request whose reply needs no routing (a refusal) or that orders itself.
    pub fn push_boxed(&mut self, f: Pending) {
        self.line.push_back(Entry::Boxed);
        self.boxed.push_back(f);
    }

    /// Queues `req`, routed after every earlier request on its keys (with `piece: Some(last)`
    /// as one piece of a split multi-get).
    pub fn push_request(&mut self, req: Request, reserved: usize, piece: Option<bool>) {
        if self.line.is_empty() {
            self.order.clear();
        }
        let mut ticket = self.order.admit(&req);
        // A one-key get that is not a piece is its own reply (an unreadable key is an error,
        // not a miss); any other get is a multi-get's, or a piece's.
        let one = matches!(&req, Request::Get { keys, .. } if keys.len() == 1 && piece.is_none());
        if ticket.is_clear() && matches!(req, Request::Get { .. }) {
            if let Some(get) = self.proxy.router().get_now(&req, one) {
                self.line.push_back(Entry::Get {
                    get,
                    req,
                    ticket,
                    reserved,
                    piece,
                });
                return;
            }
        }
        let p = self.proxy.clone();
        self.push_boxed(Box::pin(async move {
            ticket.ready().await;
            let reply = match req {
                Request::Get { .. } => {
                    let router = p.router();
                    let found = router.get(&req, one).run(router, &req).await;
                    get_reply(&p, &req, found, piece)
                }
                _ => Reply::Full(route::execute(&p, req).await),
            };
            ticket.finish();
            Finished { reply, reserved }
        }));
    }
}

impl Stream for Inflight {
    type Item = Finished;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Finished>> {
        let this = self.get_mut();
        // The boxed requests make progress wherever they stand in line: a set behind a get
        // still waiting is sent now, not after it.
        while let Poll::Ready(Some(done)) = this.boxed.poll_next_unpin(cx) {
            this.boxed_done.push_back(done);
        }
        let Some(head) = this.line.front_mut() else {
            return Poll::Ready(None);
        };
        let found = match head {
            Entry::Boxed => {
                let Some(done) = this.boxed_done.pop_front() else {
                    return Poll::Pending;
                };
                this.line.pop_front();
                return Poll::Ready(Some(done));
            }
            Entry::Get { get, req, .. } => ready!(get.poll(this.proxy.router(), req, cx)),
        };
        let Some(Entry::Get {
            req,
            ticket,
            reserved,
            piece,
            ..
        }) = this.line.pop_front()
        else {
            unreachable!("the head was a get");
        };
        // Finished: later requests on its keys may go.
        drop(ticket);
        let reply = get_reply(&this.proxy, &req, found, piece);
        Poll::Ready(Some(Finished { reply, reserved }))
    }
}

/// The reply to a get from what it found: a one-key get's own reply, or a multi-get's
/// (`piece: None`) or one piece's of a split one; the same as [`route::execute`]'s.
fn get_reply(proxy: &Proxy, get: &Request, found: Found, piece: Option<bool>) -> Reply {
    let Request::Get { cmd, exptime, .. } = get else {
        return Reply::Full(None);
    };
    match (found, piece) {
        (Found::One(found), _) => {
            Reply::Full(Some(route::single_reply(proxy, *cmd, *exptime, found)))
        }
        (Found::Many(slots), piece) => {
            let values = route::many_values(proxy, *cmd, *exptime, slots);
            match piece {
                Some(last) => Reply::Piece { values, last },
                None => Reply::Full(Some(Response::Values(values))),
            }
        }
    }
}
