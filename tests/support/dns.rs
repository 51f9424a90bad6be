//! An authoritative DNS server for the zone `nodes.test.` on a loopback UDP port
//! (`hickory-server`, in memory), whose records a test changes as it goes: the discovery
//! tests (tests/discovery.rs) and the TLS-name tests (tests/tls.rs) resolve through it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use hickory_server::authority::{Catalog, ZoneType};
use hickory_server::proto::rr::rdata::{A, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;
use tokio::net::UdpSocket;

use super::Server;

/// The SRV name the members are published under.
pub const SRV_NAME: &str = "_memcache._tcp.nodes.test.";

/// A DNS server for the zone `nodes.test.` on a loopback UDP port.
pub struct Dns {
    pub addr: SocketAddr,
    zone: Arc<InMemoryAuthority>,
    serial: u32,
    task: tokio::task::JoinHandle<()>,
}

pub fn name(s: &str) -> Name {
    Name::from_str(s).expect("DNS name")
}

impl Dns {
    pub async fn start() -> Dns {
        let origin = name("nodes.test.");
        let mut zone = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
        let soa = SOA::new(
            name("ns.nodes.test."),
            name("admin.nodes.test."),
            1,
            60,
            60,
            60,
            0,
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1);
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![zone.clone()]);
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind DNS");
        let addr = socket.local_addr().expect("DNS addr");
        let mut server = ServerFuture::new(catalog);
        server.register_socket(socket);
        let task = tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        Dns {
            addr,
            zone,
            serial: 1,
            task,
        }
    }

    /// Replaces the records of `owner` of type `rtype` with `data` (none: removes them).
    pub async fn set(&mut self, owner: &str, rtype: RecordType, data: Vec<RData>) {
        self.serial += 1;
        let owner = name(owner);
        self.zone
            .records_mut()
            .await
            .remove(&RrKey::new(LowerName::new(&owner), rtype));
        for d in data {
            // TTL 0: nothing may serve an old answer.
            assert!(
                self.zone
                    .upsert(Record::from_rdata(owner.clone(), 0, d), self.serial)
                    .await
            );
        }
    }

    /// `n<i>.nodes.test.` at `ip`.
    pub async fn set_a(&mut self, i: usize, ip: Ipv4Addr) {
        self.set(
            &format!("n{i}.nodes.test."),
            RecordType::A,
            vec![RData::A(A(ip))],
        )
        .await;
    }

    /// The SRV records: one per `(i, port)`, target `n<i>.nodes.test.`.
    pub async fn set_srv(&mut self, members: &[(usize, u16)]) {
        let data = members
            .iter()
            .map(|&(i, port)| RData::SRV(SRV::new(0, 0, port, name(&format!("n{i}.nodes.test.")))))
            .collect();
        self.set(SRV_NAME, RecordType::SRV, data).await;
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
}

impl Dns {
    /// Stops answering (the task ends; its socket closes once the task is dropped).
    pub async fn stop(&mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.task.abort();
    }
}
