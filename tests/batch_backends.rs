//! Batch lookups through the server backends (issue 16, item 3): `Backend::get_many` answers one
//! slot per key, in order, in one round trip: one `MGET` to Redis, one pipelined request
//! (`mg ... k q` for each key, then `mn`) per memcached server, all servers at once. Against
//! servers this test binary starts itself (`cache_test_support`), and against fake ones that
//! never answer or answer garbage: a fault then, within the timeout, never a panic or a hang.
//!
//! Redis counts its commands (`INFO commandstats`); memcached counts keys, not requests, so a
//! small TCP proxy in front of each memcached server counts the lines the client sends.

use std::io::{BufReader, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use cache_runtime::tier::{Backend, Fault};
use cache_runtime::{MemcachedBackend, RedisBackend};

#[path = "support/servers.rs"]
mod servers;
use servers::{
    CountingProxy, assert_both_fail, assert_fails_against_dead_or_silent_memcached,
    assert_fails_against_dead_or_silent_redis, fake_memcached_server, fake_server, keys,
    read_resp_request, redis_calls, runtime, start_memcached, start_redis, str_refs,
    two_memcached_clients,
};

/// Stores `value-<i>` under every third key (by `Backend::set`); the others stay misses.
fn store_every_third(b: &dyn Backend, keys: &[String]) {
    for (i, k) in keys.iter().enumerate().step_by(3) {
        b.set(
            k,
            format!("value-{i}").as_bytes(),
            Some(Duration::from_secs(600)),
        )
        .unwrap();
    }
}

fn assert_every_third(values: &[Option<Vec<u8>>], n: usize) {
    assert_eq!(values.len(), n, "one slot per key");
    for (i, v) in values.iter().enumerate() {
        let expected = (i % 3 == 0).then(|| format!("value-{i}").into_bytes());
        assert_eq!(v, &expected, "slot {i}");
    }
}

// ---------------------------------------------------------------------------------------------
// Redis

#[test]
fn redis_a_batch_of_a_thousand_keys_is_one_mget() {
    // A server of its own: no other test's commands in its counts.
    let server = start_redis();
    let b = RedisBackend::new(&server.redis_url(), Duration::from_secs(2)).unwrap();
    let ks = keys("redis-mget", 1_000);
    store_every_third(&b, &ks);
    // Bytes that are not a payload of ours are still bytes to the backend: a hit here (the
    // typed tier, above, reads them as a miss and deletes them).
    let mut raw = redis::Client::open(server.redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&ks[1])
        .arg(&b"\xff\x00garbage"[..])
        .query(&mut raw)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut raw)
        .unwrap();

    let mut values = b.get_many(&str_refs(&ks)).unwrap();
    assert_eq!(values[1].take(), Some(b"\xff\x00garbage".to_vec()));
    assert_every_third(&values, ks.len());
    assert_eq!(redis_calls(&mut raw, "mget"), 1, "one MGET for 1,000 keys");
    assert_eq!(redis_calls(&mut raw, "get"), 0, "and no GET");

    let mut values = runtime()
        .block_on(b.get_many_async(&str_refs(&ks)))
        .unwrap();
    values[1] = None;
    assert_every_third(&values, ks.len());
    assert_eq!(
        redis_calls(&mut raw, "mget"),
        2,
        "one more for the async batch"
    );
    assert_eq!(redis_calls(&mut raw, "get"), 0);

    // An empty batch asks nothing.
    assert!(b.get_many(&[]).unwrap().is_empty());
    assert!(
        runtime()
            .block_on(b.get_many_async(&[]))
            .unwrap()
            .is_empty()
    );
    assert_eq!(redis_calls(&mut raw, "mget"), 2);
    assert_eq!(b.faults(), cache_runtime::Faults::default());
}

#[test]
fn redis_a_dead_or_silent_server_faults_the_batch_within_the_timeout() {
    assert_fails_against_dead_or_silent_redis(&str_refs(&keys("redis-silent", 50))[..]);
}

/// A fake Redis that answers `+OK` to anything but `MGET`, and `reply` to `MGET` (then closes
/// the connection, if `close`).
fn fake_redis(reply: &'static [u8], close: bool) -> u16 {
    fake_server(move |s| {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        while let Some(args) = read_resp_request(&mut r) {
            let is_mget = args
                .first()
                .is_some_and(|c| c.eq_ignore_ascii_case(b"MGET"));
            if w.write_all(if is_mget { reply } else { b"+OK\r\n" })
                .is_err()
            {
                return;
            }
            if is_mget && close {
                let _ = w.shutdown(Shutdown::Both);
                return;
            }
        }
    })
}

#[test]
fn redis_a_garbled_or_short_reply_is_a_fault_never_a_panic() {
    let timeout = Duration::from_millis(300);
    let three = ["k:1", "k:2", "k:3"];
    // The fake server is right first: the batch reads its slots.
    let ok = fake_redis(b"*3\r\n$1\r\na\r\n$-1\r\n$1\r\nc\r\n", false);
    let b = RedisBackend::new(&format!("redis://127.0.0.1:{ok}/"), timeout).unwrap();
    let expected = [Some(b"a".to_vec()), None, Some(b"c".to_vec())];
    assert_eq!(b.get_many(&three).unwrap(), expected);
    assert_eq!(
        runtime().block_on(b.get_many_async(&three)).unwrap(),
        expected
    );
    let cases: [(&str, &'static [u8], bool); 6] = [
        (
            "two slots for three keys",
            b"*2\r\n$1\r\na\r\n$-1\r\n",
            false,
        ),
        (
            "four slots for three keys",
            b"*4\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n",
            false,
        ),
        ("not an array", b"+OK\r\n", false),
        ("numbers, not strings", b"*3\r\n:1\r\n:2\r\n:3\r\n", false),
        ("cut short", b"*3\r\n$5\r\nab", true),
        (
            "a string of a terabyte",
            b"*3\r\n$1099511627776\r\nab",
            false,
        ),
    ];
    for (what, reply, close) in cases {
        let port = fake_redis(reply, close);
        let b = RedisBackend::new(&format!("redis://127.0.0.1:{port}/"), timeout).unwrap();
        assert_both_fail(what, timeout, &b, &three[..]);
        let f = b.faults();
        assert!(f.error + f.timeout >= 2, "{what}: counted {f:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// memcached

/// The commands a [`CountingProxy`] counts here: `mg` (its flags after the key), and `mn`, the
/// end of a pipelined request, whose `MN` the client waits for.
const MG_MN: [servers::Command; 2] = [("mg", 1), ("mn", 0)];

/// (`mg`, loud `mg`, `mn`) that `proxy` counted since the last call: a loud `mg` (without the
/// quiet flag) is a reply the client waits for.
fn mg_counts(proxy: &CountingProxy<2>) -> (usize, usize, usize) {
    let [(mg, loud_mg), (mn, _)] = proxy.take();
    (mg, loud_mg, mn)
}

#[test]
fn memcached_a_batch_is_one_pipelined_request_per_server() {
    let (s1, s2) = (start_memcached(), start_memcached());
    let proxies = [
        CountingProxy::new(s1.addr(), MG_MN),
        CountingProxy::new(s2.addr(), MG_MN),
    ];
    let urls: Vec<String> = proxies.iter().map(CountingProxy::url).collect();
    let b = MemcachedBackend::new(&str_refs(&urls), Duration::from_secs(2)).unwrap();
    let ks = keys("memcached-mg", 1_000);
    store_every_third(&b, &ks);
    let counted = || proxies.each_ref().map(mg_counts);
    counted();

    let values = b.get_many(&str_refs(&ks)).unwrap();
    assert_every_third(&values, ks.len());
    let [(mg1, loud1, mn1), (mg2, loud2, mn2)] = counted();
    eprintln!("blocking batch: server 1 {mg1} mg, server 2 {mg2} mg");
    assert_eq!((mn1, mn2), (1, 1), "one pipelined request per server");
    assert_eq!((loud1, loud2), (0, 0), "no mg waited for on its own");
    // Each server's keys, and its namespace's generation, once each.
    assert_eq!(mg1 + mg2, ks.len() + 2);
    assert!(
        mg1 > 100 && mg2 > 100,
        "the ring spreads the keys: {mg1}, {mg2}"
    );

    let values = runtime()
        .block_on(b.get_many_async(&str_refs(&ks)))
        .unwrap();
    assert_every_third(&values, ks.len());
    let [(mg1, loud1, mn1), (mg2, loud2, mn2)] = counted();
    assert_eq!((mn1, mn2, loud1, loud2), (1, 1, 0, 0));
    assert_eq!(mg1 + mg2, ks.len() + 2);

    // Against 1,000 requests for as many `get`s.
    for k in &ks[..10] {
        b.get(k).unwrap();
    }
    let [(_, _, mn1), (_, _, mn2)] = counted();
    assert_eq!(mn1 + mn2, 10);

    assert!(b.get_many(&[]).unwrap().is_empty());
    assert_eq!(
        counted(),
        [(0, 0, 0), (0, 0, 0)],
        "an empty batch asks nothing"
    );
    assert_eq!(b.faults(), cache_runtime::Faults::default());
}

#[test]
fn memcached_a_batch_reads_again_what_another_process_cleared_and_repeats_keys() {
    let server = start_memcached();
    let (a, b) = two_memcached_clients(&server.memcached_url(), Duration::from_secs(2));
    let ks = keys("memcached-gen", 30);
    store_every_third(&a, &ks);
    let mut asked = str_refs(&ks);
    asked.push(&ks[0]);
    let values = b.get_many(&asked).unwrap();
    assert_eq!(values[30], Some(b"value-0".to_vec()), "a key asked twice");
    assert_every_third(&values[..30], 30);
    // `a` clears the namespace and writes one key anew: `b`'s generation is old now.
    let namespace = &ks[0][..=ks[0].rfind(':').unwrap()];
    a.clear_prefix(namespace).unwrap();
    a.set(&ks[4], b"fresh", None).unwrap();
    let values = b.get_many(&str_refs(&ks)).unwrap();
    let expected: Vec<Option<Vec<u8>>> = (0..30)
        .map(|i| (i == 4).then(|| b"fresh".to_vec()))
        .collect();
    assert_eq!(values, expected);
}

#[test]
fn memcached_a_dead_or_silent_server_faults_the_batch_within_the_timeout() {
    assert_fails_against_dead_or_silent_memcached(&str_refs(&keys("memcached-silent", 200))[..]);
}

/// A fake memcached: a loud `mg` (the generation, read alone) gets a generation token, and
/// each pipelined request (at its `mn`) gets `reply` (then the connection is closed, if
/// `close`). `{gen}` in `reply` stands for the first key of the request.
fn fake_memcached(reply: &'static str, close: bool) -> u16 {
    fake_memcached_server(close, move |first_key: &mut Option<String>, words, _| {
        Some(match words {
            ["mg", key, flags @ ..] if flags.contains(&"q") => {
                first_key.get_or_insert_with(|| (*key).to_owned());
                return None;
            }
            ["mg", ..] => "VA 12\r\n000000000001\r\n".to_owned(),
            ["mn"] => reply.replace("{gen}", &first_key.take().unwrap_or_default()),
            _ => "ERROR\r\n".to_owned(),
        })
    })
}

#[test]
fn memcached_a_garbled_or_short_reply_is_a_fault_never_a_panic() {
    let timeout = Duration::from_millis(300);
    let ks = keys("memcached-garbled", 3);
    let asked = str_refs(&ks);
    // The fake server is right first: the generation is current, and every key a miss.
    let ok = fake_memcached("VA 12 k{gen}\r\n000000000001\r\nMN\r\n", false);
    let b = MemcachedBackend::new(&[&format!("memcached://127.0.0.1:{ok}")], timeout).unwrap();
    assert_eq!(b.get_many(&asked).unwrap(), [None, None, None]);
    let cases: [(&str, &'static str, bool); 6] = [
        (
            "a value of a key not asked",
            "VA 2 knot-asked\r\nxx\r\nMN\r\n",
            false,
        ),
        ("a value without its key", "VA 2\r\nxx\r\nMN\r\n", false),
        (
            "more replies than keys",
            "VA 1 k{gen}\r\nx\r\nVA 1 k{gen}\r\nx\r\nVA 1 k{gen}\r\nx\r\nVA 1 k{gen}\r\nx\r\nVA 1 k{gen}\r\nx\r\nMN\r\n",
            false,
        ),
        ("not the protocol", "WHAT IS THIS\r\n", false),
        ("cut short", "VA 5 k{gen}\r\nab", true),
        (
            "a value of a terabyte",
            "VA 1099511627776 k{gen}\r\nab",
            false,
        ),
    ];
    for (what, reply, close) in cases {
        let port = fake_memcached(reply, close);
        let b =
            MemcachedBackend::new(&[&format!("memcached://127.0.0.1:{port}")], timeout).unwrap();
        let (blocking, _) = assert_both_fail(what, timeout, &b, &asked[..]);
        let f = b.faults();
        assert!(f.error + f.timeout >= 2, "{what}: counted {f:?}");
        if what != "cut short" && what != "a value of a terabyte" {
            assert_eq!(blocking, Fault::Reply, "{what}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Through a cache: `Cache::get_or_load_many` on a two-level cache asks the tier in one round trip

/// Two processes' caches on one backend: A loads 300 of 1,000 keys; B's batch of the 1,000 gets
/// those 300 from the tier and loads the other 700 in one loader call.
fn batch_through(backend: &Arc<dyn Backend>, prefix: &str, before_b: impl FnOnce()) {
    let node = || -> cache_runtime::Cache<u64, String> {
        cache_runtime::Cache::builder()
            .name("batch-through")
            .ttl(Duration::from_secs(300))
            .remote(Arc::clone(backend), prefix)
            .build()
            .unwrap()
    };
    let load = |m: Vec<u64>| {
        Ok::<_, std::convert::Infallible>(
            m.into_iter()
                .map(|k| (k, format!("v{k}")))
                .collect::<std::collections::HashMap<_, _>>(),
        )
    };
    let (a, b) = (node(), node());
    a.get_or_load_many((0..1_000u64).filter(|k| k % 10 < 3), load)
        .unwrap();
    before_b();
    let mut calls = Vec::new();
    let got = b
        .get_or_load_many(0..1_000u64, |m| {
            calls.push(m.len());
            load(m)
        })
        .unwrap();
    assert_eq!(got.len(), 1_000);
    assert!(got.iter().all(|(k, v)| *v == format!("v{k}")));
    assert_eq!(
        calls,
        [700],
        "one loader call with the 700 keys the tier does not hold"
    );
    assert_eq!(b.stats().remote_hits, 300);
}

#[test]
fn redis_a_cache_batch_asks_the_tier_with_one_mget() {
    let server = start_redis();
    let backend: Arc<dyn Backend> =
        Arc::new(RedisBackend::new(&server.redis_url(), Duration::from_secs(2)).unwrap());
    let mut raw = redis::Client::open(server.redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    batch_through(&backend, "batch-through", || {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut raw)
            .unwrap();
    });
    assert_eq!(redis_calls(&mut raw, "mget"), 1, "one MGET for the batch");
    assert_eq!(redis_calls(&mut raw, "get"), 0, "no GET per key");
    // B's 700 loads, written in one pipeline (`tests/batch_writes.rs` counts its round trips).
    assert_eq!(redis_calls(&mut raw, "set"), 700);
}

#[test]
fn memcached_a_cache_batch_asks_each_server_once() {
    let (s1, s2) = (start_memcached(), start_memcached());
    let proxies = [
        CountingProxy::new(s1.addr(), MG_MN),
        CountingProxy::new(s2.addr(), MG_MN),
    ];
    let urls: Vec<String> = proxies.iter().map(CountingProxy::url).collect();
    let backend: Arc<dyn Backend> =
        Arc::new(MemcachedBackend::new(&str_refs(&urls), Duration::from_secs(2)).unwrap());
    batch_through(&backend, "batch-through", || {
        for p in &proxies {
            p.take();
        }
    });
    let [(_, loud1, mn1), (_, loud2, mn2)] = proxies.each_ref().map(mg_counts);
    // One pipelined request per server for the lookups, one for the writes of B's 700 loads.
    assert_eq!(
        (mn1, mn2),
        (2, 2),
        "two requests per server: the batch's lookups, then its writes"
    );
    assert_eq!((loud1, loud2), (0, 0), "no lookup waited for on its own");
}
