//! Instructions per hit when the call is not inlined: one million hits of a
//! `#[cached(ttl = "1h")]` function (`ours`; `ours-lru` and `ours-lfu` with those policies), or
//! of raw `quick_cache` `get` (`quick`), through `&dyn Fn`.
//!
//! Count them with callgrind (instruction counts repeat exactly, however busy the machine):
//!
//! ```sh
//! cargo build --release -p cache-benches --bin hitcost
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.ours  target/release/hitcost ours
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.quick target/release/hitcost quick
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.lfu   target/release/hitcost ours-lfu
//! ```
//!
//! `get` and `get-tagged` time `Cache::get` on entries loaded without tags and with two tags.
//! `get-ttl`, `get-tti` and `get-ttl-tti` time `Cache::get` (untagged) in a cache with a TTL
//! (1 h), a time-to-idle (10 min), or both: against `get` (neither), what a hit pays for each.
//!
//! `get-lru` and `get-lfu` time `Cache::get` with a TTL (1 h) and those policies.
//!
//! `quick-str`, `ours-lru-str` and `ours-lfu-str` do the same with 64-byte `String` keys
//! (looked up by `&str`).
//!
//! `KEYS` (environment) sets how many keys are inserted and cycled through (10,000 by default),
//! and `CAP` the capacity of the caches of `get-ttl`, `get-tti`, `get-ttl-tti`, `get-lru` and
//! `get-lfu` (20,000 by default).
//!
//! Both programs do the same set-up (10,000 inserts into each cache); the difference of the
//! totals, divided by 1,000,000, is the extra cost of one non-inlined `#[cached]` hit.

#![allow(missing_docs)]

use std::hint::black_box;

use cache_runtime::Policy;

#[cache_runtime::cached(ttl = "1h", capacity = 20_000)]
fn ours(x: u64) -> u64 {
    black_box(x).wrapping_mul(3)
}

#[cache_runtime::cached(ttl = "1h", capacity = 20_000, policy = "lru")]
fn ours_lru(x: u64) -> u64 {
    black_box(x).wrapping_mul(3)
}

#[cache_runtime::cached(ttl = "1h", capacity = 20_000, policy = "lfu")]
fn ours_lfu(x: u64) -> u64 {
    black_box(x).wrapping_mul(3)
}

#[cache_runtime::cached(ttl = "1h", capacity = 20_000, policy = "lru")]
fn ours_lru_str(s: &str) -> u64 {
    black_box(s.len() as u64)
}

#[cache_runtime::cached(ttl = "1h", capacity = 20_000, policy = "lfu")]
fn ours_lfu_str(s: &str) -> u64 {
    black_box(s.len() as u64)
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let n: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let nkeys: u64 = std::env::var("KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // `CAP` (environment) sets the capacity of the `get-*` modes' timed caches (20,000 by
    // default): below 1,024, `lru` and `lfu` take the write lock on every hit.
    let cap: u64 = std::env::var("CAP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let keys: Vec<u64> = (0..nkeys).map(|i| i.wrapping_mul(0x9E37_79B9)).collect();
    let q = quick_cache::sync::Cache::<u64, u64>::new(20_000);
    // 64-byte `String` keys, as the `peers` bench's (`*-str` modes).
    let strings: Vec<String> = keys.iter().map(|k| format!("{k:064}")).collect();
    let q_str = quick_cache::sync::Cache::<String, u64>::new(20_000);
    for s in &strings {
        q_str.insert(s.clone(), s.len() as u64);
        ours_lru_str(s);
        ours_lfu_str(s);
    }
    for &k in &keys {
        q.insert(k, k);
        ours(k);
        ours_lru(k);
        ours_lfu(k);
    }
    // `Cache::get` on entries without tags and with two tags each (issue 15).
    let plain: cache_runtime::Cache<u64, u64> = cache_runtime::Cache::builder()
        .capacity(20_000)
        .build()
        .unwrap();
    let tagged: cache_runtime::Cache<u64, u64> = cache_runtime::Cache::builder()
        .capacity(20_000)
        .build()
        .unwrap();
    // `Cache::get` with a TTL, a time-to-idle, both (issue 16, item 2); with a TTL and the `lru`
    // or `lfu` policy, as the `peers` bench's `ours_cache_lru` and `ours_cache_lfu` (issue 18).
    let timed = |ttl: bool, tti: bool, policy: Policy| {
        let b = cache_runtime::Cache::<u64, u64>::builder()
            .capacity(cap)
            .policy(policy);
        let b = if ttl {
            b.ttl(std::time::Duration::from_secs(3_600))
        } else {
            b
        };
        let b = if tti {
            b.time_to_idle(std::time::Duration::from_secs(600))
        } else {
            b
        };
        let c = b.build().unwrap();
        for &k in &keys {
            c.insert(k, k);
        }
        c
    };
    let (with_ttl, with_tti, with_both) = (
        timed(true, false, Policy::default()),
        timed(false, true, Policy::default()),
        timed(true, true, Policy::default()),
    );
    let (lru, lfu) = (
        timed(true, false, Policy::Lru),
        timed(true, false, Policy::Lfu),
    );
    for &k in &keys {
        plain.get_or_insert_with(&k, || k);
        tagged.get_or_insert_with(&k, || {
            cache_runtime::tag("catalog");
            cache_runtime::tag(format!("store:{}", k % 16));
            k
        });
    }
    let raw = |k: u64| q.get(&k).unwrap_or(0);
    let get_plain = |k: u64| plain.get(&k).unwrap_or(0);
    let get_tagged = |k: u64| tagged.get(&k).unwrap_or(0);
    let get_ttl = |k: u64| with_ttl.get(&k).unwrap_or(0);
    let get_tti = |k: u64| with_tti.get(&k).unwrap_or(0);
    let get_ttl_tti = |k: u64| with_both.get(&k).unwrap_or(0);
    let get_lru = |k: u64| lru.get(&k).unwrap_or(0);
    let get_lfu = |k: u64| lfu.get(&k).unwrap_or(0);
    let by_str = |f: &dyn Fn(&str) -> u64| {
        let mut i = 0;
        let mut sum = 0u64;
        for _ in 0..n {
            i = (i + 1) % strings.len();
            sum = sum.wrapping_add(f(&strings[i]));
        }
        println!("{which}: {n} hits, checksum {sum}");
    };
    match which.as_str() {
        "quick-str" => return by_str(&|s| q_str.get(s).unwrap_or(0)),
        "ours-lru-str" => return by_str(&ours_lru_str),
        "ours-lfu-str" => return by_str(&ours_lfu_str),
        _ => {}
    }
    let f: &(dyn Fn(u64) -> u64 + Sync) = match which.as_str() {
        "get" => &get_plain,
        "get-tagged" => &get_tagged,
        "get-ttl" => &get_ttl,
        "get-tti" => &get_tti,
        "get-ttl-tti" => &get_ttl_tti,
        "get-lru" => &get_lru,
        "get-lfu" => &get_lfu,
        "ours" => &ours,
        "ours-lru" => &ours_lru,
        "ours-lfu" => &ours_lfu,
        _ => &raw,
    };
    let mut i = 0;
    let mut sum = 0u64;
    for _ in 0..n {
        i = (i + 1) % keys.len();
        sum = sum.wrapping_add(f(keys[i]));
    }
    println!("{which}: {n} hits, checksum {sum}");
}
