//! A test DNS server: `hickory-server` with one in-memory zone whose A and SRV records the
//! caller changes as an orchestrator would. The discovery and TLS-name tests run it on loopback
//! (`tests/support/dns.rs`), `ringcache-bench secure-cluster` inside the proxies' network
//! namespace. Every record it sets has TTL 0, so no resolver may answer from a cache.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use hickory_server::authority::{Catalog, ZoneType};
use hickory_server::proto::rr::rdata::{A, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;
use tokio::net::UdpSocket;

use crate::Error;

/// `s` as a DNS name (absolute when it ends with a dot).
pub fn name(s: &str) -> Result<Name, Error> {
    Name::from_str(s).map_err(|e| Error::Io(std::io::Error::other(format!("DNS name {s:?}: {e}"))))
}

/// A running DNS server for one zone; stops when dropped.
pub struct TestDns {
    pub addr: SocketAddr,
    zone: Arc<InMemoryAuthority>,
    serial: u32,
    task: tokio::task::JoinHandle<()>,
}

impl TestDns {
    /// Serves `zone` (e.g. `nodes.test.`) on UDP `bind`, from the runtime this is called on;
    /// the socket is opened in the calling thread's network namespace.
    pub async fn start(zone: &str, bind: SocketAddr) -> Result<TestDns, Error> {
        let origin = name(zone)?;
        let mut authority = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
        let soa = SOA::new(
            name(&format!("ns.{zone}"))?,
            name(&format!("admin.{zone}"))?,
            1,
            60,
            60,
            60,
            0,
        );
        authority.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1);
        let authority = Arc::new(authority);
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![authority.clone()]);
        let socket = UdpSocket::bind(bind).await?;
        let addr = socket.local_addr()?;
        let mut server = ServerFuture::new(catalog);
        server.register_socket(socket);
        let task = tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        Ok(TestDns {
            addr,
            zone: authority,
            serial: 1,
            task,
        })
    }

    /// Replaces the records of `owner` of type `rtype` with `data` (none: removes them).
    pub async fn set(
        &mut self,
        owner: &str,
        rtype: RecordType,
        data: Vec<RData>,
    ) -> Result<(), Error> {
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
                let why = format!("DNS: record of {owner} not taken");
                return Err(Error::Io(std::io::Error::other(why)));
            }
        }
        Ok(())
    }

    /// `host`'s A record (`host` absolute, with its final dot): `ip`.
    pub async fn set_a(&mut self, host: &str, ip: Ipv4Addr) -> Result<(), Error> {
        self.set(host, RecordType::A, vec![RData::A(A(ip))]).await
    }

    /// The SRV records of `srv_name`: one per `(target, port)`, targets absolute.
    pub async fn set_srv(
        &mut self,
        srv_name: &str,
        targets: &[(String, u16)],
    ) -> Result<(), Error> {
        let mut data = Vec::with_capacity(targets.len());
        for (target, port) in targets {
            data.push(RData::SRV(SRV::new(0, 0, *port, name(target)?)));
        }
        self.set(srv_name, RecordType::SRV, data).await
    }

    /// Stops answering (the task ends; its socket closes once the task is dropped).
    pub async fn stop(&mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}
