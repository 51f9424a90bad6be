//! Table-driven tests of the protocol module: every verb, every argument check and every fault
//! the request parser knows, the number and base64 rules it shares with memcached 1.6, the
//! codecs' framing, and the reply encoder and parser.
//!
//! Expected messages are memcached 1.6.18's answers (checked against the real server by
//! `tests/protocol_table.rs` in the root crate); rows where ringcache deliberately differs say so.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::meta::MetaStatus;
use super::meta::{decode_key, MetaCmd, MetaFlags, MetaRequest};
use super::number::{parse_i32, parse_u32, parse_u64, safe_strtol, safe_strtoul, safe_strtoull};
use super::parse::{item_size, parse, Limits, Step};
use super::response::{MetaResponse, Response, Value};
use super::*;
use crate::error::Error;

const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";
const DELETE_USAGE: &str = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";
const BAD_EXPTIME: &str = "CLIENT_ERROR invalid exptime argument";
const BAD_DELTA: &str = "CLIENT_ERROR invalid numeric delta argument";
const BAD_TOKEN: &str = "CLIENT_ERROR bad token in command line format";
const MD_MA_FLAG: &str = "CLIENT_ERROR invalid or duplicate flag";
const OPAQUE_LONG: &str = "CLIENT_ERROR opaque token too long";
const TOO_LARGE: &str = "SERVER_ERROR object too large for cache";

/// The largest value memcached 1.6 takes for a 1-byte key with zero flags under the default
/// 1 MiB item limit (48-byte item header + 8 CAS + key + NUL + value + `\r\n`).
const MAX_VALUE_K: usize = 1024 * 1024 - 57 - 1 - 2;

fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}

fn key(len: usize) -> Vec<u8> {
    vec![b'k'; len]
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Parses one step from `input` with the default limits; returns it and the unconsumed bytes.
fn step(input: &[u8]) -> (Result<Option<Step>, Error>, Vec<u8>) {
    let mut buf = BytesMut::from(input);
    let r = parse(&mut buf, &Limits::default());
    (r, buf.to_vec())
}

/// Parses one item that must be complete; returns it and what is left of the input.
fn item(input: &[u8]) -> (Result<Request, Fault>, Vec<u8>) {
    match step(input) {
        (Ok(Some(Step::Item(item))), rest) => (item, rest),
        (other, _) => panic!(
            "{:?}: expected a complete item, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Faults: (input, expected message, noreply). Each input is a single line; the fault must consume
// exactly that line and leave a following "mn\r\n" untouched.
// ---------------------------------------------------------------------------------------------

fn fault_rows() -> Vec<(Vec<u8>, &'static str, bool)> {
    let k251 = key(251);
    let opaque33 = cat(&[b"O", &[b'1'; 32]]);
    let mut rows: Vec<(Vec<u8>, &'static str, bool)> = vec![
        // Unknown commands and empty lines.
        (b"bogus\r\n".to_vec(), Fault::ERROR, false),
        (b"\r\n".to_vec(), Fault::ERROR, false),
        (b"\n".to_vec(), Fault::ERROR, false),
        (b"x\r\n".to_vec(), Fault::ERROR, false),
        (b"   \r\n".to_vec(), Fault::ERROR, false),
        (b"\x00get k\r\n".to_vec(), Fault::ERROR, false),
        (b"ge\x00t k\r\n".to_vec(), Fault::ERROR, false),
        (b"GETS k\r\n".to_vec(), Fault::ERROR, false),
        (b"sets k 0 0 1\r\n".to_vec(), Fault::ERROR, false),
        (b"set / HTTP/1.1\r\n".to_vec(), Fault::ERROR, false),
        // `slabs automove` (memcached 1.6.18 on the wire).
        (b"slabs\r\n".to_vec(), Fault::ERROR, false),
        (b"slabs foo\r\n".to_vec(), Fault::ERROR, false),
        (b"slabs automove\r\n".to_vec(), Fault::ERROR, false),
        (b"slabs reassign 1 2\r\n".to_vec(), Fault::ERROR, false),
        (b"slabs automove 3\r\n".to_vec(), Fault::ERROR, false),
        (
            b"slabs automove ratio 0.5\r\n".to_vec(),
            Fault::ERROR,
            false,
        ),
        (b"slabs automove 3 noreply\r\n".to_vec(), Fault::ERROR, true),
        (b"slabs automove x\r\n".to_vec(), Fault::BAD_FORMAT, false),
        (b"slabs automove -1\r\n".to_vec(), Fault::BAD_FORMAT, false),
        (
            b"slabs automove noreply\r\n".to_vec(),
            Fault::BAD_FORMAT,
            true,
        ),
        (
            b"averyveryverylongcommandname k\r\n".to_vec(),
            Fault::ERROR,
            false,
        ),
        // Retrieval.
        (b"get\r\n".to_vec(), Fault::ERROR, false),
        (b"gets\r\n".to_vec(), Fault::ERROR, false),
        (b"gat\r\n".to_vec(), Fault::ERROR, false),
        (b"gats\r\n".to_vec(), Fault::ERROR, false),
        (b"bget\r\n".to_vec(), Fault::ERROR, false),
        (b"gat abc k\r\n".to_vec(), BAD_EXPTIME, false),
        (b"gats 1x k\r\n".to_vec(), BAD_EXPTIME, false),
        (cat(&[b"get ", &k251, b"\r\n"]), BAD_FORMAT, false),
        (cat(&[b"get a ", &k251, b" b\r\n"]), BAD_FORMAT, false),
        (cat(&[b"gat 10 ", &k251, b"\r\n"]), BAD_FORMAT, false),
        // Storage: token counts.
        (b"set k 0 0\r\n".to_vec(), Fault::ERROR, false),
        (b"set\r\n".to_vec(), Fault::ERROR, false),
        (b"add k 0 0 1 noreply x\r\n".to_vec(), Fault::ERROR, false),
        (b"replace k 0\r\n".to_vec(), Fault::ERROR, false),
        (b"append k\r\n".to_vec(), Fault::ERROR, false),
        (b"prepend k 0 0 1 2 3\r\n".to_vec(), Fault::ERROR, false),
        (b"cas k 0 0 1\r\n".to_vec(), Fault::ERROR, false),
        (b"cas k 0 0 1 2 noreply x\r\n".to_vec(), Fault::ERROR, false),
        // Storage: arguments (no data block is swallowed for these, as in memcached).
        (cat(&[b"set ", &k251, b" 0 0 1\r\n"]), BAD_FORMAT, false),
        (b"set k abc 0 1\r\n".to_vec(), BAD_FORMAT, false),
        (b"set k -1 0 1\r\n".to_vec(), BAD_FORMAT, false),
        (b"set k 0x1 0 1\r\n".to_vec(), BAD_FORMAT, false),
        (
            b"set k 18446744073709551616 0 1\r\n".to_vec(),
            BAD_FORMAT,
            false,
        ),
        (b"set k 0 abc 1\r\n".to_vec(), BAD_FORMAT, false),
        (
            b"set k 0 9223372036854775808 1\r\n".to_vec(),
            BAD_FORMAT,
            false,
        ),
        (b"set k 0 0 abc\r\n".to_vec(), BAD_FORMAT, false),
        (b"set k 0 0 -1\r\n".to_vec(), BAD_FORMAT, false),
        (b"set k 0 0 1.5\r\n".to_vec(), BAD_FORMAT, false),
        (b"set k 0 0 2147483646\r\n".to_vec(), BAD_FORMAT, false),
        (b"set k 0 0 2147483647\r\n".to_vec(), BAD_FORMAT, false),
        (b"set k 0 0 4294967295\r\n".to_vec(), BAD_FORMAT, false),
        (b"cas k 0 0 1 abc\r\n".to_vec(), BAD_FORMAT, false),
        (b"cas k 0 0 1 -1\r\n".to_vec(), BAD_FORMAT, false),
        (b"set k abc 0 1 noreply\r\n".to_vec(), BAD_FORMAT, true),
        (b"cas k 0 0 -1 1 noreply\r\n".to_vec(), BAD_FORMAT, true),
        // Arithmetic.
        (b"incr\r\n".to_vec(), Fault::ERROR, false),
        (b"incr k\r\n".to_vec(), Fault::ERROR, false),
        (b"decr k 1 noreply x\r\n".to_vec(), Fault::ERROR, false),
        (b"incr k abc\r\n".to_vec(), BAD_DELTA, false),
        (b"incr k -1\r\n".to_vec(), BAD_DELTA, false),
        (
            b"incr k 18446744073709551616\r\n".to_vec(),
            BAD_DELTA,
            false,
        ),
        (b"decr k 1a\r\n".to_vec(), BAD_DELTA, false),
        (b"decr k abc noreply\r\n".to_vec(), BAD_DELTA, true),
        (cat(&[b"incr ", &k251, b" 1\r\n"]), BAD_FORMAT, false),
        (cat(&[b"decr ", &k251, b" 1 noreply\r\n"]), BAD_FORMAT, true),
        // Touch.
        (b"touch k\r\n".to_vec(), Fault::ERROR, false),
        (b"touch k 1 noreply x\r\n".to_vec(), Fault::ERROR, false),
        (b"touch k abc\r\n".to_vec(), BAD_EXPTIME, false),
        (b"touch k abc noreply\r\n".to_vec(), BAD_EXPTIME, true),
        (cat(&[b"touch ", &k251, b" 1\r\n"]), BAD_FORMAT, false),
        // Delete.
        (b"delete\r\n".to_vec(), Fault::ERROR, false),
        (b"delete a b c d\r\n".to_vec(), Fault::ERROR, false),
        (b"delete k 5\r\n".to_vec(), DELETE_USAGE, false),
        (b"delete k 00\r\n".to_vec(), DELETE_USAGE, false),
        (b"delete k 0 0\r\n".to_vec(), DELETE_USAGE, false),
        (b"delete k noreply 0\r\n".to_vec(), DELETE_USAGE, false),
        (b"delete k 5 noreply\r\n".to_vec(), DELETE_USAGE, true),
        (cat(&[b"delete ", &k251, b"\r\n"]), BAD_FORMAT, false),
        (cat(&[b"delete ", &k251, b" noreply\r\n"]), BAD_FORMAT, true),
        // flush_all, verbosity, cache_memlimit.
        (b"flush_all abc\r\n".to_vec(), BAD_EXPTIME, false),
        (b"flush_all abc noreply\r\n".to_vec(), BAD_EXPTIME, true),
        (b"flush_all 1 2 3\r\n".to_vec(), Fault::ERROR, false),
        (b"verbosity\r\n".to_vec(), Fault::ERROR, false),
        (b"verbosity 1 2 3\r\n".to_vec(), Fault::ERROR, false),
        (b"verbosity abc\r\n".to_vec(), BAD_FORMAT, false),
        (b"verbosity noreply\r\n".to_vec(), BAD_FORMAT, true),
        (b"verbosity -1\r\n".to_vec(), BAD_FORMAT, false),
        (b"cache_memlimit\r\n".to_vec(), Fault::ERROR, false),
        (b"cache_memlimit 1 2 3\r\n".to_vec(), Fault::ERROR, false),
        (b"cache_memlimit abc\r\n".to_vec(), Fault::ERROR, false),
        (
            b"cache_memlimit abc noreply\r\n".to_vec(),
            Fault::ERROR,
            true,
        ),
        // Meta: verbs and keys.
        (b"mz k\r\n".to_vec(), Fault::ERROR, false),
        (b"mg\r\n".to_vec(), Fault::ERROR, false),
        (b"md\r\n".to_vec(), Fault::ERROR, false),
        (b"ma\r\n".to_vec(), Fault::ERROR, false),
        (b"ms\r\n".to_vec(), Fault::ERROR, false),
        (b"ms k\r\n".to_vec(), BAD_FORMAT, false),
        (b"ms k abc\r\n".to_vec(), BAD_FORMAT, false),
        (b"ms k -1\r\n".to_vec(), BAD_FORMAT, false),
        (b"ms k 2147483646\r\n".to_vec(), BAD_FORMAT, false),
        (cat(&[b"ms ", &k251, b" 1\r\n"]), BAD_FORMAT, false),
        (cat(&[b"mg ", &k251, b" v\r\n"]), BAD_FORMAT, false),
        (cat(&[b"md ", &k251, b"\r\n"]), BAD_FORMAT, false),
        (cat(&[b"ma ", &k251, b"\r\n"]), BAD_FORMAT, false),
        (b"me\r\n".to_vec(), BAD_FORMAT, false),
        (cat(&[b"me ", &k251, b"\r\n"]), BAD_FORMAT, false),
        (b"me !!!! b\r\n".to_vec(), BAD_FORMAT, false),
        // Meta: flags.
        (
            b"mg k v v\r\n".to_vec(),
            "CLIENT_ERROR duplicate flag",
            false,
        ),
        (
            b"mg k \xff\r\n".to_vec(),
            "CLIENT_ERROR duplicate flag",
            false,
        ),
        (
            b"mg k Tabc v v\r\n".to_vec(),
            "CLIENT_ERROR duplicate flag",
            false,
        ),
        (b"mg k !\r\n".to_vec(), "CLIENT_ERROR invalid flag", false),
        (
            b"mg k v Tabc !\r\n".to_vec(),
            "CLIENT_ERROR invalid flag",
            false,
        ),
        (b"mg k Tabc\r\n".to_vec(), BAD_TOKEN, false),
        (b"mg k N\r\n".to_vec(), BAD_TOKEN, false),
        (b"mg k R1x\r\n".to_vec(), BAD_TOKEN, false),
        (b"mg k C-1\r\n".to_vec(), BAD_TOKEN, false),
        (b"mg k F-1\r\n".to_vec(), BAD_TOKEN, false),
        (
            b"mg k MXY\r\n".to_vec(),
            "CLIENT_ERROR incorrect length for M token",
            false,
        ),
        (
            b"mg k M\r\n".to_vec(),
            "CLIENT_ERROR incorrect length for M token",
            false,
        ),
        (
            b"mg k Jx\r\n".to_vec(),
            "CLIENT_ERROR invalid numeric initial value",
            false,
        ),
        (
            b"mg k Dx\r\n".to_vec(),
            "CLIENT_ERROR invalid numeric delta value",
            false,
        ),
        (cat(&[b"mg k v ", &opaque33, b"\r\n"]), OPAQUE_LONG, false),
        (cat(&[b"mg k Tabc ", &opaque33, b"\r\n"]), BAD_TOKEN, false),
        (
            b"mg Zm9=v b v\r\n".to_vec(),
            "CLIENT_ERROR error decoding key",
            false,
        ),
        (
            b"mg !!!! b\r\n".to_vec(),
            "CLIENT_ERROR error decoding key",
            false,
        ),
        (
            b"mg ==== b\r\n".to_vec(),
            "CLIENT_ERROR error decoding key",
            false,
        ),
        (b"md k !\r\n".to_vec(), MD_MA_FLAG, false),
        (b"md k q q\r\n".to_vec(), MD_MA_FLAG, false),
        (b"md k Tabc\r\n".to_vec(), MD_MA_FLAG, false),
        (b"md !!!! b\r\n".to_vec(), MD_MA_FLAG, false),
        (cat(&[b"md k ", &opaque33, b"\r\n"]), OPAQUE_LONG, false),
        (
            b"ma k MX\r\n".to_vec(),
            "CLIENT_ERROR invalid mode for ma M token",
            false,
        ),
        (
            b"ma k Ms\r\n".to_vec(),
            "CLIENT_ERROR invalid mode for ma M token",
            false,
        ),
        (b"ma k MXY\r\n".to_vec(), MD_MA_FLAG, false),
        (b"ma k Dabc\r\n".to_vec(), MD_MA_FLAG, false),
        (b"ma k Jabc\r\n".to_vec(), MD_MA_FLAG, false),
        (b"ma k v v\r\n".to_vec(), MD_MA_FLAG, false),
        (cat(&[b"ma k ", &opaque33, b"\r\n"]), OPAQUE_LONG, false),
        // memcached switches on the mode before it checks the opaque's length.
        (
            cat(&[b"ma k MX ", &opaque33, b"\r\n"]),
            "CLIENT_ERROR invalid mode for ma M token",
            false,
        ),
        // Ringcache refuses keys with control bytes (memcached takes them): a deliberate difference.
        (b"get a\x01b\r\n".to_vec(), BAD_FORMAT, false),
        (b"get a\tb\r\n".to_vec(), BAD_FORMAT, false),
        (b"get k\r\r\n".to_vec(), BAD_FORMAT, false),
        (b"set a\x7f 0 0 1\r\n".to_vec(), BAD_FORMAT, false),
        (b"incr a\x01 1 noreply\r\n".to_vec(), BAD_FORMAT, true),
        (b"touch a\x01 1\r\n".to_vec(), BAD_FORMAT, false),
        (b"delete a\x01\r\n".to_vec(), BAD_FORMAT, false),
        (b"mg a\x01 v\r\n".to_vec(), BAD_FORMAT, false),
        (b"me a\x01\r\n".to_vec(), BAD_FORMAT, false),
    ];
    // Too many meta tokens: memcached counts verb, key, flags and its terminal token, max 20.
    let flags19: Vec<u8> = b"abcdefghijklmnopqrs"
        .iter()
        .flat_map(|&c| [b' ', c])
        .collect();
    let flags18 = &flags19[..36];
    rows.push((
        cat(&[b"mg k", flags18, b"\r\n"]),
        "CLIENT_ERROR options flags are too long",
        false,
    ));
    rows.push((
        cat(&[b"md k", flags18, b"\r\n"]),
        "CLIENT_ERROR options flags too long",
        false,
    ));
    rows.push((
        cat(&[b"ma k", flags18, b"\r\n"]),
        "CLIENT_ERROR options flags too long",
        false,
    ));
    rows.push((
        cat(&[b"ms k 1", &flags19[..34], b"\r\n"]),
        "CLIENT_ERROR options flags too long",
        false,
    ));
    rows
}

#[test]
fn faults_answer_memcacheds_line_and_consume_exactly_the_line() {
    for (line, message, noreply) in fault_rows() {
        let input = cat(&[&line, b"mn\r\n"]);
        let (got, rest) = item(&input);
        let shown = String::from_utf8_lossy(&line);
        let fault = got.expect_err(&format!("{shown:?} must be refused"));
        assert_eq!(fault.message, message, "{shown:?}");
        assert_eq!(fault.noreply, noreply, "{shown:?} noreply");
        assert_eq!(fault.unlink, None, "{shown:?} unlink");
        assert_eq!(rest, b"mn\r\n", "{shown:?} must consume its line only");
    }
}

#[test]
fn fault_kinds_are_low_cardinality_labels() {
    let table = [
        (Fault::ERROR, "unknown_command"),
        (Fault::BAD_FORMAT, "bad_format"),
        (DELETE_USAGE, "bad_format"),
        (Fault::BAD_CHUNK, "bad_data_chunk"),
        (Fault::TOO_LARGE, "too_large"),
        ("SERVER_ERROR out of memory", "other"),
    ];
    for (message, kind) in table {
        assert_eq!(Fault::new(message).kind(), kind, "{message}");
    }
}

// ---------------------------------------------------------------------------------------------
// Refusals that must still swallow a data block: (input line, message, noreply, bytes, unlink).
// ---------------------------------------------------------------------------------------------

/// (request line, message, noreply, bytes to swallow, key to unlink).
type SwallowRow = (Vec<u8>, &'static str, bool, usize, Option<&'static [u8]>);

#[test]
fn refused_storage_swallows_its_data_block() {
    let opaque33 = cat(&[b"O", &[b'1'; 32]]);
    let big = MAX_VALUE_K + 1;
    let big_s = big.to_string();
    let big = big + 2;
    let rows: Vec<SwallowRow> = vec![
        // Too large: memcached drops the old value for `set` (and `ms`) only.
        (
            cat(&[b"set k 0 0 ", big_s.as_bytes(), b"\r\n"]),
            TOO_LARGE,
            false,
            big,
            Some(b"k"),
        ),
        (
            cat(&[b"set k 0 0 ", big_s.as_bytes(), b" noreply\r\n"]),
            TOO_LARGE,
            true,
            big,
            Some(b"k"),
        ),
        (
            cat(&[b"add k 0 0 ", big_s.as_bytes(), b"\r\n"]),
            TOO_LARGE,
            false,
            big,
            None,
        ),
        (
            cat(&[b"cas k 0 0 ", big_s.as_bytes(), b" 1\r\n"]),
            TOO_LARGE,
            false,
            big,
            None,
        ),
        (
            cat(&[b"append k 0 0 ", big_s.as_bytes(), b" noreply\r\n"]),
            TOO_LARGE,
            true,
            big,
            None,
        ),
        // Non-zero client flags take 4 more bytes of the item.
        (
            format!("set k 1 0 {}\r\n", MAX_VALUE_K - 3).into_bytes(),
            TOO_LARGE,
            false,
            MAX_VALUE_K - 1,
            Some(b"k"),
        ),
        (
            cat(&[b"ms k ", big_s.as_bytes(), b"\r\n"]),
            TOO_LARGE,
            false,
            big,
            Some(b"k"),
        ),
        (
            cat(&[b"ms k ", big_s.as_bytes(), b" q\r\n"]),
            TOO_LARGE,
            false,
            big,
            Some(b"k"),
        ),
        (
            format!("ms k {} F1\r\n", MAX_VALUE_K - 3).into_bytes(),
            TOO_LARGE,
            false,
            MAX_VALUE_K - 1,
            Some(b"k"),
        ),
        // ms flag errors come after the length is known, so the block is swallowed.
        (
            b"ms k 3 v v\r\n".to_vec(),
            "CLIENT_ERROR duplicate flag",
            false,
            5,
            None,
        ),
        (
            b"ms k 3 !\r\n".to_vec(),
            "CLIENT_ERROR invalid flag",
            false,
            5,
            None,
        ),
        (b"ms k 3 Tabc q\r\n".to_vec(), BAD_TOKEN, false, 5, None),
        (
            b"ms k 3 MX\r\n".to_vec(),
            "CLIENT_ERROR invalid mode for ms M token",
            false,
            5,
            None,
        ),
        (
            cat(&[b"ms k 3 MX ", &opaque33, b"\r\n"]),
            "CLIENT_ERROR invalid mode for ms M token",
            false,
            5,
            None,
        ),
        (
            cat(&[b"ms k 3 ", &opaque33, b"\r\n"]),
            OPAQUE_LONG,
            false,
            5,
            None,
        ),
        (
            b"ms Zm9 3 b\r\n".to_vec(),
            "CLIENT_ERROR error decoding key",
            false,
            5,
            None,
        ),
        // Ringcache only: a control byte in the key.
        (b"ms a\x01 3\r\n".to_vec(), BAD_FORMAT, false, 5, None),
    ];
    for (line, message, noreply, n, unlink) in rows {
        let shown = String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned();
        let (got, rest) = step(&cat(&[&line, b"xyz"]));
        match got {
            Ok(Some(Step::Swallow(fault, len))) => {
                assert_eq!(fault.message, message, "{shown:?}");
                assert_eq!(fault.noreply, noreply, "{shown:?} noreply");
                assert_eq!(fault.unlink.as_deref(), unlink, "{shown:?} unlink");
                assert_eq!(len, n, "{shown:?} swallow length");
                assert_eq!(rest, b"xyz", "{shown:?} consumes only its line");
            }
            other => panic!("{shown:?}: expected a swallow, got {other:?}"),
        }
    }
}

#[test]
fn item_size_matches_memcacheds_accounting() {
    assert_eq!(item_size(1, MAX_VALUE_K, 0), 1024 * 1024);
    assert_eq!(item_size(1, MAX_VALUE_K - 4, 7), 1024 * 1024);
    assert_eq!(item_size(250, 0, 0), 57 + 250 + 2);
    // The largest value is accepted, one more byte is not.
    let ok = format!("set k 0 0 {MAX_VALUE_K}\r\n");
    let mut input = ok.into_bytes();
    input.extend(std::iter::repeat_n(b'x', MAX_VALUE_K));
    input.extend_from_slice(b"\r\n");
    let (got, rest) = item(&input);
    assert!(matches!(got, Ok(Request::Store { ref value, .. }) if value.len() == MAX_VALUE_K));
    assert!(rest.is_empty());
    // A smaller limit moves the boundary with it.
    let limits = Limits { max_item_size: 100 };
    let fits = 100 - 57 - 1 - 2;
    let mut buf = BytesMut::from(format!("set k 0 0 {}\r\n", fits + 1).as_bytes());
    assert!(matches!(
        parse(&mut buf, &limits),
        Ok(Some(Step::Swallow(_, n))) if n == fits + 3
    ));
    let mut buf = BytesMut::from(format!("set k 0 0 {fits}\r\n").as_bytes());
    buf.extend(std::iter::repeat_n(b'v', fits));
    buf.extend_from_slice(b"\r\n");
    assert!(matches!(
        parse(&mut buf, &limits),
        Ok(Some(Step::Item(Ok(_))))
    ));
}

// ---------------------------------------------------------------------------------------------
// Accepted requests: (input, expected request). Each input must be consumed entirely.
// ---------------------------------------------------------------------------------------------

fn get(cmd: GetCmd, exptime: Option<i64>, keys: &[&'static [u8]]) -> Request {
    Request::Get {
        cmd,
        exptime,
        keys: keys.iter().map(|k| b(k)).collect(),
    }
}

fn store(cmd: StoreCmd, key: &'static [u8], flags: u32, exptime: i64, cas: u64) -> Request {
    Request::Store {
        cmd,
        key: b(key),
        flags,
        exptime,
        cas,
        value: b(b"a"),
        noreply: false,
    }
}

fn with_value(mut r: Request, v: &'static [u8], nr: bool) -> Request {
    if let Request::Store { value, noreply, .. } = &mut r {
        *value = b(v);
        *noreply = nr;
    }
    r
}

fn arith(cmd: ArithCmd, delta: u64, noreply: bool) -> Request {
    Request::Arith {
        cmd,
        key: b(b"k"),
        delta,
        noreply,
    }
}

fn accepted_rows() -> Vec<(Vec<u8>, Request)> {
    use ArithCmd::{Decr, Incr};
    use GetCmd::{Gat, Gats, Get, Gets};
    use StoreCmd::{Add, Append, Cas, Prepend, Replace, Set};
    let k250: &'static [u8] = Box::leak(key(250).into_boxed_slice());
    vec![
        // Retrieval.
        (b"get a\r\n".to_vec(), get(Get, None, &[b"a"])),
        (b"get a\n".to_vec(), get(Get, None, &[b"a"])),
        (
            b"get a b c\r\n".to_vec(),
            get(Get, None, &[b"a", b"b", b"c"]),
        ),
        (b"get  a   b \r\n".to_vec(), get(Get, None, &[b"a", b"b"])),
        (b"gets a b\r\n".to_vec(), get(Gets, None, &[b"a", b"b"])),
        (b"bget a\r\n".to_vec(), get(Get, None, &[b"a"])),
        (
            b"gat 10 a b\r\n".to_vec(),
            get(Gat, Some(10), &[b"a", b"b"]),
        ),
        (b"gats -1 a\r\n".to_vec(), get(Gats, Some(-1), &[b"a"])),
        (b"gat 10\r\n".to_vec(), get(Gat, Some(10), &[])),
        (b"get a\x00b c\r\n".to_vec(), get(Get, None, &[b"a"])),
        (cat(&[b"get ", k250, b"\r\n"]), get(Get, None, &[k250])),
        (
            b"get caf\xc3\xa9\r\n".to_vec(),
            get(Get, None, &[b"caf\xc3\xa9"]),
        ),
        // Storage, each verb.
        (b"set k 5 0 1\r\na\r\n".to_vec(), store(Set, b"k", 5, 0, 0)),
        (
            b"add k 0 10 1\r\na\r\n".to_vec(),
            store(Add, b"k", 0, 10, 0),
        ),
        (
            b"replace k 0 -1 1\r\na\r\n".to_vec(),
            store(Replace, b"k", 0, -1, 0),
        ),
        (
            b"append k 0 0 1\r\na\r\n".to_vec(),
            store(Append, b"k", 0, 0, 0),
        ),
        (
            b"prepend k 0 0 1\r\na\r\n".to_vec(),
            store(Prepend, b"k", 0, 0, 0),
        ),
        (
            b"cas k 0 0 1 99\r\na\r\n".to_vec(),
            store(Cas, b"k", 0, 0, 99),
        ),
        (b"set k 0 0 1\na\r\n".to_vec(), store(Set, b"k", 0, 0, 0)),
        (
            b"set k 4294967295 0 1\r\na\r\n".to_vec(),
            store(Set, b"k", u32::MAX, 0, 0),
        ),
        (
            b"cas k 0 0 1 18446744073709551615\r\na\r\n".to_vec(),
            store(Cas, b"k", 0, 0, u64::MAX),
        ),
        (
            cat(&[b"set ", k250, b" 0 0 1\r\na\r\n"]),
            store(Set, k250, 0, 0, 0),
        ),
        // A sixth token that is not "noreply" is ignored, as memcached does.
        (
            b"set k 0 0 1 extra\r\na\r\n".to_vec(),
            store(Set, b"k", 0, 0, 0),
        ),
        (
            b"set k 0 0 1 noreply\r\na\r\n".to_vec(),
            with_value(store(Set, b"k", 0, 0, 0), b"a", true),
        ),
        (
            b"cas k 0 0 1 7 noreply\r\na\r\n".to_vec(),
            with_value(store(Cas, b"k", 0, 0, 7), b"a", true),
        ),
        (
            b"set k 0 0 0\r\n\r\n".to_vec(),
            with_value(store(Set, b"k", 0, 0, 0), b"", false),
        ),
        (
            b"set k 0 0 4\r\na\r\nb\r\n".to_vec(),
            with_value(store(Set, b"k", 0, 0, 0), b"a\r\nb", false),
        ),
        (
            b"set k 0 0 3\r\n\x00\xff\n\r\n".to_vec(),
            with_value(store(Set, b"k", 0, 0, 0), b"\x00\xff\n", false),
        ),
        // A NUL ends the line, as memcached treats it as a C string.
        (
            b"set k 0 0 1\x00junk\r\na\r\n".to_vec(),
            store(Set, b"k", 0, 0, 0),
        ),
        // memcached's number helpers, quirks included.
        (b"set k -0 0 1\r\na\r\n".to_vec(), store(Set, b"k", 0, 0, 0)),
        (
            b"set k +7 +9 +1\r\na\r\n".to_vec(),
            store(Set, b"k", 7, 9, 0),
        ),
        (
            b"set k 4294967296 0 1\r\na\r\n".to_vec(),
            store(Set, b"k", 0, 0, 0),
        ),
        (
            b"set k 4294967297 0 1\r\na\r\n".to_vec(),
            store(Set, b"k", 1, 0, 0),
        ),
        (
            b"set k 0 2147483648 1\r\na\r\n".to_vec(),
            store(Set, b"k", 0, -2147483648, 0),
        ),
        (
            b"set k 0 4294967297 1\r\na\r\n".to_vec(),
            store(Set, b"k", 0, 1, 0),
        ),
        (
            b"set k 0 0 4294967297\r\na\r\n".to_vec(),
            store(Set, b"k", 0, 0, 0),
        ),
        (
            b"set k \t1 0 1\r\na\r\n".to_vec(),
            store(Set, b"k", 1, 0, 0),
        ),
        (
            b"set k 0 0 1\tjunk\r\na\r\n".to_vec(),
            store(Set, b"k", 0, 0, 0),
        ),
        (
            b"set k 0 0 1\r\r\na\r\n".to_vec(),
            store(Set, b"k", 0, 0, 0),
        ),
        (
            b"cas k 0 0 1 -18446744073709551615\r\na\r\n".to_vec(),
            store(Cas, b"k", 0, 0, 1),
        ),
        // Arithmetic.
        (b"incr k 5\r\n".to_vec(), arith(Incr, 5, false)),
        (b"decr k 5 noreply\r\n".to_vec(), arith(Decr, 5, true)),
        (b"incr k 5 extra\r\n".to_vec(), arith(Incr, 5, false)),
        (
            b"incr k 18446744073709551615\r\n".to_vec(),
            arith(Incr, u64::MAX, false),
        ),
        (b"incr k -0\r\n".to_vec(), arith(Incr, 0, false)),
        (b"incr k +3\r\n".to_vec(), arith(Incr, 3, false)),
        // Touch and delete.
        (
            b"touch k 10\r\n".to_vec(),
            Request::Touch {
                key: b(b"k"),
                exptime: 10,
                noreply: false,
            },
        ),
        (
            b"touch k -1 noreply\r\n".to_vec(),
            Request::Touch {
                key: b(b"k"),
                exptime: -1,
                noreply: true,
            },
        ),
        (
            b"touch k 4294967296\r\n".to_vec(),
            Request::Touch {
                key: b(b"k"),
                exptime: 0,
                noreply: false,
            },
        ),
        (
            b"delete k\r\n".to_vec(),
            Request::Delete {
                key: b(b"k"),
                noreply: false,
            },
        ),
        (
            b"delete k 0\r\n".to_vec(),
            Request::Delete {
                key: b(b"k"),
                noreply: false,
            },
        ),
        (
            b"delete k noreply\r\n".to_vec(),
            Request::Delete {
                key: b(b"k"),
                noreply: true,
            },
        ),
        (
            b"delete k 0 noreply\r\n".to_vec(),
            Request::Delete {
                key: b(b"k"),
                noreply: true,
            },
        ),
        // Administrative verbs.
        (
            b"flush_all\r\n".to_vec(),
            Request::FlushAll {
                delay: 0,
                noreply: false,
            },
        ),
        (
            b"flush_all 10\r\n".to_vec(),
            Request::FlushAll {
                delay: 10,
                noreply: false,
            },
        ),
        (
            b"flush_all noreply\r\n".to_vec(),
            Request::FlushAll {
                delay: 0,
                noreply: true,
            },
        ),
        (
            b"flush_all 10 noreply\r\n".to_vec(),
            Request::FlushAll {
                delay: 10,
                noreply: true,
            },
        ),
        (
            b"flush_all 0 0\r\n".to_vec(),
            Request::FlushAll {
                delay: 0,
                noreply: false,
            },
        ),
        (b"version\r\n".to_vec(), Request::Version),
        (b"version x y\r\n".to_vec(), Request::Version),
        (b"quit\r\n".to_vec(), Request::Quit),
        (
            b"verbosity 1\r\n".to_vec(),
            Request::Verbosity {
                level: 1,
                noreply: false,
            },
        ),
        (
            b"verbosity 0 noreply\r\n".to_vec(),
            Request::Verbosity {
                level: 0,
                noreply: true,
            },
        ),
        (
            b"slabs automove 2\r\n".to_vec(),
            Request::SlabsAutomove {
                level: 2,
                noreply: false,
            },
        ),
        // memcached reads only the level; its `safe_strtoul` keeps the low 32 bits.
        (
            b"slabs  automove 4294967296 x y\r\n".to_vec(),
            Request::SlabsAutomove {
                level: 0,
                noreply: false,
            },
        ),
        (
            b"slabs automove 1 noreply\r\n".to_vec(),
            Request::SlabsAutomove {
                level: 1,
                noreply: true,
            },
        ),
        (b"stats\r\n".to_vec(), Request::Stats { group: None }),
        (
            b"stats items\r\n".to_vec(),
            Request::Stats {
                group: Some(b(b"items")),
            },
        ),
        (
            b"stats detail dump\r\n".to_vec(),
            Request::Stats {
                group: Some(b(b"detail dump")),
            },
        ),
        (b"shutdown\r\n".to_vec(), Request::Shutdown { arg: None }),
        (
            b"refresh_certs\r\n".to_vec(),
            Request::RefreshCerts { noreply: false },
        ),
        (
            b"refresh_certs noreply\r\n".to_vec(),
            Request::RefreshCerts { noreply: true },
        ),
        (
            b"shutdown graceful\r\n".to_vec(),
            Request::Shutdown {
                arg: Some(b(b"graceful")),
            },
        ),
        (
            b"cache_memlimit 100\r\n".to_vec(),
            Request::CacheMemlimit {
                megabytes: 100,
                noreply: false,
            },
        ),
        (
            b"cache_memlimit 100 noreply\r\n".to_vec(),
            Request::CacheMemlimit {
                megabytes: 100,
                noreply: true,
            },
        ),
        (
            b"lru_crawler metadump all\r\n".to_vec(),
            Request::Metadump { arg: b(b"all") },
        ),
        (
            b"lru_crawler metadump\r\n".to_vec(),
            Request::LruCrawler {
                args: vec![b(b"metadump")],
            },
        ),
        (
            b"lru_crawler crawl 1\r\n".to_vec(),
            Request::LruCrawler {
                args: vec![b(b"crawl"), b(b"1")],
            },
        ),
        (b"mn\r\n".to_vec(), Request::MetaNoop),
        (b"mn x y\r\n".to_vec(), Request::MetaNoop),
        (
            b"me k\r\n".to_vec(),
            Request::MetaDebug {
                key: b(b"k"),
                base64: false,
            },
        ),
        (
            b"me Zm9v b\r\n".to_vec(),
            Request::MetaDebug {
                key: b(b"foo"),
                base64: true,
            },
        ),
    ]
}

#[test]
fn accepted_requests_parse_to_the_expected_value() {
    for (input, want) in accepted_rows() {
        let shown = String::from_utf8_lossy(&input[..input.len().min(60)]).into_owned();
        let (got, rest) = item(&input);
        assert_eq!(got, Ok(want), "{shown:?}");
        assert!(rest.is_empty(), "{shown:?} left {rest:?}");
    }
}

#[test]
fn more_than_23_tokens_still_reads_every_get_key() {
    let keys: Vec<String> = (0..40).map(|i| format!("key{i}")).collect();
    let line = format!("get {}\r\n", keys.join(" "));
    let (got, _) = item(line.as_bytes());
    let Ok(Request::Get { keys: got, .. }) = got else {
        panic!("{got:?}")
    };
    let got: Vec<&[u8]> = got.iter().map(|k| &k[..]).collect();
    let want: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    assert_eq!(got, want);
    // Other verbs see at most 23 tokens, so a long `set` line is a token-count error.
    let line = format!("set k 0 0 1 {}\r\n", keys.join(" "));
    assert_eq!(item(line.as_bytes()).0, Err(Fault::new(Fault::ERROR)));
}

/// Lines under 23 tokens take their keys from the first split, longer ones are split again:
/// both sides of that boundary, with runs of spaces, give every key in order.
#[test]
fn get_keys_are_the_same_on_both_sides_of_the_token_limit() {
    for n in 1..30 {
        let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
        for (verb, exptime) in [("get", None), ("gets", None), ("gat", Some(-5))] {
            let head = match exptime {
                Some(e) => format!("{verb}  {e}"),
                None => verb.to_string(),
            };
            let line = format!("{head}  {}  \r\n", keys.join("   "));
            let (got, rest) = item(line.as_bytes());
            assert!(rest.is_empty());
            let Ok(Request::Get {
                keys: got,
                exptime: e,
                ..
            }) = got
            else {
                panic!("{line:?}: {got:?}")
            };
            assert_eq!(e, exptime, "{line:?}");
            let got: Vec<&[u8]> = got.iter().map(|k| &k[..]).collect();
            let want: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
            assert_eq!(got, want, "{line:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Meta requests: typed flags, raw flags kept in order, keys decoded.
// ---------------------------------------------------------------------------------------------

fn meta(input: &[u8]) -> MetaRequest {
    match item(input) {
        (Ok(Request::Meta(m)), rest) if rest.is_empty() => *m,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

#[test]
fn meta_flags_are_typed_and_kept_in_order() {
    let m = meta(b"mg k v k c f h l s t u q Oab T30 N-1 R5 E9 C7 F3\r\n");
    assert_eq!(m.cmd, MetaCmd::Get);
    assert_eq!(m.key, b(b"k"));
    assert_eq!(m.value, None);
    let want = MetaFlags {
        quiet: true,
        value: true,
        no_bump: true,
        ret_cas: true,
        ret_flags: true,
        ret_hit: true,
        ret_key: true,
        ret_last_access: true,
        ret_size: true,
        ret_ttl: true,
        opaque: Some(b(b"ab")),
        vivify: Some(-1),
        recache: Some(5),
        ttl: Some(30),
        compare_cas: Some(7),
        new_cas: Some(9),
        client_flags: Some(3),
        ..MetaFlags::default()
    };
    assert_eq!(m.flags, want);
    assert_eq!(m.raw, b(b"v k c f h l s t u q Oab T30 N-1 R5 E9 C7 F3"));
    let tokens: Vec<(u8, &[u8])> = m.tokens().collect();
    assert_eq!(tokens[0], (b'v', &b""[..]));
    assert_eq!(tokens[10], (b'O', &b"ab"[..]));
    assert_eq!(tokens[11], (b'T', &b"30"[..]));
    assert_eq!(tokens.len(), 17);

    let m = meta(b"md k MD D2 J8 I x P L\r\n");
    let want = MetaFlags {
        invalidate: true,
        remove_value: true,
        mode: Some(b'D'),
        delta: Some(2),
        initial: Some(8),
        ..MetaFlags::default()
    };
    assert_eq!(
        (m.cmd, m.flags, m.raw),
        (MetaCmd::Delete, want, b(b"MD D2 J8 I x P L"))
    );
}

#[test]
fn meta_verbs_and_values() {
    let m = meta(b"ms k 3 F5 T-1 C7 I MA q\r\nabc\r\n");
    assert_eq!(m.cmd, MetaCmd::Set);
    assert_eq!(m.value, Some(b(b"abc")));
    assert_eq!(m.raw, b(b"F5 T-1 C7 I MA q"));
    assert_eq!(
        (m.flags.client_flags, m.flags.ttl, m.flags.compare_cas),
        (Some(5), Some(-1), Some(7))
    );
    assert_eq!((m.flags.mode, m.flags.quiet), (Some(b'A'), true));

    let m = meta(b"ms k 0\r\n\r\n");
    assert_eq!((m.value, m.raw), (Some(b(b"")), b(b"")));

    let m = meta(b"md k I T30 q\r\n");
    assert_eq!(m.cmd, MetaCmd::Delete);
    assert!(m.flags.invalidate && m.flags.quiet);
    assert_eq!(m.flags.ttl, Some(30));

    for mode in [b"MI", b"M+", b"MD", b"M-"] {
        let m = meta(&cat(&[b"ma k ", mode, b" v\r\n"]));
        assert_eq!(m.cmd, MetaCmd::Arith);
        assert_eq!(m.flags.mode, Some(mode[1]));
    }
    for mode in [b"ME", b"MA", b"MP", b"MR", b"MS"] {
        let m = meta(&cat(&[b"ms k 1 ", mode, b"\r\nx\r\n"]));
        assert_eq!(m.flags.mode, Some(mode[1]));
    }
    // mg and md take any mode byte; only ms and ma give it a meaning.
    assert_eq!(meta(b"mg k MZ\r\n").flags.mode, Some(b'Z'));

    // Numeric flags use memcached's helpers, truncation included.
    let m = meta(b"mg k T4294967297 F4294967296 C-0\r\n");
    assert_eq!(
        (m.flags.ttl, m.flags.client_flags, m.flags.compare_cas),
        (Some(1), Some(0), Some(0))
    );
}

#[test]
fn meta_opaque_and_token_limits() {
    // `O` plus 31 bytes is the longest opaque memcached takes.
    let ok = cat(&[b"mg k O", &[b'x'; 31], b"\r\n"]);
    assert_eq!(meta(&ok).flags.opaque.map(|o| o.len()), Some(31));
    // 19 tokens (verb, key, 17 flags) plus memcached's terminal token is the most it takes.
    let flags17 = b" c f h k l s t u v q I x P L O T0 N0";
    let m = meta(&cat(&[b"mg k", flags17, b"\r\n"]));
    assert_eq!(m.tokens().count(), 17);
}

#[test]
fn meta_base64_keys_follow_memcacheds_decoder() {
    let m = meta(b"mg Zm9v b v k\r\n");
    assert_eq!((m.key.clone(), m.flags.base64), (b(b"foo"), true));
    let mut wire = BytesMut::new();
    m.wire_key(&mut wire);
    assert_eq!(&wire[..], b"Zm9v");
    assert_eq!(meta(b"mg Zm9v! b\r\n").key, b(b"foo"));
    assert_eq!(meta(b"mg Zm9vYg==Zm9v b\r\n").key, b(b"foob"));
    assert_eq!(meta(b"mg AA== b\r\n").key, b(b"\x00"));
    assert_eq!(meta(b"ms AAEC 3 b\r\nxyz\r\n").key, b(b"\x00\x01\x02"));
    // Binary keys may hold any byte, control bytes and spaces included.
    assert_eq!(meta(b"md IAkK b\r\n").key, b(b" \t\n"));
}

#[test]
fn base64_decoder_table() {
    let rows: &[(&[u8], Option<&[u8]>)] = &[
        (b"Zm9v", Some(b"foo")),
        (b"Zm9vYg==", Some(b"foob")),
        (b"Zm9vYmE=", Some(b"fooba")),
        (b"Zm9vYmFy", Some(b"foobar")),
        (b"Zm8=", Some(b"fo")),
        // Bytes outside the alphabet are skipped.
        (b"Zm!9v", Some(b"foo")),
        (b"*Zm9v*", Some(b"foo")),
        // Decoding stops after the first block with padding.
        (b"Zm8=Zm9v", Some(b"fo")),
        // Non-canonical trailing bits are accepted.
        (b"Zm9=", Some(b"fo")),
        (b"Zm9", None),
        (b"Zm9=v", None),
        (b"!!!!", None),
        (b"", None),
        (b"====", None),
        (b"A===", None),
        (b"AA==", Some(b"\x00")),
    ];
    for &(input, want) in rows {
        assert_eq!(
            decode_key(input).as_deref(),
            want,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Incomplete input, and input that closes the connection.
// ---------------------------------------------------------------------------------------------

#[test]
fn incomplete_requests_wait_and_consume_nothing() {
    let long_get = cat(&[b"get ", &[b'k'; 5000]]);
    let rows: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"get a".to_vec(),
        b"get a\r".to_vec(),
        b"set k 0 0 5\r\n".to_vec(),
        b"set k 0 0 5\r\nab".to_vec(),
        b"set k 0 0 5\r\nabcde".to_vec(),
        b"set k 0 0 5\r\nabcde\r".to_vec(),
        b"ms k 3 T0\r\nab".to_vec(),
        vec![b'a'; MAX_LINE_LEN],
        long_get,
        cat(&[&[b' '; 100], b"gets ", &[b'k'; 3000]]),
    ];
    for input in rows {
        let shown = String::from_utf8_lossy(&input[..input.len().min(40)]).into_owned();
        let (got, rest) = step(&input);
        assert!(matches!(got, Ok(None)), "{shown:?}: {got:?}");
        assert_eq!(rest, input, "{shown:?} must not consume");
    }
}

#[test]
fn desynchronising_input_is_a_stream_error() {
    let mut huge_get = b"get ".to_vec();
    huge_get.resize(MAX_GET_LINE_LEN + 1, b'k');
    let rows: Vec<(Vec<u8>, &str)> = vec![
        (vec![b'a'; MAX_LINE_LEN + 1], "line too long"),
        (cat(&[b"set k 0 0 1 ", &[b'x'; 2048]]), "line too long"),
        (cat(&[b"getx ", &[b'k'; 2048]]), "line too long"),
        (
            cat(&[&[b' '; 101], b"get ", &[b'k'; 2048]]),
            "line too long",
        ),
        (huge_get, "line too long"),
        (b"\x80\x00\x00\x00".to_vec(), "protocol error"),
        (b"GET / HTTP/1.1\r\n".to_vec(), "protocol error"),
        (b"POST /x HTTP/1.0\r\n".to_vec(), "protocol error"),
    ];
    for (input, what) in rows {
        let shown = String::from_utf8_lossy(&input[..input.len().min(40)]).into_owned();
        match step(&input).0 {
            Err(e) => assert!(e.to_string().starts_with(what), "{shown:?}: {e}"),
            other => panic!("{shown:?}: expected {what}, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers.
// ---------------------------------------------------------------------------------------------

#[test]
fn memcached_number_helpers() {
    let ull: &[(&[u8], Option<u64>)] = &[
        (b"0", Some(0)),
        (b"42", Some(42)),
        (b"+42", Some(42)),
        (b"-0", Some(0)),
        (b"18446744073709551615", Some(u64::MAX)),
        (b"18446744073709551616", None),
        (b"-1", None),
        (b"-18446744073709551615", Some(1)),
        (b"-9223372036854775809", Some(9223372036854775807)),
        (b"\t7", Some(7)),
        (b"\x0b\x0c\r7", Some(7)),
        (b"7\t", Some(7)),
        (b"7\rjunk", Some(7)),
        (b"7\t-", Some(7)),
        (b"", None),
        (b"+", None),
        (b"-", None),
        (b"+-1", None),
        (b"--1", None),
        (b"1a", None),
        (b"0x10", None),
        (b"1.0", None),
        (b"\t", None),
        (b"\xff", None),
    ];
    for &(tok, want) in ull {
        assert_eq!(safe_strtoull(tok), want, "strtoull {tok:?}");
    }
    let ul: &[(&[u8], Option<u32>)] = &[
        (b"4294967295", Some(u32::MAX)),
        (b"4294967296", Some(0)),
        (b"4294967297", Some(1)),
        (b"-0", Some(0)),
        (b"-1", None),
        (b"18446744073709551616", None),
    ];
    for &(tok, want) in ul {
        assert_eq!(safe_strtoul(tok), want, "strtoul {tok:?}");
    }
    let l: &[(&[u8], Option<i64>)] = &[
        (b"0", Some(0)),
        (b"-1", Some(-1)),
        (b"+1", Some(1)),
        (b"2147483647", Some(2147483647)),
        (b"2147483648", Some(-2147483648)),
        (b"4294967297", Some(1)),
        (b"-2147483649", Some(2147483647)),
        (b"9223372036854775807", Some(-1)),
        (b"9223372036854775808", None),
        (b"-9223372036854775808", Some(0)),
        (b"-9223372036854775809", None),
        (b" 5", Some(5)),
        (b"5\tx", Some(5)),
        (b"5x", None),
        (b"", None),
        (b"-", None),
    ];
    for &(tok, want) in l {
        assert_eq!(safe_strtol(tok), want, "strtol {tok:?}");
    }
}

#[test]
fn strict_reply_number_parsers_stay_strict() {
    assert_eq!(parse_u64(b"-0"), None);
    assert_eq!(parse_u64(b" 1"), None);
    assert_eq!(parse_u64(b"1\t"), None);
    assert_eq!(parse_u32(b"4294967296"), None);
    assert_eq!(parse_i32(b"2147483648"), None);
    assert_eq!(parse_i32(b"-2147483648"), Some(-2147483648));
}

// ---------------------------------------------------------------------------------------------
// Encoders: what we send is what memcached expects byte for byte.
// ---------------------------------------------------------------------------------------------

#[test]
fn request_encoding_is_byte_exact() {
    let rows: Vec<(Request, &[u8])> = vec![
        (get(GetCmd::Get, None, &[b"a", b"b"]), b"get a b\r\n"),
        (get(GetCmd::Gats, Some(-5), &[b"a"]), b"gats -5 a\r\n"),
        (
            with_value(store(StoreCmd::Set, b"k", 5, 60, 0), b"xy", false),
            b"set k 5 60 2\r\nxy\r\n",
        ),
        (
            with_value(store(StoreCmd::Cas, b"k", 0, 0, 77), b"", true),
            b"cas k 0 0 0 77 noreply\r\n\r\n",
        ),
        (
            Request::Delete {
                key: b(b"k"),
                noreply: true,
            },
            b"delete k noreply\r\n",
        ),
        (arith(ArithCmd::Decr, 9, false), b"decr k 9\r\n"),
        (
            Request::Touch {
                key: b(b"k"),
                exptime: -1,
                noreply: false,
            },
            b"touch k -1\r\n",
        ),
        (
            Request::FlushAll {
                delay: 0,
                noreply: true,
            },
            b"flush_all noreply\r\n",
        ),
        (
            Request::FlushAll {
                delay: 3,
                noreply: false,
            },
            b"flush_all 3\r\n",
        ),
        (Request::Version, b"version\r\n"),
        (Request::Quit, b"quit\r\n"),
        (
            Request::Verbosity {
                level: 2,
                noreply: true,
            },
            b"verbosity 2 noreply\r\n",
        ),
        (
            Request::Stats {
                group: Some(b(b"slabs")),
            },
            b"stats slabs\r\n",
        ),
        (Request::Shutdown { arg: None }, b"shutdown\r\n"),
        (
            Request::RefreshCerts { noreply: true },
            b"refresh_certs noreply\r\n",
        ),
        (
            Request::CacheMemlimit {
                megabytes: 64,
                noreply: false,
            },
            b"cache_memlimit 64\r\n",
        ),
        (
            Request::Metadump { arg: b(b"all") },
            b"lru_crawler metadump all\r\n",
        ),
        (Request::MetaNoop, b"mn\r\n"),
        (
            Request::MetaDebug {
                key: b(b"foo"),
                base64: true,
            },
            b"me Zm9v b\r\n",
        ),
        (
            Request::Meta(Box::new(MetaRequest::new(
                MetaCmd::Set,
                b(b"\x00\x01"),
                MetaFlags {
                    base64: true,
                    ret_cas: true,
                    ttl: Some(-1),
                    client_flags: Some(3),
                    mode: Some(b'E'),
                    opaque: Some(b(b"op")),
                    ..MetaFlags::default()
                },
                Some(b(b"val")),
            ))),
            b"ms AAE= 3 b c T-1 F3 ME Oop\r\nval\r\n",
        ),
        (
            Request::Meta(Box::new(MetaRequest::new(
                MetaCmd::Arith,
                b(b"n"),
                MetaFlags {
                    value: true,
                    delta: Some(5),
                    mode: Some(b'-'),
                    ..MetaFlags::default()
                },
                None,
            ))),
            b"ma n v D5 M-\r\n",
        ),
        (
            Request::SlabsAutomove {
                level: 0,
                noreply: true,
            },
            b"slabs automove 0 noreply\r\n",
        ),
    ];
    for (req, want) in rows {
        let mut buf = BytesMut::new();
        req.encode(&mut buf);
        assert_eq!(
            String::from_utf8_lossy(&buf),
            String::from_utf8_lossy(want),
            "{req:?}"
        );
        // And it parses back to itself.
        let (back, rest) = item(&buf);
        assert_eq!(back, Ok(req));
        assert!(rest.is_empty());
    }
}

#[test]
fn request_verbs_and_noreply() {
    let rows: Vec<(&[u8], &str, bool)> = vec![
        (b"get a\r\n", "get", false),
        (b"gats 1 a\r\n", "gats", false),
        (b"prepend k 0 0 1 noreply\r\na\r\n", "prepend", true),
        (b"incr k 1 noreply\r\n", "incr", true),
        (b"touch k 1\r\n", "touch", false),
        (b"flush_all noreply\r\n", "flush_all", true),
        (b"lru_crawler metadump all\r\n", "lru_crawler", false),
        (b"lru_crawler crawl all\r\n", "lru_crawler", false),
        (b"mg k q\r\n", "mg", false),
        (b"mn\r\n", "mn", false),
        (b"me k\r\n", "me", false),
        (b"slabs automove 1 noreply\r\n", "slabs", true),
    ];
    for (input, verb, noreply) in rows {
        let (r, _) = item(input);
        let r = r.unwrap();
        assert_eq!((r.verb(), r.noreply()), (verb, noreply), "{r:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Codecs.
// ---------------------------------------------------------------------------------------------

fn decode_all(codec: &mut ServerCodec, chunks: &[&[u8]]) -> Vec<Result<Request, Fault>> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(item) = codec.decode(&mut buf).expect("no stream error") {
            out.push(item);
        }
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    out
}

#[test]
fn server_codec_swallows_refused_blocks_across_reads() {
    let mut codec = ServerCodec::new(Limits { max_item_size: 100 });
    let data = [b'x'; 500];
    let got = decode_all(
        &mut codec,
        &[
            b"set k 0 0 500\r\n",
            &data[..10],
            &data[10..400],
            &data[400..],
            b"\r",
            b"\nget k\r\n",
        ],
    );
    let mut too_large = Fault::new(Fault::TOO_LARGE);
    too_large.unlink = Some(b(b"k"));
    assert_eq!(
        got,
        vec![Err(too_large), Ok(get(GetCmd::Get, None, &[b"k"]))]
    );
}

#[test]
fn server_codec_bad_data_chunk_then_resync() {
    let mut codec = ServerCodec::default();
    // memcached reads exactly <bytes>+2, finds no "\r\n", answers the chunk error, and then reads
    // what is left ("\r\n" here, a line of its own) as the next command.
    let got = decode_all(&mut codec, &[b"set k 0 0 2\r\nabcd\r\nmn\r\n"]);
    assert_eq!(
        got,
        vec![
            Err(Fault::new(Fault::BAD_CHUNK)),
            Err(Fault::new(Fault::ERROR)),
            Ok(Request::MetaNoop)
        ]
    );
    let got = decode_all(&mut codec, &[b"set k 0 0 1 noreply\r\nab\r\n"]);
    assert_eq!(
        got,
        vec![
            Err(Fault::with_noreply(Fault::BAD_CHUNK, true)),
            Err(Fault::new(Fault::ERROR))
        ]
    );
    // A meta set always reports a bad chunk, even with `q`.
    let got = decode_all(&mut codec, &[b"ms k 1 q\r\nab\r\n"]);
    assert_eq!(
        got,
        vec![
            Err(Fault::new(Fault::BAD_CHUNK)),
            Err(Fault::new(Fault::ERROR))
        ]
    );
}

#[test]
fn server_codec_meta_set_error_swallows_then_continues() {
    let mut codec = ServerCodec::default();
    let got = decode_all(&mut codec, &[b"ms k 3 !\r\nab", b"c\r\nmn\r\n"]);
    assert_eq!(
        got,
        vec![
            Err(Fault::new("CLIENT_ERROR invalid flag")),
            Ok(Request::MetaNoop)
        ]
    );
}

#[test]
fn server_codec_stream_errors() {
    let mut codec = ServerCodec::default();
    let mut buf = BytesMut::from(&[b'z'; MAX_LINE_LEN + 1][..]);
    assert!(matches!(codec.decode(&mut buf), Err(Error::LineTooLong)));
}

#[test]
fn client_codec_round_trip() {
    let mut codec = ClientCodec;
    let mut buf = BytesMut::new();
    let req = get(GetCmd::Gets, None, &[b"a"]);
    codec.encode(&req, &mut buf).unwrap();
    assert_eq!(&buf[..], b"gets a\r\n");
    let mut buf = BytesMut::from(&b"VALUE a 1 2 3\r\nhi\r\nEND\r\nSTO"[..]);
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        Some(Response::Values(vec![Value {
            key: b(b"a"),
            flags: 1,
            cas: Some(3),
            data: b(b"hi"),
        }]))
    );
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"RED\r\n");
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(Response::Stored));
    assert!(buf.is_empty());

    let mut server = ServerCodec::default();
    let mut out = BytesMut::new();
    server.encode(&Response::Deleted, &mut out).unwrap();
    assert_eq!(&out[..], b"DELETED\r\n");
}

// ---------------------------------------------------------------------------------------------
// Replies.
// ---------------------------------------------------------------------------------------------

fn meta_reply(status: MetaStatus, flags: &'static [u8], value: Option<&'static [u8]>) -> Response {
    Response::Meta(MetaResponse {
        status,
        flags: b(flags),
        value: value.map(b),
    })
}

fn reply_rows() -> Vec<(&'static [u8], Response)> {
    vec![
        (b"STORED\r\n", Response::Stored),
        (b"NOT_STORED\r\n", Response::NotStored),
        (b"EXISTS\r\n", Response::Exists),
        (b"NOT_FOUND\r\n", Response::NotFound),
        (b"DELETED\r\n", Response::Deleted),
        (b"TOUCHED\r\n", Response::Touched),
        (b"OK\r\n", Response::Ok),
        (b"ERROR\r\n", Response::Error),
        (b"END\r\n", Response::Values(vec![])),
        (
            b"VALUE a 5 3\r\nabc\r\nVALUE bb 0 0 77\r\n\r\nEND\r\n",
            Response::Values(vec![
                Value {
                    key: b(b"a"),
                    flags: 5,
                    cas: None,
                    data: b(b"abc"),
                },
                Value {
                    key: b(b"bb"),
                    flags: 0,
                    cas: Some(77),
                    data: b(b""),
                },
            ]),
        ),
        // Values are length-delimited: an "END" inside one is data.
        (
            b"VALUE a 0 7\r\nEND\r\nx\r\r\nEND\r\n",
            Response::Values(vec![Value {
                key: b(b"a"),
                flags: 0,
                cas: None,
                data: b(b"END\r\nx\r"),
            }]),
        ),
        (b"18446744073709551615\r\n", Response::Number(u64::MAX)),
        (b"0\r\n", Response::Number(0)),
        (b"VERSION 1.6.18\r\n", Response::Version(b(b"1.6.18"))),
        (
            b"STAT pid 1\r\nSTAT version 1.6.18\r\nEND\r\n",
            Response::Stats(vec![(b(b"pid"), b(b"1")), (b(b"version"), b(b"1.6.18"))]),
        ),
        (
            b"key=k exp=-1 la=1 cas=2 fetch=no cls=1 size=61\nEND\r\n",
            Response::Dump(vec![b(b"key=k exp=-1 la=1 cas=2 fetch=no cls=1 size=61")]),
        ),
        (
            b"CLIENT_ERROR bad data chunk\r\n",
            Response::ClientError(b(b"bad data chunk")),
        ),
        (
            b"SERVER_ERROR object too large for cache\r\n",
            Response::ServerError(b(b"object too large for cache")),
        ),
        (b"RESET\r\n", Response::Other(b(b"RESET"))),
        (
            b"ERROR: shutdown not enabled\r\n",
            Response::Other(b(b"ERROR: shutdown not enabled")),
        ),
        (b"HD\r\n", meta_reply(MetaStatus::Hd, b"", None)),
        (
            b"HD c5 Oab\r\n",
            meta_reply(MetaStatus::Hd, b"c5 Oab", None),
        ),
        (b"EN\r\n", meta_reply(MetaStatus::En, b"", None)),
        (b"NF kx\r\n", meta_reply(MetaStatus::Nf, b"kx", None)),
        (b"NS\r\n", meta_reply(MetaStatus::Ns, b"", None)),
        (b"EX\r\n", meta_reply(MetaStatus::Ex, b"", None)),
        (b"MN\r\n", meta_reply(MetaStatus::Mn, b"", None)),
        (
            b"ME k exp=-1 la=0 cas=2 fetch=no cls=1 size=61\r\n",
            meta_reply(
                MetaStatus::Me,
                b"k exp=-1 la=0 cas=2 fetch=no cls=1 size=61",
                None,
            ),
        ),
        (
            b"VA 2 f7 s2\r\nhi\r\n",
            meta_reply(MetaStatus::Va, b"f7 s2", Some(b"hi")),
        ),
        (b"VA 0\r\n\r\n", meta_reply(MetaStatus::Va, b"", Some(b""))),
    ]
}

#[test]
fn replies_parse_and_encode_byte_exactly() {
    for (wire, want) in reply_rows() {
        let shown = String::from_utf8_lossy(wire).into_owned();
        let mut buf = BytesMut::from(wire);
        buf.extend_from_slice(b"MN\r\n");
        assert_eq!(
            Response::parse(&mut buf).unwrap(),
            Some(want.clone()),
            "{shown:?}"
        );
        assert_eq!(&buf[..], b"MN\r\n", "{shown:?} consumes exactly its reply");
        let mut out = BytesMut::new();
        want.encode(&mut out);
        assert_eq!(String::from_utf8_lossy(&out), shown);
        // Every proper prefix waits for more.
        for cut in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            assert_eq!(
                Response::parse(&mut buf).unwrap(),
                None,
                "{shown:?} cut at {cut}"
            );
            assert_eq!(buf.len(), cut);
        }
    }
}

#[test]
fn reply_helpers() {
    let r = MetaResponse {
        status: MetaStatus::Hd,
        flags: b(b"c123 Oxy k"),
        value: None,
    };
    assert_eq!(r.flag(b'c'), Some(&b"123"[..]));
    assert_eq!(r.flag(b'O'), Some(&b"xy"[..]));
    assert_eq!(r.flag(b'k'), Some(&b""[..]));
    assert_eq!(r.flag(b'f'), None);
    assert!(Response::Error.is_error());
    assert!(Response::ClientError(b(b"x")).is_error());
    assert!(Response::ServerError(b(b"x")).is_error());
    assert!(!Response::Stored.is_error());
    assert!(!Response::Other(b(b"ERROR: x")).is_error());
}

#[test]
fn malformed_replies_are_errors() {
    let rows: &[&[u8]] = &[
        b"VALUE k x 1\r\na\r\nEND\r\n",
        b"VALUE k 0 x\r\na\r\nEND\r\n",
        b"VALUE k 0 1 x\r\na\r\nEND\r\n",
        b"VALUE k 0 1\r\nab\r\nEND\r\n",
        b"VALUE k\r\nEND\r\n",
        b"VALUE k 0\r\nEND\r\n",
        b"VALUE k 0 1\r\na\r\nSTORED\r\n",
        b"VA x\r\n",
        b"VA 1\r\nab\r\n",
        // A STAT listing with a line that is not a STAT line.
        b"STAT a 1\r\nxy\r\nEND\r\n",
        b"STAT a 1\r\nkey=k\r\nEND\r\n",
        // Declared lengths no server can mean must not overflow or allocate.
        b"VALUE k 0 18446744073709551615\r\n",
        b"VALUE k 0 18446744073709551613\r\n",
        b"VALUE k 0 100000000000000\r\n",
        b"VA 18446744073709551615\r\n",
        b"VA 100000000000000 f1\r\n",
    ];
    for &wire in rows {
        let mut buf = BytesMut::from(wire);
        assert!(
            Response::parse(&mut buf).is_err(),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
    let mut long = BytesMut::from(&[b'x'; 64 * 1024 + 1][..]);
    assert!(Response::parse(&mut long).is_err());
}

// ----- what goes to a backend ------------------------------------------------------------

/// Parses one request line (and data block) as a node or the proxy would.
fn one_request(bytes: &[u8]) -> Request {
    let mut buf = BytesMut::from(bytes);
    match parse(&mut buf, &Limits::default()) {
        Ok(Some(Step::Item(Ok(r)))) => r,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
    }
}

fn wire(req: &Request) -> Vec<u8> {
    let mut buf = BytesMut::new();
    req.encode(&mut buf);
    buf.to_vec()
}

/// `md k qb`: memcached reads the token as `q`; once the router clears quiet, nothing of it is
/// left on the wire.
#[test]
fn cleared_quiet_is_gone_however_it_was_spelled() {
    let Request::Meta(mut m) = one_request(b"md k qb\r\n") else {
        panic!("meta")
    };
    assert!(m.flags.quiet && !m.flags.base64);
    m.flags.quiet = false;
    assert_eq!(wire(&Request::Meta(m)), b"md k\r\n");
}

/// Return flags keep the client's order (replies echo them in it), the opaque and `k` survive,
/// ignored token tails are dropped, and a flag the router adds comes last.
#[test]
fn meta_flags_are_rendered_from_the_parsed_request_in_client_order() {
    let Request::Meta(mut m) = one_request(b"mg k Oab1 tx q k s vzz\r\n") else {
        panic!("meta")
    };
    m.flags.quiet = false;
    assert_eq!(wire(&Request::Meta(m.clone())), b"mg k Oab1 t k s v\r\n");
    m.flags.new_cas = Some(7);
    assert_eq!(wire(&Request::Meta(m)), b"mg k Oab1 t k s v E7\r\n");
    let Request::Meta(m) = one_request(b"ms YWJj 2 b T4294967297 F5 MS\r\nhi\r\n") else {
        panic!("meta")
    };
    // The key goes back base64 with `b`; numbers as memcached read them (T truncated to 32 bits).
    assert_eq!(wire(&Request::Meta(m)), b"ms YWJj 2 b T1 F5 MS\r\nhi\r\n");
}

/// A decoded key that is not a valid text key is never written raw: meta requests built for it
/// carry `b`, and a classic request with it is refused before encoding.
#[test]
fn unsafe_keys_are_refused_before_the_wire() {
    let evil = Bytes::from_static(b"x\n\rflush_all");
    let classic = Request::Delete {
        key: evil.clone(),
        noreply: false,
    };
    assert!(matches!(classic.check_wire(), Err(Error::InvalidKey(_))));
    let get = Request::Get {
        cmd: GetCmd::Get,
        exptime: None,
        keys: vec![b(b"ok"), b(b"a b")],
    };
    assert!(get.check_wire().is_err());
    let md = MetaRequest::new(MetaCmd::Delete, evil.clone(), MetaFlags::default(), None);
    assert!(md.flags.base64);
    let md = Request::Meta(Box::new(md));
    md.check_wire().unwrap();
    assert_eq!(wire(&md), b"md eAoNZmx1c2hfYWxs b\r\n");
    // A raw meta request with a binary key (no `b`) is refused too.
    let raw = Request::Meta(Box::new(MetaRequest {
        cmd: MetaCmd::Get,
        key: evil,
        flags: MetaFlags::default(),
        raw: Bytes::new(),
        value: None,
    }));
    assert!(raw.check_wire().is_err());
    // Too long to fit base64 in memcached's 250-byte key token.
    let long = MetaRequest::new(
        MetaCmd::Get,
        Bytes::from(vec![0u8; MAX_BINARY_KEY_LEN + 1]),
        MetaFlags::default(),
        None,
    );
    assert!(Request::Meta(Box::new(long)).check_wire().is_err());
    let fits = MetaRequest::new(
        MetaCmd::Get,
        Bytes::from(vec![0u8; MAX_BINARY_KEY_LEN]),
        MetaFlags::default(),
        None,
    );
    let fits = wire(&Request::Meta(Box::new(fits)));
    assert!(fits.len() - b"mg  b\r\n".len() <= MAX_KEY_LEN);
    let stats = Request::Stats {
        group: Some(b(b"items\r\nflush_all")),
    };
    assert!(stats.check_wire().is_err());
}

/// A reply that cannot answer the request it was matched to is caught (FIFO slip).
#[test]
fn expect_catches_replies_for_another_request() {
    let get = one_request(b"get a b\r\n").expect();
    let hd = Response::Meta(MetaResponse {
        status: MetaStatus::Hd,
        flags: Bytes::new(),
        value: None,
    });
    assert!(!get.accepts(&hd));
    assert!(!get.accepts(&Response::Ok));
    assert!(get.accepts(&Response::Values(Vec::new())));
    assert!(get.accepts(&Response::ServerError(b(b"oops"))));
    let three = Response::Values(
        (0..3)
            .map(|_| Value {
                key: b(b"a"),
                flags: 0,
                cas: None,
                data: b(b"x"),
            })
            .collect(),
    );
    assert!(!get.accepts(&three));
    let md = one_request(b"md k\r\n").expect();
    assert!(md.accepts(&hd));
    assert!(!md.accepts(&Response::Deleted));
    let mn = Response::Meta(MetaResponse {
        status: MetaStatus::Mn,
        flags: Bytes::new(),
        value: None,
    });
    assert!(!md.accepts(&mn));
    assert!(Request::MetaNoop.expect().accepts(&mn));
    assert!(!Request::Version.expect().accepts(&Response::Stored));
}

/// Reply bounds are checked on what has arrived, before the rest is buffered.
#[test]
fn reply_limits_stop_oversized_replies_early() {
    let lim = ReplyLimits::for_items(1024 * 1024, 1);
    let mut huge = BytesMut::from(&b"VALUE k 0 1073741824\r\nvvvv"[..]);
    assert!(Response::parse_limited(&mut huge, &lim).is_err());
    let mut va = BytesMut::from(&b"VA 1073741824 t1\r\nvv"[..]);
    assert!(Response::parse_limited(&mut va, &lim).is_err());
    let mut ok = BytesMut::from(&b"VALUE k 0 3\r\nabc\r\nEND\r\n"[..]);
    assert!(matches!(
        Response::parse_limited(&mut ok, &lim),
        Ok(Some(Response::Values(v))) if v.len() == 1
    ));
    let mut two = BytesMut::from(&b"VALUE k 0 1\r\na\r\nVALUE k 0 1\r\na\r\n"[..]);
    assert!(Response::parse_limited(&mut two, &lim).is_err());
    let mut line = BytesMut::from(&vec![b'x'; ReplyLimits::LINE + 1][..]);
    assert!(Response::parse_limited(&mut line, &lim).is_err());
    let mut stats = BytesMut::new();
    while stats.len() <= ReplyLimits::LISTING {
        stats.extend_from_slice(b"STAT a b\r\n");
    }
    assert!(Response::parse_limited(&mut stats, &lim).is_err());
    // The loose default still takes a long listing.
    let mut stats2 = stats.clone();
    stats2.extend_from_slice(b"END\r\n");
    assert!(matches!(
        Response::parse(&mut stats2),
        Ok(Some(Response::Stats(_)))
    ));
}

/// `stats cachedump`'s `ITEM` lines are a listing, kept byte for byte: written back they are
/// the node's reply again.
#[test]
fn cachedump_lines_parse_as_a_dump_and_encode_back() {
    let wire = b"ITEM a [1 b; 0 s]\r\nITEM b:c [22 b; 1700000000 s]\r\nEND\r\n";
    let mut buf = BytesMut::from(&wire[..]);
    let r = Response::parse(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    let Response::Dump(lines) = &r else {
        panic!("{r:?}")
    };
    assert_eq!(lines.len(), 2);
    let mut out = BytesMut::new();
    r.encode(&mut out);
    assert_eq!(&out[..], &wire[..]);
}
