//! `tokio-util` codecs for the two ends of a memcached connection.
//!
//! [`ServerCodec`] decodes requests and encodes replies (node, proxy front end);
//! [`ClientCodec`] encodes requests and decodes replies (client, proxy back end, bench).
//! Per the codec contract, `Ok(None)` means "need more bytes"; a bad request is an item
//! (`Err(Fault)`), and only a desynchronising fault is the stream error that closes the connection.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::fault::Fault;
use super::parse::{parse, Limits, Step};
use super::request::Request;
use super::response::Response;
use crate::error::Error;

/// Server side: requests in, replies out.
#[derive(Debug, Default)]
pub struct ServerCodec {
    limits: Limits,
    /// Bytes of a refused data block still to be thrown away.
    swallow: usize,
}

impl ServerCodec {
    /// A codec that enforces `limits` while it reads.
    pub fn new(limits: Limits) -> ServerCodec {
        ServerCodec { limits, swallow: 0 }
    }
}

impl ServerCodec {
    /// Bytes of a refused data block still to be skipped before the next command: the next
    /// `decode` skips them and parses what follows in the same call. A test harness that
    /// checks each command's start (the session fuzzer) looks past them with this.
    pub fn swallowing(&self) -> usize {
        self.swallow
    }
}

impl Decoder for ServerCodec {
    type Item = Result<Request, Fault>;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Error> {
        if self.swallow > 0 {
            let n = self.swallow.min(src.len());
            src.advance(n);
            self.swallow -= n;
            if self.swallow > 0 {
                return Ok(None);
            }
        }
        match parse(src, &self.limits)? {
            None => Ok(None),
            Some(Step::Item(item)) => Ok(Some(item)),
            Some(Step::Swallow(fault, n)) => {
                self.swallow = n;
                Ok(Some(Err(fault)))
            }
        }
    }
}

impl Encoder<&Response> for ServerCodec {
    type Error = Error;

    fn encode(&mut self, item: &Response, dst: &mut BytesMut) -> Result<(), Error> {
        item.encode(dst);
        Ok(())
    }
}

/// Client side: requests out, replies in.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClientCodec;

impl Decoder for ClientCodec {
    type Item = Response;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Response>, Error> {
        Response::parse(src)
    }
}

impl Encoder<&Request> for ClientCodec {
    type Error = Error;

    fn encode(&mut self, item: &Request, dst: &mut BytesMut) -> Result<(), Error> {
        item.encode(dst);
        Ok(())
    }
}
