//! Property tests: each policy against a simple reference model, single-threaded, one shard.
//!
//! A trace of lookups (demand-filled: a miss inserts), removals and weighted inserts runs through
//! the store and through a model built from plain `Vec`s; both must give the same hits and misses
//! and hold the same keys, at every step.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use foldhash::quality::FixedState;
use proptest::prelude::*;

use super::policy::Sketch;
use super::{Listener, Policy, Store, StoreConfig, Weigher};

#[derive(Clone, Debug)]
enum Op {
    /// Look up; insert on a miss.
    Access(u64),
    Remove(u64),
}

fn ops(keys: u64) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            12 => (0..keys).prop_map(Op::Access),
            // A skewed component, so that frequencies matter to LFU.
            6 => (0..keys / 8 + 1).prop_map(Op::Access),
            1 => (0..keys).prop_map(Op::Remove),
        ],
        0..1_500,
    )
}

/// A store replayed against a reference model: exact recency at every size (no epochs).
fn store(policy: Policy, capacity: u64, weighted: bool) -> (Store<u64, u64>, Arc<AtomicU64>) {
    store_with(policy, capacity, weighted, true)
}

fn store_with(
    policy: Policy,
    capacity: u64,
    weighted: bool,
    exact: bool,
) -> (Store<u64, u64>, Arc<AtomicU64>) {
    let evictions = Arc::new(AtomicU64::new(0));
    let ev = Arc::clone(&evictions);
    let weigher: Weigher<u64, u64> = if weighted {
        Weigher(Some(Arc::new(|k: &u64, _: &u64| weight(*k))))
    } else {
        Weigher(None)
    };
    let s = Store::new(StoreConfig {
        policy,
        capacity,
        estimated_items: usize::try_from(capacity).unwrap_or(1),
        shards: Some(1),
        hasher: FixedState::with_seed(5),
        weigher,
        listener: Listener(Arc::new(move |_| {
            ev.fetch_add(1, Ordering::Relaxed);
        })),
        removal: None,
        exact,
    });
    (s, evictions)
}

fn weight(k: u64) -> u64 {
    k % 3 + 1
}

/// A reference model of a policy.
trait Model {
    /// Returns whether `k` was a hit; on a miss inserts it.
    fn access(&mut self, k: u64) -> bool;
    fn remove(&mut self, k: u64);
    fn keys(&self) -> Vec<u64>;
}

/// LRU or FIFO over a `VecDeque` (front = newest), evicting from the back by weight.
struct ListModel {
    list: VecDeque<u64>,
    capacity: u64,
    weighted: bool,
    reorder_on_hit: bool,
}

impl ListModel {
    fn w(&self, k: u64) -> u64 {
        if self.weighted { weight(k) } else { 1 }
    }
}

impl Model for ListModel {
    fn access(&mut self, k: u64) -> bool {
        if let Some(p) = self.list.iter().position(|&x| x == k) {
            if self.reorder_on_hit {
                self.list.remove(p);
                self.list.push_front(k);
            }
            return true;
        }
        if self.w(k) > self.capacity {
            return false;
        }
        self.list.push_front(k);
        while self.list.iter().map(|&x| self.w(x)).sum::<u64>() > self.capacity {
            self.list.pop_back();
        }
        false
    }

    fn remove(&mut self, k: u64) {
        self.list.retain(|&x| x != k);
    }

    fn keys(&self) -> Vec<u64> {
        let mut v: Vec<_> = self.list.iter().copied().collect();
        v.sort_unstable();
        v
    }
}

/// W-TinyLFU, written as plainly as possible over `Vec`s (index 0 = most recent), with its
/// density climber.
struct LfuModel {
    window: Vec<u64>,
    /// The window's keys hit since they entered it.
    window_hit: Vec<u64>,
    probation: Vec<u64>,
    protected: Vec<u64>,
    window_max: usize,
    main_max: usize,
    protected_max: usize,
    sketch: Sketch,
    /// Reads of held keys not yet added to the sketch (at most 15 a key).
    reads: std::collections::HashMap<u64, u8>,
    hasher: FixedState,
    /// The climber's sample: requests, first hits in the window, hits in probation.
    requests: u64,
    window_hits: u64,
    probation_hits: u64,
}

impl LfuModel {
    fn new(capacity: u64) -> Self {
        let c = usize::try_from(capacity).unwrap();
        let window_max = c / 100;
        let main_max = c - window_max;
        Self {
            window: Vec::new(),
            window_hit: Vec::new(),
            probation: Vec::new(),
            protected: Vec::new(),
            window_max,
            main_max,
            protected_max: main_max - main_max / 5,
            sketch: Sketch::new(c),
            reads: std::collections::HashMap::new(),
            hasher: FixedState::with_seed(5),
            requests: 0,
            window_hits: 0,
            probation_hits: 0,
        }
    }

    fn freq(&self, k: u64) -> u8 {
        let held = self.reads.get(&k).copied().unwrap_or(0);
        (self.sketch.frequency(self.hasher.hash_one(k)) + held).min(15)
    }

    /// A hit: counted towards aging, added to the sketch later (when the key leaves or the
    /// sketch ages).
    fn read(&mut self, k: u64) {
        let held = self.reads.entry(k).or_default();
        if *held < 15 && self.sketch.is_allocated() {
            *held += 1;
            if self.sketch.count_read() {
                self.age();
            }
        }
    }

    fn count(&mut self, h: u64) {
        if self.sketch.increment(h) {
            self.age();
        }
    }

    /// Every key's held reads into the sketch, then the halving.
    fn age(&mut self) {
        for (k, n) in std::mem::take(&mut self.reads) {
            self.sketch.add(self.hasher.hash_one(k), n);
        }
        self.sketch.age();
    }

    /// Counts a request; at the end of a sample (10 requests a slot, at least 500), moves
    /// `0.02 x ln(window density / probation density)` of the capacity (at most 30% of it) to
    /// the window, each density being its hits plus one over its slots (at least one).
    fn climb(&mut self) {
        let capacity = self.window_max + self.main_max;
        self.requests += 1;
        if self.requests < (10 * capacity as u64).max(500) {
            return;
        }
        let window = (self.window_hits + 1) as f64 / self.window_max.max(1) as f64;
        let probation =
            (self.probation_hits + 1) as f64 / (self.main_max - self.protected_max).max(1) as f64;
        (self.requests, self.window_hits, self.probation_hits) = (0, 0, 0);
        let error = (window / probation).ln();
        let cap = capacity as f64;
        let amount = error.signum() * (error.abs() * 0.02 * cap).min(0.3 * cap);
        if capacity < 2 {
            return;
        }
        let by = amount.abs().round() as usize;
        let w = if amount >= 0.0 {
            self.window_max.saturating_add(by)
        } else {
            self.window_max.saturating_sub(by)
        };
        self.window_max = w.min(capacity - 1);
        self.main_max = capacity - self.window_max;
        self.protected_max = self.main_max - self.main_max / 5;
    }

    fn balance(&mut self) {
        while self.protected.len() > self.protected_max {
            let d = self.protected.pop().unwrap();
            self.probation.insert(0, d);
        }
    }
}

impl Model for LfuModel {
    fn access(&mut self, k: u64) -> bool {
        let h = self.hasher.hash_one(k);
        if let Some(p) = self.window.iter().position(|&x| x == k) {
            self.read(k);
            if !self.window_hit.contains(&k) {
                self.window_hits += 1;
                self.window_hit.push(k);
            }
            self.climb();
            self.window.remove(p);
            self.window.insert(0, k);
            return true;
        }
        if let Some(p) = self.probation.iter().position(|&x| x == k) {
            self.read(k);
            self.probation_hits += 1;
            self.climb();
            self.probation.remove(p);
            self.protected.insert(0, k);
            self.balance();
            return true;
        }
        if let Some(p) = self.protected.iter().position(|&x| x == k) {
            self.read(k);
            self.climb();
            self.protected.remove(p);
            self.protected.insert(0, k);
            return true;
        }
        if !self.sketch.is_allocated()
            && 2 * (self.window.len() + self.probation.len() + self.protected.len())
                >= self.window_max + self.main_max
        {
            // The counters start with each entry held counted once.
            self.sketch.allocate();
            let held: Vec<u64> = self.keys();
            let mut due = false;
            for x in held {
                due |= self.sketch.increment(self.hasher.hash_one(x));
            }
            if due {
                self.age();
            }
        }
        self.count(h);
        self.climb();
        self.window.insert(0, k);
        // The window's overflow joins probation, newest first: candidates.
        let mut candidates = 0;
        while self.window.len() > self.window_max {
            let c = self.window.pop().unwrap();
            self.window_hit.retain(|&x| x != c);
            self.probation.insert(0, c);
            candidates += 1;
        }
        // Over capacity: the newest candidate against probation's oldest entry (protected's if
        // probation is empty); the less frequent goes, the candidate on a tie.
        while self.window.len() + self.probation.len() + self.protected.len()
            > self.window_max + self.main_max
        {
            let victim = self.probation.last().or(self.protected.last()).copied();
            let candidate = if candidates > 0 {
                self.probation.first().copied()
            } else {
                self.window.last().copied()
            };
            let loser = match (victim, candidate) {
                (Some(v), Some(c)) if v != c => {
                    candidates -= usize::from(candidates > 0);
                    if self.freq(c) > self.freq(v) { v } else { c }
                }
                (Some(v), _) => v,
                (None, Some(c)) => c,
                (None, None) => break,
            };
            self.remove(loser);
        }
        self.balance();
        false
    }

    fn remove(&mut self, k: u64) {
        if let Some(n) = self.reads.remove(&k)
            && n > 0
        {
            self.sketch.add(self.hasher.hash_one(k), n);
        }
        self.window.retain(|&x| x != k);
        self.window_hit.retain(|&x| x != k);
        self.probation.retain(|&x| x != k);
        self.protected.retain(|&x| x != k);
    }

    fn keys(&self) -> Vec<u64> {
        let mut v: Vec<_> = self
            .window
            .iter()
            .chain(&self.probation)
            .chain(&self.protected)
            .copied()
            .collect();
        v.sort_unstable();
        v
    }
}

fn store_keys(s: &Store<u64, u64>, universe: u64) -> Vec<u64> {
    // `get` would touch recency; the model comparison reads membership through `remove_if`
    // with a predicate that never removes.
    (0..universe)
        .filter(|k| {
            let mut seen = false;
            s.remove_if(k, |_| {
                seen = true;
                false
            });
            seen
        })
        .collect()
}

fn run(policy: Policy, capacity: u64, weighted: bool, trace: &[Op], model: &mut dyn Model) {
    let (s, evictions) = store(policy, capacity, weighted);
    let mut inserted = 0u64;
    let mut removed = 0u64;
    for (step, op) in trace.iter().enumerate() {
        match *op {
            Op::Access(k) => {
                let hit = s.get(&k).is_some();
                if !hit {
                    s.insert(k, k * 10);
                    inserted += 1;
                }
                assert_eq!(hit, model.access(k), "step {step}: {op:?}");
            }
            Op::Remove(k) => {
                if s.remove(&k).is_some() {
                    removed += 1;
                }
                model.remove(k);
            }
        }
        assert!(s.weight() <= capacity, "over capacity at step {step}");
    }
    assert_eq!(store_keys(&s, 400), model.keys());
    // Every inserted entry is still here, was removed, or was counted as evicted.
    assert_eq!(
        inserted,
        s.len() as u64 + removed + evictions.load(Ordering::Relaxed)
    );
}

/// LRU by epochs (`sharded::Epoch`), written plainly: a hit moves its key to the front only if
/// it was not moved (or inserted) in the current epoch; an epoch ends every `width` of inserted
/// weight.
struct EpochLruModel {
    list: ListModel,
    width: u64,
    now: u16,
    since: u64,
    stamps: std::collections::HashMap<u64, u16>,
}

impl Model for EpochLruModel {
    fn access(&mut self, k: u64) -> bool {
        if let Some(p) = self.list.list.iter().position(|&x| x == k) {
            if self.stamps.get(&k) != Some(&self.now) {
                self.list.list.remove(p);
                self.list.list.push_front(k);
                self.stamps.insert(k, self.now);
            }
            return true;
        }
        let w = self.list.w(k);
        if w > self.list.capacity {
            return false;
        }
        self.since += w;
        if self.since >= self.width {
            self.now = self
                .now
                .wrapping_add(u16::try_from(self.since / self.width).unwrap_or(u16::MAX));
            self.since %= self.width;
        }
        self.stamps.insert(k, self.now);
        // Inserted at the front; evicts from the back (the plain model's own insert).
        self.list.access(k);
        let held: Vec<u64> = self.list.list.iter().copied().collect();
        self.stamps.retain(|k, _| held.contains(k));
        false
    }

    fn remove(&mut self, k: u64) {
        self.list.remove(k);
        self.stamps.remove(&k);
    }

    fn keys(&self) -> Vec<u64> {
        self.list.keys()
    }
}

/// A one-shard `lru` store with epochs of `width` (what a store of 1,024 entries or more gets,
/// at a size a trace can fill) against [`EpochLruModel`], hit by hit, with the store's hit path:
/// the read-lock lookup first, the write-lock one when it needs reordering.
fn run_epochs(capacity: u64, width: u64, weighted: bool, trace: &[Op]) {
    use super::sharded::{Shard, Shared};
    let hasher = FixedState::with_seed(5);
    let mut shard: Shard<u64, u64, super::policy::Lru> =
        Shard::with_epochs(capacity, 64, hasher.clone(), width);
    let listener = Listener(Arc::new(|_: &u64| {}));
    let mut model = EpochLruModel {
        list: ListModel {
            list: VecDeque::new(),
            capacity,
            weighted,
            reorder_on_hit: true,
        },
        width,
        now: 0,
        since: 0,
        stamps: std::collections::HashMap::new(),
    };
    for (step, op) in trace.iter().enumerate() {
        match *op {
            Op::Access(k) => {
                let h = hasher.hash_one(k);
                let hit = match shard.get_shared(h, &k) {
                    Shared::Hit(_) => true,
                    Shared::Miss => false,
                    Shared::Locked => shard.get(h, &k).is_some(),
                };
                if !hit {
                    let w = if weighted { weight(k) } else { 1 };
                    let mut out = super::Evictions::default();
                    shard.insert(h, k, k, w, &listener, &mut out);
                }
                assert_eq!(hit, model.access(k), "step {step}: {op:?}");
            }
            Op::Remove(k) => {
                shard.remove_if(hasher.hash_one(k), &k, |_| true);
                model.remove(k);
            }
        }
    }
    // Membership under the read lock: `get_shared` moves nothing.
    let held: Vec<u64> = (0..400)
        .filter(|&k| !matches!(shard.get_shared(hasher.hash_one(k), &k), Shared::Miss))
        .collect();
    assert_eq!(held, model.keys());
}

proptest! {
    #[test]
    fn lru_with_epochs_matches_reference(
        cap in 1u64..40,
        width in 1u64..5,
        weighted in any::<bool>(),
        trace in ops(120),
    ) {
        run_epochs(cap, width, weighted, &trace);
    }

    #[test]
    fn lru_matches_reference(cap in 1u64..40, trace in ops(120)) {
        let mut m = ListModel { list: VecDeque::new(), capacity: cap, weighted: false, reorder_on_hit: true };
        run(Policy::Lru, cap, false, &trace, &mut m);
    }

    #[test]
    fn lru_weighted_matches_reference(cap in 1u64..60, trace in ops(120)) {
        let mut m = ListModel { list: VecDeque::new(), capacity: cap, weighted: true, reorder_on_hit: true };
        run(Policy::Lru, cap, true, &trace, &mut m);
    }

    #[test]
    fn fifo_matches_reference(cap in 1u64..40, trace in ops(120)) {
        let mut m = ListModel { list: VecDeque::new(), capacity: cap, weighted: false, reorder_on_hit: false };
        run(Policy::Fifo, cap, false, &trace, &mut m);
    }

    #[test]
    fn fifo_weighted_matches_reference(cap in 1u64..60, trace in ops(120)) {
        let mut m = ListModel { list: VecDeque::new(), capacity: cap, weighted: true, reorder_on_hit: false };
        run(Policy::Fifo, cap, true, &trace, &mut m);
    }

    #[test]
    fn lfu_matches_reference(cap in 1u64..300, trace in ops(400)) {
        let mut m = LfuModel::new(cap);
        run(Policy::Lfu, cap, false, &trace, &mut m);
    }

    #[test]
    fn lfu_with_epochs_stays_within_capacity(cap in 1u64..300, trace in ops(400)) {
        // A cache's `lfu` store has epochs at every size (its hits under the read lock move
        // nothing within one): no reference model; its bound and bookkeeping are checked.
        bounded(store_with(Policy::Lfu, cap, false, false), &trace);
    }

    #[test]
    fn s3fifo_stays_within_capacity(cap in 1u64..100, trace in ops(300)) {
        // quick_cache's policy has no simple model here; its bound and bookkeeping are checked.
        bounded(store(Policy::S3Fifo, cap, false), &trace);
    }
}

/// Replays `trace` on `s` (a miss inserts) and checks that it stays within its capacity, and
/// that every inserted entry is still there, was removed or was counted as evicted.
fn bounded((s, evictions): (Store<u64, u64>, Arc<AtomicU64>), trace: &[Op]) {
    let mut inserted = 0u64;
    let mut removed = 0u64;
    for (step, op) in trace.iter().enumerate() {
        match *op {
            Op::Access(k) => {
                if s.get(&k).is_none() {
                    s.insert(k, k);
                    inserted += 1;
                }
            }
            Op::Remove(k) => {
                if s.remove(&k).is_some() {
                    removed += 1;
                }
            }
        }
        assert!(s.weight() <= s.capacity(), "over capacity at step {step}");
    }
    assert_eq!(
        inserted,
        s.len() as u64 + removed + evictions.load(Ordering::Relaxed)
    );
}
