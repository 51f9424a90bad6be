//! An accepted client connection, plain or TLS: what the node's and the proxy's connection
//! loops read requests from and write replies to. It is the client crate's transport stream
//! (`ringcache_client::transport::Stream`), which covers both TLS roles, so a byte stream has
//! one type on either side of a connection.

pub use ringcache_client::transport::Stream as ServerStream;
