//! memcached 1.6's command line on `ringcache node`, so a node replaces memcached inside a
//! systemd unit, a Docker CMD or a chart's values without its flags being rewritten.
//!
//! Every memcached flag falls in one of three groups (the table in docs/operations.md, "memcached's
//! command line", lists them all):
//! - **mapped**: the flag sets a node setting (`-p`/`-l` → `listen`, `-m`, `-c`, `-t`, `-I`, `-A`,
//!   `-Y`, `-Z` with `-o ssl_*`, `-o idle_timeout`, `-F`/`-X`/`-W` → `[commands]`, `-v` →
//!   `verbosity`) or a process duty (`-P` pid file, `-u` user, done by `crate::process`);
//! - **accepted**: a tuning knob of memcached's slab allocator, LRU threads or event loop that
//!   has no counterpart here; the node starts and logs that it has no effect;
//! - **refused**: a feature ringcache does not have (UNIX sockets, daemonizing, SASL, the binary
//!   protocol, extstore, …); the node does not start and the error names the flag and what to
//!   use instead, so no one runs a node believing it does what memcached did.
//!
//! The flags of the first group are clap arguments of [`MemcachedArgs`] (beside the node's own
//! flags, which carry memcached's short names where they exist); the other two are one table,
//! [`OTHER_FLAGS`] for flags and [`EXTENDED`] for `-o` options, read by both the parser and
//! the tests.

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use toml::{Table, Value};

use crate::error::Error;

/// memcached's port, for a `-l` address given without one.
pub const DEFAULT_PORT: u16 = 11211;

/// What ringcache does with a memcached flag that sets no ringcache setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Started anyway; the text says why it makes no difference.
    NoEffect(&'static str),
    /// Not started; the text says what to use instead.
    Refused(&'static str),
}

/// A memcached flag outside [`MemcachedArgs`].
#[derive(Debug, Clone, Copy)]
pub struct OtherFlag {
    pub short: char,
    pub long: &'static str,
    /// Whether it takes a value (`-f 1.25`) or is a switch (`-d`).
    pub takes_value: bool,
    pub handling: Handling,
}

const fn other(short: char, long: &'static str, takes_value: bool, h: Handling) -> OtherFlag {
    OtherFlag {
        short,
        long,
        takes_value,
        handling: h,
    }
}

use Handling::{NoEffect, Refused};

/// memcached 1.6's flags that set nothing here (`memcached -h`, 1.6.18). `-h` and `-V` are
/// clap's own (help, version), as in memcached.
pub const OTHER_FLAGS: &[OtherFlag] = &[
    other('s', "unix-socket", true, Refused("UNIX sockets are not supported; listen on TCP with -l/-p (127.0.0.1 for local clients)")),
    other('a', "unix-mask", true, Refused("UNIX sockets are not supported, so neither is their mask; listen on TCP with -l/-p")),
    other('d', "daemon", false, Refused("ringcache stays in the foreground; let systemd, Docker or a supervisor run it in the background")),
    other('r', "enable-coredumps", false, Refused("set the core size limit where the node is started (systemd LimitCORE=, ulimit -c)")),
    other('M', "disable-evictions", false, Refused("a cache node always evicts when full; size it with -m (docs/operations.md, \"Size memory\")")),
    other('k', "lock-memory", false, Refused("memory locking is not supported; disable swap for the node instead (systemd MemorySwapMax=0)")),
    other('i', "license", false, Refused("ringcache's license is in its README and Cargo.toml")),
    other('f', "slab-growth-factor", true, NoEffect("no slab classes: items are stored in segments")),
    other('n', "slab-min-size", true, NoEffect("no slab classes: items are stored in segments")),
    other('L', "enable-largepages", false, NoEffect("the allocator chooses its pages")),
    other('D', "prefix-delimiter", true, NoEffect("the prefix delimiter of `stats detail` is always ':'; turn it on with `stats detail on`")),
    other('R', "max-reqs-per-event", true, NoEffect("a connection yields after each batch it reads")),
    other('C', "disable-cas", false, Refused("CAS is always on: the routers' replication copies items with their CAS")),
    other('b', "listen-backlog", true, NoEffect("the listen backlog is the operating system's default (net.core.somaxconn)")),
    other('B', "protocol", true, Refused("only the text and meta protocols are served (memcached's ascii); drop -B or use -B ascii")),
    other('S', "enable-sasl", false, Refused("SASL is not supported; use -Y/--auth-file (memcached's ASCII authentication)")),
    other('e', "memory-file", true, Refused("there is no restartable cache; a restarted node is re-warmed from its replicas (docs/cluster.md)")),
    other('N', "napi_ids", true, Refused("NAPI ids are not supported; drop the flag")),
];

/// `-o` options that set nothing here: memcached's allocator, LRU and thread tuning, and its
/// OpenSSL knobs. An option not in this table and not mapped is refused as unknown.
pub const EXTENDED: &[(&str, Handling)] = &[
    ("maxconns_fast", NoEffect("a connection past -c is always answered and closed at once")),
    ("no_maxconns_fast", NoEffect("a connection past -c is always answered and closed at once")),
    ("hashpower", NoEffect("the index grows by itself")),
    ("no_hashexpand", NoEffect("the index grows by itself")),
    ("tail_repair_time", NoEffect("no LRU tail to repair")),
    ("hash_algorithm", NoEffect("the index has its own hash; placement is the proxy's ring")),
    ("lru_crawler", NoEffect("dead items are swept in the background always")),
    ("no_lru_crawler", NoEffect("dead items are swept in the background always")),
    ("lru_crawler_sleep", NoEffect("the sweep paces itself")),
    ("lru_crawler_tocrawl", NoEffect("the sweep paces itself")),
    ("lru_maintainer", NoEffect("no segmented LRU threads")),
    ("no_lru_maintainer", NoEffect("no segmented LRU threads")),
    ("lru_segmented", NoEffect("no segmented LRU threads")),
    ("hot_lru_pct", NoEffect("no segmented LRU threads")),
    ("warm_lru_pct", NoEffect("no segmented LRU threads")),
    ("hot_max_factor", NoEffect("no segmented LRU threads")),
    ("warm_max_factor", NoEffect("no segmented LRU threads")),
    ("temporary_ttl", NoEffect("no segmented LRU threads")),
    ("read_buf_mem_limit", NoEffect("each connection's buffers are bounded")),
    ("slab_reassign", NoEffect("no slab classes")),
    ("slab_automove", NoEffect("no slab classes (`slabs automove` is accepted and reported)")),
    ("slab_automove_freeratio", NoEffect("no slab classes")),
    ("slab_chunk_max", NoEffect("no slab classes")),
    ("watcher_logbuf_size", NoEffect("`watch` is not served")),
    ("worker_logbuf_size", NoEffect("`watch` is not served")),
    ("track_sizes", NoEffect("`stats sizes` answers an empty list")),
    ("modern", NoEffect("memcached 1.6's behaviour is the only one")),
    ("no_modern", Refused("only memcached 1.6's behaviour is served; drop no_modern")),
    ("ssl_wbuf_size", NoEffect("rustls sizes its own buffers")),
    ("ssl_session_cache", NoEffect("rustls keeps a session cache always")),
    ("ssl_kernel_tls", NoEffect("TLS runs in the process (rustls)")),
    ("ssl_keyformat", Refused("keys are read as PEM only; convert with `openssl pkey -in KEY -out key.pem`")),
    ("ssl_ciphers", Refused("rustls offers its own safe cipher suites and takes no OpenSSL cipher list; drop ssl_ciphers")),
    ("sock_cookie_id", Refused("socket cookies are not supported; drop sock_cookie_id")),
    ("ext_path", Refused("there is no external storage (extstore); size memory with -m")),
];

/// The memcached flags that set node settings, beside the node's own flags (which carry
/// memcached's short and long names where they exist: `-l`, `-m`, `-c`, `-t`, `-I`, `-A`, `-Y`).
#[derive(Debug, Args, Default, Clone)]
pub struct MemcachedArgs {
    /// TCP port, for each --listen address given without one (memcached -p).
    #[arg(short = 'p', long = "port", value_name = "PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// UDP port (memcached -U): only 0 is accepted, UDP is not served.
    #[arg(short = 'U', long = "udp-port", value_name = "0", value_parser = udp_off)]
    pub udp_port: Option<u16>,
    /// The `verbosity` of `stats settings`, and more log output: -vv debug, -vvv trace
    /// (memcached -v/-vv/-vvv; warnings are always logged; RUST_LOG, when set, wins).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,
    /// Serve TLS with the `-o ssl_*` files (memcached -Z).
    #[arg(short = 'Z', long = "enable-ssl")]
    pub enable_ssl: bool,
    /// memcached's extended options, a comma list of `name[=value]` (memcached -o):
    /// ssl_chain_cert, ssl_key, ssl_ca_cert, ssl_verify_mode, ssl_min_version, idle_timeout;
    /// docs/operations.md lists the others.
    #[arg(
        short = 'o',
        long = "extended",
        value_name = "OPTS",
        value_delimiter = ','
    )]
    pub extended: Vec<String>,
    /// Refuse `flush_all` (memcached -F): `[commands] flush_all = "deny"`.
    #[arg(short = 'F', long = "disable-flush-all")]
    pub disable_flush_all: bool,
    /// Refuse `stats cachedump` and `lru_crawler` (memcached -X): `[commands] lru_crawler =
    /// "deny"`. The proxies' rebalancing reads `lru_crawler metadump`: keep it on for nodes
    /// behind a proxy.
    #[arg(short = 'X', long = "disable-dumping")]
    pub disable_dumping: bool,
    /// Refuse `watch` (memcached -W): `[commands] watch = "deny"`.
    #[arg(short = 'W', long = "disable-watch")]
    pub disable_watch: bool,
    /// Write the process id to FILE once listening; removed on exit (memcached -P).
    #[arg(short = 'P', long = "pidfile", value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Run as USER once the listeners are bound, when started as root (memcached -u);
    /// ignored otherwise.
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,
    #[command(flatten)]
    pub others: OtherFlags,
}

/// `-U`: memcached 1.6 has UDP off by default; 0 says so and is the only value accepted.
fn udp_off(v: &str) -> Result<u16, String> {
    match v.parse::<u16>() {
        Ok(0) => Ok(0),
        _ => Err(
            "UDP is not supported: only -U 0 (UDP off, memcached 1.6's default) is \
                  accepted; clients use TCP"
                .into(),
        ),
    }
}

/// `-I`: bytes, or with memcached's `k`/`m` suffixes (`-I 2m`), 1k to 1024m as memcached takes.
pub fn item_size(v: &str) -> Result<usize, String> {
    let (digits, unit) = match v.as_bytes().last() {
        Some(b'k' | b'K') => (&v[..v.len() - 1], 1024),
        Some(b'm' | b'M') => (&v[..v.len() - 1], 1024 * 1024),
        _ => (v, 1),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{v:?} is not a size: give bytes, or a number with k or m"))?;
    let bytes = n
        .checked_mul(unit)
        .filter(|b| (1024..=1024 * 1024 * 1024).contains(b))
        .ok_or_else(|| format!("{v:?}: the item size must be between 1k and 1024m"))?;
    Ok(bytes)
}

/// The flags of [`OTHER_FLAGS`] as given: hidden from `--help` (docs/operations.md lists them).
#[derive(Debug, Default, Clone)]
pub struct OtherFlags {
    /// Each flag given, with its value for those that take one.
    pub given: Vec<(&'static OtherFlag, Option<String>)>,
}

impl FromArgMatches for OtherFlags {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Vec::new();
        for f in OTHER_FLAGS {
            if f.takes_value {
                if let Some(v) = m.get_one::<String>(f.long) {
                    given.push((f, Some(v.clone())));
                }
            } else if m.get_flag(f.long) {
                given.push((f, None));
            }
        }
        Ok(OtherFlags { given })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = OtherFlags::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for OtherFlags {
    fn augment_args(cmd: Command) -> Command {
        OTHER_FLAGS.iter().fold(cmd, |cmd, f| {
            let arg = Arg::new(f.long).short(f.short).long(f.long).hide(true);
            cmd.arg(if f.takes_value {
                arg.action(ArgAction::Set)
            } else {
                arg.action(ArgAction::SetTrue)
            })
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        OtherFlags::augment_args(cmd)
    }
}

/// A flag refused: names it and says what to use instead.
fn refused(flag: &str, advice: &str) -> Error {
    Error::Config(format!("memcached's {flag} is not supported: {advice}"))
}

impl MemcachedArgs {
    /// The settings these flags set, as config keys (`listen` from `-l`/`-p`, ssl keys,
    /// `[commands]`, …), and the notes on flags accepted without effect (to be logged).
    /// `listen` is the node's `-l`/`--listen` list and `port` `-p`, as given (none: not given).
    pub fn overrides(
        &self,
        listen: &[String],
        port: Option<u16>,
    ) -> Result<(Table, Vec<String>), Error> {
        let mut t = Table::new();
        let mut notes = Vec::new();
        for (f, value) in &self.others.given {
            let name = format!("-{}/--{}", f.short, f.long);
            match (f.short, value.as_deref(), f.handling) {
                // The text and meta protocols are memcached's ascii; `auto` finds nothing else.
                ('B', Some("ascii" | "auto"), _) => {}
                ('D', Some(other), _) if other != ":" => {
                    return Err(refused(
                        &format!("-D {other}"),
                        "the prefix delimiter of `stats detail` is ':' only",
                    ))
                }
                (_, _, Refused(advice)) => return Err(refused(&name, advice)),
                (_, _, NoEffect(why)) => notes.push(format!("{name}: no effect ({why})")),
            }
        }
        if !listen.is_empty() || port.is_some() {
            let port = port.unwrap_or(DEFAULT_PORT);
            let addrs: Vec<String> = if listen.is_empty() {
                vec![format!("127.0.0.1:{port}")]
            } else {
                listen.iter().map(|a| with_port(a, port)).collect()
            };
            t.insert("listen".into(), Value::String(addrs.join(",")));
        }
        if self.verbose > 0 {
            t.insert("verbosity".into(), Value::Integer(self.verbose.into()));
        }
        let mut commands = Table::new();
        for (on, key) in [
            (self.disable_flush_all, "flush_all"),
            (self.disable_dumping, "lru_crawler"),
            (self.disable_watch, "watch"),
        ] {
            if on {
                commands.insert(key.into(), Value::String("deny".into()));
            }
        }
        if !commands.is_empty() {
            t.insert("commands".into(), Value::Table(commands));
        }
        let mut ssl = Table::new();
        for opt in &self.extended {
            let (name, value) = match opt.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (opt.as_str(), None),
            };
            let need = |v: Option<&str>| {
                v.filter(|v| !v.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| Error::Config(format!("-o {name} needs a value: -o {name}=…")))
            };
            let number = |v: Option<&str>| {
                need(v)?.parse::<i64>().map_err(|_| {
                    Error::Config(format!("-o {name}: {:?} is not a number", v.unwrap_or("")))
                })
            };
            match name {
                "ssl_chain_cert" | "ssl_key" | "ssl_ca_cert" => {
                    ssl.insert(name.into(), Value::String(need(value)?));
                }
                "ssl_verify_mode" => {
                    ssl.insert(name.into(), Value::Integer(number(value)?));
                }
                // rustls speaks TLS 1.2 and 1.3: memcached's 2 (its default) and 3 hold.
                "ssl_min_version" => match need(value)?.as_str() {
                    "2" | "3" | "tlsv1.2" | "tlsv1.3" => {}
                    v => {
                        return Err(refused(
                            &format!("-o ssl_min_version={v}"),
                            "TLS 1.2 is the oldest version served (rustls); use 2 or 3",
                        ))
                    }
                },
                "idle_timeout" => {
                    t.insert(name.into(), Value::Integer(number(value)?));
                }
                n if n.starts_with("ext_") => {
                    return Err(refused(
                        &format!("-o {n}"),
                        "there is no external storage (extstore); size memory with -m",
                    ))
                }
                n => match EXTENDED.iter().find(|(k, _)| *k == n) {
                    Some((_, NoEffect(why))) => notes.push(format!("-o {n}: no effect ({why})")),
                    Some((_, Refused(advice))) => return Err(refused(&format!("-o {n}"), advice)),
                    None => {
                        return Err(Error::Config(format!(
                            "-o {n}: unknown option; docs/operations.md lists memcached's -o \
                             options and what ringcache does with each"
                        )))
                    }
                },
            }
        }
        match (self.enable_ssl, ssl.contains_key("ssl_chain_cert")) {
            (true, true) => t.extend(ssl),
            (true, false) => {
                return Err(Error::Config(
                    "-Z/--enable-ssl needs -o ssl_chain_cert=FILE (and ssl_key=FILE unless the \
                     chain file holds the key)"
                        .into(),
                ))
            }
            // memcached reads the ssl_* options only with -Z: without it, it serves plain text.
            (false, _) if !ssl.is_empty() => {
                notes.push("-o ssl_*: no effect without -Z, as in memcached (plain text)".into())
            }
            (false, _) => {}
        }
        Ok((t, notes))
    }
}

/// A `-l` address with `port` added when it has none: `host`, `host:port`, `[v6]`,
/// `[v6]:port`, a bare IPv6 address, each optionally `notls:` first (memcached's forms).
fn with_port(addr: &str, port: u16) -> String {
    let (prefix, rest) = match addr.strip_prefix("notls:") {
        Some(rest) => ("notls:", rest),
        None => ("", addr),
    };
    let has_port = if let Some(end) = rest.strip_prefix('[') {
        end.contains("]:")
    } else {
        rest.matches(':').count() == 1
    };
    if has_port {
        format!("{prefix}{rest}")
    } else if rest.contains(':') && !rest.starts_with('[') {
        format!("{prefix}[{rest}]:{port}")
    } else {
        format!("{prefix}{rest}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command as Sub, NodeArgs};
    use crate::config::NodeConfig;
    use crate::server::gate::Access;
    use crate::server::ServerSettings;
    use crate::settings::layered;

    /// `ringcache node ARGS` parsed as `main` does, the config it makes and the notes.
    fn node(args: &[&str]) -> Result<(NodeArgs, NodeConfig, Vec<String>), String> {
        let argv = ["ringcache", "node"].iter().chain(args);
        let cli = Cli::try_from_argv(argv).map_err(|e| e.to_string())?;
        let Sub::Node(a) = cli.command else {
            unreachable!("parsed as node")
        };
        let (flags, notes) = a.overrides().map_err(|e| e.to_string())?;
        let cfg = layered::<NodeConfig>(None, &flags).map_err(|e| e.to_string())?;
        Ok((a, cfg, notes))
    }

    fn refusal(args: &[&str]) -> String {
        match node(args) {
            Ok(_) => panic!("{args:?} accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn mapped_flags_set_the_node_settings() {
        let d = NodeConfig::default();
        let (_, c, _) = node(&["-p", "11311", "-l", "127.0.0.1,notls:127.0.0.2"]).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:11311,notls:127.0.0.2:11311");
        let (_, c, _) = node(&["--port=7"]).unwrap();
        assert_eq!(
            c.server.listen, "127.0.0.1:7",
            "-p alone: loopback, never every interface"
        );
        let (_, c, _) = node(&["--listen", "127.0.0.1:9", "-l", "[::1]"]).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:9,[::1]:11211");
        let (_, c, _) = node(&["-m", "128", "-c", "10", "-t", "2", "-I", "2m", "-A"]).unwrap();
        assert_eq!(
            c,
            NodeConfig {
                memory_limit_mb: 128,
                server: ServerSettings {
                    max_connections: 10,
                    ..d.server.clone()
                },
                threads: 2,
                max_item_size: 2 << 20,
                enable_shutdown: true,
                ..d.clone()
            }
        );
        let (_, c, _) = node(&[
            "--memory-limit=32",
            "--conn-limit=5",
            "--threads=1",
            "--max-item-size=4k",
            "--enable-shutdown",
        ])
        .unwrap();
        assert_eq!(
            (
                c.memory_limit_mb,
                c.server.max_connections,
                c.threads,
                c.max_item_size
            ),
            (32, 5, 1, 4096)
        );
        assert_eq!(node(&["-U", "0"]).unwrap().1, d);
        assert_eq!(node(&["--udp-port=0"]).unwrap().1, d);
        assert_eq!(node(&["-v"]).unwrap().1.verbosity, 1);
        assert_eq!(node(&["-vv"]).unwrap().1.verbosity, 2);
        assert_eq!(node(&["-vvv"]).unwrap().1.verbosity, 3);
        assert_eq!(node(&["--verbose"]).unwrap().1.verbosity, 1);
        let (_, c, _) = node(&["-Y", "/etc/users", "-F", "-X", "-W"]).unwrap();
        assert_eq!(c.security.auth_file, Some(PathBuf::from("/etc/users")));
        assert_eq!(c.security.commands.flush_all, Some(Access::Deny));
        assert_eq!(c.security.commands.lru_crawler, Some(Access::Deny));
        assert_eq!(c.security.commands.watch, Some(Access::Deny));
        let (_, c, _) = node(&[
            "--auth-file=/u",
            "--disable-flush-all",
            "--disable-dumping",
            "--disable-watch",
        ])
        .unwrap();
        assert_eq!(c.security.auth_file, Some(PathBuf::from("/u")));
        assert_eq!(c.security.commands.flush_all, Some(Access::Deny));
        assert_eq!(c.security.commands.lru_crawler, Some(Access::Deny));
        assert_eq!(c.security.commands.watch, Some(Access::Deny));
        let (_, c, notes) = node(&[
            "-Z",
            "-o",
            "ssl_chain_cert=/c.pem,ssl_key=/k.pem",
            "-o",
            "ssl_ca_cert=/ca.pem,ssl_verify_mode=2,ssl_min_version=3,idle_timeout=30",
        ])
        .unwrap();
        assert_eq!(c.security.ssl_chain_cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(c.security.ssl_key, Some(PathBuf::from("/k.pem")));
        assert_eq!(c.security.ssl_ca_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(c.security.ssl_verify_mode, 2);
        assert_eq!(c.server.idle_timeout, 30);
        assert!(notes.is_empty(), "{notes:?}");
        let (_, c, _) = node(&["--enable-ssl", "--extended=ssl_chain_cert=/c.pem"]).unwrap();
        assert_eq!(c.security.ssl_chain_cert, Some(PathBuf::from("/c.pem")));
        // Without -Z memcached ignores the ssl options: plain text, and a note says so.
        let (_, c, notes) = node(&["-o", "ssl_chain_cert=/c.pem"]).unwrap();
        assert_eq!(c.security.ssl_chain_cert, None);
        assert_eq!(
            notes,
            ["-o ssl_*: no effect without -Z, as in memcached (plain text)"]
        );
        let (a, c, _) = node(&["-P", "/run/m.pid", "-u", "memcache"]).unwrap();
        assert_eq!(c, d, "-P and -u are the process's, not settings");
        assert_eq!(a.memcached.pidfile, Some(PathBuf::from("/run/m.pid")));
        assert_eq!(a.memcached.user.as_deref(), Some("memcache"));
        let (a, _, _) = node(&["--pidfile=/p", "--user=nobody"]).unwrap();
        assert_eq!(a.memcached.pidfile, Some(PathBuf::from("/p")));
        assert_eq!(a.memcached.user.as_deref(), Some("nobody"));
        // Short switches combine as getopt's do.
        let (_, c, _) = node(&["-AFv"]).unwrap();
        assert!(c.enable_shutdown && c.verbosity == 1);
    }

    #[test]
    fn bad_values_of_mapped_flags_are_refused_with_the_reason() {
        assert_eq!(
            refusal(&["-U", "11211"]),
            "error: invalid value '11211' for '--udp-port <0>': UDP is not supported: only -U 0 \
             (UDP off, memcached 1.6's default) is accepted; clients use TCP\n\n\
             For more information, try '--help'.\n"
        );
        assert_eq!(
            refusal(&["-I", "2g"]),
            "error: invalid value '2g' for '--max-item-size <SIZE>': \"2g\" is not a size: give \
             bytes, or a number with k or m\n\nFor more information, try '--help'.\n"
        );
        assert_eq!(
            refusal(&["-I", "64m"]),
            "config error: max_item_size cannot be larger than half of memory_limit_mb"
        );
        assert_eq!(
            refusal(&["-Z"]),
            "config error: -Z/--enable-ssl needs -o ssl_chain_cert=FILE (and ssl_key=FILE unless \
             the chain file holds the key)"
        );
        assert_eq!(
            refusal(&["-o", "idle_timeout"]),
            "config error: -o idle_timeout needs a value: -o idle_timeout=…"
        );
        assert_eq!(
            refusal(&["-o", "idle_timeout=soon"]),
            "config error: -o idle_timeout: \"soon\" is not a number"
        );
        assert_eq!(
            refusal(&["-Z", "-o", "ssl_chain_cert=/c,ssl_min_version=1"]),
            "config error: memcached's -o ssl_min_version=1 is not supported: TLS 1.2 is the \
             oldest version served (rustls); use 2 or 3"
        );
        assert_eq!(
            refusal(&["-o", "ext_path=/mnt/d1/extstore:1G"]),
            "config error: memcached's -o ext_path is not supported: there is no external \
             storage (extstore); size memory with -m"
        );
        assert_eq!(
            refusal(&["-o", "ext_threads=2"]),
            "config error: memcached's -o ext_threads is not supported: there is no external \
             storage (extstore); size memory with -m"
        );
        assert_eq!(
            refusal(&["-o", "frobnicate"]),
            "config error: -o frobnicate: unknown option; docs/operations.md lists memcached's \
             -o options and what ringcache does with each"
        );
        assert_eq!(
            refusal(&["-D", "/"]),
            "config error: memcached's -D / is not supported: the prefix delimiter of `stats \
             detail` is ':' only"
        );
        assert_eq!(
            refusal(&["-B", "binary"]),
            "config error: memcached's -B/--protocol is not supported: only the text and meta \
             protocols are served (memcached's ascii); drop -B or use -B ascii"
        );
    }

    /// Every flag of the table: refused ones with their exact error, the others started with a
    /// note; both by short and by long name.
    #[test]
    fn every_other_flag_is_refused_or_noted() {
        let refused: &[(&str, &str)] = &[
            ("-s", "memcached's -s/--unix-socket is not supported: UNIX sockets are not supported; listen on TCP with -l/-p (127.0.0.1 for local clients)"),
            ("-a", "memcached's -a/--unix-mask is not supported: UNIX sockets are not supported, so neither is their mask; listen on TCP with -l/-p"),
            ("-d", "memcached's -d/--daemon is not supported: ringcache stays in the foreground; let systemd, Docker or a supervisor run it in the background"),
            ("-r", "memcached's -r/--enable-coredumps is not supported: set the core size limit where the node is started (systemd LimitCORE=, ulimit -c)"),
            ("-M", "memcached's -M/--disable-evictions is not supported: a cache node always evicts when full; size it with -m (docs/operations.md, \"Size memory\")"),
            ("-k", "memcached's -k/--lock-memory is not supported: memory locking is not supported; disable swap for the node instead (systemd MemorySwapMax=0)"),
            ("-i", "memcached's -i/--license is not supported: ringcache's license is in its README and Cargo.toml"),
            ("-C", "memcached's -C/--disable-cas is not supported: CAS is always on: the routers' replication copies items with their CAS"),
            ("-B", "memcached's -B/--protocol is not supported: only the text and meta protocols are served (memcached's ascii); drop -B or use -B ascii"),
            ("-S", "memcached's -S/--enable-sasl is not supported: SASL is not supported; use -Y/--auth-file (memcached's ASCII authentication)"),
            ("-e", "memcached's -e/--memory-file is not supported: there is no restartable cache; a restarted node is re-warmed from its replicas (docs/cluster.md)"),
            ("-N", "memcached's -N/--napi_ids is not supported: NAPI ids are not supported; drop the flag"),
        ];
        let noted: &[(&str, &str)] = &[
            ("-f", "-f/--slab-growth-factor: no effect (no slab classes: items are stored in segments)"),
            ("-n", "-n/--slab-min-size: no effect (no slab classes: items are stored in segments)"),
            ("-L", "-L/--enable-largepages: no effect (the allocator chooses its pages)"),
            ("-D", "-D/--prefix-delimiter: no effect (the prefix delimiter of `stats detail` is always ':'; turn it on with `stats detail on`)"),
            ("-R", "-R/--max-reqs-per-event: no effect (a connection yields after each batch it reads)"),
            ("-b", "-b/--listen-backlog: no effect (the listen backlog is the operating system's default (net.core.somaxconn))"),
        ];
        assert_eq!(refused.len() + noted.len(), OTHER_FLAGS.len());
        for f in OTHER_FLAGS {
            let short = format!("-{}", f.short);
            let long = format!("--{}", f.long);
            let value = match f.short {
                'D' => ":",
                'B' => "binary",
                _ => "1",
            };
            for name in [&short, &long] {
                let mut args = vec![name.as_str()];
                if f.takes_value {
                    args.push(value);
                }
                if let Some((_, want)) = refused.iter().find(|(s, _)| *s == short) {
                    assert_eq!(refusal(&args), format!("config error: {want}"), "{args:?}");
                } else if let Some((_, want)) = noted.iter().find(|(s, _)| *s == short) {
                    let (_, c, notes) = node(&args).unwrap();
                    assert_eq!(c, NodeConfig::default(), "{args:?}");
                    assert_eq!(notes, [want.to_string()], "{args:?}");
                } else {
                    panic!("{short} is in neither list");
                }
            }
        }
        // memcached's ascii (and auto, which finds only ascii here) are what is served.
        assert_eq!(node(&["-B", "ascii"]).unwrap().2, Vec::<String>::new());
        assert_eq!(node(&["--protocol=auto"]).unwrap().2, Vec::<String>::new());
    }

    #[test]
    fn every_extended_option_is_mapped_refused_or_noted() {
        for (name, handling) in EXTENDED {
            let got = node(&["-o", &format!("{name}=1")]);
            match handling {
                NoEffect(why) => {
                    let (_, c, notes) = got.unwrap();
                    assert_eq!(c, NodeConfig::default());
                    assert_eq!(notes, [format!("-o {name}: no effect ({why})")]);
                }
                Refused(advice) => assert_eq!(
                    got.unwrap_err(),
                    format!("config error: memcached's -o {name} is not supported: {advice}")
                ),
            }
        }
    }

    /// docs/operations.md's table names every flag and `-o` option handled here.
    #[test]
    fn the_operations_table_lists_every_flag() {
        let docs = include_str!("../docs/operations.md");
        let table = &docs[docs
            .find("## memcached's command line")
            .expect("the section")..];
        let mapped = [
            "-p", "-l", "-m", "-c", "-t", "-I", "-U", "-v", "-Y", "-Z", "-A", "-F", "-X", "-W",
            "-P", "-u", "-h", "-V",
        ];
        for flag in mapped
            .iter()
            .map(|s| s.to_string())
            .chain(OTHER_FLAGS.iter().map(|f| format!("-{}", f.short)))
        {
            assert!(table.contains(&format!("| `{flag}")), "{flag} missing");
        }
        let opts = [
            "ssl_chain_cert",
            "ssl_key",
            "ssl_ca_cert",
            "ssl_verify_mode",
            "ssl_min_version",
            "idle_timeout",
            "ext_",
        ];
        for o in opts.iter().chain(EXTENDED.iter().map(|(n, _)| n)) {
            assert!(table.contains(&format!("`{o}")), "-o {o} missing");
        }
    }

    #[test]
    fn addresses_get_the_port_they_lack() {
        assert_eq!(with_port("127.0.0.1", 7), "127.0.0.1:7");
        assert_eq!(with_port("127.0.0.1:8", 7), "127.0.0.1:8");
        assert_eq!(with_port("::1", 7), "[::1]:7");
        assert_eq!(with_port("[::1]", 7), "[::1]:7");
        assert_eq!(with_port("[::1]:8", 7), "[::1]:8");
        assert_eq!(with_port("notls:127.0.0.1", 7), "notls:127.0.0.1:7");
        assert_eq!(with_port("notls:localhost:8", 7), "notls:localhost:8");
    }

    #[test]
    fn item_sizes_take_memcacheds_suffixes() {
        assert_eq!(item_size("2m"), Ok(2 << 20));
        assert_eq!(item_size("512k"), Ok(512 << 10));
        assert_eq!(item_size("4096"), Ok(4096));
        assert!(item_size("512").is_err());
        assert!(item_size("2g").is_err());
        assert!(item_size("1025m").is_err());
    }
}
