//! Thundering herd: 64 threads, then 1,000 tasks, call for one cold key at the same moment; how
//! many times did each crate run the loader? (One is single-flight; more means the data source
//! took the whole herd.)
//!
//! `cargo run --release -p cache-benches --bin stampede [trials]` (default 5 trials; the table
//! gives the median and the maximum over the trials). The loader takes 20 ms.

#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Duration;

const THREADS: usize = 64;
const TASKS: usize = 1_000;
const LOAD: Duration = Duration::from_millis(20);

static RUNS: [AtomicUsize; 16] = [const { AtomicUsize::new(0) }; 16];

fn slow(slot: usize, k: u64) -> u64 {
    RUNS[slot].fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(LOAD);
    k
}

async fn slow_async(slot: usize, k: u64) -> u64 {
    RUNS[slot].fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(LOAD).await;
    k
}

#[cache_runtime::cached(ttl = "1h")]
fn ours(k: u64) -> u64 {
    slow(0, k)
}

#[cache_runtime::cached(ttl = "1h")]
async fn ours_async(k: u64) -> u64 {
    slow_async(1, k).await
}

#[cached::macros::cached(max_size = 1_000, ttl_secs = 3_600)]
fn cached_default(k: u64) -> u64 {
    slow(2, k)
}

#[cached::macros::cached(max_size = 1_000, ttl_secs = 3_600, sync_writes = "by_key")]
fn cached_sync_writes(k: u64) -> u64 {
    slow(3, k)
}

#[cached::macros::concurrent_cached(max_size = 1_000, ttl_secs = 3_600)]
fn cached_concurrent(k: u64) -> u64 {
    slow(4, k)
}

#[cached::macros::cached(max_size = 1_000, ttl_secs = 3_600)]
async fn cached_async(k: u64) -> u64 {
    slow_async(5, k).await
}

#[cached::macros::cached(max_size = 1_000, ttl_secs = 3_600, sync_writes = "by_key")]
async fn cached_async_sync_writes(k: u64) -> u64 {
    slow_async(6, k).await
}

/// An async contender: a call for key `k`, as a boxed future.
type AsyncCall = std::sync::Arc<
    dyn Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>> + Send + Sync,
>;

/// One contender: a name, and how to call it for key `k` from a thread or a task.
enum Call {
    Sync(&'static str, usize, Box<dyn Fn(u64) -> u64 + Sync>),
    Async(&'static str, usize, AsyncCall),
}

fn herd_threads(slot: usize, key: u64, f: &(dyn Fn(u64) -> u64 + Sync)) -> usize {
    let before = RUNS[slot].load(Ordering::SeqCst);
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                barrier.wait();
                assert_eq!(f(key), key);
            });
        }
    });
    RUNS[slot].load(Ordering::SeqCst) - before
}

fn herd_tasks(rt: &tokio::runtime::Runtime, slot: usize, key: u64, f: &AsyncCall) -> usize {
    let before = RUNS[slot].load(Ordering::SeqCst);
    rt.block_on(async {
        let gate = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..TASKS {
            let (f, gate) = (f.clone(), gate.clone());
            set.spawn(async move {
                gate.wait().await;
                f(key).await
            });
        }
        while let Some(r) = set.join_next().await {
            assert_eq!(r.expect("task"), key);
        }
    });
    RUNS[slot].load(Ordering::SeqCst) - before
}

fn median(v: &mut [usize]) -> usize {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Runs every contender `trials` times (a fresh key each time); returns `(name, kind, median, max)`.
#[must_use]
pub fn run(trials: usize) -> Vec<(&'static str, &'static str, usize, usize)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ours_cache: cache_runtime::Cache<u64, u64> =
        cache_runtime::Cache::builder().build().expect("cache");
    let quick = quick_cache::sync::Cache::<u64, u64>::new(1_000);
    let moka = moka::sync::Cache::<u64, u64>::new(1_000);
    let moka_f = moka::future::Cache::<u64, u64>::new(1_000);
    let map: Mutex<HashMap<u64, u64>> = Mutex::new(HashMap::new());
    let calls: Vec<Call> = vec![
        Call::Sync("ours #[cached]", 0, Box::new(ours)),
        Call::Sync(
            "ours Cache::get_or_insert_with",
            7,
            Box::new(move |k| ours_cache.get_or_insert_with(&k, || slow(7, k))),
        ),
        Call::Sync(
            "quick_cache get_or_insert_with",
            8,
            Box::new(move |k| {
                quick
                    .get_or_insert_with(&k, || Ok::<_, ()>(slow(8, k)))
                    .unwrap_or(0)
            }),
        ),
        Call::Sync(
            "moka sync get_with",
            9,
            Box::new(move |k| moka.get_with(k, || slow(9, k))),
        ),
        Call::Sync("cached #[cached]", 2, Box::new(cached_default)),
        Call::Sync(
            "cached #[cached(sync_writes = \"by_key\")]",
            3,
            Box::new(cached_sync_writes),
        ),
        Call::Sync(
            "cached #[concurrent_cached]",
            4,
            Box::new(cached_concurrent),
        ),
        Call::Sync(
            "Mutex<HashMap> check, load, insert",
            10,
            Box::new(move |k| {
                if let Some(v) = map
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&k)
                {
                    return *v;
                }
                let v = slow(10, k);
                map.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(k, v);
                v
            }),
        ),
        Call::Async(
            "ours #[cached] async fn",
            1,
            std::sync::Arc::new(|k| Box::pin(ours_async(k))),
        ),
        Call::Async(
            "moka future get_with",
            11,
            std::sync::Arc::new(move |k| {
                let m = moka_f.clone();
                Box::pin(async move { m.get_with(k, slow_async(11, k)).await })
            }),
        ),
        Call::Async(
            "cached #[cached] async fn",
            5,
            std::sync::Arc::new(|k| Box::pin(cached_async(k))),
        ),
        Call::Async(
            "cached #[cached(sync_writes = \"by_key\")] async fn",
            6,
            std::sync::Arc::new(|k| Box::pin(cached_async_sync_writes(k))),
        ),
    ];
    let mut out = Vec::new();
    let mut key = 1u64;
    for call in &calls {
        let mut counts = Vec::with_capacity(trials);
        for _ in 0..trials {
            key += 1;
            counts.push(match call {
                Call::Sync(_, slot, f) => herd_threads(*slot, key, f.as_ref()),
                Call::Async(_, slot, f) => herd_tasks(&rt, *slot, key, f),
            });
        }
        let max = counts.iter().copied().max().unwrap_or(0);
        let (name, kind) = match call {
            Call::Sync(n, ..) => (*n, "64 threads"),
            Call::Async(n, ..) => (*n, "1,000 tasks"),
        };
        out.push((name, kind, median(&mut counts), max));
    }
    out
}

fn main() {
    let trials = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5)
        .max(1);
    println!("| contender | herd | loader runs: median | max ({trials} trials) |");
    println!("|---|---|---:|---:|");
    for (name, kind, med, max) in run(trials) {
        println!("| {name} | {kind} | {med} | {max} |");
    }
}
