//! Forced refresh (issue 16, item 4): `Cache::refresh`, the `<fn>_refresh` companion of every
//! `#[cached]` function, and `cache_runtime::reload` around any memoized call: the entry is
//! reloaded whatever its state, a load in flight is joined rather than doubled, and an outcome
//! that is not cached leaves the entry as it was.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use cache_runtime::tier::MemoryBackend;
use cache_runtime::{Cache, cached};

/// Waits (real time, bounded) until `n` callers wait on the cache's loads in flight.
fn wait_for_waiters<K, V, N>(cache: &Cache<K, V, N>, n: usize)
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    let start = std::time::Instant::now();
    while cache.waiting_on_loads() < n {
        assert!(start.elapsed() < Duration::from_secs(10), "{n} waiters");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn refresh_replaces_a_fresh_entry_and_loads_an_absent_one() {
    let cache: Cache<u64, u64> = Cache::builder()
        .ttl(Duration::from_secs(3600))
        .build()
        .unwrap();
    cache.insert(1, 10);
    assert_eq!(cache.refresh(&1, || Ok(11)), Ok(11));
    assert_eq!(cache.get(&1), Some(11));
    assert_eq!(cache.refresh(&2, || Ok(20)), Ok(20));
    assert_eq!(cache.get(&2), Some(20));
    let s = cache.stats();
    assert_eq!((s.refreshes, s.loads, s.misses), (2, 2, 0));
}

#[test]
fn a_refresh_that_fails_keeps_the_old_entry() {
    let cache: Cache<u64, u64, &'static str> = Cache::builder().build().unwrap();
    cache.insert(1, 10);
    assert_eq!(cache.refresh(&1, || Err("db down")), Err("db down"));
    assert_eq!(cache.get(&1), Some(10), "the old value stays");

    // With negative_ttl, a negative result is cached: it replaces the value.
    let neg: Cache<u64, u64, &'static str> = Cache::builder()
        .negative_ttl(Duration::from_secs(5))
        .build()
        .unwrap();
    neg.insert(1, 10);
    assert_eq!(neg.refresh(&1, || Err("gone")), Err("gone"));
    assert_eq!(neg.get(&1), None);
    assert_eq!(
        neg.get_entry(&1),
        Some(cache_runtime::Entry::Negative("gone"))
    );
}

#[test]
fn a_refresh_joins_the_load_in_flight() {
    let cache: Cache<u64, u64> = Cache::builder().build().unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let miss = {
        let (cache, loads, started, release) = (
            cache.clone(),
            Arc::clone(&loads),
            Arc::clone(&started),
            Arc::clone(&release),
        );
        std::thread::spawn(move || {
            cache.get_or_insert_with(&7, || {
                loads.fetch_add(1, Ordering::SeqCst);
                started.wait();
                release.wait();
                70
            })
        })
    };
    started.wait(); // the miss's loader runs
    let refresher = {
        let (cache, loads) = (cache.clone(), Arc::clone(&loads));
        std::thread::spawn(move || {
            cache.refresh(&7, || {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok(71)
            })
        })
    };
    // The refresher waits on the flight before the load ends.
    wait_for_waiters(&cache, 1);
    release.wait();
    assert_eq!(miss.join().unwrap(), 70);
    assert_eq!(refresher.join().unwrap(), Ok(70), "joined, not reloaded");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get(&7), Some(70));
}

#[test]
fn concurrent_refreshes_of_one_key_from_8_threads_load_once_each_round() {
    let cache: Cache<u64, u64> = Cache::builder().build().unwrap();
    cache.insert(1, 0);
    let loads = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cache, loads) = (cache.clone(), Arc::clone(&loads));
            std::thread::spawn(move || {
                let waiting = cache.clone();
                cache.refresh(&1, || {
                    let n = loads.fetch_add(1, Ordering::SeqCst) as u64 + 1;
                    // Hold the load until the 7 other threads wait on it.
                    wait_for_waiters(&waiting, 7);
                    Ok(n)
                })
            })
        })
        .collect();
    let got: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(loads.load(Ordering::SeqCst), 1, "one reload for 8 callers");
    assert!(got.iter().all(|r| *r == Ok(1)), "{got:?}");
    assert_eq!(cache.get(&1), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_async_from_64_tasks_loads_once_and_a_cancelled_one_keeps_the_entry() {
    let cache: Cache<u64, u64> = Cache::builder().build().unwrap();
    cache.insert(5, 50);
    let loads = Arc::new(AtomicUsize::new(0));
    // A gate that stays open once opened (closed, it lets every acquirer through): a second
    // load, if the dedup failed, would be counted, not hang the test.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (cache, loads, gate) = (cache.clone(), Arc::clone(&loads), Arc::clone(&gate));
            tokio::spawn(async move {
                cache
                    .refresh_async(&5, || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        let _closed = gate.acquire().await;
                        Ok(51)
                    })
                    .await
            })
        })
        .collect();
    // The 63 others wait on the one reload before it ends.
    let start = std::time::Instant::now();
    while cache.waiting_on_loads() < 63 {
        assert!(start.elapsed() < Duration::from_secs(10), "63 waiters");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    gate.close();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(51));
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);

    // A reload dropped before it ends: the entry stays as it was.
    let pending = cache.refresh_async(&5, std::future::pending::<Result<u64, _>>);
    assert!(
        tokio::time::timeout(Duration::from_millis(20), pending)
            .await
            .is_err()
    );
    assert_eq!(cache.get(&5), Some(51));
    assert_eq!(cache.loads_in_flight(), 0);
}

#[test]
fn a_refresh_goes_through_to_the_remote_tier() {
    let shared = Arc::new(MemoryBackend::new());
    let build = || -> Cache<u64, String> {
        Cache::builder()
            .name("forced-refresh-remote")
            .remote(shared.clone(), "fr")
            .build()
            .unwrap()
    };
    let (a, b) = (build(), build());
    assert_eq!(a.get_or_insert_with(&1, || "v1".to_string()), "v1");
    assert_eq!(b.get_or_insert_with(&1, || unreachable!()), "v1"); // from L2
    // A refresh in `a` loads whatever L2 holds, and writes the new value there.
    assert_eq!(a.refresh(&1, || Ok("v2".to_string())), Ok("v2".to_string()));
    b.evict_local(&1);
    assert_eq!(b.get_or_insert_with(&1, || unreachable!()), "v2");
}

static PRICE: AtomicU64 = AtomicU64::new(100);
static PRICE_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1h")]
fn price(item: &str) -> u64 {
    PRICE_LOADS.fetch_add(1, Ordering::SeqCst);
    PRICE.load(Ordering::SeqCst) + item.len() as u64
}

#[test]
fn the_refresh_companion_and_reload_reload_a_cached_function() {
    assert_eq!(price("tea"), 103);
    PRICE.store(200, Ordering::SeqCst);
    assert_eq!(price("tea"), 103, "cached");
    assert_eq!(price_refresh("tea"), 203, "reloaded by the companion");
    assert_eq!(price("tea"), 203);
    PRICE.store(300, Ordering::SeqCst);
    assert_eq!(cache_runtime::reload(|| price("tea")), 303);
    assert_eq!(price("tea"), 303);
    // Other keys are untouched.
    assert_eq!(price("coffee"), 306);
    PRICE.store(400, Ordering::SeqCst);
    assert_eq!(price("coffee"), 306);
    assert_eq!(PRICE_LOADS.load(Ordering::SeqCst), 4);
}

static INNER_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn inner(x: u64) -> u64 {
    INNER_LOADS.fetch_add(1, Ordering::SeqCst);
    x * 2
}

#[cached]
fn outer(x: u64) -> u64 {
    inner(x) + 1
}

#[test]
fn only_the_call_itself_is_reloaded_not_what_its_loader_reads() {
    assert_eq!(outer(5), 11);
    assert_eq!(INNER_LOADS.load(Ordering::SeqCst), 1);
    assert_eq!(outer_refresh(5), 11);
    assert_eq!(cache_runtime::reload(|| outer(5)), 11);
    assert_eq!(INNER_LOADS.load(Ordering::SeqCst), 1, "inner stays cached");
    assert_eq!(inner_refresh(5), 10);
    assert_eq!(INNER_LOADS.load(Ordering::SeqCst), 2);
}

static FOUND: AtomicUsize = AtomicUsize::new(0);

#[cached(negative_ttl = "1m")]
fn lookup_user(id: u64) -> Option<String> {
    FOUND.fetch_add(1, Ordering::SeqCst);
    (id < 100).then(|| format!("user{id}"))
}

#[test]
fn the_companion_follows_the_function_shape() {
    assert_eq!(lookup_user(500), None);
    assert_eq!(lookup_user(500), None); // "not found" cached
    assert_eq!(FOUND.load(Ordering::SeqCst), 1);
    assert_eq!(lookup_user_refresh(500), None);
    assert_eq!(FOUND.load(Ordering::SeqCst), 2);
    assert_eq!(lookup_user_refresh(7), Some("user7".to_string()));
    assert_eq!(lookup_user(7), Some("user7".to_string()));
    assert_eq!(FOUND.load(Ordering::SeqCst), 3);
}

struct Repo {
    version: AtomicU64,
    loads: AtomicUsize,
}

impl Repo {
    #[cached(key = id)]
    pub fn name(&self, id: u64) -> String {
        self.loads.fetch_add(1, Ordering::SeqCst);
        format!("{id}@{}", self.version.load(Ordering::SeqCst))
    }

    #[cached(key = id)]
    async fn fetch(&self, id: u64) -> String {
        self.loads.fetch_add(1, Ordering::SeqCst);
        format!("fetched {id}@{}", self.version.load(Ordering::SeqCst))
    }
}

#[test]
fn a_method_has_a_refresh_companion() {
    let repo = Repo {
        version: AtomicU64::new(1),
        loads: AtomicUsize::new(0),
    };
    assert_eq!(repo.name(1), "1@1");
    repo.version.store(2, Ordering::SeqCst);
    assert_eq!(repo.name(1), "1@1");
    assert_eq!(repo.name_refresh(1), "1@2");
    assert_eq!(repo.name(1), "1@2");
    assert_eq!(repo.loads.load(Ordering::SeqCst), 2);
}

#[cached(ttl = "10m")]
async fn stock(item: u64) -> u64 {
    PRICE_LOADS.fetch_add(0, Ordering::SeqCst);
    STOCK.load(Ordering::SeqCst) + item
}

static STOCK: AtomicU64 = AtomicU64::new(10);

#[tokio::test]
async fn async_functions_and_private_methods_reload_through_reload_async() {
    assert_eq!(stock(1).await, 11);
    STOCK.store(20, Ordering::SeqCst);
    assert_eq!(stock(1).await, 11);
    assert_eq!(stock_refresh(1).await, 21);
    assert_eq!(stock(1).await, 21);
    STOCK.store(30, Ordering::SeqCst);
    assert_eq!(cache_runtime::reload_async(stock(1)).await, 31);
    assert_eq!(stock(1).await, 31);

    // A private method has no companion: `reload_async` serves.
    let repo = Repo {
        version: AtomicU64::new(1),
        loads: AtomicUsize::new(0),
    };
    assert_eq!(repo.fetch(9).await, "fetched 9@1");
    repo.version.store(2, Ordering::SeqCst);
    assert_eq!(repo.fetch(9).await, "fetched 9@1");
    assert_eq!(
        cache_runtime::reload_async(repo.fetch(9)).await,
        "fetched 9@2"
    );
    assert_eq!(repo.fetch(9).await, "fetched 9@2");
    assert_eq!(repo.loads.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_waiter_that_gives_up_stops_waiting_on_the_load() {
    let cache: Cache<u64, u64> = Cache::builder().build().unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let slow = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            cache.get_or_insert_with(&3, || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                30
            })
        })
    };
    started_rx.recv().unwrap();
    // Ten callers join the load and give up (a timeout drops each): none is left waiting.
    for _ in 0..10 {
        let wait = cache.get_or_insert_with_async(&3, || async { 31 });
        assert!(
            tokio::time::timeout(Duration::from_millis(5), wait)
                .await
                .is_err()
        );
    }
    assert_eq!(cache.waiting_on_loads(), 0, "the dropped waiters left");
    // One that stays is counted, and gets the load's value.
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.get_or_insert_with_async(&3, || async { 31 }).await })
    };
    let start = std::time::Instant::now();
    while cache.waiting_on_loads() < 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "1 waiter");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    release_tx.send(()).unwrap();
    assert_eq!(slow.join().unwrap(), 30);
    assert_eq!(waiter.await.unwrap(), 30);
    assert_eq!(cache.stats().loads, 1);
}
