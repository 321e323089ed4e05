//! Startup configuration of named backends, and `#[cached(backend = "...")]` through it.
//! One test: the configuration is installed once per process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_runtime::cached;
use cache_runtime::config::{self, ConfigError, Redis, Spec};

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(backend = "shared", ttl = "1m", name = "config-test.shared")]
fn shared_square(x: u64) -> u64 {
    SHARED_RUNS.fetch_add(1, Ordering::SeqCst);
    x * x
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Missing(u64);

#[cached(
    backend = "shared",
    ttl = "1m",
    negative_ttl = "5s",
    name = "config-test.lookup"
)]
fn shared_lookup(x: u64) -> Result<String, Missing> {
    if x == 0 {
        Err(Missing(x))
    } else {
        Ok(x.to_string())
    }
}

#[cached(
    backend = "shared",
    distributed_lock = "2s",
    name = "config-test.leased"
)]
async fn leased(x: u64) -> u64 {
    x + 1
}

#[cached(backend = "local")]
fn local_double(x: u64) -> u64 {
    x * 2
}

#[cached(backend = "nowhere")]
fn misconfigured(x: u64) -> u64 {
    x
}

#[test]
fn configure_install_and_use_named_backends() {
    // Mistakes are errors, and install nothing.
    let e = config::configure()
        .from_spec_list("shared=redis://127.0.0.1/;broken")
        .install();
    assert!(matches!(e, Err(ConfigError::Env(_))), "{e:?}");
    let e = config::configure()
        .from_spec_list("x=ftp://example")
        .install();
    assert!(matches!(e, Err(ConfigError::Env(_))), "{e:?}");
    let e = config::configure()
        .backend("a", Spec::Memory)
        .backend("a", Spec::Memory)
        .install();
    assert_eq!(e, Err(ConfigError::Duplicate("a".into())));
    let e = config::configure()
        .backend("bad", Redis::url("not a url"))
        .install();
    assert!(matches!(e, Err(ConfigError::Invalid { .. })), "{e:?}");

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("cache-rs-test:config:{}:{nanos}", std::process::id());
    config::configure()
        .backend(
            "shared",
            Redis::url(cache_test_support::redis_url())
                .prefix(prefix.clone())
                // Generous: the test counts loads, and a timed-out call would load again.
                .timeout(Duration::from_secs(2))
                .l1_ttl(Duration::from_secs(1)),
        )
        .from_spec_list("local=memory")
        .install()
        .unwrap();
    assert_eq!(
        config::configure().backend("other", Spec::Memory).install(),
        Err(ConfigError::AlreadyInstalled)
    );

    // A shared function writes through to Redis, under its namespace.
    assert_eq!(shared_square(7), 49);
    assert_eq!(shared_square(7), 49);
    assert_eq!(SHARED_RUNS.load(Ordering::SeqCst), 1);
    let client = redis::Client::open(cache_test_support::redis_url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:config-test.shared:*"))
        .query(&mut con)
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl: i64 = redis::cmd("PTTL").arg(&keys[0]).query(&mut con).unwrap();
    assert!(
        (50_000..=60_000).contains(&ttl),
        "the TTL became a Redis expiry: {ttl}"
    );

    assert_eq!(shared_lookup(0), Err(Missing(0)));
    assert_eq!(shared_lookup(3), Ok("3".into()));
    assert_eq!(local_double(4), 8);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(leased(1)), 2);
    let leases: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:config-test.leased:*"))
        .query(&mut con)
        .unwrap();
    assert_eq!(
        leases.len(),
        1,
        "the value, and the lease released: {leases:?}"
    );

    // A backend that was never configured: `verify` names the function and the backend at
    // startup (the functions register at link time, called or not), and a call fails open to
    // this process's memory (said once on standard error) instead of panicking.
    match config::verify() {
        Err(ConfigError::Missing(uses)) => {
            assert_eq!(uses.len(), 1, "{uses:?}");
            assert!(uses[0].0.ends_with("::misconfigured"), "{uses:?}");
            assert_eq!(uses[0].1, "nowhere");
        }
        other => panic!("verify should list the misconfigured function: {other:?}"),
    }
    assert_eq!(misconfigured(1), 1);
    assert_eq!(misconfigured(1), 1);
    let cache = cache_runtime::registry::caches()
        .into_iter()
        .find(|c| c.name.ends_with("::misconfigured"))
        .expect("the function's cache, in memory");
    assert_eq!((cache.stats.loads, cache.stats.hits), (1, 1));

    // Leave nothing behind.
    cache_runtime::registry::get::<u64, u64>("config-test.shared")
        .unwrap()
        .clear();
    let _: () = redis::cmd("DEL")
        .arg(
            redis::cmd("KEYS")
                .arg(format!("{prefix}:*"))
                .query::<Vec<String>>(&mut con)
                .unwrap(),
        )
        .query(&mut con)
        .unwrap_or(());
}
