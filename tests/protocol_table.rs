//! The byte-exact protocol table: the same requests sent to Debian's memcached 1.6.18 (where
//! installed) and to `ringcache node`, each reply compared byte for byte.
//!
//! A case is a sequence of rows on one fresh connection (state carries over from row to row; each
//! case starts with `flush_all`). A row is the bytes sent and the reply expected, which is
//! memcached's real answer; `{n}` in an expected reply stands for digits that legitimately vary
//! (CAS values, times, sizes), `{n:name}` also remembers them for a later `{name}` in a request,
//! `{*}` any text up to the end of the line and `{**}` any bytes (see `support::Pattern`).
//! After its last row every case that leaves the connection open sends `mn` and expects `MN`, so
//! a reply that should have been silent (noreply, quiet mode) or an extra line fails the case.
//!
//! Deliberate differences are spelled out: `ringcache_only` cases use features memcached 1.6.18
//! lacks (newer memcached has them) or behaviour it has no equivalent for, and `differs` rows give
//! both servers' answers where ringcache answers otherwise on purpose.
//!
//! `PROTOCOL_TABLE_RECORD=1 cargo test --test protocol_table -- --nocapture` prints what each
//! server really answers instead of checking it.

mod support;

use std::time::Duration;

use support::{memcached_or_skip, show, spawn_node, Conn, Server};
use testkit::Rng;

#[derive(Debug, Clone)]
enum Want {
    /// A reply pattern (see `support::Pattern`).
    Reply(Vec<u8>),
    /// The server closes the connection without answering.
    Closed,
}

#[derive(Debug, Clone)]
struct Row {
    /// Sent one after the other, with a pause between, so the server sees each part alone.
    send: Vec<Vec<u8>>,
    memcached: Want,
    ringcache: Want,
    /// Why ringcache answers differently, for `differs` rows.
    why: Option<&'static str>,
}

#[derive(Debug, Clone)]
struct Case {
    name: &'static str,
    rows: Vec<Row>,
    /// Run against ringcache only, and why.
    ringcache_only: Option<&'static str>,
}

fn case(name: &'static str) -> Case {
    Case {
        name,
        rows: Vec::new(),
        ringcache_only: None,
    }
}

impl Case {
    fn push(mut self, send: Vec<Vec<u8>>, memcached: Want, ringcache: Want) -> Case {
        self.rows.push(Row {
            send,
            memcached,
            ringcache,
            why: None,
        });
        self
    }

    /// Both servers answer `send` with `want`.
    fn row(self, send: impl AsRef<[u8]>, want: impl AsRef<[u8]>) -> Case {
        let want = Want::Reply(want.as_ref().to_vec());
        self.push(vec![send.as_ref().to_vec()], want.clone(), want)
    }

    /// Both servers answer the parts, sent with a pause between them, with `want`.
    fn row_in_parts(self, parts: &[&[u8]], want: impl AsRef<[u8]>) -> Case {
        let want = Want::Reply(want.as_ref().to_vec());
        let parts = parts.iter().map(|p| p.to_vec()).collect();
        self.push(parts, want.clone(), want)
    }

    /// Both servers close the connection on `send`, answering nothing.
    fn closes(self, send: impl AsRef<[u8]>) -> Case {
        self.push(vec![send.as_ref().to_vec()], Want::Closed, Want::Closed)
    }

    /// ringcache answers `send` differently from memcached, on purpose.
    fn differs(
        mut self,
        send: impl AsRef<[u8]>,
        memcached: Want,
        ringcache: Want,
        why: &'static str,
    ) -> Case {
        self = self.push(vec![send.as_ref().to_vec()], memcached, ringcache);
        self.rows.last_mut().unwrap().why = Some(why);
        self
    }

    fn ringcache_only(mut self, why: &'static str) -> Case {
        self.ringcache_only = Some(why);
        self
    }
}

fn reply(b: impl AsRef<[u8]>) -> Want {
    Want::Reply(b.as_ref().to_vec())
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn rep(byte: u8, n: usize) -> Vec<u8> {
    vec![byte; n]
}

const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";
const DETAIL_USAGE: &[u8] = b"CLIENT_ERROR usage: stats detail on|off|dump\r\n";
const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
const NON_NUMERIC: &[u8] = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
const CONTROL_BYTES: &str =
    "ringcache refuses keys with control bytes, which memcached stores (docs/protocol.md)";

/// The largest value memcached 1.6 stores under a 1-byte key with zero flags at its default
/// 1 MiB item size: 48-byte header + 8 CAS + key + NUL + value + "\r\n" = 1048576.
const MAX_VALUE_K: usize = 1024 * 1024 - 57 - 1 - 2;

fn cases() -> Vec<Case> {
    let k250 = rep(b'k', 250);
    let k251 = rep(b'k', 251);
    let opaque32 = cat(&[b"O", &rep(b'7', 31)]);
    let opaque33 = cat(&[b"O", &rep(b'7', 32)]);
    let big = rep(b'x', 2_000_000);
    let max_k = rep(b'v', MAX_VALUE_K);
    let max_k1 = rep(b'v', MAX_VALUE_K + 1);
    // 18 flags that change nothing on a miss (memcached takes at most 17 after verb and key).
    let flags18: &[u8] = b" c f h k l s t u v I P L O T0 R0 C0 F0 D1";
    vec![
        // ------------------------------------------------------------------ unknown commands
        case("unknown commands and empty lines answer ERROR")
            .row(b"bogus\r\n", b"ERROR\r\n")
            .row(b"\r\n", b"ERROR\r\n")
            .row(b"\n", b"ERROR\r\n")
            .row(b"   \r\n", b"ERROR\r\n")
            .row(b"x\r\n", b"ERROR\r\n")
            .row(b"GETS k\r\n", b"ERROR\r\n")
            .row(b"sets k 0 0 1\r\n", b"ERROR\r\n")
            .row(b"getx k\r\n", b"ERROR\r\n")
            .row(b"averyveryverylongcommandname k\r\n", b"ERROR\r\n")
            .row(b"mz k\r\n", b"ERROR\r\n")
            .row(b"set / HTTP/1.1\r\n", b"ERROR\r\n"),
        // ------------------------------------------------------------------ storage and retrieval
        case("set then get, gets, bget")
            .row(b"set k 5 0 3\r\nabc\r\n", b"STORED\r\n")
            .row(b"get k\r\n", b"VALUE k 5 3\r\nabc\r\nEND\r\n")
            .row(b"get k\n", b"VALUE k 5 3\r\nabc\r\nEND\r\n")
            .row(b"gets k\r\n", b"VALUE k 5 3 {n}\r\nabc\r\nEND\r\n")
            .row(b"bget k\r\n", b"VALUE k 5 3\r\nabc\r\nEND\r\n")
            .row(b"get nope\r\n", b"END\r\n")
            .row(b"set bin 4294967295 0 6\r\n\x00\r\n\xff\n!\r\n", b"STORED\r\n")
            .row(
                b"get bin\r\n",
                b"VALUE bin 4294967295 6\r\n\x00\r\n\xff\n!\r\nEND\r\n",
            )
            .row(b"set empty 0 0 0\r\n\r\n", b"STORED\r\n")
            .row(b"get empty\r\n", b"VALUE empty 0 0\r\n\r\nEND\r\n")
            .row(b"set k 0 0 1 ignored\r\nz\r\n", b"STORED\r\n")
            .row(b"get k\r\n", b"VALUE k 0 1\r\nz\r\nEND\r\n"),
        case("multi-get keeps request order, repeats and skips misses")
            .row(b"set a 0 0 1\r\n1\r\nset b 7 0 1\r\n2\r\n", b"STORED\r\nSTORED\r\n")
            .row(
                b"get b nope a b\r\n",
                b"VALUE b 7 1\r\n2\r\nVALUE a 0 1\r\n1\r\nVALUE b 7 1\r\n2\r\nEND\r\n",
            )
            .row(
                b"gets  a   b \r\n",
                b"VALUE a 0 1 {n}\r\n1\r\nVALUE b 7 1 {n}\r\n2\r\nEND\r\n",
            ),
        case("keys of 250 bytes work, 251 are refused")
            .row(cat(&[b"set ", &k250, b" 0 0 1\r\na\r\n"]), b"STORED\r\n")
            .row(
                cat(&[b"get ", &k250, b"\r\n"]),
                cat(&[b"VALUE ", &k250, b" 0 1\r\na\r\nEND\r\n"]),
            )
            .row(cat(&[b"get ", &k251, b"\r\n"]), BAD_FORMAT)
            .row(cat(&[b"get a ", &k251, b" b\r\n"]), BAD_FORMAT)
            .row(cat(&[b"gat 10 ", &k251, b"\r\n"]), BAD_FORMAT)
            // Refused before its data block is expected, so the data line is a command.
            .row(
                cat(&[b"set ", &k251, b" 0 0 1\r\na\r\n"]),
                cat(&[BAD_FORMAT, b"ERROR\r\n"]),
            )
            .row(cat(&[b"incr ", &k251, b" 1\r\n"]), BAD_FORMAT)
            .row(cat(&[b"touch ", &k251, b" 1\r\n"]), BAD_FORMAT)
            .row(cat(&[b"delete ", &k251, b"\r\n"]), BAD_FORMAT)
            .row(cat(&[b"mg ", &k251, b" v\r\n"]), BAD_FORMAT)
            .row(cat(&[b"ms ", &k251, b" 1\r\na\r\n"]), cat(&[BAD_FORMAT, b"ERROR\r\n"]))
            .row(cat(&[b"md ", &k251, b"\r\n"]), BAD_FORMAT)
            .row(cat(&[b"ma ", &k251, b"\r\n"]), BAD_FORMAT)
            .row(cat(&[b"me ", &k251, b"\r\n"]), BAD_FORMAT),
        case("wrong token counts answer ERROR")
            .row(b"set k 0 0\r\n", b"ERROR\r\n")
            .row(b"set\r\n", b"ERROR\r\n")
            .row(b"set k 0 0 1 noreply x\r\n", b"ERROR\r\n")
            .row(b"add k 0\r\n", b"ERROR\r\n")
            .row(b"cas k 0 0 1\r\n", b"ERROR\r\n")
            .row(b"incr k\r\n", b"ERROR\r\n")
            .row(b"decr k 1 2 3\r\n", b"ERROR\r\n")
            .row(b"touch k\r\n", b"ERROR\r\n")
            .row(b"delete\r\n", b"ERROR\r\n")
            .row(b"delete a b c d\r\n", b"ERROR\r\n")
            .row(b"get\r\n", b"ERROR\r\n")
            .row(b"gets\r\n", b"ERROR\r\n")
            .row(b"gat\r\n", b"ERROR\r\n")
            .row(b"gats\r\n", b"ERROR\r\n")
            .row(b"flush_all 1 2 3\r\n", b"ERROR\r\n")
            .row(b"verbosity\r\n", b"ERROR\r\n")
            .row(b"cache_memlimit\r\n", b"ERROR\r\n")
            .row(b"mg\r\n", b"ERROR\r\n")
            .row(b"ms\r\n", b"ERROR\r\n"),
        case("bad numbers")
            .row(b"set k abc 0 1\r\n", BAD_FORMAT)
            .row(b"set k -1 0 1\r\n", BAD_FORMAT)
            .row(b"set k 18446744073709551616 0 1\r\n", BAD_FORMAT)
            .row(b"set k 0 abc 1\r\n", BAD_FORMAT)
            .row(b"set k 0 0 abc\r\n", BAD_FORMAT)
            .row(b"set k 0 0 1.5\r\n", BAD_FORMAT)
            .row(b"set k 0 0 2147483647\r\n", BAD_FORMAT)
            .row(b"set k 0 0 2147483646\r\n", BAD_FORMAT)
            .row(b"cas k 0 0 1 abc\r\n", BAD_FORMAT)
            .row(b"cas k 0 0 1 -1\r\n", BAD_FORMAT)
            .row(
                b"incr k abc\r\n",
                b"CLIENT_ERROR invalid numeric delta argument\r\n",
            )
            .row(
                b"decr k -1\r\n",
                b"CLIENT_ERROR invalid numeric delta argument\r\n",
            )
            .row(
                b"incr k 18446744073709551616\r\n",
                b"CLIENT_ERROR invalid numeric delta argument\r\n",
            )
            .row(b"touch k abc\r\n", b"CLIENT_ERROR invalid exptime argument\r\n")
            .row(b"gat abc k\r\n", b"CLIENT_ERROR invalid exptime argument\r\n")
            .row(b"flush_all abc\r\n", b"CLIENT_ERROR invalid exptime argument\r\n")
            .row(b"verbosity abc\r\n", BAD_FORMAT)
            .row(b"cache_memlimit abc\r\n", b"ERROR\r\n")
            .row(b"ms k abc\r\n", BAD_FORMAT)
            .row(b"ms k\r\n", BAD_FORMAT),
        case("negative lengths are refused without reading a block")
            .row(b"set k 0 0 -1\r\n", BAD_FORMAT)
            .row(b"ms k -1\r\n", BAD_FORMAT)
            .row(b"get k\r\n", b"END\r\n"),
        case("numbers are read with memcached's strtol rules, truncation included")
            .row(b"set k -0 0 1\r\na\r\n", b"STORED\r\n")
            .row(b"get k\r\n", b"VALUE k 0 1\r\na\r\nEND\r\n")
            .row(b"set k 4294967297 0 1\r\na\r\n", b"STORED\r\n")
            .row(b"get k\r\n", b"VALUE k 1 1\r\na\r\nEND\r\n")
            .row(b"set k +2 +0 +1\r\na\r\n", b"STORED\r\n")
            .row(b"get k\r\n", b"VALUE k 2 1\r\na\r\nEND\r\n")
            .row(b"set k 0 0 4294967297\r\nb\r\n", b"STORED\r\n")
            .row(b"get k\r\n", b"VALUE k 0 1\r\nb\r\nEND\r\n")
            .row(b"set k 3 0 1\tignored\r\nc\r\n", b"STORED\r\n")
            .row(b"get k\r\n", b"VALUE k 3 1\r\nc\r\nEND\r\n")
            .row(b"set n 0 0 1\r\n5\r\n", b"STORED\r\n")
            .row(b"incr n -0\r\n", b"5\r\n")
            .row(b"incr n -18446744073709551615\r\n", b"6\r\n"),
        case("add, replace, append, prepend")
            .row(b"add k 3 0 1\r\nm\r\n", b"STORED\r\n")
            .row(b"add k 0 0 1\r\nx\r\n", b"NOT_STORED\r\n")
            .row(b"replace nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n")
            .row(b"append k 9 0 1\r\n>\r\nprepend k 9 0 1\r\n<\r\n", b"STORED\r\nSTORED\r\n")
            .row(b"append nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n")
            .row(b"prepend nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n")
            .row(b"get k\r\n", b"VALUE k 3 3\r\n<m>\r\nEND\r\n")
            .row(b"replace k 4 0 2\r\nrr\r\n", b"STORED\r\n")
            .row(b"get k\r\n", b"VALUE k 4 2\r\nrr\r\nEND\r\n"),
        case("cas: NOT_FOUND, EXISTS, STORED")
            .row(b"cas nope 0 0 1 1\r\nx\r\n", b"NOT_FOUND\r\n")
            .row(b"set k 0 0 1\r\na\r\n", b"STORED\r\n")
            .row(b"gets k\r\n", b"VALUE k 0 1 {n:c}\r\na\r\nEND\r\n")
            .row(b"cas k 0 0 1 18446744073709551615\r\nx\r\n", b"EXISTS\r\n")
            .row(b"cas k 2 0 1 {c}\r\nb\r\n", b"STORED\r\n")
            .row(b"cas k 0 0 1 {c}\r\nc\r\n", b"EXISTS\r\n")
            .row(b"gets k\r\n", b"VALUE k 2 1 {n:c}\r\nb\r\nEND\r\n")
            .row(b"cas k 0 0 1 {c} noreply\r\nd\r\n", b"")
            .row(b"get k\r\n", b"VALUE k 0 1\r\nd\r\nEND\r\n"),
        case("incr and decr: miss, wrap at 2^64, floor at 0, non-numeric")
            .row(b"incr nope 1\r\n", b"NOT_FOUND\r\n")
            .row(b"decr nope 1\r\n", b"NOT_FOUND\r\n")
            .row(b"set n 0 0 20\r\n18446744073709551615\r\n", b"STORED\r\n")
            .row(b"incr n 2\r\n", b"1\r\n")
            .row(b"incr n 18446744073709551615\r\n", b"0\r\n")
            .row(b"set n 0 0 3\r\n100\r\n", b"STORED\r\n")
            .row(b"decr n 1\r\n", b"99\r\n")
            // memcached rewrites a shorter number in place, padded with spaces.
            .row(b"get n\r\n", b"VALUE n 0 3\r\n99 \r\nEND\r\n")
            .row(b"incr n 1\r\n", b"100\r\n")
            .row(b"decr n 1000\r\n", b"0\r\n")
            .row(b"set n 0 0 2\r\n99\r\n", b"STORED\r\n")
            .row(b"incr n 1\r\n", b"100\r\n")
            .row(b"get n\r\n", b"VALUE n 0 3\r\n100\r\nEND\r\n")
            .row(b"set t 0 0 2\r\nab\r\n", b"STORED\r\n")
            .row(b"incr t 1\r\n", NON_NUMERIC)
            .row(b"decr t 1\r\n", NON_NUMERIC)
            .row(b"set e 0 0 0\r\n\r\n", b"STORED\r\n")
            .row(b"incr e 1\r\n", NON_NUMERIC),
        case("touch, gat and gats")
            .row(b"set k 0 0 1\r\na\r\n", b"STORED\r\n")
            .row(b"touch k 100\r\n", b"TOUCHED\r\n")
            .row(b"mg k t\r\n", b"HD t{n}\r\n")
            .row(b"touch nope 100\r\n", b"NOT_FOUND\r\n")
            .row(b"gat 100 k nope\r\n", b"VALUE k 0 1\r\na\r\nEND\r\n")
            .row(b"gats 100 k\r\n", b"VALUE k 0 1 {n}\r\na\r\nEND\r\n")
            .row(b"gat 0 k\r\n", b"VALUE k 0 1\r\na\r\nEND\r\n")
            .row(b"mg k t\r\n", b"HD t-1\r\n")
            .row(b"gat 10\r\n", b"END\r\n")
            .row(b"touch k -1\r\n", b"TOUCHED\r\n")
            .row(b"get k\r\n", b"END\r\n"),
        case("a negative exptime stores an already expired item")
            .row(b"set k 0 -1 1\r\na\r\n", b"STORED\r\n")
            .row(b"get k\r\n", b"END\r\n")
            .row(b"add k 0 0 1\r\nb\r\n", b"STORED\r\n"),
        case("delete: forms and usage error")
            .row(b"set k 0 0 1\r\na\r\n", b"STORED\r\n")
            .row(b"delete k 0\r\n", b"DELETED\r\n")
            .row(b"delete k\r\n", b"NOT_FOUND\r\n")
            .row(b"set k 0 0 1\r\na\r\n", b"STORED\r\n")
            .row(b"delete k\r\n", b"DELETED\r\n")
            .row(
                b"delete k 5\r\n",
                b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
            )
            .row(
                b"delete k 0 0\r\n",
                b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
            )
            .row(b"delete k 5 noreply\r\n", b"")
            .row(b"set k 0 0 1\r\na\r\n", b"STORED\r\n")
            .row(b"delete k 0 noreply\r\n", b"")
            .row(b"get k\r\n", b"END\r\n"),
        case("noreply silences every answer")
            .row(b"set k 0 0 1 noreply\r\na\r\n", b"")
            .row(b"add k 0 0 1 noreply\r\nb\r\n", b"")
            .row(b"replace k 0 0 1 noreply\r\nc\r\n", b"")
            .row(b"append k 0 0 1 noreply\r\nd\r\n", b"")
            .row(b"prepend k 0 0 1 noreply\r\ne\r\n", b"")
            .row(b"cas k 0 0 1 1 noreply\r\nf\r\n", b"")
            .row(b"get k\r\n", b"VALUE k 0 3\r\necd\r\nEND\r\n")
            .row(b"set n 0 0 1 noreply\r\n5\r\nincr n 2 noreply\r\ndecr n 1 noreply\r\n", b"")
            .row(b"touch n 100 noreply\r\n", b"")
            .row(b"get n\r\n", b"VALUE n 0 1\r\n6\r\nEND\r\n")
            .row(b"delete n noreply\r\n", b"")
            .row(b"get n\r\n", b"END\r\n")
            .row(b"flush_all noreply\r\n", b"")
            .row(b"get k\r\n", b"END\r\n")
            .row(b"verbosity 0 noreply\r\n", b"")
            .row(b"cache_memlimit 64 noreply\r\n", b""),
        case("errors under noreply are silent too")
            .row(b"set k abc 0 1 noreply\r\n", b"")
            .row(b"incr nope 1 noreply\r\n", b"")
            .row(b"set t 0 0 1 noreply\r\nx\r\n", b"")
            .row(b"incr t 1 noreply\r\n", b"")
            .row(b"incr t abc noreply\r\n", b"")
            .row(b"touch t abc noreply\r\n", b"")
            .row(b"touch nope 1 noreply\r\n", b"")
            .row(b"delete nope noreply\r\n", b"")
            .row(b"add t 0 0 1 noreply\r\ny\r\n", b"")
            .row(b"verbosity noreply\r\n", b"")
            .row(b"flush_all abc noreply\r\n", b"")
            .row(b"cache_memlimit abc noreply\r\n", b"")
            // The bad chunk is silent; what is left of the block is a line of its own.
            .row(b"set k 0 0 1 noreply\r\nab\r\n", b"ERROR\r\n")
            // Token-count errors come before noreply is looked at.
            .row(b"set k 0 0 1 noreply x\r\n", b"ERROR\r\n")
            .row(b"get t\r\n", b"VALUE t 0 1\r\nx\r\nEND\r\n"),
        case("bad data chunk")
            .row(b"set k 0 0 2\r\nabcd\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n")
            .row(b"get k\r\n", b"END\r\n")
            .row(b"set k 0 0 1\r\nab\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n")
            .row(b"ms k 1\r\nab\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n")
            .row(b"ms k 1 q\r\nab\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n")
            .row(b"get k\r\n", b"END\r\n"),
        case("a value over the item limit is swallowed; the connection lives")
            .row(b"set k 0 0 3\r\nold\r\n", b"STORED\r\n")
            .row(cat(&[b"set k 0 0 2000000\r\n", &big, b"\r\n"]), TOO_LARGE)
            // A failed set drops the old value.
            .row(b"get k\r\n", b"END\r\n")
            .row(b"set k 0 0 3\r\nnew\r\n", b"STORED\r\n")
            .row(cat(&[b"add k 0 0 2000000\r\n", &big, b"\r\n"]), TOO_LARGE)
            .row(cat(&[b"append k 0 0 2000000 noreply\r\n", &big, b"\r\n"]), b"")
            // Other verbs leave it.
            .row(b"get k\r\n", b"VALUE k 0 3\r\nnew\r\nEND\r\n")
            .row(cat(&[b"set k 0 0 2000000 noreply\r\n", &big, b"\r\n"]), b"")
            .row(b"get k\r\n", b"END\r\n")
            .row(b"ms k 3\r\nnew\r\n", b"HD\r\n")
            .row(cat(&[b"ms k 2000000 q MA\r\n", &big, b"\r\n"]), TOO_LARGE)
            .row(b"mg k v\r\n", b"EN\r\n"),
        case("the item limit is memcached's to the byte")
            .row(
                cat(&[b"set k 0 0 ", MAX_VALUE_K.to_string().as_bytes(), b"\r\n", &max_k, b"\r\n"]),
                b"STORED\r\n",
            )
            .row(b"mg k s\r\n", cat(&[b"HD s", MAX_VALUE_K.to_string().as_bytes(), b"\r\n"]))
            .row(
                cat(&[b"set k 0 0 ", (MAX_VALUE_K + 1).to_string().as_bytes(), b"\r\n", &max_k1, b"\r\n"]),
                TOO_LARGE,
            )
            .row(
                cat(&[b"set k 1 0 ", (MAX_VALUE_K - 4).to_string().as_bytes(), b"\r\n", &max_k[4..], b"\r\n"]),
                b"STORED\r\n",
            )
            .row(
                cat(&[b"set k 1 0 ", (MAX_VALUE_K - 3).to_string().as_bytes(), b"\r\n", &max_k[3..], b"\r\n"]),
                TOO_LARGE,
            )
            .row(
                cat(&[b"ms k ", MAX_VALUE_K.to_string().as_bytes(), b"\r\n", &max_k, b"\r\n"]),
                b"HD\r\n",
            )
            .row(
                cat(&[b"ms k ", (MAX_VALUE_K + 1).to_string().as_bytes(), b"\r\n", &max_k1, b"\r\n"]),
                TOO_LARGE,
            ),
        // ------------------------------------------------------------------ administrative verbs
        case("flush_all")
            .row(b"set k 0 0 1\r\na\r\n", b"STORED\r\n")
            .row(b"flush_all\r\n", b"OK\r\n")
            .row(b"get k\r\n", b"END\r\n")
            .row(b"set k 0 0 1\r\na\r\n", b"STORED\r\n")
            .row(b"flush_all 0\r\n", b"OK\r\n")
            .row(b"get k\r\n", b"END\r\n")
            .row(b"flush_all -1\r\n", b"OK\r\n")
            .row(b"flush_all 0 noreply\r\n", b"")
            .row(b"flush_all 0 0\r\n", b"OK\r\n"),
        case("verbosity")
            .row(b"verbosity 1\r\n", b"OK\r\n")
            .row(b"verbosity 1 2\r\n", b"OK\r\n")
            .row(b"verbosity 1 2 3\r\n", b"ERROR\r\n")
            .row(b"verbosity -1\r\n", BAD_FORMAT)
            .row(b"verbosity 0\r\n", b"OK\r\n"),
        case("version")
            .row(b"version\r\n", b"VERSION {*}\r\n")
            .row(b"version please\r\n", b"VERSION {*}\r\n"),
        case("stats")
            .row(b"set k 0 0 1\r\na\r\n", b"STORED\r\n")
            .row(b"stats\r\n", b"STAT pid {n}\r\n{**}STAT curr_items 1\r\n{**}END\r\n")
            .row(b"stats settings\r\n", b"STAT maxbytes {n}\r\n{**}END\r\n")
            .row(b"stats items\r\n", b"STAT items:{n}:number 1\r\n{**}END\r\n")
            .row(b"stats slabs\r\n", b"STAT {n}:chunk_size {n}\r\n{**}STAT total_malloced {n}\r\nEND\r\n")
            .row(b"stats reset\r\n", b"RESET\r\n")
            .row(b"stats bogus\r\n", b"ERROR\r\n"),
        // memcached 1.6 dumps only its COLD LRU, which new items reach after a moment, so
        // class 1's listing is timing-dependent there (the ITEM lines are checked in the store's
        // unit tests); the argument handling is exact.
        case("stats cachedump")
            .row(b"set a 5 100 3\r\nabc\r\n", b"STORED\r\n")
            .row(b"stats cachedump 1 0\r\n", b"{**}END\r\n")
            .row(b"stats cachedump 2 10\r\n", b"END\r\n")
            .row(b"stats cachedump 63 1\r\n", b"END\r\n")
            .row(b"stats cachedump 64 1\r\n", b"CLIENT_ERROR Illegal slab id\r\n")
            .row(b"stats cachedump 1\r\n", b"CLIENT_ERROR bad command line\r\n")
            .row(b"stats cachedump x 1\r\n", BAD_FORMAT)
            .row(b"stats cachedump 1 -1\r\n", BAD_FORMAT),
        // Counts per key prefix (before the first `:`): only the classic get, store and delete
        // verbs count, only while detail is on; `off` keeps the counts, `stats reset` clears
        // them. One prefix per dump: memcached lists several in its hash table's order.
        case("stats detail")
            .row(b"stats detail\r\n", DETAIL_USAGE)
            .row(b"stats detail foo\r\n", DETAIL_USAGE)
            .row(b"stats detail ON\r\n", DETAIL_USAGE)
            .row(b"stats detailx\r\n", b"ERROR\r\n")
            .row(b"stats reset\r\n", b"RESET\r\n")
            .row(b"stats detail dump\r\n", b"END\r\n")
            .row(b"stats detail  on\r\n", b"OK\r\n")
            .row(b"set a:1 0 0 1\r\nx\r\n", b"STORED\r\n")
            .row(b"add a:1 0 0 1\r\ny\r\n", b"NOT_STORED\r\n")
            .row(b"set nocolon 0 0 1\r\nx\r\n", b"STORED\r\n")
            .row(b"get a:1 a:b:c nocolon\r\n", b"VALUE a:1 0 1\r\nx\r\nVALUE nocolon 0 1\r\nx\r\nEND\r\n")
            .row(b"gat 0 a:2\r\n", b"END\r\n")
            .row(b"delete a:1\r\n", b"DELETED\r\n")
            .row(b"delete a:1\r\n", b"NOT_FOUND\r\n")
            .row(b"mg a:3 v\r\n", b"EN\r\n")
            .row(b"incr a:4 1\r\n", b"NOT_FOUND\r\n")
            .row(b"stats detail dump\r\n", b"PREFIX a get 3 hit 1 set 2 del 2\r\nEND\r\n")
            .row(b"stats detail off\r\n", b"OK\r\n")
            .row(b"get a:1\r\n", b"END\r\n")
            .row(b"stats detail dump x\r\n", b"PREFIX a get 3 hit 1 set 2 del 2\r\nEND\r\n")
            .row(b"stats reset\r\n", b"RESET\r\n")
            .row(b"stats detail dump\r\n", b"END\r\n"),
        case("slabs automove")
            .row(b"slabs automove 0\r\n", b"OK\r\n")
            .row(b"slabs automove 2\r\n", b"OK\r\n")
            .row(b"stats settings\r\n", b"{**}STAT slab_automove 2\r\n{**}END\r\n")
            .row(b"slabs automove 1 2\r\n", b"OK\r\n")
            .row(b"slabs automove 01\r\n", b"OK\r\n")
            .row(b"slabs automove 4294967298\r\n", b"OK\r\n")
            .row(b"slabs automove 3\r\n", b"ERROR\r\n")
            .row(b"slabs automove\r\n", b"ERROR\r\n")
            .row(b"slabs\r\n", b"ERROR\r\n")
            .row(b"slabs foo\r\n", b"ERROR\r\n")
            .row(b"slabs automove ratio\r\n", b"ERROR\r\n")
            .row(b"slabs automove x\r\n", BAD_FORMAT)
            .row(b"slabs automove -1\r\n", BAD_FORMAT)
            .row(b"slabs automove 1x\r\n", BAD_FORMAT)
            .row(b"slabs automove 3 noreply\r\n", b"")
            .row(b"slabs automove x noreply\r\n", b"")
            .row(b"slabs automove 1 noreply\r\n", b"")
            .row(b"stats settings\r\n", b"{**}STAT slab_automove 1\r\n{**}END\r\n"),
        case("cache_memlimit")
            .row(b"cache_memlimit 100\r\n", b"OK\r\n")
            .row(
                b"cache_memlimit 7\r\n",
                b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
            )
            .row(
                b"cache_memlimit 1000000001\r\n",
                b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n",
            )
            .row(b"cache_memlimit 64\r\n", b"OK\r\n"),
        case("shutdown is refused unless enabled")
            .row(b"shutdown\r\n", b"ERROR: shutdown not enabled\r\n")
            .row(b"shutdown graceful\r\n", b"ERROR: shutdown not enabled\r\n"),
        case("quit closes").closes(b"quit\r\n"),
        case("quit closes after answering what came before")
            .row(b"get a\r\nquit\r\nget b\r\n", b"END\r\n")
            .closes(b""),
        case("lru_crawler metadump lists keys")
            .row(b"set k 0 0 1\r\na\r\n", b"STORED\r\n")
            .row(
                b"lru_crawler metadump all\r\n",
                b"key=k exp=-1 la={n} cas={n} fetch=no cls={n} size={n}\nEND\r\n",
            )
            .row(b"get k\r\n", b"VALUE k 0 1\r\na\r\nEND\r\n")
            .row(
                b"lru_crawler metadump all\r\n",
                b"key=k exp=-1 la={n} cas={n} fetch=yes cls={n} size={n}\nEND\r\n",
            )
            .row(b"lru_crawler metadump\r\n", b"ERROR\r\n"),
        // ------------------------------------------------------------------ meta commands
        case("mn, and quiet mode up to it")
            .row(b"mn\r\n", b"MN\r\n")
            .row(b"mn x y\r\n", b"MN\r\n")
            .row(b"mg nope v q\r\nmn\r\n", b"MN\r\n")
            .row(b"mg nope v q k Oab\r\nmn\r\n", b"MN\r\n")
            .row(b"ms m 1 q\r\nz\r\nmn\r\n", b"MN\r\n")
            // q hides only nominal answers: a hit is still shown.
            .row(b"mg m v q\r\nmn\r\n", b"VA 1\r\nz\r\nMN\r\n")
            .row(b"mg m q\r\nmn\r\n", b"HD\r\nMN\r\n")
            .row(b"ms m 1 q MR\r\nz\r\nmn\r\n", b"MN\r\n")
            .row(b"ms nope 1 q MR\r\nz\r\nmn\r\n", b"NS\r\nMN\r\n")
            .row(b"md m q\r\nmn\r\n", b"MN\r\n")
            .row(b"md m q\r\nmn\r\n", b"NF\r\nMN\r\n")
            .row(b"ma n q\r\nmn\r\n", b"NF\r\nMN\r\n"),
        case("mg return flags")
            .row(b"ms m 2 F7 T0\r\nhi\r\n", b"HD\r\n")
            .row(
                b"mg m v f s k Oab c t l h\r\n",
                b"VA 2 f7 s2 km Oab c{n} t-1 l{n} h0\r\nhi\r\n",
            )
            .row(b"mg m h\r\n", b"HD h1\r\n")
            .row(b"mg m\r\n", b"HD\r\n")
            .row(b"mg m k v q\r\n", b"VA 2 km\r\nhi\r\n")
            .row(b"mg m u f\r\n", b"HD f7\r\n")
            .row(b"mg m T100 t\r\n", b"HD t{n}\r\n")
            .row(b"mg nope v k Oab s\r\n", b"EN knope Oab\r\n")
            .row(cat(&[b"mg m ", &opaque32, b"\r\n"]), cat(&[b"HD ", &opaque32, b"\r\n"])),
        case("ms flags and modes")
            .row(b"ms m 2 k c Oab f s t v\r\nhi\r\n", b"HD km c{n} Oab\r\n")
            .row(b"ms m 1 ME\r\na\r\n", b"NS\r\n")
            .row(b"ms e 1 ME\r\na\r\n", b"HD\r\n")
            .row(b"ms e 1 MA\r\nc\r\n", b"HD\r\n")
            .row(b"ms e 1 MP\r\nd\r\n", b"HD\r\n")
            .row(b"mg e v\r\n", b"VA 3\r\ndac\r\n")
            .row(b"ms nope 1 MR\r\nx\r\n", b"NS\r\n")
            .row(b"ms nope 1 MA\r\nx\r\n", b"NS\r\n")
            .row(b"ms e 1 MR F3\r\nr\r\n", b"HD\r\n")
            .row(b"ms e 1 MS T0\r\ns\r\n", b"HD\r\n")
            .row(b"mg e v f\r\n", b"VA 1 f0\r\ns\r\n")
            .row(b"ms e 0\r\n\r\n", b"HD\r\n")
            .row(b"mg e v s\r\n", b"VA 0 s0\r\n\r\n"),
        case("ms compare-and-swap")
            .row(b"ms m 2 c\r\nhi\r\n", b"HD c{n:c}\r\n")
            .row(b"ms m 2 C1\r\nho\r\n", b"EX\r\n")
            .row(b"ms nope 2 C1\r\nho\r\n", b"NF\r\n")
            .row(b"ms m 2 C{c} c\r\nho\r\n", b"HD c{n}\r\n")
            .row(b"ms m 2 C{c}\r\nhu\r\n", b"EX\r\n")
            .row(b"mg m v\r\n", b"VA 2\r\nho\r\n"),
        case("base64 keys")
            .row(b"ms Zm9v 3 b\r\nbar\r\n", b"HD\r\n")
            .row(b"get foo\r\n", b"VALUE foo 0 3\r\nbar\r\nEND\r\n")
            .row(b"mg Zm9v b v k\r\n", b"VA 3 kZm9v b\r\nbar\r\n")
            .row(b"mg foo k v\r\n", b"VA 3 kZm9v b\r\nbar\r\n")
            // memcached's decoder skips bytes outside the alphabet and stops at padding.
            .row(b"mg Zm9v! b s\r\n", b"HD s3\r\n")
            .row(b"mg Zm8= b v k\r\n", b"EN kZm8= b\r\n")
            .row(b"mg Zm9=v b v\r\n", b"CLIENT_ERROR error decoding key\r\n")
            .row(b"mg !!!! b\r\n", b"CLIENT_ERROR error decoding key\r\n")
            .row(b"ms Zm8 1 b\r\nx\r\n", b"CLIENT_ERROR error decoding key\r\n")
            .row(b"md !!!! b\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n")
            .row(b"ms AAEC 1 b k\r\nz\r\n", b"HD kAAEC b\r\n")
            .row(b"md AAEC b k\r\n", b"HD kAAEC b\r\n")
            .row(b"md AAEC b q k\r\nmn\r\n", b"NF kAAEC b\r\nMN\r\n"),
        case("me")
            .row(b"ms n 1 T0\r\nx\r\n", b"HD\r\n")
            .row(b"me n\r\n", b"ME n exp=-1 la={n} cas={n} fetch=no cls={n} size={n}\r\n")
            .row(b"me nope\r\n", b"EN\r\n")
            .row(b"me bg== b\r\n", b"ME n exp=-1 la={n} cas={n} fetch=no cls={n} size={n}\r\n")
            .row(b"ms Zm9v 3 b\r\nbar\r\n", b"HD\r\n")
            .row(b"me foo\r\n", b"ME Zm9v exp=-1 la={n} cas={n} fetch=no cls={n} size={n}\r\n")
            .row(b"me !!!! b\r\n", BAD_FORMAT)
            .row(b"me\r\n", BAD_FORMAT),
        case("md")
            .row(b"md n\r\n", b"NF\r\n")
            .row(b"md n q k Oab\r\nmn\r\n", b"NF kn Oab\r\nMN\r\n")
            .row(b"ms n 1\r\nx\r\n", b"HD\r\n")
            .row(b"md n C1\r\n", b"EX\r\n")
            .row(b"md n k Oab\r\n", b"HD kn Oab\r\n")
            .row(b"md n\r\n", b"NF\r\n")
            .row(b"ms n 1 c\r\nx\r\n", b"HD c{n:c}\r\n")
            .row(b"md n C{c}\r\n", b"HD\r\n")
            .row(b"get n\r\n", b"END\r\n"),
        case("md I marks stale; W, X and Z")
            .row(b"ms s 1 T0\r\nv\r\n", b"HD\r\n")
            .row(b"md s I T30\r\n", b"HD\r\n")
            .row(b"mg s v c\r\n", b"VA 1 c{n} X W\r\nv\r\n")
            .row(b"mg s v\r\n", b"VA 1 Z X\r\nv\r\n")
            .row(b"mg s c\r\n", b"HD c{n:c} Z X\r\n")
            // A set with I and the stale item's CAS replaces it and clears the flags.
            .row(b"ms s 1 I C{c}\r\nz\r\n", b"HD\r\n")
            .row(b"mg s v\r\n", b"VA 1\r\nz\r\n"),
        case("ms I with an older CAS stores a stale item")
            .row(b"ms s 1 T0 c\r\na\r\n", b"HD c{n:c}\r\n")
            .row(b"md s I T30\r\n", b"HD\r\n")
            .row(b"ms s 1 I C{c}\r\nz\r\n", b"HD\r\n")
            .row(b"mg s v\r\n", b"VA 1 X W\r\nz\r\n")
            .row(b"mg s v\r\n", b"VA 1 Z X\r\nz\r\n"),
        case("mg N vivifies, R recaches")
            .row(b"mg v N30 s\r\n", b"HD s0 W\r\n")
            .row(b"mg v N30 s\r\n", b"HD s0 Z\r\n")
            .row(b"mg v s v\r\n", b"VA 0 s0 Z\r\n\r\n")
            .row(b"ms v 1 T10\r\nx\r\n", b"HD\r\n")
            .row(b"mg v R30 v c\r\n", b"VA 1 c{n} W\r\nx\r\n")
            .row(b"mg v R30 v\r\n", b"VA 1 Z\r\nx\r\n")
            .row(b"ms w 1 T100\r\nx\r\n", b"HD\r\n")
            .row(b"mg w R30 v\r\n", b"VA 1\r\nx\r\n"),
        case("ma")
            .row(b"ma n\r\n", b"NF\r\n")
            .row(b"ma n N0 J5\r\n", b"HD\r\n")
            .row(b"ma n v\r\n", b"VA 1\r\n6\r\n")
            .row(b"ma n q v\r\nmn\r\n", b"MN\r\n")
            .row(b"ma n MD D100 v\r\n", b"VA 1\r\n0\r\n")
            .row(b"ma n M- v t c k Oz\r\n", b"VA 1 t-1 c{n} kn Oz\r\n0\r\n")
            .row(b"ma n M+ D18446744073709551615 v\r\n", b"VA 20\r\n18446744073709551615\r\n")
            .row(b"ma n MI D2 v\r\n", b"VA 1\r\n1\r\n")
            .row(b"ma n C1\r\n", b"EX\r\n")
            .row(b"ma n c\r\n", b"HD c{n:c}\r\n")
            .row(b"ma n C{c} v\r\n", b"VA 1\r\n3\r\n")
            .row(b"ma m N0 T0 v t\r\n", b"VA 1 t-1\r\n0\r\n")
            .row(b"ms t 2\r\nab\r\n", b"HD\r\n")
            .row(b"ma t\r\n", NON_NUMERIC)
            // Like incr, ma rewrites a shorter number in place, padded with spaces.
            .row(
                b"get n m\r\n",
                b"VALUE n 0 20\r\n3                   \r\nVALUE m 0 1\r\n0\r\nEND\r\n",
            ),
        case("meta flag errors")
            .row(b"mg m v v\r\n", b"CLIENT_ERROR duplicate flag\r\n")
            .row(b"mg m \xff\r\n", b"CLIENT_ERROR duplicate flag\r\n")
            .row(b"mg m !\r\n", b"CLIENT_ERROR invalid flag\r\n")
            .row(b"mg m Tabc\r\n", b"CLIENT_ERROR bad token in command line format\r\n")
            .row(b"mg m N\r\n", b"CLIENT_ERROR bad token in command line format\r\n")
            .row(b"mg m C-1\r\n", b"CLIENT_ERROR bad token in command line format\r\n")
            .row(b"mg m Tabc v v\r\n", b"CLIENT_ERROR duplicate flag\r\n")
            .row(b"mg m MXY\r\n", b"CLIENT_ERROR incorrect length for M token\r\n")
            .row(b"ms m 1 v v\r\nx\r\n", b"CLIENT_ERROR duplicate flag\r\n")
            .row(b"ms m 1 !\r\nx\r\n", b"CLIENT_ERROR invalid flag\r\n")
            .row(b"ms m 1 Tabc\r\nx\r\n", b"CLIENT_ERROR bad token in command line format\r\n")
            .row(b"ms m 1 MX\r\nx\r\n", b"CLIENT_ERROR invalid mode for ms M token\r\n")
            .row(b"ms m 1 MXY\r\nx\r\n", b"CLIENT_ERROR incorrect length for M token\r\n")
            .row(b"md m !\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n")
            .row(b"md m Tabc\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n")
            .row(b"ma m MX\r\n", b"CLIENT_ERROR invalid mode for ma M token\r\n")
            .row(b"ma m MXY\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n")
            .row(b"ma m Dabc\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n")
            .row(b"ma m Jabc\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n")
            .row(b"ma m v v\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n")
            .row(b"mg m\r\n", b"EN\r\n"),
        case("meta opaque: 32 bytes at most")
            .row(cat(&[b"mg m ", &opaque32, b"\r\n"]), cat(&[b"EN ", &opaque32, b"\r\n"]))
            .row(cat(&[b"mg m ", &opaque33, b"\r\n"]), b"CLIENT_ERROR opaque token too long\r\n")
            .row(cat(&[b"md m ", &opaque33, b"\r\n"]), b"CLIENT_ERROR opaque token too long\r\n")
            .row(cat(&[b"ma m ", &opaque33, b"\r\n"]), b"CLIENT_ERROR opaque token too long\r\n")
            .row(
                cat(&[b"ms m 1 ", &opaque33, b"\r\nx\r\n"]),
                b"CLIENT_ERROR opaque token too long\r\n",
            )
            // memcached looks at the mode before the opaque's length.
            .row(
                cat(&[b"ms m 1 MX ", &opaque33, b"\r\nx\r\n"]),
                b"CLIENT_ERROR invalid mode for ms M token\r\n",
            )
            .row(
                cat(&[b"ma m MX ", &opaque33, b"\r\n"]),
                b"CLIENT_ERROR invalid mode for ma M token\r\n",
            )
            .row(b"mg m\r\n", b"EN\r\n"),
        case("meta token limits")
            .row(cat(&[b"mg m", &flags18[..flags18.len() - 6], b"\r\n"]), b"EN km O\r\n")
            .row(
                cat(&[b"mg m", flags18, b"\r\n"]),
                b"CLIENT_ERROR options flags are too long\r\n",
            )
            .row(cat(&[b"md m", flags18, b"\r\n"]), b"CLIENT_ERROR options flags too long\r\n")
            .row(cat(&[b"ma m", flags18, b"\r\n"]), b"CLIENT_ERROR options flags too long\r\n")
            // Refused before the length is read, so the block is a line of its own.
            .row(
                cat(&[b"ms m 1", &flags18[..flags18.len() - 3], b"\r\nx\r\n"]),
                b"CLIENT_ERROR options flags too long\r\nERROR\r\n",
            ),
        // ------------------------------------------------------------------ framing
        case("pipelined requests in one write")
            .row(
                b"set p 0 0 1\r\n1\r\nincr p 1\r\nget p\r\nbogus\r\nmg p v Ox\r\ndelete p\r\nget p\r\nmn\r\n",
                b"STORED\r\n2\r\nVALUE p 0 1\r\n2\r\nEND\r\nERROR\r\nVA 1 Ox\r\n2\r\nDELETED\r\nEND\r\nMN\r\n",
            ),
        case("a NUL ends the line")
            .row(b"set k 0 0 1\x00 junk\r\na\r\n", b"STORED\r\n")
            .row(b"get k\x00junk\r\n", b"VALUE k 0 1\r\na\r\nEND\r\n")
            .row(b"get nope\x00k\r\n", b"END\r\n")
            .row(b"\x00get k\r\n", b"ERROR\r\n"),
        case("an HTTP request closes the connection").closes(b"GET / HTTP/1.1\r\n"),
        case("2049 bytes without a newline close the connection").closes(rep(b'a', 2049)),
        case("a long line that is not a get closes the connection")
            .closes(cat(&[b"set k 0 0 1 ", &rep(b'x', 2100)])),
        case("leading spaces do not make a get").closes(cat(&[
            &rep(b' ', 101),
            b"get ",
            &rep(b'k', 2000),
        ])),
        case("a long get line is read to its end")
            .row_in_parts(&[&long_get(), b"\r\n"], b"VALUE k0 0 1\r\nz\r\nEND\r\n")
            .row_in_parts(
                &[&cat(&[&rep(b' ', 50), b"gets", &long_get()[3..]]), b"\r\n"],
                b"VALUE k0 0 1 {n}\r\nz\r\nEND\r\n",
            ),
        // ------------------------------------------------------------------ deliberate differences
        case("keys with control bytes")
            .differs(b"get a\x01b\r\n", reply(b"END\r\n"), reply(BAD_FORMAT), CONTROL_BYTES)
            .differs(b"get a\tb\r\n", reply(b"END\r\n"), reply(BAD_FORMAT), CONTROL_BYTES)
            .differs(
                b"set a\x7f 0 0 1\r\nv\r\n",
                reply(b"STORED\r\n"),
                reply(cat(&[BAD_FORMAT, b"ERROR\r\n"])),
                CONTROL_BYTES,
            )
            .differs(b"mg a\x01 v\r\n", reply(b"EN\r\n"), reply(BAD_FORMAT), CONTROL_BYTES)
            .differs(
                b"ms a\x01 1\r\nv\r\n",
                reply(b"HD\r\n"),
                reply(BAD_FORMAT),
                CONTROL_BYTES,
            )
            .row(b"get k\r\n", b"END\r\n"),
        case("ma with an over-long opaque changes nothing")
            .row(b"set n 0 0 1\r\n5\r\n", b"STORED\r\n")
            .row(cat(&[b"ma n ", &opaque33, b"\r\n"]), b"CLIENT_ERROR opaque token too long\r\n")
            .differs(
                b"get n\r\n",
                reply(b"VALUE n 0 1\r\n6\r\nEND\r\n"),
                reply(b"VALUE n 0 1\r\n5\r\nEND\r\n"),
                "memcached increments before it checks the opaque; ringcache refuses the \
                 request whole",
            ),
        case("meta E sets the CAS")
            .ringcache_only("the E flag is newer than memcached 1.6.18")
            .row(b"ms e 1 E12345\r\nx\r\n", b"HD\r\n")
            .row(b"mg e c\r\n", b"HD c12345\r\n")
            .row(b"gets e\r\n", b"VALUE e 0 1 12345\r\nx\r\nEND\r\n")
            .row(b"ms e 1 C12345 E777\r\ny\r\n", b"HD\r\n")
            .row(b"mg e c v\r\n", b"VA 1 c777\r\ny\r\n"),
        case("md x drops the value and keeps the item")
            .ringcache_only("md x is newer than memcached 1.6.18")
            .row(b"ms x 3 T0\r\nabc\r\n", b"HD\r\n")
            .row(b"md x x\r\n", b"HD\r\n")
            .row(b"mg x v s\r\n", b"VA 0 s0\r\n\r\n")
            .row(b"md x x q\r\nmn\r\n", b"MN\r\n")
            .row(b"md nope x\r\n", b"NF\r\n"),
        case("the binary protocol is not spoken")
            .ringcache_only("memcached answers its binary protocol; ringcache speaks text and meta only")
            .closes(b"\x80\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
        case("a get line over 1 MiB closes the connection")
            .ringcache_only("memcached buffers a multi-get line without limit; ringcache caps it at 1 MiB")
            .closes(cat(&[b"get ", &b"k ".repeat(600 * 1024)])),
    ]
}

/// `get k0 k1 ... k599`, well over 2048 bytes, without its newline.
fn long_get() -> Vec<u8> {
    let mut line = b"get".to_vec();
    for i in 0..600 {
        line.extend_from_slice(format!(" k{i}").as_bytes());
    }
    line
}

/// The setup a few cases assume: `long_get` hits k0.
fn prepare(conn: &mut Conn, case: &Case) -> Result<(), String> {
    conn.try_send(b"flush_all\r\n")?;
    conn.check(b"OK\r\n")?;
    if case.name.starts_with("a long get line") {
        conn.try_send(b"set k0 0 0 1\r\nz\r\n")?;
        conn.check(b"STORED\r\n")?;
    }
    Ok(())
}

fn recording() -> bool {
    std::env::var_os("PROTOCOL_TABLE_RECORD").is_some()
}

/// Runs every case meant for `server` and returns one message per failing case.
fn run_table(server: &Server, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    let ringcache = server.name == "ringcache";
    for case in cases {
        if case.ringcache_only.is_some() && !ringcache {
            continue;
        }
        let mut conn = server.conn();
        if let Err(e) = prepare(&mut conn, case) {
            failures.push(format!("{}: setup: {e}", case.name));
            continue;
        }
        let mut open = true;
        for (i, row) in case.rows.iter().enumerate() {
            let want = if ringcache {
                &row.ringcache
            } else {
                &row.memcached
            };
            let mut sent = Ok(());
            for (j, part) in row.send.iter().enumerate() {
                if j > 0 {
                    std::thread::sleep(Duration::from_millis(100));
                }
                sent = sent.and_then(|()| conn.try_send(part));
            }
            if recording() {
                let got = conn.read_quiet(Duration::from_millis(300));
                println!("[{}] {} #{}: {}", server.name, case.name, i + 1, show(&got));
                if let Want::Reply(w) = want {
                    // Keep `{n:name}` captures working for the rows that follow.
                    conn.replay(&got, w);
                }
                continue;
            }
            let result = match want {
                Want::Reply(w) => sent.and_then(|()| conn.check(w)),
                Want::Closed => {
                    open = false;
                    // Writing to a connection the server already closed may fail; the
                    // close is what this row is about.
                    conn.check_closed()
                }
            };
            if let Err(e) = result {
                let sent: Vec<u8> = row.send.concat();
                failures.push(format!(
                    "{} (row {}): sent {}\n{e}",
                    case.name,
                    i + 1,
                    show(&sent)
                ));
                open = false;
                break;
            }
        }
        if open && !recording() {
            // Nothing unexpected may follow the last row.
            if let Err(e) = conn
                .try_send(b"mn\r\n")
                .and_then(|()| conn.check(b"MN\r\n"))
            {
                failures.push(format!("{} (after the last row): {e}", case.name));
            }
        }
    }
    failures
}

fn assert_table(server: &Server) {
    let cases = cases();
    let failures = run_table(server, &cases);
    assert!(
        failures.is_empty(),
        "{} of {} cases failed against {}:\n\n{}\n{}",
        failures.len(),
        cases.len(),
        server.name,
        failures.join("\n\n"),
        server.stderr_tail()
    );
}

#[test]
fn table_against_memcached() {
    let Some(server) = memcached_or_skip() else {
        return;
    };
    assert_table(&server);
}

#[test]
fn table_against_ringcache_node() {
    assert_table(&spawn_node(&[]));
}

#[test]
fn table_is_well_formed() {
    let cases = cases();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");
    let rows: usize = cases.iter().map(|c| c.rows.len()).sum();
    let only: usize = cases
        .iter()
        .filter(|c| c.ringcache_only.is_some())
        .map(|c| c.rows.len())
        .sum();
    let differs = cases
        .iter()
        .flat_map(|c| &c.rows)
        .filter(|r| r.why.is_some())
        .count();
    for c in &cases {
        assert!(!c.rows.is_empty(), "{} has no rows", c.name);
        for r in &c.rows {
            // Only `differs` rows may expect different things of the two servers.
            let same = format!("{:?}", r.memcached) == format!("{:?}", r.ringcache);
            assert_eq!(
                same,
                r.why.is_none(),
                "{}: a difference needs a reason",
                c.name
            );
        }
    }
    println!(
        "{} cases, {rows} rows: {only} ringcache-only, {differs} differing on purpose",
        cases.len()
    );
}

// ---------------------------------------------------------------------------------------------
// One pipelined stream, cut into reads at every byte and at random points.
// ---------------------------------------------------------------------------------------------

fn stream() -> (Vec<u8>, Vec<u8>) {
    let send = b"flush_all\r\n\
        set a 0 0 5\r\nhe\r\nl\r\n\
        get a b\r\n\
        bogus\r\n\
        set b 0 0 2\r\nabcd\r\n\
        ms c 2 T0 q\r\nhi\r\n\
        mg c v k Ox\r\n\
        ms d 3 !\r\nxyz\r\n\
        incr a 1\r\n\
        set n 0 0 1 noreply\r\n5\r\n\
        incr n 10\r\n\
        gets n\r\n\
        delete n noreply\r\n\
        mg n v q\r\n\
        mn\r\n";
    let want = b"OK\r\n\
        STORED\r\n\
        VALUE a 0 5\r\nhe\r\nl\r\nEND\r\n\
        ERROR\r\n\
        CLIENT_ERROR bad data chunk\r\nERROR\r\n\
        VA 2 kc Ox\r\nhi\r\n\
        CLIENT_ERROR invalid flag\r\n\
        CLIENT_ERROR cannot increment or decrement non-numeric value\r\n\
        15\r\n\
        VALUE n 0 2 {n}\r\n15\r\nEND\r\n\
        MN\r\n";
    (send.to_vec(), want.to_vec())
}

/// Sends `send` in pieces ending at `cuts`, pausing between them so the server reads each piece
/// on its own, then checks the whole reply.
fn send_cut(server: &Server, send: &[u8], cuts: &[usize], want: &[u8]) -> Result<(), String> {
    let mut conn = server.conn();
    let mut last = 0;
    for &cut in cuts.iter().chain([send.len()].iter()) {
        if cut > last {
            conn.try_send(&send[last..cut])?;
            std::thread::sleep(Duration::from_millis(2));
            last = cut;
        }
    }
    conn.check(want)
}

fn assert_split_streams(server: &Server) {
    let (send, want) = stream();
    let mut failures = Vec::new();
    for cut in 1..send.len() {
        if let Err(e) = send_cut(server, &send, &[cut], &want) {
            failures.push(format!("cut at byte {cut}: {e}"));
        }
    }
    // Many cuts at once, and a value over the item limit in the middle.
    let mut big = b"flush_all\r\nset k 0 0 3\r\nold\r\nset k 0 0 1100000\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'q', 1_100_000));
    big.extend_from_slice(b"\r\nget k\r\n");
    big.extend_from_slice(&send[b"flush_all\r\n".len()..]);
    let mut big_want =
        b"OK\r\nSTORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n".to_vec();
    big_want.extend_from_slice(&want[b"OK\r\n".len()..]);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..20 {
        let (s, w) = if round % 4 == 3 {
            (&big, &big_want)
        } else {
            (&send, &want)
        };
        let mut cuts: Vec<usize> = (0..2 + rng.below(14)).map(|_| rng.below(s.len())).collect();
        cuts.sort_unstable();
        if let Err(e) = send_cut(server, s, &cuts, w) {
            failures.push(format!("round {round}, cuts {cuts:?}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} splits answered differently by {}:\n{}",
        failures.len(),
        server.name,
        failures.join("\n")
    );
}

#[test]
fn split_streams_against_memcached() {
    let Some(server) = memcached_or_skip() else {
        return;
    };
    assert_split_streams(&server);
}

#[test]
fn split_streams_against_ringcache_node() {
    assert_split_streams(&spawn_node(&[]));
}
