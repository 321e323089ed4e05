//! The two-level cache on memcached against the raw client it uses (async-memcached), on
//! loopback, on a memcached of its own (`memcached` from the `PATH`, on a free port, stopped when
//! the bench ends; `CACHE_TEST_MEMCACHED` names another).
//!
//! `cargo bench -p cache-benches --bench memcached`: an L1 hit (no network) next to the in-memory
//! cache's hit, and an L2 hit (L1 miss; the namespace's generation and the entry in one round
//! trip; header and key check, decode, L1 fill) next to a raw `get` and a raw `mg` of the same
//! bytes by async-memcached on one connection, driven as a blocking caller would drive it (a
//! current-thread runtime's `block_on`), and a raw `mg` on a plain blocking socket (no runtime at
//! all: what the backend's reads for blocking callers outside a runtime do).

#![allow(missing_docs)]

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use async_memcached::{AsciiProtocol, Client, MetaProtocol};
use cache_runtime::{Cache, MemcachedBackend};
use cache_test_support::{memcached_addr, memcached_url};
use criterion::{Criterion, criterion_group, criterion_main};

/// A key prefix of this run's own.
fn prefix(what: &str) -> String {
    format!("cache-rs-bench-{what}-{}", std::process::id())
}

fn two_level(prefix: &str) -> Cache<u64, String> {
    let backend = Arc::new(
        MemcachedBackend::new(&[memcached_url()], Duration::from_millis(500)).expect("URL"),
    );
    Cache::builder()
        .name("bench")
        .ttl(Duration::from_secs(3_600))
        .l1_ttl(Duration::from_secs(3_600))
        .remote(backend, prefix)
        .build()
        .expect("valid settings")
}

/// The first key on the server that starts with `prefix` and is not a generation.
fn stored_key(prefix: &str) -> String {
    let mut s = TcpStream::connect(memcached_addr()).expect("memcached is up");
    s.write_all(b"lru_crawler metadump all\r\n").expect("write");
    let mut found = None;
    for line in BufReader::new(s).lines() {
        let line = line.expect("read");
        if line == "END" {
            break;
        }
        if let Some(k) = line.strip_prefix("key=").and_then(|r| r.split(' ').next()) {
            let k = k.replace("%3A", ":").replace("%3a", ":");
            if found.is_none() && k.starts_with(prefix) && !k.ends_with("~gen") {
                found = Some(k);
            }
        }
    }
    found.expect("the entry is stored")
}

fn l1_hit(c: &mut Criterion) {
    let mut g = c.benchmark_group("memcached_l1_hit_u64");
    let memory: Cache<u64, String> = Cache::builder()
        .ttl(Duration::from_secs(3_600))
        .build()
        .expect("valid settings");
    let two = two_level(&prefix("l1"));
    for k in 0..1_000u64 {
        memory.insert(k, format!("value-{k}"));
        two.insert(k, format!("value-{k}"));
    }
    let mut i = 0u64;
    g.bench_function("in_memory", |b| {
        b.iter(|| {
            i = (i + 1) % 1_000;
            black_box(memory.get(&i))
        });
    });
    g.bench_function("two_level_l1", |b| {
        b.iter(|| {
            i = (i + 1) % 1_000;
            black_box(two.get(&i))
        });
    });
    g.finish();
    two.clear();
}

fn l2_hit(c: &mut Criterion) {
    let mut g = c.benchmark_group("memcached_l2_hit");
    let prefix = prefix("l2");
    let raw_key = format!("{prefix}:raw");
    let two = two_level(&prefix);
    two.insert(
        7,
        "a 64-byte value, like a small JSON document or a row of text...".into(),
    );
    // The same bytes, under another key, for the raw client.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut client = rt
        .block_on(Client::new(format!("tcp://{}", memcached_addr())))
        .expect("memcached is up");
    let entry_key = stored_key(&format!("{prefix}:bench:"));
    let payload = rt
        .block_on(client.get(&entry_key))
        .expect("get")
        .and_then(|v| v.data)
        .expect("the entry");
    rt.block_on(client.set(&raw_key, payload.as_slice(), None, None))
        .expect("set");
    g.bench_function("raw_async_memcached_get", |b| {
        b.iter(|| {
            let v = rt.block_on(client.get(&raw_key)).expect("get");
            black_box(v)
        });
    });
    g.bench_function("raw_async_memcached_mg", |b| {
        b.iter(|| {
            let v = rt
                .block_on(client.meta_get(&raw_key, false, None, Some(&["v"])))
                .expect("mg");
            black_box(v)
        });
    });
    // The same `mg` on a plain blocking socket, without any runtime.
    let mut sock = BufReader::new(TcpStream::connect(memcached_addr()).expect("memcached is up"));
    sock.get_ref().set_nodelay(true).expect("nodelay");
    let request = format!("mg {raw_key} v\r\n");
    let mut line = String::new();
    g.bench_function("raw_blocking_socket_mg", |b| {
        b.iter(|| {
            sock.get_mut().write_all(request.as_bytes()).expect("write");
            line.clear();
            sock.read_line(&mut line).expect("read");
            let n: usize = line
                .strip_prefix("VA ")
                .and_then(|r| r.trim_end().split(' ').next()?.parse().ok())
                .expect("a value");
            let mut v = vec![0; n + 2];
            sock.read_exact(&mut v).expect("read");
            v.truncate(n);
            black_box(v)
        });
    });
    // The bytes of the two-level L2 hit's read (the namespace's generation and the entry, quiet,
    // then `mn`), on the same plain socket: the protocol's and the server's share of that read.
    let (head, _) = entry_key.rsplit_once(':').expect("an entry key");
    let namespace = &head[..=head.rfind(":g").expect("a generation")];
    let request = format!("mg {namespace}~gen v k q\r\nmg {entry_key} v k q\r\nmn\r\n");
    g.bench_function("raw_blocking_socket_mg_generation_and_entry", |b| {
        b.iter(|| {
            sock.get_mut().write_all(request.as_bytes()).expect("write");
            let mut values = Vec::new();
            loop {
                line.clear();
                sock.read_line(&mut line).expect("read");
                if line == "MN\r\n" {
                    break;
                }
                let n: usize = line
                    .strip_prefix("VA ")
                    .and_then(|r| r.split(' ').next()?.parse().ok())
                    .expect("a value");
                let mut v = vec![0; n + 2];
                sock.read_exact(&mut v).expect("read");
                values.push(v);
            }
            assert_eq!(values.len(), 2);
            black_box(values)
        });
    });
    // The backend alone (pool, timeout, breaker, the namespace's generation), on the two-level
    // cache's own key (`<namespace><rest>`, stored as `<namespace>g<generation>:<rest>`): the
    // same hit, the same bytes.
    let backend_key = format!("{namespace}{}", &entry_key[head.len() + 1..]);
    let backend =
        MemcachedBackend::new(&[memcached_url()], Duration::from_millis(500)).expect("URL");
    g.bench_function("backend_get", |b| {
        b.iter(|| {
            let v = cache_runtime::tier::Backend::get(&backend, &backend_key).expect("get");
            assert!(v.is_some(), "a hit");
            black_box(v)
        });
    });
    g.bench_function("two_level_l2", |b| {
        b.iter(|| {
            two.evict_local(&7);
            black_box(two.get_or_insert_with(&7, || unreachable!("in memcached")))
        });
    });
    g.finish();
    two.clear();
    let _ = rt.block_on(client.delete(&raw_key));
}

criterion_group!(benches, l1_hit, l2_hit);
criterion_main!(benches);
