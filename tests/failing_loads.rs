//! A failing function is no herd: the callers waiting on a call of a `#[cached]` function that
//! fails (an uncached `Err` or `None`, or a panic) get its failure and do not run the body again,
//! when the return type is `Clone + Send + Sync + 'static`; a non-`Clone` error leaves them to
//! retry one at a time, as before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use cache_runtime::cached;

/// How long a failing body takes, and the slack on top of two of them.
const LOAD: Duration = Duration::from_millis(50);
/// What spawning 64 threads (or 1,000 tasks) may take on a busy 2-core machine. The callers
/// must be done well before 64 loads in turn (3.2 s); the runs are counted exactly besides.
const MARGIN: Duration = Duration::from_millis(1_000);

/// What a waiter of a panicked load panics with (documented on the runtime's loading methods).
const LOAD_PANICKED: &str = "the load of this key panicked in another caller";

/// A cloneable error, as a database client's often is.
#[derive(Clone, Debug, PartialEq)]
struct DbDown;

/// An error that cannot be cloned.
#[derive(Debug, PartialEq)]
struct NotClone(usize);

/// Runs `call` on 64 threads at once; returns what each got (`Err`: its panic's message) and
/// how long they all took.
fn herd<T: Send + 'static>(
    call: impl Fn(usize) -> T + Send + Sync + 'static,
) -> (Vec<Result<T, String>>, Duration) {
    let call = Arc::new(call);
    let barrier = Arc::new(Barrier::new(64));
    let start = Instant::now();
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let (call, barrier) = (call.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                call(i)
            })
        })
        .collect();
    let out = handles
        .into_iter()
        .map(|h| h.join().map_err(|p| message(&*p)))
        .collect();
    (out, start.elapsed())
}

fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_default()
}

static FAILING_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn failing(id: u64) -> Result<u64, DbDown> {
    FAILING_RUNS.fetch_add(1, Ordering::SeqCst);
    thread::sleep(LOAD);
    let _ = id;
    Err(DbDown)
}

#[test]
fn a_failing_function_shares_its_clone_error_with_its_waiters() {
    let (out, elapsed) = herd(|_| failing(1));
    let runs = FAILING_RUNS.load(Ordering::SeqCst);
    println!("#[cached] failing fn, 64 threads: {runs} runs, {elapsed:?}");
    assert!(out.iter().all(|r| r == &Ok(Err(DbDown))), "{out:?}");
    assert!((1..=2).contains(&runs), "{runs} runs");
    assert!(
        elapsed < 2 * LOAD + MARGIN,
        "callers done after {elapsed:?}"
    );
    // Not cached: the next call runs the body again.
    assert_eq!(failing(1), Err(DbDown));
    assert_eq!(FAILING_RUNS.load(Ordering::SeqCst), runs + 1);
}

static FAILING_ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn failing_async(id: u64) -> Result<u64, DbDown> {
    FAILING_ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(LOAD).await;
    let _ = id;
    Err(DbDown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_async_function_shares_its_error_with_a_thousand_tasks() {
    let barrier = Arc::new(tokio::sync::Barrier::new(1_000));
    let start = Instant::now();
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                failing_async(1).await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Err(DbDown));
    }
    let elapsed = start.elapsed();
    let runs = FAILING_ASYNC_RUNS.load(Ordering::SeqCst);
    println!("#[cached] failing async fn, 1,000 tasks: {runs} runs, {elapsed:?}");
    assert!((1..=2).contains(&runs), "{runs} runs");
    assert!(
        elapsed < 2 * LOAD + MARGIN,
        "callers done after {elapsed:?}"
    );
}

static MISSING_RUNS: AtomicUsize = AtomicUsize::new(0);

/// `None` without `negative_ttl` is not cached, but shared with the waiters.
#[cached]
fn missing(id: u64) -> Option<String> {
    MISSING_RUNS.fetch_add(1, Ordering::SeqCst);
    thread::sleep(LOAD);
    (id == 0).then(String::new)
}

#[test]
fn an_uncached_none_is_shared_with_the_waiters() {
    let (out, elapsed) = herd(|_| missing(1));
    let runs = MISSING_RUNS.load(Ordering::SeqCst);
    assert!(out.iter().all(|r| r == &Ok(None)), "{out:?}");
    assert!((1..=2).contains(&runs), "{runs} runs");
    assert!(
        elapsed < 2 * LOAD + MARGIN,
        "callers done after {elapsed:?}"
    );
}

static STALE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The shaped path (`stale`, `unless`) shares the same way.
#[cached(ttl = "1m", stale = "1m", unless = |v: &u64| *v == 0)]
fn failing_with_stale(id: u64) -> Result<u64, DbDown> {
    STALE_RUNS.fetch_add(1, Ordering::SeqCst);
    thread::sleep(LOAD);
    let _ = id;
    Err(DbDown)
}

#[test]
fn a_failing_function_with_stale_shares_its_error_too() {
    let (out, elapsed) = herd(|_| failing_with_stale(1));
    let runs = STALE_RUNS.load(Ordering::SeqCst);
    assert!(out.iter().all(|r| r == &Ok(Err(DbDown))), "{out:?}");
    assert!((1..=2).contains(&runs), "{runs} runs");
    assert!(
        elapsed < 2 * LOAD + MARGIN,
        "callers done after {elapsed:?}"
    );
}

static PANICKING_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn panicking(id: u64) -> u64 {
    PANICKING_RUNS.fetch_add(1, Ordering::SeqCst);
    thread::sleep(LOAD);
    panic!("body failed {id}")
}

/// Keeps the panics this test expects off standard error: 64 backtraces printed (with
/// `RUST_BACKTRACE` set) would take longer than the loads being timed. Other panics print as usual.
fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = message(info.payload());
            if msg != "body failed 1" && msg != LOAD_PANICKED {
                default(info);
            }
        }));
    });
}

#[test]
fn a_panicking_function_panics_in_its_waiters_without_running_again() {
    quiet_expected_panics();
    let (out, elapsed) = herd(|_| panicking(1));
    let runs = PANICKING_RUNS.load(Ordering::SeqCst);
    let own = out
        .iter()
        .filter(|r| r == &&Err("body failed 1".to_string()))
        .count();
    let waited = out
        .iter()
        .filter(|r| r == &&Err(LOAD_PANICKED.to_string()))
        .count();
    assert_eq!(own + waited, 64, "{out:?}");
    assert!((1..=2).contains(&runs), "{runs} runs");
    assert_eq!(own, runs);
    assert!(
        elapsed < 2 * LOAD + MARGIN,
        "callers done after {elapsed:?}"
    );
}

static NOT_CLONE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A non-`Clone` error cannot be handed to anyone else: waiters retry, one at a time.
#[cached]
fn failing_not_clone(id: u64) -> Result<u64, NotClone> {
    let n = NOT_CLONE_RUNS.fetch_add(1, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(2));
    let _ = id;
    Err(NotClone(n))
}

#[test]
fn a_non_clone_error_leaves_the_waiters_to_retry() {
    let (out, _) = herd(|_| failing_not_clone(1).map_err(|e| e.0));
    // Each caller ran the body itself and got its own error.
    let mut errors: Vec<usize> = out.into_iter().map(|r| r.unwrap().unwrap_err()).collect();
    errors.sort_unstable();
    assert_eq!(errors, (0..64).collect::<Vec<_>>());
    assert_eq!(NOT_CLONE_RUNS.load(Ordering::SeqCst), 64);
}

#[test]
fn a_cache_with_a_remote_tier_shares_the_error_too() {
    use cache_runtime::Cache;
    use cache_runtime::tier::MemoryBackend;
    // The leader's path through the remote tier (ask it, then load) ends the same way.
    let cache: Cache<u64, u64> = Cache::builder()
        .name("tests.failing_loads.remote")
        .remote(Arc::new(MemoryBackend::new()), "herd")
        .build()
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let (c, r) = (cache.clone(), runs.clone());
    let (out, elapsed) = herd(move |_| {
        c.try_get_with(&1, || {
            r.fetch_add(1, Ordering::SeqCst);
            thread::sleep(LOAD);
            Err::<u64, _>(NotClone(0))
        })
    });
    let runs = runs.load(Ordering::SeqCst);
    assert!(
        out.iter()
            .all(|r| matches!(r, Ok(Err(e)) if **e == NotClone(0))),
        "{out:?}"
    );
    assert!((1..=2).contains(&runs), "{runs} runs");
    assert!(
        elapsed < 2 * LOAD + MARGIN,
        "callers done after {elapsed:?}"
    );
    assert!(!cache.contains_key(&1));
}
