//! Memory per entry of each cache, measured with a counting global allocator (`cap`): live heap
//! bytes before building, with the empty cache (built with capacity = entries), and full; then
//! the cache is dropped and the live bytes compared with the baseline again (the residue).
//!
//! `cargo run --release -p cache-benches --bin memory -- [entries]` (default 1,000,000).
//!
//! Two workloads: `u64 -> u64`, and a 16-byte `String` key (`format!("{i:016}")`) to a 1 KiB
//! `Vec<u8>`; for the latter, the overhead per entry is the total minus the key's and value's own
//! heap bytes (their capacities). Bytes are the sizes the program asks the allocator for: the
//! allocator's own per-block overhead (and so the resident set size) is not included.
//!
//! Besides the markdown tables, every measurement is printed as one line for scripts (the smoke
//! test reads them):
//! `RESULT <contender> <workload> <held> <bytes_per_entry> <overhead_per_entry> <empty_bytes> <residue_bytes>`.

#![allow(missing_docs)]

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Policy};

#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// The target of the issue: ours within this many bytes per entry of raw `quick_cache`.
const TARGET: f64 = 24.0;

/// Entries of the warm-up run of each contender (one-time, process-wide allocations).
const WARM_UP: usize = 64;

fn live() -> usize {
    ALLOCATOR.allocated()
}

/// Signed difference of two live-byte readings.
fn diff(after: usize, before: usize) -> i64 {
    i64::try_from(after).unwrap_or(i64::MAX) - i64::try_from(before).unwrap_or(i64::MAX)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    U64,
    String1K,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::U64 => "u64",
            Workload::String1K => "string1k",
        }
    }
}

/// One contender on one workload.
struct Sample {
    contender: &'static str,
    workload: Workload,
    held: usize,
    /// Live bytes of the empty cache (after build, before the first insert).
    empty: i64,
    /// Live bytes of the full cache.
    full: i64,
    /// Live bytes left after the drop, relative to the baseline before the build.
    residue: i64,
    /// Heap bytes of one entry's own key and value (0 for `u64 -> u64`).
    payload: usize,
    fill_time: Duration,
    /// moka's `entry_count()` (moka only).
    entry_count: Option<u64>,
}

impl Sample {
    #[allow(clippy::cast_precision_loss)]
    fn per_entry(&self) -> f64 {
        self.full as f64 / self.held.max(1) as f64
    }

    #[allow(clippy::cast_precision_loss)]
    fn overhead(&self) -> f64 {
        self.per_entry() - self.payload as f64
    }
}

/// How one contender is built, filled, settled and counted.
struct Contender<'a, C, K, V> {
    name: &'static str,
    build: &'a dyn Fn(usize) -> C,
    put: fn(&C, K, V),
    /// Runs after the inserts (moka's pending tasks); returns moka's `entry_count()`.
    settle: fn(&C) -> Option<u64>,
    held: fn(&C) -> usize,
}

/// Measures one contender: baseline, empty, full, after the drop.
fn measure<C, K, V>(
    c: &Contender<'_, C, K, V>,
    workload: Workload,
    n: usize,
    make: fn(usize) -> (K, V),
    payload: usize,
) -> Sample {
    let before = live();
    let cache = (c.build)(n);
    let empty = live();
    let start = Instant::now();
    for i in 0..n {
        let (k, v) = make(i);
        (c.put)(&cache, k, v);
    }
    let entry_count = (c.settle)(&cache);
    let fill_time = start.elapsed();
    let full = live();
    let held = (c.held)(&cache);
    drop(cache);
    let after = live();
    Sample {
        contender: c.name,
        workload,
        held,
        empty: diff(empty, before),
        full: diff(full, before),
        residue: diff(after, before),
        payload,
        fill_time,
        entry_count,
    }
}

fn none<C>(_: &C) -> Option<u64> {
    None
}

fn ours<K, V>(n: usize, policy: Policy, ttl: Option<Duration>) -> Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let mut b = Cache::builder()
        .capacity(u64::try_from(n).unwrap_or(u64::MAX))
        .policy(policy);
    if let Some(ttl) = ttl {
        b = b.ttl(ttl);
    }
    b.build().expect("a valid cache")
}

/// Every contender on one workload, one after another, each dropped before the next.
fn run_all<K, V>(
    workload: Workload,
    n: usize,
    make: fn(usize) -> (K, V),
    payload: usize,
) -> Vec<Sample>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let mut out = Vec::new();
    let mut go = |s: Sample| out.push(s);

    let ours_put: fn(&Cache<K, V>, K, V) = |c, k, v| c.insert(k, v);
    let ours_len: fn(&Cache<K, V>) -> usize = Cache::len;
    let hour = Some(Duration::from_secs(3600));
    for (name, policy, ttl) in [
        ("ours-s3fifo", Policy::S3Fifo, None),
        ("ours-s3fifo-ttl", Policy::S3Fifo, hour),
        ("ours-lru", Policy::Lru, None),
        ("ours-lfu", Policy::Lfu, None),
        ("ours-fifo", Policy::Fifo, None),
    ] {
        go(measure(
            &Contender {
                name,
                build: &|n| ours(n, policy, ttl),
                put: ours_put,
                settle: none,
                held: ours_len,
            },
            workload,
            n,
            make,
            payload,
        ));
    }
    go(measure(
        &Contender {
            name: "quick_cache",
            build: &quick_cache::sync::Cache::<K, V>::new,
            put: |c, k, v| c.insert(k, v),
            settle: none,
            held: quick_cache::sync::Cache::len,
        },
        workload,
        n,
        make,
        payload,
    ));
    go(measure(
        &Contender {
            name: "moka",
            build: &|n| moka::sync::Cache::<K, V>::new(n as u64),
            put: |c, k, v| c.insert(k, v),
            settle: |c| {
                c.run_pending_tasks();
                Some(c.entry_count())
            },
            held: |c| usize::try_from(c.entry_count()).unwrap_or(usize::MAX),
        },
        workload,
        n,
        make,
        payload,
    ));
    // cached 4.x: `SizedCache` is now `LruCache` (same store: a hash table of indices into an
    // LRU list of `(K, V)`). Behind a mutex, as the `#[cached]` macro keeps it.
    go(measure(
        &Contender {
            name: "cached-lru",
            build: &|n| Mutex::new(cached::LruCache::<K, V>::new(n)),
            put: |c, k, v| {
                use cached::Cached;
                drop(c.lock().expect("unpoisoned").cache_set(k, v));
            },
            settle: none,
            held: |c| {
                use cached::Cached;
                c.lock().expect("unpoisoned").cache_size()
            },
        },
        workload,
        n,
        make,
        payload,
    ));
    go(measure(
        &Contender {
            name: "cached-unbound",
            build: &|n| {
                Mutex::new(
                    cached::UnboundCache::<K, V>::builder()
                        .initial_capacity(n)
                        .build()
                        .expect("an unbound cache"),
                )
            },
            put: |c, k, v| {
                use cached::Cached;
                drop(c.lock().expect("unpoisoned").cache_set(k, v));
            },
            settle: none,
            held: |c| {
                use cached::Cached;
                c.lock().expect("unpoisoned").cache_size()
            },
        },
        workload,
        n,
        make,
        payload,
    ));
    go(measure(
        &Contender {
            name: "mutex-hashmap",
            build: &|n| Mutex::new(HashMap::<K, V>::with_capacity(n)),
            put: |c, k, v| drop(c.lock().expect("unpoisoned").insert(k, v)),
            settle: none,
            held: |c| c.lock().expect("unpoisoned").len(),
        },
        workload,
        n,
        make,
        payload,
    ));
    out
}

fn make_u64(i: usize) -> (u64, u64) {
    (i as u64, i as u64)
}

fn make_string(i: usize) -> (String, Vec<u8>) {
    #[allow(clippy::cast_possible_truncation)]
    let byte = (i % 251) as u8;
    (format!("{i:016}"), vec![byte; 1024])
}

fn fmt_bytes(b: i64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let f = b as f64;
    if b.abs() >= 1 << 20 {
        format!("{:.1} MiB", f / f64::from(1 << 20))
    } else if b.abs() >= 1 << 10 {
        format!("{:.1} KiB", f / 1024.0)
    } else {
        format!("{b} B")
    }
}

fn find<'a>(all: &'a [Sample], contender: &str, w: Workload) -> Option<&'a Sample> {
    all.iter()
        .find(|s| s.contender == contender && s.workload == w)
}

fn main() {
    let mut n: usize = 1_000_000;
    for a in std::env::args().skip(1) {
        match a.replace('_', "").parse() {
            Ok(v) if v > 0 => n = v,
            _ => {
                eprintln!("usage: memory [entries]   (default 1000000)");
                std::process::exit(2);
            }
        }
    }
    let started = Instant::now();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);

    // The payload of the String workload: what the key and the value own on the heap.
    let (k, v) = make_string(n - 1);
    let (key_cap, val_cap) = (k.capacity(), v.capacity());
    drop((k, v));
    let payload = key_cap + val_cap;

    // Warm-up: one small run of every contender, so that one-time, process-wide allocations (the
    // runtime's registry and clock thread, thread-locals of the peers) are charged to no one.
    let base0 = live();
    drop(run_all(Workload::U64, WARM_UP, make_u64, 0));
    drop(run_all(Workload::String1K, WARM_UP, make_string, payload));
    let warm = live();

    let mut all = run_all(Workload::U64, n, make_u64, 0);
    all.extend(run_all(Workload::String1K, n, make_string, payload));
    let end = live();

    println!("# Memory per entry: {n} entries, capacity = {n}\n");
    println!(
        "{cores} cores available; counting allocator (`cap`): requested bytes, without the \
         allocator's per-block overhead. String workload payload: key capacity {key_cap} B + \
         value capacity {val_cap} B = {payload} B per entry."
    );
    println!(
        "One-time allocations of the warm-up (kept for the process): {}; live bytes moved by {} \
         over all measurements.\n",
        fmt_bytes(diff(warm, base0)),
        fmt_bytes(diff(end, warm))
    );

    let qc_u = find(&all, "quick_cache", Workload::U64).map(Sample::per_entry);
    let qc_s = find(&all, "quick_cache", Workload::String1K).map(Sample::overhead);
    let vs = |x: f64, base: Option<f64>| base.map_or("-".into(), |b| format!("{:+.1}", x - b));

    println!(
        "| contender | entries held (u64 / String) | bytes/entry u64->u64 | vs raw quick_cache | \
         overhead bytes/entry String->1KiB | vs raw quick_cache |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let names: Vec<&str> = all
        .iter()
        .filter(|s| s.workload == Workload::U64)
        .map(|s| s.contender)
        .collect();
    for name in &names {
        let (Some(u), Some(s)) = (
            find(&all, name, Workload::U64),
            find(&all, name, Workload::String1K),
        ) else {
            continue;
        };
        println!(
            "| {name} | {} / {} | {:.1} | {} | {:.1} | {} |",
            u.held,
            s.held,
            u.per_entry(),
            vs(u.per_entry(), qc_u),
            s.overhead(),
            vs(s.overhead(), qc_s),
        );
    }

    println!(
        "\n| contender | workload | empty cache | full | total bytes/entry | residue after drop | \
         fill time |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for s in &all {
        println!(
            "| {} | {} | {} | {} | {:.1} | {} | {:.0} ms |",
            s.contender,
            s.workload.name(),
            fmt_bytes(s.empty),
            fmt_bytes(s.full),
            s.per_entry(),
            fmt_bytes(s.residue),
            s.fill_time.as_secs_f64() * 1e3,
        );
    }
    for s in &all {
        if let Some(count) = s.entry_count {
            println!(
                "\n{} ({}): entry_count() = {count} after run_pending_tasks().",
                s.contender,
                s.workload.name()
            );
        }
    }

    println!("\nTarget: ours within {TARGET} bytes per entry of raw quick_cache.\n");
    for name in names.iter().filter(|n| n.starts_with("ours")) {
        for (w, base) in [(Workload::U64, qc_u), (Workload::String1K, qc_s)] {
            let (Some(s), Some(base)) = (find(&all, name, w), base) else {
                continue;
            };
            let x = if w == Workload::U64 {
                s.per_entry()
            } else {
                s.overhead()
            };
            let d = x - base;
            let verdict = if d <= TARGET {
                "holds".to_string()
            } else {
                format!("MISSED by {:.1} B", d - TARGET)
            };
            println!(
                "- {name} ({}): {d:+.1} B/entry vs raw quick_cache: {verdict}",
                w.name()
            );
            println!(
                "VERDICT {name} {} {d:.1} {}",
                w.name(),
                if d <= TARGET { "holds" } else { "missed" }
            );
        }
    }
    if let (Some(a), Some(b)) = (
        find(&all, "ours-s3fifo", Workload::U64),
        find(&all, "ours-s3fifo-ttl", Workload::U64),
    ) {
        println!(
            "\nA TTL changes S3-FIFO's size by {:+.1} B/entry (u64).",
            b.per_entry() - a.per_entry()
        );
    }

    println!(
        "\nRESULT_COLUMNS contender workload held bytes_per_entry overhead_per_entry empty_bytes \
         residue_bytes"
    );
    for s in &all {
        println!(
            "RESULT {} {} {} {:.2} {:.2} {} {}",
            s.contender,
            s.workload.name(),
            s.held,
            s.per_entry(),
            s.overhead(),
            s.empty,
            s.residue
        );
    }
    println!("\nWall time: {:.1} s", started.elapsed().as_secs_f64());
}
