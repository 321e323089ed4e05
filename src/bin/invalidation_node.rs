//! One process of a fleet for the multi-process invalidation test (`tests/invalidation_fleet.rs`).
//!
//! `invalidation_node <redis-url> <prefix> <db-dir>`: two two-level caches on the Redis at `url`
//! under `prefix`: `stock` (a product's stock level, loaded from the file `<db-dir>/stock-<id>`,
//! the "database" every process shares) and `page` (built from `stock`, so it depends on it, and
//! tagged `pages`). Prints `ready` once subscribed to the invalidation channel, then answers one
//! line per command on its standard input:
//!
//! - `page <id>`: the page, and how many pages this process has built: `<page> | built <n>`;
//! - `update <id> <units>`: writes the file, then evicts the stock entry (as a `#[cache_evict]`
//!   after an `UPDATE`): `ok`;
//! - `tag <tag>`: `invalidate_tag(tag)` in every cache of the fleet: `ok`;
//! - `has <id>`: whether this process's L1 holds a fresh page: `yes` or `no`;
//! - `forget <id>`: drops this process's L1 copy of the page (as an L1 eviction would): `ok`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_runtime::{Cache, RedisBackend, invalidate_tag, tag};

fn stock_file(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("stock-{id}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, prefix, dir] = &args[..] else {
        eprintln!("usage: invalidation_node <redis-url> <prefix> <db-dir>");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let backend = Arc::new(RedisBackend::new(url, Duration::from_secs(5)).expect("a Redis URL"));
    fn build<V>(backend: &Arc<RedisBackend>, prefix: &str, name: &str) -> Cache<u64, V>
    where
        V: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        Cache::builder()
            .name(name)
            .ttl(Duration::from_secs(600))
            // Long: only an invalidation (not the L1 TTL) can make this process see a change.
            .l1_ttl(Duration::from_secs(600))
            .remote(backend.clone(), prefix)
            .build()
            .expect("settings")
    }
    let stock: Cache<u64, u64> = build(&backend, prefix, "stock");
    let page: Cache<u64, String> = build(&backend, prefix, "page");
    let start = std::time::Instant::now();
    while !backend.is_listening() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never subscribed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let built = AtomicU64::new(0);
    let read_stock = |id: u64| {
        stock.get_or_insert_with(&id, || {
            std::fs::read_to_string(stock_file(&dir, id))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        })
    };
    let read_page = |id: u64| {
        page.get_or_insert_with(&id, || {
            built.fetch_add(1, Ordering::SeqCst);
            tag("pages");
            format!("product {id}: {} left", read_stock(id))
        })
    };
    let out = std::io::stdout();
    println!("ready");
    out.lock().flush().expect("stdout");
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let words: Vec<&str> = line.split_whitespace().collect();
        let id = |i: usize| -> u64 { words.get(i).and_then(|w| w.parse().ok()).unwrap_or(0) };
        let answer = match words.first().copied() {
            Some("page") => format!(
                "{} | built {}",
                read_page(id(1)),
                built.load(Ordering::SeqCst)
            ),
            Some("update") => {
                std::fs::write(stock_file(&dir, id(1)), id(2).to_string()).expect("write");
                stock.remove(&id(1));
                "ok".to_string()
            }
            Some("tag") => {
                invalidate_tag(words.get(1).copied().unwrap_or_default());
                "ok".to_string()
            }
            Some("has") => if page.contains_key(&id(1)) {
                "yes"
            } else {
                "no"
            }
            .to_string(),
            Some("forget") => {
                page.evict_local(&id(1));
                "ok".to_string()
            }
            _ => "?".to_string(),
        };
        println!("{answer}");
        out.lock().flush().expect("stdout");
    }
}
