//! The test's DNS server: `hickory-server` with one in-memory zone, `nodes.test.`, whose SRV
//! and A records the run changes as an orchestrator would (tests/discovery.rs does the same
//! on loopback). Every record has TTL 0, so no resolver may answer from a cache.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use hickory_server::authority::{Catalog, ZoneType};
use hickory_server::proto::rr::rdata::{A, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;
use tokio::net::UdpSocket;

use crate::error::Result;
use crate::harness::fail;

/// The zone every record lives in.
pub const ZONE: &str = "nodes.test.";
/// The SRV name the proxies follow (`dnssrv+` it).
pub const SRV_NAME: &str = "_memcache._tcp.nodes.test.";

/// Node `i`'s DNS name, without the final dot: what its certificate names, and with the port
/// what the proxies call it.
pub fn node_name(i: usize) -> String {
    format!("node-{i}.nodes.test")
}

fn name(s: &str) -> Result<Name> {
    Name::from_str(s).map_err(|e| fail(format!("DNS name {s:?}: {e}")))
}

/// A running DNS server for [`ZONE`]; stops when dropped.
pub struct TestDns {
    pub addr: SocketAddr,
    zone: Arc<InMemoryAuthority>,
    serial: u32,
    task: tokio::task::JoinHandle<()>,
}

impl TestDns {
    /// Serves [`ZONE`] on UDP `bind`, from the runtime this is called on (the socket is opened
    /// in the calling thread's network namespace).
    pub async fn start(bind: SocketAddr) -> Result<TestDns> {
        let origin = name(ZONE)?;
        let mut zone = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
        let soa = SOA::new(
            name(&format!("ns.{ZONE}"))?,
            name(&format!("admin.{ZONE}"))?,
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
        let socket = UdpSocket::bind(bind).await?;
        let addr = socket.local_addr()?;
        let mut server = ServerFuture::new(catalog);
        server.register_socket(socket);
        let task = tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        Ok(TestDns {
            addr,
            zone,
            serial: 1,
            task,
        })
    }

    /// Replaces the records of `owner` of type `rtype` with `data` (none: removes them).
    async fn set(&mut self, owner: &str, rtype: RecordType, data: Vec<RData>) -> Result<()> {
        self.serial += 1;
        let owner = name(owner)?;
        self.zone
            .records_mut()
            .await
            .remove(&RrKey::new(LowerName::new(&owner), rtype));
        for d in data {
            if !self
                .zone
                .upsert(Record::from_rdata(owner.clone(), 0, d), self.serial)
                .await
            {
                return Err(fail(format!("DNS: record of {owner} not taken")));
            }
        }
        Ok(())
    }

    /// Node `i`'s A record: `node-<i>.nodes.test.` at `ip`.
    pub async fn set_a(&mut self, i: usize, ip: Ipv4Addr) -> Result<()> {
        let owner = format!("{}.", node_name(i));
        self.set(&owner, RecordType::A, vec![RData::A(A(ip))]).await
    }

    /// The SRV records: one per member, target `node-<i>.nodes.test.`, at `port`.
    pub async fn set_srv(&mut self, members: &[usize], port: u16) -> Result<()> {
        let mut data = Vec::new();
        for &i in members {
            let target = name(&format!("{}.", node_name(i)))?;
            data.push(RData::SRV(SRV::new(0, 0, port, target)));
        }
        self.set(SRV_NAME, RecordType::SRV, data).await
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}
