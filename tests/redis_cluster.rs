//! The Redis tier over a Redis Cluster of three masters that this test starts on free ports
//! (`redis-server --cluster-enabled yes`, then `redis-cli --cluster create`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Clock, ManualClock, RedisBackend};

#[path = "support/servers.rs"]
mod servers;
use servers::{redis_calls, redis_connections, runtime, start_cluster, str_refs};

#[test]
fn a_cluster_backend_shares_values_invalidations_and_clears_across_slots() {
    let (_nodes, urls) = start_cluster();
    let url_refs = str_refs(&urls);
    let clock = ManualClock::new();
    let make = || -> (Cache<u64, String>, Arc<RedisBackend>) {
        let backend = Arc::new(RedisBackend::cluster(&url_refs, Duration::from_secs(2)).unwrap());
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
            Arc::new(RedisBackend::cluster(&url_refs, Duration::from_secs(2)).unwrap()),
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

/// A batch over keys of many hash slots: one `MGET` per slot (a cluster refuses keys of several
/// slots in one), all sent at once; every slot of the answer in the keys' order.
#[test]
fn a_cluster_batch_is_one_mget_per_hash_slot_in_the_keys_order() {
    use cache_runtime::tier::Backend;

    let (_nodes, urls) = start_cluster();
    let url_refs = str_refs(&urls);
    let b = RedisBackend::cluster(&url_refs, Duration::from_secs(2)).unwrap();
    let keys: Vec<String> = (0..200).map(|i| format!("ct:batch:t:{i:04}")).collect();
    let refs = str_refs(&keys);
    for (i, k) in keys.iter().enumerate().step_by(2) {
        b.set(k, format!("v{i}").as_bytes(), None).unwrap();
    }
    let mut cons = redis_connections(&urls);
    let mut slots = std::collections::HashSet::new();
    for k in &keys {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(k)
            .query(&mut cons[0])
            .unwrap();
        slots.insert(slot);
    }
    for c in &mut cons {
        let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(c).unwrap();
    }
    let expected: Vec<Option<Vec<u8>>> = (0..keys.len())
        .map(|i| (i % 2 == 0).then(|| format!("v{i}").into_bytes()))
        .collect();
    assert_eq!(b.get_many(&refs).unwrap(), expected);
    assert_eq!(
        runtime().block_on(b.get_many_async(&refs)).unwrap(),
        expected
    );
    let mgets: u64 = cons.iter_mut().map(|c| redis_calls(c, "mget")).sum();
    let gets: u64 = cons.iter_mut().map(|c| redis_calls(c, "get")).sum();
    eprintln!(
        "{} keys in {} slots: {mgets} MGETs for two batches",
        keys.len(),
        slots.len()
    );
    assert_eq!(
        mgets,
        2 * slots.len() as u64,
        "one MGET per slot, per batch"
    );
    assert_eq!(gets, 0);
}
