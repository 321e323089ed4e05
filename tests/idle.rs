//! Time-to-idle (issue 16, item 2): an entry not read for `tti` expires, alone or with a `ttl`
//! (the earlier deadline wins). Driven by the manual clock, except for `#[cached(tti = ..)]`,
//! whose cache reads the real clock. Every assertion counts loader runs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use cache_runtime::tier::MemoryBackend;
use cache_runtime::{Cache, Clock, ManualClock, RemovalCause, cached, tag};

const SECOND: Duration = Duration::from_secs(1);

/// A cache of `u64`s with a 10 s time-to-idle (and `ttl`, if given) on a manual clock.
fn idle_cache(ttl: Option<Duration>) -> (Cache<u64, u64>, ManualClock) {
    let clock = ManualClock::new();
    let mut b = Cache::builder()
        .time_to_idle(10 * SECOND)
        .clock(Clock::manual(&clock));
    if let Some(ttl) = ttl {
        b = b.ttl(ttl);
    }
    (b.build().unwrap(), clock)
}

/// Loads `key` through `cache`, counting loader runs in `loads`.
fn load(cache: &Cache<u64, u64>, key: u64, loads: &AtomicUsize) -> u64 {
    cache.get_or_insert_with(&key, || {
        loads.fetch_add(1, Ordering::SeqCst);
        key * 10
    })
}

#[test]
fn an_entry_read_every_5s_stays_and_one_left_unread_for_10s_expires() {
    let (cache, clock) = idle_cache(None);
    let loads = AtomicUsize::new(0);
    assert_eq!(load(&cache, 1, &loads), 10);
    for _ in 0..20 {
        clock.advance(5 * SECOND);
        assert_eq!(load(&cache, 1, &loads), 10);
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "read every 5 s: never reloaded"
    );
    clock.advance(10 * SECOND);
    assert_eq!(cache.get(&1), None, "unread for 10 s: expired");
    assert_eq!(load(&cache, 1, &loads), 10);
    assert_eq!(loads.load(Ordering::SeqCst), 2, "the loader ran again");
    let s = cache.stats();
    assert_eq!((s.expirations, s.hits, s.loads), (1, 20, 2));
}

#[test]
fn an_insert_starts_the_idle_period_and_a_read_just_before_it_ends_restarts_it() {
    let (cache, clock) = idle_cache(None);
    cache.insert(1, 1);
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(cache.get(&1), Some(1));
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(cache.get(&1), Some(1));
    clock.advance(10 * SECOND);
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.stats().expirations, 1);
    assert!(
        cache.is_empty(),
        "the read that found it expired removed it"
    );
}

#[test]
fn with_a_ttl_the_earlier_deadline_wins_both_ways() {
    let loads = AtomicUsize::new(0);
    // Read every 5 s: the 30 s TTL ends it, though it was read 5 s before.
    let (cache, clock) = idle_cache(Some(30 * SECOND));
    load(&cache, 1, &loads);
    for _ in 0..5 {
        clock.advance(5 * SECOND);
        load(&cache, 1, &loads);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    clock.advance(5 * SECOND); // 30 s after the load, 5 s after the last read
    assert_eq!(cache.get(&1), None, "the TTL wins");
    load(&cache, 1, &loads);
    assert_eq!(loads.load(Ordering::SeqCst), 2);

    // Left unread: the 10 s idle deadline comes before the TTL.
    let (cache, clock) = idle_cache(Some(30 * SECOND));
    load(&cache, 2, &loads);
    clock.advance(9 * SECOND);
    load(&cache, 2, &loads);
    clock.advance(9 * SECOND);
    load(&cache, 2, &loads);
    assert_eq!(loads.load(Ordering::SeqCst), 3);
    clock.advance(10 * SECOND); // 28 s: within the TTL, but idle for 10 s
    assert_eq!(cache.get(&2), None, "the idle deadline wins");
    load(&cache, 2, &loads);
    assert_eq!(loads.load(Ordering::SeqCst), 4);
    assert_eq!(cache.stats().expirations, 1);
}

#[test]
fn negative_entries_expire_when_left_unread() {
    let clock = ManualClock::new();
    let users: Cache<u64, String, &str> = Cache::builder()
        .negative_ttl(Duration::from_secs(3600))
        .time_to_idle(10 * SECOND)
        .clock(Clock::manual(&clock))
        .build()
        .unwrap();
    let loads = AtomicUsize::new(0);
    let find = || {
        users.get_or_load(&404, || {
            loads.fetch_add(1, Ordering::SeqCst);
            Err("no such user")
        })
    };
    assert_eq!(find(), Err("no such user"));
    for _ in 0..10 {
        clock.advance(5 * SECOND);
        assert_eq!(find(), Err("no such user"));
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "the negative entry is read: kept"
    );
    assert_eq!(users.stats().negative_hits, 10);
    clock.advance(10 * SECOND);
    assert_eq!(find(), Err("no such user"));
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "unread for 10 s: loaded again"
    );
    assert_eq!(users.stats().expirations, 1);
}

#[test]
fn the_removal_listener_hears_expired_whatever_removes_the_entry() {
    let clock = ManualClock::new();
    let log: Arc<Mutex<Vec<(u64, RemovalCause)>>> = Arc::default();
    let seen = Arc::clone(&log);
    let cache: Cache<u64, u64> = Cache::builder()
        .time_to_idle(10 * SECOND)
        .clock(Clock::manual(&clock))
        .on_removal(move |k: &u64, _: &u64, why| seen.lock().unwrap().push((*k, why)))
        .build()
        .unwrap();
    for k in 1..=4 {
        cache.insert(k, k);
    }
    clock.advance(5 * SECOND);
    assert_eq!(cache.get(&4), Some(4)); // read: 5 s more for this one
    clock.advance(5 * SECOND);
    // 1: found expired by a read; 2: replaced after it expired; 3: swept; 4: live, removed.
    assert_eq!(cache.get(&1), None);
    cache.insert(2, 20);
    assert_eq!(cache.purge_expired(), 1);
    assert!(cache.remove(&4));
    let mut told = log.lock().unwrap().clone();
    told.sort_unstable_by_key(|(k, _)| *k);
    assert_eq!(
        told,
        [
            (1, RemovalCause::Expired),
            (2, RemovalCause::Expired),
            (3, RemovalCause::Expired),
            (4, RemovalCause::Explicit),
        ]
    );
    assert_eq!(cache.stats().expirations, 2, "the read's and the sweep's");
    assert_eq!(cache.len(), 1);
}

#[test]
fn readers_agree_an_idle_entry_is_gone() {
    let (cache, clock) = idle_cache(None);
    cache.insert(1, 1);
    cache.insert(2, 2);
    clock.advance(10 * SECOND);
    assert!(!cache.contains_key(&1));
    assert_eq!(cache.iter().count(), 0);
    assert_eq!(cache.get_entry(&2), None);
}

#[test]
fn a_tagged_entry_keeps_its_tags_and_its_idle_deadline() {
    let (cache, clock) = idle_cache(None);
    let loads = AtomicUsize::new(0);
    let load_tagged = |k: u64| {
        cache.get_or_insert_with(&k, || {
            tag("catalog");
            loads.fetch_add(1, Ordering::SeqCst);
            k
        })
    };
    load_tagged(1);
    load_tagged(2);
    for _ in 0..4 {
        clock.advance(5 * SECOND);
        load_tagged(1);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 2, "key 1 read every 5 s");
    assert_eq!(cache.get(&2), None, "key 2 unread for 20 s");
    cache.invalidate_tag("catalog");
    assert_eq!(cache.get(&1), None, "the tag still invalidates");
    load_tagged(1);
    assert_eq!(loads.load(Ordering::SeqCst), 3);
    assert_eq!(
        cache.stats().expirations,
        1,
        "the invalidation is not an expiry"
    );
}

#[test]
fn an_entry_filled_from_the_remote_tier_expires_when_left_unread() {
    let backend = Arc::new(MemoryBackend::new());
    let clock = ManualClock::new();
    let build = || -> Cache<u64, u64> {
        Cache::builder()
            .name("idle-remote")
            .time_to_idle(10 * SECOND)
            .clock(Clock::manual(&clock))
            .remote(backend.clone(), "idle-test")
            .l1_ttl(Duration::from_secs(3600))
            .build()
            .unwrap()
    };
    let (a, b) = (build(), build());
    let loads = AtomicUsize::new(0);
    load(&a, 1, &loads);
    assert_eq!(load(&b, 1, &loads), 10, "from the remote tier");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    clock.advance(5 * SECOND);
    assert_eq!(b.get(&1), Some(10)); // read at 5 s
    clock.advance(10 * SECOND);
    assert_eq!(b.get(&1), None, "b's copy left unread for 10 s");
    assert_eq!(load(&b, 1, &loads), 10);
    let s = b.stats();
    assert_eq!((s.remote_hits, s.expirations), (2, 1));
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "the remote tier answered both"
    );
}

#[test]
fn eight_threads_hitting_a_tti_cache() {
    let (cache, clock) = idle_cache(None);
    let loads = AtomicUsize::new(0);
    const KEYS: u64 = 200;
    const THREADS: usize = 8;
    let barrier = Barrier::new(THREADS + 1);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (cache, loads, barrier) = (&cache, &loads, &barrier);
            s.spawn(move || {
                // Rounds of reads of every key, 5 s apart; then one round after 10 s unread.
                for _ in 0..11 {
                    barrier.wait();
                    for i in 0..KEYS * 20 {
                        let k = (i + t as u64 * 37) % KEYS;
                        assert_eq!(load(cache, k, loads), k * 10);
                    }
                    barrier.wait();
                }
            });
        }
        for round in 0..11 {
            barrier.wait(); // the threads read
            barrier.wait();
            if round < 9 {
                clock.advance(5 * SECOND);
            } else if round == 9 {
                assert_eq!(loads.load(Ordering::SeqCst), KEYS as usize, "all kept");
                clock.advance(10 * SECOND);
            }
        }
    });
    // Each key loaded once, then once more after it went idle: single-flight holds.
    assert_eq!(loads.load(Ordering::SeqCst), 2 * KEYS as usize);
    let s = cache.stats();
    assert_eq!(s.expirations, KEYS);
    assert_eq!(s.hits + s.misses, 11 * THREADS as u64 * KEYS * 20);
}

static SYNC_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(tti = "1s")]
fn idle_sync(x: u64) -> u64 {
    SYNC_LOADS.fetch_add(1, Ordering::SeqCst);
    x + 1
}

static ASYNC_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(tti = "1s", ttl = "1h")]
async fn idle_async(x: u64) -> u64 {
    ASYNC_LOADS.fetch_add(1, Ordering::SeqCst);
    x + 1
}

/// The attribute's cache reads the real (coarse) clock: read every 100 ms for 1.2 s, then left
/// unread for 1.5 s. The margins are wide: a reader delayed by 900 ms would still find it.
#[test]
fn cached_tti_on_a_sync_fn() {
    assert_eq!(idle_sync(7), 8);
    for _ in 0..12 {
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(idle_sync(7), 8);
    }
    assert_eq!(SYNC_LOADS.load(Ordering::SeqCst), 1);
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(idle_sync(7), 8);
    assert_eq!(SYNC_LOADS.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn cached_tti_on_an_async_fn() {
    assert_eq!(idle_async(7).await, 8);
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(idle_async(7).await, 8);
    }
    assert_eq!(ASYNC_LOADS.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(idle_async(7).await, 8);
    assert_eq!(ASYNC_LOADS.load(Ordering::SeqCst), 2);
}

#[test]
fn a_zero_time_to_idle_is_refused() {
    let err = Cache::<u64, u64>::builder()
        .time_to_idle(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "`time_to_idle` must be longer than zero");
}
