//! Expansions are clean: every kind of annotated function compiles here under
//! `#![deny(warnings, clippy::all, clippy::pedantic)]`, which CI checks with
//! `cargo clippy --workspace --all-targets -- -D warnings`.

#![deny(warnings, clippy::all, clippy::pedantic)]
#![forbid(unsafe_code)]

use std::time::Duration;

use cache_runtime::{cache_evict, cache_put, cached};

/// A plain function.
#[cached]
fn plain(x: u64) -> u64 {
    x + 1
}

/// Borrowed and several arguments, every setting.
#[cached(
    ttl = "1m30s",
    capacity = 1_000,
    policy = "lru",
    jitter = 0.1,
    name = "lint.settings"
)]
fn settings(name: &str, n: u32, tags: &[u8]) -> String {
    format!("{name}{n}{}", tags.len())
}

const TTL: Duration = Duration::from_secs(60);

/// `Result` with negative caching and an expression TTL.
#[cached(ttl = TTL, negative_ttl = "1s", jitter = "5s")]
fn result_negative(x: u32) -> Result<u32, String> {
    if x == 0 {
        return Err("zero".to_owned());
    }
    Ok(x)
}

/// `Result` without negative caching, with `?`.
#[cached(policy = "lfu")]
fn result_plain(s: &str) -> Result<i64, std::num::ParseIntError> {
    let n: i64 = s.parse()?;
    Ok(n)
}

/// `Option`, both ways.
#[cached(negative_ttl = "5s")]
fn option_negative(x: u8) -> Option<u8> {
    x.checked_mul(2)
}

#[cached(unbounded)]
fn option_plain(x: u8) -> Option<u8> {
    x.checked_add(1)
}

/// No arguments.
#[cached]
fn constant() -> Vec<u8> {
    vec![1, 2, 3]
}

/// Async, with a key expression.
#[cached(key = (a, b), ttl = "10s")]
async fn async_key(a: u64, b: u64, _log: &str) -> u64 {
    a + b
}

/// Key method-call expression.
#[cached(key = s.to_string())]
fn to_string_key(s: &str) -> usize {
    s.len()
}

#[derive(Default)]
struct Service;

impl Service {
    #[cached(key = id)]
    fn method(&self, id: u64) -> String {
        let _ = self;
        id.to_string()
    }

    #[cached(key = id, negative_ttl = "1s")]
    async fn async_method(&self, id: u64) -> Result<u64, String> {
        let _ = self;
        Ok(id)
    }

    #[cached]
    fn associated(id: u64) -> u64 {
        id
    }
}

trait Named {
    fn name(&self, id: u32) -> String;
}

impl Named for Service {
    #[cached(key = id)]
    fn name(&self, id: u32) -> String {
        let _ = self;
        format!("#{id}")
    }
}

/// Stale-while-revalidate with conditions and a per-value TTL.
#[cached(stale = "30s", ttl_fn = |v: &u64| Duration::from_secs(*v + 1), unless = |v: &u64| *v == 7, if = id != 0)]
fn swr(id: u64) -> Option<u64> {
    Some(id)
}

/// Early refresh, async, `Result`.
#[cached(ttl = "1m", early_refresh = 1.0, negative_ttl = "1s")]
async fn early(id: u64) -> Result<u64, String> {
    Ok(id)
}

/// Stale-while-revalidate, async: the refresh runs as a task.
#[cached(ttl = "1m", stale = "30s")]
async fn async_swr(id: u64) -> Option<u64> {
    Some(id)
}

/// A key whose type the compiler infers (`key = <expr>`, no `key_type`).
#[cached(key = x / 2 + y)]
fn inferred_key(x: u64, y: u64) -> u64 {
    x + y
}

/// An inferred key, async, `Result` with negative caching.
#[cached(key = x % 10, negative_ttl = "1s")]
async fn async_inferred_key(x: u64) -> Result<u64, String> {
    Ok(x)
}

/// Write-through.
#[cache_put(swr, key = id)]
fn put_swr(id: u64) -> Option<u64> {
    Some(id + 1)
}

/// Invalidation on write, async.
#[cache_evict(early, key = id)]
async fn evict_early(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

/// Clear on write.
#[cache_evict(plain, all)]
fn clear_plain() {}

/// A function on a named backend: its backend's name is registered at link time (for
/// `config::verify`), with no `unsafe` of ours (this crate forbids it).
#[cached(backend = "lint.nowhere", ttl = "1m", name = "lint.on_backend", version = 2, tags = ["remote"])]
fn on_backend(x: u64) -> u64 {
    x + 2
}

/// Tags over the arguments and over the value, `depends`, `version`.
#[cached(tags = ["lint", format!("n:{n}"), |v: &u64| [v.to_string()]], depends = false, version = 3)]
fn tagged(n: u64) -> u64 {
    n
}

/// Tags, async, over the `Ok` value (an unannotated closure), with `?` in the body.
#[cached(tags = [format!("s:{s}"), |v| vec![v.clone()]], negative_ttl = "1s")]
async fn tagged_async(s: String) -> Result<String, std::num::ParseIntError> {
    let n: u64 = s.parse()?;
    Ok(n.to_string())
}

/// Tags on a refreshing function (`stale`) with an inferred-key sibling.
#[cached(ttl = "1m", stale = "30s", tags = ["swr"], depends = true)]
fn tagged_swr(id: u64) -> Option<u64> {
    Some(id)
}

#[cached(key = x / 2, tags = |v: &u64| [format!("half:{v}")])]
fn tagged_inferred(x: u64) -> u64 {
    x / 2
}

impl Service {
    #[cached(key = id, tags = [format!("svc:{id}")])]
    fn tagged_method(&self, id: u64) -> u64 {
        let _ = self;
        id
    }
}

/// Evicts a key and a tag in one cache.
#[cache_evict(tagged, key = n, tags = ["lint"])]
fn retag(n: u64) {
    let _ = n;
}

/// Invalidates a tag made of the result in every cache.
#[cache_evict(tags = ["swr", format!("n:{result}")])]
fn retag_all(n: u64) -> Result<u64, String> {
    Ok(n)
}

/// A batch: a slice of keys in, a map of those found out; "not found" cached.
#[cached(batch, ttl = "1m", negative_ttl = "10s", capacity = 100)]
fn batch_slice(ids: &[u64]) -> std::collections::HashMap<u64, String> {
    ids.iter()
        .filter(|id| **id > 0)
        .map(|id| (*id, id.to_string()))
        .collect()
}

/// An async batch that can fail, over an owned set, into an ordered map.
#[cached(batch)]
async fn batch_async(
    mut ids: std::collections::HashSet<u32>,
) -> Result<std::collections::BTreeMap<u32, u32>, String> {
    ids.remove(&0);
    Ok(ids.into_iter().map(|id| (id, id * 2)).collect())
}

/// A batch on a remote backend (never configured here: in memory only).
#[cached(batch, backend = "lint.nowhere_batch", name = "lint.batch_remote")]
fn batch_remote(ids: Vec<u64>) -> std::collections::HashMap<u64, u64> {
    ids.into_iter().map(|id| (id, id)).collect()
}

#[test]
fn all_kinds_run() {
    assert_eq!(swr(3), Some(3));
    assert_eq!(put_swr(3), Some(4));
    assert_eq!(swr(3), Some(4));
    clear_plain();
    assert_eq!(plain(1), 2);
    assert_eq!(settings("a", 1, &[1]), "a11");
    assert_eq!(result_negative(0), Err("zero".to_owned()));
    assert_eq!(result_plain("5"), Ok(5));
    assert_eq!(option_negative(200), None);
    assert_eq!(option_plain(1), Some(2));
    assert_eq!(constant(), vec![1, 2, 3]);
    assert_eq!(to_string_key("abc"), 3);
    let s = Service;
    assert_eq!(s.method(4), "4");
    assert_eq!(Service::associated(5), 5);
    assert_eq!(s.name(6), "#6");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(async_key(1, 2, "x")), 3);
    assert_eq!(rt.block_on(s.async_method(7)), Ok(7));
    assert_eq!(rt.block_on(early(2)), Ok(2));
    assert_eq!(rt.block_on(evict_early(2)), Ok(()));
    assert_eq!(rt.block_on(async_swr(8)), Some(8));
    assert_eq!(inferred_key(4, 1), 5);
    assert_eq!(rt.block_on(async_inferred_key(12)), Ok(12));
    assert_eq!(tagged(3), 3);
    retag(3);
    assert_eq!(retag_all(3), Ok(3));
    assert_eq!(
        rt.block_on(tagged_async("4".to_owned())),
        Ok("4".to_owned())
    );
    assert_eq!(tagged_swr(5), Some(5));
    assert_eq!(tagged_inferred(9), 4);
    assert_eq!(s.tagged_method(6), 6);
    assert_eq!(batch_slice(&[0, 1, 2]).len(), 2);
    assert_eq!(
        rt.block_on(batch_async([0, 3].into_iter().collect())),
        Ok([(3, 6)].into_iter().collect())
    );
    assert_eq!(batch_remote(vec![1, 2]).len(), 2);
    // Never configured: in memory only, and `verify` names it.
    assert_eq!(on_backend(1), 3);
    let missing = cache_runtime::config::verify().unwrap_err().to_string();
    assert!(
        missing.contains("`lint.on_backend` uses `lint.nowhere`"),
        "{missing}"
    );
}
