//! `#[cached]` on every kind of function: the body runs only on a miss, and keeps its meaning.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{Cache, cached, registry, uncached, uncached_async};

static SQUARE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Doc comments stay on the function.
#[cached]
fn square(x: u64) -> u64 {
    SQUARE_RUNS.fetch_add(1, Ordering::SeqCst);
    x * x
}

#[test]
fn free_function_body_runs_once_per_key() {
    assert_eq!(square(4), 16);
    assert_eq!(square(4), 16);
    assert_eq!(square(5), 25);
    assert_eq!(SQUARE_RUNS.load(Ordering::SeqCst), 2);
    let c: Cache<u64, u64> = registry::get(concat!(module_path!(), "::square")).unwrap();
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.loads), (1, 2, 2));
}

static GREET_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(capacity = 100, ttl = "1h", policy = "lru")]
pub(crate) fn greet(name: &str, punctuation: char) -> String {
    GREET_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("hello, {name}{punctuation}")
}

#[test]
fn borrowed_and_multiple_arguments_make_an_owned_key() {
    assert_eq!(greet("ada", '!'), "hello, ada!");
    assert_eq!(greet("ada", '!'), "hello, ada!");
    assert_eq!(greet("ada", '?'), "hello, ada?");
    assert_eq!(GREET_RUNS.load(Ordering::SeqCst), 2);
    let c: Cache<(String, char), String> =
        registry::get(concat!(module_path!(), "::greet")).unwrap();
    assert!(c.remove(&("ada".to_string(), '!')));
    assert_eq!(greet("ada", '!'), "hello, ada!");
    assert_eq!(GREET_RUNS.load(Ordering::SeqCst), 3);
}

#[derive(Debug, Clone, PartialEq)]
struct NotFound;

static FIND_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(name = "tests.find", negative_ttl = "10s", ttl = "1m", jitter = 0.1)]
fn find(id: u32) -> Result<String, NotFound> {
    FIND_RUNS.fetch_add(1, Ordering::SeqCst);
    if id == 0 {
        return Err(NotFound);
    }
    let doubled = id.checked_mul(2).ok_or(NotFound)?;
    Ok(format!("item-{doubled}"))
}

#[test]
fn result_with_negative_caching_and_early_return_and_question_mark() {
    assert_eq!(find(0), Err(NotFound));
    assert_eq!(find(0), Err(NotFound));
    assert_eq!(find(2), Ok("item-4".into()));
    assert_eq!(find(2), Ok("item-4".into()));
    assert_eq!(find(u32::MAX), Err(NotFound));
    assert_eq!(FIND_RUNS.load(Ordering::SeqCst), 3);
    let c: Cache<u32, String, NotFound> = registry::get_negative("tests.find").unwrap();
    assert_eq!(c.stats().negative_hits, 1);
}

static PARSE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn parse(s: &str) -> Result<i64, std::num::ParseIntError> {
    PARSE_RUNS.fetch_add(1, Ordering::SeqCst);
    let n: i64 = s.trim().parse()?;
    Ok(n)
}

#[test]
fn result_errors_are_not_cached_without_negative_ttl() {
    assert!(parse("x").is_err());
    assert!(parse("x").is_err());
    assert_eq!(parse("42"), Ok(42));
    assert_eq!(parse("42"), Ok(42));
    assert_eq!(PARSE_RUNS.load(Ordering::SeqCst), 3);
}

static LOOKUP_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(negative_ttl = "5s")]
fn lookup_user(id: u64) -> Option<String> {
    LOOKUP_RUNS.fetch_add(1, Ordering::SeqCst);
    (id < 10).then(|| format!("user{id}"))
}

#[test]
fn option_none_cached_with_negative_ttl() {
    assert_eq!(lookup_user(50), None);
    assert_eq!(lookup_user(50), None);
    assert_eq!(lookup_user(5), Some("user5".into()));
    assert_eq!(lookup_user(5), Some("user5".into()));
    assert_eq!(LOOKUP_RUNS.load(Ordering::SeqCst), 2);
}

struct Db {
    queries: AtomicUsize,
}

impl Db {
    #[cached(key = id, name = "tests.Db.user_name")]
    fn user_name(&self, id: u64) -> String {
        self.queries.fetch_add(1, Ordering::SeqCst);
        format!("user-{id}")
    }

    #[cached(key = id)]
    async fn user_age(&self, id: u64) -> Result<u8, String> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1)).await;
        u8::try_from(id).map_err(|e| e.to_string())
    }
}

#[test]
fn method_with_key() {
    let db = Db {
        queries: AtomicUsize::new(0),
    };
    assert_eq!(db.user_name(1), "user-1");
    assert_eq!(db.user_name(1), "user-1");
    assert_eq!(db.queries.load(Ordering::SeqCst), 1);
    // Call without the cache.
    assert_eq!(uncached(|| db.user_name(1)), "user-1");
    assert_eq!(db.queries.load(Ordering::SeqCst), 2);
    let c: Cache<u64, String> = registry::get("tests.Db.user_name").unwrap();
    c.insert(1, "renamed".into());
    assert_eq!(db.user_name(1), "renamed");
}

#[tokio::test]
async fn async_method() {
    let db = Db {
        queries: AtomicUsize::new(0),
    };
    assert_eq!(db.user_age(7).await, Ok(7));
    assert_eq!(db.user_age(7).await, Ok(7));
    assert!(db.user_age(700).await.is_err());
    assert_eq!(db.queries.load(Ordering::SeqCst), 2);
    assert_eq!(uncached_async(db.user_age(7)).await, Ok(7));
    assert_eq!(db.queries.load(Ordering::SeqCst), 3);
}
