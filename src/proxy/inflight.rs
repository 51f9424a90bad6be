//! One client connection's requests in flight, and their replies in the order they arrived.
//!
//! Most of what a pipelining client sends is gets of one key. Such a get, when no earlier
//! request in flight touches its key, is written to its owner's connection as soon as it is
//! read (`Router::start_single`), and what this queue keeps of it is a few words: the slot its
//! reply will land in, the request and its ordering ticket. No future, box or task is made
//! for it. A multi-get takes the same path (`Router::start_many`): one piece per owner is
//! written at once, and the line keeps the pieces' reply slots. Every other request (and a
//! get that must wait for an earlier request on its key, or whose first owner failed) runs as
//! a boxed future in a `FuturesOrdered`, which drives them all at once. One line holds the
//! order of both kinds, and its head is the next reply the connection writes
//! (docs/architecture.md, "The proxy's data path").

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use futures_util::stream::{FuturesOrdered, Stream, StreamExt};
use ringcache_client::protocol::reply;
use ringcache_client::protocol::response::encode_value;
use ringcache_client::protocol::{Request, Response, Value};
use ringcache_client::router::{Lookup, ManyGet, ManyRest, Router, Single, SingleGet, SingleRest};

use super::order::{KeyOrder, Ticket};
use super::{route, Proxy};

/// A request running as a future of its own.
pub(super) type Pending = Pin<Box<dyn Future<Output = Finished> + Send>>;

/// A request that finished: its reply and the bytes it had reserved.
pub(super) struct Finished {
    pub reply: Reply,
    pub reserved: usize,
}

pub(super) enum Reply {
    /// A whole reply (none when the client asked for none).
    Full(Option<Response>),
    /// The hits of one piece of a multi-get; the last piece ends with `END`.
    Piece { values: Vec<Value>, last: bool },
}

impl Reply {
    pub fn encode(self, out: &mut BytesMut) {
        match self {
            Reply::Full(Some(r)) => r.encode(out),
            Reply::Full(None) => {}
            Reply::Piece { values, last } => {
                for v in &values {
                    encode_value(out, &v.key, v.flags, v.cas, &v.data);
                }
                if last {
                    reply::end(out);
                }
            }
        }
    }
}

/// A place in line.
enum Entry {
    /// Its reply comes out of [`Inflight::boxed`], in order.
    Boxed,
    /// A get written to its keys' owners when it was decoded, waiting for their answers.
    Written {
        sent: Written,
        req: Request,
        ticket: Ticket,
        reserved: usize,
    },
    /// A get whose first owner failed (or, fenced, missed): the rest of its walk, polled only
    /// at the head of the line (it is rare, and nothing before it waits for it).
    Walk(Pending),
}

/// A get the line wrote itself: what the engine keeps of it until its answers are read.
enum Written {
    /// A get of one key, at its first usable owner.
    One(SingleGet),
    /// A multi-get (`piece: Some(last)`: one piece of a split one), one piece per owner.
    /// Boxed: its state is several times a one-key get's, and every place in line is as big
    /// as the biggest.
    Many {
        sent: Box<ManyGet>,
        piece: Option<bool>,
    },
}

/// What a [`Written`] get found, or where its walk over the keys' owners goes on.
enum Found {
    One(Single),
    Many(Vec<Lookup>),
}

enum Rest {
    One(SingleRest),
    Many(ManyRest),
}

impl Written {
    fn poll(
        &mut self,
        router: &Router,
        req: &Request,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Found, Rest>> {
        Poll::Ready(match self {
            Written::One(sent) => ready!(router.poll_single(sent, req, cx))
                .map(Found::One)
                .map_err(Rest::One),
            Written::Many { sent, .. } => ready!(router.poll_many(sent, req, cx))
                .map(Found::Many)
                .map_err(Rest::Many),
        })
    }

    fn piece(&self) -> Option<bool> {
        match self {
            Written::One(_) => None,
            Written::Many { piece, .. } => *piece,
        }
    }
}

impl Rest {
    /// The rest of the walk, to the answer.
    async fn run(self, router: &Router, req: &Request) -> Found {
        match self {
            Rest::One(rest) => Found::One(router.get_single_rest(rest, req).await),
            Rest::Many(rest) => Found::Many(router.get_many_rest(rest, req).await),
        }
    }
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
        if ticket.is_clear() {
            let router = self.proxy.router();
            let sent = match &req {
                // A one-key get that is not a piece: its own reply (an unreadable key is an
                // error, not a miss).
                Request::Get { keys, .. } if keys.len() == 1 && piece.is_none() => {
                    router.start_single(&req).map(Written::One)
                }
                Request::Get { .. } => router.start_many(&req).map(|sent| Written::Many {
                    sent: Box::new(sent),
                    piece,
                }),
                _ => None,
            };
            if let Some(sent) = sent {
                self.line.push_back(Entry::Written {
                    sent,
                    req,
                    ticket,
                    reserved,
                });
                return;
            }
        }
        let p = self.proxy.clone();
        self.push_boxed(Box::pin(async move {
            ticket.ready().await;
            let reply = match piece {
                // A piece is part of a multi-get whatever its key count: never a one-key get's
                // error in the middle of the stream.
                Some(last) if matches!(req, Request::Get { .. }) => Reply::Piece {
                    values: route::get_many(&p, &req).await,
                    last,
                },
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
        loop {
            let Some(head) = this.line.front_mut() else {
                return Poll::Ready(None);
            };
            let done = match head {
                Entry::Boxed => match this.boxed_done.pop_front() {
                    Some(done) => done,
                    None => return Poll::Pending,
                },
                Entry::Walk(f) => ready!(f.as_mut().poll(cx)),
                Entry::Written { sent, req, .. } => {
                    let found = ready!(sent.poll(this.proxy.router(), req, cx));
                    let Some(Entry::Written {
                        sent,
                        req,
                        ticket,
                        reserved,
                    }) = this.line.pop_front()
                    else {
                        unreachable!("the head was a sent get");
                    };
                    let piece = sent.piece();
                    match found {
                        Ok(found) => {
                            // Finished: later requests on its keys may go.
                            drop(ticket);
                            let reply = sent_reply(&this.proxy, &req, found, piece);
                            return Poll::Ready(Some(Finished { reply, reserved }));
                        }
                        Err(rest) => {
                            let p = this.proxy.clone();
                            this.line.push_front(Entry::Walk(Box::pin(async move {
                                let found = rest.run(p.router(), &req).await;
                                drop(ticket);
                                let reply = sent_reply(&p, &req, found, piece);
                                Finished { reply, reserved }
                            })));
                            continue;
                        }
                    }
                }
            };
            this.line.pop_front();
            return Poll::Ready(Some(done));
        }
    }
}

/// The reply to a get the line sent, from what it found: a one-key get's own reply, or a
/// multi-get's (`piece: None`) or one piece's of a split one; the same as
/// [`route::execute`]'s and [`route::get_many`]'s.
fn sent_reply(proxy: &Proxy, get: &Request, found: Found, piece: Option<bool>) -> Reply {
    // Only gets take that path (`Router::start_single` and `start_many` send nothing else).
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
