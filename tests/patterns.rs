//! The caching patterns as attributes: write-through (`cache_put`), invalidation on write
//! (`cache_evict`), conditional caching (`unless`, `if`), per-value TTLs (`ttl_fn`),
//! stale-while-revalidate (`stale`), early refresh (`early_refresh`) and warming. Each test
//! counts loader runs: what a user relies on is that the database is (or is not) asked again.

#![deny(warnings)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{cache_evict, cache_put, cached, warm};

#[derive(Clone, Debug, PartialEq)]
struct User {
    id: u64,
    name: String,
}

static USER_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(capacity = 100)]
fn load_user(id: u64) -> Option<User> {
    USER_LOADS.fetch_add(1, Ordering::SeqCst);
    Some(User {
        id,
        name: format!("db-{id}"),
    })
}

#[cache_put(load_user, key = user.id)]
fn save_user(user: User) -> Result<User, String> {
    if user.name.is_empty() {
        return Err("a user needs a name".into());
    }
    Ok(user)
}

#[cache_evict(load_user, key = id)]
fn delete_user(id: u64) -> Result<(), String> {
    if id == 0 {
        Err("user 0 is protected".into())
    } else {
        Ok(())
    }
}

#[cache_evict(load_user, all)]
fn reset_users() {}

fn loads() -> usize {
    USER_LOADS.load(Ordering::SeqCst)
}

#[test]
fn put_and_evict_keep_the_read_cache_in_step_and_do_nothing_on_err() {
    // Ids 1000.. are this test's own.
    let before = loads();
    assert_eq!(load_user(1000).unwrap().name, "db-1000");
    assert_eq!(loads(), before + 1);

    // Write-through: the saved value is what the next read returns, without a load.
    let saved = save_user(User {
        id: 1000,
        name: "ada".into(),
    });
    assert!(saved.is_ok());
    assert_eq!(load_user(1000).unwrap().name, "ada");
    assert_eq!(loads(), before + 1);

    // A failed write stores nothing.
    assert!(
        save_user(User {
            id: 1000,
            name: String::new()
        })
        .is_err()
    );
    assert_eq!(load_user(1000).unwrap().name, "ada");

    // A put for a key never read: the first read is a hit.
    save_user(User {
        id: 1001,
        name: "bob".into(),
    })
    .unwrap();
    assert_eq!(load_user(1001).unwrap().name, "bob");
    assert_eq!(loads(), before + 1);

    // Invalidation on write: the next read loads again.
    delete_user(1000).unwrap();
    assert_eq!(load_user(1000).unwrap().name, "db-1000");
    assert_eq!(loads(), before + 2);

    // A failed delete evicts nothing.
    assert_eq!(load_user(0).unwrap().name, "db-0");
    let n = loads();
    assert!(delete_user(0).is_err());
    assert_eq!(load_user(0).unwrap().name, "db-0");
    assert_eq!(loads(), n, "still cached");
}

static EVICT_ALL_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn catalog_entry(id: u32) -> u32 {
    EVICT_ALL_LOADS.fetch_add(1, Ordering::SeqCst);
    id * 2
}

#[cache_evict(catalog_entry, all)]
fn reload_catalog() -> Result<(), String> {
    Ok(())
}

#[test]
fn evict_all_clears_the_whole_cache() {
    for i in 0..10 {
        catalog_entry(i);
        catalog_entry(i);
    }
    assert_eq!(EVICT_ALL_LOADS.load(Ordering::SeqCst), 10);
    reload_catalog().unwrap();
    for i in 0..10 {
        catalog_entry(i);
    }
    assert_eq!(EVICT_ALL_LOADS.load(Ordering::SeqCst), 20);
    // `reset_users` compiles for a `()` function (it evicts unconditionally). Not called: it
    // would clear `load_user`'s cache under the tests running beside this one.
    let _: fn() = reset_users;
}

/// A key computed from the stored value (`result`: the `Some`/`Ok` value), here the id the
/// database assigned.
#[cache_put(load_user, key = result.id)]
fn create_user(name: &str) -> Option<User> {
    Some(User {
        id: 5000 + name.len() as u64,
        name: name.to_string(),
    })
}

#[test]
fn put_key_can_come_from_the_result() {
    let u = create_user("grace").unwrap();
    // From the cache: a load would have returned the database's name, `db-5005`.
    assert_eq!(
        load_user(u.id),
        Some(u),
        "created, then read from the cache"
    );
}

struct Repo {
    reads: AtomicUsize,
}

impl Repo {
    #[cached(key = id, name = "patterns.Repo.get")]
    pub fn get(&self, id: u64) -> String {
        self.reads.fetch_add(1, Ordering::SeqCst);
        format!("row-{id}")
    }

    #[cache_put(Self::get, key = id)]
    pub fn set(&self, id: u64, row: &str) -> String {
        let _ = self;
        row.to_string()
    }

    #[cache_evict(Self::get, key = id)]
    pub async fn delete(&self, id: u64) -> Result<(), std::io::Error> {
        let _ = (self, id);
        Ok(())
    }
}

#[tokio::test]
async fn methods_and_async_writers() {
    let repo = Repo {
        reads: AtomicUsize::new(0),
    };
    assert_eq!(repo.get(1), "row-1");
    repo.set(1, "changed");
    assert_eq!(repo.get(1), "changed");
    assert_eq!(repo.reads.load(Ordering::SeqCst), 1);
    repo.delete(1).await.unwrap();
    assert_eq!(repo.get(1), "row-1");
    assert_eq!(repo.reads.load(Ordering::SeqCst), 2);
}

static ASYNC_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1h")]
async fn fetch_profile(id: u64) -> Result<String, String> {
    ASYNC_LOADS.fetch_add(1, Ordering::SeqCst);
    Ok(format!("profile-{id}"))
}

#[cache_put(fetch_profile, key = id)]
async fn update_profile(id: u64, text: String) -> Result<String, String> {
    tokio::task::yield_now().await;
    if text.is_empty() {
        Err("empty".into())
    } else {
        Ok(text)
    }
}

#[tokio::test]
async fn async_put_stores_only_successes() {
    assert_eq!(fetch_profile(1).await.unwrap(), "profile-1");
    update_profile(1, "new".into()).await.unwrap();
    assert!(update_profile(1, String::new()).await.is_err());
    assert_eq!(fetch_profile(1).await.unwrap(), "new");
    assert_eq!(ASYNC_LOADS.load(Ordering::SeqCst), 1);
}

static SEARCH_LOADS: AtomicUsize = AtomicUsize::new(0);

/// Empty results are not cached (the index may be catching up).
#[cached(unless = |hits: &Vec<String>| hits.is_empty())]
fn search(q: String) -> Vec<String> {
    SEARCH_LOADS.fetch_add(1, Ordering::SeqCst);
    if q.starts_with('z') {
        Vec::new()
    } else {
        vec![q.to_uppercase()]
    }
}

#[test]
fn unless_skips_caching_some_results() {
    for _ in 0..3 {
        assert_eq!(search("abc".into()), vec!["ABC".to_string()]);
    }
    assert_eq!(SEARCH_LOADS.load(Ordering::SeqCst), 1);
    for _ in 0..3 {
        assert!(search("zzz".into()).is_empty());
    }
    assert_eq!(
        SEARCH_LOADS.load(Ordering::SeqCst),
        4,
        "empty: loaded each time"
    );
}

static RATE_LOADS: AtomicUsize = AtomicUsize::new(0);

/// Only small ids are cached; others skip the cache entirely (not even a lookup).
#[cached(if = id < 100, unless = |r: &u64| *r == 0)]
fn rate(id: u64) -> Result<u64, String> {
    RATE_LOADS.fetch_add(1, Ordering::SeqCst);
    Ok(id % 7)
}

#[test]
fn if_condition_bypasses_the_cache() {
    let cache = __cache_of_rate();
    for _ in 0..3 {
        rate(1).unwrap();
        rate(500).unwrap();
    }
    assert_eq!(
        RATE_LOADS.load(Ordering::SeqCst),
        4,
        "1 cached; 500 loaded 3 times"
    );
    let s = cache.stats();
    assert_eq!(
        (s.hits, s.misses),
        (2, 1),
        "the bypassed calls never looked"
    );
    // `unless` over a `Result` function looks at the `Ok` value.
    rate(7).unwrap();
    rate(7).unwrap();
    assert_eq!(RATE_LOADS.load(Ordering::SeqCst), 6);
}

#[derive(Clone, Debug)]
struct Response {
    body: String,
    max_age: Duration,
}

static HTTP_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl_fn = |r: &Response| r.max_age)]
fn get_url(url: String) -> Response {
    HTTP_LOADS.fetch_add(1, Ordering::SeqCst);
    Response {
        max_age: if url.contains("nostore") {
            Duration::ZERO
        } else {
            Duration::from_secs(300)
        },
        body: url,
    }
}

#[test]
fn ttl_fn_sets_each_values_lifetime() {
    let c = __cache_of_get_url();
    assert_eq!(get_url("/a".into()).body, "/a");
    assert_eq!(get_url("/a".into()).body, "/a");
    assert_eq!(HTTP_LOADS.load(Ordering::SeqCst), 1);
    get_url("/nostore".into());
    get_url("/nostore".into());
    assert_eq!(
        HTTP_LOADS.load(Ordering::SeqCst),
        3,
        "max-age 0 is not cached"
    );
    assert!(c.contains_key("/a"));
    assert!(!c.contains_key("/nostore"));
}

static PRICE_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "40ms", stale = "1h")]
fn price(sku: u32) -> u64 {
    let n = PRICE_LOADS.fetch_add(1, Ordering::SeqCst) as u64;
    u64::from(sku) * 100 + n
}

#[test]
fn stale_values_are_served_while_refreshing_in_the_background() {
    let c = __cache_of_price();
    let first = price(1);
    std::thread::sleep(Duration::from_millis(60)); // past the 40 ms TTL, inside the hour
    assert_eq!(price(1), first, "the stale value, at once");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.loads_in_flight() > 0 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(PRICE_LOADS.load(Ordering::SeqCst), 2);
    let s = c.stats();
    assert_eq!((s.stale_hits, s.refreshes, s.refresh_errors), (1, 1, 0));
    // Last: on a slow machine the refreshed value may itself be past its 40 ms by now (then
    // this call is a stale hit that starts another refresh), but it is the refreshed value.
    assert_eq!(price(1), first + 1, "the refreshed value");
}

static QUOTE_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "40ms", stale = "1h")]
async fn quote(symbol: String) -> Result<u64, String> {
    let n = QUOTE_LOADS.fetch_add(1, Ordering::SeqCst) as u64;
    tokio::task::yield_now().await;
    if n == 1 {
        return Err(format!("{symbol}: feed down"));
    }
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_stale_refresh_failure_keeps_the_value() {
    let c = __cache_of_quote();
    assert_eq!(quote("X".into()).await, Ok(0));
    tokio::time::sleep(Duration::from_millis(60)).await;
    // Stale: served; the background refresh fails (n == 1) and keeps it.
    assert_eq!(quote("X".into()).await, Ok(0));
    while c.loads_in_flight() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(c.stats().refresh_errors, 1);
    // Still stale: the next call refreshes again, successfully.
    assert_eq!(quote("X".into()).await, Ok(0));
    while c.loads_in_flight() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(quote("X".into()).await, Ok(2));
}

#[cached(ttl = "1h", early_refresh = 1.0)]
fn report(day: u32) -> String {
    format!("report-{day}")
}

#[cached(ttl = "1h", early_refresh = 2.0, key = *day, key_type = u32)]
async fn report_async(day: &u32, _verbose: &bool) -> String {
    format!("report-{day}")
}

#[tokio::test]
async fn early_refresh_functions_serve_fresh_values() {
    // Far from expiry an early refresh never fires (its distribution is tested in
    // cache-runtime/tests/refresh.rs with an injected clock).
    for _ in 0..100 {
        assert_eq!(report(1), "report-1");
        assert_eq!(report_async(&1, &true).await, "report-1");
    }
    let s = __cache_of_report().stats();
    assert_eq!((s.loads, s.refreshes, s.hits), (1, 0, 99));
}

static WARM_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(capacity = 1_000)]
fn product(id: u32) -> String {
    WARM_LOADS.fetch_add(1, Ordering::SeqCst);
    format!("product-{id}")
}

#[cached(capacity = 1_000)]
async fn product_async(id: u32) -> Result<String, String> {
    tokio::task::yield_now().await;
    if id == 13 {
        Err("unlucky".into())
    } else {
        Ok(format!("product-{id}"))
    }
}

#[tokio::test]
async fn warming_loads_ahead_of_traffic() {
    let mut last = None;
    let report = warm::warm(0..500u32)
        .concurrency(4)
        .on_progress(|p| last = Some(*p))
        .run(product);
    assert_eq!((report.loaded, report.failed), (500, 0));
    let last = last.unwrap();
    assert_eq!((last.done, last.total), (500, Some(500)));
    assert_eq!(WARM_LOADS.load(Ordering::SeqCst), 500);
    let c = __cache_of_product();
    c.reset_stats();
    for id in 0..500 {
        product(id);
    }
    assert_eq!(c.stats().hits, 500, "traffic after warming is all hits");
    assert_eq!(WARM_LOADS.load(Ordering::SeqCst), 500);

    let report = warm::warm(0..100u32)
        .concurrency(8)
        .try_run_async(product_async)
        .await;
    assert_eq!((report.loaded, report.failed), (99, 1));
    assert_eq!(__cache_of_product_async().len(), 99);
}

macro_rules! two_lookups {
    ($a:ident, $b:ident) => {
        #[cached]
        fn $a(x: u32) -> u32 {
            x + 1
        }

        #[cached]
        fn $b(x: u32) -> u32 {
            x + 2
        }
    };
}

two_lookups!(plus_one, plus_two);

#[test]
fn functions_stamped_out_by_one_macro_keep_their_own_caches() {
    assert_eq!(plus_one(1), 2);
    assert_eq!(plus_two(1), 3, "not plus_one's cached value");
    assert_eq!(plus_one(1), 2);
}
