//! One process of a simulated fleet, for the multi-process tests (`tests/fleet.rs`).
//!
//! `fleet_node <url> <prefix> <key> <tasks> <lock:on|off> <load-ms>`: builds a two-level cache on
//! the Redis (`redis://...`) or memcached (`memcached://...`) at `url` under `prefix`, prints
//! `ready`, waits for a `go` line on its
//! standard input (so that every process misses at the same moment), then has `tasks` tasks miss
//! `key` at once. It ends by printing `ok <runs>`: how many times its loader ran in this process
//! (the test adds the processes' counts up).

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_runtime::tier::Backend;
use cache_runtime::{Cache, MemcachedBackend, RedisBackend};

/// `fleet_node watch <redis-url> <prefix>`: reads key 1 of the `profiles` cache (long L1 TTL),
/// prints it, waits (bounded) until another process's write evicts its L1 copy, then prints the
/// new value.
fn watch(url: &str, prefix: &str) {
    let backend = Arc::new(RedisBackend::new(url, Duration::from_secs(5)).expect("URL"));
    let cache: Cache<u64, String> = Cache::builder()
        .name("profiles")
        .ttl(Duration::from_secs(600))
        .l1_ttl(Duration::from_secs(600))
        .remote(backend.clone(), prefix)
        .build()
        .expect("valid settings");
    // Subscribed before saying so: a write published earlier would not reach this process.
    let start = std::time::Instant::now();
    while !backend.is_listening() {
        if start.elapsed() > Duration::from_secs(10) {
            println!("never subscribed");
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let v = cache.get_or_insert_with(&1, || "loaded-by-watcher".into());
    println!("loaded {v}");
    std::io::stdout().flush().expect("stdout");
    let start = std::time::Instant::now();
    while cache.contains_key(&1) {
        if start.elapsed() > Duration::from_secs(10) {
            println!("not evicted");
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let v = cache.get_or_insert_with(&1, || "loaded-by-watcher".into());
    println!("evicted, now {v}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, url, prefix] = args.as_slice()
        && mode == "watch"
    {
        watch(url, prefix);
        return;
    }
    let [_, url, prefix, key, tasks, lock, load_ms] = args.as_slice() else {
        eprintln!("usage: fleet_node <url> <prefix> <key> <tasks> <lock:on|off> <load-ms>");
        std::process::exit(2);
    };
    let key: u64 = key.parse().expect("a numeric key");
    let tasks: usize = tasks.parse().expect("a task count");
    let load_ms: u64 = load_ms.parse().expect("a load time in ms");
    // A generous bound: this node tests de-duplication across processes, not latency, and eight
    // of them start their first calls at once on a small machine.
    let timeout = Duration::from_secs(5);
    let backend: Arc<dyn Backend> = if url.starts_with("memcached://") {
        Arc::new(MemcachedBackend::new(&[url.as_str()], timeout).expect("URL"))
    } else {
        Arc::new(RedisBackend::new(url, timeout).expect("URL"))
    };
    let mut builder = Cache::<u64, u64>::builder()
        .name("fleet")
        .ttl(Duration::from_secs(60))
        .remote(backend, prefix);
    if lock == "on" {
        builder = builder.distributed_lock(Duration::from_secs(5));
    }
    let cache = builder.build().expect("valid settings");
    println!("ready");
    std::io::stdout().flush().expect("stdout");
    // Wait for the start signal (a closed standard input means the test is gone: stop).
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) == 0 || line.trim() != "go" {
        std::process::exit(3);
    }
    let runs = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (cache, runs) = (cache.clone(), Arc::clone(&runs));
                tokio::spawn(async move {
                    cache
                        .get_or_insert_with_async(&key, || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(load_ms)).await;
                            42
                        })
                        .await
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.await.expect("task"), 42);
        }
    });
    println!("ok {}", runs.load(Ordering::SeqCst));
}
