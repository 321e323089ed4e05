//! A batch of 1,000 keys (`Cache::get_or_load_many`: one loader call, one remote multi-get)
//! against the same 1,000 keys loaded one by one (`get_or_insert_with`), side by side.
//!
//! `cargo bench -p cache-benches --bench batch`:
//! - `batch_local_1000`: an in-memory cache, every key missing (a fresh cache per iteration);
//!   the loader is trivial, so the figures are the cache's own cost per key.
//! - `batch_redis_1000_from_l2`: a two-level cache whose L1 is empty and whose Redis holds every
//!   key (another process loaded them): one `MGET` against 1,000 `GET`s.
//! - `batch_redis_1000_cold`: nothing anywhere: the lookups, the loads and the writes to Redis.
//!
//! Redis is a server of its own (`redis-server` from the `PATH` on a free port;
//! `CACHE_TEST_REDIS_URL` names another).

#![allow(missing_docs)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_runtime::{Cache, RedisBackend};
use cache_test_support::redis_url;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const KEYS: u64 = 1_000;

fn value(k: u64) -> String {
    format!("value-{k:08}-a-short-row-of-text")
}

fn load_all(missing: Vec<u64>) -> Result<HashMap<u64, String>, Infallible> {
    Ok(missing.into_iter().map(|k| (k, value(k))).collect())
}

fn local() -> Cache<u64, String> {
    Cache::builder()
        .capacity(10 * KEYS)
        .ttl(Duration::from_secs(3_600))
        .build()
        .expect("valid settings")
}

fn batch_local(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_local_1000");
    g.bench_function("get_or_load_many", |b| {
        b.iter_batched(
            local,
            |cache| black_box(cache.get_or_load_many(0..KEYS, load_all).map(|m| m.len())),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("get_or_insert_with_x1000", |b| {
        b.iter_batched(
            local,
            |cache| {
                for k in 0..KEYS {
                    black_box(cache.get_or_insert_with(&k, || value(k)));
                }
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

/// A two-level cache as one process of a fleet has it, under `prefix`.
fn two_level(backend: &Arc<RedisBackend>, prefix: &str) -> Cache<u64, String> {
    Cache::builder()
        .name("bench-batch")
        .capacity(10 * KEYS)
        .ttl(Duration::from_secs(120))
        .remote(backend.clone(), prefix)
        .build()
        .expect("valid settings")
}

fn batch_redis(c: &mut Criterion) {
    let backend =
        Arc::new(RedisBackend::new(redis_url(), Duration::from_secs(2)).expect("a valid URL"));
    let run = std::process::id();

    // Every key in Redis, stored by another process: each iteration is a new process's L1.
    let warm = format!("cache-rs-bench-batch-l2-{run}");
    two_level(&backend, &warm)
        .get_or_load_many(0..KEYS, load_all)
        .expect("infallible");
    let mut g = c.benchmark_group("batch_redis_1000_from_l2");
    g.sample_size(20);
    g.bench_function("get_or_load_many", |b| {
        b.iter_batched(
            || two_level(&backend, &warm),
            |cache| {
                let got = cache.get_or_load_many(0..KEYS, |_| -> Result<_, Infallible> {
                    unreachable!("every key is in Redis")
                });
                black_box(got.map(|m| m.len()))
            },
            BatchSize::PerIteration,
        );
    });
    g.bench_function("get_or_insert_with_x1000", |b| {
        b.iter_batched(
            || two_level(&backend, &warm),
            |cache| {
                for k in 0..KEYS {
                    black_box(cache.get_or_insert_with(&k, || unreachable!("in Redis")));
                }
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
    two_level(&backend, &warm).clear();

    // Nothing anywhere: a prefix of its own per iteration (the entries expire in 2 minutes).
    let next = AtomicU64::new(0);
    let fresh = || {
        let n = next.fetch_add(1, Ordering::Relaxed);
        two_level(&backend, &format!("cache-rs-bench-batch-cold-{run}-{n}"))
    };
    let mut g = c.benchmark_group("batch_redis_1000_cold");
    g.sample_size(10);
    g.bench_function("get_or_load_many", |b| {
        b.iter_batched(
            fresh,
            |cache| black_box(cache.get_or_load_many(0..KEYS, load_all).map(|m| m.len())),
            BatchSize::PerIteration,
        );
    });
    g.bench_function("get_or_insert_with_x1000", |b| {
        b.iter_batched(
            fresh,
            |cache| {
                for k in 0..KEYS {
                    black_box(cache.get_or_insert_with(&k, || value(k)));
                }
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(benches, batch_local, batch_redis);
criterion_main!(benches);
