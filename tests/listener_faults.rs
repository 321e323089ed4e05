//! The invalidation listener against faults that leave it deaf (issue 17, item 2), each with
//! servers and helpers the test starts itself on free loopback ports:
//! (a) a first contact with a server that accepts and never answers;
//! (b) a failover behind a stable address: a proxy that black-holes the connections made so far
//!     (open, and silent) and sends new ones to another Redis;
//! and the heartbeat that finds (b), on a healthy channel: no false alarm, no eviction.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Clock, ManualClock, RedisBackend};
use support::{free_port, start_server};

/// First contact with a server that accepts and never answers cannot hold the invalidation
/// listener: once a healthy Redis takes the port, the process listens again within seconds.
#[test]
fn the_listener_recovers_from_a_silent_first_contact() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    // Accept (and hold, silently) for 300 ms, then give the port up.
    let silent = std::thread::spawn(move || {
        let mut held = Vec::new();
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            if let Ok((s, _)) = listener.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        held
    });
    let b = Arc::new(
        RedisBackend::new(
            &format!("redis://127.0.0.1:{port}/"),
            Duration::from_millis(50),
        )
        .unwrap(),
    );
    let c: Cache<u64, u64> = Cache::builder()
        .name("silent-first")
        .remote(b.clone(), "silent-first")
        .build()
        .unwrap();
    assert_eq!(c.get_or_insert_with(&1, || 1), 1);
    let held = silent.join().unwrap();
    assert!(!b.is_listening());
    let _server = start_server(port).expect("redis-server must be installed");
    let start = Instant::now();
    while !b.is_listening() {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "still not listening {:?} after a healthy server took the port",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("listening {:?} after the server started", start.elapsed());
    drop(held);
}

/// On a healthy server the heartbeat (here: a probe every 100 ms, deaf after 2 s: a second of
/// a busy machine's stall is no deafness, and the watch outlasts it) never finds
/// the subscription deaf, and the probes, which every process on the channel receives, evict
/// nothing: L1 copies stay, while a real invalidation still arrives.
#[test]
fn probes_on_a_healthy_channel_neither_mark_it_deaf_nor_evict() {
    let port = free_port();
    let _server = start_server(port).expect("redis-server must be installed");
    let url = format!("redis://127.0.0.1:{port}/");
    let clock = ManualClock::new();
    let process = || -> (Arc<RedisBackend>, Cache<u64, u64>) {
        let backend = Arc::new(
            RedisBackend::new(&url, Duration::from_millis(500))
                .unwrap()
                .with_heartbeat(Duration::from_millis(100), Duration::from_secs(2))
                .unwrap(),
        );
        let cache = Cache::builder()
            .name("healthy")
            .l1_ttl(Duration::from_secs(60))
            .clock(Clock::manual(&clock))
            .remote(backend.clone(), "healthy")
            .build()
            .unwrap();
        (backend, cache)
    };
    let processes = [process(), process(), process()];
    for (_, cache) in &processes {
        assert_eq!(cache.get_or_insert_with(&1, || 1), 1);
    }
    let start = Instant::now();
    while !processes.iter().all(|(b, _)| b.is_listening()) {
        assert!(start.elapsed() < Duration::from_secs(5), "never listening");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Thirty probes of each process, received by all three, over more than the deaf time: no
    // deafness, no eviction.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_millis(3_000) {
        for (i, (backend, cache)) in processes.iter().enumerate() {
            assert!(backend.is_listening(), "process {i} found deaf");
            assert!(cache.contains_key(&1), "process {i}'s L1 copy was evicted");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    processes[0].1.insert(1, 2);
    let sent = Instant::now();
    while processes[1..].iter().any(|(_, c)| c.contains_key(&1)) {
        assert!(sent.elapsed() < Duration::from_secs(2), "not invalidated");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A TCP proxy on a free loopback port, in front of a Redis it can switch. [`fail_over`]
/// black-holes the connections made so far (they stay open on both sides, and whatever is sent
/// on them is swallowed) and sends new connections to another server, as a failover behind a
/// stable address does. Its threads stop when it is dropped.
///
/// [`fail_over`]: Proxy::fail_over
struct Proxy {
    port: u16,
    shared: Arc<ProxyShared>,
    accepting: Option<JoinHandle<()>>,
}

struct ProxyShared {
    /// Where new connections go, and the switch that black-holes them.
    target: Mutex<(u16, Arc<AtomicBool>)>,
    stop: AtomicBool,
}

impl Proxy {
    fn start(to: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(ProxyShared {
            target: Mutex::new((to, Arc::new(AtomicBool::new(false)))),
            stop: AtomicBool::new(false),
        });
        let accepting = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                while !shared.stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let (to, holed) = shared.target.lock().unwrap().clone();
                            if let Ok(server) = TcpStream::connect(("127.0.0.1", to)) {
                                client.set_nonblocking(false).unwrap();
                                // No Nagle delay: a message is passed on (or swallowed) at once.
                                client.set_nodelay(true).unwrap();
                                server.set_nodelay(true).unwrap();
                                pump(&client, &server, &holed, &shared);
                                pump(&server, &client, &holed, &shared);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        Self {
            port,
            shared,
            accepting: Some(accepting),
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Black-holes every connection made so far; new ones go to the server on port `to`.
    fn fail_over(&self, to: u16) {
        let mut target = self.shared.target.lock().unwrap();
        target.1.store(true, Ordering::SeqCst);
        *target = (to, Arc::new(AtomicBool::new(false)));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accepting.take() {
            let _ = t.join();
        }
    }
}

/// Copies what arrives on `from` to `to`, on a thread of its own, until either side closes or
/// the proxy stops; once `holed`, it reads and swallows, and passes no close on either.
fn pump(from: &TcpStream, to: &TcpStream, holed: &Arc<AtomicBool>, shared: &Arc<ProxyShared>) {
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    let (holed, shared) = (Arc::clone(holed), Arc::clone(shared));
    from.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while !shared.stop.load(Ordering::Relaxed) {
            match from.read(&mut buf) {
                Ok(0) => {
                    if !holed.load(Ordering::SeqCst) {
                        let _ = to.shutdown(Shutdown::Write);
                    }
                    return;
                }
                Ok(n) => {
                    if !holed.load(Ordering::SeqCst) && to.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    });
}

/// (b) A failover behind a stable address: the proxy black-holes the connections to the old
/// server and sends new ones to a new server, where another process then writes. Each process's
/// subscription stays open and hears nothing: before the heartbeat, `is_listening()` stayed true
/// and the old value was served until `l1_ttl` (60 s here). Now each process finds its
/// subscription deaf (`is_listening()` false), subscribes again through the proxy, drops its L1
/// copies, and serves the new value within the heartbeat's detection time.
#[test]
fn a_failover_that_black_holes_the_subscription_is_detected_and_l1_dropped() {
    let test_start = Instant::now();
    let (old_port, new_port) = (free_port(), free_port());
    let _old = start_server(old_port).expect("redis-server must be installed");
    let _new = start_server(new_port).expect("redis-server must be installed");
    let proxy = Proxy::start(old_port);
    let (every, deaf_after) = (Duration::from_millis(200), Duration::from_secs(1));
    // The source of truth the caches front: a load reads it.
    let db = Arc::new(Mutex::new("v1".to_string()));
    let clock = ManualClock::new(); // L1 copies never age out by time in this test
    let process = |url: &str| -> (Arc<RedisBackend>, Cache<u64, String>) {
        let backend = Arc::new(
            RedisBackend::new(url, Duration::from_millis(250))
                .unwrap()
                .with_heartbeat(every, deaf_after)
                .unwrap(),
        );
        let cache = Cache::builder()
            .name("profiles")
            .ttl(Duration::from_secs(600))
            .l1_ttl(Duration::from_secs(60))
            .clock(Clock::manual(&clock))
            .remote(backend.clone(), "failover")
            .build()
            .unwrap();
        (backend, cache)
    };
    let load = || db.lock().unwrap().clone();
    let readers = [process(&proxy.url()), process(&proxy.url())];
    for (_, cache) in &readers {
        assert_eq!(cache.get_or_insert_with(&1, load), "v1");
    }
    let listening = Instant::now();
    while !readers.iter().all(|(b, _)| b.is_listening()) {
        assert!(
            listening.elapsed() < Duration::from_secs(5),
            "never listening"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    proxy.fail_over(new_port);
    let failed_over = Instant::now();
    // Another process, on the new server, changes the value: the database, then the cache.
    *db.lock().unwrap() = "v2".to_string();
    let (_writer_backend, writer) = process(&format!("redis://127.0.0.1:{new_port}/"));
    writer.insert(1, "v2".to_string());
    let written = Instant::now();
    // The symptom of the issue: right after the write, the readers still serve the old value
    // (asserted when this ran before any heartbeat could notice; a slow machine may be later).
    let early: Vec<Option<String>> = readers.iter().map(|(_, c)| c.get(&1)).collect();
    if failed_over.elapsed() < deaf_after - every {
        assert!(
            early.iter().all(|v| v.as_deref() == Some("v1")),
            "{early:?}"
        );
    }

    // Each reader: deaf (not listening) at some point, listening again, and the new value.
    // Slack for a busy machine: resubscribing runs on one worker thread per backend.
    let bound = deaf_after + Duration::from_secs(4);
    let (mut deaf_at, mut back_at, mut fresh_at) = ([None; 2], [None; 2], [None; 2]);
    loop {
        for (i, (backend, cache)) in readers.iter().enumerate() {
            let listening = backend.is_listening();
            if !listening && deaf_at[i].is_none() {
                deaf_at[i] = Some(failed_over.elapsed());
            }
            if listening && deaf_at[i].is_some() && back_at[i].is_none() {
                back_at[i] = Some(failed_over.elapsed());
            }
            if fresh_at[i].is_none() && cache.get_or_insert_with(&1, load) == "v2" {
                fresh_at[i] = Some(written.elapsed());
            }
        }
        if [back_at, fresh_at].iter().flatten().all(Option::is_some) {
            break;
        }
        assert!(
            written.elapsed() < bound,
            "after {:?} (deaf after {deaf_after:?}, l1_ttl 60 s): deaf at {deaf_at:?}, \
             listening again at {back_at:?}, the new value served at {fresh_at:?}",
            written.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "probe every {every:?}, deaf after {deaf_after:?}: after the failover, not listening at \
         {deaf_at:?}, listening again at {back_at:?}; the new value served {fresh_at:?} after \
         the write (l1_ttl 60 s)"
    );
    // And the readers hear the new server's invalidations from now on.
    writer.insert(1, "v3".to_string());
    let heard = Instant::now();
    while readers.iter().any(|(_, c)| c.contains_key(&1)) {
        assert!(
            heard.elapsed() < Duration::from_secs(2),
            "an invalidation on the new server was not heard"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        test_start.elapsed() < Duration::from_secs(20),
        "{:?}",
        test_start.elapsed()
    );
}
