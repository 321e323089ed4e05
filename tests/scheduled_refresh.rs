//! Scheduled refresh (issue 16, item 5): `refresh_every` reloads the keys read since the last
//! round, at most `refresh_top` by read count, in the background through single-flight, so that
//! a hot key is never seen missing; a key not read is left to expire. Driven by the manual clock
//! (the refresh thread watches it), except `#[cached(refresh_every = ..)]`, which reads the real
//! clock with short periods. Every assertion counts loader runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Clock, ManualClock, cached};

const SECOND: Duration = Duration::from_secs(1);

/// Waits (real time, bounded) until `done` holds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Lets the refresh thread see a clock change and finish any round it starts.
fn settle(cache: &Cache<u64, u64>) {
    std::thread::sleep(Duration::from_millis(20));
    eventually("the round ends", || cache.loads_in_flight() == 0);
}

#[test]
fn a_hot_key_is_never_missing_across_10_periods_and_a_cold_key_expires() {
    let clock = ManualClock::new();
    let source = Arc::new(AtomicU64::new(1));
    let loads: Arc<Mutex<HashMap<u64, usize>>> = Arc::default();
    let (src, log) = (Arc::clone(&source), Arc::clone(&loads));
    let cache: Cache<u64, u64> = Cache::builder()
        .ttl(60 * SECOND)
        .clock(Clock::manual(&clock))
        .refresh_every(20 * SECOND, move |k| {
            *log.lock().unwrap().entry(*k).or_default() += 1;
            Ok(src.load(Ordering::SeqCst) * 1000 + k)
        })
        .build()
        .unwrap();
    cache.insert(1, 1001); // hot
    cache.insert(2, 1002); // cold: never read
    let mut last_seen = 0;
    // 10 periods of 20 s, read every 5 s; the source changes every period.
    for step in 1..=40u64 {
        clock.advance(5 * SECOND);
        settle(&cache);
        if step % 4 == 0 {
            source.fetch_add(1, Ordering::SeqCst);
        }
        let v = cache.get(&1).expect("a hot key is never missing");
        assert!(v >= last_seen, "never older than what was seen");
        last_seen = v;
    }
    let s = cache.stats();
    assert_eq!(s.misses, 0, "readers never waited for a load");
    let loads = loads.lock().unwrap().clone();
    assert!(
        loads.get(&1).copied().unwrap_or(0) >= 8,
        "the hot key was reloaded about once a period: {loads:?}"
    );
    assert_eq!(loads.get(&2), None, "the cold key was never reloaded");
    assert!(
        last_seen >= 8001,
        "the hot key follows the source: {last_seen}"
    );
    // The cold key expired at its deadline (a visit, not a read: `iter` counts nothing).
    assert!(cache.iter().all(|(k, _)| k != 2));
    assert_eq!(s.refresh_errors, 0);
}

#[test]
fn a_round_reloads_the_most_read_keys_first_and_at_most_refresh_top() {
    let clock = ManualClock::new();
    let loads: Arc<Mutex<Vec<u64>>> = Arc::default();
    let log = Arc::clone(&loads);
    let cache: Cache<u64, u64> = Cache::builder()
        .ttl(600 * SECOND)
        .clock(Clock::manual(&clock))
        .refresh_every(60 * SECOND, move |k| {
            log.lock().unwrap().push(*k);
            Ok(*k)
        })
        .refresh_top(3)
        .build()
        .unwrap();
    for k in 0..10 {
        cache.insert(k, k);
    }
    // Key k is read k times: 9, 8 and 7 are the three hottest; 0 is never read.
    for k in 0..10u64 {
        for _ in 0..k {
            assert_eq!(cache.get(&k), Some(k));
        }
    }
    clock.advance(70 * SECOND);
    eventually("a round", || loads.lock().unwrap().len() >= 3);
    settle(&cache);
    let mut first = loads.lock().unwrap().clone();
    first.sort_unstable();
    assert_eq!(first, [7, 8, 9]);
    // The next round counts afresh: only key 4, read since, is hot now.
    assert_eq!(cache.get(&4), Some(4));
    clock.advance(70 * SECOND);
    eventually("a second round", || loads.lock().unwrap().len() >= 4);
    settle(&cache);
    assert_eq!(loads.lock().unwrap()[3..], [4]);
}

#[test]
fn a_scheduled_reload_joins_a_load_in_flight() {
    let clock = ManualClock::new();
    let scheduled = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&scheduled);
    let cache: Cache<u64, u64> = Cache::builder()
        .ttl(60 * SECOND)
        .clock(Clock::manual(&clock))
        .refresh_every(20 * SECOND, move |k| {
            s.fetch_add(1, Ordering::SeqCst);
            Ok(*k)
        })
        .build()
        .unwrap();
    cache.insert(5, 5);
    assert_eq!(cache.get(&5), Some(5)); // hot
    // A forced refresh of key 5 holds its flight while the round comes due.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let slow = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            cache.refresh(&5, || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok(55)
            })
        })
    };
    started_rx.recv().unwrap();
    clock.advance(25 * SECOND);
    // The round reaches key 5 and waits on the flight: the refresh counts it as joined.
    eventually("the round waits on the flight", || {
        cache.waiting_on_loads() == 1
    });
    release_tx.send(()).unwrap();
    assert_eq!(slow.join().unwrap(), Ok(55));
    eventually("the round ends", || cache.stats().joined == 1);
    assert_eq!(
        scheduled.load(Ordering::SeqCst),
        0,
        "joined, not loaded again"
    );
    assert_eq!(cache.get(&5), Some(55));
}

#[test]
fn a_panicking_scheduled_loader_keeps_the_old_value_and_the_thread() {
    let clock = ManualClock::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    let cache: Cache<u64, u64> = Cache::builder()
        .ttl(60 * SECOND)
        .clock(Clock::manual(&clock))
        .refresh_every(20 * SECOND, move |k| {
            r.fetch_add(1, Ordering::SeqCst);
            if *k == 13 {
                panic!("the source is broken");
            }
            Ok(k + 100)
        })
        .build()
        .unwrap();
    cache.insert(13, 13);
    cache.insert(14, 14);
    assert_eq!(cache.get(&13), Some(13));
    assert_eq!(cache.get(&14), Some(14));
    clock.advance(25 * SECOND);
    eventually("both reloads", || runs.load(Ordering::SeqCst) == 2);
    settle(&cache);
    assert_eq!(cache.get(&13), Some(13), "the old value stays");
    assert_eq!(cache.get(&14), Some(114));
    // Counted once the reload has returned, a moment after its flight ended.
    eventually("the failure counted", || cache.stats().refresh_errors == 1);
    // The thread survived the panic: the next round runs.
    clock.advance(25 * SECOND);
    eventually("another round", || runs.load(Ordering::SeqCst) == 4);
}

#[test]
fn the_next_round_is_due_a_period_after_this_one_starts_not_after_it_ends() {
    // The loader moves the clock 15 s on its first run (a slow source, or a test advancing
    // the clock while a round ends). The round began at 25 s, so the next is due by 47 s:
    // at 50 s it runs. Timed from the round's end (40 s), it would wait past 58 s.
    let clock = ManualClock::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let (r, c) = (Arc::clone(&runs), clock.clone());
    let cache: Cache<u64, u64> = Cache::builder()
        .ttl(60 * SECOND)
        .clock(Clock::manual(&clock))
        .refresh_every(20 * SECOND, move |k| {
            if r.fetch_add(1, Ordering::SeqCst) == 0 {
                c.advance(15 * SECOND);
            }
            Ok(*k)
        })
        .build()
        .unwrap();
    cache.insert(1, 1);
    assert_eq!(cache.get(&1), Some(1));
    clock.advance(25 * SECOND);
    eventually("the first round", || runs.load(Ordering::SeqCst) == 1);
    settle(&cache);
    assert_eq!(cache.get(&1), Some(1)); // read again: hot in the next round
    clock.advance(10 * SECOND);
    eventually("the second round", || runs.load(Ordering::SeqCst) == 2);
    settle(&cache);
    assert_eq!(runs.load(Ordering::SeqCst), 2, "one round each time");
}

#[test]
fn the_refresh_thread_ends_when_the_cache_is_dropped() {
    let clock = ManualClock::new();
    let token = Arc::new(());
    let held = Arc::clone(&token);
    let cache: Cache<u64, u64> = Cache::builder()
        .clock(Clock::manual(&clock))
        .refresh_every(SECOND, move |k| {
            let _ = &held;
            Ok(*k)
        })
        .build()
        .unwrap();
    assert_eq!(Arc::strong_count(&token), 2);
    drop(cache);
    // The thread notices, and drops its loader (and the token it holds).
    eventually("the thread ends", || Arc::strong_count(&token) == 1);
}

#[test]
fn settings_are_checked() {
    let e = Cache::<u64, u64>::builder()
        .ttl(10 * SECOND)
        .refresh_every(10 * SECOND, |k| Ok(*k))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("shorter than the `ttl`"), "{e}");
    assert!(Cache::<u64, u64>::builder().refresh_top(5).build().is_err());
    assert!(
        Cache::<u64, u64>::builder()
            .refresh_every(Duration::ZERO, |k| Ok(*k))
            .build()
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_reloader_runs_on_the_runtime_the_cache_was_built_on() {
    let clock = ManualClock::new();
    let on_runtime = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&on_runtime);
    let cache: Cache<u64, u64> = Cache::builder()
        .ttl(60 * SECOND)
        .clock(Clock::manual(&clock))
        .refresh_every_async(20 * SECOND, move |k: u64| {
            let seen = Arc::clone(&seen);
            async move {
                if tokio::runtime::Handle::try_current().is_ok() {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                tokio::task::yield_now().await;
                Ok(k * 2)
            }
        })
        .build()
        .unwrap();
    for k in 0..64 {
        cache.insert(k, k);
        assert_eq!(cache.get(&k), Some(k));
    }
    clock.advance(25 * SECOND);
    while on_runtime.load(Ordering::SeqCst) < 64 || cache.loads_in_flight() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for k in 0..64 {
        assert_eq!(cache.get(&k), Some(k * 2));
    }
    assert_eq!(cache.stats().misses, 0);
}

static HOT_LOADS: AtomicUsize = AtomicUsize::new(0);
static COLD_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1s", refresh_every = "150ms", refresh_top = 10)]
fn quote(symbol: &str) -> u64 {
    if symbol == "hot" {
        HOT_LOADS.fetch_add(1, Ordering::SeqCst) as u64
    } else {
        COLD_LOADS.fetch_add(1, Ordering::SeqCst) as u64
    }
}

#[test]
fn the_attribute_refreshes_a_hot_key_before_it_expires() {
    assert_eq!(quote("hot"), 0);
    assert_eq!(quote("cold"), 0);
    // 2.5 s of reads, 2.5 TTLs: the hot key never misses, the cold one is never reloaded.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2_500) {
        quote("hot");
        std::thread::sleep(Duration::from_millis(10));
    }
    let users =
        cache_runtime::registry::get::<String, u64>(concat!(module_path!(), "::quote")).unwrap();
    assert_eq!(users.stats().misses, 2, "only the two first calls missed");
    assert!(
        HOT_LOADS.load(Ordering::SeqCst) >= 5,
        "reloaded in the background"
    );
    assert_eq!(COLD_LOADS.load(Ordering::SeqCst), 1);
}

static PAIRS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1s", refresh_every = "100ms")]
async fn pair(a: u64, b: String) -> Option<String> {
    PAIRS.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    Some(format!("{a}:{b}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_function_with_several_arguments_is_refreshed_on_its_runtime() {
    assert_eq!(pair(1, "x".into()).await, Some("1:x".to_string()));
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1_500) {
        assert_eq!(pair(1, "x".into()).await, Some("1:x".to_string()));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(PAIRS.load(Ordering::SeqCst) >= 5);
    let cache =
        cache_runtime::registry::get::<(u64, String), String>(concat!(module_path!(), "::pair"))
            .unwrap();
    assert_eq!(cache.stats().misses, 1);
}
