//! `cache_put` / `cache_evict` on a function backed by Redis: the write and the invalidation
//! reach the shared tier (and, through `Cache::insert`/`remove`, the L1 broadcast), not just this
//! process's memory. One test: the backend configuration is installed once per process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_runtime::config::{self, Redis};
use cache_runtime::{cache_evict, cache_put, cached};

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(backend = "shared", ttl = "1m", name = "patterns-redis.user")]
fn user(id: u64) -> String {
    LOADS.fetch_add(1, Ordering::SeqCst);
    format!("db-{id}")
}

#[cache_put(user, key = id)]
fn save(id: u64, name: String) -> Result<String, String> {
    if name.is_empty() {
        Err("empty".into())
    } else {
        Ok(name)
    }
}

#[cache_evict(user, key = id)]
async fn delete(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

#[cache_evict(user, all)]
fn clear_users() {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_evict_reach_redis() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("cache-rs-test:patterns:{}:{nanos}", std::process::id());
    config::configure()
        .backend(
            "shared",
            Redis::url(cache_test_support::redis_url())
                .prefix(prefix.clone())
                .timeout(Duration::from_secs(2))
                .l1_ttl(Duration::from_secs(30)),
        )
        .install()
        .unwrap();
    let client = redis::Client::open(cache_test_support::redis_url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let mut keys = move || -> usize {
        let k: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:patterns-redis.user:*"))
            .query(&mut con)
            .unwrap();
        k.len()
    };
    let c = __cache_of_user();

    let loads = || LOADS.load(Ordering::SeqCst);
    tokio::task::spawn_blocking(|| {
        assert_eq!(user(1), "db-1");
        assert_eq!(save(1, "ada".into()), Ok("ada".into()));
        assert!(save(1, String::new()).is_err());
    })
    .await
    .unwrap();
    assert_eq!(keys(), 1);
    // Drop this process's copy: the value comes back from Redis, not from a load.
    c.evict_local(&1);
    assert_eq!(
        tokio::task::spawn_blocking(|| user(1)).await.unwrap(),
        "ada"
    );
    assert_eq!(loads(), 1);
    assert_eq!(c.stats().remote_hits, 1);

    // A put of a key this process never read lands in Redis too.
    tokio::task::spawn_blocking(|| save(2, "bob".into()).unwrap())
        .await
        .unwrap();
    assert_eq!(keys(), 2);

    // Eviction deletes the Redis copy: after it, even a fresh process would load.
    delete(1).await.unwrap();
    assert_eq!(keys(), 1);
    assert_eq!(
        tokio::task::spawn_blocking(|| user(1)).await.unwrap(),
        "db-1"
    );
    assert_eq!(loads(), 2);

    tokio::task::spawn_blocking(clear_users).await.unwrap();
    assert_eq!(keys(), 0, "`all` clears the cache's namespace in Redis");
    assert!(c.is_empty());
}
