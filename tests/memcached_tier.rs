//! The memcached tier against real memcached 1.6 servers that this test binary starts itself
//! (`cache_test_support`: one shared server, and private ones for the tests that need several
//! servers or kill theirs): values and negative results shared between independent clients (as
//! between processes), invalidation without and with a Redis channel, clearing one cache,
//! expiries in whole seconds and absolute past 30 days, long and unusual keys, several servers,
//! fleet-wide leases, and faults (nothing listening, a server killed and restarted, one that
//! never answers, bytes that are not ours) that never fail a call.
//!
//! A raw client (a few lines of the text protocol on a `TcpStream`) looks at what the tier
//! stored, independently of the client under test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::tier::Backend;
use cache_runtime::{Cache, Clock, Jitter, ManualClock, MemcachedBackend, RedisBackend, registry};
use cache_test_support::{Server, free_port, memcached_addr, memcached_url, redis_url};

#[path = "support/servers.rs"]
mod servers;
use servers::{prefix, runtime, silent_server};

/// A backend with a generous operation timeout: these tests count loads and hits, and one slow
/// operation on a loaded machine would turn a hit into a fail-open miss.
fn backend(urls: &[&str]) -> Arc<MemcachedBackend> {
    backend_with(urls, Duration::from_secs(2))
}

fn backend_with(urls: &[&str], timeout: Duration) -> Arc<MemcachedBackend> {
    Arc::new(MemcachedBackend::new(urls, timeout).expect("valid URLs"))
}

/// A cache as one process of a fleet would have it: its own backend (its own connections).
fn node<V>(prefix: &str, clock: &ManualClock) -> Cache<u64, V>
where
    V: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    Cache::builder()
        .name("users")
        .ttl(Duration::from_secs(60))
        .l1_ttl(Duration::from_secs(1))
        .clock(Clock::manual(clock))
        .remote(backend(&[memcached_url()]), prefix)
        .build()
        .unwrap()
}

/// A raw memcached client: the text protocol, one command at a time.
struct Raw(BufReader<TcpStream>);

impl Raw {
    fn new(addr: &str) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Self(BufReader::new(s))
    }

    fn send(&mut self, bytes: &[u8]) {
        self.0.get_mut().write_all(bytes).unwrap();
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.0.read_line(&mut l).unwrap();
        l.trim_end().to_owned()
    }

    fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.send(format!("mg {key} v\r\n").as_bytes());
        let l = self.line();
        let n: usize = l.strip_prefix("VA ")?.split(' ').next()?.parse().unwrap();
        let mut data = vec![0; n + 2];
        self.0.read_exact(&mut data).unwrap();
        data.truncate(n);
        Some(data)
    }

    /// The remaining TTL in seconds (-1: none).
    fn ttl(&mut self, key: &str) -> Option<i64> {
        self.send(format!("mg {key} t\r\n").as_bytes());
        let l = self.line();
        l.strip_prefix("HD t").map(|t| t.parse().unwrap())
    }

    fn set(&mut self, key: &str, data: &[u8]) {
        self.send(format!("ms {key} {} T0\r\n", data.len()).as_bytes());
        self.send(data);
        self.send(b"\r\n");
        assert_eq!(self.line(), "HD");
    }

    /// Every key on the server that starts with `prefix`.
    fn keys(&mut self, prefix: &str) -> Vec<String> {
        self.send(b"lru_crawler metadump all\r\n");
        let mut keys = Vec::new();
        loop {
            let l = self.line();
            if l == "END" || l.starts_with("ERROR") || l.starts_with("BUSY") {
                break;
            }
            if let Some(k) = l.strip_prefix("key=").and_then(|r| r.split(' ').next()) {
                let k = url_decode(k);
                if k.starts_with(prefix) {
                    keys.push(k);
                }
            }
        }
        keys.sort();
        keys
    }
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The keys of entries (not generations) under `prefix`.
fn entries(raw: &mut Raw, prefix: &str) -> Vec<String> {
    raw.keys(prefix)
        .into_iter()
        .filter(|k| !k.ends_with("~gen"))
        .collect()
}

#[test]
fn two_clients_share_values_and_an_invalidation_deletes_the_entry_at_once() {
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
    // B has never seen key 1: its miss is answered by memcached, without a load.
    assert_eq!(b.get_or_insert_with(&1, || load(1)), "user-1");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(b.stats().remote_hits, 1);
    let mut raw = Raw::new(memcached_addr());
    let stored = entries(&mut raw, &format!("{p}:users:"));
    assert_eq!(stored.len(), 1, "one entry, namespaced: {stored:?}");

    // A write-through on A reaches B once B's L1 copy ages out (l1_ttl = 1 s: memcached cannot
    // tell B sooner).
    a.insert(1, "renamed".into());
    cb.advance(Duration::from_millis(500));
    assert_eq!(
        b.get(&1).as_deref(),
        Some("user-1"),
        "B's copy lives its l1_ttl"
    );
    cb.advance(Duration::from_millis(600));
    assert_eq!(b.get_or_insert_with(&1, || load(1)), "renamed");
    assert_eq!(loads.load(Ordering::SeqCst), 1);

    // An invalidation on A deletes the entry in memcached at once...
    assert!(a.remove(&1));
    assert_eq!(raw.get(&stored[0]), None, "deleted from memcached at once");
    // ... and B, which cannot be told, serves its copy until its l1_ttl, then loads afresh.
    cb.advance(Duration::from_millis(500));
    assert_eq!(b.get(&1).as_deref(), Some("renamed"));
    cb.advance(Duration::from_millis(600));
    assert_eq!(b.get_or_insert_with(&1, || load(1)), "user-1");
    assert_eq!(loads.load(Ordering::SeqCst), 2);
    a.clear();
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct NotFound;

/// A process whose generation of a namespace is out of date (another process cleared it) reads
/// the entry the other process wrote under the new one, in one more round trip: a single read
/// and a batch alike, and an entry larger than a generation token (100 KiB) too.
#[test]
fn after_another_process_cleared_a_read_finds_its_new_entries_large_ones_too() {
    let p = prefix("moved");
    let (a, b) = (backend(&[memcached_url()]), backend(&[memcached_url()]));
    let (small, other) = (format!("{p}:c:t:small"), format!("{p}:c:t:other"));
    a.set(&small, b"old", None).expect("set");
    assert_eq!(a.get(&small).expect("get").as_deref(), Some(&b"old"[..]));
    b.clear_prefix(&format!("{p}:c:t:")).expect("clear");
    let big = vec![b'v'; 100 * 1024];
    b.set(&small, &big, None).expect("set");
    b.set(&other, b"new", None).expect("set");
    assert_eq!(
        a.get(&small).expect("get"),
        Some(big.clone()),
        "single read"
    );
    // The batch, with its generation out of date too (cleared again).
    b.clear_prefix(&format!("{p}:c:t:")).expect("clear");
    b.set(&small, &big, None).expect("set");
    b.set(&other, b"newer", None).expect("set");
    let got = a.get_many(&[&small, &other]).expect("get_many");
    assert_eq!(got, vec![Some(big), Some(b"newer".to_vec())], "batch");
    a.clear_prefix(&format!("{p}:c:t:")).expect("clear");
}

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
            .remote_with_negatives(backend(&[memcached_url()]), &p)
            .build()
            .unwrap()
    };
    let (a, b) = (make(), make());
    assert_eq!(a.get_or_load(&9, || Err(NotFound)), Err(NotFound));
    assert_eq!(
        b.get_or_load(&9, || unreachable!("shared through memcached")),
        Err(NotFound)
    );
    let mut raw = Raw::new(memcached_addr());
    let keys = entries(&mut raw, &format!("{p}:lookup:"));
    let ttl = raw.ttl(&keys[0]).unwrap();
    assert!(
        (4..=5).contains(&ttl),
        "the negative TTL, in seconds: {ttl}"
    );
    a.clear();
}

#[test]
fn clearing_one_cache_leaves_the_other_caches_and_the_server() {
    let p = prefix("clear");
    let make = |name: &str| -> Cache<u64, u64> {
        Cache::builder()
            .name(name)
            .remote(backend(&[memcached_url()]), &p)
            .build()
            .unwrap()
    };
    let (users, prices) = (make("users"), make("prices"));
    let mut raw = Raw::new(memcached_addr());
    raw.set(&format!("{p}:someone-else"), b"not a cache's");
    for k in 0..10 {
        users.insert(k, k);
        prices.insert(k, k * 100);
    }
    users.clear();
    // Other processes (fresh caches, empty L1s): the cleared cache misses, the other hits.
    let (users_b, prices_b) = (make("users"), make("prices"));
    let loads = AtomicUsize::new(0);
    for k in 0..10 {
        assert_eq!(
            users_b.get_or_insert_with(&k, || {
                loads.fetch_add(1, Ordering::SeqCst);
                k + 1
            }),
            k + 1
        );
        assert_eq!(prices_b.get_or_insert_with(&k, || unreachable!()), k * 100);
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        10,
        "every cleared entry is gone"
    );
    assert_eq!(prices_b.stats().remote_hits, 10);
    // Nothing was flushed: the other key is there, and so are the cleared cache's old entries,
    // unreachable under their old generation until they age out.
    assert_eq!(
        raw.get(&format!("{p}:someone-else")).as_deref(),
        Some(&b"not a cache's"[..])
    );
    assert_eq!(entries(&mut raw, &format!("{p}:users:")).len(), 20);
    assert_eq!(entries(&mut raw, &format!("{p}:prices:")).len(), 10);
    users.clear();
    prices.clear();
}

#[test]
fn expiries_are_whole_seconds_with_jitter_and_absolute_past_30_days() {
    let p = prefix("ttl");
    let make = |name: &str, ttl: Duration, jitter: Option<Jitter>| -> Cache<u64, u64> {
        let mut b = Cache::builder()
            .name(name)
            .ttl(ttl)
            .remote(backend(&[memcached_url()]), &p);
        if let Some(j) = jitter {
            b = b.jitter(j);
        }
        b.build().unwrap()
    };
    let mut raw = Raw::new(memcached_addr());
    // Over 30 days: sent as an absolute Unix time (as a relative one it would expire at once).
    let forty_days = 40 * 86_400;
    let long = make("long", Duration::from_secs(forty_days), None);
    long.insert(1, 1);
    let key = &entries(&mut raw, &format!("{p}:long:"))[0];
    let ttl = raw.ttl(key).unwrap();
    // (memcached's clock ticks once a second and may lag ours by one.)
    assert!(
        (forty_days as i64 - 10..=forty_days as i64 + 1).contains(&ttl),
        "40 days: {ttl} s"
    );
    // A fraction of a second is rounded up, never down to 0 ("never expires").
    let short = make("short", Duration::from_millis(1_200), None);
    short.insert(1, 1);
    let key = entries(&mut raw, &format!("{p}:short:"))[0].clone();
    let ttl = raw.ttl(&key).unwrap();
    assert!((1..=2).contains(&ttl), "1.2 s: {ttl} s");
    // Jitter reaches memcached: 30 entries of 100 s +/- 50% do not all expire together.
    let jittered = make(
        "jittered",
        Duration::from_secs(100),
        Some(Jitter::Fraction(0.5)),
    );
    for k in 0..30 {
        jittered.insert(k, k);
    }
    let mut ttls: Vec<i64> = entries(&mut raw, &format!("{p}:jittered:"))
        .iter()
        .map(|k| raw.ttl(k).unwrap())
        .collect();
    ttls.sort_unstable();
    ttls.dedup();
    assert!(ttls.len() > 5, "spread expiries: {ttls:?}");
    assert!(
        ttls.iter().all(|t| (49..=150).contains(t)),
        "within the jitter: {ttls:?}"
    );
    // The short entry really expires on the server.
    std::thread::sleep(Duration::from_millis(3_100));
    assert_eq!(raw.get(&key), None);
    for c in [long, short, jittered] {
        c.clear();
    }
}

#[test]
fn long_and_unusual_keys_are_hashed_and_never_share_an_entry() {
    let b = backend(&[memcached_url()]);
    let p = prefix("keys");
    // Two keys over 250 bytes that differ only in their last byte.
    let long_a = format!("{p}:{}a", "x".repeat(300));
    let long_b = format!("{p}:{}b", "x".repeat(300));
    let spaced = format!("{p}:with space\nand\u{e9}");
    b.set(&long_a, b"A", None).unwrap();
    b.set(&long_b, b"B", None).unwrap();
    b.set(&spaced, b"S", None).unwrap();
    assert_eq!(b.get(&long_a).unwrap().as_deref(), Some(&b"A"[..]));
    assert_eq!(b.get(&long_b).unwrap().as_deref(), Some(&b"B"[..]));
    assert_eq!(b.get(&spaced).unwrap().as_deref(), Some(&b"S"[..]));
    let mut raw = Raw::new(memcached_addr());
    let keys = entries(&mut raw, &p);
    assert_eq!(keys.len(), 3, "{keys:?}");
    for k in &keys {
        assert!(
            k.len() <= 250 && k.bytes().all(|c| c.is_ascii_graphic()),
            "{k}"
        );
        assert!(k.contains('#'), "hashed, with the readable start kept: {k}");
    }
    // Through a cache whose prefix and name are unusual too.
    let long_name = format!("a cache name of {} characters", "n".repeat(240));
    let make = || -> Cache<String, String> {
        Cache::builder()
            .name(long_name.as_str())
            .remote(backend(&[memcached_url()]), &format!("{p} app"))
            .build()
            .unwrap()
    };
    let (c1, c2) = (make(), make());
    c1.insert("k".repeat(1_000), "long key".into());
    assert_eq!(
        c2.get_or_insert_with(&"k".repeat(1_000), || unreachable!()),
        "long key"
    );
    c1.clear();
    for k in [&long_a, &long_b, &spaced] {
        b.delete(k).unwrap();
    }
}

#[test]
fn several_servers_share_the_keys_by_the_ring_and_a_clear_reaches_them_all() {
    let servers: Vec<Server> = (0..3)
        .map(|_| Server::memcached(free_port(), &[]).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let urls: Vec<String> = servers.iter().map(Server::memcached_url).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let make = || -> Cache<u64, u64> {
        Cache::builder()
            .name("spread")
            .remote(backend(&urls), "ring")
            .build()
            .unwrap()
    };
    let a = make();
    for k in 0..300 {
        a.insert(k, k * 2);
    }
    let per_server: Vec<usize> = servers
        .iter()
        .map(|s| entries(&mut Raw::new(&s.addr()), "ring:spread:").len())
        .collect();
    assert_eq!(per_server.iter().sum::<usize>(), 300, "{per_server:?}");
    assert!(per_server.iter().all(|&n| n >= 40), "{per_server:?}");
    let b = make();
    for k in 0..300 {
        assert_eq!(b.get_or_insert_with(&k, || unreachable!()), k * 2);
    }
    assert_eq!(b.stats().remote_hits, 300);
    // A clear reaches every server: a fresh client finds nothing.
    a.clear();
    let c = make();
    let loads = AtomicUsize::new(0);
    for k in 0..300 {
        c.get_or_insert_with(&k, || {
            loads.fetch_add(1, Ordering::SeqCst);
            k
        });
    }
    assert_eq!(loads.load(Ordering::SeqCst), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_callers_share_through_memcached() {
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
        .get_or_insert_with_async(&3, || async { unreachable!("shared through memcached") })
        .await;
    assert_eq!(v, "three");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    // A blocking call made on a runtime worker (no runtime can be driven there): still served.
    let (a2, b2) = (a.clone(), b.clone());
    tokio::task::block_in_place(move || {
        a2.insert(4, "four".into());
        assert_eq!(b2.get_or_insert_with(&4, || unreachable!()), "four");
    });
    a.clear();
}

#[test]
fn with_a_redis_channel_other_processes_copies_go_at_once() {
    let p = prefix("channel");
    let clock = ManualClock::new();
    let with_channel = || -> (Cache<u64, String>, Arc<RedisBackend>) {
        let redis = Arc::new(RedisBackend::new(redis_url(), Duration::from_secs(2)).unwrap());
        let memcached = MemcachedBackend::new(&[memcached_url()], Duration::from_secs(2))
            .unwrap()
            .with_invalidations(redis.clone());
        let cache = Cache::builder()
            .name("profiles")
            .ttl(Duration::from_secs(600))
            // Long: without the channel, B would serve its copy for a minute.
            .l1_ttl(Duration::from_secs(60))
            .clock(Clock::manual(&clock))
            .remote(Arc::new(memcached), &p)
            .build()
            .unwrap();
        (cache, redis)
    };
    let ((a, ra), (b, rb)) = (with_channel(), with_channel());
    assert_eq!(a.get_or_insert_with(&1, || "v1".into()), "v1");
    assert_eq!(b.get_or_insert_with(&1, || unreachable!()), "v1");
    eventually("both subscriptions", || {
        ra.is_listening() && rb.is_listening()
    });
    a.insert(1, "v2".into());
    eventually("B's L1 copy to be evicted", || !b.contains_key(&1));
    assert_eq!(b.get_or_insert_with(&1, || unreachable!()), "v2");
    b.remove(&1);
    eventually("A's L1 copy to be evicted", || !a.contains_key(&1));
    a.clear();
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
fn a_lease_holder_loads_once_and_the_lease_is_released_even_when_nothing_is_cached() {
    let p = prefix("lease");
    let make = || -> Cache<u64, u64> {
        Cache::builder()
            .name("leased")
            .remote(backend(&[memcached_url()]), &p)
            .distributed_lock(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    // Two processes miss one key: the second waits for the first's load.
    let (a, b) = (make(), make());
    let loads = Arc::new(AtomicUsize::new(0));
    let holder = {
        let (a, loads) = (a.clone(), loads.clone());
        std::thread::spawn(move || {
            a.get_or_insert_with(&1, || {
                loads.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(300));
                7
            })
        })
    };
    while loads.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        b.get_or_insert_with(&1, || {
            loads.fetch_add(1, Ordering::SeqCst);
            8
        }),
        7
    );
    assert_eq!(holder.join().unwrap(), 7);
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    // A failed load and a panicking one release their leases.
    assert_eq!(
        a.get_or_try_insert_with(&2, || Err::<u64, _>("down")),
        Err("down")
    );
    let a2 = a.clone();
    assert!(
        std::thread::spawn(move || a2.get_or_insert_with(&3, || panic!("boom")))
            .join()
            .is_err()
    );
    let leases: Vec<String> = Raw::new(memcached_addr())
        .keys(&p)
        .into_iter()
        .filter(|k| k.ends_with(":lease"))
        .collect();
    assert!(leases.is_empty(), "a lease outlived its load: {leases:?}");
    a.clear();
}

#[test]
fn nothing_listening_fails_open_and_the_breaker_makes_it_cheap() {
    let backend = backend(&[&format!("memcached://127.0.0.1:{}", free_port())]);
    let c: Cache<u64, u64> = Cache::builder()
        .name("memcached-down")
        .remote(backend.clone(), "down")
        .build()
        .unwrap();
    let start = Instant::now();
    for k in 0..50 {
        assert_eq!(c.get_or_insert_with(&k, || k * 2), k * 2);
    }
    let f = backend.faults();
    assert!(f.connect >= 1, "{f:?}");
    assert!(f.short_circuited > 0, "the breaker opened: {f:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // The faults are in the statistics and in the Prometheus text.
    let report = registry::caches()
        .into_iter()
        .find(|r| r.name == "memcached-down")
        .unwrap();
    let health = report.remote.expect("a remote tier");
    assert!(health.faults.connect >= 1 && health.faults.short_circuited > 0);
    let text = registry::prometheus_text();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with(r#"cache_remote_faults_total{cache="memcached-down",kind="connect"}"#)
        })
        .unwrap_or_else(|| panic!("{text}"));
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1, "{line}");
    assert!(text.contains(r#"cache_remote_breaker_open{cache="memcached-down"}"#));
}

#[test]
fn a_killed_and_restarted_server_never_fails_a_call_and_caching_resumes() {
    let port = free_port();
    let server = Server::memcached(port, &[]).unwrap_or_else(|e| panic!("{e}"));
    let url = server.memcached_url();
    let clock = ManualClock::new();
    let make = |b: Arc<MemcachedBackend>| -> Cache<u64, u64> {
        Cache::builder()
            .name("numbers")
            .l1_ttl(Duration::from_millis(1))
            .clock(Clock::manual(&clock))
            .remote(b, "restart")
            .build()
            .unwrap()
    };
    let first = backend(&[&url]);
    let a = make(Arc::clone(&first));
    let loads = AtomicUsize::new(0);
    let load = |k: u64| {
        loads.fetch_add(1, Ordering::SeqCst);
        k + 100
    };
    assert_eq!(a.get_or_insert_with(&1, || load(1)), 101);
    drop(server);
    let down = Instant::now();
    for k in 2..30 {
        clock.advance(Duration::from_millis(2));
        assert_eq!(a.get_or_insert_with(&k, || load(k)), k + 100);
    }
    assert!(
        down.elapsed() < Duration::from_secs(3),
        "{:?}",
        down.elapsed()
    );
    let f = first.faults();
    assert!(f.connect + f.error + f.timeout > 0, "{f:?}");
    // memcached comes back (empty).
    let _server = Server::memcached(port, &[]).unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(cache_runtime::BREAKER_COOLDOWN + Duration::from_millis(50));
    let before = loads.load(Ordering::SeqCst);
    clock.advance(Duration::from_millis(2));
    assert_eq!(a.get_or_insert_with(&500, || load(500)), 600);
    // Another client reads what the first wrote: caching through memcached resumed by itself.
    let b = make(backend(&[&url]));
    assert_eq!(b.get_or_insert_with(&500, || load(500)), 600);
    assert_eq!(loads.load(Ordering::SeqCst), before + 1);
    assert_eq!(b.stats().remote_hits, 1);
}

/// A server that accepts connections and never answers: each call's remote part is bounded by
/// one operation timeout as a whole, for sync and async callers.
#[test]
fn against_a_silent_server_a_call_is_bounded_by_one_timeout() {
    let port = silent_server();
    let timeout = Duration::from_millis(200);
    let b = backend_with(&[&format!("memcached://127.0.0.1:{port}")], timeout);
    // The configuration's check says "not reachable now" (a warning), within the timeout.
    let start = Instant::now();
    assert!(!b.check().unwrap());
    assert!(start.elapsed() < timeout * 2, "{:?}", start.elapsed());
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
    assert!(b.faults().timeout >= 2, "{:?}", b.faults());
}

/// A blocking caller outside any runtime reads on a plain socket, its waits bounded by what is
/// left of the timeout: against a silent server, `get` and a one-server `get_many` fail within
/// the timeout, as timeouts, through the breaker (which opens after its threshold).
#[test]
fn a_blocking_read_from_a_silent_server_fails_within_the_timeout() {
    let port = silent_server();
    let timeout = Duration::from_millis(200);
    let b = backend_with(&[&format!("memcached://127.0.0.1:{port}")], timeout);
    let calls = cache_runtime::BREAKER_THRESHOLD;
    for n in 0..calls {
        let start = Instant::now();
        let r = if n % 2 == 0 {
            b.get("silent:ns:k").map(|_| ())
        } else {
            b.get_many(&["silent:ns:a", "silent:ns:b"]).map(|_| ())
        };
        let took = start.elapsed();
        assert_eq!(r, Err(cache_runtime::tier::Fault::Timeout));
        assert!(
            took >= timeout && took < timeout * 2,
            "call {n} took {took:?} against a {timeout:?} timeout"
        );
    }
    assert_eq!(b.faults().timeout, u64::from(calls), "{:?}", b.faults());
    assert!(b.is_open());
}

#[test]
fn bytes_that_are_not_ours_under_our_key_are_a_miss_and_replaced() {
    let p = prefix("garbage");
    let clock = ManualClock::new();
    let a: Cache<u64, Vec<u32>> = node(&p, &clock);
    a.get_or_insert_with(&5, || vec![1, 2, 3]);
    let mut raw = Raw::new(memcached_addr());
    let keys = entries(&mut raw, &format!("{p}:users:"));
    assert_eq!(keys.len(), 1);
    // Our header, then a length prefix claiming ~2^64 elements; then plain garbage, and a large
    // blob (a megabyte less a little, under memcached's item limit).
    let mut huge_claim = vec![0xCA, 0x01, 0x01, 0x00];
    huge_claim.extend_from_slice(&[0xFF; 12]);
    let blob: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7) as u8).collect();
    for garbage in [huge_claim, b"\x00garbage".to_vec(), blob] {
        raw.set(&keys[0], &garbage);
        let b: Cache<u64, Vec<u32>> = node(&p, &clock);
        let loads = AtomicUsize::new(0);
        let v = b.get_or_insert_with(&5, || {
            loads.fetch_add(1, Ordering::SeqCst);
            vec![4]
        });
        assert_eq!(v, vec![4], "never a wrong value");
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        let now = raw.get(&keys[0]).expect("replaced by the load");
        assert_ne!(now, garbage);
    }
    a.clear();
}

#[test]
fn a_value_over_the_servers_item_size_is_kept_in_l1_only_and_is_no_fault() {
    let p = prefix("large");
    let clock = ManualClock::new();
    let b = backend(&[memcached_url()]);
    let c: Cache<u64, String> = Cache::builder()
        .name("large")
        .clock(Clock::manual(&clock))
        .remote(b.clone(), &p)
        .build()
        .unwrap();
    // 2 MiB: over memcached's default item size (1 MiB).
    let big = "x".repeat(2 << 20);
    for k in 0..8 {
        assert_eq!(c.get_or_insert_with(&k, || big.clone()).len(), big.len());
    }
    assert_eq!(c.get(&3).map(|v| v.len()), Some(big.len()), "in L1");
    assert_eq!(
        b.faults(),
        cache_runtime::Faults::default(),
        "skipped writes, not faults"
    );
    assert!(!b.is_open());
    assert!(entries(&mut Raw::new(memcached_addr()), &format!("{p}:large:")).is_empty());
    // Small values still go through.
    c.insert(100, "small".into());
    assert_eq!(
        entries(&mut Raw::new(memcached_addr()), &format!("{p}:large:")).len(),
        1
    );
    c.clear();
}
