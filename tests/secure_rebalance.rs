//! Membership changes and re-warms on nodes that require TLS, mutual TLS or authentication
//! (issue 23): every byte a router sends a node, the key listing (`lru_crawler metadump`) of
//! the migrator, the cleanup and the re-warm included, goes through the router's transport.
//!
//! Real node processes on loopback, an embedded router with the transport settings a proxy's
//! `[backend]` table gives. Keys are written, the membership changes (a node added, then one
//! removed) and **no key is read** during the transition, so nothing is moved by read-through:
//! afterwards every key must be on its new owners (read from each owner directly, over the
//! same TLS or authentication), the migrator must have listed every node's items with no
//! error, and the cleanup must have left exactly `replicas` copies. Then a node restarted empty
//! under TLS and authentication must be re-warmed from its replicas.

mod support;

use std::time::{Duration, Instant};

use ringcache_client::health::NodeState;
use ringcache_client::ring::NodeSpec;
use ringcache_client::transport::{Connector, TransportSettings};
use ringcache_client::{Client, ClientOptions, Phase};
use support::held::{curr_items_sum, held_on};
use support::pki::Pki;
use support::{spawn_node, spawn_node_at, Server};
use testkit::check::assert_none;
use testkit::run;

const KEYS: usize = 2_000;
const REPLICAS: usize = 2;
/// Limit on one request, and on connecting.
const LIMIT: Duration = Duration::from_secs(3);
/// Limit on a transition, its cleanup, a re-warm.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

fn key(i: usize) -> String {
    format!("sec:{i:05}")
}

fn value(i: usize) -> Vec<u8> {
    format!("v:{i}:{}", "y".repeat(i % 40)).into_bytes()
}

/// What the nodes require of their clients.
#[derive(Clone, Copy, Debug)]
enum Guard {
    /// TLS; with `mutual`, a client certificate from the CA too.
    Tls { mutual: bool },
    /// memcached's text-protocol authentication (`-Y <auth file>`).
    Auth,
    /// Mutual TLS and authentication.
    Both,
}

/// The files a guard needs and what nodes and routers are given.
struct Secure {
    guard: Guard,
    pki: Pki,
}

const USERS: &str = "router:r0uter-pw\nsomeone:else\n";

impl Secure {
    fn new(guard: Guard, tag: &str) -> Secure {
        let pki = Pki::new(tag);
        pki.put("users", USERS);
        pki.put("router-password", "r0uter-pw\n");
        Secure { guard, pki }
    }

    fn tls(&self) -> Option<bool> {
        match self.guard {
            Guard::Tls { mutual } => Some(mutual),
            Guard::Both => Some(true),
            Guard::Auth => None,
        }
    }

    fn auth(&self) -> bool {
        matches!(self.guard, Guard::Auth | Guard::Both)
    }

    /// The `ringcache node` arguments.
    fn node_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(mutual) = self.tls() {
            args.extend(self.pki.node_args(if mutual { 2 } else { 0 }));
        }
        if self.auth() {
            args.push("-Y".into());
            args.push(self.pki.path("users").to_string_lossy().into_owned());
        }
        args
    }

    fn node(&self) -> Server {
        let args = self.node_args();
        spawn_node(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn node_at(&self, listen: &str) -> Server {
        let args = self.node_args();
        spawn_node_at(listen, &args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// What a proxy's `[backend]` table would say for these nodes.
    fn connector(&self) -> Connector {
        let mut s = TransportSettings::default();
        if let Some(mutual) = self.tls() {
            s.tls = true;
            s.ssl_ca_cert = Some(self.pki.path("ca.pem"));
            if mutual {
                s.ssl_chain_cert = Some(self.pki.path("client.pem"));
                s.ssl_key = Some(self.pki.path("client.key"));
            }
        }
        if self.auth() {
            s.auth_user = Some("router".into());
            s.auth_password_file = Some(self.pki.path("router-password"));
        }
        Connector::new(&s).expect("transport settings")
    }
}

fn spec(i: usize, s: &Server) -> NodeSpec {
    // Named as a node found by SRV is (its certificate is checked against that name).
    NodeSpec::new(s.addr.to_string()).named(format!("n{i}.nodes.test"))
}

/// A router over `nodes` speaking to them with `connector`.
async fn router(nodes: Vec<NodeSpec>, connector: Connector) -> Client {
    Client::builder()
        .options(ClientOptions {
            replicas: REPLICAS,
            connect_timeout: LIMIT,
            request_timeout: LIMIT,
            failure_limit: 2,
            transport: connector,
            ..ClientOptions::default()
        })
        .node_specs(nodes)
        .build()
        .await
        .expect("router")
}

/// `secure`'s transport, and a router over it to the first three of `nodes`, loaded with
/// every key (the start of each test here).
async fn loaded_router(secure: &Secure, nodes: &[Server]) -> (Connector, Client) {
    let connector = secure.connector();
    let client = router(
        (0..3).map(|i| spec(i, &nodes[i])).collect(),
        connector.clone(),
    )
    .await;
    load(&client).await;
    (connector, client)
}

async fn load(client: &Client) {
    for i in 0..KEYS {
        client
            .set(key(i).as_bytes(), value(i), 0, 0)
            .await
            .unwrap_or_else(|e| panic!("set {}: {e}", key(i)));
    }
}

/// Keys (of `0..KEYS`) some current owner lacks or holds with another value, each owner read
/// directly.
async fn misplaced(client: &Client, connector: &Connector) -> Vec<String> {
    let topo = client.topology();
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let mut held = Vec::new();
    for n in &topo.nodes {
        held.push(held_on(&n.spec.addr, connector, &keys, LIMIT).await);
    }
    let mut wrong = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let owners = topo.owners(k.as_bytes());
        assert_eq!(owners.as_slice().len(), REPLICAS);
        for &o in owners.as_slice() {
            if held[o].get(k) != Some(&value(i)) {
                wrong.push(format!("{k} on {}", topo.nodes[o].name));
            }
        }
    }
    wrong
}

/// `curr_items` of every current member, asked through the router (over its transport).
async fn items_held(client: &Client) -> u64 {
    curr_items_sum(client.stats().await)
}

/// Changes the membership to `members` with no read during the transition, and checks what
/// the transition did: every past member listed without error, every key on its new owners,
/// and after the cleanup `replicas` copies of each key.
async fn change(client: &Client, connector: &Connector, nodes: &[Server], members: &[usize]) {
    let before = client.rebalance_status();
    // Every item the past members hold is listed at least once (a member may also be listed
    // after it received copies, when a node leaves).
    let listed_at_least = items_held(client).await;
    let specs: Vec<NodeSpec> = members.iter().map(|&i| spec(i, &nodes[i])).collect();
    client.set_nodes(specs).await.expect("membership change");
    assert!(
        client.wait_settled(SETTLE_LIMIT).await,
        "the transition ends within {SETTLE_LIMIT:?}: {:?}",
        client.rebalance_status()
    );
    let wrong = misplaced(client, connector).await;
    assert!(
        wrong.is_empty(),
        "{} keys missing from their new owners after the transition, e.g. {:?}; {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)],
        client.rebalance_status()
    );
    let after = client.rebalance_status();
    assert_eq!(after.errors, before.errors, "rebalance errors: {after:?}");
    assert_eq!(after.completed, before.completed + 1, "{after:?}");
    assert!(
        after.scanned - before.scanned >= listed_at_least,
        "listed {} items of the {listed_at_least} the past members held: {after:?}",
        after.scanned - before.scanned
    );
    // The cleanup listed the members too and removed the copies they no longer own.
    let deadline = Instant::now() + SETTLE_LIMIT;
    while client.rebalance_status().phase != Phase::Idle {
        assert!(Instant::now() < deadline, "cleanup did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = items_held(client).await;
    assert_eq!(
        held,
        (KEYS * REPLICAS) as u64,
        "copies held after the cleanup: {:?}",
        client.rebalance_status()
    );
    assert_eq!(
        client.rebalance_status().errors,
        before.errors,
        "cleanup errors"
    );
}

/// Four nodes guarded by `guard`; the router over the first three; a node added, then one of
/// the original three removed.
async fn add_then_remove(guard: Guard, tag: &str) {
    let secure = Secure::new(guard, tag);
    let nodes: Vec<Server> = (0..4).map(|_| secure.node()).collect();
    let (connector, client) = loaded_router(&secure, &nodes).await;
    change(&client, &connector, &nodes, &[0, 1, 2, 3]).await;
    change(&client, &connector, &nodes, &[0, 2, 3]).await;
}

#[test]
fn membership_changes_over_tls_move_every_key() {
    run(add_then_remove(Guard::Tls { mutual: false }, "tls"));
}

#[test]
fn membership_changes_over_mutual_tls_move_every_key() {
    run(add_then_remove(Guard::Tls { mutual: true }, "mtls"));
}

#[test]
fn membership_changes_with_auth_move_every_key() {
    run(add_then_remove(Guard::Auth, "auth"));
}

/// The health state the router holds for the node at `addr`.
fn state(client: &Client, addr: &str) -> NodeState {
    let topo = client.topology();
    let node = topo.nodes.iter().find(|n| n.spec.addr == addr);
    node.expect("a member").health.state()
}

async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// A node killed and restarted empty on its address, under mutual TLS and authentication, is
/// noticed, flushed, fenced and re-warmed from its replicas: afterwards it holds every key it
/// owns, read from it directly.
#[test]
fn restarted_node_is_rewarmed_over_tls_and_auth() {
    run(async {
        let secure = Secure::new(Guard::Both, "rewarm");
        let mut nodes: Vec<Server> = (0..3).map(|_| secure.node()).collect();
        let (connector, client) = loaded_router(&secure, &nodes).await;
        let victim = 1;
        let addr = nodes[victim].addr.to_string();
        let topo = client.topology();
        let at = topo.nodes.iter().position(|n| n.spec.addr == addr);
        let at = at.expect("a member");
        let owned: Vec<String> = (0..KEYS)
            .map(key)
            .filter(|k| topo.owners(k.as_bytes()).as_slice().contains(&at))
            .collect();
        assert!(owned.len() > KEYS / 3, "victim owns {}", owned.len());

        nodes[victim].kill9();
        // Reads of keys it is primary for notice the crash.
        for k in owned
            .iter()
            .filter(|k| topo.owners(k.as_bytes()).as_slice()[0] == at)
            .take(8)
        {
            let _ = client.get(k.as_bytes()).await;
        }
        assert!(
            wait_for(Duration::from_secs(10), || state(&client, &addr)
                == NodeState::Down)
            .await,
            "marked down: {:?}",
            state(&client, &addr)
        );
        nodes[victim] = secure.node_at(&addr);
        assert!(
            wait_for(SETTLE_LIMIT, || state(&client, &addr) == NodeState::Up).await,
            "the restarted node is re-warmed and unfenced: still {:?}; {:?}",
            state(&client, &addr),
            client.rebalance_status()
        );
        let held = held_on(&addr, &connector, &owned, LIMIT).await;
        let missing: Vec<&String> = owned
            .iter()
            .filter(|k| {
                let i: usize = k["sec:".len()..].parse().expect("key number");
                held.get(*k) != Some(&value(i))
            })
            .collect();
        assert_none(&missing, owned.len(), "keys not re-warmed");
    });
}

/// A node that refuses to list its keys (its gate denies `lru_crawler`, as a node whose
/// `lru_crawler = "admin"` refuses a router that is not an admin) keeps the transition open:
/// it is not reported complete, the failures are counted, and the migrator keeps listing the
/// node; once the node lists (here: restarted without the gate), the transition completes.
#[test]
fn a_refused_listing_keeps_the_transition_open_until_the_node_lists() {
    run(async {
        let secure = Secure::new(Guard::Auth, "refused");
        let gate = secure
            .pki
            .put("deny.toml", "[commands]\nlru_crawler = \"deny\"\n");
        let mut args = secure.node_args();
        args.extend(["--config".to_string(), gate.to_string_lossy().into_owned()]);
        let refusing = spawn_node(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let mut nodes = vec![refusing];
        nodes.extend((1..4).map(|_| secure.node()));
        let (connector, client) = loaded_router(&secure, &nodes).await;
        let before = client.rebalance_status();
        let specs: Vec<NodeSpec> = (0..4).map(|i| spec(i, &nodes[i])).collect();
        client.set_nodes(specs).await.expect("membership change");

        // One pass: four attempts on the refusing node, 0.5 + 1 + 2 s apart.
        let failed_pass = wait_for(Duration::from_secs(20), || {
            client.rebalance_status().errors >= before.errors + 4
        })
        .await;
        assert!(failed_pass, "{:?}", client.rebalance_status());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let status = client.rebalance_status();
        assert!(client.in_transition(), "the old ring is kept: {status:?}");
        assert_eq!(status.completed, before.completed, "{status:?}");
        assert_eq!(status.phase, Phase::Scanning, "{status:?}");

        // The node comes back without its gate (and empty: its keys have replicas on the
        // others, which were listed): the next pass lists it and the transition ends.
        let addr = nodes[0].addr.to_string();
        nodes[0].kill9();
        nodes[0] = secure.node_at(&addr);
        assert!(
            client.wait_settled(SETTLE_LIMIT).await,
            "the transition ends once the node lists: {:?}",
            client.rebalance_status()
        );
        let status = client.rebalance_status();
        assert_eq!(status.completed, before.completed + 1, "{status:?}");
        // The added node holds every key it owns, copied from the other past owners.
        let topo = client.topology();
        let added = topo
            .nodes
            .iter()
            .position(|n| n.spec.addr == nodes[3].addr.to_string());
        let added = added.expect("a member");
        let owned: Vec<String> = (0..KEYS)
            .map(key)
            .filter(|k| topo.owners(k.as_bytes()).as_slice().contains(&added))
            .collect();
        let held = held_on(&nodes[3].addr.to_string(), &connector, &owned, LIMIT).await;
        assert!(!owned.is_empty());
        assert_eq!(held.len(), owned.len(), "keys of the added node copied");
    });
}
