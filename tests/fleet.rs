//! Several OS processes sharing one Redis, or one memcached (this test binary's own, from
//! `cache_test_support`): with `distributed_lock`, N processes x M tasks missing one key run the
//! loader once, fleet-wide; without it, once per process.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_test_support::{memcached_url, redis_url};

/// Runs `processes` nodes of `tasks` tasks each on one cold key, on the server at `url`;
/// returns the loader runs.
fn stampede(url: &str, processes: usize, tasks: usize, lock: bool) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("cache-rs-test:fleet:{}:{nanos}", std::process::id());
    let mut children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_fleet_node"))
                .args([
                    url,
                    prefix.as_str(),
                    "7",
                    &tasks.to_string(),
                    if lock { "on" } else { "off" },
                    "200",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn a fleet node")
        })
        .collect();
    // Every node has built its cache: then they all miss at once.
    let mut outputs: Vec<_> = children
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().unwrap()).lines())
        .collect();
    for out in &mut outputs {
        let line = out.next().expect("a line").expect("stdout");
        assert_eq!(line, "ready");
    }
    for child in &mut children {
        writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    }
    let mut runs = 0;
    for (child, mut out) in children.into_iter().zip(outputs) {
        let line = out.next().expect("a line").expect("stdout");
        let n = line.strip_prefix("ok ").expect("`ok <runs>`");
        runs += n.parse::<u64>().unwrap();
        let status = child.wait_with_output().unwrap().status;
        assert!(status.success(), "a node failed");
    }
    if url.starts_with("redis://") {
        let client = redis::Client::open(url).unwrap();
        let mut con = client.get_connection().unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query(&mut con)
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL").arg(keys).query(&mut con).unwrap();
        }
    }
    runs
}

#[test]
fn eight_processes_of_64_tasks_load_once_with_the_lease_and_once_each_without() {
    let with_lease = stampede(redis_url(), 8, 64, true);
    let without = stampede(redis_url(), 8, 64, false);
    println!(
        "Redis: 8 processes x 64 tasks on one cold key: loader runs with the lease {with_lease}, without {without}"
    );
    assert_eq!(with_lease, 1);
    // Without the lease each process deduplicates its own tasks only.
    assert!((1..=8).contains(&without), "{without}");
}

/// The same on memcached: the lease is an `add` (`ms ... ME`), and the waiters poll memcached
/// with backoff (5 ms doubling to 50 ms) until the holder's value appears.
#[test]
fn on_memcached_eight_processes_of_64_tasks_load_once_with_the_lease_and_once_each_without() {
    let with_lease = stampede(memcached_url(), 8, 64, true);
    let without = stampede(memcached_url(), 8, 64, false);
    println!(
        "memcached: 8 processes x 64 tasks on one cold key: loader runs with the lease {with_lease}, without {without}"
    );
    assert_eq!(with_lease, 1);
    assert!((1..=8).contains(&without), "{without}");
}

#[test]
fn a_write_in_one_process_evicts_another_processes_l1_copy() {
    use std::io::{BufRead, BufReader};
    use std::sync::Arc;

    use cache_runtime::{Cache, RedisBackend};

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("cache-rs-test:watch:{}:{nanos}", std::process::id());
    let backend = Arc::new(RedisBackend::new(redis_url(), Duration::from_secs(5)).unwrap());
    let cache: Cache<u64, String> = Cache::builder()
        .name("profiles")
        .ttl(Duration::from_secs(600))
        .remote(backend, &prefix)
        .build()
        .unwrap();
    cache.insert(1, "v1".into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleet_node"))
        .args(["watch", redis_url(), prefix.as_str()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the watcher");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "loaded v1",
        "the watcher subscribed, then read v1 from Redis"
    );
    // A write here: the other process's L1 copy must go.
    cache.insert(1, "v2".into());
    assert_eq!(lines.next().unwrap().unwrap(), "evicted, now v2");
    assert!(child.wait().unwrap().success());
    cache.clear();
}
