//! The version both servers announce.

/// The version string in `VERSION` replies and `stats`: memcached's protocol level first, so
/// clients that compare versions to enable features (meta commands, `E` flag) see 1.6.38.
pub const VERSION: &str = concat!("1.6.38-ringcache-", env!("CARGO_PKG_VERSION"));
