//! memcached protocol (being built).
