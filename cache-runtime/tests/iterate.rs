//! `Cache::iter` (a snapshot that holds no lock while the caller's code runs) and
//! `Cache::invalidate_if` (removal by predicate, an explicit invalidation like `remove`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{Cache, Clock, ManualClock, Policy};

const POLICIES: [Policy; 4] = [Policy::S3Fifo, Policy::Lru, Policy::Lfu, Policy::Fifo];

/// Runs `f` on a thread, failing (instead of hanging) if it deadlocks.
fn within_10s(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("deadlocked (or panicked)");
}

#[test]
fn iter_visits_each_live_value_once_and_skips_negatives_and_expired_entries() {
    for policy in POLICIES {
        let clock = ManualClock::new();
        let c: Cache<u64, u64, String> = Cache::builder()
            .policy(policy)
            .capacity(10_000)
            .ttl(Duration::from_secs(60))
            .negative_ttl(Duration::from_secs(60))
            .clock(Clock::manual(&clock))
            .build()
            .unwrap();
        for k in 0..1_000 {
            c.insert(k, k * 2);
        }
        c.insert_negative(5_000, "gone".into());
        clock.advance(Duration::from_secs(30));
        // Younger entries, alive after the first thousand expire.
        for k in 1_000..1_100 {
            c.insert(k, k * 2);
        }
        let seen: Vec<(u64, u64)> = c.iter().collect();
        assert_eq!(seen.len(), 1_100, "{policy}");
        let keys: HashSet<u64> = seen.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys.len(), 1_100, "{policy}: a key visited twice");
        assert!(seen.iter().all(|(k, v)| *v == k * 2), "{policy}");
        assert!(!keys.contains(&5_000), "{policy}: a negative entry");
        clock.advance(Duration::from_secs(31));
        let live: Vec<u64> = c.iter().map(|(k, _)| k).collect();
        assert_eq!(live.len(), 100, "{policy}: expired entries visited");
        assert!(live.iter().all(|k| (1_000..1_100).contains(k)), "{policy}");
        // Iterating is not a lookup.
        let s = c.stats();
        assert_eq!((s.hits, s.misses), (0, 0), "{policy}");
    }
}

#[test]
fn the_caller_may_use_the_cache_while_iterating() {
    for policy in POLICIES {
        within_10s(move || {
            // One shard: every key shares the lock a held iterator would keep.
            let c: Cache<u64, u64> = Cache::builder()
                .policy(policy)
                .shards(1)
                .capacity(1_000)
                .build()
                .unwrap();
            for k in 0..100 {
                c.insert(k, k);
            }
            let mut visited = 0;
            for (k, v) in c.iter() {
                visited += 1;
                assert_eq!(c.get(&k), Some(v));
                c.insert(k, v + 1);
                assert!(c.remove(&(k + 1_000)) || k < 1_000);
                assert_eq!(c.invalidate_if(|_, _| false), 0);
            }
            assert_eq!(visited, 100, "{policy}");
            assert!((0..100).all(|k| c.get(&k) == Some(k + 1)), "{policy}");
        });
    }
}

#[test]
fn entries_present_throughout_are_visited_once_under_concurrent_writers() {
    for policy in POLICIES {
        let c: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .capacity(100_000)
            .build()
            .unwrap();
        for k in 0..1_000 {
            c.insert(k, k);
        }
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (c, stop) = (&c, &stop);
                s.spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let k = 1_000_000 + t * 1_000_000 + i % 5_000;
                        c.insert(k, k);
                        c.remove(&(k + 7));
                        i += 1;
                    }
                });
            }
            for _ in 0..20 {
                let stable: Vec<u64> = c.iter().map(|(k, _)| k).filter(|k| *k < 1_000).collect();
                let distinct: HashSet<u64> = stable.iter().copied().collect();
                assert_eq!((stable.len(), distinct.len()), (1_000, 1_000), "{policy}");
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
}

#[test]
fn invalidate_if_removes_the_matching_values_and_counts_them() {
    for policy in POLICIES {
        let c: Cache<u64, u64, String> = Cache::builder()
            .policy(policy)
            .capacity(10_000)
            .negative_ttl(Duration::from_secs(60))
            .build()
            .unwrap();
        for k in 0..1_000 {
            c.insert(k, k);
        }
        c.insert_negative(2_000, "gone".into());
        let judged = AtomicUsize::new(0);
        let removed = c.invalidate_if(|k, v| {
            judged.fetch_add(1, Ordering::Relaxed);
            assert_eq!(k, v);
            k % 3 == 0
        });
        assert_eq!(removed, 334, "{policy}");
        // Every value judged once, the negative entry not at all (and kept).
        assert_eq!(judged.load(Ordering::Relaxed), 1_000, "{policy}");
        assert_eq!(c.len(), 667, "{policy}");
        assert!(
            (0..1_000).all(|k| c.contains_key(&k) == (k % 3 != 0)),
            "{policy}"
        );
        assert!(c.get_entry(&2_000).is_some(), "{policy}");
        assert_eq!(c.invalidate_if(|k, _| k % 3 == 0), 0, "{policy}");
    }
}

#[test]
fn invalidate_if_reloads_what_was_computed_from_the_removed_entries() {
    let product: Cache<u64, String> = Cache::builder().build().unwrap();
    let page: Cache<u64, String> = Cache::builder().build().unwrap();
    let page_loads = AtomicUsize::new(0);
    let page_of = |id: u64| {
        page.get_or_insert_with(&id, || {
            page_loads.fetch_add(1, Ordering::SeqCst);
            let p = product.get_or_insert_with(&id, || format!("product {id}"));
            format!("page of {p}")
        })
    };
    for id in 0..10 {
        page_of(id);
    }
    assert_eq!(page_loads.load(Ordering::SeqCst), 10);
    // Products 0, 2, 4, 6, 8 change: their pages reload, the others stay.
    assert_eq!(product.invalidate_if(|id, _| id % 2 == 0), 5);
    for id in 0..10 {
        page_of(id);
    }
    assert_eq!(page_loads.load(Ordering::SeqCst), 15);
    for id in 0..10 {
        page_of(id);
    }
    assert_eq!(page_loads.load(Ordering::SeqCst), 15);
}

#[cfg(feature = "serde")]
#[test]
fn invalidate_if_deletes_the_remote_copies() {
    use cache_runtime::tier::MemoryBackend;
    use std::sync::Arc;
    let backend = Arc::new(MemoryBackend::new());
    let c: Cache<u64, u64> = Cache::builder()
        .name("iterate.remote")
        .remote(backend.clone(), "iterate")
        .build()
        .unwrap();
    for k in 0..10 {
        c.insert(k, k);
    }
    assert_eq!(c.invalidate_if(|k, _| *k < 4), 4);
    // Another process (a second cache on the backend) finds only the others.
    let other: Cache<u64, u64> = Cache::builder()
        .name("iterate.remote")
        .remote(backend.clone(), "iterate")
        .build()
        .unwrap();
    let loads = AtomicUsize::new(0);
    for k in 0..10 {
        other.get_or_insert_with(&k, || {
            loads.fetch_add(1, Ordering::SeqCst);
            k
        });
    }
    assert_eq!(loads.load(Ordering::SeqCst), 4);
}
