//! `ringcache node`: one memcached-compatible cache server.

pub mod clock;
pub mod store;
