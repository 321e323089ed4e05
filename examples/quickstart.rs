//! A slow function becoming fast: `cargo run --release --example quickstart`.
//!
//! `price` pretends to be a 50 ms database query. Twenty requests for four products run it four
//! times; the other sixteen are cache hits. The cache's statistics come from the registry.

use std::time::{Duration, Instant};

use cache_runtime::{cached, registry};

/// The "database query": slow, and the same answer for the same product.
#[cached(ttl = "1m", capacity = 1_000, name = "quickstart.price")]
fn price(product: &str) -> u64 {
    std::thread::sleep(Duration::from_millis(50));
    product.bytes().map(u64::from).sum::<u64>() % 1_000
}

fn main() {
    let products = ["tea", "coffee", "cocoa", "mate"];
    println!(
        "{:>4}  {:<8} {:>6}  {:>10}",
        "call", "product", "price", "time"
    );
    let start = Instant::now();
    for i in 0..20 {
        let product = products[i % products.len()];
        let t = Instant::now();
        let p = price(product);
        println!(
            "{:>4}  {:<8} {:>6}  {:>10.3?}",
            i + 1,
            product,
            p,
            t.elapsed()
        );
    }
    let total = start.elapsed();

    let report = registry::caches()
        .into_iter()
        .find(|c| c.name == "quickstart.price")
        .expect("the cache is registered once `price` has run");
    let s = report.stats;
    println!();
    println!("20 calls in {total:.1?} (uncached: 20 x 50 ms = 1 s)");
    println!(
        "hits {}  misses {}  loads {}  hit ratio {:.0}%  entries {}",
        s.hits,
        s.misses,
        s.loads,
        s.hit_ratio() * 100.0,
        s.entries
    );
}
