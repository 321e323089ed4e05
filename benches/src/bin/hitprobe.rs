//! A probe of issue 18's remaining design, before it is built into the store: what an `lfu` hit
//! would cost if a protected entry stamped with its shard's current epoch were read under the
//! shard's *read* lock, writing only its node's read count (a relaxed atomic byte), against
//! today's hit (the shard's mutex and a move to the front of its list) and raw `quick_cache`.
//! The probe's shards are a bare `hashbrown` table of slot indices over a `Vec` of nodes, as
//! the sharded store's are; nothing else of the store (no policy, no eviction) is here.
//!
//! ```sh
//! cargo build --release -p cache-benches --bin hitprobe
//! # instructions a hit: the difference of two runs' totals, over the difference of their hits
//! for w in quick stamped listmove; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg target/release/hitprobe $w 1000000 2>&1 | grep Collected
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg target/release/hitprobe $w 2000000 2>&1 | grep Collected
//! done
//! # time a hit, on 1 and 2 threads (a noisy machine: compare medians of several runs)
//! for t in 1 2; do for w in quick stamped listmove; do target/release/hitprobe $w 20000000 $t; done; done
//! ```

#![allow(missing_docs)]

use std::hash::BuildHasher;
use std::hint::black_box;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Instant;

use foldhash::quality::FixedState;
use hashbrown::HashTable;

/// Protected's list, as the store's `queue` numbers it.
const PROTECTED: u8 = 2;

/// No node: the end of a list.
const NIL: u32 = u32::MAX;

struct Node {
    key: u64,
    value: u64,
    prev: u32,
    next: u32,
    reads: AtomicU8,
    /// The epoch of the node's last hit (the design's one-byte stamp).
    stamp: u8,
    queue: u8,
}

struct Shard {
    table: HashTable<u32>,
    nodes: Vec<Node>,
    /// The list's ends (front: the most recent).
    head: u32,
    tail: u32,
    epoch: u8,
}

impl Shard {
    /// The shard holding the keys of `keys` that hash to shard `s` of `mask + 1`, linked in one
    /// list in insertion order, each stamped with the current epoch.
    fn new(keys: &[u64], hasher: &FixedState, mask: u64, s: u64) -> Self {
        let mut shard = Shard {
            table: HashTable::new(),
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
            epoch: 0,
        };
        for &key in keys {
            let hash = hasher.hash_one(key);
            if (hash >> 32) & mask != s {
                continue;
            }
            let i = u32::try_from(shard.nodes.len()).expect("fewer than 2^32 nodes");
            // Appended at the back: node 0 is the front.
            if let Some(t) = shard.nodes.get_mut(shard.tail as usize) {
                t.next = i;
            } else {
                shard.head = i;
            }
            let prev = shard.tail;
            shard.tail = i;
            shard.nodes.push(Node {
                key,
                value: key,
                prev,
                next: NIL,
                reads: AtomicU8::new(0),
                stamp: 0,
                queue: PROTECTED,
            });
            let nodes = &shard.nodes;
            shard.table.insert_unique(hash, i, |&j| {
                nodes.get(j as usize).map_or(0, |n| hasher.hash_one(n.key))
            });
        }
        shard
    }

    fn find(&self, hash: u64, key: u64) -> Option<u32> {
        let nodes = &self.nodes;
        self.table
            .find(hash, |&i| {
                nodes.get(i as usize).is_some_and(|n| n.key == key)
            })
            .copied()
    }
}

struct Store<L> {
    shards: Box<[L]>,
    mask: u64,
    hasher: FixedState,
}

impl<L> Store<L> {
    fn new(keys: &[u64], shards: u64, lock: impl Fn(Shard) -> L) -> Self {
        let hasher = FixedState::with_seed(7);
        Store {
            shards: (0..shards)
                .map(|s| lock(Shard::new(keys, &hasher, shards - 1, s)))
                .collect(),
            mask: shards - 1,
            hasher,
        }
    }

    fn shard(&self, hash: u64) -> &L {
        #[allow(clippy::cast_possible_truncation)]
        &self.shards[((hash >> 32) & self.mask) as usize]
    }
}

impl Store<RwLock<Shard>> {
    /// The design's hit: the read lock, the lookup, a stamp check and the read count.
    #[inline(never)]
    fn get(&self, key: u64) -> Option<u64> {
        let hash = self.hasher.hash_one(key);
        let s = self
            .shard(hash)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let n = s.nodes.get(s.find(hash, key)? as usize)?;
        if n.queue == PROTECTED && n.stamp == s.epoch {
            let r = n.reads.load(Ordering::Relaxed);
            if r < 15 {
                n.reads.store(r + 1, Ordering::Relaxed);
            }
            return Some(n.value);
        }
        // The write-locked path (a probation hit, a stale stamp): never taken in this probe.
        None
    }
}

impl Store<Mutex<Shard>> {
    /// Today's hit: the mutex, the lookup, the read count and a move to the front (links only).
    #[inline(never)]
    fn get(&self, key: u64) -> Option<u64> {
        let hash = self.hasher.hash_one(key);
        let mut guard = self
            .shard(hash)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let s = &mut *guard;
        let i = s.find(hash, key)?;
        if s.head != i {
            // Out of its place (it has a predecessor, not being the front)...
            let (prev, next) = s.nodes.get(i as usize).map(|n| (n.prev, n.next))?;
            if let Some(p) = s.nodes.get_mut(prev as usize) {
                p.next = next;
            }
            match s.nodes.get_mut(next as usize) {
                Some(nx) => nx.prev = prev,
                None => s.tail = prev,
            }
            // ...and in at the front.
            let old = s.head;
            if let Some(h) = s.nodes.get_mut(old as usize) {
                h.prev = i;
            }
            let n = s.nodes.get_mut(i as usize)?;
            n.prev = NIL;
            n.next = old;
            s.head = i;
        }
        let n = s.nodes.get_mut(i as usize)?;
        let r = n.reads.get_mut();
        if *r < 15 {
            *r += 1;
        }
        Some(n.value)
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_default();
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    let keys: Vec<u64> = (0..10_000u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9))
        .collect();
    let quick = quick_cache::sync::Cache::<u64, u64>::new(20_000);
    for &k in &keys {
        quick.insert(k, k);
    }
    let stamped = Store::new(&keys, 8, RwLock::new);
    let listmove = Store::new(&keys, 8, Mutex::new);
    let get: &(dyn Fn(u64) -> Option<u64> + Sync) = match which.as_str() {
        "quick" => &|k| quick.get(&k),
        "stamped" => &|k| stamped.get(k),
        "listmove" => &|k| listmove.get(k),
        other => {
            eprintln!("usage: hitprobe quick|stamped|listmove [hits] [threads] (not {other:?})");
            std::process::exit(2);
        }
    };
    let get = black_box(get);
    let run = |offset: usize| {
        let mut sum = 0u64;
        for i in 0..n {
            let k = keys[(i * 7 + offset) % keys.len()];
            sum = sum.wrapping_add(get(k).expect("every key is held"));
        }
        black_box(sum);
    };
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 1..threads {
            s.spawn(move || run(t * 13));
        }
        run(0);
    });
    #[allow(clippy::cast_precision_loss)]
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    println!("{which}: {n} hits on each of {threads} threads, {ns:.1} ns a round");
}
