//! Loopback ports. A port picked here is free when picked but may be taken before the server
//! binds it: spawners that must name a port retry (see [`crate::servers::memcached`]); ringcache
//! itself is started on port 0 and tells its address.

use std::net::{SocketAddr, TcpListener};

/// A loopback port nobody listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral loopback port")
        .port()
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}
