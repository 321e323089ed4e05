//! The sharded store under threads: many threads hitting and inserting at once keep the
//! capacity exact and leave the policy's lists and the table in agreement, and an expired entry
//! is never returned while the clock passes its TTL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use foldhash::quality::FixedState;

use super::super::{Listener, Policy as Kind, StoreConfig, Weigher};
use super::{Policy, Sharded};
use crate::store::policy::{Lfu, Lru};

fn sharded<P: Policy>(capacity: u64, shards: usize) -> (Sharded<u64, u64, P>, Arc<AtomicU64>) {
    let evicted = Arc::new(AtomicU64::new(0));
    let ev = Arc::clone(&evicted);
    let s = Sharded::new(StoreConfig {
        policy: Kind::Lfu,
        capacity,
        estimated_items: usize::try_from(capacity).unwrap_or(1),
        shards: Some(shards),
        hasher: FixedState::with_seed(7),
        weigher: Weigher(None),
        listener: Listener(Arc::new(move |_| {
            ev.fetch_add(1, Ordering::Relaxed);
        })),
        removal: None,
        exact: false,
    });
    (s, evicted)
}

/// Every shard's lists hold exactly its table's nodes, and its weight is theirs.
fn consistent<P: Policy>(s: &Sharded<u64, u64, P>) {
    for m in &*s.shards {
        let shard = m.read();
        assert_eq!(shard.policy.held(), shard.len(), "lists and table agree");
        let weight: u64 = shard
            .slab
            .nodes
            .iter()
            .flatten()
            .map(|n| u64::from(n.weight))
            .sum();
        assert_eq!(weight, shard.weight);
        assert!(shard.weight <= shard.capacity);
    }
}

/// 8 threads, each on keys of its own (no replacements), hit and insert a skewed mix at once,
/// in shards of `capacity / 4`: exact below `EPOCH_FLOOR`, by epochs above it (most hits then
/// take only the read lock).
fn hammer<P: Policy>(capacity: u64) {
    let (s, evicted) = sharded::<P>(capacity, 4);
    let inserted = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for t in 0..8u64 {
            let (s, inserted) = (&s, &inserted);
            scope.spawn(move || {
                let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for _ in 0..20_000 {
                    // xorshift: a few hot keys and a long tail, 1,000 keys a thread.
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // (With 4,096 entries, keys 0..8,000 in all: evictions still happen.)
                    let k = t * 1_000 + if x % 4 == 0 { x % 1_000 } else { x % 40 };
                    match s.get(&k) {
                        Some(v) => assert_eq!(v, k * 10, "a hit returns its own value"),
                        None => {
                            drop(s.insert(k, k * 10));
                            inserted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    assert!(s.weight() <= capacity, "over capacity");
                }
            });
        }
    });
    consistent(&s);
    assert!(s.len() as u64 <= capacity);
    assert_eq!(
        inserted.load(Ordering::Relaxed),
        s.len() as u64 + evicted.load(Ordering::Relaxed),
        "every insert is held or was evicted"
    );
}

#[test]
fn many_threads_keep_capacity_exact_and_lists_whole_lfu() {
    hammer::<Lfu>(256);
    hammer::<Lfu>(4 * super::EPOCH_FLOOR);
}

#[test]
fn many_threads_keep_capacity_exact_and_lists_whole_lru() {
    hammer::<Lru>(256);
    hammer::<Lru>(4 * super::EPOCH_FLOOR);
}

#[test]
fn many_threads_keep_capacity_exact_and_lists_whole_fifo() {
    hammer::<crate::store::policy::Fifo>(256);
}

/// Hits of `lfu` from many threads while the clock passes the entries' TTL: once it has, no
/// thread reads them.
#[test]
fn an_expired_entry_is_never_returned() {
    let clock = crate::ManualClock::new();
    for kind in [Kind::Lfu, Kind::Lru] {
        // One shard of 4,096: its protected entries (`lfu`) and its list (`lru`) are ordered by
        // epochs, so most of these hits take only the read lock.
        let cache: crate::Cache<u64, u64> = crate::Cache::builder()
            .capacity(4_096)
            .shards(1)
            .policy(kind)
            .ttl(Duration::from_secs(60))
            .clock(crate::Clock::manual(&clock))
            .build()
            .expect("valid settings");
        for k in 0..500 {
            cache.insert(k, k);
        }
        let expired = AtomicBool::new(false);
        let stale = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let (cache, expired, stale) = (&cache, &expired, &stale);
                scope.spawn(move || {
                    for i in 0..50_000u64 {
                        // Read the flag first: if it was set, the clock had moved before this
                        // lookup began.
                        let after = expired.load(Ordering::SeqCst);
                        let hit = cache.get(&((i * 7 + t) % 500)).is_some();
                        if after && hit {
                            stale.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(5));
            clock.advance(Duration::from_secs(61));
            expired.store(true, Ordering::SeqCst);
        });
        assert_eq!(
            stale.load(Ordering::Relaxed),
            0,
            "{kind}: an expired entry was read"
        );
        clock.advance(Duration::from_secs(1));
    }
}

/// The store wires the epochs in: a 2,048-entry `lru` orders two entries hit in one epoch by
/// their first hits (the documented approximation; exact LRU would evict 1 first).
#[test]
fn a_large_lru_store_orders_hits_within_an_epoch_by_the_first() {
    let (s, _) = sharded::<Lru>(2_048, 1);
    for k in 0..2_048 {
        drop(s.insert(k, k * 10));
    }
    for k in [0, 1, 0] {
        assert_eq!(s.get(&k), Some(k * 10));
    }
    // 2,046 inserts evict keys 2 to 2,047; the next one the older of 0 and 1 by first hit.
    for k in 10_000..12_046 {
        drop(s.insert(k, k));
    }
    assert_eq!(s.len(), 2_048);
    drop(s.insert(20_000, 0));
    assert_eq!(s.get(&0), None, "0 was first hit first in the epoch");
    assert_eq!(s.get(&1), Some(10));
}
