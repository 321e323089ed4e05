//! Batch loading (issue 16, item 3): `Cache::get_or_load_many` and its forms. The hits of a
//! batch come from the cache, its misses go to ONE loader call, and each missing key joins its
//! single-flight: overlapping batches and single-key misses load each key once. Keys the loader
//! does not return are "not found" (cached with `negative_ttl`) or left uncached.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cache_runtime::Cache;
use cache_runtime::tier::MemoryBackend;

/// A loader that counts its calls and how many times it was asked for each key.
#[derive(Default)]
struct Source {
    calls: AtomicUsize,
    asked: Mutex<HashMap<u64, usize>>,
}

impl Source {
    fn load(&self, keys: &[u64]) -> HashMap<u64, u64> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut asked = self.asked.lock().unwrap();
        for k in keys {
            *asked.entry(*k).or_default() += 1;
        }
        keys.iter().map(|k| (*k, k * 10)).collect()
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn most_asked(&self) -> usize {
        self.asked
            .lock()
            .unwrap()
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

/// A batch of `keys` that the cache (or its remote tier) answers without loading.
fn without_loads(cache: &Cache<u64, u64>, keys: std::ops::Range<u64>) -> HashMap<u64, u64> {
    cache
        .get_or_load_many(keys, |_| -> Result<HashMap<u64, u64>, Infallible> {
            unreachable!("every key is cached")
        })
        .unwrap()
}

/// The loader of the remote-tier tests: ten times each missing key.
fn tens(missing: Vec<u64>) -> Result<HashMap<u64, u64>, Infallible> {
    Ok(missing.into_iter().map(|k| (k, k * 10)).collect())
}

/// One process's cache `name` on the tier `backend` (each call: another process).
fn node_on(backend: &Arc<MemoryBackend>, name: &str) -> Cache<u64, u64> {
    Cache::builder()
        .name(name)
        .remote(backend.clone(), name)
        .build()
        .unwrap()
}

fn cache() -> Cache<u64, u64> {
    Cache::builder().capacity(100_000).build().unwrap()
}

/// Waits (real time, bounded) until a caller waits on one of the cache's loads in flight.
fn wait_for_one_waiter(cache: &Cache<u64, u64>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.waiting_on_loads() < 1 {
        assert!(
            Instant::now() < deadline,
            "the single-key caller never joined"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_thousand_keys_thirty_percent_cached_one_loader_call_with_the_700_misses() {
    let cache = cache();
    for k in (0..1_000u64).filter(|k| k % 10 < 3) {
        cache.insert(k, k * 10);
    }
    cache.reset_stats();
    let mut calls = Vec::new();
    let got = cache
        .get_or_load_many(0..1_000u64, |missing| {
            calls.push(missing.clone());
            Ok::<_, Infallible>(missing.into_iter().map(|k| (k, k * 10)).collect())
        })
        .unwrap();
    assert_eq!(calls.len(), 1, "one loader call");
    let mut asked = calls.pop().unwrap();
    asked.sort_unstable();
    let expected: Vec<u64> = (0..1_000u64).filter(|k| k % 10 >= 3).collect();
    assert_eq!(asked, expected, "the loader gets exactly the 700 misses");
    assert_eq!(got.len(), 1_000);
    assert!(got.iter().all(|(k, v)| *v == k * 10));
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.loads), (300, 700, 1));
    // Every key is cached now.
    assert_eq!(without_loads(&cache, 0..1_000), got);
}

#[test]
fn duplicate_keys_are_loaded_and_answered_once() {
    let cache = cache();
    let source = Source::default();
    let got = cache
        .get_or_load_many([1, 2, 1, 2, 3], |m| Ok::<_, Infallible>(source.load(&m)))
        .unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(source.most_asked(), 1);
}

#[test]
fn an_empty_batch_and_an_all_hit_batch_do_not_call_the_loader() {
    let cache = cache();
    cache.insert(1, 10);
    let source = Source::default();
    let none = cache
        .get_or_load_many(Vec::<u64>::new(), |m| Ok::<_, Infallible>(source.load(&m)))
        .unwrap();
    assert!(none.is_empty());
    let hit = cache
        .get_or_load_many([1], |m| Ok::<_, Infallible>(source.load(&m)))
        .unwrap();
    assert_eq!(hit, HashMap::from([(1, 10)]));
    assert_eq!(source.calls(), 0);
}

#[test]
fn eight_concurrent_batches_overlapping_on_half_their_keys_load_each_key_once() {
    for _ in 0..5 {
        let cache = Arc::new(cache());
        let source = Arc::new(Source::default());
        let barrier = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8u64)
            .map(|b| {
                let (cache, source, barrier) = (cache.clone(), source.clone(), barrier.clone());
                thread::spawn(move || {
                    // Batch b: 200 keys, the upper half shared with batch b + 1.
                    let keys: Vec<u64> = (b * 100..b * 100 + 200).collect();
                    barrier.wait();
                    let got = cache
                        .get_or_load_many(keys.clone(), |missing| {
                            let out = source.load(&missing);
                            thread::sleep(Duration::from_millis(5));
                            Ok::<_, Infallible>(out)
                        })
                        .unwrap();
                    assert_eq!(got.len(), keys.len());
                    assert!(keys.iter().all(|k| got[k] == k * 10));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(source.most_asked(), 1, "a key loaded twice");
        assert_eq!(source.asked.lock().unwrap().len(), 900);
        assert!(source.calls() <= 8);
        assert_eq!(cache.loads_in_flight(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_async_batches_load_each_key_once() {
    let cache = Arc::new(cache());
    let source = Arc::new(Source::default());
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8u64)
        .map(|b| {
            let (cache, source, barrier) = (cache.clone(), source.clone(), barrier.clone());
            tokio::spawn(async move {
                let keys: Vec<u64> = (b * 100..b * 100 + 200).collect();
                barrier.wait().await;
                let got = cache
                    .get_or_load_many_async(keys.clone(), |missing| {
                        let source = source.clone();
                        async move {
                            let out = source.load(&missing);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            Ok::<_, Infallible>(out)
                        }
                    })
                    .await
                    .unwrap();
                assert_eq!(got.len(), 200);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(source.most_asked(), 1, "a key loaded twice");
    assert_eq!(source.asked.lock().unwrap().len(), 900);
}

#[test]
fn a_single_key_miss_waits_for_the_batch_loading_its_key() {
    let cache = Arc::new(cache());
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let batch = {
        let cache = cache.clone();
        thread::spawn(move || {
            cache
                .get_or_load_many([1, 2, 3], |missing| {
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    Ok::<_, Infallible>(missing.into_iter().map(|k| (k, k * 10)).collect())
                })
                .unwrap()
        })
    };
    started_rx.recv().unwrap();
    let single_loads = Arc::new(AtomicUsize::new(0));
    let single = {
        let (cache, single_loads) = (cache.clone(), single_loads.clone());
        thread::spawn(move || {
            cache.get_or_insert_with(&2, || {
                single_loads.fetch_add(1, Ordering::SeqCst);
                999
            })
        })
    };
    // The single-key caller waits on the batch's flight of its key.
    wait_for_one_waiter(&cache);
    release_tx.send(()).unwrap();
    assert_eq!(batch.join().unwrap().len(), 3);
    assert_eq!(single.join().unwrap(), 20, "the batch's value");
    assert_eq!(
        single_loads.load(Ordering::SeqCst),
        0,
        "the single key did not load"
    );
    assert_eq!(cache.stats().joined, 1);
}

#[test]
fn a_batch_waits_for_a_single_key_load_in_flight_instead_of_loading_it() {
    let cache = Arc::new(cache());
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let single = {
        let cache = cache.clone();
        thread::spawn(move || {
            cache.get_or_insert_with(&2, || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                222
            })
        })
    };
    started_rx.recv().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let batch = {
        let (cache, asked) = (cache.clone(), asked.clone());
        thread::spawn(move || {
            cache
                .get_or_load_many([1, 2, 3], |missing| {
                    asked.lock().unwrap().extend(missing.iter().copied());
                    Ok::<_, Infallible>(missing.into_iter().map(|k| (k, k * 10)).collect())
                })
                .unwrap()
        })
    };
    // The batch loads 1 and 3, then waits for 2.
    let deadline = Instant::now() + Duration::from_secs(10);
    while asked.lock().unwrap().is_empty() && Instant::now() < deadline {
        thread::yield_now();
    }
    release_tx.send(()).unwrap();
    let got = batch.join().unwrap();
    assert_eq!(single.join().unwrap(), 222);
    let mut asked = asked.lock().unwrap().clone();
    asked.sort_unstable();
    assert_eq!(asked, [1, 3]);
    assert_eq!(got, HashMap::from([(1, 10), (2, 222), (3, 30)]));
}

#[test]
fn keys_not_returned_are_cached_as_not_found_with_negative_ttl() {
    let cache: Cache<u64, String, ()> = Cache::builder()
        .negative_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let source = Source::default();
    let evens = |m: Vec<u64>| {
        let found = source.load(&m);
        Ok::<_, Infallible>(
            found
                .into_iter()
                .filter(|(k, _)| k % 2 == 0)
                .map(|(k, v)| (k, v.to_string()))
                .collect::<HashMap<_, _>>(),
        )
    };
    let got = cache.get_or_load_many(1..=10, evens).unwrap();
    assert_eq!(got.len(), 5);
    assert!(got.keys().all(|k| k % 2 == 0));
    let again = cache.get_or_load_many(1..=10, evens).unwrap();
    assert_eq!(again, got);
    assert_eq!(source.calls(), 1, "not found is cached");
    assert_eq!(cache.stats().negative_hits, 5);
}

#[test]
fn keys_not_returned_are_left_uncached_without_negative_ttl() {
    let cache: Cache<u64, u64, ()> = Cache::builder().build().unwrap();
    let mut asked = Vec::new();
    for _ in 0..2 {
        let got = cache
            .get_or_load_many([1, 2], |m| {
                asked.push(m.len());
                Ok::<_, Infallible>(m.into_iter().filter(|k| *k == 1).map(|k| (k, k)).collect())
            })
            .unwrap();
        assert_eq!(got, HashMap::from([(1, 1)]));
    }
    // The second batch asks again for the key that was not found, and only for it.
    assert_eq!(asked, [2, 1]);
    // The same on a cache without negative results.
    let plain = cache_plain();
    let mut calls = 0;
    for _ in 0..2 {
        plain
            .get_or_load_many([7], |_| {
                calls += 1;
                Ok::<_, Infallible>(HashMap::new())
            })
            .unwrap();
    }
    assert_eq!(calls, 2);
}

fn cache_plain() -> Cache<u64, u64> {
    cache()
}

#[test]
fn the_general_form_caches_values_and_negative_results() {
    let cache: Cache<u64, u64, &'static str> = Cache::builder()
        .negative_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let got = cache
        .get_or_load_many_with([1, 2, 3], |m| {
            Ok::<_, Infallible>(
                m.into_iter()
                    .filter(|k| *k != 3)
                    .map(|k| (k, if k == 1 { Ok(10) } else { Err("gone") }))
                    .collect(),
            )
        })
        .unwrap();
    assert_eq!(got, HashMap::from([(1, Ok(10)), (2, Err("gone"))]));
    assert_eq!(cache.get_or_load(&2, || unreachable!()), Err("gone"));
    assert_eq!(cache.get(&1), Some(10));
    assert!(!cache.contains_key(&3));
}

#[test]
fn a_failing_loader_caches_nothing_and_the_next_batch_loads_again() {
    let cache = cache();
    let err = cache
        .get_or_load_many([1, 2], |_| Err::<HashMap<u64, u64>, _>("database down"))
        .unwrap_err();
    assert_eq!(err, "database down");
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.loads_in_flight(), 0);
    let got = cache
        .get_or_load_many([1, 2], |m| {
            Ok::<_, &str>(m.into_iter().map(|k| (k, k)).collect())
        })
        .unwrap();
    assert_eq!(got.len(), 2);
    let s = cache.stats();
    assert_eq!((s.loads, s.load_errors), (2, 1));
}

#[test]
fn a_panicking_loader_reaches_its_caller_and_leaves_the_cache_usable() {
    let cache = Arc::new(cache());
    let c = cache.clone();
    let panicked = thread::spawn(move || {
        c.get_or_load_many([1, 2], |_| -> Result<HashMap<u64, u64>, Infallible> {
            panic!("loader bug")
        })
    })
    .join();
    assert!(panicked.is_err());
    assert_eq!(cache.loads_in_flight(), 0);
    let got = cache
        .get_or_load_many([1, 2], |m| {
            Ok::<_, Infallible>(m.into_iter().map(|k| (k, k)).collect())
        })
        .unwrap();
    assert_eq!(got.len(), 2);
}

#[test]
fn a_single_key_waiter_on_a_panicking_batch_panics_without_loading() {
    let cache = Arc::new(cache());
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let batch = {
        let cache = cache.clone();
        thread::spawn(move || {
            cache.get_or_load_many([1, 2], |_| -> Result<HashMap<u64, u64>, Infallible> {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                panic!("loader bug")
            })
        })
    };
    started_rx.recv().unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let single = {
        let (cache, loads) = (cache.clone(), loads.clone());
        thread::spawn(move || {
            cache.get_or_insert_with(&1, || {
                loads.fetch_add(1, Ordering::SeqCst);
                1
            })
        })
    };
    wait_for_one_waiter(&cache);
    release_tx.send(()).unwrap();
    assert!(batch.join().is_err());
    let waiter = single.join();
    let msg = waiter
        .err()
        .and_then(|p| p.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(msg.contains("panicked in another caller"), "{msg}");
    assert_eq!(loads.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_cancelled_async_batch_releases_its_keys_to_their_waiters() {
    let cache = Arc::new(cache());
    let stuck = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_load_many_async([1, 2], |_| {
                    std::future::pending::<Result<HashMap<u64, u64>, Infallible>>()
                })
                .await
        })
    };
    tokio::task::yield_now().await;
    assert_eq!(cache.loads_in_flight(), 2);
    stuck.abort();
    assert!(stuck.await.unwrap_err().is_cancelled());
    assert_eq!(cache.loads_in_flight(), 0);
    let got = cache
        .get_or_load_many_async([1, 2], |m| async move {
            Ok::<_, Infallible>(m.into_iter().map(|k| (k, k)).collect())
        })
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
}

#[test]
fn through_a_remote_tier_the_batch_finds_what_another_process_stored() {
    let backend = Arc::new(MemoryBackend::new());
    let node = || node_on(&backend, "batch-remote");
    let (a, b) = (node(), node());
    // Process A loads 300 of the keys (and stores them in the shared tier).
    a.get_or_load_many((0..1_000u64).filter(|k| k % 10 < 3), tens)
        .unwrap();
    // Process B's batch: 300 from the tier, 700 from its loader, in one call.
    let mut asked = Vec::new();
    let got = b
        .get_or_load_many(0..1_000u64, |m| {
            asked.push(m.len());
            tens(m)
        })
        .unwrap();
    assert_eq!(got.len(), 1_000);
    assert_eq!(asked, [700]);
    assert_eq!(b.stats().remote_hits, 300);
    // And B's loads reached the tier: a third process loads nothing.
    assert_eq!(without_loads(&node(), 0..1_000), got);
}

#[test]
fn a_key_invalidated_during_the_batch_is_answered_but_not_kept_in_either_tier() {
    let backend = Arc::new(MemoryBackend::new());
    let node = || node_on(&backend, "batch-invalidated");
    let a = Arc::new(node());
    let a2 = a.clone();
    let got = a
        .get_or_load_many([1, 2, 3], move |m| {
            // The source of 2 changes while the batch loads it: its removal wins.
            a2.remove(&2);
            tens(m)
        })
        .unwrap();
    assert_eq!(got.len(), 3, "the callers get what was loaded");
    assert!(a.contains_key(&1) && a.contains_key(&3));
    assert!(!a.contains_key(&2), "not kept in L1");
    // Another process: 1 and 3 from the tier, 2 loaded again.
    let mut asked = Vec::new();
    node()
        .get_or_load_many([1, 2, 3], |m| {
            asked.extend(m.iter().copied());
            Ok::<_, Infallible>(m.into_iter().map(|k| (k, k)).collect())
        })
        .unwrap();
    assert_eq!(asked, [2], "not kept in the remote tier either");
}

#[test]
fn what_a_batch_loader_tags_applies_to_each_entry_of_the_batch() {
    let cache = cache();
    cache
        .get_or_load_many([1, 2], |m| {
            assert!(cache_runtime::tag("batch-tag-test"));
            Ok::<_, Infallible>(m.into_iter().map(|k| (k, k)).collect())
        })
        .unwrap();
    cache.insert(3, 3);
    assert_eq!(cache.len(), 3);
    cache_runtime::invalidate_tag("batch-tag-test");
    assert!(!cache.contains_key(&1) && !cache.contains_key(&2));
    assert!(cache.contains_key(&3));
}

// ---- The macro's batch form: `#[cached(batch)]` ----

mod macro_form {
    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use cache_runtime::cached;

    static ASKED: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

    /// One "query" for all the ids the cache does not hold.
    #[cached(batch, capacity = 10_000)]
    fn squares(ids: Vec<u64>) -> HashMap<u64, u64> {
        let mut asked = ids.clone();
        asked.sort_unstable();
        ASKED.lock().unwrap().push(asked);
        ids.into_iter().map(|id| (id, id * id)).collect()
    }

    #[test]
    fn the_body_gets_the_missing_keys_in_one_call_and_the_answer_has_every_key() {
        let first = squares(vec![1, 2, 3]);
        assert_eq!(first, HashMap::from([(1, 1), (2, 4), (3, 9)]));
        let second = squares(vec![2, 3, 4, 5]);
        assert_eq!(second, HashMap::from([(2, 4), (3, 9), (4, 16), (5, 25)]));
        assert_eq!(*ASKED.lock().unwrap(), [vec![1, 2, 3], vec![4, 5]]);
        let s = cache_runtime::registry::get_negative::<u64, u64, ()>(
            "batch_loading::macro_form::squares",
        )
        .expect("registered")
        .stats();
        assert_eq!((s.hits, s.misses, s.loads), (2, 5, 2));
    }

    static SLICE_CALLS: AtomicUsize = AtomicUsize::new(0);

    /// A slice of keys, an ordered map, and a failure.
    #[cached(batch)]
    fn names(ids: &[u32]) -> Result<BTreeMap<u32, String>, String> {
        SLICE_CALLS.fetch_add(1, Ordering::SeqCst);
        if ids.contains(&13) {
            return Err("unlucky".to_string());
        }
        Ok(ids.iter().map(|id| (*id, format!("#{id}"))).collect())
    }

    #[test]
    fn a_slice_argument_and_an_error_that_caches_nothing() {
        assert_eq!(names(&[13, 1]), Err("unlucky".to_string()));
        let got = names(&[1, 2]).unwrap();
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), [1, 2]);
        // 1 was not cached by the failed batch: it was loaded by the second.
        assert_eq!(SLICE_CALLS.load(Ordering::SeqCst), 2);
        assert_eq!(names(&[2, 1]).unwrap(), got);
        assert_eq!(SLICE_CALLS.load(Ordering::SeqCst), 2);
    }

    static FOUND_CALLS: AtomicUsize = AtomicUsize::new(0);

    /// Only even ids exist; the others are cached as "not found" for a minute.
    #[cached(batch, negative_ttl = "1m")]
    fn evens(ids: HashSet<u64>) -> HashMap<u64, String> {
        FOUND_CALLS.fetch_add(1, Ordering::SeqCst);
        ids.into_iter()
            .filter(|id| id % 2 == 0)
            .map(|id| (id, id.to_string()))
            .collect()
    }

    #[test]
    fn keys_not_found_are_cached_with_negative_ttl() {
        let got = evens((1..=6).collect());
        assert_eq!(got.len(), 3);
        assert_eq!(evens((1..=6).collect()), got);
        assert_eq!(FOUND_CALLS.load(Ordering::SeqCst), 1);
    }

    static ASYNC_CALLS: AtomicUsize = AtomicUsize::new(0);
    static WORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

    #[cached(batch, ttl = "10m")]
    async fn lengths(words: &Vec<String>) -> HashMap<String, usize> {
        ASYNC_CALLS.fetch_add(1, Ordering::SeqCst);
        WORDS.lock().unwrap().extend(words.iter().cloned());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        words.iter().map(|w| (w.clone(), w.len())).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_async_form_loads_the_misses_once() {
        let words = |ws: &[&str]| ws.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let got = lengths(&words(&["a", "bb"])).await;
        assert_eq!(got["bb"], 2);
        let again = lengths(&words(&["bb", "ccc"])).await;
        assert_eq!(again.len(), 2);
        assert_eq!(ASYNC_CALLS.load(Ordering::SeqCst), 2);
        // Concurrent callers of overlapping batches: each word loaded once.
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let ws = words(&["x", "yy", if i % 2 == 0 { "zzz" } else { "wwww" }]);
                tokio::spawn(async move { lengths(&ws).await.len() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 3);
        }
        let mut loaded = WORDS.lock().unwrap().clone();
        loaded.sort();
        assert_eq!(
            loaded,
            ["a", "bb", "ccc", "wwww", "x", "yy", "zzz"],
            "a word loaded twice"
        );
    }
}
