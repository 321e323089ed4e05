//! CPU cost of a read through memcached, without the network's noise: `n` reads of one entry by
//! the raw async-memcached client (`raw-get`, a current-thread runtime's `block_on`, as the
//! `memcached` bench's baseline), by `MemcachedBackend::get` (`backend-get`) and by the
//! two-level cache's L2 hit (`l2`: the L1 copy dropped, then a read that finds the entry in
//! memcached), against a memcached at `ADDR`.
//!
//! Count instructions with callgrind, allocations with dhat (both repeat exactly however busy
//! the machine; the network's own time is not counted): run each mode with two read counts, and
//! divide the difference of the totals by the difference of the counts.
//!
//! ```sh
//! memcached -p 21400 -l 127.0.0.1 -U 0 &
//! cargo build --release -p cache-benches --bin l2cost
//! for n in 2000 12000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.l2.$n target/release/l2cost l2 127.0.0.1:21400 $n
//!   valgrind --tool=dhat --dhat-out-file=/tmp/dh.l2.$n target/release/l2cost l2 127.0.0.1:21400 $n
//! done
//! ```

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use async_memcached::{AsciiProtocol, Client};
use cache_runtime::tier::Backend;
use cache_runtime::{Cache, MemcachedBackend};

const VALUE: &str = "a 64-byte value, like a small JSON document or a row of text...";

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_default();
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:11211".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let url = format!("memcached://{addr}");
    let prefix = format!("l2cost-{}", std::process::id());
    let backend =
        Arc::new(MemcachedBackend::new(&[url.as_str()], Duration::from_secs(2)).expect("URL"));
    let two: Cache<u64, String> = Cache::builder()
        .name("l2cost")
        .ttl(Duration::from_secs(3_600))
        .l1_ttl(Duration::from_secs(3_600))
        .remote(backend.clone(), &prefix)
        .build()
        .expect("valid settings");
    two.insert(7, VALUE.into());
    match which.as_str() {
        "raw-get" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let mut client = rt
                .block_on(Client::new(format!("tcp://{addr}")))
                .expect("memcached is up");
            let key = format!("{prefix}:raw");
            rt.block_on(client.set(&key, VALUE, None, None))
                .expect("set");
            for _ in 0..n {
                let v = rt.block_on(client.get(&key)).expect("get");
                assert!(black_box(v).is_some(), "a hit");
            }
        }
        "backend-get" => {
            let key = format!("{prefix}:raw");
            backend.set(&key, VALUE.as_bytes(), None).expect("set");
            for _ in 0..n {
                let v = backend.get(&key).expect("get");
                assert!(black_box(v).is_some(), "a hit");
            }
        }
        "l2" => {
            for _ in 0..n {
                two.evict_local(&7);
                let v = two.get_or_insert_with(&7, || unreachable!("in memcached"));
                assert_eq!(black_box(v), VALUE, "an L2 hit");
            }
        }
        other => {
            eprintln!("usage: l2cost raw-get|backend-get|l2 ADDR [N] (not {other:?})");
            std::process::exit(2);
        }
    }
    two.clear();
    println!("{which}: {n} reads");
}
