//! The command line: every knob of `ringcache-bench`, parsed with clap and checked together.
//!
//! [`Args`] is also the library's entry point for a run (tests build it with
//! `Args::try_parse_from`), and it is echoed into the JSON report so a result file says how it
//! was produced.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use serde::{Serialize, Serializer};

use crate::driver::DriverOptions;
use crate::error::{BenchError, Result};
use crate::workload::{Dist, Protocol, Ratio, ValueSize, WorkloadSpec, Write};

/// Measured window when neither `--duration` nor `--requests` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Cap on a `--requests` run without `--duration`, so a stalled target cannot hang the bench.
pub const REQUESTS_CAP: Duration = Duration::from_secs(3600);

/// `--pids PID[,PID...]`: processes whose CPU time is charged to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidList(pub Vec<u32>);

impl FromStr for PidList {
    type Err = String;

    fn from_str(s: &str) -> Result<PidList, String> {
        let pids = s
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<u32>()
                    .map_err(|e| format!("pid {p:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if pids.is_empty() {
            return Err("empty pid list".into());
        }
        Ok(PidList(pids))
    }
}

impl fmt::Display for PidList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

impl Serialize for PidList {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Seconds as a decimal number (`2`, `0.5`).
fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !v.is_finite() || !(0.0..=86_400.0 * 7.0).contains(&v) {
        return Err(format!("{s:?}: seconds must be between 0 and one week"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn ser_secs<S: Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ser_opt_secs<S: Serializer>(d: &Option<Duration>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// Load generator and A/B comparison harness for memcached-compatible servers.
///
/// With one --target it runs one load and prints a table. With several it runs them alternately
/// (A B A B …) for --rounds rounds and prints per-round figures, the median per target and the
/// ratio of each median to the first target's.
#[derive(Debug, Clone, Parser, Serialize)]
#[command(
    name = "ringcache-bench",
    version,
    about,
    long_about = None
)]
pub struct Args {
    /// Server to load, HOST:PORT. Repeat to compare several targets.
    #[arg(long = "target", value_name = "HOST:PORT", required = true)]
    pub targets: Vec<String>,

    /// TCP connections per target.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,

    /// Tokio worker threads (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,

    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,

    /// Length of the measured window in seconds (default 10; a cap when --requests is given).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    #[serde(serialize_with = "ser_opt_secs")]
    pub duration: Option<Duration>,

    /// Stop after this many measured requests in total.
    #[arg(long)]
    pub requests: Option<u64>,

    /// Seconds of load before measuring starts.
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_secs)]
    #[serde(serialize_with = "ser_secs")]
    pub warmup: Duration,

    /// Relative weights of sets and gets, SET:GET.
    #[arg(long, default_value = "1:10")]
    pub ratio: Ratio,

    /// What the writes of `--ratio` are: `set`, or `incr` (values and prefill are zeros).
    #[arg(long, value_enum, default_value_t = Write::Set)]
    pub write: Write,

    /// Keys per get (text: one `get k1 … kN`; meta: N `mg` commands).
    #[arg(long, default_value_t = 1)]
    pub multiget: usize,

    /// Size of the key space.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,

    /// Length of every key in bytes (prefix + zero-padded index).
    #[arg(long, default_value_t = 16)]
    pub key_len: usize,

    /// Prefix of every key.
    #[arg(long, default_value = "k")]
    pub key_prefix: String,

    /// Value size in bytes, N or MIN-MAX (uniform).
    #[arg(long, value_name = "N|MIN-MAX", default_value = "100")]
    pub value_size: ValueSize,

    /// Key distribution: uniform or zipf:S (e.g. zipf:0.99).
    #[arg(long, default_value = "uniform")]
    pub dist: Dist,

    /// Set every key once before measuring.
    #[arg(long)]
    pub prefill: bool,

    /// Open loop at this many requests per second in total (latency from the intended send
    /// time); closed loop when absent.
    #[arg(long, value_name = "OPS")]
    pub rate: Option<f64>,

    /// Seed of the op streams: the same seed sends the same ops.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Processes whose CPU time to report, PID[,PID...]. Give once for all targets or once per
    /// --target, in the same order.
    #[arg(long = "pids", value_name = "PID[,PID...]")]
    pub pids: Vec<PidList>,

    /// Rounds of A B A B … in compare mode.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,

    /// Protocol for gets and sets.
    #[arg(long, value_enum, default_value_t = Protocol::Text)]
    pub protocol: Protocol,

    /// Seconds a connection with requests in flight may go without progress before it is
    /// re-opened (its requests count as failed); also the connect timeout.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    #[serde(serialize_with = "ser_secs")]
    pub timeout: Duration,

    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,

    /// Speak TLS to every TCP target, trusting the CA certificates in this PEM file; a
    /// target's certificate must name the host given in --target (an IP address SAN for
    /// 127.0.0.1). Not for `embedded:` targets.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
}

impl Args {
    /// Checks the knobs that clap cannot check alone.
    pub fn validate(&self) -> Result<()> {
        if self.rounds == 0 {
            return Err(BenchError::InvalidArg("--rounds must be at least 1".into()));
        }
        if self.threads == Some(0) {
            return Err(BenchError::InvalidArg(
                "--threads must be at least 1".into(),
            ));
        }
        if !self.pids.is_empty() && self.pids.len() != 1 && self.pids.len() != self.targets.len() {
            return Err(BenchError::InvalidArg(format!(
                "--pids given {} times for {} targets: give it once, or once per target",
                self.pids.len(),
                self.targets.len()
            )));
        }
        if self.tls_ca.is_some()
            && self
                .targets
                .iter()
                .any(|t| crate::driver::embedded::parse(t).is_some())
        {
            return Err(BenchError::InvalidArg(
                "--tls-ca applies to TCP targets only, not to embedded: ones".into(),
            ));
        }
        self.driver_options().validate()
    }

    /// What to send.
    pub fn workload_spec(&self) -> WorkloadSpec {
        WorkloadSpec {
            keys: self.keys,
            key_len: self.key_len,
            key_prefix: self.key_prefix.clone(),
            value_size: self.value_size,
            dist: self.dist,
            ratio: self.ratio,
            multiget: self.multiget,
            protocol: self.protocol,
            seed: self.seed,
            write: self.write,
        }
    }

    /// How to send it.
    pub fn driver_options(&self) -> DriverOptions {
        let duration = match (self.duration, self.requests) {
            (Some(d), _) => d,
            (None, Some(_)) => REQUESTS_CAP,
            (None, None) => DEFAULT_DURATION,
        };
        DriverOptions {
            connections: self.connections,
            pipeline: self.pipeline,
            duration,
            requests: self.requests,
            warmup: self.warmup,
            rate: self.rate,
            timeout: self.timeout,
            progress: !self.quiet,
            tls_ca: self.tls_ca.clone(),
        }
    }

    /// The pids whose CPU time is charged to target number `index`.
    pub fn pids_for(&self, index: usize) -> Vec<u32> {
        match self.pids.len() {
            0 => Vec::new(),
            1 => self.pids[0].0.clone(),
            _ => self
                .pids
                .get(index)
                .map(|p| p.0.clone())
                .unwrap_or_default(),
        }
    }

    /// Tokio worker threads to use.
    pub fn worker_threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> std::result::Result<Args, clap::Error> {
        let mut argv = vec!["ringcache-bench", "--target", "127.0.0.1:11211"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv)
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).expect("parse");
        assert_eq!(a.targets, vec!["127.0.0.1:11211".to_string()]);
        assert_eq!(a.driver_options().duration, DEFAULT_DURATION);
        assert_eq!(a.ratio, Ratio { set: 1, get: 10 });
        assert_eq!(a.protocol, Protocol::Text);
        assert!(a.validate().is_ok());
        assert!(
            Args::try_parse_from(["ringcache-bench"]).is_err(),
            "--target is required"
        );
    }

    #[test]
    fn all_knobs() {
        let a = parse(&[
            "--target",
            "127.0.0.1:22122",
            "--connections",
            "8",
            "--threads",
            "2",
            "--pipeline",
            "16",
            "--duration",
            "2.5",
            "--warmup",
            "0.5",
            "--ratio",
            "1:4",
            "--multiget",
            "10",
            "--keys",
            "5000",
            "--key-len",
            "20",
            "--value-size",
            "10-100",
            "--dist",
            "zipf:0.99",
            "--prefill",
            "--rate",
            "20000",
            "--seed",
            "7",
            "--json",
            "/tmp/x.json",
            "--pids",
            "1,2",
            "--pids",
            "3",
            "--rounds",
            "5",
            "--protocol",
            "meta",
            "--timeout",
            "1",
            "--quiet",
            "--tls-ca",
            "/etc/ca.pem",
        ])
        .expect("parse");
        assert_eq!(a.targets.len(), 2);
        assert_eq!(a.pids, vec![PidList(vec![1, 2]), PidList(vec![3])]);
        assert_eq!(a.pids_for(0), vec![1, 2]);
        assert_eq!(a.pids_for(1), vec![3]);
        let o = a.driver_options();
        assert_eq!(o.duration, Duration::from_millis(2500));
        assert_eq!(o.warmup, Duration::from_millis(500));
        assert_eq!(o.rate, Some(20000.0));
        assert!(!o.progress);
        assert_eq!(
            o.tls_ca.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        let w = a.workload_spec();
        assert_eq!(w.dist, Dist::Zipf(0.99));
        assert_eq!(w.value_size, ValueSize { min: 10, max: 100 });
        assert_eq!(w.protocol, Protocol::Meta);
        assert!(a.validate().is_ok());
        let json = serde_json::to_value(&a).expect("json");
        assert_eq!(json["duration"], 2.5);
        assert_eq!(json["dist"], "zipf:0.99");
        assert_eq!(json["pids"][0][1], 2);
    }

    #[test]
    fn requests_without_duration_is_capped() {
        let a = parse(&["--requests", "1000"]).expect("parse");
        assert_eq!(a.driver_options().duration, REQUESTS_CAP);
        assert_eq!(a.driver_options().requests, Some(1000));
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(&["--ratio", "abc"]).is_err());
        assert!(parse(&["--dist", "pareto"]).is_err());
        assert!(parse(&["--duration", "-1"]).is_err());
        assert!(parse(&["--pids", "12,x"]).is_err());
        assert!(parse(&["--protocol", "binary"]).is_err());
        assert!(parse(&["--rounds", "0"])
            .expect("parse")
            .validate()
            .is_err());
        assert!(parse(&["--pipeline", "0"])
            .expect("parse")
            .validate()
            .is_err());
        assert!(parse(&["--pids", "1", "--pids", "2"])
            .expect("parse")
            .validate()
            .is_err());
        assert!(
            parse(&["--tls-ca", "/ca.pem", "--target", "embedded:127.0.0.1:1"])
                .expect("parse")
                .validate()
                .is_err(),
            "TLS is for TCP targets"
        );
    }
}
