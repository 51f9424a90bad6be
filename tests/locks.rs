//! Locks and leases (`Client::lock`) on real `ringcache node` processes: at most one valid holder
//! at any instant under contention, also across a kill -9 and restart of a node; fencing tokens
//! that strictly increase; a release that never removes another owner's lock; a node that
//! restarted empty kept out of the vote. docs/locks.md states what these show and what they
//! cannot.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringcache_client::{Client, Error, Lease, LockOptions};
use support::{spawn_node, spawn_node_at, Server};

/// Short leases so the tests wait seconds, not minutes; every router of a cluster uses the same.
const OPTS: LockOptions = LockOptions {
    max_ttl: Duration::from_secs(3),
    drift: 0.01,
};
const TTL: Duration = Duration::from_secs(2);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Three nodes, up long enough to count toward a lock majority (see [`wait_trusted`]), and
/// their addresses.
fn three_trusted_nodes() -> (Vec<Server>, Vec<SocketAddr>) {
    let nodes: Vec<Server> = (0..3).map(|_| spawn_node(&["--threads", "2"])).collect();
    let addrs = nodes.iter().map(|n| n.addr).collect();
    wait_trusted();
    (nodes, addrs)
}

/// A node restarted on the address it had, retried while the old socket lingers.
fn restart(old: &mut Server) {
    let addr = old.addr;
    old.kill9();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::panic::catch_unwind(|| spawn_node_at(&addr.to_string(), &["--threads", "2"])) {
            Ok(s) => {
                *old = s;
                return;
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => std::panic::resume_unwind(e),
        }
    }
}

/// `owner` asks for the lock `name` for [`TTL`]: the lease, or `None` while another holds it.
async fn lock(client: &Client, name: &[u8], owner: &[u8]) -> Option<Lease> {
    client
        .lock_with(&OPTS, name, owner, TTL)
        .await
        .expect("lock")
}

async fn client(addrs: &[SocketAddr], replicas: usize) -> Client {
    Client::builder()
        .nodes(addrs.iter().map(|a| a.to_string()))
        .replicas(replicas)
        .request_timeout(Duration::from_millis(500))
        .build()
        .await
        .expect("client")
}

/// Waits until a node started now counts toward a lock majority (up longer than `max_ttl`).
fn wait_trusted() {
    std::thread::sleep(OPTS.max_ttl + Duration::from_millis(1500));
}

/// One grant as its holder saw it.
#[derive(Debug, Clone)]
struct Grant {
    task: usize,
    token: u64,
    from: Instant,
    until: Instant,
}

#[test]
fn contention_never_has_two_valid_holders_even_across_a_node_restart() {
    let (mut nodes, addrs) = three_trusted_nodes();
    let rt = runtime();
    let grants: Arc<Mutex<Vec<Grant>>> = Arc::default();
    let run_for = Duration::from_secs(9);
    let start = Instant::now();
    let restarted_at = rt.block_on(async {
        let client = client(&addrs, 3).await;
        let tasks: Vec<_> = (0..6)
            .map(|task| {
                let client = client.clone();
                let grants = grants.clone();
                tokio::spawn(async move {
                    let mut attempts = 0u32;
                    while start.elapsed() < run_for && attempts < 10_000 {
                        attempts += 1;
                        let owner = format!("task-{task}");
                        let lease =
                            match client.lock_with(&OPTS, b"job", owner.as_bytes(), TTL).await {
                                Ok(Some(l)) => l,
                                Ok(None) | Err(_) => {
                                    tokio::time::sleep(Duration::from_millis(15)).await;
                                    continue;
                                }
                            };
                        let from = Instant::now();
                        // Hold for a while (sometimes past the lease, which then just ends).
                        let hold = Duration::from_millis(40 + u64::from(attempts % 7) * 60);
                        tokio::time::sleep(hold).await;
                        let until = Instant::now().min(lease.valid_until());
                        grants.lock().unwrap().push(Grant {
                            task,
                            token: lease.token(),
                            from,
                            until,
                        });
                        // One grant in four is abandoned: it must end by expiry alone.
                        if attempts % 4 != 0 {
                            let _ = lease.release().await;
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(3)).await;
        // A crash and an immediate restart: the node comes back empty.
        let restarted_at = Instant::now();
        tokio::task::block_in_place(|| restart(&mut nodes[0]));
        for t in tasks {
            t.await.expect("task");
        }
        restarted_at
    });
    let mut grants = grants.lock().unwrap().clone();
    grants.sort_by_key(|g| g.from);
    eprintln!(
        "{} grants in {:?}; {} after the restart",
        grants.len(),
        run_for,
        grants.iter().filter(|g| g.from > restarted_at).count()
    );
    assert!(grants.len() >= 5, "too few grants to judge: {grants:?}");
    assert!(
        grants.iter().any(|g| g.from > restarted_at),
        "no grant after the restart: {grants:?}"
    );
    for (i, a) in grants.iter().enumerate() {
        for b in &grants[i + 1..] {
            assert!(
                a.until <= b.from,
                "two valid holders at once: {a:?} and {b:?}"
            );
        }
    }
    for w in grants.windows(2) {
        assert!(
            w[0].token < w[1].token,
            "fencing tokens must increase: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    let holders: std::collections::HashSet<usize> = grants.iter().map(|g| g.task).collect();
    assert!(holders.len() > 1, "one task took every grant: {holders:?}");
}

#[test]
fn a_stale_lease_cannot_release_or_renew_the_next_owners_lock() {
    let (_nodes, addrs) = three_trusted_nodes();
    runtime().block_on(async {
        let client = client(&addrs, 3).await;
        let mut first = lock(&client, b"res", b"first")
            .await
            .expect("a free lock is granted");
        assert!(first.is_valid());
        assert!(
            lock(&client, b"res", b"second").await.is_none(),
            "a held lock is not granted again"
        );
        // `first` is abandoned; the lock frees itself by expiry.
        let deadline = Instant::now() + Duration::from_secs(6);
        let second = loop {
            if let Some(l) = lock(&client, b"res", b"second").await {
                break l;
            }
            assert!(Instant::now() < deadline, "the lock never expired");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(!first.is_valid(), "the first lease outlived its item");
        assert!(second.token() > first.token());
        assert!(
            !first.renew(TTL).await.expect("renew"),
            "an expired lease must not renew"
        );
        let first_token = first.token();
        assert!(
            !first.release().await.expect("release"),
            "an expired lease released someone else's lock"
        );
        assert!(
            lock(&client, b"res", b"third").await.is_none(),
            "the second owner's lock was removed by the first"
        );
        let second_token = second.token();
        assert!(second_token > first_token);
        assert!(second.release().await.expect("release"));
        let third = lock(&client, b"res", b"third")
            .await
            .expect("released lock is granted");
        assert!(third.token() > second_token);
    });
}

#[test]
fn renew_extends_a_live_lease() {
    let (_nodes, addrs) = three_trusted_nodes();
    runtime().block_on(async {
        let client = client(&addrs, 3).await;
        let mut lease = lock(&client, b"renewed", b"me").await.expect("granted");
        let first_end = lease.valid_until();
        // Renew twice across what would have been the first lease's end.
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            assert!(lease.renew(Duration::from_secs(3)).await.expect("renew"));
        }
        assert!(lease.valid_until() > first_end);
        assert!(
            Instant::now() > first_end,
            "the test must outlast the first lease"
        );
        assert!(
            lock(&client, b"renewed", b"other").await.is_none(),
            "a renewed lease was granted to another owner"
        );
        assert!(lease.release().await.expect("release"));
    });
}

#[test]
fn nodes_that_restarted_empty_do_not_count_toward_a_majority() {
    let (mut nodes, addrs) = three_trusted_nodes();
    let rt = runtime();
    let held = rt.block_on(async {
        let client = client(&addrs, 3).await;
        client
            .lock_with(&OPTS, b"crash", b"first", Duration::from_secs(3))
            .await
            .expect("lock")
            .expect("granted")
    });
    // Two of the three holders crash and come back empty while the lease is live.
    restart(&mut nodes[0]);
    restart(&mut nodes[1]);
    rt.block_on(async {
        // A router that never saw the crash (a fresh one) must still refuse: the two empty nodes
        // would accept the add, but they have not been up longer than any lease lasts.
        let fresh = client(&addrs, 3).await;
        let r = fresh
            .lock_with(&OPTS, b"crash", b"second", Duration::from_secs(3))
            .await
            .expect("lock");
        assert!(
            held.is_valid(),
            "the test must ask while the first lease is live"
        );
        assert!(r.is_none(), "a second owner got a live lock: {r:?}");
    });
}

#[test]
fn one_copy_is_refused() {
    let node = spawn_node(&[]);
    runtime().block_on(async {
        let client = client(&[node.addr], 1).await;
        match client.lock(b"solo", b"me", Duration::from_secs(5)).await {
            Err(Error::Lock(_)) => {}
            other => panic!("replicas 1 must be refused, got {other:?}"),
        }
    });
}

/// A proxy in this process with `ack = quorum` in front of `addrs` (replicas 3, the test's lock
/// TTL bound): memcached clients' `add` is then a majority lock.
async fn quorum_proxy(addrs: &[SocketAddr]) -> ringcache::proxy::ProxyHandle {
    let mut toml = format!(
        "listen = \"127.0.0.1:0\"\nack = \"quorum\"\nlock_max_ttl = {}\nrequest_timeout_ms = 500\n\
         [ring]\nreplicas = 3\n",
        OPTS.max_ttl.as_secs()
    );
    for a in addrs {
        toml.push_str(&format!("[[nodes]]\naddr = \"{a}\"\n"));
    }
    let cfg = ringcache::proxy::ProxyConfig::from_toml(&toml).expect("config");
    ringcache::proxy::start(cfg, None).await.expect("proxy")
}

/// A memcached client (the `memcache` crate, as users run it) on `addr`.
fn memcache_client(addr: SocketAddr) -> memcache::Client {
    memcache::Client::connect(format!("memcache://{addr}?timeout=5&protocol=ascii").as_str())
        .expect("connect")
}

/// What each node holds under `key` (read from each node directly).
fn held_by_each(addrs: &[SocketAddr], key: &str) -> Vec<Option<String>> {
    addrs
        .iter()
        .map(|a| memcache_client(*a).get(key).expect("get"))
        .collect()
}

/// The `memcache` crate's text-protocol `add` does not report `NOT_STORED`, so every outcome
/// here is read back from the nodes themselves.
#[test]
fn quorum_add_through_the_proxy_is_a_majority_lock() {
    let (mut nodes, addrs) = three_trusted_nodes();
    let rt = runtime();
    let first = rt.block_on(quorum_proxy(&addrs));
    let owner1 = memcache_client(first.addr);
    let owner2 = memcache_client(first.addr);
    let one = Some("owner-1".to_string());
    owner1.add("job", "owner-1", 3).expect("add");
    assert_eq!(held_by_each(&addrs, "job"), vec![one.clone(); 3]);
    owner2.add("job", "owner-2", 3).expect("add");
    assert_eq!(
        held_by_each(&addrs, "job"),
        vec![one.clone(); 3],
        "a held lock was taken again"
    );
    // The key's primary and first replica lose their copies (crash, restart) while the lock is
    // live: a plain add on the primary would now succeed.
    let order: Vec<usize> = rt.block_on(async {
        let c = client(&addrs, 3).await;
        let t = c.topology();
        t.owners(b"job").as_slice().to_vec()
    });
    restart(&mut nodes[order[0]]);
    restart(&mut nodes[order[1]]);
    // A proxy that never saw the crash must not let a second owner in through the empty nodes,
    // and leaves nothing of the refused add behind.
    let second = rt.block_on(quorum_proxy(&addrs));
    let owner3 = memcache_client(second.addr);
    owner3.add("job", "owner-3", 3).expect("add");
    let mut expect = vec![None; 3];
    expect[order[2]] = one.clone();
    assert_eq!(
        held_by_each(&addrs, "job"),
        expect,
        "a second owner took a live lock through restarted nodes"
    );
    // Released (a delete reaches every replica), the lock is free to the next owner once the
    // restarted nodes have been up longer than any lock lasts.
    owner1.delete("job").expect("delete");
    wait_trusted();
    owner3.add("job", "owner-3", 3).expect("add");
    assert_eq!(
        held_by_each(&addrs, "job"),
        vec![Some("owner-3".to_string()); 3]
    );
    rt.block_on(async {
        first.shutdown().await;
        second.shutdown().await;
    });
}
