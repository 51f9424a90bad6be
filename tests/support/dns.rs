//! The discovery and TLS-name tests' DNS server (tests/discovery.rs, tests/tls.rs):
//! `testkit::dns::TestDns` for the zone `nodes.test.` on a loopback UDP port, with the tests'
//! naming (`n<i>.nodes.test.`), panicking on failure as tests do.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use hickory_server::proto::rr::{Name, RData, RecordType};
use testkit::dns::TestDns;

use super::Server;

/// The SRV name the members are published under.
pub const SRV_NAME: &str = "_memcache._tcp.nodes.test.";

pub fn name(s: &str) -> Name {
    testkit::dns::name(s).expect("DNS name")
}

/// Member `i`'s name in a record.
fn member(i: usize) -> String {
    format!("n{i}.nodes.test.")
}

/// A DNS server for the zone `nodes.test.` on a loopback UDP port.
pub struct Dns {
    pub addr: SocketAddr,
    server: TestDns,
}

impl Dns {
    pub async fn start() -> Dns {
        let bind = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = TestDns::start("nodes.test.", bind)
            .await
            .expect("DNS server");
        Dns {
            addr: server.addr,
            server,
        }
    }

    /// Replaces the records of `owner` of type `rtype` with `data` (none: removes them).
    pub async fn set(&mut self, owner: &str, rtype: RecordType, data: Vec<RData>) {
        self.server
            .set(owner, rtype, data)
            .await
            .expect("DNS record");
    }

    /// `n<i>.nodes.test.` at `ip`.
    pub async fn set_a(&mut self, i: usize, ip: Ipv4Addr) {
        self.server.set_a(&member(i), ip).await.expect("A record");
    }

    /// The SRV records: one per `(i, port)`, target `n<i>.nodes.test.`.
    pub async fn set_srv(&mut self, members: &[(usize, u16)]) {
        let targets: Vec<(String, u16)> = members.iter().map(|&(i, p)| (member(i), p)).collect();
        self.server
            .set_srv(SRV_NAME, &targets)
            .await
            .expect("SRV records");
    }

    /// A server that already publishes `nodes` (see [`Dns::publish`]).
    pub async fn publishing(nodes: &[&Server]) -> Dns {
        let mut dns = Dns::start().await;
        dns.publish(nodes).await;
        dns
    }

    /// Publishes `nodes` as members `n0, n1, …`: an A record at each node's address, and their
    /// SRV records.
    pub async fn publish(&mut self, nodes: &[&Server]) {
        for (i, n) in nodes.iter().enumerate() {
            let IpAddr::V4(ip) = n.addr.ip() else {
                panic!("test nodes listen on IPv4 loopback")
            };
            self.set_a(i, ip).await;
        }
        let members: Vec<(usize, &Server)> = nodes.iter().copied().enumerate().collect();
        self.set_srv_of(&members).await;
    }

    /// The SRV records of `members`: `n<i>.nodes.test.` at each node's port.
    pub async fn set_srv_of(&mut self, members: &[(usize, &Server)]) {
        let srv: Vec<(usize, u16)> = members.iter().map(|&(i, n)| (i, n.addr.port())).collect();
        self.set_srv(&srv).await;
    }

    /// Stops answering (the task ends; its socket closes once the task is dropped).
    pub async fn stop(&mut self) {
        self.server.stop().await;
    }
}
