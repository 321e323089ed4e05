//! Load statistics: loads, load failures, total and mean load time and the latency histogram,
//! counted for every outcome of a load (value, negative, error, panic, cancelled future), for
//! single-flight loads and refreshes, and never on a hit. Times come from the manual clock.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use cache_runtime::{Cache, Clock, ManualClock, registry};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn cache<N: Clone + Send + Sync + 'static>(clock: &ManualClock) -> Cache<u64, u64, N> {
    Cache::builder()
        .clock(Clock::manual(clock))
        .negative_ttl(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[test]
fn every_outcome_of_a_load_is_timed_and_failures_counted() {
    let clock = ManualClock::new();
    let c: Cache<u64, u64, String> = cache(&clock);
    // A value: 4 ms.
    assert_eq!(
        c.get_or_load(&1, || {
            clock.advance(ms(4));
            Ok(10)
        }),
        Ok(10)
    );
    // A negative result (cached): 6 ms.
    assert!(
        c.get_or_load(&2, || {
            clock.advance(ms(6));
            Err("gone".into())
        })
        .is_err()
    );
    let s = c.stats();
    assert_eq!((s.loads, s.load_errors), (2, 1));
    assert_eq!(s.load_time.count(), 2);
    assert_eq!(s.load_time.total(), ms(10));
    assert_eq!(s.load_time.mean(), Some(ms(5)));
    // Hits and negative hits add nothing.
    for _ in 0..100 {
        assert_eq!(c.get(&1), Some(10));
        assert!(c.get_entry(&2).is_some());
    }
    let after = c.stats();
    assert_eq!(after.load_time, s.load_time);
    assert_eq!((after.loads, after.load_errors), (2, 1));
    assert_eq!((after.hits, after.negative_hits), (100, 100));

    let c: Cache<u64, u64> = cache(&clock);
    // An error not cached: 8 ms.
    assert!(
        c.get_or_try_insert_with(&3, || {
            clock.advance(ms(8));
            Err::<u64, _>("down")
        })
        .is_err()
    );
    // A panic: 20 ms.
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        c.get_or_insert_with(&4, || {
            clock.advance(ms(20));
            panic!("loader bug")
        })
    }));
    assert!(panicked.is_err());
    let s = c.stats();
    assert_eq!((s.loads, s.load_errors), (2, 2));
    assert_eq!(s.load_time.count(), 2);
    assert_eq!(s.load_time.total(), ms(28));
    assert_eq!(s.load_time.mean(), Some(ms(14)));
    // A reset starts the histogram over.
    c.reset_stats();
    let s = c.stats();
    assert_eq!(
        (s.loads, s.load_time.count(), s.load_time.p50()),
        (0, 0, None)
    );
}

#[test]
fn quantiles_follow_the_loads() {
    let clock = ManualClock::new();
    let c: Cache<u64, u64> = cache(&clock);
    // 90 loads of 3 ms, 9 of 40 ms, 1 of 2 s.
    for k in 0..100 {
        let took = match k {
            0..90 => ms(3),
            90..99 => ms(40),
            _ => ms(2_000),
        };
        c.get_or_insert_with(&k, || {
            clock.advance(took);
            k
        });
    }
    let t = c.stats().load_time;
    assert_eq!(t.count(), 100);
    assert_eq!(t.total(), ms(90 * 3 + 9 * 40 + 2_000));
    let within = |q: Option<Duration>, lo: u64, hi: u64| {
        let q = q.unwrap();
        assert!(q > ms(lo) && q <= ms(hi), "{q:?} not in ({lo} ms, {hi} ms]");
    };
    within(t.p50(), 2, 3); // bucket (2.5 ms, 3 ms]
    within(t.p90(), 2, 3);
    within(t.p99(), 30, 40); // bucket (30 ms, 40 ms]
    within(t.quantile(1.0), 1_500, 2_000);
}

#[test]
fn concurrent_misses_of_one_key_time_one_load() {
    let clock = ManualClock::new();
    let c: Cache<u64, u64> = cache(&clock);
    let runs = AtomicUsize::new(0);
    let barrier = Barrier::new(8);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                barrier.wait();
                let v = c.get_or_insert_with(&7, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    // Long enough for the others to join.
                    std::thread::sleep(ms(50));
                    clock.advance(ms(5));
                    70
                });
                assert_eq!(v, 70);
            });
        }
    });
    let s = c.stats();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!((s.loads, s.load_errors), (1, 0));
    assert_eq!((s.load_time.count(), s.load_time.total()), (1, ms(5)));
    assert_eq!(s.joined + s.hits, 7);
}

#[tokio::test]
async fn async_loads_are_timed_and_a_cancelled_one_is_a_failure() {
    let clock = ManualClock::new();
    let c: Cache<u64, u64, String> = cache(&clock);
    let v = c
        .get_or_load_async(&1, || async {
            clock.advance(ms(12));
            tokio::task::yield_now().await;
            Ok(1)
        })
        .await;
    assert_eq!(v, Ok(1));
    // A load whose caller goes away (a timeout) after 30 ms.
    let never = c.get_or_load_async(&2, || async {
        clock.advance(ms(30));
        std::future::pending::<Result<u64, String>>().await
    });
    let timed_out = tokio::time::timeout(ms(1), never).await;
    assert!(timed_out.is_err());
    let s = c.stats();
    assert_eq!((s.loads, s.load_errors), (2, 1));
    assert_eq!((s.load_time.count(), s.load_time.total()), (2, ms(42)));
}

#[test]
fn refreshes_are_timed_as_loads() {
    let clock = ManualClock::new();
    let c: Cache<u64, u64> = Cache::builder()
        .ttl(Duration::from_secs(60))
        .stale_while_revalidate(Duration::from_secs(30))
        .clock(Clock::manual(&clock))
        .build()
        .unwrap();
    let tick = clock.clone();
    assert_eq!(
        c.get_or_refresh(1, move || {
            tick.advance(ms(2));
            Ok(1)
        }),
        Ok(1)
    );
    clock.advance(Duration::from_secs(70)); // stale: served, refreshed in the background
    let tick = clock.clone();
    assert_eq!(
        c.get_or_refresh(1, move || {
            tick.advance(ms(9));
            Ok(2)
        }),
        Ok(1)
    );
    while c.loads_in_flight() > 0 {
        std::thread::yield_now();
    }
    assert_eq!(c.get(&1), Some(2));
    let s = c.stats();
    assert_eq!((s.loads, s.refreshes, s.load_errors), (2, 1, 0));
    assert_eq!((s.load_time.count(), s.load_time.total()), (2, ms(11)));
}

#[test]
fn the_registry_sums_histograms_of_one_name_and_prints_a_prometheus_histogram() {
    let clock = ManualClock::new();
    let build = || -> Cache<u64, u64> {
        Cache::builder()
            .name("load_stats.prom")
            .clock(Clock::manual(&clock))
            .build()
            .unwrap()
    };
    let (a, b) = (build(), build());
    a.get_or_insert_with(&1, || {
        clock.advance(ms(3));
        1
    });
    b.get_or_insert_with(&1, || {
        clock.advance(ms(300));
        1
    });
    let report = registry::caches()
        .into_iter()
        .filter(|r| r.name == "load_stats.prom")
        .map(|r| r.stats.load_time.count())
        .sum::<u64>();
    assert_eq!(report, 2);
    let text = registry::prometheus_text();
    let series = |suffix: &str| -> Vec<&str> {
        text.lines()
            .filter(|l| {
                l.starts_with(&format!("cache_load_duration_seconds{suffix}{{"))
                    && l.contains(r#"cache="load_stats.prom""#)
            })
            .collect()
    };
    assert!(text.contains("# TYPE cache_load_duration_seconds histogram"));
    let buckets = series("_bucket");
    assert_eq!(buckets.len(), 20, "{buckets:#?}");
    for (le, n) in [
        ("0.0025", 0),
        ("0.005", 1),
        ("0.25", 1),
        ("0.5", 2),
        ("100", 2),
        ("+Inf", 2),
    ] {
        let line = format!(
            r#"cache_load_duration_seconds_bucket{{cache="load_stats.prom",le="{le}"}} {n}"#
        );
        assert!(
            buckets.contains(&line.as_str()),
            "no `{line}` in {buckets:#?}"
        );
    }
    // Cumulative: never decreasing.
    let counts: Vec<u64> = buckets
        .iter()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(
        series("_sum"),
        [r#"cache_load_duration_seconds_sum{cache="load_stats.prom"} 0.303"#]
    );
    assert_eq!(
        series("_count"),
        [r#"cache_load_duration_seconds_count{cache="load_stats.prom"} 2"#]
    );
    drop((a, b));
}

#[test]
fn the_hit_path_records_nothing_under_threads() {
    let clock = ManualClock::new();
    let c: Arc<Cache<u64, u64>> = Arc::new(
        Cache::builder()
            .clock(Clock::manual(&clock))
            .build()
            .unwrap(),
    );
    for k in 0..10 {
        c.insert(k, k);
    }
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for i in 0..10_000u64 {
                    assert_eq!(c.get(&(i % 10)), Some(i % 10));
                }
            });
        }
    });
    let s = c.stats();
    assert_eq!(s.hits, 80_000);
    assert_eq!((s.loads, s.load_time.count()), (0, 0));
}
