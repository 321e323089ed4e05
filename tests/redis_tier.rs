//! The Redis tier against a real server: values and negative results shared between independent
//! clients (as between processes), invalidation across them, corrupt payloads, and faults
//! (nothing listening, a server killed and restarted) that never fail a call.
//!
//! Needs `redis-server` on the `PATH`: this test binary starts its own on a free port
//! (`cache_test_support::redis_url`), and the restart tests one more each. Each test uses its own
//! key prefix and deletes its keys.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{BackendError, Cache, Clock, ManualClock, RedisBackend};
use cache_test_support::{Server, free_port, redis_url};

#[path = "support/servers.rs"]
mod servers;
use servers::{prefix, runtime, silent_server};

/// A backend with a generous operation timeout: these tests count loads and hits, and one slow
/// operation on a loaded machine would turn a hit into a fail-open miss.
fn backend(url: &str) -> Arc<RedisBackend> {
    backend_with(url, Duration::from_secs(2))
}

fn backend_with(url: &str, timeout: Duration) -> Arc<RedisBackend> {
    Arc::new(RedisBackend::new(url, timeout).expect("a valid URL"))
}

/// A cache as one process of a fleet would have it.
fn node<V>(prefix: &str, clock: &ManualClock) -> Cache<u64, V>
where
    V: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    Cache::builder()
        .name("users")
        .ttl(Duration::from_secs(60))
        .l1_ttl(Duration::from_secs(1))
        .clock(Clock::manual(clock))
        .remote(backend(redis_url()), prefix)
        .build()
        .unwrap()
}

#[test]
fn two_clients_share_values_and_invalidations() {
    let p = prefix("share");
    let (ca, cb) = (ManualClock::new(), ManualClock::new());
    let a: Cache<u64, String> = node(&p, &ca);
    let b: Cache<u64, String> = node(&p, &cb);
    let loads = AtomicUsize::new(0);
    let load = |k: u64| {
        loads.fetch_add(1, Ordering::SeqCst);
        format!("user-{k}")
    };
    assert_eq!(a.get_or_insert_with(&1, || load(1)), "user-1");
    // B has never seen key 1: its miss is answered by Redis, without a load.
    assert_eq!(b.get_or_insert_with(&1, || load(1)), "user-1");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(b.stats().remote_hits, 1);

    // A write-through on A reaches B (at the latest once B's L1 copy ages out, l1_ttl = 1 s;
    // usually at once, through the pub/sub broadcast tested below).
    a.insert(1, "renamed".into());
    cb.advance(Duration::from_millis(1_100));
    assert_eq!(b.get_or_insert_with(&1, || load(1)), "renamed");
    assert_eq!(loads.load(Ordering::SeqCst), 1);

    // An invalidation on A removes the key from Redis: B loads it afresh after its L1 copy.
    assert!(a.remove(&1));
    cb.advance(Duration::from_millis(1_100));
    assert_eq!(b.get_or_insert_with(&1, || load(1)), "user-1");
    assert_eq!(loads.load(Ordering::SeqCst), 2);

    a.clear();
    cb.advance(Duration::from_millis(1_100));
    assert_eq!(b.get_or_insert_with(&1, || load(1)), "user-1");
    assert_eq!(loads.load(Ordering::SeqCst), 3);
    a.clear();
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct NotFound;

#[test]
fn negative_results_are_shared_with_their_own_ttl() {
    let p = prefix("negative");
    let clock = ManualClock::new();
    let make = || -> Cache<u64, String, NotFound> {
        Cache::builder()
            .name("lookup")
            .ttl(Duration::from_secs(60))
            .negative_ttl(Duration::from_secs(5))
            .clock(Clock::manual(&clock))
            .remote_with_negatives(backend(redis_url()), &p)
            .build()
            .unwrap()
    };
    let (a, b) = (make(), make());
    assert_eq!(a.get_or_load(&9, || Err(NotFound)), Err(NotFound));
    assert_eq!(
        b.get_or_load(&9, || unreachable!("shared through Redis")),
        Err(NotFound)
    );
    a.clear();
}

#[test]
fn a_corrupt_payload_reads_as_a_miss_and_is_replaced() {
    let p = prefix("corrupt");
    let clock = ManualClock::new();
    let a: Cache<u64, Vec<u32>> = node(&p, &clock);
    a.get_or_insert_with(&5, || vec![1, 2, 3]);
    // Overwrite every key of this test's namespace with garbage, from a raw client.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{p}:*"))
        .query(&mut con)
        .unwrap();
    assert_eq!(
        keys.len(),
        1,
        "one key, namespaced under the prefix and cache name"
    );
    assert!(keys[0].starts_with(&format!("{p}:users:")));
    for k in &keys {
        let _: () = redis::cmd("SET")
            .arg(k)
            .arg(&b"\xCA\x01\x01\x00garbage"[..])
            .query(&mut con)
            .unwrap();
    }
    let b: Cache<u64, Vec<u32>> = node(&p, &clock);
    let loads = AtomicUsize::new(0);
    let v = b.get_or_insert_with(&5, || {
        loads.fetch_add(1, Ordering::SeqCst);
        vec![4]
    });
    assert_eq!(v, vec![4], "never a wrong value");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let now: Option<Vec<u8>> = redis::cmd("GET").arg(&keys[0]).query(&mut con).unwrap();
    assert_ne!(now.as_deref(), Some(&b"\xCA\x01\x01\x00garbage"[..]));
    a.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_callers_share_through_redis() {
    let p = prefix("async");
    let clock = ManualClock::new();
    let a: Cache<u64, String> = node(&p, &clock);
    let b: Cache<u64, String> = node(&p, &clock);
    let loads = Arc::new(AtomicUsize::new(0));
    let l = loads.clone();
    let v = a
        .get_or_insert_with_async(&3, || async move {
            l.fetch_add(1, Ordering::SeqCst);
            "three".to_string()
        })
        .await;
    assert_eq!(v, "three");
    let v = b
        .get_or_insert_with_async(&3, || async { unreachable!("shared through Redis") })
        .await;
    assert_eq!(v, "three");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    a.clear();
}

#[test]
fn nothing_listening_fails_open_and_the_breaker_makes_it_cheap() {
    // A port that was free a moment ago: nothing listens there.
    let port = free_port();
    let backend = backend(&format!("redis://127.0.0.1:{port}/"));
    let c: Cache<u64, u64> = Cache::builder()
        .remote(backend.clone(), "down")
        .build()
        .unwrap();
    let start = Instant::now();
    for k in 0..50 {
        // Every call answers, from its loader.
        assert_eq!(c.get_or_insert_with(&k, || k * 2), k * 2);
    }
    let f = backend.faults();
    assert!(f.connect >= 1, "{f:?}");
    // (Not `backend.is_open()`: on a slow machine its cooldown may be over by now.)
    assert!(f.short_circuited > 0, "the breaker opened: {f:?}");
    // 50 misses, each of which would otherwise wait for a failed connection or a timeout.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

fn start_server(port: u16) -> Server {
    Server::redis(port, &[]).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_killed_and_restarted_server_never_fails_a_call_and_caching_resumes() {
    let port = free_port();
    let server = start_server(port);
    let url = format!("redis://127.0.0.1:{port}/");
    let clock = ManualClock::new();
    let make = |b: Arc<RedisBackend>| -> Cache<u64, u64> {
        Cache::builder()
            .name("numbers")
            .l1_ttl(Duration::from_millis(1))
            .clock(Clock::manual(&clock))
            .remote(b, "restart")
            .build()
            .unwrap()
    };
    let first = backend(&url);
    let a = make(Arc::clone(&first));
    let loads = AtomicUsize::new(0);
    let load = |k: u64| {
        loads.fetch_add(1, Ordering::SeqCst);
        k + 100
    };
    assert_eq!(a.get_or_insert_with(&1, || load(1)), 101);
    drop(server);
    // Redis is gone: calls still answer (from their loaders), and fast.
    for k in 2..30 {
        clock.advance(Duration::from_millis(2));
        assert_eq!(a.get_or_insert_with(&k, || load(k)), k + 100);
    }
    let f = first.faults();
    assert!(f.connect + f.error + f.timeout > 0, "{f:?}");
    // Redis comes back (empty: it keeps nothing on disk).
    let _server = start_server(port);
    std::thread::sleep(cache_runtime::BREAKER_COOLDOWN + Duration::from_millis(50));
    let before = loads.load(Ordering::SeqCst);
    clock.advance(Duration::from_millis(2));
    assert_eq!(a.get_or_insert_with(&500, || load(500)), 600);
    // Another client reads what the first wrote: caching through Redis resumed by itself.
    let b = make(backend(&url));
    assert_eq!(b.get_or_insert_with(&500, || load(500)), 600);
    assert_eq!(loads.load(Ordering::SeqCst), before + 1);
    assert_eq!(b.stats().remote_hits, 1);
}

/// Waits (bounded) until `cond` holds.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn writes_and_invalidations_evict_other_processes_l1_through_pub_sub() {
    let p = prefix("pubsub");
    let clock = ManualClock::new();
    let make = |backend: &Arc<RedisBackend>| -> Cache<u64, String> {
        Cache::builder()
            .name("profiles")
            .ttl(Duration::from_secs(600))
            // Long: without the broadcast, B would serve its copy for a minute.
            .l1_ttl(Duration::from_secs(60))
            .clock(Clock::manual(&clock))
            .remote(backend.clone(), &p)
            .build()
            .unwrap()
    };
    let (backend_a, backend_b) = (backend(redis_url()), backend(redis_url()));
    let (a, b) = (make(&backend_a), make(&backend_b));
    assert_eq!(a.get_or_insert_with(&1, || "v1".into()), "v1");
    assert_eq!(b.get_or_insert_with(&1, || unreachable!()), "v1");
    // Both subscribed: a message published before that is not theirs to receive.
    eventually("both subscriptions", || {
        backend_a.is_listening() && backend_b.is_listening()
    });

    // A write on A: B's L1 copy goes, and B reads the new value from Redis.
    a.insert(1, "v2".into());
    eventually("B's L1 copy to be evicted", || !b.contains_key(&1));
    assert_eq!(
        a.get(&1).as_deref(),
        Some("v2"),
        "the sender keeps its own copy"
    );
    assert_eq!(b.get_or_insert_with(&1, || unreachable!()), "v2");

    // An invalidation on B: A's copy goes.
    b.remove(&1);
    eventually("A's L1 copy to be evicted", || !a.contains_key(&1));

    // A clear on A: B's whole L1 goes.
    b.get_or_insert_with(&2, || "two".into());
    a.clear();
    eventually("B's L1 to be cleared", || !b.contains_key(&2));
    a.clear();
}

#[test]
fn a_slow_server_times_out_and_a_wrong_answer_is_a_miss() {
    let port = free_port();
    let _server = start_server(port);
    let url = format!("redis://127.0.0.1:{port}/");
    let b = backend_with(&url, Duration::from_millis(200));
    let c: Cache<u64, String> = Cache::builder()
        .name("slow")
        .remote(b.clone(), "slow")
        .build()
        .unwrap();
    // A wrong answer: the cache's key holds a list, so GET fails with WRONGTYPE.
    c.get_or_insert_with(&1, || "one".into());
    let raw = redis::Client::open(url.as_str()).unwrap();
    let mut con = raw.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("slow:slow:*")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("DEL").arg(&keys).query(&mut con).unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(&keys[0])
        .arg("x")
        .query(&mut con)
        .unwrap();
    c.evict_local(&1);
    assert_eq!(c.get_or_insert_with(&1, || "fresh".into()), "fresh");
    assert!(b.faults().error >= 1, "{:?}", b.faults());

    // A slow server: DEBUG SLEEP blocks it for 2 s; the call gives up after 200 ms and loads.
    let mut probe = raw.get_connection().unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let sleeper = std::thread::spawn(move || {
        let _: Result<(), _> = redis::cmd("DEBUG").arg("SLEEP").arg("2").query(&mut con);
    });
    // Until the server is asleep for certain: a PING gets no answer within 250 ms (a shorter
    // wait could take a busy machine's stall for the sleep).
    let waiting = Instant::now();
    while redis::cmd("PING").query::<String>(&mut probe).is_ok() {
        assert!(
            waiting.elapsed() < Duration::from_secs(5),
            "the server never slept"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Every call during the stall: bounded by one operation timeout (200 ms) as a whole, under
    // two (slack for a loaded machine), whatever its path (the first ones wait for the timeout,
    // then the breaker opens).
    let mut slowest = Duration::ZERO;
    for k in 2..10 {
        let start = Instant::now();
        assert_eq!(c.get_or_insert_with(&k, || k.to_string()), k.to_string());
        slowest = slowest.max(start.elapsed());
    }
    eprintln!("during a 2 s stall, timeout 200 ms: slowest call {slowest:?}");
    assert!(
        slowest < Duration::from_millis(400),
        "bounded by the operation timeout, not the 2 s sleep: {slowest:?}"
    );
    assert!(b.faults().timeout >= 1, "{:?}", b.faults());
    sleeper.join().unwrap();
}

#[test]
fn an_invalidation_during_a_load_keeps_the_older_value_out_of_redis() {
    let p = prefix("late-fill");
    let clock = ManualClock::new();
    let a: Cache<u64, String> = node(&p, &clock);
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let loader = {
        let a = a.clone();
        std::thread::spawn(move || {
            a.get_or_insert_with(&1, || {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                "read before the write".to_string()
            })
        })
    };
    started_rx.recv().unwrap();
    a.remove(&1); // the data changed while the load ran
    go_tx.send(()).unwrap();
    assert_eq!(loader.join().unwrap(), "read before the write");
    // Neither this process nor another one gets the older value from the cache.
    let b: Cache<u64, String> = node(&p, &clock);
    assert_eq!(b.get_or_insert_with(&1, || "fresh".into()), "fresh");
    a.clear();
}

#[test]
fn a_lease_is_released_when_the_load_is_not_cached() {
    let p = prefix("lease-release");
    let c: Cache<u64, u64> = Cache::builder()
        .name("leased")
        .remote(backend(redis_url()), &p)
        .distributed_lock(Duration::from_secs(30))
        .build()
        .unwrap();
    assert_eq!(
        c.get_or_try_insert_with(&1, || Err::<u64, _>("down")),
        Err("down")
    );
    let client = redis::Client::open(redis_url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let leases: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{p}:*:lease"))
        .query(&mut con)
        .unwrap();
    assert!(leases.is_empty(), "a lease outlived its load: {leases:?}");
    // And a panicking loader releases it too.
    let c2 = c.clone();
    assert!(
        std::thread::spawn(move || c2.get_or_insert_with(&2, || panic!("boom")))
            .join()
            .is_err()
    );
    let leases: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{p}:*:lease"))
        .query(&mut con)
        .unwrap();
    assert!(leases.is_empty(), "a lease outlived a panic: {leases:?}");
}

/// The shared server's URL with database `db`.
fn with_db(db: u32) -> String {
    let url = redis_url();
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let root = match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    };
    format!("{root}/{db}")
}

/// A database number the server does not have would fail every operation, so that the tier is
/// never used: refused when the backend is checked (as `config` does when it installs one).
#[test]
fn a_database_the_server_does_not_have_is_refused() {
    let backend = RedisBackend::new(&with_db(99), Duration::from_millis(500)).unwrap();
    let err = backend.check().unwrap_err();
    assert!(matches!(err, BackendError::Setting(_)), "{err}");
    assert!(err.to_string().contains("refused"), "{err}");
    let fine = RedisBackend::new(&with_db(1), Duration::from_millis(500)).unwrap();
    assert!(fine.check().unwrap());
}

/// A server that accepts connections and never answers: each call's remote part is bounded by
/// one operation timeout as a whole (connecting, the read, no write after a failed read), for
/// sync and async callers: the slowest call under twice the timeout (slack for a loaded machine; two timeouts in turn would not pass).
#[test]
fn against_a_silent_server_a_call_is_bounded_by_one_timeout() {
    // Accepts and holds every connection, reading and writing nothing.
    let port = silent_server();
    let timeout = Duration::from_millis(200);
    let b = backend_with(&format!("redis://127.0.0.1:{port}/"), timeout);
    let c: Cache<u64, u64> = Cache::builder()
        .name("silent")
        .remote(b.clone(), "silent")
        .build()
        .unwrap();
    let mut times = Vec::new();
    for k in 0..12 {
        let start = Instant::now();
        assert_eq!(c.get_or_insert_with(&k, || k * 2), k * 2);
        times.push(start.elapsed());
    }
    let rt = runtime();
    // Past the breaker's cool-down, so that the async calls meet the silent server too.
    std::thread::sleep(cache_runtime::BREAKER_COOLDOWN);
    for k in 100..112 {
        let start = Instant::now();
        let v = rt.block_on(c.get_or_insert_with_async(&k, || async move { k * 2 }));
        assert_eq!(v, k * 2);
        times.push(start.elapsed());
    }
    times.sort();
    let (p50, max) = (times[times.len() / 2], times[times.len() - 1]);
    eprintln!(
        "silent server, timeout {timeout:?}: p50 {p50:?}, max {max:?} over {} calls",
        times.len()
    );
    assert!(
        max < timeout * 2,
        "the slowest call took {max:?} against a {timeout:?} timeout"
    );
    assert!(
        b.faults().timeout + b.faults().connect >= 2,
        "{:?}",
        b.faults()
    );
}
