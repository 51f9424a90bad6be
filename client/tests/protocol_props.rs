//! Property tests of the shared protocol module:
//!
//! - encode then parse is the identity, for every kind of [`Request`] and [`Response`];
//! - a pipelined stream (valid requests mixed with refused ones) decodes to the same items however
//!   it is cut into reads, through [`ServerCodec`] and, for replies, [`ClientCodec`];
//! - arbitrary bytes, and random mutations of valid streams, never make either codec panic or
//!   stall: every item consumes input, waiting consumes nothing, and every request or reply that
//!   comes out of garbage encodes to bytes that parse back to the same value.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use ringcache_client::protocol::parse::Limits;
use ringcache_client::protocol::{
    ArithCmd, ClientCodec, Fault, GetCmd, MetaCmd, MetaFlags, MetaRequest, MetaResponse,
    MetaStatus, Request, Response, ServerCodec, StoreCmd, Value,
};
use tokio_util::codec::Decoder;

// ---------------------------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------------------------

/// Bytes without space or control characters (memcached's and ringcache's key alphabet, ASCII).
fn graphic(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(0x21u8..0x7f, len)
}

fn key() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => graphic(1..=12).prop_map(Bytes::from),
        1 => graphic(1..=250).prop_map(Bytes::from),
    ]
}

/// A key for the meta `b` flag: any bytes, short enough that its base64 form fits in 250.
fn binary_key() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 1..=186).prop_map(Bytes::from)
}

fn value() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from),
        1 => proptest::collection::vec(any::<u8>(), 0..1500).prop_map(Bytes::from),
    ]
}

/// Exptimes as the parser keeps them: anything a 32-bit field holds.
fn exptime() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0i64), -100i64..100, any::<i32>().prop_map(i64::from)]
}

fn tokens(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(graphic(1..=10), 1..=max).prop_map(|t| Bytes::from(t.join(&b' ')))
}

fn meta_flags(cmd: MetaCmd) -> impl Strategy<Value = MetaFlags> {
    let mode: BoxedStrategy<u8> = match cmd {
        MetaCmd::Set => proptest::sample::select(b"EAPRS".to_vec()).boxed(),
        MetaCmd::Arith => proptest::sample::select(b"I+D-".to_vec()).boxed(),
        _ => (0x21u8..0x7f).boxed(),
    };
    let bools = proptest::collection::vec(proptest::bool::weighted(0.3), 12);
    let times = (
        proptest::option::weighted(0.3, any::<i32>()),
        proptest::option::weighted(0.3, any::<i32>()),
        proptest::option::weighted(0.3, any::<i32>()),
    );
    let numbers = (
        proptest::option::weighted(0.3, any::<u64>()),
        proptest::option::weighted(0.3, any::<u64>()),
        proptest::option::weighted(0.3, any::<u32>()),
        proptest::option::weighted(0.3, any::<u64>()),
        proptest::option::weighted(0.3, any::<u64>()),
    );
    let extra = (
        proptest::option::weighted(0.3, mode),
        proptest::option::weighted(0.5, graphic(0..=31).prop_map(Bytes::from)),
    );
    (bools, times, numbers, extra)
        .prop_map(|(b, (n, r, t), (c, e, f, d, j), (m, o))| MetaFlags {
            base64: false,
            quiet: b[0],
            value: b[1],
            no_bump: b[2],
            invalidate: b[3],
            remove_value: b[4],
            ret_cas: b[5],
            ret_flags: b[6],
            ret_hit: b[7],
            ret_key: b[8],
            ret_last_access: b[9],
            ret_size: b[10],
            ret_ttl: b[11],
            opaque: o,
            vivify: n.map(i64::from),
            recache: r.map(i64::from),
            ttl: t.map(i64::from),
            compare_cas: c,
            new_cas: e,
            client_flags: f,
            mode: m,
            delta: d,
            initial: j,
        })
        // memcached refuses more than 20 tokens (verb, key, [length,] flags, terminal).
        .prop_filter("too many meta flags", |f| {
            f.render().split(|&b| b == b' ').count() <= 15
        })
}

fn meta_request() -> impl Strategy<Value = Request> {
    proptest::sample::select(vec![
        MetaCmd::Get,
        MetaCmd::Set,
        MetaCmd::Delete,
        MetaCmd::Arith,
    ])
    .prop_flat_map(|cmd| {
        (
            Just(cmd),
            meta_flags(cmd),
            prop_oneof![
                3 => key().prop_map(|k| (k, false)),
                1 => binary_key().prop_map(|k| (k, true)),
            ],
            value(),
        )
    })
    .prop_map(|(cmd, mut flags, (key, b64), v)| {
        flags.base64 = b64;
        let value = (cmd == MetaCmd::Set).then_some(v);
        Request::Meta(Box::new(MetaRequest::new(cmd, key, flags, value)))
    })
}

fn request() -> impl Strategy<Value = Request> {
    let store = (
        proptest::sample::select(vec![
            StoreCmd::Set,
            StoreCmd::Add,
            StoreCmd::Replace,
            StoreCmd::Append,
            StoreCmd::Prepend,
            StoreCmd::Cas,
        ]),
        key(),
        any::<u32>(),
        exptime(),
        any::<u64>(),
        value(),
        any::<bool>(),
    )
        .prop_map(
            |(cmd, key, flags, exptime, cas, value, noreply)| Request::Store {
                cmd,
                key,
                flags,
                exptime,
                cas: if cmd == StoreCmd::Cas { cas } else { 0 },
                value,
                noreply,
            },
        );
    let get = (
        proptest::sample::select(vec![GetCmd::Get, GetCmd::Gets, GetCmd::Gat, GetCmd::Gats]),
        exptime(),
        proptest::collection::vec(key(), 0..6),
        key(),
    )
        .prop_map(|(cmd, e, mut keys, first)| {
            let touch = matches!(cmd, GetCmd::Gat | GetCmd::Gats);
            // get/gets need a key; gat/gats may have none.
            if !touch {
                keys.insert(0, first);
            }
            Request::Get {
                cmd,
                exptime: touch.then_some(e),
                keys,
            }
        });
    let simple = prop_oneof![
        (key(), any::<bool>()).prop_map(|(key, noreply)| Request::Delete { key, noreply }),
        (key(), any::<u64>(), any::<bool>(), any::<bool>()).prop_map(
            |(key, delta, incr, noreply)| Request::Arith {
                cmd: if incr { ArithCmd::Incr } else { ArithCmd::Decr },
                key,
                delta,
                noreply,
            }
        ),
        (key(), exptime(), any::<bool>()).prop_map(|(key, exptime, noreply)| Request::Touch {
            key,
            exptime,
            noreply
        }),
        (exptime(), any::<bool>())
            .prop_map(|(delay, noreply)| Request::FlushAll { delay, noreply }),
        Just(Request::Version),
        Just(Request::Quit),
        Just(Request::MetaNoop),
        (any::<u32>(), any::<bool>())
            .prop_map(|(level, noreply)| Request::Verbosity { level, noreply }),
        proptest::option::of(tokens(3)).prop_map(|group| Request::Stats { group }),
        proptest::option::of(tokens(2)).prop_map(|arg| Request::Shutdown { arg }),
        (any::<u32>(), any::<bool>())
            .prop_map(|(megabytes, noreply)| { Request::CacheMemlimit { megabytes, noreply } }),
        (0u8..=2, any::<bool>())
            .prop_map(|(level, noreply)| Request::SlabsAutomove { level, noreply }),
        graphic(1..=8).prop_map(|a| Request::Metadump { arg: a.into() }),
        proptest::collection::vec(graphic(1..=8).prop_map(Bytes::from), 0..4)
            .prop_filter("that is a metadump", |a| {
                !(a.len() == 2 && a[0] == "metadump")
            })
            .prop_map(|args| Request::LruCrawler { args }),
        prop_oneof![
            key().prop_map(|key| Request::MetaDebug { key, base64: false }),
            binary_key().prop_map(|key| Request::MetaDebug { key, base64: true }),
        ],
    ];
    prop_oneof![3 => store, 2 => get, 3 => simple, 3 => meta_request()]
}

fn line_text() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(prop_oneof![0x21u8..0x7f, Just(b' ')], 1..40).prop_map(Bytes::from)
}

fn meta_response() -> impl Strategy<Value = Response> {
    (
        proptest::sample::select(MetaStatus::ALL.to_vec()),
        proptest::option::of(tokens(6)),
        value(),
    )
        .prop_map(|(status, flags, v)| {
            Response::Meta(MetaResponse {
                status,
                flags: flags.unwrap_or_default(),
                value: (status == MetaStatus::Va).then_some(v),
            })
        })
}

fn response() -> impl Strategy<Value = Response> {
    let values = proptest::collection::vec(
        (
            key(),
            any::<u32>(),
            proptest::option::of(any::<u64>()),
            value(),
        ),
        0..4,
    )
    .prop_map(|vs| {
        Response::Values(
            vs.into_iter()
                .map(|(key, flags, cas, data)| Value {
                    key,
                    flags,
                    cas,
                    data,
                })
                .collect(),
        )
    });
    let stats =
        proptest::collection::vec((graphic(1..=20).prop_map(Bytes::from), line_text()), 1..6)
            .prop_map(Response::Stats);
    let dump = proptest::collection::vec(
        graphic(1..=40).prop_map(|t| Bytes::from([b"key=".as_slice(), &t].concat())),
        1..5,
    )
    .prop_map(Response::Dump);
    prop_oneof![
        Just(Response::Stored),
        Just(Response::NotStored),
        Just(Response::Exists),
        Just(Response::NotFound),
        Just(Response::Deleted),
        Just(Response::Touched),
        Just(Response::Ok),
        Just(Response::Error),
        any::<u64>().prop_map(Response::Number),
        line_text().prop_map(Response::Version),
        line_text().prop_map(Response::ClientError),
        line_text().prop_map(Response::ServerError),
        proptest::sample::select(vec![
            &b"RESET"[..],
            b"ERROR: shutdown not enabled",
            b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m",
            b"BUSY currently processing crawler request",
        ])
        .prop_map(|l| Response::Other(Bytes::from_static(l))),
        values,
        stats,
        dump,
        meta_response(),
    ]
}

/// Requests ServerCodec refuses, as bytes, with the items they must decode to.
fn refused_piece() -> impl Strategy<Value = (Vec<u8>, Vec<Result<Request, Fault>>)> {
    let fault = |m: &'static str| Err(Fault::new(m));
    let mut too_large = Fault::new(Fault::TOO_LARGE);
    too_large.unlink = Some(Bytes::from_static(b"big"));
    let mut big = b"set big 0 0 5000\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 5000));
    big.extend_from_slice(b"\r\n");
    let mut long_key = b"get ".to_vec();
    long_key.extend(std::iter::repeat_n(b'k', 251));
    long_key.extend_from_slice(b"\r\n");
    proptest::sample::select(vec![
        (b"bogus\r\n".to_vec(), vec![fault(Fault::ERROR)]),
        (b"\r\n".to_vec(), vec![fault(Fault::ERROR)]),
        (
            b"set k 0 0 2\r\nabcd\r\n".to_vec(),
            vec![fault(Fault::BAD_CHUNK), fault(Fault::ERROR)],
        ),
        (long_key, vec![fault(Fault::BAD_FORMAT)]),
        (big, vec![Err(too_large)]),
        (
            b"ms k 3 !\r\nabc\r\n".to_vec(),
            vec![fault("CLIENT_ERROR invalid flag")],
        ),
        (
            b"delete k 5 noreply\r\n".to_vec(),
            vec![Err(Fault::with_noreply(
                "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
                true,
            ))],
        ),
        (
            b"incr k abc\r\n".to_vec(),
            vec![fault("CLIENT_ERROR invalid numeric delta argument")],
        ),
        (
            b"mg k v v\r\n".to_vec(),
            vec![fault("CLIENT_ERROR duplicate flag")],
        ),
    ])
}

/// A pipelined stream of valid and refused requests, with the items it must decode to.
fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<Result<Request, Fault>>)> {
    proptest::collection::vec(
        prop_oneof![
            4 => request().prop_map(|r| {
                let mut b = BytesMut::new();
                r.encode(&mut b);
                (b.to_vec(), vec![Ok(r)])
            }),
            1 => refused_piece(),
        ],
        1..10,
    )
    .prop_map(|pieces| {
        let mut bytes = Vec::new();
        let mut items = Vec::new();
        for (b, i) in pieces {
            bytes.extend(b);
            items.extend(i);
        }
        (bytes, items)
    })
}

/// Limits for stream tests: small enough that the refused `big` piece is too large, large
/// enough for every generated value.
fn limits() -> Limits {
    Limits {
        max_item_size: 4096,
    }
}

// ---------------------------------------------------------------------------------------------
// Drivers.
// ---------------------------------------------------------------------------------------------

/// Feeds `input` to `codec` in pieces ending at `cuts` (any order, taken modulo the length),
/// decoding everything available after each piece. Panics on a stream error.
fn decode_cut<D: Decoder>(codec: &mut D, input: &[u8], cuts: &[usize]) -> Vec<D::Item>
where
    D::Error: std::fmt::Debug,
{
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.push(input.len());
    points.sort_unstable();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points {
        buf.extend_from_slice(&input[last..p]);
        last = p;
        // Each item consumes at least one byte, so this ends.
        while let Some(item) = codec.decode(&mut buf).expect("valid stream") {
            out.push(item);
        }
    }
    assert!(buf.is_empty(), "undecoded tail: {buf:?}");
    out
}

/// Decodes whatever `input` holds, checking that the codec makes progress: each item consumes
/// input, and "need more" consumes nothing and stays "need more". Returns the items decoded
/// before the codec asked for more or failed.
fn decode_garbage<D: Decoder>(codec: &mut D, input: &[u8]) -> Vec<D::Item> {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    for _ in 0..=input.len() {
        let before = buf.len();
        match codec.decode(&mut buf) {
            Ok(Some(item)) => {
                assert!(buf.len() < before, "an item consumed nothing");
                out.push(item);
            }
            Ok(None) => {
                assert!(buf.len() <= before);
                let waiting = buf.len();
                assert!(
                    matches!(codec.decode(&mut buf), Ok(None)),
                    "waiting changed"
                );
                assert_eq!(buf.len(), waiting, "waiting consumed input");
                return out;
            }
            Err(_) => return out,
        }
    }
    panic!("decoder produced more items than there are input bytes");
}

/// Decodes `input` both as requests (a server with `limits`) and as replies, with
/// [`decode_garbage`]'s progress checks, and checks that whatever either side decoded re-encodes.
fn assert_garbage_handled(input: &[u8], limits: Limits) {
    let items = decode_garbage(&mut ServerCodec::new(limits), input);
    assert_requests_reencode(&items, limits);
    let items = decode_garbage(&mut ClientCodec, input);
    assert_responses_reencode(&items);
}

/// Every request a server decodes encodes to bytes it decodes to the same request. Meta flags
/// are rendered from their typed values (a token's ignored tail is not kept), so `raw` is
/// compared only through the encoding: encoding the decoded request again gives the same bytes.
fn assert_requests_reencode(items: &[Result<Request, Fault>], limits: Limits) {
    fn typed(r: &Request) -> Request {
        match r {
            Request::Meta(m) => {
                let mut m = m.clone();
                m.raw = bytes::Bytes::new();
                Request::Meta(m)
            }
            other => other.clone(),
        }
    }
    for r in items.iter().flatten() {
        let mut wire = BytesMut::new();
        r.encode(&mut wire);
        let back = decode_cut(&mut ServerCodec::new(limits), &wire, &[]);
        let typed_back: Vec<_> = back.iter().map(|b| b.as_ref().map(typed)).collect();
        assert_eq!(typed_back, vec![Ok(typed(r))], "re-encoded as {wire:?}");
        let mut again = BytesMut::new();
        if let Some(Ok(b)) = back.first() {
            b.encode(&mut again);
        }
        assert_eq!(again, wire, "encoding is not stable");
    }
}

/// Every reply a client decodes encodes to bytes it decodes to the same reply.
fn assert_responses_reencode(items: &[Response]) {
    for r in items {
        let mut wire = BytesMut::new();
        r.encode(&mut wire);
        let back = decode_cut(&mut ClientCodec, &wire, &[]);
        assert_eq!(back, vec![r.clone()], "re-encoded as {wire:?}");
    }
}

/// Applies byte-level mutations (overwrite, insert, delete, duplicate, truncate) to `bytes`.
fn mutate(bytes: &mut Vec<u8>, ops: &[(u8, usize, usize, u8)]) {
    for &(op, at, len, byte) in ops {
        let n = bytes.len();
        if n == 0 {
            bytes.push(byte);
            continue;
        }
        let at = at % n;
        let len = 1 + len % 8;
        match op % 5 {
            0 => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            2 => {
                bytes.drain(at..(at + len).min(n));
            }
            3 => {
                let piece = bytes[at..(at + len).min(n)].to_vec();
                bytes.splice(at..at, piece);
            }
            _ => bytes.truncate(at),
        }
    }
}

/// Pieces of the protocol, for building inputs that get deeper into the parsers than uniform
/// random bytes do.
const VOCABULARY: &[&[u8]] = &[
    b"get ",
    b"gets ",
    b"gat ",
    b"set ",
    b"cas ",
    b"append ",
    b"incr ",
    b"decr ",
    b"delete ",
    b"touch ",
    b"flush_all",
    b"verbosity ",
    b"stats",
    b"mg ",
    b"ms ",
    b"md ",
    b"ma ",
    b"me ",
    b"mn",
    b"lru_crawler metadump ",
    b"k",
    b"Zm9v",
    b" ",
    b"  ",
    b"0",
    b"1",
    b"5",
    b"-1",
    b"+",
    b"18446744073709551616",
    b"2147483647",
    b"noreply",
    b" b",
    b" v",
    b" q",
    b" O",
    b" T",
    b" M",
    b" N",
    b" k",
    b" c",
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b"\t",
    b"\x80",
    b"VALUE ",
    b"END",
    b"STAT ",
    b"key=",
    b"VA ",
    b"HD",
    b"EN",
    b"ME ",
    b"VERSION ",
    b"CLIENT_ERROR ",
    b"STORED",
    b"HTTP/1.1",
];

fn vocabulary_input() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(proptest::sample::select(VOCABULARY.to_vec()), 0..60)
        .prop_map(|parts| parts.concat())
}

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn request_encode_then_parse_is_identity(req in request()) {
        let mut wire = BytesMut::new();
        req.encode(&mut wire);
        let got = decode_cut(&mut ServerCodec::new(limits()), &wire, &[]);
        prop_assert_eq!(got, vec![Ok(req)]);
    }

    #[test]
    fn response_encode_then_parse_is_identity(resp in response()) {
        let mut wire = BytesMut::new();
        resp.encode(&mut wire);
        let got = decode_cut(&mut ClientCodec, &wire, &[]);
        prop_assert_eq!(got, vec![resp]);
    }

    #[test]
    fn request_streams_decode_the_same_however_cut(
        (wire, want) in stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = decode_cut(&mut ServerCodec::new(limits()), &wire, &[]);
        prop_assert_eq!(&whole, &want);
        let split = decode_cut(&mut ServerCodec::new(limits()), &wire, &cuts);
        prop_assert_eq!(&split, &want);
    }

    #[test]
    fn response_streams_decode_the_same_however_cut(
        resps in proptest::collection::vec(response(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = BytesMut::new();
        for r in &resps {
            r.encode(&mut wire);
        }
        let got = decode_cut(&mut ClientCodec, &wire, &cuts);
        prop_assert_eq!(got, resps);
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_stall(
        input in proptest::collection::vec(any::<u8>(), 0..3000),
    ) {
        assert_garbage_handled(&input, Limits { max_item_size: 1024 });
    }

    #[test]
    fn protocol_shaped_garbage_never_panics_or_stalls(input in vocabulary_input()) {
        assert_garbage_handled(&input, Limits { max_item_size: 1024 });
    }

    #[test]
    fn mutated_requests_never_panic_or_stall(
        (wire, _) in stream(),
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = wire;
        mutate(&mut bytes, &ops);
        assert_garbage_handled(&bytes, limits());
    }

    #[test]
    fn mutated_responses_never_panic_or_stall(
        resps in proptest::collection::vec(response(), 1..6),
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>(), any::<u8>()), 1..6),
    ) {
        let mut wire = BytesMut::new();
        for r in &resps {
            r.encode(&mut wire);
        }
        let mut bytes = wire.to_vec();
        mutate(&mut bytes, &ops);
        assert_garbage_handled(&bytes, limits());
    }
}

// ---------------------------------------------------------------------------------------------
// Exhaustive cuts of one fixed stream holding every kind of framing.
// ---------------------------------------------------------------------------------------------

fn fixed_stream() -> (Vec<u8>, Vec<Result<Request, Fault>>) {
    let mut wire = Vec::new();
    let mut want = Vec::new();
    let reqs = [
        Request::Store {
            cmd: StoreCmd::Set,
            key: Bytes::from_static(b"a"),
            flags: 1,
            exptime: 0,
            cas: 0,
            value: Bytes::from_static(b"he\r\nllo"),
            noreply: false,
        },
        Request::Get {
            cmd: GetCmd::Gets,
            exptime: None,
            keys: vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
        },
        Request::Meta(Box::new(MetaRequest::new(
            MetaCmd::Set,
            Bytes::from_static(b"\x00bin"),
            MetaFlags {
                base64: true,
                quiet: true,
                opaque: Some(Bytes::from_static(b"x1")),
                ..MetaFlags::default()
            },
            Some(Bytes::from_static(b"\r\n")),
        ))),
        Request::MetaNoop,
    ];
    for r in &reqs {
        let mut b = BytesMut::new();
        r.encode(&mut b);
        wire.extend_from_slice(&b);
        want.push(Ok(r.clone()));
    }
    wire.extend_from_slice(b"set k 0 0 2\r\nabcd\r\n");
    want.push(Err(Fault::new(Fault::BAD_CHUNK)));
    want.push(Err(Fault::new(Fault::ERROR)));
    wire.extend_from_slice(b"ms k 3 MZ\r\nabc\r\n");
    want.push(Err(Fault::new("CLIENT_ERROR invalid mode for ms M token")));
    wire.extend_from_slice(b"set big 0 0 200\r\n");
    wire.extend(std::iter::repeat_n(b'z', 200));
    wire.extend_from_slice(b"\r\nmn\r\n");
    let mut too_large = Fault::new(Fault::TOO_LARGE);
    too_large.unlink = Some(Bytes::from_static(b"big"));
    want.push(Err(too_large));
    want.push(Ok(Request::MetaNoop));
    (wire, want)
}

#[test]
fn fixed_stream_decodes_the_same_at_every_cut_and_byte_by_byte() {
    let (wire, want) = fixed_stream();
    let small = Limits { max_item_size: 150 };
    assert_eq!(decode_cut(&mut ServerCodec::new(small), &wire, &[]), want);
    for cut in 0..=wire.len() {
        assert_eq!(
            decode_cut(&mut ServerCodec::new(small), &wire, &[cut]),
            want,
            "cut at {cut}"
        );
    }
    let every: Vec<usize> = (0..wire.len()).collect();
    assert_eq!(
        decode_cut(&mut ServerCodec::new(small), &wire, &every),
        want
    );
}

#[test]
fn fixed_reply_stream_decodes_the_same_at_every_cut() {
    let wire: &[u8] = b"VALUE a 1 7 9\r\nhe\r\nllo\r\nEND\r\nSTORED\r\nVA 2 Ox1\r\n\r\n\r\n\
        STAT pid 1\r\nSTAT x y z\r\nEND\r\nkey=a exp=-1\nEND\r\n42\r\nMN\r\nCLIENT_ERROR bad data chunk\r\n";
    let want = decode_cut(&mut ClientCodec, wire, &[]);
    assert_eq!(want.len(), 8, "{want:?}");
    assert_eq!(
        want[0],
        Response::Values(vec![Value {
            key: Bytes::from_static(b"a"),
            flags: 1,
            cas: Some(9),
            data: Bytes::from_static(b"he\r\nllo"),
        }])
    );
    assert_eq!(
        want[2],
        Response::Meta(MetaResponse {
            status: MetaStatus::Va,
            flags: Bytes::from_static(b"Ox1"),
            value: Some(Bytes::from_static(b"\r\n")),
        })
    );
    for cut in 0..=wire.len() {
        assert_eq!(
            decode_cut(&mut ClientCodec, wire, &[cut]),
            want,
            "cut at {cut}"
        );
    }
    let every: Vec<usize> = (0..wire.len()).collect();
    assert_eq!(decode_cut(&mut ClientCodec, wire, &every), want);
}
