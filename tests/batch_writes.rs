//! Batch writes through the server backends (issue 16): `Backend::set_many` stores every item,
//! each with its own TTL, in one round trip: one pipeline of `SET`s to Redis (one per hash slot
//! on a cluster), one pipelined request of quiet `ms` then `mn` per memcached server, all
//! servers at once. Against servers this test binary starts itself (`cache_test_support`), and
//! against fake ones that never answer, refuse, or answer garbage: a fault then, within the
//! timeout, never a panic or a hang.
//!
//! Redis counts its commands (`INFO commandstats`), and a proxy that delays every byte by
//! 100 ms each way makes round trips visible as time; memcached counts items, not requests, so
//! a small TCP proxy in front of each memcached server counts the lines the client sends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use cache_runtime::tier::{Backend, Fault};
use cache_runtime::{MemcachedBackend, RedisBackend};

#[path = "support/servers.rs"]
mod servers;
use servers::{
    CountingProxy, assert_both_fail, assert_fails_against_dead_or_silent_memcached,
    assert_fails_against_dead_or_silent_redis, fake_memcached_server, fake_server, keys, proxy,
    read_resp_request, redis_calls, redis_connections, runtime, start_cluster, start_memcached,
    start_redis, str_refs, two_memcached_clients,
};

/// A batch write's items, owned: key, value, TTL.
type Owned = Vec<(String, Vec<u8>, Option<Duration>)>;

/// The TTL of item `i`: none for every third, one second for the next, and ten minutes plus
/// `i` milliseconds (jitter) for the others.
/// The short TTL of a third of the items: two seconds, the shortest that memcached (whose clock
/// ticks once a second, and which expires an item at the tick that reaches its time) keeps for
/// at least a second; a one-second item may be gone a millisecond after it was written.
const SHORT: Duration = Duration::from_secs(2);

fn ttl_of(i: usize) -> Option<Duration> {
    match i % 3 {
        0 => None,
        1 => Some(SHORT),
        _ => Some(Duration::from_secs(600) + Duration::from_millis(i as u64)),
    }
}

/// `value-<i>` under each key, with [`ttl_of`]`(i)`.
fn items(keys: &[String]) -> Owned {
    keys.iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), format!("value-{i}").into_bytes(), ttl_of(i)))
        .collect()
}

fn refs(items: &Owned) -> Vec<(&str, &[u8], Option<Duration>)> {
    items
        .iter()
        .map(|(k, v, t)| (k.as_str(), v.as_slice(), *t))
        .collect()
}

/// Every item reads back with `get`.
fn assert_readable(b: &dyn Backend, items: &Owned) {
    for (k, v, _) in items {
        assert_eq!(b.get(k).unwrap().as_ref(), Some(v), "{k}");
    }
}

/// Every item reads back: all at once first (before a short item can expire, however slow the
/// machine), then each one that lives longer with `get`.
fn assert_stored(b: &dyn Backend, items: &Owned) {
    let keys: Vec<&str> = items.iter().map(|(k, _, _)| k.as_str()).collect();
    let got = b.get_many(&keys).unwrap();
    for ((k, v, _), got) in items.iter().zip(got) {
        assert_eq!(got.as_ref(), Some(v), "{k}");
    }
    let lasting: Owned = items
        .iter()
        .filter(|(_, _, t)| t.is_none_or(|t| t > SHORT))
        .cloned()
        .collect();
    assert_readable(b, &lasting);
}

/// The items, the short ones first (to look at them before they expire).
fn short_first(items: &Owned) -> Vec<&(String, Vec<u8>, Option<Duration>)> {
    let mut sorted: Vec<_> = items.iter().collect();
    sorted.sort_by_key(|(_, _, t)| t.is_none_or(|t| t > SHORT));
    sorted
}

// ---------------------------------------------------------------------------------------------
// Redis

/// Each item's `PTTL` is its TTL's: -1 without one, else within it (and not far below it).
/// `written` is when the batch was sent: a short item may have expired since on a slow
/// machine (`PTTL` -2).
fn assert_redis_ttls(con: &mut redis::Connection, items: &Owned, written: Instant) {
    for (k, _, ttl) in short_first(items) {
        let pttl: i64 = redis::cmd("PTTL").arg(k).query(con).unwrap();
        if pttl == -2 {
            let expired = ttl.is_some_and(|t| written.elapsed() >= t);
            assert!(expired, "{k}: gone, {ttl:?} after {:?}", written.elapsed());
            continue;
        }
        match ttl {
            None => assert_eq!(pttl, -1, "{k}: no expiry"),
            Some(t) => {
                let t = t.as_millis() as i64;
                // Not far below it: by at most the time since the write on a slow machine.
                let slack = 30_000.min(t / 2).max(written.elapsed().as_millis() as i64);
                assert!(pttl > t - slack && pttl <= t, "{k}: {pttl} ms of {t}");
            }
        }
    }
}

/// A TCP proxy that delays every byte by `delay`, each way: a round trip through it takes
/// twice `delay` at least, so the time of an operation tells its round trips.
struct DelayProxy {
    port: u16,
}

impl DelayProxy {
    fn new(upstream: String, delay: Duration) -> Self {
        let port = proxy(upstream, move |client, server| {
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || delayed(client, server, delay));
            std::thread::spawn(move || delayed(s2, c2, delay));
        });
        Self { port }
    }

    fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// Copies `from` to `to`, each chunk `delay` after it came (chunks in flight overlap: the delay
/// is a latency, not a rate).
fn delayed(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        for (due, bytes) in rx {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
    let mut buf = vec![0; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.join();
}

#[test]
fn redis_a_batch_of_a_thousand_items_is_one_pipeline_of_sets() {
    // A server of its own: no other test's commands in its counts.
    let server = start_redis();
    let delay = Duration::from_millis(100);
    let round_trip = delay * 2;
    let proxy = DelayProxy::new(server.addr(), delay);
    let b = RedisBackend::new(&proxy.redis_url(), Duration::from_secs(5)).unwrap();
    // Reads of what was written: not through the proxy (a round trip of 200 ms a key).
    let direct = RedisBackend::new(&server.redis_url(), Duration::from_secs(5)).unwrap();
    let mut raw = redis::Client::open(server.redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    // Connections made (the runtime's, and a pooled one for blocking callers) before counting.
    for _ in 0..3 {
        b.set("warm-up", b"1", None).unwrap();
        std::thread::sleep(round_trip);
    }
    let ks = keys("redis-set-many", 1_000);
    let mut all = items(&ks);
    // A key named twice: the later item wins (one connection, in order).
    all.push((ks[0].clone(), b"value-0".to_vec(), None));
    all[0].1 = b"overwritten".to_vec();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut raw)
        .unwrap();

    let start = Instant::now();
    b.set_many(&refs(&all)).unwrap();
    let took = start.elapsed();
    eprintln!(
        "blocking batch of {}: {took:?}, round trips of {round_trip:?}",
        all.len()
    );
    assert_eq!(redis_calls(&mut raw, "set"), 1_001, "one SET per item");
    assert!(
        took < round_trip * 5,
        "{took:?}: more than a handful of round trips of {round_trip:?}"
    );
    all.pop();
    all[0].1 = b"value-0".to_vec();
    assert_stored(&direct, &all);
    assert_redis_ttls(&mut raw, &all, start);

    // The async form: as many SETs, as few round trips.
    let ks2 = keys("redis-set-many-async", 1_000);
    let all2 = items(&ks2);
    let start = Instant::now();
    runtime().block_on(b.set_many_async(&refs(&all2))).unwrap();
    let took = start.elapsed();
    eprintln!("async batch: {took:?}");
    assert_eq!(redis_calls(&mut raw, "set"), 2_001);
    assert!(took < round_trip * 5, "{took:?}");
    assert_stored(&direct, &all2);
    assert_redis_ttls(&mut raw, &all2, start);

    // An empty batch sends nothing.
    b.set_many(&[]).unwrap();
    runtime().block_on(b.set_many_async(&[])).unwrap();
    assert_eq!(redis_calls(&mut raw, "set"), 2_001);
    assert_eq!(b.faults(), cache_runtime::Faults::default());

    // The short items expire; the others stay.
    std::thread::sleep(SHORT + Duration::from_millis(100));
    let got = b.get_many(&str_refs(&ks)).unwrap();
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v.is_some(), i % 3 != 1, "item {i}");
    }
}

#[test]
fn redis_a_dead_or_silent_server_faults_the_batch_within_the_timeout() {
    assert_fails_against_dead_or_silent_redis(&refs(&items(&keys("redis-silent", 50)))[..]);
}

/// What a fake Redis answers to its `n`th `SET`.
type Reply = fn(usize) -> &'static [u8];

/// A fake Redis that answers `+OK` to anything but `SET`, and `reply(n)` to its `n`th `SET`
/// (then closes the connection, if `close`).
fn fake_redis(reply: Reply, close: bool) -> u16 {
    fake_server(move |s| {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut sets = 0;
        while let Some(args) = read_resp_request(&mut r) {
            let is_set = args.first().is_some_and(|c| c.eq_ignore_ascii_case(b"SET"));
            let answer = if is_set { reply(sets) } else { b"+OK\r\n" };
            if w.write_all(answer).is_err() {
                return;
            }
            if is_set {
                sets += 1;
                if close {
                    let _ = w.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    })
}

#[test]
fn redis_a_refused_or_garbled_reply_is_a_fault_never_a_panic() {
    let timeout = Duration::from_millis(300);
    let three: [(&str, &[u8], Option<Duration>); 3] = [
        ("k:1", b"a", None),
        ("k:2", b"b", Some(Duration::from_secs(1))),
        ("k:3", b"c", None),
    ];
    // The fake server is right first.
    let ok = fake_redis(|_| b"+OK\r\n", false);
    let b = RedisBackend::new(&format!("redis://127.0.0.1:{ok}/"), timeout).unwrap();
    b.set_many(&three).unwrap();
    runtime().block_on(b.set_many_async(&three)).unwrap();
    assert_eq!(b.faults(), cache_runtime::Faults::default());
    let cases: [(&str, Reply, bool); 6] = [
        ("every SET refused", |_| b"-ERR nope\r\n", false),
        (
            "the second SET refused",
            |n| {
                if n % 3 == 1 {
                    b"-OOM command not allowed\r\n"
                } else {
                    b"+OK\r\n"
                }
            },
            false,
        ),
        ("a nil: not stored", |_| b"$-1\r\n", false),
        ("a number, not OK", |_| b":1\r\n", false),
        ("not the protocol", |_| b"WHAT IS THIS\r\n", false),
        ("cut short", |_| b"+O", true),
    ];
    for (what, reply, close) in cases {
        let port = fake_redis(reply, close);
        let b = RedisBackend::new(&format!("redis://127.0.0.1:{port}/"), timeout).unwrap();
        assert_both_fail(what, timeout, &b, &three[..]);
        let f = b.faults();
        assert!(
            f.error + f.timeout + f.connect >= 2,
            "{what}: counted {f:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Redis Cluster

/// A batch over keys of many hash slots: one pipeline per slot (a cluster connection refuses a
/// pipeline whose keys span slots), all sent at once; one `SET` per item, each on its node.
#[test]
fn redis_cluster_a_batch_is_one_pipeline_per_hash_slot() {
    let (_nodes, urls) = start_cluster();
    let url_refs = str_refs(&urls);
    let b = RedisBackend::cluster(&url_refs, Duration::from_secs(2)).unwrap();
    let mut cons = redis_connections(&urls);
    // Keys of a few slots (a hash tag each) and keys of a slot each.
    let mut ks: Vec<String> = (0..150)
        .map(|i| format!("cw:{{tag{}}}:t:{i:04}", i % 5))
        .collect();
    ks.extend((0..150).map(|i| format!("cw:batch:t:{i:04}")));
    let all = items(&ks);
    for c in &mut cons {
        let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(c).unwrap();
    }
    b.set_many(&refs(&all)).unwrap();
    let sets: u64 = cons.iter_mut().map(|c| redis_calls(c, "set")).sum();
    assert_eq!(sets, 300, "one SET per item, over the nodes");
    let per_node: Vec<u64> = cons.iter_mut().map(|c| redis_calls(c, "set")).collect();
    assert!(
        per_node.iter().all(|&n| n > 0),
        "every master wrote: {per_node:?}"
    );
    assert_stored(&b, &all);
    // Each key's PTTL, asked of the node that holds it (the others answer MOVED).
    for (k, _, ttl) in short_first(&all) {
        let pttl = cons
            .iter_mut()
            .find_map(|c| redis::cmd("PTTL").arg(k).query::<i64>(c).ok())
            .unwrap();
        match ttl {
            None => assert_eq!(pttl, -1, "{k}"),
            Some(t) => assert!(pttl > 0 && pttl <= t.as_millis() as i64, "{k}: {pttl}"),
        }
    }

    let again: Owned = all
        .iter()
        .map(|(k, _, t)| (k.clone(), b"again".to_vec(), *t))
        .collect();
    runtime().block_on(b.set_many_async(&refs(&again))).unwrap();
    let sets: u64 = cons.iter_mut().map(|c| redis_calls(c, "set")).sum();
    assert_eq!(sets, 600);
    assert_stored(&b, &again);
    assert_eq!(b.faults(), cache_runtime::Faults::default());
}

// ---------------------------------------------------------------------------------------------
// memcached

/// The commands a [`CountingProxy`] counts here: `ms` (its flags after the key and the size),
/// `mg` (its flags after the key), and `mn`, the end of a pipelined request, whose `MN` the
/// client waits for.
const MS_MG_MN: [servers::Command; 3] = [("ms", 2), ("mg", 1), ("mn", 0)];

/// (`ms`, loud `ms`, `mg`, `mn`).
type Counted = (usize, usize, usize, usize);

/// What `proxy` counted since the last call: a loud `ms` (without the quiet flag) is a reply
/// the client waits for.
fn ms_counts(proxy: &CountingProxy<3>) -> Counted {
    let [(ms, loud_ms), (mg, _), (mn, _)] = proxy.take();
    (ms, loud_ms, mg, mn)
}

/// Raw meta-protocol connections to memcached servers, to look at what the backend stored.
struct Raw(Vec<BufReader<TcpStream>>);

impl Raw {
    fn new(servers: &[String]) -> Self {
        Self(
            servers
                .iter()
                .map(|a| BufReader::new(TcpStream::connect(a).unwrap()))
                .collect(),
        )
    }

    /// `command` sent to server `at` as it is, and its reply: the line, and the value if there
    /// is one.
    fn meta(&mut self, at: usize, command: &str) -> (String, Option<Vec<u8>>) {
        let r = &mut self.0[at];
        r.get_mut()
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end().to_owned();
        let value = line.strip_prefix("VA ").map(|rest| {
            let n: usize = rest.split(' ').next().unwrap().parse().unwrap();
            let mut data = vec![0; n + 2];
            r.read_exact(&mut data).unwrap();
            data.truncate(n);
            data
        });
        (line, value)
    }

    /// The seconds left to `key`'s entry (`-1`: it never expires) on whichever server holds
    /// it: the namespace's generation (`mg <namespace>~gen v`), then the entry under it
    /// (`mg <namespace>g<generation>:<rest> t v`), as the backend lays keys out. `None`: on no
    /// server (expired, or never written).
    fn ttl(&mut self, key: &str) -> Option<i64> {
        let at = key.rfind(':').unwrap() + 1;
        let (namespace, rest) = (&key[..at], &key[at..]);
        for server in 0..self.0.len() {
            let (_, generation) = self.meta(server, &format!("mg {namespace}~gen v"));
            let Some(generation) = generation else {
                continue;
            };
            let generation = String::from_utf8(generation).unwrap();
            let (line, _) = self.meta(server, &format!("mg {namespace}g{generation}:{rest} t v"));
            if let Some(flags) = line.strip_prefix("VA ") {
                let t = flags.split(' ').find_map(|f| f.strip_prefix('t')).unwrap();
                return Some(t.parse().unwrap());
            }
        }
        None
    }
}

/// Each item's TTL on the servers is its TTL's; `written` is when the batch was sent: a short
/// item may have expired since on a slow machine (hundreds are read one by one), and is then
/// gone from every server.
fn assert_memcached_ttls(servers: &[String], items: &Owned, written: Instant) {
    let mut raw = Raw::new(servers);
    for (k, _, ttl) in short_first(items) {
        let Some(left) = raw.ttl(k) else {
            // memcached's clock ticks once a second: an item may go up to a second early.
            let expired = ttl.is_some_and(|t| written.elapsed() + Duration::from_secs(1) >= t);
            assert!(
                expired,
                "{k}: on no server, {ttl:?} after {:?}",
                written.elapsed()
            );
            continue;
        };
        match ttl {
            None => assert_eq!(left, -1, "{k}: no expiry"),
            // Two seconds or less left (whole seconds, rounded up at the write).
            Some(t) if *t <= SHORT => assert!((0..=2).contains(&left), "{k}: {left}"),
            Some(t) => {
                let t = t.as_secs() as i64;
                assert!(left > t - 30 && left <= t + 1, "{k}: {left} s of {t}");
            }
        }
    }
}

#[test]
fn memcached_a_batch_of_a_thousand_items_is_one_request_per_server() {
    let (s1, s2) = (start_memcached(), start_memcached());
    let servers = [s1.addr(), s2.addr()];
    let proxies = [
        CountingProxy::new(s1.addr(), MS_MG_MN),
        CountingProxy::new(s2.addr(), MS_MG_MN),
    ];
    let urls: Vec<String> = proxies.iter().map(CountingProxy::url).collect();
    let url_refs = str_refs(&urls);
    let b = MemcachedBackend::new(&url_refs, Duration::from_secs(2)).unwrap();
    let counted = || proxies.each_ref().map(ms_counts);

    // A new namespace: its generation is made on each server first (a loud `mg`, and a loud
    // `ms ... ME` that adds it), then each server's items go in one request.
    let ks = keys("memcached-ms", 1_000);
    let mut all = items(&ks);
    // 40 days: past 30, memcached reads an absolute time, as `set` sends it.
    all[2].2 = Some(Duration::from_secs(40 * 86_400));
    // A key named twice: the later item wins (one connection, in order).
    all.push((ks[0].clone(), b"value-0".to_vec(), None));
    all[0].1 = b"overwritten".to_vec();
    let written = Instant::now();
    b.set_many(&refs(&all)).unwrap();
    let [(ms1, loud1, mg1, mn1), (ms2, loud2, mg2, mn2)] = counted();
    eprintln!("first batch: server 1 {ms1} ms, server 2 {ms2} ms");
    assert_eq!((mn1, mn2), (1, 1), "one pipelined request per server");
    assert_eq!(
        (loud1, loud2),
        (1, 1),
        "the generation, added on each server"
    );
    assert_eq!(
        (mg1, mg2),
        (1, 1),
        "the generation, looked for on each server"
    );
    assert_eq!(ms1 + ms2, all.len() + 2);
    assert!(
        ms1 > 100 && ms2 > 100,
        "the ring spreads the keys: {ms1}, {ms2}"
    );
    all.pop();
    all[0].1 = b"value-0".to_vec();
    assert_stored(&b, &all);
    assert_memcached_ttls(&servers, &all, written);
    counted();

    // The generation known now: one request per server and nothing else.
    let again: Owned = all
        .iter()
        .map(|(k, v, t)| (k.clone(), [&b"again-"[..], v].concat(), *t))
        .collect();
    b.set_many(&refs(&again)).unwrap();
    let [(ms1, loud1, mg1, mn1), (ms2, loud2, mg2, mn2)] = counted();
    assert_eq!((mn1, mn2, loud1, loud2, mg1, mg2), (1, 1, 0, 0, 0, 0));
    assert_eq!(ms1 + ms2, again.len());
    assert_stored(&b, &again);
    counted();

    // The async form.
    let async_items = items(&keys("memcached-ms-async", 1_000));
    let written = Instant::now();
    runtime()
        .block_on(b.set_many_async(&refs(&async_items)))
        .unwrap();
    let [(ms1, _, _, mn1), (ms2, _, _, mn2)] = counted();
    assert_eq!((mn1, mn2), (1, 1));
    assert_eq!(ms1 + ms2, async_items.len() + 2);
    assert_stored(&b, &async_items);
    assert_memcached_ttls(&servers, &async_items, written);

    // An empty batch sends nothing.
    counted();
    b.set_many(&[]).unwrap();
    runtime().block_on(b.set_many_async(&[])).unwrap();
    assert_eq!(counted(), [(0, 0, 0, 0), (0, 0, 0, 0)]);
    assert_eq!(b.faults(), cache_runtime::Faults::default());

    // The short items expire (memcached's clock ticks by the second: up to a second late);
    // the others stay.
    std::thread::sleep(SHORT + Duration::from_millis(1_200));
    let got = b.get_many(&str_refs(&ks)).unwrap();
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v.is_some(), i % 3 != 1, "item {i}");
    }
}

#[test]
fn memcached_a_batch_writes_the_entries_that_another_process_reads() {
    let server = start_memcached();
    let url = server.memcached_url();
    let timeout = Duration::from_secs(2);
    let (a, b) = two_memcached_clients(&url, timeout);
    let ks = keys("memcached-gen", 30);
    // `a` makes the namespace's generation (a `set`); `b` finds it with its batch.
    a.set(&ks[0], b"by a", None).unwrap();
    let all = items(&ks[1..]);
    b.set_many(&refs(&all)).unwrap();
    assert_stored(&a, &all);
    assert_eq!(a.get(&ks[0]).unwrap(), Some(b"by a".to_vec()));
    // `a` clears the namespace: a third process's batch writes under the new generation.
    let namespace = &ks[0][..=ks[0].rfind(':').unwrap()];
    a.clear_prefix(namespace).unwrap();
    assert_eq!(b.get(&ks[1]).unwrap(), None, "cleared");
    let c = MemcachedBackend::new(&[&url], timeout).unwrap();
    runtime().block_on(c.set_many_async(&refs(&all))).unwrap();
    assert_stored(&a, &all);
    assert_stored(&b, &all);
}

#[test]
fn memcached_an_item_over_the_item_size_is_skipped_as_set_skips_it() {
    let server = start_memcached();
    let b = MemcachedBackend::new(&[&server.memcached_url()], Duration::from_secs(2)).unwrap();
    let ks = keys("memcached-large", 3);
    let large = vec![b'x'; 2 << 20]; // over memcached's 1 MiB default
    b.set(&ks[0], &large, None).unwrap();
    assert_eq!(b.get(&ks[0]).unwrap(), None, "set skips it");
    let all: Owned = vec![
        (ks[1].clone(), b"before".to_vec(), None),
        (ks[0].clone(), large, Some(Duration::from_secs(60))),
        (ks[2].clone(), b"after".to_vec(), None),
    ];
    b.set_many(&refs(&all)).unwrap();
    assert_eq!(b.get(&ks[0]).unwrap(), None, "skipped");
    assert_eq!(b.get(&ks[1]).unwrap(), Some(b"before".to_vec()));
    assert_eq!(b.get(&ks[2]).unwrap(), Some(b"after".to_vec()));
    assert_eq!(b.faults(), cache_runtime::Faults::default());
}

#[test]
fn memcached_a_dead_or_silent_server_faults_the_batch_within_the_timeout() {
    assert_fails_against_dead_or_silent_memcached(
        &refs(&items(&keys("memcached-silent", 200)))[..],
    );
}

/// A fake memcached: a loud `mg` (the generation, read alone) gets `generation`; a quiet `ms`
/// is read with its data and not answered; `mn` gets `reply` (then the connection is closed,
/// if `close`).
fn fake_memcached(generation: &'static str, reply: &'static str, close: bool) -> u16 {
    fake_memcached_server(close, move |_: &mut (), words, r| {
        let answer = match words {
            ["ms", _, size, flags @ ..] if flags.contains(&"q") => {
                // Its value, read past (a stream that ends within it: the next read ends it all).
                let mut data = vec![0; size.parse::<usize>().unwrap() + 2];
                let _ = r.read_exact(&mut data);
                return None;
            }
            ["mg", ..] => generation,
            ["mn"] => reply,
            _ => "ERROR\r\n",
        };
        Some(answer.to_owned())
    })
}

#[test]
fn memcached_a_refused_or_garbled_reply_is_a_fault_never_a_panic() {
    let timeout = Duration::from_millis(300);
    let all = items(&keys("memcached-garbled", 3));
    let batch = refs(&all);
    let generation = "VA 12\r\n000000000001\r\n";
    let url = |port: u16| format!("memcached://127.0.0.1:{port}");
    // What a quiet batch may hear: `MN` alone, an `HD` (a set that was not quiet), a value over
    // the item size (skipped, as `set` skips it).
    for reply in [
        "MN\r\n",
        "HD\r\nMN\r\n",
        "SERVER_ERROR object too large for cache\r\nMN\r\n",
    ] {
        let b = MemcachedBackend::new(&[&url(fake_memcached(generation, reply, false))], timeout)
            .unwrap();
        assert_eq!(b.set_many(&batch), Ok(()), "{reply:?}");
        let asynchronous = runtime().block_on(b.set_many_async(&batch));
        assert_eq!(asynchronous, Ok(()), "{reply:?}");
    }
    let long_line: &'static str = "x".repeat(100_000).leak();
    let cases: [(&str, &'static str, &'static str, bool); 11] = [
        ("not stored", generation, "NS\r\nMN\r\n", false),
        ("exists", generation, "EX\r\nMN\r\n", false),
        (
            "out of memory",
            generation,
            "SERVER_ERROR out of memory storing object\r\nMN\r\n",
            false,
        ),
        (
            "a client error",
            generation,
            "CLIENT_ERROR bad data chunk\r\n",
            false,
        ),
        ("not the protocol", generation, "WHAT IS THIS\r\n", false),
        (
            "more replies than the request has",
            generation,
            "MN\r\nMN\r\n",
            false,
        ),
        ("a line without end", generation, long_line, false),
        (
            "a generation of a terabyte",
            "VA 1099511627776\r\nab",
            "MN\r\n",
            false,
        ),
        ("a generation that is not one", "HD\r\n", "MN\r\n", false),
        ("cut short", generation, "NS", true),
        ("closed without MN", generation, "", true),
    ];
    for (what, generation, reply, close) in cases {
        let port = fake_memcached(generation, reply, close);
        let b = MemcachedBackend::new(&[&url(port)], timeout).unwrap();
        let (blocking, asynchronous) = assert_both_fail(what, timeout, &b, &batch[..]);
        let f = b.faults();
        assert!(f.error + f.timeout >= 2, "{what}: counted {f:?}");
        if !close {
            assert_eq!(blocking, Fault::Reply, "{what}");
            assert_eq!(asynchronous, Fault::Reply, "{what}");
        }
    }
}
