//! Several OS processes sharing one Redis: with `distributed_lock`, N processes x M tasks
//! missing one key run the loader once, fleet-wide; without it, once per process.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const URL: &str = "redis://127.0.0.1:6379/";

/// Runs `processes` nodes of `tasks` tasks each on one cold key; returns the loader runs.
fn stampede(processes: usize, tasks: usize, lock: bool) -> i64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("cache-rs-test:fleet:{}:{nanos}", std::process::id());
    let client = redis::Client::open(URL).unwrap();
    let mut con = client.get_connection().unwrap();
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_fleet_node"))
                .args([
                    prefix.as_str(),
                    "7",
                    &tasks.to_string(),
                    if lock { "on" } else { "off" },
                    "200",
                ])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn a fleet node")
        })
        .collect();
    let start = Instant::now();
    loop {
        let ready: Option<i64> = redis::cmd("GET")
            .arg(format!("{prefix}:ready"))
            .query(&mut con)
            .unwrap();
        if ready.unwrap_or(0) >= i64::try_from(processes).unwrap() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nodes did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:go"))
        .arg(1)
        .query(&mut con)
        .unwrap();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a node failed");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    }
    let runs: i64 = redis::cmd("GET")
        .arg(format!("{prefix}:runs"))
        .query(&mut con)
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("DEL").arg(keys).query(&mut con).unwrap();
    runs
}

#[test]
fn eight_processes_of_64_tasks_load_once_with_the_lease_and_once_each_without() {
    let with_lease = stampede(8, 64, true);
    let without = stampede(8, 64, false);
    println!(
        "8 processes x 64 tasks on one cold key: loader runs with the lease {with_lease}, without {without}"
    );
    assert_eq!(with_lease, 1);
    // Without the lease each process deduplicates its own tasks only.
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
    let backend = Arc::new(RedisBackend::new(URL, Duration::from_secs(5)).unwrap());
    let cache: Cache<u64, String> = Cache::builder()
        .name("profiles")
        .ttl(Duration::from_secs(600))
        .remote(backend, &prefix)
        .build()
        .unwrap();
    cache.insert(1, "v1".into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleet_node"))
        .args(["watch", prefix.as_str()])
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
