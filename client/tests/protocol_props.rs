//! Property tests of the shared protocol module: what we encode parses back to the same thing,
//! a stream parses the same however it is cut, and no input makes the parsers panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use ringcache_client::protocol::parse::Limits;
use ringcache_client::protocol::{
    ArithCmd, ClientCodec, Fault, GetCmd, MetaCmd, MetaFlags, MetaRequest, Request, Response,
    ServerCodec, StoreCmd, Value,
};
use tokio_util::codec::Decoder;

fn key() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(0x21u8..0x7f, 1..=250).prop_map(Bytes::from)
}

fn value() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn exptime() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0i64), -100i64..100, 0i64..=i64::from(i32::MAX)]
}

fn request() -> impl Strategy<Value = Request> {
    let store = (
        prop_oneof![
            Just(StoreCmd::Set),
            Just(StoreCmd::Add),
            Just(StoreCmd::Replace),
            Just(StoreCmd::Append),
            Just(StoreCmd::Prepend),
            Just(StoreCmd::Cas)
        ],
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
        prop_oneof![
            Just(GetCmd::Get),
            Just(GetCmd::Gets),
            Just(GetCmd::Gat),
            Just(GetCmd::Gats)
        ],
        exptime(),
        proptest::collection::vec(key(), 1..5),
    )
        .prop_map(|(cmd, e, keys)| Request::Get {
            cmd,
            exptime: matches!(cmd, GetCmd::Gat | GetCmd::Gats).then_some(e),
            keys,
        });
    let other = prop_oneof![
        (key(), any::<bool>()).prop_map(|(key, noreply)| Request::Delete { key, noreply }),
        (key(), any::<u64>(), any::<bool>(), any::<bool>()).prop_map(
            |(key, delta, incr, noreply)| {
                Request::Arith {
                    cmd: if incr { ArithCmd::Incr } else { ArithCmd::Decr },
                    key,
                    delta,
                    noreply,
                }
            }
        ),
        (key(), exptime(), any::<bool>()).prop_map(|(key, exptime, noreply)| Request::Touch {
            key,
            exptime,
            noreply
        }),
        Just(Request::Version),
        Just(Request::MetaNoop),
        (
            key(),
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(0i64..1000),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(key, v, q, ttl, cas)| {
                let flags = MetaFlags {
                    value: v,
                    quiet: q,
                    ret_cas: true,
                    ttl,
                    compare_cas: cas,
                    ..MetaFlags::default()
                };
                Request::Meta(MetaRequest::new(MetaCmd::Get, key, flags, None))
            }),
        (
            key(),
            value(),
            proptest::option::of(any::<u64>()),
            any::<u32>()
        )
            .prop_map(|(key, v, e, f)| {
                let flags = MetaFlags {
                    new_cas: e,
                    client_flags: Some(f),
                    ..MetaFlags::default()
                };
                Request::Meta(MetaRequest::new(MetaCmd::Set, key, flags, Some(v)))
            }),
    ];
    prop_oneof![store, get, other]
}

fn response() -> impl Strategy<Value = Response> {
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
        proptest::collection::vec(
            (
                key(),
                any::<u32>(),
                proptest::option::of(any::<u64>()),
                value()
            ),
            0..4
        )
        .prop_map(|vs| Response::Values(
            vs.into_iter()
                .map(|(key, flags, cas, data)| Value {
                    key,
                    flags,
                    cas,
                    data
                })
                .collect()
        )),
    ]
}

fn decode_all<D: Decoder>(codec: &mut D, input: &[u8], cuts: &[usize]) -> Vec<D::Item>
where
    D::Error: std::fmt::Debug,
{
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut last = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    points.push(input.len());
    for p in points {
        buf.extend_from_slice(&input[last..p.max(last)]);
        last = p.max(last);
        while let Some(item) = codec.decode(&mut buf).expect("valid stream") {
            out.push(item);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn requests_round_trip_and_survive_any_split(
        reqs in proptest::collection::vec(request(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut wire = BytesMut::new();
        for r in &reqs {
            r.encode(&mut wire);
        }
        let whole: Vec<Result<Request, Fault>> = decode_all(&mut ServerCodec::new(Limits::default()), &wire, &[]);
        let split: Vec<Result<Request, Fault>> = decode_all(&mut ServerCodec::new(Limits::default()), &wire, &cuts);
        let want: Vec<Result<Request, Fault>> = reqs.iter().cloned().map(Ok).collect();
        prop_assert_eq!(&whole, &want);
        prop_assert_eq!(&split, &want);
    }

    #[test]
    fn responses_round_trip_and_survive_any_split(
        resps in proptest::collection::vec(response(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut wire = BytesMut::new();
        for r in &resps {
            r.encode(&mut wire);
        }
        let got: Vec<Response> = decode_all(&mut ClientCodec, &wire, &cuts);
        prop_assert_eq!(got, resps);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut codec = ServerCodec::new(Limits { max_item_size: 1024 });
        let mut buf = BytesMut::from(&input[..]);
        // Bounded: every item consumes bytes or the decoder asks for more.
        for _ in 0..10_000 {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let mut buf = BytesMut::from(&input[..]);
        for _ in 0..10_000 {
            match ClientCodec.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    #[test]
    fn mutated_requests_never_panic(req in request(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut wire = BytesMut::new();
        req.encode(&mut wire);
        let mut bytes = wire.to_vec();
        let i = pos % bytes.len();
        bytes[i] = byte;
        let mut codec = ServerCodec::new(Limits::default());
        let mut buf = BytesMut::from(&bytes[..]);
        for _ in 0..1_000 {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}
