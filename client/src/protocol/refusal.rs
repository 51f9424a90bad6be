//! memcached's replies to a connection that has not authenticated and to a command the server
//! has disabled: the exact lines memcached 1.6 sends (checked against 1.6.18 with `-Y`, `-F`,
//! `-X`, `-W`), and ours where memcached has no switch for a command. docs/protocol.md lists
//! them.

/// Any command before authenticating (the line is consumed; the connection stays open).
pub const UNAUTHENTICATED: &str = "CLIENT_ERROR unauthenticated";
/// The authentication data block does not end in `\r\n`.
pub const AUTH_BAD_TERMINATION: &str = "CLIENT_ERROR bad command line termination";
/// The authentication data is not `<user> <password>`.
pub const AUTH_BAD_FORMAT: &str = "CLIENT_ERROR bad authentication token format";
/// Unknown user or wrong password.
pub const AUTH_FAILURE: &str = "CLIENT_ERROR authentication failure";
/// Authenticated (memcached answers the `set` that carried the credentials as stored).
pub const AUTH_OK: &str = "STORED";

/// `flush_all` disabled (memcached `-F`).
pub const FLUSH_ALL_NOT_ALLOWED: &str = "CLIENT_ERROR flush_all not allowed";
/// `lru_crawler metadump` disabled (memcached `-X`).
pub const METADUMP_NOT_ALLOWED: &str = "ERROR metadump not allowed";
/// `shutdown` disabled (memcached without `-A`).
pub const SHUTDOWN_NOT_ENABLED: &str = "ERROR: shutdown not enabled";
/// `stats cachedump` disabled (memcached `-X`).
pub const CACHEDUMP_NOT_ALLOWED: &str = "CLIENT_ERROR stats cachedump not allowed";
/// `slabs` disabled (ours, in `-F`'s form).
pub const SLABS_NOT_ALLOWED: &str = "CLIENT_ERROR slabs not allowed";
/// `watch` disabled (memcached `-W`).
pub const WATCH_NOT_ALLOWED: &str = "CLIENT_ERROR watch commands not allowed";
/// Other `lru_crawler` subcommands disabled (memcached has no switch: ours, in `-F`'s form).
pub const LRU_CRAWLER_NOT_ALLOWED: &str = "CLIENT_ERROR lru_crawler not allowed";
/// `cache_memlimit` disabled (ours, in `-F`'s form).
pub const CACHE_MEMLIMIT_NOT_ALLOWED: &str = "CLIENT_ERROR cache_memlimit not allowed";
/// `verbosity` disabled (ours, in `-F`'s form).
pub const VERBOSITY_NOT_ALLOWED: &str = "CLIENT_ERROR verbosity not allowed";
