//! Fail-open never means stale: writes and invalidations that meet a Redis fault are kept,
//! retried once the server is back and broadcast, and this process does not trust the remote
//! copy of those keys meanwhile (issue 17, item 1).
//!
//! Each test runs its own `redis-server` on a free port (`DEBUG SLEEP` would stall every other
//! user of a shared server), and is bounded in time.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_runtime::{Cache, RedisBackend};
use support::{free_port, start_server as try_start};

fn start_server(port: u16) -> support::Server {
    try_start(port).expect("redis-server must be installed (.ci/run installs it)")
}

/// One process of the fleet: its own backend (own connections, own listener) and cache.
fn process(url: &str, timeout: Duration) -> (Arc<RedisBackend>, Cache<u64, String>) {
    let backend = Arc::new(RedisBackend::new(url, timeout).unwrap());
    let cache = Cache::builder()
        .name("users")
        .ttl(Duration::from_secs(60))
        // Long: without the broadcast, another process's L1 copy would outlive the test.
        .l1_ttl(Duration::from_secs(60))
        .remote(backend.clone(), "pending")
        .build()
        .unwrap();
    (backend, cache)
}

fn wait_until(within: Duration, mut what: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if what() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Keys answering anything but `v2` (the source of truth after the writes).
fn stale(cache: &Cache<u64, String>) -> Vec<u64> {
    (0..20)
        .filter(|k| cache.get_or_insert_with(k, || "v2".to_string()) != "v2")
        .collect()
}

#[test]
fn writes_during_a_stall_never_bring_the_old_value_back() {
    let port = free_port();
    let _server = start_server(port);
    let url = format!("redis://127.0.0.1:{port}/");
    // 200 ms: long enough that a busy machine's stall does not fail the set-up's reads open.
    let timeout = Duration::from_millis(200);
    let (wb, writer) = process(&url, timeout);
    let (ob, other) = process(&url, timeout);
    assert!(
        wait_until(Duration::from_secs(10), || wb.is_listening()
            && ob.is_listening())
        .is_some(),
        "both processes subscribe"
    );
    for k in 0..20 {
        writer.insert(k, "v1".to_string());
    }
    // The other process reads them from Redis, and keeps them in its L1.
    for k in 0..20 {
        assert_eq!(other.get_or_insert_with(&k, || unreachable!()), "v1");
    }
    assert_eq!(other.stats().remote_hits, 20);

    // A 6 s stall, data kept.
    let mut probe = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let stall = std::thread::spawn({
        let url = url.clone();
        move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            let _: redis::RedisResult<String> =
                redis::cmd("DEBUG").arg("SLEEP").arg(6).query(&mut c);
        }
    });
    let stalled = Instant::now();
    // Until the server is asleep for certain: a PING gets no answer within 250 ms.
    assert!(
        wait_until(Duration::from_secs(3), || redis::cmd("PING")
            .query::<String>(&mut probe)
            .is_err())
        .is_some(),
        "the server never slept"
    );
    // What #[cache_evict] and #[cache_put] do: 10 invalidations, 10 write-throughs.
    let mut slowest = Duration::ZERO;
    for k in 0..10 {
        let t = Instant::now();
        writer.remove(&k);
        slowest = slowest.max(t.elapsed());
    }
    for k in 10..20 {
        let t = Instant::now();
        writer.insert(k, "v2".to_string());
        slowest = slowest.max(t.elapsed());
    }
    let s = writer.stats();
    assert_eq!(s.pending_remote_writes, 20, "{s:?}");
    assert!(s.remote_write_failures >= 20, "{s:?}");
    assert!(!s.l1_only);
    assert!(
        slowest < timeout * 5,
        "a write is bounded by its operations' timeouts (the write, its broadcast), not by the stall: {slowest:?}"
    );

    // Still stalled (20 writes of at most one timeout each, fewer once the breaker opens): the
    // writer answers the new values (it does not trust Redis's copies of the keys it could not
    // write).
    assert!(
        stalled.elapsed() < Duration::from_secs(5),
        "{:?}",
        stalled.elapsed()
    );
    assert_eq!(
        stale(&writer),
        Vec::<u64>::new(),
        "writer, during the stall"
    );

    stall.join().unwrap();
    let back = Instant::now();
    // 0.5 s after the stall: still none in the writer.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(stale(&writer), Vec::<u64>::new(), "writer, after the stall");

    // The other process: once the retried writes and their broadcasts reach it, every key
    // answers the new value.
    let fresh = wait_until(Duration::from_secs(8), || stale(&other).is_empty());
    assert!(
        fresh.is_some(),
        "the other process still answers old values: {:?}",
        stale(&other)
    );
    let after = back.elapsed();
    assert!(
        wait_until(Duration::from_secs(5), || writer
            .stats()
            .pending_remote_writes
            == 0)
        .is_some(),
        "every pending write went through: {:?}",
        writer.stats()
    );
    // A third process, new to the fleet, reads what Redis holds: the new values only.
    let (_tb, third) = process(&url, Duration::from_secs(1));
    assert_eq!(
        stale(&third),
        Vec::<u64>::new(),
        "Redis holds the new values"
    );
    eprintln!(
        "slowest write during the stall {slowest:?}; the other process fresh {after:?} after the stall"
    );
}

#[test]
fn writes_beyond_the_limit_fall_back_to_l1_only_until_a_clear_goes_through() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let server = start_server(port);
    // 300 ms: a busy machine's stall must not leave one of the first writes pending.
    let backend = Arc::new(RedisBackend::new(&url, Duration::from_millis(300)).unwrap());
    let cache: Cache<u64, String> = Cache::builder()
        .name("small")
        .ttl(Duration::from_secs(60))
        .l1_ttl(Duration::from_millis(1))
        .remote(backend, "pending")
        .max_pending_writes(4)
        .build()
        .unwrap();
    for k in 0..8 {
        cache.insert(k, "v1".to_string());
    }
    // What Redis holds now (the old values), to put back into the restarted server below.
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let names: Vec<String> = redis::cmd("KEYS")
        .arg("pending:small:*")
        .query(&mut c)
        .unwrap();
    assert_eq!(names.len(), 8);
    let old: Vec<(String, Vec<u8>)> = names
        .into_iter()
        .map(|k| {
            let v: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut c).unwrap();
            (k, v)
        })
        .collect();
    // The server goes away: nothing listens on the port.
    drop(server);
    for k in 0..8 {
        cache.insert(k, "v2".to_string());
    }
    let s = cache.stats();
    assert!(s.l1_only, "more failed writes than the cache keeps: {s:?}");
    assert_eq!(s.pending_remote_writes, 0, "a clear took the list's place");
    // L1 only: every key answers the new value (its L1 copy, or a load), never Redis's.
    std::thread::sleep(Duration::from_millis(5));
    for k in 0..8 {
        assert_eq!(cache.get_or_insert_with(&k, || "v2".to_string()), "v2");
    }
    // The server is back, with the old values (as if it had only been cut off).
    let _server = start_server(port);
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    for (k, v) in &old {
        let _: () = redis::cmd("SET").arg(k).arg(v).query(&mut c).unwrap();
    }
    let back = wait_until(Duration::from_secs(10), || !cache.stats().l1_only);
    assert!(
        back.is_some(),
        "the clear went through: {:?}",
        cache.stats()
    );
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("pending:small:*")
        .query(&mut c)
        .unwrap();
    assert!(
        left.is_empty(),
        "the cache's remote entries were cleared: {left:?}"
    );
    // And the tier is used again.
    cache.insert(1, "v3".to_string());
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("pending:small:*")
        .query(&mut c)
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(cache.stats().pending_remote_writes, 0);
}
