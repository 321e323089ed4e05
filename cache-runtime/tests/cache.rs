//! The typed cache: expiry, negative caching, statistics, invalidation, bounds, bad settings.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{BuildError, Cache, Clock, Entry, Jitter, ManualClock, Policy, registry};

const POLICIES: [Policy; 4] = [Policy::S3Fifo, Policy::Lru, Policy::Lfu, Policy::Fifo];

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn expired_entries_are_never_returned() {
    for policy in POLICIES {
        let clock = ManualClock::new();
        let c: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .ttl(secs(10))
            .clock(Clock::manual(&clock))
            .build()
            .unwrap();
        c.insert(1, 1);
        clock.advance(Duration::from_millis(9_999));
        assert_eq!(c.get(&1), Some(1), "{policy}: still fresh");
        clock.advance(Duration::from_millis(1));
        assert_eq!(c.get(&1), None, "{policy}: expired at its deadline");
        assert!(!c.contains_key(&1));
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.expirations), (1, 1, 1), "{policy}");
        // The expired entry was removed on sight.
        assert_eq!(c.len(), 0);
        // A load after expiry runs again.
        let runs = AtomicUsize::new(0);
        let v = c.get_or_insert_with(&1, || {
            runs.fetch_add(1, Ordering::SeqCst);
            2
        });
        assert_eq!((v, runs.load(Ordering::SeqCst)), (2, 1));
    }
}

#[test]
fn expired_entries_do_not_keep_capacity_from_live_ones() {
    for policy in POLICIES {
        let clock = ManualClock::new();
        let c: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .capacity(100)
            .shards(1)
            .ttl(secs(1))
            .clock(Clock::manual(&clock))
            .build()
            .unwrap();
        for k in 0..100 {
            c.insert(k, k);
        }
        clock.advance(secs(2));
        // Fresh traffic fills the cache again: the expired entries make room.
        for k in 1_000..1_100 {
            c.insert(k, k);
        }
        for k in 1_000..1_100 {
            c.get(&k);
        }
        let s = c.stats();
        assert!(c.len() <= 100, "{policy}");
        assert!(s.hits >= 90, "{policy}: live entries kept ({s:?})");
        // Every old entry left, counted as an expiration (not an eviction of a live entry).
        assert!(s.expirations >= 90, "{policy}: {s:?}");
        assert_eq!(
            s.evictions + s.expirations,
            100 + 100 - c.len() as u64,
            "{policy}"
        );
    }
}

#[test]
fn purge_expired_sweeps_now() {
    let clock = ManualClock::new();
    let c: Cache<u64, u64> = Cache::builder()
        .ttl(secs(5))
        .clock(Clock::manual(&clock))
        .build()
        .unwrap();
    for k in 0..50 {
        c.insert(k, k);
    }
    clock.advance(secs(3));
    for k in 50..60 {
        c.insert(k, k);
    }
    clock.advance(secs(3));
    assert_eq!(c.purge_expired(), 50);
    assert_eq!(c.len(), 10);
    assert_eq!(c.stats().expirations, 50);
}

#[test]
fn per_entry_ttl_and_its_errors() {
    let clock = ManualClock::new();
    let c: Cache<&'static str, u32> = Cache::builder()
        .ttl(secs(60))
        .clock(Clock::manual(&clock))
        .build()
        .unwrap();
    c.insert_with_ttl("short", 1, secs(1)).unwrap();
    c.insert("long", 2);
    clock.advance(secs(2));
    assert_eq!(c.get("short"), None);
    assert_eq!(c.get("long"), Some(2));
    assert_eq!(
        c.insert_with_ttl("x", 3, Duration::ZERO),
        Err(BuildError::ZeroTtl {
            setting: "entry ttl"
        })
    );
    assert_eq!(
        c.insert_with_ttl("x", 3, Duration::MAX),
        Err(BuildError::TtlTooLarge {
            setting: "entry ttl"
        })
    );
    assert_eq!(c.get("x"), None, "a rejected insert changes nothing");
}

#[test]
fn per_entry_ttl_without_a_cache_ttl() {
    let clock = ManualClock::new();
    let c: Cache<u8, u8> = Cache::builder()
        .clock(Clock::manual(&clock))
        .build()
        .unwrap();
    c.insert_with_ttl(1, 1, secs(1)).unwrap();
    c.insert(2, 2);
    clock.advance(secs(3_600));
    assert_eq!(
        c.get(&1),
        None,
        "the entry's own TTL applies (on the coarse clock)"
    );
    assert_eq!(c.get(&2), Some(2), "no cache TTL: never expires");
}

#[test]
fn jitter_spreads_expiry_of_keys_written_together() {
    let clock = ManualClock::new();
    let c: Cache<u64, u64> = Cache::builder()
        .capacity(10_000)
        .ttl(secs(100))
        .jitter(Jitter::Fraction(0.2))
        .seed(42)
        .clock(Clock::manual(&clock))
        .build()
        .unwrap();
    for k in 0..1_000 {
        c.insert(k, k);
    }
    // Before 80 s (100 - 20%) nothing has expired; after 120 s everything has.
    clock.advance(Duration::from_millis(79_999));
    assert_eq!((0..1_000).filter(|k| c.contains_key(k)).count(), 1_000);
    // In between, expiry is spread out: about a quarter gone at 90 s, half at 100 s.
    clock.advance(Duration::from_millis(10_001));
    let at_90 = (0..1_000).filter(|k| c.contains_key(k)).count();
    clock.advance(secs(10));
    let at_100 = (0..1_000).filter(|k| c.contains_key(k)).count();
    clock.advance(secs(21));
    let at_121 = (0..1_000).filter(|k| c.contains_key(k)).count();
    assert!((650..=850).contains(&at_90), "{at_90}");
    assert!((400..=600).contains(&at_100), "{at_100}");
    assert_eq!(at_121, 0);
}

#[derive(Clone, Debug, PartialEq)]
struct NotFound(u64);

#[test]
fn negative_results_are_cached_for_their_own_ttl_and_counted() {
    let clock = ManualClock::new();
    let c: Cache<u64, String, NotFound> = Cache::builder()
        .ttl(secs(60))
        .negative_ttl(secs(5))
        .clock(Clock::manual(&clock))
        .build()
        .unwrap();
    let runs = AtomicUsize::new(0);
    let load = |id: u64| {
        runs.fetch_add(1, Ordering::SeqCst);
        if id.is_multiple_of(2) {
            Ok(format!("user-{id}"))
        } else {
            Err(NotFound(id))
        }
    };
    assert_eq!(c.get_or_load(&1, || load(1)), Err(NotFound(1)));
    assert_eq!(c.get_or_load(&1, || load(1)), Err(NotFound(1)));
    assert_eq!(c.get_or_load(&2, || load(2)), Ok("user-2".into()));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // Never confused with a value.
    assert_eq!(c.get(&1), None);
    assert_eq!(c.get_entry(&1), Some(Entry::Negative(NotFound(1))));
    assert_eq!(c.get_entry(&2), Some(Entry::Value("user-2".into())));
    let s = c.stats();
    assert_eq!(s.negative_hits, 3, "{s:?}");
    assert_eq!(s.load_errors, 1);
    // The negative entry expires after 5 s, the value after 60 s.
    clock.advance(secs(6));
    assert_eq!(c.get_entry(&1), None);
    assert_eq!(c.get(&2), Some("user-2".into()));
    assert_eq!(c.get_or_load(&1, || load(1)), Err(NotFound(1)));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[test]
fn without_negative_ttl_errors_are_not_cached() {
    let c: Cache<u64, u64, String> = Cache::builder().build().unwrap();
    let runs = AtomicUsize::new(0);
    for _ in 0..3 {
        let r = c.get_or_load(&1, || {
            runs.fetch_add(1, Ordering::SeqCst);
            Err("nope".to_string())
        });
        assert_eq!(r, Err("nope".to_string()));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert!(c.is_empty());
}

#[test]
fn option_not_found_is_cached_with_negative_ttl() {
    let c: Cache<String, u64, ()> = Cache::builder().negative_ttl(secs(60)).build().unwrap();
    let runs = AtomicUsize::new(0);
    for _ in 0..3 {
        let v = c.get_or_load_option("missing", || {
            runs.fetch_add(1, Ordering::SeqCst);
            None
        });
        assert_eq!(v, None);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(c.get_or_load_option("here", || Some(7)), Some(7));
    assert_eq!(c.stats().negative_hits, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_results_are_shared_with_waiters() {
    let c: Cache<u64, u64, NotFound> = Cache::builder().negative_ttl(secs(5)).build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (c, runs) = (c.clone(), runs.clone());
            tokio::spawn(async move {
                c.get_or_load_async(&5, || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    Err(NotFound(5))
                })
                .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Err(NotFound(5)));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn invalidation_remove_clear_insert() {
    for policy in POLICIES {
        let c: Cache<String, u64> = Cache::builder().policy(policy).build().unwrap();
        c.insert("a".into(), 1);
        c.insert("b".into(), 2);
        assert!(c.remove("a"));
        assert!(!c.remove("a"));
        assert_eq!(c.get("a"), None);
        // Write-through replaces.
        c.insert("b".into(), 20);
        assert_eq!(c.get("b"), Some(20));
        assert_eq!(c.len(), 1);
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.get("b"), None);
        // Still usable after clear.
        assert_eq!(c.get_or_insert_with("c", || 3), 3);
        assert_eq!(c.get("c"), Some(3), "{policy}");
    }
}

#[test]
fn invalidation_during_a_load_wins() {
    let c: Cache<u64, u64> = Cache::builder().build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let loader = {
        let c = c.clone();
        std::thread::spawn(move || {
            c.get_or_insert_with(&1, || {
                tx.send(()).unwrap();
                go_rx.recv().unwrap();
                // The value read before the write below.
                100
            })
        })
    };
    rx.recv().unwrap();
    // A write (write-through) lands while the load is in flight.
    c.insert(1, 200);
    go_tx.send(()).unwrap();
    // The loader's own caller gets what it loaded...
    assert_eq!(loader.join().unwrap(), 100);
    // ...but the older result does not overwrite the newer write.
    assert_eq!(c.get(&1), Some(200));

    // Likewise for remove: the in-flight result is not stored.
    let (tx, rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let loader = {
        let c = c.clone();
        std::thread::spawn(move || {
            c.get_or_insert_with(&2, || {
                tx.send(()).unwrap();
                go_rx.recv().unwrap();
                5
            })
        })
    };
    rx.recv().unwrap();
    c.remove(&2);
    go_tx.send(()).unwrap();
    assert_eq!(loader.join().unwrap(), 5);
    assert_eq!(c.get(&2), None);
}

#[test]
fn bounded_by_count_for_every_policy() {
    for policy in POLICIES {
        let c: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .capacity(1_000)
            .build()
            .unwrap();
        for k in 0..100_000 {
            c.get_or_insert_with(&k, || k);
        }
        assert!(c.len() <= 1_000 + 64, "{policy}: {}", c.len());
        assert!(c.len() >= 500, "{policy}: {}", c.len());
        let s = c.stats();
        assert_eq!(s.evictions, 100_000 - c.len() as u64, "{policy}: {s:?}");
        assert_eq!(s.misses, 100_000);
    }
}

#[test]
fn bounded_by_weight_for_every_policy() {
    for policy in POLICIES {
        let c: Cache<u64, Vec<u8>> = Cache::builder()
            .policy(policy)
            .max_weight(100_000, |_, v: &Vec<u8>| v.len() as u64)
            .build()
            .unwrap();
        for k in 0..2_000u64 {
            c.insert(k, vec![0; (k % 200) as usize + 1]);
        }
        assert!(c.weight() <= c.capacity(), "{policy}");
        assert!(c.capacity() >= 100_000 && c.capacity() < 101_000);
        assert!(c.weight() > 50_000, "{policy}: {}", c.weight());
        // An entry heavier than the whole cache is not kept.
        c.insert(9_999_999, vec![0; 200_000]);
        assert_eq!(c.get(&9_999_999), None, "{policy}");
    }
}

#[test]
fn lru_keeps_the_recently_used() {
    let c: Cache<u64, u64> = Cache::builder()
        .policy(Policy::Lru)
        .capacity(3)
        .shards(1)
        .build()
        .unwrap();
    c.insert(1, 1);
    c.insert(2, 2);
    c.insert(3, 3);
    c.get(&1);
    c.insert(4, 4); // evicts 2, the least recently used
    assert_eq!(c.get(&2), None);
    assert!(c.contains_key(&1) && c.contains_key(&3) && c.contains_key(&4));
}

/// One run of the scenario below: returns (hot keys kept after the scan, new hot keys kept,
/// old hot keys still kept).
fn lfu_scenario(seed: u64) -> (usize, usize, usize) {
    let c: Cache<u64, u64> = Cache::builder()
        .policy(Policy::Lfu)
        .capacity(100)
        .shards(1)
        .seed(seed)
        .build()
        .unwrap();
    // A hot set used often...
    for _ in 0..10 {
        for k in 0..50 {
            c.get_or_insert_with(&k, || k);
        }
    }
    // ...then a one-time scan of many cold keys...
    for k in 1_000..3_000 {
        c.get_or_insert_with(&k, || k);
    }
    let kept = (0..50).filter(|k| c.contains_key(k)).count();
    // ...then a new hot set, used for long enough to displace the old one (aging).
    for _ in 0..40 {
        for k in 5_000..5_090 {
            c.get_or_insert_with(&k, || k);
        }
    }
    let new_kept = (5_000..5_090).filter(|k| c.contains_key(k)).count();
    let old_kept = (0..50).filter(|k| c.contains_key(k)).count();
    (kept, new_kept, old_kept)
}

#[test]
fn lfu_resists_a_scan_and_ages_out_old_favourites() {
    // The sketch hashes with the seed, so collisions differ by seed: check the typical case
    // over several seeds, and a floor for every one.
    let runs: Vec<_> = (1..=8).map(lfu_scenario).collect();
    let mean = |f: fn(&(usize, usize, usize)) -> usize| {
        runs.iter().map(f).sum::<usize>() as f64 / runs.len() as f64
    };
    for (seed, r) in (1..).zip(&runs) {
        assert!(r.0 >= 45, "seed {seed}: hot keys lost to a scan: {r:?}");
        assert!(r.1 >= 60 && r.2 <= 40, "seed {seed}: no aging: {r:?}");
    }
    assert!(mean(|r| r.1) >= 80.0, "{runs:?}");
    assert!(mean(|r| r.2) <= 15.0, "{runs:?}");
}

#[test]
fn bad_settings_are_errors_not_panics() {
    let b = || Cache::<u64, u64>::builder();
    assert_eq!(
        b().capacity(0).build().unwrap_err(),
        BuildError::ZeroCapacity
    );
    assert_eq!(
        b().max_weight(0, |_, _| 1).build().unwrap_err(),
        BuildError::ZeroCapacity
    );
    assert_eq!(
        b().ttl(Duration::ZERO).build().unwrap_err(),
        BuildError::ZeroTtl { setting: "ttl" }
    );
    assert_eq!(
        b().negative_ttl(Duration::ZERO).build().unwrap_err(),
        BuildError::ZeroTtl {
            setting: "negative_ttl"
        }
    );
    assert_eq!(
        b().ttl(Duration::MAX).build().unwrap_err(),
        BuildError::TtlTooLarge { setting: "ttl" }
    );
    // Settings of a remote tier on a cache without one would be ignored silently: refused.
    assert_eq!(
        b().l1_ttl(secs(1)).build().unwrap_err(),
        BuildError::NoRemoteTier { setting: "l1_ttl" }
    );
    assert_eq!(
        b().distributed_lock(secs(5)).build().unwrap_err(),
        BuildError::NoRemoteTier {
            setting: "distributed_lock"
        }
    );
    for j in [
        Jitter::Fraction(1.01),
        Jitter::Fraction(-0.1),
        Jitter::Spread(secs(11)),
    ] {
        let e = b().ttl(secs(10)).jitter(j).build().unwrap_err();
        assert!(matches!(e, BuildError::InvalidJitter(_)), "{j:?}");
        assert!(e.to_string().contains("jitter"));
    }
    assert!(matches!(
        b().jitter(Jitter::Fraction(0.1)).build().unwrap_err(),
        BuildError::InvalidJitter(_)
    ));
    assert_eq!(
        b().shards(0).build().unwrap_err(),
        BuildError::InvalidShards(0)
    );
    // Full jitter is allowed (0%..200% of the TTL, never zero).
    assert!(
        b().ttl(secs(10))
            .jitter(Jitter::Fraction(1.0))
            .build()
            .is_ok()
    );
    assert!(b().unbounded().build().is_ok());
}

#[test]
fn registry_lists_caches_by_name_and_forgets_dropped_ones() {
    let c: Cache<u64, u64> = Cache::builder().name("test.registry.a").build().unwrap();
    c.get_or_insert_with(&1, || 1);
    c.get(&1);
    let find = |name: &str| registry::caches().into_iter().find(|r| r.name == name);
    let r = find("test.registry.a").unwrap();
    assert_eq!((r.stats.hits, r.stats.misses, r.stats.entries), (1, 1, 1));
    drop(c);
    assert!(find("test.registry.a").is_none());
    let unnamed: Cache<u64, u64> = Cache::builder().build().unwrap();
    assert!(unnamed.name().starts_with("cache-"));
    assert!(find(unnamed.name()).is_some());
}

#[test]
fn statistics_add_up() {
    let c: Cache<u64, u64> = Cache::builder().capacity(10).shards(1).build().unwrap();
    for k in 0..20 {
        c.get_or_insert_with(&(k % 5), || k);
    }
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.loads, s.entries), (15, 5, 5, 5));
    assert!((s.hit_ratio() - 0.75).abs() < 1e-9);
    c.reset_stats();
    assert_eq!(c.stats().hits, 0);
    assert_eq!(c.stats().entries, 5);
}

#[test]
fn huge_capacities_do_not_overflow() {
    for policy in POLICIES {
        let c: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .capacity(u64::MAX)
            .build()
            .unwrap();
        c.insert(1, 1);
        assert_eq!(c.get(&1), Some(1), "{policy}");
        assert!(c.capacity() > 1 << 60);
        let w: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .shards(1)
            .max_weight(u64::MAX, |_, v: &u64| *v)
            .build()
            .unwrap();
        w.insert(1, u64::MAX);
        w.insert(2, 1 << 61);
        w.insert(3, 1 << 61);
        assert!(w.weight() <= w.capacity(), "{policy}");
    }
}
