//! A memcached backend in the startup configuration, and `#[cached(backend = "...")]` through it:
//! mistakes are errors of `install`, servers that are down or silent are warnings (bounded in
//! time, never a hang), and the functions share values, negative results and leases through
//! memcached. One test: the configuration is installed once per process.

#[path = "support/servers.rs"]
mod servers;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache_runtime::config::{self, ConfigError, Memcached, Spec};
use cache_runtime::{cached, registry};
use cache_test_support::{free_port, memcached_url, redis_url};

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);
static DOWN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(backend = "shared", ttl = "1m", name = "mc-config.square")]
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
    name = "mc-config.lookup"
)]
fn shared_lookup(x: u64) -> Result<String, Missing> {
    if x == 0 {
        Err(Missing(x))
    } else {
        Ok(x.to_string())
    }
}

#[cached(backend = "shared", distributed_lock = "2s", name = "mc-config.leased")]
async fn leased(x: u64) -> u64 {
    x + 1
}

#[cached(backend = "down", name = "mc-config.down")]
fn on_a_server_that_is_down(x: u64) -> u64 {
    DOWN_RUNS.fetch_add(1, Ordering::SeqCst);
    x
}

#[cached(backend = "silent", name = "mc-config.silent")]
fn on_a_silent_server(x: u64) -> u64 {
    x
}

#[test]
fn configure_install_and_use_memcached_backends() {
    // Malformed URLs are errors, and install nothing.
    for bad in [
        "memcache://127.0.0.1",
        "memcached://127.0.0.1:0",
        "memcached://127.0.0.1:11211,127.0.0.1:11212",
        "memcached://127.0.0.1/0",
    ] {
        let e = config::configure()
            .backend("m", Memcached::url(bad))
            .install();
        assert!(
            matches!(e, Err(ConfigError::Invalid { .. })),
            "{bad}: {e:?}"
        );
    }
    let e = config::configure()
        .from_spec_list("m=memcached://127.0.0.1:11211/x")
        .install();
    assert!(matches!(e, Err(ConfigError::Invalid { .. })), "{e:?}");
    // A server that answers, but not as memcached (a Redis server): refused, with why.
    let redis_port = redis_url()
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let e = config::configure()
        .backend(
            "m",
            Memcached::url(format!("memcached://127.0.0.1:{redis_port}")),
        )
        .install();
    match e {
        Err(ConfigError::Invalid { why, .. }) => {
            assert!(why.contains("does not answer as memcached"), "{why}");
        }
        other => panic!("{other:?}"),
    }

    // A server that is down and one that accepts and never answers: warnings (the caches fail
    // open), and `install` returns within a few operation timeouts.
    let silent_port = servers::silent_server();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("cache-rs-test:mc-config:{}:{nanos}", std::process::id());
    let start = Instant::now();
    config::configure()
        .backend(
            "shared",
            Memcached::url(memcached_url())
                .prefix(prefix.clone())
                // Generous: the test counts loads, and a timed-out call would load again.
                .timeout(Duration::from_secs(2)),
        )
        .backend(
            "down",
            Memcached::url(format!("memcached://127.0.0.1:{}", free_port())),
        )
        .backend(
            "silent",
            Memcached::url(format!("memcached://127.0.0.1:{silent_port}"))
                .timeout(Duration::from_millis(100)),
        )
        .backend("local", Spec::Memory)
        .install()
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(2_500),
        "install took {:?}",
        start.elapsed()
    );
    config::verify().unwrap();

    // Shared through memcached.
    assert_eq!(shared_square(7), 49);
    assert_eq!(shared_square(7), 49);
    assert_eq!(SHARED_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(shared_lookup(0), Err(Missing(0)));
    assert_eq!(shared_lookup(3), Ok("3".into()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(leased(1)), 2);
    // Another process would find them: drop this process's copies, read again.
    let square = registry::get::<u64, u64>("mc-config.square").unwrap();
    square.evict_local(&7);
    assert_eq!(shared_square(7), 49);
    assert_eq!(SHARED_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(square.stats().remote_hits, 1);
    let lookup = registry::get_negative::<u64, String, Missing>("mc-config.lookup").unwrap();
    lookup.evict_local(&0);
    assert_eq!(shared_lookup(0), Err(Missing(0)));
    assert_eq!(lookup.stats().remote_hits, 1);

    // On servers that are down or silent, every call answers, from its function.
    let start = Instant::now();
    for x in 0..20 {
        assert_eq!(on_a_server_that_is_down(x), x);
        assert_eq!(on_a_silent_server(x), x);
    }
    assert_eq!(DOWN_RUNS.load(Ordering::SeqCst), 20);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    square.clear();
    lookup.clear();
}
