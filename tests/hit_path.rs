//! The hit that the sharded stores (`lru`, `lfu`, `fifo`) serve under their read lock, with
//! only the entry's value cloned, gives the answers of the full check that every other lookup
//! makes: for every policy, a fresh entry is a counted hit, an expired one is never returned
//! (by the real clock and by a manual one), a read inside a load is recorded as a dependency,
//! and a tagged entry goes once its tag is invalidated. Caches of 10,000 entries, so that the
//! sharded stores take hits under the read lock (below 1,024 entries `lru` takes the write
//! lock on every hit), and of 100, so that the write-locked path gives the same answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{Cache, Clock, ManualClock, Policy, invalidate_tag, tag};

const POLICIES: [Policy; 4] = [Policy::S3Fifo, Policy::Lru, Policy::Lfu, Policy::Fifo];
const CAPACITIES: [u64; 2] = [10_000, 100];

fn each(mut f: impl FnMut(Policy, u64)) {
    for policy in POLICIES {
        for capacity in CAPACITIES {
            f(policy, capacity);
        }
    }
}

#[test]
fn a_fresh_entry_is_a_counted_hit_and_an_expired_one_is_never_returned() {
    each(|policy, capacity| {
        let long: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .capacity(capacity)
            .ttl(Duration::from_secs(3_600))
            .build()
            .unwrap();
        let short: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .capacity(capacity)
            .ttl(Duration::from_millis(40))
            .build()
            .unwrap();
        let forever: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .capacity(capacity)
            .build()
            .unwrap();
        for k in 0..50 {
            long.insert(k, k * 2);
            short.insert(k, k * 3);
            forever.insert(k, k * 4);
        }
        for _ in 0..3 {
            for k in 0..50 {
                assert_eq!(long.get(&k), Some(k * 2), "{policy:?}/{capacity}");
                assert_eq!(forever.get(&k), Some(k * 4), "{policy:?}/{capacity}");
            }
        }
        for c in [&long, &forever] {
            let s = c.stats();
            assert_eq!((s.hits, s.misses), (150, 0), "{policy:?}/{capacity}");
        }
        // Past the short TTL by the real (coarse) clock: no hit returns the entry.
        std::thread::sleep(Duration::from_millis(80));
        for k in 0..50 {
            assert_eq!(short.get(&k), None, "{policy:?}/{capacity}: key {k}");
            assert_eq!(long.get(&k), Some(k * 2), "{policy:?}/{capacity}");
        }
        let s = short.stats();
        assert_eq!((s.hits, s.misses), (0, 50), "{policy:?}/{capacity}");
    });
}

#[test]
fn a_manual_clock_is_obeyed_to_the_nanosecond() {
    each(|policy, capacity| {
        let clock = ManualClock::new();
        let c: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .capacity(capacity)
            .ttl(Duration::from_secs(5))
            .clock(Clock::manual(&clock))
            .build()
            .unwrap();
        for k in 0..50 {
            c.insert(k, k);
        }
        clock.advance(Duration::from_secs(5) - Duration::from_micros(1));
        for k in 0..50 {
            assert_eq!(c.get(&k), Some(k), "{policy:?}/{capacity}");
        }
        clock.advance(Duration::from_micros(1));
        for k in 0..50 {
            assert_eq!(c.get(&k), None, "{policy:?}/{capacity}");
        }
        assert_eq!(c.stats().hits, 50);
    });
}

#[test]
fn a_hit_inside_a_load_is_recorded_as_a_dependency() {
    each(|policy, capacity| {
        let inner: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .capacity(capacity)
            .ttl(Duration::from_secs(3_600))
            .build()
            .unwrap();
        let outer: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .capacity(capacity)
            .depends(true)
            .build()
            .unwrap();
        let loads = AtomicUsize::new(0);
        let page = |k: u64| {
            outer.get_or_insert_with(&k, || {
                loads.fetch_add(1, Ordering::SeqCst);
                // A hit of a fresh, untagged entry: the read lock's path outside a load.
                inner.get(&k).unwrap_or(0) + 1
            })
        };
        for k in 0..20 {
            inner.insert(k, k * 10);
        }
        for k in 0..20 {
            assert_eq!(page(k), k * 10 + 1);
            assert_eq!(page(k), k * 10 + 1);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 20, "{policy:?}/{capacity}");
        // A write of one inner entry reloads exactly the page that read it.
        inner.insert(7, 700);
        for k in 0..20 {
            let want = if k == 7 { 701 } else { k * 10 + 1 };
            assert_eq!(page(k), want, "{policy:?}/{capacity}");
        }
        assert_eq!(loads.load(Ordering::SeqCst), 21, "{policy:?}/{capacity}");
    });
}

#[test]
fn a_tagged_entry_goes_once_its_tag_is_invalidated() {
    let mut round = 0;
    each(|policy, capacity| {
        round += 1;
        let c: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .capacity(capacity)
            .build()
            .unwrap();
        let loads = AtomicUsize::new(0);
        let the_tag = format!("hit-path-{round}");
        let load = |k: u64| {
            c.get_or_insert_with(&k, || {
                loads.fetch_add(1, Ordering::SeqCst);
                if k.is_multiple_of(2) {
                    tag(the_tag.clone());
                }
                k
            })
        };
        for _ in 0..3 {
            for k in 0..20 {
                assert_eq!(load(k), k);
            }
        }
        assert_eq!(loads.load(Ordering::SeqCst), 20, "{policy:?}/{capacity}");
        invalidate_tag(&the_tag);
        for k in 0..20 {
            assert_eq!(
                c.get(&k).is_some(),
                !k.is_multiple_of(2),
                "{policy:?}/{capacity}"
            );
        }
    });
}
