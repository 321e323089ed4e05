//! Hit path, miss-then-load path and clock reads: cache-runtime vs raw quick_cache vs HashMap.
//!
//! `cargo bench -p cache-benches --bench core` (add `-- --quick` for a shorter run); then
//! `cargo run --release -p cache-benches --bin report` prints the ratio tables.

#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_benches::string_keys;
use cache_runtime::{Cache, Policy};
use criterion::{Criterion, criterion_group};

const N: usize = 10_000;

fn ours<K>(policy: Policy, ttl: bool) -> Cache<K, u64>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    ours_with(policy, ttl.then_some(Duration::from_secs(3_600)), None)
}

/// [`ours`] with any TTL and time-to-idle.
fn ours_with<K>(policy: Policy, ttl: Option<Duration>, tti: Option<Duration>) -> Cache<K, u64>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    let b = Cache::builder().capacity(2 * N as u64).policy(policy);
    let b = match ttl {
        Some(ttl) => b.ttl(ttl),
        None => b,
    };
    let b = match tti {
        Some(tti) => b.time_to_idle(tti),
        None => b,
    };
    b.build().expect("valid settings")
}

fn raw_quick<K: std::hash::Hash + Eq + Clone>() -> quick_cache::sync::Cache<K, u64> {
    quick_cache::sync::Cache::new(2 * N)
}

const POLICIES: [(&str, Policy); 4] = [
    ("ours_s3fifo_ttl", Policy::S3Fifo),
    ("ours_lru_ttl", Policy::Lru),
    ("ours_lfu_ttl", Policy::Lfu),
    ("ours_fifo_ttl", Policy::Fifo),
];

/// One hit per iteration, cycling over N resident keys.
fn hit_u64(c: &mut Criterion) {
    let mut g = c.benchmark_group("hit_u64");
    let keys: Vec<u64> = (0..N as u64).map(|i| i.wrapping_mul(0x9E37_79B9)).collect();

    let q = raw_quick::<u64>();
    for &k in &keys {
        q.insert(k, k);
    }
    let mut i = 0;
    g.bench_function("quick_cache_raw", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(q.get(&keys[i]))
        });
    });

    let mut m = HashMap::new();
    for &k in &keys {
        m.insert(k, k);
    }
    g.bench_function("std_hashmap", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(m.get(&keys[i]).copied())
        });
    });

    let no_ttl = ours::<u64>(Policy::S3Fifo, false);
    for &k in &keys {
        no_ttl.insert(k, k);
    }
    g.bench_function("ours_s3fifo_no_ttl", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(no_ttl.get(&keys[i]))
        });
    });
    for (name, policy) in POLICIES {
        let c = ours::<u64>(policy, true);
        for &k in &keys {
            c.insert(k, k);
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % N;
                black_box(c.get(&black_box(keys[i])))
            });
        });
    }
    let c = ours::<u64>(Policy::S3Fifo, true);
    for &k in &keys {
        c.insert(k, k);
    }
    g.bench_function("ours_s3fifo_ttl_get_entry", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(c.get_entry(&keys[i]))
        });
    });
    let st: &'static Cache<u64, u64> = Box::leak(Box::new(c.clone()));
    g.bench_function("ours_s3fifo_ttl_static", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(st.get(&keys[i]))
        });
    });
    // The same hit through a `#[cached]` function (default policy, TTL on).
    for &k in &keys {
        memo_u64(k);
    }
    g.bench_function("ours_cached_macro_ttl", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(memo_u64(black_box(keys[i])))
        });
    });
    // A key expression whose type the macro leaves to the compiler (type-erased static).
    for &k in &keys {
        memo_inferred(k);
    }
    g.bench_function("ours_cached_macro_inferred_key", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(memo_inferred(black_box(keys[i])))
        });
    });
    // Stale-while-revalidate and early refresh on: a fresh hit costs the same check.
    for &k in &keys {
        memo_swr(k);
    }
    g.bench_function("ours_cached_macro_stale_early", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(memo_swr(black_box(keys[i])))
        });
    });
    g.finish();
}

#[cache_runtime::cached(ttl = "1h", capacity = 20_000, stale = "1m", early_refresh = 1.0)]
fn memo_swr(x: u64) -> u64 {
    x.wrapping_mul(5)
}

#[cache_runtime::cached(ttl = "1h", capacity = 20_000)]
fn memo_u64(x: u64) -> u64 {
    x.wrapping_mul(3)
}

#[cache_runtime::cached(ttl = "1h", capacity = 20_000, key = x.rotate_left(0))]
fn memo_inferred(x: u64) -> u64 {
    x.wrapping_mul(3)
}

fn hit_string(c: &mut Criterion) {
    let mut g = c.benchmark_group("hit_string64");
    let keys = string_keys(N);

    let q = raw_quick::<String>();
    for k in &keys {
        q.insert(k.clone(), 1);
    }
    let mut i = 0;
    g.bench_function("quick_cache_raw", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(q.get(keys[i].as_str()))
        });
    });

    let mut m = HashMap::new();
    for k in &keys {
        m.insert(k.clone(), 1u64);
    }
    g.bench_function("std_hashmap", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(m.get(keys[i].as_str()).copied())
        });
    });

    for (name, policy) in POLICIES {
        let c = ours::<String>(policy, true);
        for k in &keys {
            c.insert(k.clone(), 1);
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % N;
                black_box(c.get(keys[i].as_str()))
            });
        });
    }
    g.finish();
}

/// A miss on a new key, then the load and the insert (with evictions at steady state).
fn miss_then_load(c: &mut Criterion) {
    let mut g = c.benchmark_group("miss_then_load_u64");
    let q = raw_quick::<u64>();
    let mut k = 0u64;
    g.bench_function("quick_cache_raw", |b| {
        b.iter(|| {
            k += 1;
            black_box(q.get_or_insert_with(&k, || Ok::<_, ()>(k)).ok())
        });
    });
    for (name, policy) in POLICIES {
        let c = ours::<u64>(policy, true);
        g.bench_function(name, |b| {
            b.iter(|| {
                k += 1;
                black_box(c.get_or_insert_with(&k, || k))
            });
        });
    }
    g.finish();
}

fn clocks(c: &mut Criterion) {
    let mut g = c.benchmark_group("clock_read");
    let coarse = cache_runtime::Clock::coarse();
    g.bench_function("coarse_monotonic", |b| {
        b.iter(|| black_box(coarse.now_nanos()))
    });
    g.bench_function("instant_now", |b| b.iter(|| black_box(Instant::now())));
    g.finish();
}

/// Async hit path: `get_or_insert_with_async` awaited on a current-thread runtime, next to the
/// sync `get` of the same cache and raw quick_cache.
fn async_hit(c: &mut Criterion) {
    let mut g = c.benchmark_group("hit_u64_async");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let q = raw_quick::<u64>();
    let cache = ours::<u64>(Policy::S3Fifo, true);
    for k in 0..N as u64 {
        cache.insert(k, k);
        q.insert(k, k);
    }
    let mut i = 0u64;
    g.bench_function("quick_cache_raw", |b| {
        b.iter(|| {
            i = (i + 1) % N as u64;
            black_box(q.get(&i))
        });
    });
    g.bench_function("ours_s3fifo_ttl_sync_get", |b| {
        b.iter(|| {
            i = (i + 1) % N as u64;
            black_box(cache.get(&i))
        });
    });
    let i = std::cell::Cell::new(0u64);
    g.bench_function("ours_s3fifo_ttl_get_or_insert_with_async", |b| {
        b.to_async(&rt).iter(|| {
            i.set((i.get() + 1) % N as u64);
            let k = i.get();
            let cache = &cache;
            async move { black_box(cache.get_or_insert_with_async(&k, || async { 0 }).await) }
        });
    });
    g.finish();
}

/// A hit on entries loaded with two tags against one on untagged entries (issue 15): the
/// tagged hit checks the two tags' generations.
fn tagged_hit(c: &mut Criterion) {
    let mut g = c.benchmark_group("tagged_hit_u64");
    let keys: Vec<u64> = (0..N as u64).map(|i| i.wrapping_mul(0x9E37_79B9)).collect();
    let plain = ours::<u64>(Policy::S3Fifo, true);
    let tagged = ours::<u64>(Policy::S3Fifo, true);
    for &k in &keys {
        plain.get_or_insert_with(&k, || k);
        tagged.get_or_insert_with(&k, || {
            cache_runtime::tag("catalog");
            cache_runtime::tag(format!("store:{}", k % 16));
            k
        });
    }
    let mut i = 0;
    for (name, cache) in [("untagged", &plain), ("two_tags", &tagged)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % N;
                black_box(cache.get(&black_box(keys[i])))
            });
        });
    }
    g.finish();
}

/// A hit with a time-to-idle against one without (issue 16, item 2): the same 10,000 resident
/// `u64` keys and loop as `hit_u64`, side by side in one group. A time-to-idle gives every entry
/// an idle record: the hit's copy follows the stamps pointer, checks `last + tti` against the
/// ticker, and stores the tick at most once per tick (10 ms) per entry.
fn tti_hit(c: &mut Criterion) {
    let mut g = c.benchmark_group("tti_hit_u64");
    let keys: Vec<u64> = (0..N as u64).map(|i| i.wrapping_mul(0x9E37_79B9)).collect();

    let q = raw_quick::<u64>();
    for &k in &keys {
        q.insert(k, k);
    }
    let mut i = 0;
    g.bench_function("quick_cache_raw", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(q.get(&black_box(keys[i])))
        });
    });
    let hour = Duration::from_secs(3_600);
    let idle = Duration::from_secs(600);
    let rows = [
        ("ours_plain", None, None),
        ("ours_ttl", Some(hour), None),
        ("ours_ttl_tti", Some(hour), Some(idle)),
        ("ours_tti", None, Some(idle)),
    ];
    for (name, ttl, tti) in rows {
        let c = ours_with::<u64>(Policy::S3Fifo, ttl, tti);
        for &k in &keys {
            c.insert(k, k);
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % N;
                black_box(c.get(&black_box(keys[i])))
            });
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    tagged_hit,
    tti_hit,
    hit_u64,
    hit_string,
    miss_then_load,
    async_hit,
    clocks
);

/// The single-flight counts: 64 threads and 1,000 tasks on one cold key.
fn stampede_counts() {
    let cache: Cache<u64, u64> = Cache::builder().build().expect("valid settings");
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache.get_or_insert_with(&1, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    1
                })
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    println!(
        "stampede: 64 threads on one cold key -> loader runs: {}",
        runs.load(Ordering::SeqCst)
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cache: Cache<u64, u64> = Cache::builder().build().expect("valid settings");
    let runs = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let barrier = Arc::new(tokio::sync::Barrier::new(1_000));
        let tasks: Vec<_> = (0..1_000)
            .map(|_| {
                let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    cache
                        .get_or_insert_with_async(&1, || async {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            1
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
    println!(
        "stampede: 1000 tasks on one cold key -> loader runs: {}",
        runs.load(Ordering::SeqCst)
    );
}

fn main() {
    stampede_counts();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
