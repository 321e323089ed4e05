//! Stale-while-revalidate, XFetch early refresh and per-entry TTLs, through the `Cache` API with
//! an injected clock (no sleeps): what is served, how many loads run, what a failure keeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{BuildError, Cache, Clock, ManualClock};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Waits (briefly, bounded) until no refresh of `cache` is in flight.
fn settle<K, V, N>(cache: &Cache<K, V, N>)
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    let start = std::time::Instant::now();
    while cache.loads_in_flight() > 0 {
        assert!(start.elapsed() < secs(10), "a refresh never finished");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn swr_cache(clock: &ManualClock) -> Cache<u64, u64> {
    Cache::builder()
        .ttl(secs(60))
        .stale_while_revalidate(secs(30))
        .clock(Clock::manual(clock))
        .build()
        .unwrap()
}

#[test]
fn stale_value_is_served_while_one_background_refresh_runs() {
    let clock = ManualClock::new();
    let c = swr_cache(&clock);
    let loads = Arc::new(AtomicUsize::new(0));
    let load = |v: u64| {
        let loads = Arc::clone(&loads);
        move || {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok(v)
        }
    };
    assert_eq!(c.get_or_refresh(1, load(10)), Ok(10));
    clock.advance(secs(59));
    assert_eq!(c.get_or_refresh(1, load(11)), Ok(10), "fresh: no refresh");
    clock.advance(secs(2)); // 61 s: expired, inside the 30 s stale window
    assert_eq!(
        c.get_or_refresh(1, load(12)),
        Ok(10),
        "stale value served at once"
    );
    settle(&c);
    assert_eq!(
        c.get(&1),
        Some(12),
        "the background refresh stored the new value"
    );
    assert_eq!(loads.load(Ordering::SeqCst), 2);
    let s = c.stats();
    assert_eq!((s.stale_hits, s.refreshes, s.refresh_errors), (1, 1, 0));
}

#[test]
fn past_the_stale_window_the_value_is_gone() {
    let clock = ManualClock::new();
    let c = swr_cache(&clock);
    assert_eq!(c.get_or_refresh(1, || Ok(10)), Ok(10));
    clock.advance(secs(90)); // 60 s TTL + 30 s window
    assert_eq!(
        c.get_or_refresh(1, || Ok(20)),
        Ok(20),
        "a miss loads in the caller"
    );
    assert_eq!(c.stats().stale_hits, 0);
}

#[test]
fn plain_lookups_never_see_a_stale_value() {
    let clock = ManualClock::new();
    let c = swr_cache(&clock);
    c.insert(1, 10);
    clock.advance(secs(61));
    assert_eq!(
        c.get(&1),
        None,
        "`get` cannot refresh, so it does not serve stale"
    );
    assert!(!c.contains_key(&1));
    // ...but the entry is kept for callers that can refresh it.
    assert_eq!(c.get_or_refresh(1, || Ok(11)), Ok(10));
    settle(&c);
    assert_eq!(c.get(&1), Some(11));
}

#[test]
fn only_one_refresh_per_key_under_many_threads() {
    let clock = ManualClock::new();
    let c = swr_cache(&clock);
    c.insert(7, 70);
    clock.advance(secs(61));
    let loads = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(std::sync::Barrier::new(16));
    // The refresh blocks until every caller has been served, so all of them overlap with it.
    let release = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (c, loads, gate, release) =
                (c.clone(), loads.clone(), gate.clone(), release.clone());
            std::thread::spawn(move || {
                gate.wait();
                let mut served = Vec::new();
                for _ in 0..100 {
                    let (loads, release) = (loads.clone(), release.clone());
                    served.push(c.get_or_refresh(7, move || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        let (m, cv) = &*release;
                        let mut go = m.lock().unwrap();
                        while !*go {
                            go = cv.wait(go).unwrap();
                        }
                        Ok(71)
                    }));
                }
                served
            })
        })
        .collect();
    let served: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(
        served.iter().all(|v| *v == Ok(70)),
        "every caller got the stale value at once"
    );
    {
        let (m, cv) = &*release;
        *m.lock().unwrap() = true;
        cv.notify_all();
    }
    settle(&c);
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "1600 stale hits, one refresh"
    );
    assert_eq!(c.get(&7), Some(71));
    let s = c.stats();
    assert_eq!((s.stale_hits, s.refreshes), (1600, 1));
}

#[test]
fn a_failed_refresh_keeps_the_stale_value_and_is_counted() {
    let clock = ManualClock::new();
    let c: Cache<u64, u64, String> = Cache::builder()
        .ttl(secs(60))
        .stale_while_revalidate(secs(30))
        .clock(Clock::manual(&clock))
        .build()
        .unwrap();
    assert_eq!(c.get_or_refresh(1, || Ok(10)), Ok(10));
    clock.advance(secs(61));
    // An error (not cached without negative_ttl) keeps the old value.
    assert_eq!(c.get_or_refresh(1, || Err("db down".into())), Ok(10));
    settle(&c);
    // A panicking loader too.
    assert_eq!(c.get_or_refresh(1, || panic!("loader bug")), Ok(10));
    settle(&c);
    assert_eq!(
        c.get_or_refresh(1, || Ok(11)),
        Ok(10),
        "still stale: refreshed again"
    );
    settle(&c);
    assert_eq!(c.get(&1), Some(11));
    let s = c.stats();
    assert_eq!((s.refreshes, s.refresh_errors), (3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_refresh_runs_as_a_task() {
    let clock = ManualClock::new();
    let c = swr_cache(&clock);
    assert_eq!(c.get_or_refresh_async(1, || async { Ok(1) }).await, Ok(1));
    clock.advance(secs(61));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let started = c
        .get_or_refresh_async(1, || async move {
            // The refresh waits for the test: the caller was answered before it ran.
            let _ = rx.await;
            Ok(2)
        })
        .await;
    assert_eq!(started, Ok(1));
    assert_eq!(
        c.loads_in_flight(),
        1,
        "the refresh is running in the background"
    );
    tx.send(()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.loads_in_flight() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the refresh never ended"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(c.get(&1), Some(2));
}

/// XFetch: a hit at `left` before expiry refreshes with probability `exp(-left / (delta*beta))`
/// (`r` uniform: `P(-ln r * delta * beta >= left)`). Measured over many draws with a fixed seed.
#[test]
fn early_refresh_probability_follows_xfetch() {
    let delta = secs(2); // how long the load took
    for beta in [1.0, 2.0] {
        for left_in_deltas in [0.25f64, 0.5, 1.0, 2.0, 4.0] {
            let clock = ManualClock::new();
            let c: Cache<u64, u64> = Cache::builder()
                .ttl(secs(100))
                .early_refresh(beta)
                .seed(42)
                .clock(Clock::manual(&clock))
                .build()
                .unwrap();
            let ck = clock.clone();
            c.get_or_insert_with(&1, move || {
                ck.advance(delta);
                1
            });
            // Now 100 s remain; move to `left` before expiry.
            let left = delta.mul_f64(left_in_deltas);
            clock.advance(secs(100) - left);
            let trials = 20_000;
            let mut early = 0;
            for _ in 0..trials {
                match c.lookup_refresh(&1) {
                    cache_runtime::__private::Lookup::Refresh(_, r) => {
                        early += 1;
                        drop(r); // abandoned: the entry stays as it was
                    }
                    cache_runtime::__private::Lookup::Hit(_) => {}
                    cache_runtime::__private::Lookup::Miss => panic!("still fresh"),
                }
            }
            #[allow(clippy::cast_precision_loss)]
            let measured = f64::from(early) / f64::from(trials);
            let expected = (-left_in_deltas / beta).exp();
            assert!(
                (measured - expected).abs() < 0.015,
                "beta {beta}, {left_in_deltas} deltas left: measured {measured:.4}, expected {expected:.4}"
            );
        }
    }
}

#[test]
fn early_refresh_never_draws_far_from_expiry_and_recomputes_inline() {
    let clock = ManualClock::new();
    let c: Cache<u64, u64> = Cache::builder()
        .ttl(secs(100))
        .early_refresh(1.0)
        .seed(7)
        .clock(Clock::manual(&clock))
        .build()
        .unwrap();
    let ck = clock.clone();
    c.get_or_insert_with(&1, move || {
        ck.advance(Duration::from_millis(100));
        1
    });
    // 40 deltas (4 s) before expiry the chance is e^-40: the window is not even entered.
    clock.advance(secs(96));
    for _ in 0..10_000 {
        assert!(matches!(
            c.lookup_refresh(&1),
            cache_runtime::__private::Lookup::Hit(_)
        ));
    }
    assert_eq!(c.stats().refreshes, 0);
    // At the deadline's edge nearly every hit draws; the refresh replaces the value.
    clock.advance(Duration::from_millis(3_999));
    let cache_runtime::__private::Lookup::Refresh(old, r) = c.lookup_refresh(&1) else {
        panic!("1 ms before expiry with delta 100 ms, a refresh is all but certain (p = 0.99)");
    };
    let new = c.refresh_inline(r, 1, old, || {
        cache_runtime::__private::Loaded::<u64, _, ()>::Value(2)
    });
    assert_eq!(new, cache_runtime::Entry::Value(2));
    clock.advance(secs(50));
    assert_eq!(c.get(&1), Some(2), "the refreshed entry has a new full TTL");
}

/// 1,000 keys loaded together (one 5 s batch), each then read once a second: how many reload
/// in each second. `early_refresh = None` is the control.
async fn reloads_per_second(early_refresh: Option<f64>) -> Vec<u32> {
    let clock = ManualClock::new();
    let mut b = Cache::<u64, u64>::builder()
        .ttl(secs(60))
        .seed(3)
        .clock(Clock::manual(&clock));
    if let Some(beta) = early_refresh {
        b = b.early_refresh(beta);
    }
    let c = b.build().unwrap();
    // Every load starts, then the clock moves 5 s, then every load ends: delta = 5 s for all.
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut loads = tokio::task::JoinSet::new();
    for k in 0..1_000u64 {
        let (c, mut rx) = (c.clone(), rx.clone());
        loads.spawn(async move {
            c.get_or_insert_with_async(&k, || async move {
                let _ = rx.wait_for(|go| *go).await;
                k
            })
            .await
        });
    }
    while c.loads_in_flight() < 1_000 {
        tokio::task::yield_now().await;
    }
    clock.advance(secs(5));
    tx.send(true).unwrap();
    while loads.join_next().await.is_some() {}
    let mut per_second = Vec::new();
    for _ in 0..70 {
        clock.advance(secs(1));
        let mut reloads = 0;
        for k in 0..1_000u64 {
            match c.lookup_refresh(&k) {
                cache_runtime::__private::Lookup::Refresh(old, r) => {
                    reloads += 1;
                    c.refresh_inline(r, k, old, || {
                        cache_runtime::__private::Loaded::<u64, _, ()>::Value(k)
                    });
                }
                cache_runtime::__private::Lookup::Miss => {
                    reloads += 1;
                    c.get_or_insert_with(&k, || k);
                }
                cache_runtime::__private::Lookup::Hit(_) => {}
            }
        }
        per_second.push(reloads);
    }
    per_second
}

#[tokio::test(flavor = "current_thread")]
async fn early_refresh_spreads_the_reloads_of_keys_loaded_together() {
    let control = reloads_per_second(None).await;
    assert_eq!(
        *control.iter().max().unwrap(),
        1_000,
        "without early refresh every key expires in the same second: {control:?}"
    );
    let spread = reloads_per_second(Some(1.0)).await;
    let peak = *spread.iter().max().unwrap();
    eprintln!("reloads per second with early refresh: {spread:?}");
    let total: u32 = spread.iter().sum();
    assert!(total >= 1_000, "every key reloaded: {spread:?}");
    assert!(
        peak < 300,
        "with early refresh the reloads spread over the seconds before expiry: peak {peak}/s in {spread:?}"
    );
}

#[test]
fn ttl_fn_gives_each_value_its_own_lifetime() {
    #[derive(Clone, Debug, PartialEq)]
    struct Page {
        body: &'static str,
        max_age: Duration,
    }
    let clock = ManualClock::new();
    let c: Cache<&'static str, Page> = Cache::builder()
        .ttl_fn(|p: &Page| p.max_age)
        .clock(Clock::manual(&clock))
        .build()
        .unwrap();
    let page = |body, s| Page {
        body,
        max_age: secs(s),
    };
    c.get_or_insert_with(&"/news", || page("news", 10));
    c.get_or_insert_with(&"/about", || page("about", 3_600));
    c.insert("/private", page("private", 0)); // max-age=0: not cached
    assert!(c.get(&"/private").is_none());
    clock.advance(secs(11));
    assert_eq!(c.get(&"/news"), None, "its own 10 s passed");
    assert_eq!(c.get(&"/about").map(|p| p.body), Some("about"));
    let runs = AtomicUsize::new(0);
    for _ in 0..3 {
        c.get_or_insert_with(&"/nostore", || {
            runs.fetch_add(1, Ordering::SeqCst);
            page("nostore", 0)
        });
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3, "a zero TTL is never cached");
}

#[test]
fn bad_refresh_settings_are_build_errors() {
    assert!(matches!(
        Cache::<u64, u64>::builder()
            .early_refresh(0.0)
            .ttl(secs(1))
            .build(),
        Err(BuildError::InvalidEarlyRefresh(_))
    ));
    assert!(matches!(
        Cache::<u64, u64>::builder()
            .early_refresh(f64::NAN)
            .ttl(secs(1))
            .build(),
        Err(BuildError::InvalidEarlyRefresh(_))
    ));
    assert!(matches!(
        Cache::<u64, u64>::builder().early_refresh(1.0).build(),
        Err(BuildError::InvalidEarlyRefresh(_))
    ));
    assert_eq!(
        Cache::<u64, u64>::builder()
            .stale_while_revalidate(Duration::ZERO)
            .build()
            .err(),
        Some(BuildError::ZeroTtl { setting: "stale" })
    );
}
