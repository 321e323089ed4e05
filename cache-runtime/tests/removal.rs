//! The removal listener: each value that leaves the cache is told once, with its cause, outside
//! every lock; a panicking listener breaks nothing; a hit tells nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_runtime::{Cache, CacheBuilder, Clock, ManualClock, Policy, RemovalCause, tag};

const POLICIES: [Policy; 4] = [Policy::S3Fifo, Policy::Lru, Policy::Lfu, Policy::Fifo];

type Log = Arc<Mutex<Vec<(u64, u64, RemovalCause)>>>;

/// A builder whose listener logs `(key, value, cause)`.
fn logged(policy: Policy) -> (CacheBuilder<u64, u64>, Log) {
    let log: Log = Arc::default();
    let seen = Arc::clone(&log);
    let b = Cache::builder()
        .policy(policy)
        .shards(1)
        .on_removal(move |k: &u64, v: &u64, why| seen.lock().unwrap().push((*k, *v, why)));
    (b, log)
}

fn counts(log: &Log) -> HashMap<RemovalCause, usize> {
    let mut out = HashMap::new();
    for (_, _, why) in log.lock().unwrap().iter() {
        *out.entry(*why).or_default() += 1;
    }
    out
}

fn take(log: &Log) -> Vec<(u64, u64, RemovalCause)> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn a_scripted_sequence_tells_each_cause() {
    use RemovalCause::{Evicted, Expired, Explicit, Replaced};
    for policy in POLICIES {
        let clock = ManualClock::new();
        let (b, log) = logged(policy);
        let c = b
            .capacity(100)
            .ttl(Duration::from_secs(60))
            .clock(Clock::manual(&clock))
            .build()
            .unwrap();
        // Replaced: by an insert, and by a load after a removal... of another key.
        c.insert(1, 10);
        c.insert(1, 11);
        assert_eq!(take(&log), [(1, 10, Replaced)], "{policy}");
        // Explicit: remove, invalidate_if, clear.
        c.remove(&1);
        assert_eq!(take(&log), [(1, 11, Explicit)], "{policy}");
        for k in 2..6 {
            c.insert(k, k * 10);
        }
        assert_eq!(c.invalidate_if(|k, _| *k < 4), 2);
        let mut gone = take(&log);
        gone.sort_unstable_by_key(|g| g.0);
        assert_eq!(gone, [(2, 20, Explicit), (3, 30, Explicit)], "{policy}");
        c.clear();
        let mut gone = take(&log);
        gone.sort_unstable_by_key(|g| g.0);
        assert_eq!(gone, [(4, 40, Explicit), (5, 50, Explicit)], "{policy}");
        // Explicit: a tag invalidated, told when the entry is next looked up.
        c.get_or_insert_with(&6, || {
            tag("removal:t");
            60
        });
        c.invalidate_tag("removal:t");
        assert!(
            take(&log).is_empty(),
            "{policy}: a tag's invalidation is O(1)"
        );
        assert_eq!(c.get(&6), None);
        assert_eq!(take(&log), [(6, 60, Explicit)], "{policy}");
        // Expired: found by a read, replaced by a load, swept.
        for k in 7..10 {
            c.insert(k, k * 10);
        }
        clock.advance(Duration::from_secs(61));
        assert_eq!(c.get(&7), None);
        assert_eq!(take(&log), [(7, 70, Expired)], "{policy}");
        c.insert(8, 81);
        assert_eq!(take(&log), [(8, 80, Expired)], "{policy}");
        assert_eq!(c.purge_expired(), 1);
        assert_eq!(take(&log), [(9, 90, Expired)], "{policy}");
        // Evicted: 100 more entries than the cache holds.
        c.clear();
        take(&log);
        for k in 0..200 {
            c.insert(1_000 + k, k);
        }
        let evicted = 200 - c.len();
        assert!(evicted >= 100, "{policy}");
        let n = counts(&log);
        assert_eq!(n.get(&Evicted), Some(&evicted), "{policy}: {n:?}");
        assert_eq!(n.len(), 1, "{policy}: {n:?}");
        assert_eq!(c.stats().evictions, evicted as u64, "{policy}");
    }
}

#[test]
fn a_replacement_is_not_an_eviction() {
    for policy in POLICIES {
        let (b, log) = logged(policy);
        let c = b.capacity(1_000).build().unwrap();
        for round in 0..5 {
            for k in 0..100 {
                c.insert(k, round);
            }
        }
        let n = counts(&log);
        assert_eq!(
            n.get(&RemovalCause::Replaced),
            Some(&400),
            "{policy}: {n:?}"
        );
        assert_eq!(n.len(), 1, "{policy}: {n:?}");
        assert_eq!(c.stats().evictions, 0, "{policy}");
    }
}

#[test]
fn dependants_of_an_invalidated_entry_are_told_as_explicit() {
    let product: Cache<u64, u64> = Cache::builder().build().unwrap();
    let (b, log) = logged(Policy::Lru);
    let page = b.build().unwrap();
    page.get_or_insert_with(&1, || product.get_or_insert_with(&1, || 5) * 2);
    product.remove(&1);
    assert_eq!(page.get(&1), None);
    assert_eq!(take(&log), [(1, 10, RemovalCause::Explicit)]);
}

#[test]
fn negative_entries_and_hits_are_not_told() {
    let calls = Arc::new(AtomicUsize::new(0));
    let n = Arc::clone(&calls);
    let c: Cache<u64, u64, String> = Cache::builder()
        .negative_ttl(Duration::from_secs(60))
        .on_removal(move |_, _, _| {
            n.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    c.insert_negative(1, "gone".into());
    c.remove(&1);
    c.insert(2, 2);
    for _ in 0..1_000 {
        assert_eq!(c.get(&2), Some(2));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    c.remove(&2);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

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
fn the_listener_runs_outside_every_lock_and_may_use_the_cache() {
    for policy in POLICIES {
        within_10s(move || {
            let slot: Arc<Mutex<Option<Cache<u64, u64>>>> = Arc::default();
            let me = Arc::clone(&slot);
            let calls = Arc::new(AtomicUsize::new(0));
            let n = Arc::clone(&calls);
            let c: Cache<u64, u64> = Cache::builder()
                .policy(policy)
                .shards(1)
                .capacity(50)
                .on_removal(move |k, v, _| {
                    n.fetch_add(1, Ordering::SeqCst);
                    let c = me.lock().unwrap().clone().unwrap();
                    // Same shard, same store, same flights: all free.
                    let _ = c.get(&(k + 1));
                    c.remove(&(k + 1_000_000));
                    assert!(c.iter().count() <= 50);
                    let _ = *v;
                })
                .build()
                .unwrap();
            *slot.lock().unwrap() = Some(c.clone());
            // Evictions from loads (inside single-flight) and from inserts.
            for k in 0..200 {
                c.get_or_insert_with(&k, || k);
                c.insert(k, k + 1);
            }
            c.clear();
            assert!(calls.load(Ordering::SeqCst) >= 200, "{policy}");
            // The listener's cache holds itself: break the cycle.
            slot.lock().unwrap().take();
        });
    }
}

#[test]
fn a_panicking_listener_poisons_nothing_and_loses_no_accounting() {
    for policy in POLICIES {
        let calls = Arc::new(AtomicUsize::new(0));
        let n = Arc::clone(&calls);
        let c: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .shards(1)
            .capacity(10)
            .on_removal(move |_, _, _| {
                n.fetch_add(1, Ordering::SeqCst);
                panic!("listener bug");
            })
            .build()
            .unwrap();
        for k in 0..100 {
            c.get_or_insert_with(&k, || k);
        }
        for k in 0..100 {
            c.insert(k, k);
        }
        c.remove(&99);
        // Every removal was told (each call panicked), counted, and the cache works on.
        let s = c.stats();
        assert!(s.evictions >= 170, "{policy}: {s:?}");
        let told = calls.load(Ordering::SeqCst) as u64;
        assert_eq!(told, 200 - c.len() as u64, "{policy}");
        assert_eq!(c.get_or_insert_with(&5_000, || 1), 1, "{policy}");
        let (k, v) = c.iter().next().unwrap();
        assert_eq!(c.get(&k), Some(v), "{policy}");
        c.clear();
        assert!(c.is_empty(), "{policy}");
    }
}

#[test]
fn each_value_is_told_exactly_once_under_8_threads() {
    for policy in POLICIES {
        let seen: Arc<Mutex<HashMap<u64, (u64, RemovalCause)>>> = Arc::default();
        let dup = Arc::new(AtomicBool::new(false));
        let (s2, d2) = (Arc::clone(&seen), Arc::clone(&dup));
        let c: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .capacity(500)
            .on_removal(move |k, v, why| {
                if s2.lock().unwrap().insert(*v, (*k, why)).is_some() {
                    d2.store(true, Ordering::SeqCst);
                }
            })
            .build()
            .unwrap();
        // Values are unique: thread t writes t * 1e6 + i.
        let written = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let (c, written) = (&c, &written);
                s.spawn(move || {
                    for i in 0..2_000u64 {
                        let k = i % 300 + t * 1_000;
                        let v = t * 1_000_000 + i;
                        match i % 4 {
                            0..=1 => c.insert(k, v),
                            2 => {
                                c.get_or_insert_with(&k, || v);
                            }
                            _ => {
                                c.remove(&k);
                                continue;
                            }
                        }
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        // Loads that found a value wrote nothing: count what the cache holds and was told.
        let held = c.len();
        c.clear();
        assert!(!dup.load(Ordering::SeqCst), "{policy}: a value told twice");
        let seen = seen.lock().unwrap();
        let stored_values: usize = seen.len();
        assert!(stored_values >= held, "{policy}");
        let mut by_cause: HashMap<RemovalCause, usize> = HashMap::new();
        for (v, (k, why)) in seen.iter() {
            // Each value under its own key.
            assert_eq!(k / 1_000, v / 1_000_000, "{policy}");
            *by_cause.entry(*why).or_default() += 1;
        }
        // Thread-local keys: every removal is a replacement, an explicit removal or an eviction.
        assert!(!by_cause.contains_key(&RemovalCause::Expired), "{policy}");
        assert_eq!(
            by_cause.get(&RemovalCause::Evicted).copied().unwrap_or(0) as u64,
            c.stats().evictions,
            "{policy}: {by_cause:?}"
        );
        // Every value written and kept by the cache was told once: the inserts' values all, and
        // the loads' values that were stored.
        let inserts = 8 * 1_000; // i % 4 in 0..=1, 2,000 rounds, 8 threads
        let told_inserts = seen.keys().filter(|v| (*v % 1_000_000) % 4 < 2).count();
        assert_eq!(told_inserts, inserts, "{policy}");
    }
}

mod macro_form {
    use super::*;
    use cache_runtime::{cache_evict, cache_put, cached};

    static LOG: Mutex<Vec<(u64, String, RemovalCause)>> = Mutex::new(Vec::new());

    #[allow(clippy::ptr_arg)] // the listener's signature: `&V`
    fn log_removal(id: &u64, name: &String, why: RemovalCause) {
        LOG.lock().unwrap().push((*id, name.clone(), why));
    }

    #[cached(capacity = 3, policy = "fifo", ttl = "1h", on_removal = log_removal)]
    fn user(id: u64) -> String {
        format!("user{id}")
    }

    #[cache_put(user, key = id)]
    fn rename(id: u64, name: &str) -> String {
        name.to_owned()
    }

    #[cache_evict(user, key = id)]
    fn delete(id: u64) {}

    static CLOSURE_CALLS: AtomicUsize = AtomicUsize::new(0);

    #[cached(key = id, key_type = u64, on_removal = |_: &u64, _: &u64, _| {
        CLOSURE_CALLS.fetch_add(1, Ordering::SeqCst);
    })]
    fn square(id: u64) -> u64 {
        id * id
    }

    #[test]
    fn the_attribute_tells_evictions_replacements_and_evictions_by_attribute() {
        use RemovalCause::{Evicted, Explicit, Replaced};
        for id in 1..=4 {
            user(id); // the fourth evicts the first
        }
        rename(2, "ada");
        delete(3);
        assert_eq!(user(2), "ada");
        assert_eq!(
            *LOG.lock().unwrap(),
            [
                (1, "user1".to_string(), Evicted),
                (2, "user2".to_string(), Replaced),
                (3, "user3".to_string(), Explicit),
            ]
        );
        square(3);
        __cache_of_square().remove(&3);
        assert_eq!(CLOSURE_CALLS.load(Ordering::SeqCst), 1);
    }
}
