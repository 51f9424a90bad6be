//! The run's names in DNS: the zone `nodes.test.`, served by `testkit::dns::TestDns` inside
//! the proxies' namespace, with one A record per node and the members' SRV records.

/// The zone every record lives in.
pub const ZONE: &str = "nodes.test.";
/// The SRV name the proxies follow (`dnssrv+` it).
pub const SRV_NAME: &str = "_memcache._tcp.nodes.test.";

/// Node `i`'s DNS name, without the final dot: what its certificate names, and with the port
/// what the proxies call it.
pub fn node_name(i: usize) -> String {
    format!("node-{i}.nodes.test")
}

/// Node `i`'s name as a DNS record names it (absolute).
pub fn node_fqdn(i: usize) -> String {
    format!("{}.", node_name(i))
}
