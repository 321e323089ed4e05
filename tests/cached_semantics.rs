//! The rewritten function keeps its meaning: attributes, visibility, `return`, `?`, shadowing,
//! awkward argument names, trait impls, `impl Trait` arguments, renamed runtime crates.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{Cache, cached, registry};

mod inner {
    use cache_runtime::cached;

    /// Visible outside its module.
    #[cached(ttl = "10m")]
    pub fn public_fn(x: u32) -> u32 {
        x + 1
    }

    #[cached]
    pub(crate) fn crate_fn(x: u32) -> u32 {
        x + 2
    }

    #[cached]
    pub(super) fn super_fn(x: u32) -> u32 {
        x + 3
    }
}

#[test]
fn visibility_is_kept() {
    assert_eq!(inner::public_fn(1), 2);
    assert_eq!(inner::crate_fn(1), 3);
    assert_eq!(inner::super_fn(1), 4);
}

#[cfg(any())]
#[cached]
fn compiled_out(x: u32) -> u32 {
    does_not_exist(x)
}

#[cfg(not(any()))]
#[cached]
#[inline]
#[must_use]
#[allow(clippy::let_and_return)]
fn kept_attributes(x: u32) -> u32 {
    let y = x * 2;
    y
}

#[test]
fn cfg_and_other_attributes_are_kept() {
    assert_eq!(kept_attributes(4), 8);
}

static EARLY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn early_return(x: i64) -> i64 {
    EARLY_RUNS.fetch_add(1, Ordering::SeqCst);
    if x < 0 {
        return -1;
    }
    // Shadowing inside the body.
    let x = x * 10;
    let y = x;
    let x = y + 1;
    x.max(y)
}

#[cached]
fn mutates_its_argument(mut n: u64) -> u64 {
    n += 1;
    n
}

#[test]
fn mut_arguments() {
    assert_eq!(mutates_its_argument(1), 2);
    assert_eq!(mutates_its_argument(1), 2);
    assert_eq!(cache_runtime::uncached(|| mutates_its_argument(5)), 6);
}

#[test]
fn return_and_shadowing_keep_their_meaning() {
    assert_eq!(early_return(-5), -1);
    assert_eq!(early_return(-5), -1);
    assert_eq!(early_return(2), 21);
    assert_eq!(EARLY_RUNS.load(Ordering::SeqCst), 2);
}

/// Arguments named like the things a macro generates (the peer crate broke on these).
#[cached]
fn awkward_names(key: u32, cache: u32, value: u32) -> u32 {
    key * 100 + cache * 10 + value
}

#[cached(key = (key, value))]
fn awkward_names_with_key(key: u32, cache: &str, value: u32) -> String {
    format!("{key}{cache}{value}")
}

#[test]
fn arguments_named_key_cache_value() {
    assert_eq!(awkward_names(1, 2, 3), 123);
    assert_eq!(awkward_names(1, 2, 3), 123);
    assert_eq!(awkward_names_with_key(1, "x", 2), "1x2");
    // `cache` is not part of this key: the first result is served.
    assert_eq!(awkward_names_with_key(1, "y", 2), "1x2");
}

#[derive(Debug)]
struct ParseError(String);

impl From<std::num::ParseIntError> for ParseError {
    fn from(e: std::num::ParseIntError) -> Self {
        ParseError(e.to_string())
    }
}

/// An alias named `Result`, like `std::io::Result`: detected by its name.
mod parse {
    pub type Result<T> = std::result::Result<T, super::ParseError>;
}

#[cached]
fn parse_alias(s: &str) -> parse::Result<u64> {
    // `?` converts through `From`, to the declared error type.
    Ok(s.parse::<u64>()? * 2)
}

/// A `Result` alias whose name the macro cannot see through, with the override.
type Lookup = Result<u64, String>;

static LOOKUP_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(returns = "result", negative_ttl = "1m")]
fn lookup(x: u64) -> Lookup {
    LOOKUP_RUNS.fetch_add(1, Ordering::SeqCst);
    if x == 0 { Err("zero".into()) } else { Ok(x) }
}

#[test]
fn result_aliases_and_question_mark_conversion() {
    assert_eq!(parse_alias("21").unwrap(), 42);
    assert_eq!(
        parse_alias("x").unwrap_err().0,
        "invalid digit found in string"
    );
    assert_eq!(lookup(0), Err("zero".into()));
    assert_eq!(lookup(0), Err("zero".into()));
    assert_eq!(LOOKUP_RUNS.load(Ordering::SeqCst), 1, "the Err was cached");
}

#[cached(key = id)]
fn describe(label: impl std::fmt::Display, id: u64) -> String {
    format!("{label}#{id}")
}

#[test]
fn impl_trait_argument_with_an_explicit_key() {
    assert_eq!(describe("a", 1), "a#1");
    assert_eq!(describe(String::from("b"), 1), "a#1");
}

#[derive(Clone)]
struct User {
    id: u64,
    name: String,
}

#[cached(key = (user.id, region.clone()), key_type = (u64, String), name = "tests.greeting")]
fn greeting(user: &User, region: &String) -> String {
    format!("{}@{region}", user.name)
}

static REGION_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The key's type is left to the compiler: no `key_type`.
#[cached(key = (user.id, region.clone()), name = "tests.inferred")]
fn by_region(user: &User, region: &String) -> String {
    REGION_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{}@{region}", user.name)
}

#[cached(key = user.id * 2)]
async fn doubled_id(user: &User) -> u64 {
    user.id * 2
}

#[tokio::test]
async fn key_expression_of_an_inferred_type() {
    let ada = User {
        id: 1,
        name: "ada".into(),
    };
    let eu = "eu".to_string();
    assert_eq!(by_region(&ada, &eu), "ada@eu");
    assert_eq!(by_region(&ada, &eu), "ada@eu");
    assert_eq!(REGION_RUNS.load(Ordering::SeqCst), 1);
    let c: Cache<(u64, String), String> = registry::get("tests.inferred").unwrap();
    assert_eq!(c.stats().hits, 1);
    c.clear();
    assert_eq!(by_region(&ada, &eu), "ada@eu");
    assert_eq!(REGION_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(cache_runtime::uncached(|| by_region(&ada, &eu)), "ada@eu");
    assert_eq!(REGION_RUNS.load(Ordering::SeqCst), 3);
    assert_eq!(doubled_id(&ada).await, 2);
    assert_eq!(doubled_id(&ada).await, 2);
}

#[test]
fn key_expression_over_fields_with_key_type() {
    let ada = User {
        id: 1,
        name: "ada".into(),
    };
    assert_eq!(greeting(&ada, &"eu".to_string()), "ada@eu");
    let renamed = User {
        id: 1,
        name: "lovelace".into(),
    };
    // Same key: the cached answer.
    assert_eq!(greeting(&renamed, &"eu".to_string()), "ada@eu");
    let c: Cache<(u64, String), String> = registry::get("tests.greeting").unwrap();
    assert!(c.remove(&(1, "eu".to_string())));
    assert_eq!(greeting(&renamed, &"eu".to_string()), "lovelace@eu");
}

const FIVE_SECONDS: Duration = Duration::from_secs(5);

#[cached(ttl = FIVE_SECONDS, capacity = 2 * 1024, policy = "lfu")]
fn with_const_settings(x: u8) -> u8 {
    x
}

#[cached(unbounded, policy = "fifo", name = "tests.unbounded")]
fn unbounded_cache(x: u32) -> u32 {
    x
}

#[test]
fn settings_as_expressions_and_unbounded() {
    assert_eq!(with_const_settings(3), 3);
    for i in 0..50_000 {
        unbounded_cache(i);
    }
    let c: Cache<u32, u32> = registry::get("tests.unbounded").unwrap();
    assert_eq!(c.len(), 50_000);
    assert_eq!(c.policy(), cache_runtime::Policy::Fifo);
}

#[cached]
fn no_arguments() -> u64 {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    RUNS.fetch_add(1, Ordering::SeqCst) as u64
}

#[test]
fn no_arguments_cache_one_value() {
    assert_eq!(no_arguments(), no_arguments());
}

trait Repository {
    fn name_of(&self, id: u64) -> String;
    async fn age_of(&self, id: u64) -> Option<u8>;
}

struct Repo {
    queries: AtomicUsize,
}

impl Repository for Repo {
    #[cached(key = id, name = "tests.Repo.name_of")]
    fn name_of(&self, id: u64) -> String {
        self.queries.fetch_add(1, Ordering::SeqCst);
        format!("n{id}")
    }

    #[cached(key = id, negative_ttl = "1m")]
    async fn age_of(&self, id: u64) -> Option<u8> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        u8::try_from(id).ok()
    }
}

#[tokio::test]
async fn trait_impl_methods_sync_and_async() {
    let repo = Repo {
        queries: AtomicUsize::new(0),
    };
    assert_eq!(repo.name_of(1), "n1");
    assert_eq!(repo.name_of(1), "n1");
    assert_eq!(repo.age_of(3).await, Some(3));
    assert_eq!(repo.age_of(3).await, Some(3));
    assert_eq!(repo.age_of(300).await, None);
    assert_eq!(repo.age_of(300).await, None);
    assert_eq!(repo.queries.load(Ordering::SeqCst), 3);
    let c: Cache<u64, String> = registry::get("tests.Repo.name_of").unwrap();
    c.clear();
    assert_eq!(repo.name_of(1), "n1");
    assert_eq!(repo.queries.load(Ordering::SeqCst), 4);
}

mod renamed {
    extern crate cache_runtime as memo;

    #[memo::cached(crate = memo)]
    pub fn through_renamed_crate(x: u32) -> u32 {
        x * 3
    }
}

#[test]
fn crate_argument_for_a_renamed_dependency() {
    assert_eq!(renamed::through_renamed_crate(2), 6);
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(name = "tests.slow")]
fn slow(x: u64) -> u64 {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(30));
    x
}

#[test]
fn concurrent_calls_of_a_memoized_function_run_its_body_once() {
    let barrier = Arc::new(std::sync::Barrier::new(32));
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                slow(7)
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 7);
    }
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 1);
    let s = registry::get::<u64, u64>("tests.slow").unwrap().stats();
    assert_eq!(s.loads, 1);
    assert_eq!(s.hits + s.misses, 32);
    // A caller preempted between its miss and the flight table until the load was over finds
    // the value stored: neither a hit nor joined (see `CacheStats`).
    assert!(s.joined + s.hits <= 31, "{s:?}");
}

static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn slow_async(x: u64) -> u64 {
    ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(30)).await;
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_async_calls_run_the_body_once() {
    let tasks: Vec<_> = (0..500).map(|_| tokio::spawn(slow_async(9))).collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 9);
    }
    assert_eq!(ASYNC_RUNS.load(Ordering::SeqCst), 1);
}
