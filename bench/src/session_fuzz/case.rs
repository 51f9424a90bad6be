//! One case on its own connection: its bytes and our `mn` sent, the replies read as the
//! framing says (or drained when the case leaves the connection out of step), and every
//! `VALUE` checked to be for a key the case asked; and how a case's bytes are shown.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringcache_client::protocol::Response;

use super::framing::framing;
use crate::harness::{show, Wire};

/// What happened to one case on its own connection.
#[derive(Debug)]
pub(super) struct Sent {
    pub(super) case: Vec<u8>,
    /// A problem found on the case's own connection.
    pub(super) problem: Option<String>,
}

/// Every case of a round, joined with a marker: the finding's case when no single case can be
/// blamed.
pub(super) fn all_cases(sent: &[Sent]) -> Vec<u8> {
    sent.iter()
        .map(|x| x.case.clone())
        .collect::<Vec<_>>()
        .join(&b"<|next case|>"[..])
}

/// Sends `case` + `mn` on `w` and checks its replies; returns whether `w` is still usable.
pub(super) fn run_case(w: &mut Wire, case: &[u8], prefix: &str) -> (Option<String>, bool) {
    let f = framing(case);
    let mut bytes = case.to_vec();
    bytes.extend_from_slice(b"mn\r\n");
    if let Err(e) = w.send(&bytes) {
        return (
            f.in_step
                .then(|| format!("the proxy closed a connection in step: {e}")),
            false,
        );
    }
    let replies = if f.in_step {
        match w.until_mn(f.mn, Instant::now() + Duration::from_secs(10)) {
            Ok(r) => r,
            Err(e) => return (Some(format!("no MN on the case's connection: {e}")), false),
        }
    } else {
        // Out of step on purpose (truncated block, quit, a line the proxy hangs up on): read
        // what comes, then replace the connection.
        let (raw, _) = w.drain(Duration::from_millis(300), Duration::from_secs(3), 4 << 20);
        let mut buf = BytesMut::from(&raw[..]);
        let mut v = Vec::new();
        while let Ok(Some(r)) = Response::parse(&mut buf) {
            v.push(r);
        }
        return (foreign(&v, case, prefix), false);
    };
    (foreign(&replies, case, prefix), true)
}

/// A `VALUE` for a key that is not the case's: neither of the fuzzer's key space nor a token
/// the case itself sent (a mutation that splits `sf6` into `s f6` really asks for `s`, and one
/// that makes it `s\0f6` too: memcached reads a line as a C string, ending at the NUL).
fn foreign(replies: &[Response], case: &[u8], prefix: &str) -> Option<String> {
    let asked = |key: &[u8]| {
        case.split(|&b| b.is_ascii_whitespace() || b == 0)
            .any(|t| t == key)
    };
    for r in replies {
        if let Response::Values(vals) = r {
            for v in vals {
                if !v.key.starts_with(prefix.as_bytes()) && !asked(&v.key) {
                    return Some(format!(
                        "VALUE for a key the case never asked: {}",
                        show(&v.key)
                    ));
                }
            }
        }
    }
    None
}

/// A case for the report: whole up to 2 KB, longer ones (huge multi-gets) cut.
pub(super) fn show_long(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(400).take(5) {
        out.push_str(&show(chunk));
    }
    if bytes.len() > 2000 {
        out.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_foreign_only_if_the_case_did_not_ask_for_it() {
        let value = |k: &'static [u8]| {
            vec![Response::Values(vec![ringcache_client::protocol::Value {
                key: bytes::Bytes::from_static(k),
                flags: 0,
                cas: None,
                data: bytes::Bytes::from_static(b"v"),
            }])]
        };
        assert!(foreign(&value(b"sf6"), b"get sf6\r\n", "sf").is_none());
        assert!(foreign(&value(b"s"), b"get sf2 s f6\r\n", "sf").is_none());
        assert!(foreign(&value(b"other"), b"get sf2\r\n", "sf").is_some());
    }

    #[test]
    fn a_key_cut_by_a_nul_was_asked() {
        let reply = |k: &[u8]| {
            vec![Response::Values(vec![ringcache_client::protocol::Value {
                key: bytes::Bytes::copy_from_slice(k),
                flags: 0,
                data: bytes::Bytes::from_static(b"x"),
                cas: None,
            }])]
        };
        // The hour run's finding: `sf3` with its `f` flipped to NUL asks memcached for `s`.
        assert_eq!(foreign(&reply(b"s"), b"get sf1 s\x003\r\n", "sf"), None);
        assert!(foreign(&reply(b"zz"), b"get sf1 s\x003\r\n", "sf").is_some());
    }
}
