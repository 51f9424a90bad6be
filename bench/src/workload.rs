//! What the bench sends: keys, values and the get/set mix, deterministic from `--seed`.
//!
//! A [`Workload`] is the immutable description shared by every connection (key space, key
//! length, value sizes, key distribution, set:get ratio, keys per get, protocol). Each connection
//! draws its own stream of [`Op`]s from an [`OpGen`] seeded from `(seed, stream)`, so the same seed
//! gives the same sequence on every run and every target — which is what makes an A/B comparison
//! fair. The generator is `Xoshiro256PlusPlus` (portable and stable across `rand` releases, unlike
//! `StdRng`); Zipf keys come from `rand_distr::Zipf` (rejection-inversion, exact and O(1)).
//!
//! Requests are built as the shared protocol types ([`Request`], [`MetaRequest`]) and encoded with
//! their own encoders: the bench has no second wire format.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use rand_xoshiro::Xoshiro256PlusPlus;
use ringcache_client::protocol::{
    valid_key, ArithCmd, GetCmd, MetaCmd, MetaFlags, MetaRequest, Request, StoreCmd, MAX_KEY_LEN,
};
use serde::{Serialize, Serializer};

use crate::error::{BenchError, Result};

/// Which protocol gets and sets are spoken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `get k1 k2 ...` / `set k 0 0 len`.
    Text,
    /// `mg <key> v f` (one per key) / `ms <key> <len> F0`.
    Meta,
}

/// `--write`: what the write share of `--ratio` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Write {
    /// `set` / `ms`.
    #[default]
    Set,
    /// `incr <key> 1` / `ma <key>`: a conditional write, run on the key's primary and copied
    /// to its replicas (issue 28's increment rows). The values (and the prefill) are zeros,
    /// so every key counts.
    Incr,
}

/// `--ratio SET:GET`: relative weights of sets and gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    pub set: u32,
    pub get: u32,
}

impl FromStr for Ratio {
    type Err = String;

    fn from_str(s: &str) -> Result<Ratio, String> {
        let (a, b) = s
            .split_once(':')
            .ok_or_else(|| format!("ratio {s:?} is not SET:GET"))?;
        let set = a
            .trim()
            .parse::<u32>()
            .map_err(|e| format!("ratio {s:?}: {e}"))?;
        let get = b
            .trim()
            .parse::<u32>()
            .map_err(|e| format!("ratio {s:?}: {e}"))?;
        if set == 0 && get == 0 {
            return Err(format!("ratio {s:?}: both weights are zero"));
        }
        if u64::from(set) + u64::from(get) > u64::from(u32::MAX) {
            return Err(format!("ratio {s:?}: weights too large"));
        }
        Ok(Ratio { set, get })
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.set, self.get)
    }
}

/// `--value-size N` or `--value-size MIN-MAX` (uniform, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueSize {
    pub min: usize,
    pub max: usize,
}

impl ValueSize {
    /// Largest value size memcached accepts by default (`-I 1m`); larger makes no sense here.
    pub const LIMIT: usize = 1024 * 1024;
}

impl FromStr for ValueSize {
    type Err = String;

    fn from_str(s: &str) -> Result<ValueSize, String> {
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|e| format!("value size {s:?}: {e}"))
        };
        let (min, max) = match s.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(s)?;
                (n, n)
            }
        };
        if min > max {
            return Err(format!("value size {s:?}: MIN is larger than MAX"));
        }
        if max > ValueSize::LIMIT {
            return Err(format!("value size {s:?}: over {} bytes", ValueSize::LIMIT));
        }
        Ok(ValueSize { min, max })
    }
}

impl fmt::Display for ValueSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

/// `--dist uniform|zipf:S`: how keys are drawn from the key space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    Uniform,
    /// Zipf with exponent `s`: key of rank `r` (1-based) has weight `r^-s`. Rank 1 is key 0.
    Zipf(f64),
}

impl FromStr for Dist {
    type Err = String;

    fn from_str(s: &str) -> Result<Dist, String> {
        if s == "uniform" {
            return Ok(Dist::Uniform);
        }
        let exp = s
            .strip_prefix("zipf:")
            .ok_or_else(|| format!("distribution {s:?} is not uniform or zipf:S"))?;
        let v = exp
            .parse::<f64>()
            .map_err(|e| format!("distribution {s:?}: {e}"))?;
        if !v.is_finite() || v < 0.0 {
            return Err(format!("distribution {s:?}: S must be a number >= 0"));
        }
        Ok(Dist::Zipf(v))
    }
}

impl fmt::Display for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dist::Uniform => f.write_str("uniform"),
            Dist::Zipf(s) => write!(f, "zipf:{s}"),
        }
    }
}

macro_rules! serialize_as_display {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}
serialize_as_display!(Ratio, ValueSize, Dist);

/// Everything that decides which ops are generated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadSpec {
    /// Size of the key space: keys are indices `0..keys`.
    pub keys: u64,
    /// Every key is exactly this long: the prefix, then the index zero-padded.
    pub key_len: usize,
    pub key_prefix: String,
    pub value_size: ValueSize,
    pub dist: Dist,
    pub ratio: Ratio,
    /// Keys per get.
    pub multiget: usize,
    pub protocol: Protocol,
    pub seed: u64,
    pub write: Write,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            keys: 100_000,
            key_len: 16,
            key_prefix: "k".into(),
            value_size: ValueSize { min: 100, max: 100 },
            dist: Dist::Uniform,
            ratio: Ratio { set: 1, get: 10 },
            multiget: 1,
            protocol: Protocol::Text,
            seed: 1,
            write: Write::Set,
        }
    }
}

/// One operation: a get of one or more keys, a set of one key, or an increment of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Get { keys: Vec<u64> },
    Set { key: u64, size: usize },
    Incr { key: u64 },
}

impl Op {
    /// Whether this is a get.
    pub fn is_get(&self) -> bool {
        matches!(self, Op::Get { .. })
    }
}

/// The validated, shareable workload: spec plus the value bytes every set slices from.
#[derive(Debug)]
pub struct Workload {
    spec: WorkloadSpec,
    /// `max` value-size bytes of a fixed pattern; a set of size n sends the first n (no copy).
    value_pool: Bytes,
    zipf: Option<Zipf<f64>>,
    /// Digits the index is padded to.
    digits: usize,
}

/// Mixes a stream number into the seed so each connection gets an unrelated stream.
fn stream_seed(seed: u64, stream: u64) -> u64 {
    // splitmix64 finaliser over seed ⊕ golden-ratio multiple of the stream.
    let mut z = seed ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Workload {
    /// Checks the spec and prepares the value pool and the Zipf sampler.
    pub fn new(spec: WorkloadSpec) -> Result<Workload> {
        if spec.keys == 0 {
            return Err(BenchError::InvalidArg("--keys must be at least 1".into()));
        }
        if spec.multiget == 0 {
            return Err(BenchError::InvalidArg(
                "--multiget must be at least 1".into(),
            ));
        }
        let digits = (spec.keys - 1).to_string().len();
        let need = spec.key_prefix.len() + digits;
        if spec.key_len < need {
            return Err(BenchError::InvalidArg(format!(
                "--key-len {} is too short for prefix {:?} and {} keys (need {need})",
                spec.key_len, spec.key_prefix, spec.keys
            )));
        }
        if spec.key_len > MAX_KEY_LEN {
            return Err(BenchError::InvalidArg(format!(
                "--key-len {} is over memcached's {MAX_KEY_LEN}",
                spec.key_len
            )));
        }
        let digits = spec.key_len - spec.key_prefix.len();
        let zipf = match spec.dist {
            Dist::Uniform => None,
            Dist::Zipf(s) => Some(
                Zipf::new(spec.keys as f64, s)
                    .map_err(|e| BenchError::InvalidArg(format!("zipf:{s}: {e}")))?,
            ),
        };
        // Zeros for increments: memcached reads "000…0" as the number 0.
        let value_pool = Bytes::from(
            (0..spec.value_size.max)
                .map(|i| match spec.write {
                    Write::Set => b'a' + (i % 26) as u8,
                    Write::Incr => b'0',
                })
                .collect::<Vec<u8>>(),
        );
        let w = Workload {
            spec,
            value_pool,
            zipf,
            digits,
        };
        let probe = w.key(w.spec.keys - 1);
        if !valid_key(&probe) {
            return Err(BenchError::InvalidArg(format!(
                "key {:?} is not a valid memcached key (check --key-prefix)",
                String::from_utf8_lossy(&probe)
            )));
        }
        Ok(w)
    }

    /// The spec this workload was built from.
    pub fn spec(&self) -> &WorkloadSpec {
        &self.spec
    }

    /// The key with index `idx`: prefix then the index zero-padded to `key_len`.
    pub fn key(&self, idx: u64) -> Bytes {
        let mut b = BytesMut::with_capacity(self.spec.key_len);
        b.put_slice(self.spec.key_prefix.as_bytes());
        let mut digits = [b'0'; 20];
        let mut n = idx;
        let mut i = digits.len();
        while n > 0 && i > 0 {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        let used = digits.len() - i;
        for _ in used..self.digits {
            b.put_u8(b'0');
        }
        b.put_slice(&digits[i..]);
        b.freeze()
    }

    /// A value of `size` bytes (a slice of the shared pool; `size` ≤ the configured max).
    pub fn value(&self, size: usize) -> Bytes {
        self.value_pool.slice(..size.min(self.value_pool.len()))
    }

    /// The op stream number `stream` (one per connection) of this workload's seed.
    pub fn generator(self: &Arc<Self>, stream: u64) -> OpGen {
        OpGen {
            w: Arc::clone(self),
            rng: Xoshiro256PlusPlus::seed_from_u64(stream_seed(self.spec.seed, stream)),
        }
    }

    /// Appends `op`'s wire form to `buf`; returns how many replies it will get.
    pub fn encode(&self, op: &Op, buf: &mut BytesMut) -> u32 {
        match (op, self.spec.protocol) {
            (Op::Get { keys }, Protocol::Text) => {
                Request::Get {
                    cmd: GetCmd::Get,
                    exptime: None,
                    keys: keys.iter().map(|&k| self.key(k)).collect(),
                }
                .encode(buf);
                1
            }
            (Op::Get { keys }, Protocol::Meta) => {
                for &k in keys {
                    MetaRequest {
                        cmd: MetaCmd::Get,
                        key: self.key(k),
                        flags: MetaFlags {
                            value: true,
                            ret_flags: true,
                            ..MetaFlags::default()
                        },
                        raw: Bytes::from_static(b"v f"),
                        value: None,
                    }
                    .encode(buf);
                }
                keys.len() as u32
            }
            (Op::Set { key, size }, Protocol::Text) => {
                Request::Store {
                    cmd: StoreCmd::Set,
                    key: self.key(*key),
                    flags: 0,
                    exptime: 0,
                    cas: 0,
                    value: self.value(*size),
                    noreply: false,
                }
                .encode(buf);
                1
            }
            (Op::Set { key, size }, Protocol::Meta) => {
                MetaRequest {
                    cmd: MetaCmd::Set,
                    key: self.key(*key),
                    flags: MetaFlags {
                        client_flags: Some(0),
                        ..MetaFlags::default()
                    },
                    raw: Bytes::from_static(b"F0"),
                    value: Some(self.value(*size)),
                }
                .encode(buf);
                1
            }
            (Op::Incr { key }, Protocol::Text) => {
                Request::Arith {
                    cmd: ArithCmd::Incr,
                    key: self.key(*key),
                    delta: 1,
                    noreply: false,
                }
                .encode(buf);
                1
            }
            (Op::Incr { key }, Protocol::Meta) => {
                MetaRequest {
                    cmd: MetaCmd::Arith,
                    key: self.key(*key),
                    flags: MetaFlags::default(),
                    raw: Bytes::new(),
                    value: None,
                }
                .encode(buf);
                1
            }
        }
    }
}

/// One connection's deterministic op stream.
#[derive(Debug, Clone)]
pub struct OpGen {
    w: Arc<Workload>,
    rng: Xoshiro256PlusPlus,
}

impl OpGen {
    /// Draws a key index according to the distribution.
    pub fn next_key(&mut self) -> u64 {
        let n = self.w.spec.keys;
        match &self.w.zipf {
            None => self.rng.random_range(0..n),
            // Samples are whole numbers in [1, n] held as f64; clamp guards the float edge.
            Some(z) => (z.sample(&mut self.rng) as u64).clamp(1, n) - 1,
        }
    }

    /// Draws a value size in the configured range.
    pub fn next_size(&mut self) -> usize {
        let ValueSize { min, max } = self.w.spec.value_size;
        if min == max {
            min
        } else {
            self.rng.random_range(min..=max)
        }
    }

    /// Draws the next op.
    pub fn next_op(&mut self) -> Op {
        let Ratio { set, get } = self.w.spec.ratio;
        let is_set = self.rng.random_range(0..set + get) < set;
        if is_set && self.w.spec.write == Write::Incr {
            Op::Incr {
                key: self.next_key(),
            }
        } else if is_set {
            Op::Set {
                key: self.next_key(),
                size: self.next_size(),
            }
        } else {
            Op::Get {
                keys: (0..self.w.spec.multiget).map(|_| self.next_key()).collect(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(f: impl FnOnce(&mut WorkloadSpec)) -> Arc<Workload> {
        let mut spec = WorkloadSpec::default();
        f(&mut spec);
        Arc::new(Workload::new(spec).expect("valid spec"))
    }

    #[test]
    fn parses_knobs() {
        assert_eq!("1:10".parse::<Ratio>(), Ok(Ratio { set: 1, get: 10 }));
        assert_eq!("0:1".parse::<Ratio>(), Ok(Ratio { set: 0, get: 1 }));
        assert!("0:0".parse::<Ratio>().is_err());
        assert!("1/10".parse::<Ratio>().is_err());
        assert_eq!(
            "100".parse::<ValueSize>(),
            Ok(ValueSize { min: 100, max: 100 })
        );
        assert_eq!(
            "10-2000".parse::<ValueSize>(),
            Ok(ValueSize { min: 10, max: 2000 })
        );
        assert!("20-10".parse::<ValueSize>().is_err());
        assert!("2000000".parse::<ValueSize>().is_err());
        assert_eq!("uniform".parse::<Dist>(), Ok(Dist::Uniform));
        assert_eq!("zipf:0.99".parse::<Dist>(), Ok(Dist::Zipf(0.99)));
        assert!("zipf:-1".parse::<Dist>().is_err());
        assert!("zipf".parse::<Dist>().is_err());
        assert_eq!(
            "zipf:1.2".parse::<Dist>().map(|d| d.to_string()),
            Ok("zipf:1.2".into())
        );
    }

    #[test]
    fn keys_have_fixed_length_and_are_distinct() {
        let w = workload(|s| {
            s.keys = 1000;
            s.key_len = 10;
            s.key_prefix = "key:".into();
        });
        assert_eq!(&w.key(0)[..], b"key:000000");
        assert_eq!(&w.key(7)[..], b"key:000007");
        assert_eq!(&w.key(999)[..], b"key:000999");
        let all: std::collections::HashSet<_> = (0..1000).map(|i| w.key(i)).collect();
        assert_eq!(all.len(), 1000);
        assert!(all.iter().all(|k| k.len() == 10 && valid_key(k)));
    }

    #[test]
    fn rejects_bad_specs() {
        let bad = |f: fn(&mut WorkloadSpec)| {
            let mut s = WorkloadSpec::default();
            f(&mut s);
            Workload::new(s).is_err()
        };
        assert!(bad(|s| s.keys = 0));
        assert!(bad(|s| s.multiget = 0));
        assert!(bad(|s| {
            s.keys = 1_000_000;
            s.key_len = 4
        }));
        assert!(bad(|s| s.key_len = 251));
        assert!(bad(|s| s.key_prefix = "a b".into()));
    }

    #[test]
    fn same_seed_same_sequence_other_seed_differs() {
        let w = workload(|s| s.seed = 42);
        let a: Vec<Op> = {
            let mut g = w.generator(3);
            (0..1000).map(|_| g.next_op()).collect()
        };
        let b: Vec<Op> = {
            let mut g = w.generator(3);
            (0..1000).map(|_| g.next_op()).collect()
        };
        assert_eq!(a, b);
        let other_stream: Vec<Op> = {
            let mut g = w.generator(4);
            (0..1000).map(|_| g.next_op()).collect()
        };
        assert_ne!(a, other_stream);
        let w2 = workload(|s| s.seed = 43);
        let c: Vec<Op> = {
            let mut g = w2.generator(3);
            (0..1000).map(|_| g.next_op()).collect()
        };
        assert_ne!(a, c);
    }

    #[test]
    fn set_get_ratio_within_tolerance() {
        for (set, get) in [(1u32, 10u32), (1, 1), (3, 1), (0, 1), (1, 0)] {
            let w = workload(|s| s.ratio = Ratio { set, get });
            let mut g = w.generator(0);
            let n = 100_000;
            let sets = (0..n).filter(|_| !g.next_op().is_get()).count();
            let expect = f64::from(set) / f64::from(set + get);
            let got = sets as f64 / n as f64;
            assert!(
                (got - expect).abs() < 0.01,
                "{set}:{get}: set share {got}, expected {expect}"
            );
        }
    }

    #[test]
    fn multiget_has_n_keys() {
        let w = workload(|s| {
            s.multiget = 7;
            s.ratio = Ratio { set: 0, get: 1 };
        });
        let mut g = w.generator(0);
        for _ in 0..100 {
            match g.next_op() {
                Op::Get { keys } => assert_eq!(keys.len(), 7),
                op => panic!("unexpected {op:?}"),
            }
        }
    }

    #[test]
    fn uniform_covers_the_key_space_evenly() {
        let n = 1000u64;
        let w = workload(|s| s.keys = n);
        let mut g = w.generator(0);
        let mut seen = vec![0u32; n as usize];
        let draws = 100_000;
        for _ in 0..draws {
            let k = g.next_key();
            assert!(k < n);
            seen[k as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 0), "some key never drawn");
        // Expected 100 per key; a uniform sampler stays well inside 40..180.
        let (lo, hi) = (
            *seen.iter().min().unwrap_or(&0),
            *seen.iter().max().unwrap_or(&0),
        );
        assert!(lo > 40 && hi < 180, "min {lo} max {hi}");
        // Both halves get about half.
        let low_half: u32 = seen[..500].iter().sum();
        let share = f64::from(low_half) / draws as f64;
        assert!((share - 0.5).abs() < 0.01, "low half share {share}");
    }

    /// Share of the top `top` ranks out of `n` under Zipf(s): H(top, s) / H(n, s).
    fn zipf_top_share(n: u64, top: u64, s: f64) -> f64 {
        let h = |m: u64| (1..=m).map(|r| (r as f64).powf(-s)).sum::<f64>();
        h(top) / h(n)
    }

    #[test]
    fn zipf_top_percent_gets_the_implied_share() {
        let n = 10_000u64;
        for s in [0.7, 0.99, 1.2] {
            let w = workload(|sp| {
                sp.keys = n;
                sp.dist = Dist::Zipf(s);
            });
            let mut g = w.generator(0);
            let draws = 200_000;
            let top = n / 100;
            let mut in_top = 0u64;
            let mut key0 = 0u64;
            for _ in 0..draws {
                let k = g.next_key();
                assert!(k < n);
                in_top += u64::from(k < top);
                key0 += u64::from(k == 0);
            }
            let got = in_top as f64 / draws as f64;
            let expect = zipf_top_share(n, top, s);
            assert!(
                (got - expect).abs() < 0.01,
                "zipf:{s}: top 1% share {got:.4}, expected {expect:.4}"
            );
            let got0 = key0 as f64 / draws as f64;
            let expect0 = zipf_top_share(n, 1, s);
            assert!(
                (got0 - expect0).abs() < 0.006,
                "zipf:{s}: key 0 share {got0:.4}, expected {expect0:.4}"
            );
        }
        // And uniform's top 1% really gets ~1%: the test above can tell the two apart.
        let w = workload(|sp| sp.keys = n);
        let mut g = w.generator(0);
        let top = (0..100_000).filter(|_| g.next_key() < n / 100).count();
        assert!((top as f64 / 100_000.0 - 0.01).abs() < 0.003);
    }

    #[test]
    fn value_sizes_within_range() {
        let w = workload(|s| {
            s.value_size = ValueSize { min: 10, max: 50 };
            s.ratio = Ratio { set: 1, get: 0 };
        });
        let mut g = w.generator(0);
        let mut seen_min = usize::MAX;
        let mut seen_max = 0;
        for _ in 0..10_000 {
            let Op::Set { size, .. } = g.next_op() else {
                panic!("expected only sets");
            };
            assert!((10..=50).contains(&size), "size {size}");
            assert_eq!(w.value(size).len(), size);
            seen_min = seen_min.min(size);
            seen_max = seen_max.max(size);
        }
        assert_eq!((seen_min, seen_max), (10, 50), "range ends are reachable");
        let fixed = workload(|s| s.value_size = ValueSize { min: 64, max: 64 });
        let mut g = fixed.generator(0);
        assert!((0..100).all(|_| g.next_size() == 64));
    }

    #[test]
    fn encodes_with_the_shared_protocol() {
        let text = workload(|s| {
            s.keys = 100;
            s.key_len = 4;
            s.value_size = ValueSize { min: 3, max: 3 };
        });
        let mut buf = BytesMut::new();
        assert_eq!(text.encode(&Op::Get { keys: vec![1, 22] }, &mut buf), 1);
        assert_eq!(text.encode(&Op::Set { key: 5, size: 3 }, &mut buf), 1);
        assert_eq!(&buf[..], b"get k001 k022\r\nset k005 0 0 3\r\nabc\r\n");

        let meta = workload(|s| {
            s.keys = 100;
            s.key_len = 4;
            s.value_size = ValueSize { min: 3, max: 3 };
            s.protocol = Protocol::Meta;
        });
        let mut buf = BytesMut::new();
        assert_eq!(meta.encode(&Op::Get { keys: vec![1, 22] }, &mut buf), 2);
        assert_eq!(meta.encode(&Op::Set { key: 5, size: 3 }, &mut buf), 1);
        assert_eq!(
            &buf[..],
            b"mg k001 v f\r\nmg k022 v f\r\nms k005 3 F0\r\nabc\r\n"
        );
    }
}
