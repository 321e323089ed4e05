//! The two-level cache against raw redis-rs on loopback, on a Redis of its own (`redis-server`
//! from the `PATH`, on a free port, stopped when the bench ends; `CACHE_TEST_REDIS_URL` names
//! another).
//!
//! `cargo bench -p cache-benches --bench redis`: an L1 hit (no network) next to the in-memory
//! cache's hit, and an L2 hit (L1 miss, Redis GET, decode, L1 fill) next to a raw redis-rs
//! `GET` of the same bytes on one connection.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use cache_runtime::{Cache, RedisBackend};
use criterion::{Criterion, criterion_group, criterion_main};

use cache_test_support::redis_url;

/// A key prefix of this run's own: two runs against one server (two checkouts, a run while
/// another is still clearing) never read or clear each other's keys.
fn prefix(what: &str) -> String {
    format!("cache-rs-bench-{what}-{}", std::process::id())
}

fn two_level(prefix: &str) -> Cache<u64, String> {
    let backend =
        Arc::new(RedisBackend::new(redis_url(), Duration::from_millis(500)).expect("URL"));
    Cache::builder()
        .name("bench")
        .ttl(Duration::from_secs(3_600))
        .l1_ttl(Duration::from_secs(3_600))
        .remote(backend, prefix)
        .build()
        .expect("valid settings")
}

fn l1_hit(c: &mut Criterion) {
    let mut g = c.benchmark_group("redis_l1_hit_u64");
    let memory: Cache<u64, String> = Cache::builder()
        .ttl(Duration::from_secs(3_600))
        .build()
        .expect("valid settings");
    let two = two_level(&prefix("l1"));
    for k in 0..1_000u64 {
        memory.insert(k, format!("value-{k}"));
        two.insert(k, format!("value-{k}"));
    }
    let mut i = 0u64;
    g.bench_function("in_memory", |b| {
        b.iter(|| {
            i = (i + 1) % 1_000;
            black_box(memory.get(&i))
        });
    });
    g.bench_function("two_level_l1", |b| {
        b.iter(|| {
            i = (i + 1) % 1_000;
            black_box(two.get(&i))
        });
    });
    g.finish();
    two.clear();
}

fn l2_hit(c: &mut Criterion) {
    let mut g = c.benchmark_group("redis_l2_hit");
    let prefix = prefix("l2");
    let raw_key = format!("{prefix}:raw");
    let two = two_level(&prefix);
    two.insert(
        7,
        "a 64-byte value, like a small JSON document or a row of text...".into(),
    );
    // The same bytes, under another key, for the raw client.
    let client = redis::Client::open(redis_url()).expect("URL");
    let mut con = client.get_connection().expect("Redis is up");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:bench:*"))
        .query(&mut con)
        .expect("KEYS");
    let payload: Vec<u8> = redis::cmd("GET")
        .arg(&keys[0])
        .query(&mut con)
        .expect("GET");
    let _: () = redis::cmd("SET")
        .arg(&raw_key)
        .arg(&payload)
        .query(&mut con)
        .expect("SET");
    g.bench_function("raw_redis_rs_get", |b| {
        b.iter(|| {
            let v: Vec<u8> = redis::cmd("GET")
                .arg(&raw_key)
                .query(&mut con)
                .expect("GET");
            black_box(v)
        });
    });
    g.bench_function("two_level_l2", |b| {
        b.iter(|| {
            two.evict_local(&7);
            black_box(two.get_or_insert_with(&7, || unreachable!("in Redis")))
        });
    });
    g.finish();
    two.clear();
    let _: () = redis::cmd("DEL")
        .arg(&raw_key)
        .query(&mut con)
        .expect("DEL");
}

criterion_group!(benches, l1_hit, l2_hit);
criterion_main!(benches);
