//! What the proxy's codec makes of a case: the same `ServerCodec` run over the case's bytes
//! (and the `mn` the harness sends after it) says how many `MN` replies to wait for and
//! whether the connection must still be in step after them.

use bytes::BytesMut;
use ringcache_client::protocol::parse::Limits;
use ringcache_client::protocol::{Request, ServerCodec, MAX_LINE_LEN};
use tokio_util::codec::Decoder;

/// What the proxy's codec says about a case's bytes followed by our `mn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Framing {
    /// `MN` replies to wait for (the case's own `mn`s and ours).
    pub(super) mn: usize,
    /// The stream ends exactly after our `mn`: the connection must answer it.
    pub(super) in_step: bool,
}

/// The proxy's default item limit, which its codec enforces.
const PROXY_MAX_ITEM: usize = 1024 * 1024;

/// What the proxy's codec makes of `case` followed by `mn`: how many `MN`s come back, and
/// whether the connection is in step after them.
pub(super) fn framing(case: &[u8]) -> Framing {
    let mut codec = ServerCodec::new(Limits {
        max_item_size: PROXY_MAX_ITEM,
    });
    let mut buf = BytesMut::from(case);
    buf.extend_from_slice(b"mn\r\n");
    let mut mn = 0;
    let mut last_mn = false;
    let total = buf.len();
    for _ in 0..=total {
        // A line longer than `MAX_LINE_LEN` that is not a multi-get is closed on or answered
        // depending on how the bytes arrive: memcached (and our codec, which copies it) hangs
        // up only when its buffer holds that many bytes with no `\n` yet. Such a case has no
        // single right answer, so it is out of step. Checked where each command starts, which
        // may be in the middle of a line after a refused data block.
        // The next decode first skips what is left of a refused data block, then parses
        // from there in the same call: that is where the next command starts.
        let skip = codec.swallowing().min(buf.len());
        if long_line_may_close(&buf[skip..]) {
            return Framing { mn, in_step: false };
        }
        match codec.decode(&mut buf) {
            Ok(Some(Ok(Request::MetaNoop))) => {
                mn += 1;
                last_mn = true;
            }
            Ok(Some(Ok(Request::Quit))) | Err(_) => {
                return Framing { mn, in_step: false };
            }
            Ok(Some(_)) => last_mn = false,
            Ok(None) => break,
        }
    }
    Framing {
        mn,
        in_step: last_mn && buf.is_empty(),
    }
}

/// Whether the command at the front of `buf` runs for more than [`MAX_LINE_LEN`] bytes without
/// a `\n` and is not a `get`/`gets` (memcached's test for hanging up). The caller passes the
/// bytes after any refused data block the codec is still skipping.
fn long_line_may_close(buf: &[u8]) -> bool {
    let end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    if end <= MAX_LINE_LEN {
        return false;
    }
    let lead = buf.iter().take_while(|&&b| b == b' ').count();
    let rest = &buf[lead..];
    lead > 100 || !(rest.starts_with(b"get ") || rest.starts_with(b"gets "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_that_may_close_are_out_of_step() {
        // Seed 2 found this: a 12 KB `decr` line is closed on when it arrives in pieces and
        // answered when it arrives whole, by memcached and by the proxy alike.
        let mut long = b"decr sf2 1\r\x8aget".to_vec();
        long.extend(std::iter::repeat_n(b" sf0".as_slice(), 3000).flatten());
        long.extend_from_slice(b"\r\n");
        assert!(!framing(&long).in_step);
        // A long multi-get is read whole, however it arrives.
        let mut get = b"get".to_vec();
        get.extend(std::iter::repeat_n(b" sf0".as_slice(), 3000).flatten());
        get.extend_from_slice(b"\r\n");
        assert!(framing(&get).in_step);
        assert!(framing(b"decr a 1\r\n").in_step);
        // The hour-long run found this one: the refused data block eats the start of the
        // `get` line, and what follows is a long line that is no multi-get.
        let mut eaten = b"prepend sf3 0 0 10\r\r\nget".to_vec();
        eaten.extend(std::iter::repeat_n(b" sf2".as_slice(), 3000).flatten());
        eaten.extend_from_slice(b"\r\n");
        assert!(!framing(&eaten).in_step);
        // Seed 4's hour run: a meta set refused for a bad flag swallows its data block and two
        // bytes more (`ge`), so the next command is the long `t sf5 …` line.
        let mut meta =
            b"ma sf5\x1b MD\r\nms sf1 34 u q 34\r\nnhnoslutlzwfzpjntgwzxxkinciqdrar\r\nget"
                .to_vec();
        meta.extend(std::iter::repeat_n(b" sf5".as_slice(), 3000).flatten());
        meta.extend_from_slice(b"\r\n");
        assert!(!framing(&meta).in_step);
    }

    #[test]
    fn framing_follows_the_codec() {
        let f = framing(b"get a\r\n");
        assert_eq!(
            f,
            Framing {
                mn: 1,
                in_step: true
            }
        );
        let f = framing(b"mn\r\nmd k q\r\n");
        assert_eq!(
            f,
            Framing {
                mn: 2,
                in_step: true
            }
        );
        // A data block that never ends swallows our mn.
        assert!(!framing(b"set k 0 0 10\r\nabc\r\n").in_step);
        // A refused block of 2 MB is swallowed by the proxy too: still waiting.
        assert!(!framing(b"set k 0 0 2000000\r\n").in_step);
        assert!(!framing(b"quit\r\n").in_step);
    }
}
