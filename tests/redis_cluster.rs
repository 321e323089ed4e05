//! The Redis tier over a Redis Cluster of three masters that this test starts on free ports
//! (`redis-server --cluster-enabled yes`, then `redis-cli --cluster create`).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Clock, ManualClock, RedisBackend};
use cache_test_support::{Server, free_port};

/// A cluster node: its server, and the directory of its `nodes.conf`.
struct Node(Option<Server>, std::path::PathBuf);

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.0.take()); // stopped first: it writes to its directory
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn start_cluster() -> (Vec<Node>, Vec<String>) {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut nodes = Vec::new();
    for &port in &ports {
        let dir =
            std::env::temp_dir().join(format!("cache-rs-cluster-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let server = Server::redis(
            port,
            &[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--dir",
                dir.to_str().unwrap(),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        nodes.push(Node(Some(server), dir));
    }
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}/"))
        .collect();
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let status = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("redis-cli must be installed");
    assert!(status.success(), "redis-cli --cluster create failed");
    // Wait until every node sees the cluster as ok.
    for url in &urls {
        let client = redis::Client::open(url.as_str()).unwrap();
        let start = Instant::now();
        loop {
            let info: String = client
                .get_connection()
                .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query(&mut c))
                .unwrap_or_default();
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "cluster not ok: {info}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    (nodes, urls)
}

#[test]
fn a_cluster_backend_shares_values_invalidations_and_clears_across_slots() {
    let (_nodes, urls) = start_cluster();
    let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let clock = ManualClock::new();
    let make = || -> (Cache<u64, String>, Arc<RedisBackend>) {
        let backend =
            Arc::new(RedisBackend::cluster(&url_refs, Duration::from_millis(500)).unwrap());
        let cache = Cache::builder()
            .name("cluster")
            .ttl(Duration::from_secs(600))
            .l1_ttl(Duration::from_secs(600))
            .clock(Clock::manual(&clock))
            .remote(backend.clone(), "ct")
            .build()
            .unwrap();
        (cache, backend)
    };
    let ((a, _), (b, b_backend)) = (make(), make());
    // Many keys: they land in slots of all three masters.
    for k in 0..100u64 {
        assert_eq!(
            a.get_or_insert_with(&k, || format!("v{k}")),
            format!("v{k}")
        );
    }
    for k in 0..100u64 {
        assert_eq!(
            b.get_or_insert_with(&k, || unreachable!("in the cluster")),
            format!("v{k}")
        );
    }
    assert_eq!(b.stats().remote_hits, 100);
    // The keys really are spread over the masters.
    let mut per_node = Vec::new();
    for url in &urls {
        let mut c = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let n: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
        per_node.push(n);
    }
    assert!(per_node.iter().all(|&n| n > 0), "{per_node:?}");
    assert_eq!(per_node.iter().sum::<usize>(), 100);

    // Pub/sub invalidation across the cluster, once B is subscribed (a message published
    // before that is not B's to receive).
    let start = Instant::now();
    while !b_backend.is_listening() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "B never subscribed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    a.insert(5, "new".into());
    let start = Instant::now();
    while b.contains_key(&5) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "B's copy was not evicted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(b.get_or_insert_with(&5, || unreachable!()), "new");

    // The fleet-wide lease works on a cluster too (one key, one slot), and is released.
    let locked: Cache<u64, String> = Cache::builder()
        .name("cluster-locked")
        .remote(
            Arc::new(RedisBackend::cluster(&url_refs, Duration::from_millis(500)).unwrap()),
            "ct",
        )
        .distributed_lock(Duration::from_secs(5))
        .build()
        .unwrap();
    assert_eq!(locked.get_or_insert_with(&1, || "one".into()), "one");
    let mut total = 0;
    for url in &urls {
        let mut c = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("ct:cluster-locked:*")
            .query(&mut c)
            .unwrap();
        assert!(
            keys.iter().all(|k| !k.ends_with(":lease")),
            "lease left behind: {keys:?}"
        );
        total += keys.len();
    }
    assert_eq!(total, 1, "the value, and no lease");
    locked.clear();

    // A clear reaches every master.
    a.clear();
    for url in &urls {
        let mut c = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let n: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
        assert_eq!(n, 0);
    }
}
