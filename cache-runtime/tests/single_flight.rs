//! Single-flight: concurrent misses of one key run the loader once, counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use cache_runtime::Cache;

fn cache() -> Cache<u64, u64> {
    Cache::builder().capacity(1_000).build().unwrap()
}

#[test]
fn sixty_four_threads_on_one_cold_key_load_once() {
    let cache = cache();
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(64));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                cache.get_or_insert_with(&7, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    // Long enough that every thread misses while the load is in flight.
                    thread::sleep(Duration::from_millis(50));
                    49
                })
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 49);
    }
    let s = cache.stats();
    println!(
        "sync stampede: 64 threads, loader runs = {}",
        runs.load(Ordering::SeqCst)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(s.loads, 1);
    assert_eq!(s.hits + s.misses, 64);
    // Every other caller hit, joined the load, or (preempted between its miss and the flight
    // table until the load was over) found the value stored, which `stats` does not count.
    assert!(s.joined + s.hits <= 63 && s.joined + s.hits > 0, "{s:?}");
    assert_eq!(cache.loads_in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_tasks_on_one_cold_key_load_once() {
    let cache = cache();
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(1_000));
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                cache
                    .get_or_insert_with_async(&7, || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        49
                    })
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 49);
    }
    println!(
        "async stampede: 1000 tasks, loader runs = {}",
        runs.load(Ordering::SeqCst)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let s = cache.stats();
    assert_eq!(s.loads, 1);
    assert_eq!(s.hits + s.misses, 1_000, "{s:?}");
    // As above: a caller found the value stored meanwhile is neither a hit nor joined.
    assert!(s.joined + s.hits <= 999 && s.joined + s.hits > 0, "{s:?}");
}

#[test]
fn different_keys_do_not_wait_for_each_other() {
    let cache = cache();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let slow = {
        let cache = cache.clone();
        thread::spawn(move || {
            cache.get_or_insert_with(&1, || {
                started_tx.send(()).unwrap();
                // Held until the other key has been loaded.
                release_rx.recv().unwrap();
                1
            })
        })
    };
    started_rx.recv().unwrap();
    // Key 1 is mid-load; key 2 loads without waiting for it.
    assert_eq!(cache.get_or_insert_with(&2, || 2), 2);
    release_tx.send(()).unwrap();
    assert_eq!(slow.join().unwrap(), 1);
}

fn fib(cache: &Cache<u64, u64>, n: u64, runs: &AtomicUsize) -> u64 {
    cache.get_or_insert_with(&n, || {
        runs.fetch_add(1, Ordering::SeqCst);
        if n < 2 {
            n
        } else {
            fib(cache, n - 1, runs) + fib(cache, n - 2, runs)
        }
    })
}

#[test]
fn recursive_memoized_function_does_not_deadlock() {
    let cache = cache();
    let runs = AtomicUsize::new(0);
    assert_eq!(fib(&cache, 80, &runs), 23_416_728_348_467_685);
    // Each n in 0..=80 computed once.
    assert_eq!(runs.load(Ordering::SeqCst), 81);
}

#[test]
fn loader_asking_for_its_own_key_does_not_deadlock() {
    let cache = cache();
    let v = cache.get_or_insert_with(&5, || cache.get_or_insert_with(&5, || 10) + 1);
    // The inner call could not wait for the outer one (same thread): it loaded uncached.
    assert_eq!(v, 11);
    assert_eq!(cache.get(&5), Some(11));
}

/// Tracks how many loads run at once.
struct Concurrency {
    now: AtomicUsize,
    max: AtomicUsize,
    runs: AtomicUsize,
}

impl Concurrency {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            now: AtomicUsize::new(0),
            max: AtomicUsize::new(0),
            runs: AtomicUsize::new(0),
        })
    }
    fn enter(&self) {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }
    fn exit(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn failing_loader_never_runs_twice_at_once_and_errors_are_not_values() {
    let cache = cache();
    let c = Concurrency::new();
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (cache, c, barrier) = (cache.clone(), c.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                cache.get_or_try_insert_with(&3, || {
                    c.enter();
                    thread::sleep(Duration::from_millis(5));
                    c.exit();
                    Err::<u64, String>("db down".into())
                })
            })
        })
        .collect();
    for h in handles {
        // Every caller gets the error of a load it met, never a value.
        assert_eq!(h.join().unwrap(), Err("db down".to_string()));
    }
    assert_eq!(
        c.max.load(Ordering::SeqCst),
        1,
        "two loads of one key overlapped"
    );
    // Waiters retried one at a time: each load ran alone.
    assert_eq!(
        cache.stats().load_errors as usize,
        c.runs.load(Ordering::SeqCst)
    );
    assert_eq!(cache.get(&3), None, "an error is not cached");
    assert!(cache.is_empty());
}

#[test]
fn error_then_success_waiters_get_the_produced_value() {
    let cache = cache();
    let attempt = Arc::new(AtomicUsize::new(0));
    let c = Concurrency::new();
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (cache, attempt, c, barrier) =
                (cache.clone(), attempt.clone(), c.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                cache.get_or_try_insert_with(&3, || {
                    c.enter();
                    thread::sleep(Duration::from_millis(10));
                    c.exit();
                    // The first load fails, later ones succeed.
                    if attempt.fetch_add(1, Ordering::SeqCst) == 0 {
                        Err("transient")
                    } else {
                        Ok(42)
                    }
                })
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    assert!(results.iter().filter_map(|r| r.ok()).all(|v| v == 42));
    assert_eq!(c.max.load(Ordering::SeqCst), 1);
    // One failure, then one success shared by everyone still waiting.
    assert_eq!(attempt.load(Ordering::SeqCst), 2);
}

#[test]
fn panicking_loader_fails_its_waiters_which_do_not_load() {
    quiet_expected_panics();
    let cache = cache();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let leader = {
        let (cache, gate) = (cache.clone(), gate.clone());
        thread::spawn(move || {
            cache.get_or_insert_with(&9, || {
                started_tx.send(()).unwrap();
                drop(gate.lock());
                panic!("loader failed");
            })
        })
    };
    started_rx.recv().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            thread::spawn(move || {
                cache.get_or_insert_with(&9, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    99
                })
            })
        })
        .collect();
    // Let the waiters queue on the flight, then let the leader panic.
    while cache.stats().misses < 9 {
        thread::yield_now();
    }
    drop(held);
    // The panic reaches the leader's own caller...
    assert!(leader.join().is_err());
    // ...and every waiter: a panic of the load it waited on, with the documented message, and
    // none of them loads (a failing loader is not run once per waiter).
    for w in waiters {
        let payload = w.join().expect_err("a waiter of a panicked load panics");
        assert_eq!(panic_message(&*payload), Some(LOAD_PANICKED));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    // Nothing is poisoned, nothing was cached: the next caller loads.
    assert_eq!(cache.get(&9), None);
    assert_eq!(cache.get_or_insert_with(&9, || 99), 99);
    assert_eq!(cache.get_or_insert_with(&10, || 100), 100);
    assert_eq!(cache.loads_in_flight(), 0);
}

/// What a waiter of a panicked load panics with (documented on the loading methods).
const LOAD_PANICKED: &str = "the load of this key panicked in another caller";

/// The message of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
}

/// A loader that panics.
fn panicking_load() -> u64 {
    panic!("loader failed")
}

/// Keeps the expected panics of the tests below (a loader's, and its waiters') off the output:
/// printing a thousand of them would take longer than the loads. Others print as usual.
fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !matches!(
                panic_message(info.payload()),
                Some("loader failed" | LOAD_PANICKED)
            ) {
                default(info);
            }
        }));
    });
}

/// How long a failing load takes in the herd tests below, and the slack on top of two of them.
const LOAD: Duration = Duration::from_millis(50);
const MARGIN: Duration = Duration::from_millis(200);

/// A cloneable error, as a database client's often is.
#[derive(Clone, Debug, PartialEq)]
struct DbDown(&'static str);

#[test]
fn sixty_four_threads_on_a_failing_key_share_its_error() {
    let cache = cache();
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(64));
    let start = std::time::Instant::now();
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                cache.try_get_with(&7, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(LOAD);
                    Err::<u64, _>(DbDown("connection refused"))
                })
            })
        })
        .collect();
    let errors: Vec<Arc<DbDown>> = handles
        .into_iter()
        .map(|h| h.join().unwrap().expect_err("the loader always fails"))
        .collect();
    let elapsed = start.elapsed();
    let runs = runs.load(Ordering::SeqCst);
    println!("failing key, 64 threads: {runs} loader runs, {elapsed:?}");
    assert!(errors.iter().all(|e| **e == DbDown("connection refused")));
    // A caller arriving after the first load failed may lead a second one; no more.
    assert!((1..=2).contains(&runs), "{runs} loader runs");
    assert!(
        elapsed < 2 * LOAD + MARGIN,
        "callers done after {elapsed:?}"
    );
    // Every waiter got the very `Arc` of the load it waited on: one per load.
    let mut distinct: Vec<&Arc<DbDown>> = Vec::new();
    for e in &errors {
        if !distinct.iter().any(|d| Arc::ptr_eq(d, e)) {
            distinct.push(e);
        }
    }
    assert_eq!(distinct.len(), runs);
    assert_eq!(cache.stats().loads as usize, runs);
    assert!(cache.is_empty(), "an error is not cached");
    assert_eq!(cache.loads_in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_tasks_on_a_failing_key_share_its_error() {
    let cache = cache();
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(1_000));
    let start = std::time::Instant::now();
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                cache
                    .try_get_with_async(&7, || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(LOAD).await;
                        Err::<u64, _>(DbDown("connection refused"))
                    })
                    .await
            })
        })
        .collect();
    let mut errors = Vec::with_capacity(tasks.len());
    for t in tasks {
        errors.push(t.await.unwrap().expect_err("the loader always fails"));
    }
    let elapsed = start.elapsed();
    let runs = runs.load(Ordering::SeqCst);
    println!("failing key, 1,000 tasks: {runs} loader runs, {elapsed:?}");
    assert!(errors.iter().all(|e| **e == DbDown("connection refused")));
    assert!((1..=2).contains(&runs), "{runs} loader runs");
    assert!(
        elapsed < 2 * LOAD + MARGIN,
        "callers done after {elapsed:?}"
    );
    let first = &errors[0];
    let same = errors.iter().filter(|e| Arc::ptr_eq(e, first)).count();
    // With one load, every task holds the same `Arc`; with two, the two split the tasks.
    assert!(
        runs == 2 || same == errors.len(),
        "{same} of {}",
        errors.len()
    );
    assert!(cache.is_empty());
    assert_eq!(cache.loads_in_flight(), 0);
}

#[test]
fn sixty_four_threads_on_a_panicking_key_panic_without_loading_again() {
    quiet_expected_panics();
    let cache = cache();
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(64));
    let start = std::time::Instant::now();
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                cache.get_or_insert_with(&7, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(LOAD);
                    panic!("loader failed");
                })
            })
        })
        .collect();
    let mut own = 0;
    for h in handles {
        let payload = h.join().expect_err("every caller panics");
        match panic_message(&*payload) {
            Some("loader failed") => own += 1,
            Some(LOAD_PANICKED) => {}
            other => panic!("unexpected panic {other:?}"),
        }
    }
    let elapsed = start.elapsed();
    let runs = runs.load(Ordering::SeqCst);
    println!("panicking key, 64 threads: {runs} loader runs, {elapsed:?}");
    assert!((1..=2).contains(&runs), "{runs} loader runs");
    assert_eq!(
        own, runs,
        "only the callers that loaded see their loader's panic"
    );
    assert!(
        elapsed < 2 * LOAD + MARGIN,
        "callers done after {elapsed:?}"
    );
    assert!(cache.is_empty());
    assert_eq!(cache.loads_in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_tasks_on_a_panicking_key_panic_without_loading_again() {
    quiet_expected_panics();
    let cache = cache();
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(1_000));
    let start = std::time::Instant::now();
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                cache
                    .get_or_insert_with_async(&7, || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(LOAD).await;
                        panicking_load()
                    })
                    .await
            })
        })
        .collect();
    let mut own = 0;
    for t in tasks {
        let payload = t.await.expect_err("every task panics").into_panic();
        match panic_message(&*payload) {
            Some("loader failed") => own += 1,
            Some(LOAD_PANICKED) => {}
            other => panic!("unexpected panic {other:?}"),
        }
    }
    let elapsed = start.elapsed();
    let runs = runs.load(Ordering::SeqCst);
    println!("panicking key, 1,000 tasks: {runs} loader runs, {elapsed:?}");
    assert!((1..=2).contains(&runs), "{runs} loader runs");
    assert_eq!(own, runs);
    assert!(
        elapsed < 2 * LOAD + MARGIN,
        "callers done after {elapsed:?}"
    );
    assert!(cache.is_empty());
    assert_eq!(cache.loads_in_flight(), 0);
}

#[test]
fn get_or_load_shares_an_uncached_negative_result_with_its_waiters() {
    // No `negative_ttl`: the `Err` is not cached, but the callers waiting on it get a clone.
    let cache: Cache<u64, u64, DbDown> = Cache::builder().build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(64));
    let start = std::time::Instant::now();
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                cache.get_or_load(&7, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(LOAD);
                    Err(DbDown("timeout"))
                })
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Err(DbDown("timeout")));
    }
    let elapsed = start.elapsed();
    let runs = runs.load(Ordering::SeqCst);
    assert!((1..=2).contains(&runs), "{runs} loader runs");
    assert!(
        elapsed < 2 * LOAD + MARGIN,
        "callers done after {elapsed:?}"
    );
    assert!(cache.is_empty(), "without negative_ttl nothing is cached");
}

/// An error that cannot be cloned.
#[derive(Debug, PartialEq)]
struct NotClone(u32);

#[test]
fn get_or_try_insert_with_does_not_share_errors_its_waiters_retry() {
    // The documented behaviour of `get_or_try_insert_with` (any `E`, no bound): the error goes
    // to the caller whose load met it, and each waiter retries, one load at a time. Every caller
    // thus runs its own load; `try_get_with` is the sharing form.
    let cache = cache();
    let c = Concurrency::new();
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (cache, c, barrier) = (cache.clone(), c.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                cache.get_or_try_insert_with(&3, || {
                    c.enter();
                    thread::sleep(Duration::from_millis(5));
                    c.exit();
                    Err::<u64, _>(NotClone(i))
                })
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        // Each caller gets the error of its own load.
        assert_eq!(h.join().unwrap(), Err(NotClone(i as u32)));
    }
    assert_eq!(c.runs.load(Ordering::SeqCst), 8);
    assert_eq!(c.max.load(Ordering::SeqCst), 1, "two loads overlapped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_async_leader_does_not_strand_waiters() {
    let cache = cache();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_insert_with_async(&1, || async {
                    let _ = started_tx.send(());
                    // Never finishes on its own.
                    std::future::pending::<()>().await;
                    0
                })
                .await
        })
    };
    started_rx.await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..50)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move {
                cache
                    .get_or_insert_with_async(&1, || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        11
                    })
                    .await
            })
        })
        .collect();
    while cache.stats().misses < 51 {
        tokio::task::yield_now().await;
    }
    // Cancel the leader mid-load.
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    for w in waiters {
        let v = tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("a waiter was stranded")
            .unwrap();
        assert_eq!(v, 11);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(cache.loads_in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_async_waiter_leaves_the_load_intact() {
    let cache = cache();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_insert_with_async(&1, || async {
                    release_rx.await.unwrap();
                    5
                })
                .await
        })
    };
    while cache.loads_in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    // A waiter that gives up after a moment.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(20),
        cache.get_or_insert_with_async(&1, || async { unreachable!("the load is in flight") }),
    )
    .await;
    assert!(gave_up.is_err());
    release_tx.send(()).unwrap();
    assert_eq!(leader.await.unwrap(), 5);
    assert_eq!(cache.get(&1), Some(5));
}

#[test]
fn sync_and_async_callers_share_one_flight() {
    let cache = cache();
    let runs = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sync_leader = {
        let (cache, runs) = (cache.clone(), runs.clone());
        thread::spawn(move || {
            cache.get_or_insert_with(&4, || {
                runs.fetch_add(1, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(50));
                16
            })
        })
    };
    while cache.loads_in_flight() == 0 {
        thread::yield_now();
    }
    let async_results = rt.block_on(async {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (cache, runs) = (cache.clone(), runs.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_insert_with_async(&4, || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            0
                        })
                        .await
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert_eq!(sync_leader.join().unwrap(), 16);
    assert!(async_results.iter().all(|&v| v == 16));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A key whose clones can be made to panic, to exercise the store write's panic safety.
#[derive(PartialEq, Eq, Hash, Debug)]
struct Touchy(u64);

static TOUCHY_CLONES: AtomicUsize = AtomicUsize::new(0);
static TOUCHY_PANIC_AT: AtomicUsize = AtomicUsize::new(usize::MAX);

impl Clone for Touchy {
    fn clone(&self) -> Self {
        let n = TOUCHY_CLONES.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(
            n != TOUCHY_PANIC_AT.load(Ordering::SeqCst),
            "clone #{n} panics"
        );
        Touchy(self.0)
    }
}

#[test]
fn a_panic_while_storing_releases_waiters_and_frees_the_key() {
    let cache: Cache<Touchy, u64> = Cache::builder().build().unwrap();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let leader = {
        let (cache, gate) = (cache.clone(), gate.clone());
        thread::spawn(move || {
            cache.get_or_insert_with(&Touchy(1), || {
                started_tx.send(()).unwrap();
                drop(gate.lock());
                // The next key clone is the store's copy: make it panic.
                TOUCHY_PANIC_AT.store(TOUCHY_CLONES.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
                7
            })
        })
    };
    started_rx.recv().unwrap();
    let waiter = {
        let cache = cache.clone();
        thread::spawn(move || cache.get_or_insert_with(&Touchy(1), || 8))
    };
    while cache.stats().misses < 2 {
        thread::yield_now();
    }
    drop(held);
    assert!(
        leader.join().is_err(),
        "the store's panic reaches the leader's caller"
    );
    // The waiter was released, and loaded itself.
    assert_eq!(waiter.join().unwrap(), 8);
    assert_eq!(cache.loads_in_flight(), 0);
    assert_eq!(cache.get_or_insert_with(&Touchy(1), || 9), 8);
}

#[test]
fn a_caller_arriving_after_an_invalidation_does_not_take_the_older_load() {
    let cache: Cache<u64, &'static str> = Cache::builder().build().unwrap();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let old_load = {
        let cache = cache.clone();
        thread::spawn(move || {
            cache.get_or_insert_with(&1, || {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                "old"
            })
        })
    };
    started_rx.recv().unwrap();
    // The data changes and the key is invalidated while the old load runs...
    cache.remove(&1);
    // ...so a caller asking afterwards must not be handed the old load's result.
    let new_caller = {
        let cache = cache.clone();
        thread::spawn(move || cache.get_or_insert_with(&1, || "new"))
    };
    while cache.stats().misses < 2 {
        thread::yield_now();
    }
    go_tx.send(()).unwrap();
    assert_eq!(old_load.join().unwrap(), "old");
    assert_eq!(new_caller.join().unwrap(), "new");
    assert_eq!(cache.get(&1), Some("new"));
}

/// A value whose destructor calls back into the cache that held it.
#[derive(Clone)]
struct CallsBack {
    cache: Arc<std::sync::OnceLock<Cache<u64, CallsBack>>>,
}

thread_local! {
    static IN_DROP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Drop for CallsBack {
    fn drop(&mut self) {
        // Values read inside drop are dropped too: call back once, not recursively.
        if IN_DROP.with(|d| d.replace(true)) {
            return;
        }
        if let Some(c) = self.cache.get() {
            c.remove(&2);
            let _ = c.get(&3);
        }
        IN_DROP.with(|d| d.set(false));
    }
}

#[test]
fn destructors_run_outside_the_caches_locks() {
    for policy in [cache_runtime::Policy::Lru, cache_runtime::Policy::S3Fifo] {
        let cache: Cache<u64, CallsBack> = Cache::builder()
            .policy(policy)
            .capacity(1)
            .shards(1)
            .build()
            .unwrap();
        let slot = Arc::new(std::sync::OnceLock::new());
        let _ = slot.set(cache.clone());
        let (done_tx, done_rx) = mpsc::channel();
        let worker = {
            let (cache, slot) = (cache.clone(), slot.clone());
            thread::spawn(move || {
                for k in 0..20u64 {
                    // Each miss evicts or replaces the previous value, whose Drop calls back.
                    drop(cache.get_or_insert_with(&k, || CallsBack {
                        cache: slot.clone(),
                    }));
                    cache.insert(
                        k,
                        CallsBack {
                            cache: slot.clone(),
                        },
                    );
                }
                done_tx.send(()).unwrap();
            })
        };
        assert!(
            done_rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "{policy}: deadlock: a destructor ran under a lock"
        );
        worker.join().unwrap();
        // Break the cycle cache -> value -> cache.
        cache.clear();
    }
}
