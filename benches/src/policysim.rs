//! A standalone model of W-TinyLFU with every design choice a knob, to try policy variants in
//! seconds instead of rebuilding `cache-runtime`. With its defaults it reproduces the hit count of
//! `cache-runtime`'s `lfu` exactly, and [`Variant::moka`] reproduces moka 0.12's (a test checks
//! both); `cargo run --release -p cache-benches --bin lfusim -- <variant>...` compares variants
//! with moka on every trace and size over several hasher seeds.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

use std::collections::HashMap;

/// A W-TinyLFU configuration: the policy of `cache-runtime`'s `lfu` with each choice a knob.
/// [`Variant::parse`] reads one from `knob=value,...`; [`Variant::moka`] is moka's TinyLFU.
#[derive(Clone, Debug)]
pub struct Variant {
    // The knobs, in the order `parse` documents them.
    name: String,
    window_pct: f64,
    window_min: u64,
    protected: f64,
    climb: bool,
    step: f64,
    decay: f64,
    min_sample: u64,
    sample_mult: u64,
    restart: f64,
    aging: u64,
    floor: usize,
    scale: usize,
    lazy: bool,
    climb_protected: bool,
    caffeine_evict: bool,
    admit_protected: bool,
    dead_zone: f64,
    dead_zone_after: u64,
    first_move_shrink: bool,
    window_max_frac: f64,
    moka_sketch: bool,
    conservative: bool,
    blocked: bool,
    width_floor: usize,
    victims: u32,
    seed_resident: bool,
    density: f64,
    density_floor: f64,
    density_bias: f64,
    density_marginal: bool,
    density_first: bool,
    hit_sample: u64,
    buffer: u64,
    sketch_sample: u64,
    defer: bool,
    clock: u8,
    clock_max: u8,
    tskip: f64,
    epoch: f64,
    lfree: bool,
    stamp: bool,
    stamp_floor: u64,
}

impl Default for Variant {
    fn default() -> Self {
        Variant {
            name: "base".into(),
            window_pct: 0.01,
            window_min: 0,
            protected: 0.8,
            climb: true,
            step: 0.0625,
            decay: 0.9,
            min_sample: 500,
            sample_mult: 10,
            restart: 0.05,
            aging: 10,
            floor: 512,
            scale: 4,
            lazy: true,
            climb_protected: false,
            caffeine_evict: true,
            admit_protected: false,
            dead_zone: 2.0,
            dead_zone_after: 1,
            first_move_shrink: true,
            window_max_frac: 1.0,
            moka_sketch: false,
            conservative: false,
            blocked: false,
            width_floor: 512,
            victims: 1,
            seed_resident: true,
            density: 0.02,
            density_floor: 0.0,
            density_bias: 1.0,
            density_marginal: true,
            density_first: true,
            hit_sample: 1,
            buffer: 0,
            sketch_sample: 1,
            defer: true,
            clock: 0,
            clock_max: 1,
            tskip: 0.0,
            epoch: 0.0,
            lfree: false,
            stamp: true,
            stamp_floor: 0,
        }
    }
}

const SEEDS: [u64; 4] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0x27D4_EB2F_1656_67C5,
];

struct Sketch {
    counters: Vec<u8>,
    width_mask: u64,
    additions: u64,
    sample: u64,
    conservative: bool,
    blocked: bool,
}

impl Sketch {
    fn new(items: usize, c: &Variant) -> Self {
        let wide = items.clamp(c.floor.max(c.width_floor), 1 << 24);
        let items = items.clamp(c.floor, 1 << 24);
        let width = wide.next_power_of_two() * c.scale;
        Sketch {
            counters: Vec::new(),
            width_mask: (width - 1) as u64,
            additions: 0,
            sample: c.aging * items as u64,
            conservative: c.conservative,
            blocked: c.blocked,
        }
    }
    fn alloc(&mut self) {
        if self.counters.is_empty() {
            self.counters = vec![0; (self.width_mask as usize + 1) * 2];
        }
    }
    fn slot(&self, hash: u64, row: usize) -> usize {
        if self.blocked {
            // Caffeine's blocked layout (tried, not shipped): a 64-byte block (128 counters) a
            // key, row `row`'s counter among the 32 of the block's words `2 row` and `2 row + 1`.
            let blocks = (self.width_mask + 1) * 4 / 128;
            let h = (hash ^ (hash >> 29)).wrapping_mul(SEEDS[0]);
            let block = ((h >> 32) & (blocks - 1)) as usize;
            let c = (hash ^ (hash >> 31)).wrapping_mul(SEEDS[1]) >> 32;
            let bits = c >> (row * 8);
            let word = 2 * row + (bits & 1) as usize;
            let nibble = ((bits >> 1) & 15) as usize;
            return block * 128 + word * 16 + nibble;
        }
        let h = (hash ^ (hash >> 29)).wrapping_mul(SEEDS[row]);
        let col = ((h >> 32) & self.width_mask) as usize;
        row * (self.width_mask as usize + 1) + col
    }
    fn freq(&self, hash: u64) -> u8 {
        (0..4)
            .map(|r| {
                let s = self.slot(hash, r);
                let sh = if s & 1 == 0 { 0 } else { 4 };
                self.counters.get(s >> 1).map_or(0, |b| (b >> sh) & 15)
            })
            .min()
            .unwrap()
    }
    /// Counts `hash`; whether the counters are due to halve (the owner halves them).
    fn inc(&mut self, hash: u64) -> bool {
        if self.counters.is_empty() {
            return false;
        }
        let mut added = false;
        // With conservative update, only the counters at the key's minimum grow.
        let least = self.conservative.then(|| self.freq(hash));
        for r in 0..4 {
            let s = self.slot(hash, r);
            let sh = if s & 1 == 0 { 0 } else { 4 };
            let b = &mut self.counters[s >> 1];
            let v = (*b >> sh) & 15;
            if v < 15 && least.is_none_or(|m| v == m) {
                *b += 1 << sh;
                added = true;
            }
        }
        added && self.count()
    }
    /// One occurrence towards the next halving; whether it is due.
    fn count(&mut self) -> bool {
        self.additions += 1;
        self.additions >= self.sample
    }
    /// `n` occurrences of `hash` held back (already counted), into the counters.
    fn add(&mut self, hash: u64, n: u8) {
        for r in 0..4 {
            let s = self.slot(hash, r);
            let sh = if s & 1 == 0 { 0 } else { 4 };
            let b = &mut self.counters[s >> 1];
            let v = ((*b >> sh) & 15).saturating_add(n).min(15);
            *b = (*b & !(15 << sh)) | (v << sh);
        }
    }
    fn halve(&mut self) {
        let mut odd = 0u64;
        for b in &mut self.counters {
            odd += u64::from((*b & 0x11).count_ones());
            *b = (*b >> 1) & 0x77;
        }
        self.additions = (self.additions / 2).saturating_sub(odd / 4);
    }
}

const MSEED: [u64; 4] = [
    0xc3a5_c85c_97cb_3127,
    0xb492_b66f_be98_f273,
    0x9ae1_6a3b_2f90_404f,
    0xcbf2_9ce4_8422_2325,
];
struct MSketch {
    table: Vec<u64>,
    mask: u64,
    size: u32,
    sample: u32,
}
impl MSketch {
    fn new() -> Self {
        MSketch {
            table: Vec::new(),
            mask: 0,
            size: 0,
            sample: 0,
        }
    }
    fn alloc(&mut self, cap: u64) {
        let cap = (cap as u32).max(128);
        let ts = cap.next_power_of_two();
        self.table = vec![0; ts as usize];
        self.mask = (ts - 1) as u64;
        self.sample = cap * 10;
    }
    fn index_of(&self, hash: u64, i: usize) -> usize {
        let mut h = hash.wrapping_add(MSEED[i]).wrapping_mul(MSEED[i]);
        h = h.wrapping_add(h >> 32);
        (h & self.mask) as usize
    }
    fn freq(&self, hash: u64) -> u8 {
        if self.table.is_empty() {
            return 0;
        }
        let start = ((hash & 3) << 2) as u8;
        let mut f = u8::MAX;
        for i in 0..4u8 {
            let idx = self.index_of(hash, i as usize);
            let shift = (start + i) << 2;
            f = f.min(((self.table[idx] >> shift) & 0xF) as u8);
        }
        f
    }
    fn inc(&mut self, hash: u64) {
        if self.table.is_empty() {
            return;
        }
        let start = ((hash & 3) << 2) as u8;
        let mut added = false;
        for i in 0..4u8 {
            let idx = self.index_of(hash, i as usize);
            let off = ((start + i) as usize) << 2;
            let mask = 0xFu64 << off;
            if self.table[idx] & mask != mask {
                self.table[idx] += 1u64 << off;
                added = true;
            }
        }
        if added {
            self.size += 1;
            if self.size >= self.sample {
                let mut count = 0u32;
                for e in self.table.iter_mut() {
                    count += (*e & 0x1111_1111_1111_1111).count_ones();
                    *e = (*e >> 1) & 0x7777_7777_7777_7777;
                }
                self.size = (self.size >> 1) - (count >> 2);
            }
        }
    }
}

const NIL: u32 = u32::MAX;
/// `clock` bits: the segments whose hits only set a reference bit.
const CLOCK_W: u8 = 1;
const CLOCK_P: u8 = 2;
const CLOCK_T: u8 = 4;
#[derive(Clone, Copy)]
struct Node {
    key: u64,
    hash: u64,
    prev: u32,
    next: u32,
    q: u8,
    /// Hit since it entered the window.
    whit: bool,
    /// Hits not yet added to the sketch (`defer`).
    reads: u8,
    /// Hit since the eviction scan last passed it (`clock`).
    refb: u8,
    /// The count of pushes to protected when it was last pushed there (`tskip`).
    pushed: u64,
    /// `epoch`: the epoch of the region of protected that holds the node.
    placed: u64,
    /// `epoch`: the epoch of its last hit (or of its placing).
    touched: u64,
    /// `stamp`: the epoch in which it was last pushed to the front of a list (wrapping; the
    /// store stamps only the moves its read-lock path trusts, which with the default knobs
    /// gives the same hits).
    st: u16,
}
#[derive(Clone, Copy, Default)]
struct L {
    head: u32,
    tail: u32,
    len: u64,
}
struct Sim2 {
    c: Variant,
    nodes: Vec<Node>,
    free: Vec<u32>,
    map: HashMap<u64, u32>,
    l: [L; 3],
    wmax: u64,
    mmax: u64,
    pmax: u64,
    cap: u64,
    sk: Sketch,
    msk: MSketch,
    // climber
    hits: u64,
    whits: u64,
    phits: u64,
    seen: u64,
    /// Pushes to protected so far (`tskip`).
    pushes: u64,
    /// `epoch`: inserts so far, and the epoch they make.
    inserts: u64,
    epoch_now: u64,
    /// `stamp`: the width of an epoch in inserts (0: exact), inserts so far, the epoch.
    swidth: u64,
    sinserts: u64,
    snow: u16,
    reqs: u64,
    sample: u64,
    prev: f64,
    step: f64,
    pstep: f64,
    ppct: f64,
    phase: u64,
}
const W: u8 = 0;
const P: u8 = 1;
const T: u8 = 2;

impl Sim2 {
    fn new(cap: u64, c: &Variant) -> Self {
        let wmax = ((cap as f64 * c.window_pct + 1e-9) as u64)
            .max(c.window_min)
            .min(cap);
        let mmax = cap - wmax;
        Sim2 {
            nodes: Vec::new(),
            free: Vec::new(),
            map: HashMap::new(),
            l: [L {
                head: NIL,
                tail: NIL,
                len: 0,
            }; 3],
            wmax,
            mmax,
            pmax: mmax - ((mmax as f64 * (1.0 - c.protected) + 1e-9) as u64),
            cap,
            sk: Sketch::new(cap as usize, c),
            msk: MSketch::new(),
            hits: 0,
            whits: 0,
            phits: 0,
            seen: 0,
            pushes: 0,
            inserts: 0,
            epoch_now: 0,
            // As `cache-runtime`'s `lfu` `Epoch`: 1/64 of the entries (at least 1), at every
            // size (`sfloor` sets a size below which it is exact).
            swidth: if c.stamp && cap >= c.stamp_floor {
                (cap / 64).max(1)
            } else {
                0
            },
            sinserts: 0,
            snow: 0,
            reqs: 0,
            sample: (cap * c.sample_mult).max(c.min_sample),
            prev: f64::NAN,
            step: if c.first_move_shrink {
                -(cap as f64) * c.step
            } else {
                cap as f64 * c.step
            },
            pstep: -0.1,
            ppct: c.protected,
            phase: 0,
            c: c.clone(),
        }
    }
    fn inc(&mut self, hash: u64) {
        if self.c.moka_sketch {
            self.msk.inc(hash)
        } else if self.sk.inc(hash) {
            self.age();
        }
    }
    /// The sketch's halving, after the reads the nodes hold back join the counters.
    fn age(&mut self) {
        let held: Vec<u32> = self.map.values().copied().collect();
        for i in held {
            self.flush(i);
        }
        self.sk.halve();
    }
    /// Node `i`'s held-back reads into the sketch.
    fn flush(&mut self, i: u32) {
        let n = &mut self.nodes[i as usize];
        if n.reads > 0 {
            let (h, r) = (n.hash, n.reads);
            n.reads = 0;
            self.sk.add(h, r);
        }
    }
    /// A hit on node `i`: into the sketch at once, or (`defer`, as `cache-runtime`'s `lfu`)
    /// counted in the node and added when it leaves or the sketch ages.
    fn read(&mut self, i: u32, counted: bool) {
        if !self.c.defer || self.c.moka_sketch {
            self.inc(self.nodes[i as usize].hash);
            return;
        }
        let allocated = self.allocated();
        let n = &mut self.nodes[i as usize];
        if n.reads < 15 && allocated {
            n.reads += 1;
            if counted && self.sk.count() {
                self.age();
            }
        }
    }
    /// Node `i`'s frequency: the sketch's and its held-back reads.
    fn freq_of(&self, i: u32) -> u8 {
        let n = &self.nodes[i as usize];
        (self.freq(n.hash) + n.reads).min(15)
    }
    fn freq(&self, hash: u64) -> u8 {
        if self.c.moka_sketch {
            self.msk.freq(hash)
        } else {
            self.sk.freq(hash)
        }
    }
    fn allocated(&self) -> bool {
        if self.c.moka_sketch {
            !self.msk.table.is_empty()
        } else {
            !self.sk.counters.is_empty()
        }
    }
    fn alloc(&mut self) {
        if self.c.moka_sketch {
            if self.msk.table.is_empty() {
                self.msk.alloc(self.cap)
            }
        } else if self.sk.counters.is_empty() {
            self.sk.alloc();
            if self.c.seed_resident {
                // Count each resident entry once, as if the sketch had seen its insert.
                let resident: Vec<u64> = self
                    .map
                    .values()
                    .map(|&i| self.nodes[i as usize].hash)
                    .collect();
                let mut due = false;
                for h in resident {
                    due |= self.sk.inc(h);
                }
                if due {
                    self.age();
                }
            }
        }
    }
    fn unlink(&mut self, i: u32) {
        let n = self.nodes[i as usize];
        let q = n.q as usize;
        if n.prev != NIL {
            self.nodes[n.prev as usize].next = n.next;
        } else {
            self.l[q].head = n.next;
        }
        if n.next != NIL {
            self.nodes[n.next as usize].prev = n.prev;
        } else {
            self.l[q].tail = n.prev;
        }
        self.l[q].len -= 1;
    }
    /// push to front (MRU)
    fn push(&mut self, q: u8, i: u32) {
        let h = self.l[q as usize].head;
        self.pushes += u64::from(q == T);
        {
            let n = &mut self.nodes[i as usize];
            n.pushed = self.pushes;
            n.placed = self.epoch_now;
            n.touched = self.epoch_now;
            n.st = self.snow;
            n.q = q;
            n.prev = NIL;
            n.next = h;
        }
        if h != NIL {
            self.nodes[h as usize].prev = i;
        } else {
            self.l[q as usize].tail = i;
        }
        self.l[q as usize].head = i;
        self.l[q as usize].len += 1;
    }
    fn back(&self, q: u8) -> Option<u32> {
        let t = self.l[q as usize].tail;
        (t != NIL).then_some(t)
    }
    fn drop_node(&mut self, i: u32) {
        self.flush(i);
        self.unlink(i);
        let k = self.nodes[i as usize].key;
        self.map.remove(&k);
        self.free.push(i);
    }
    fn main(&self) -> u64 {
        self.l[1].len + self.l[2].len
    }
    fn record(&mut self, hit: bool) {
        if !self.c.climb {
            return;
        }
        self.hits += hit as u64;
        self.reqs += 1;
        if self.reqs < self.sample {
            return;
        }
        let rate = self.hits as f64 / self.reqs as f64;
        if self.c.density > 0.0 {
            // Caffeine's density climber: move capacity towards the region that earns more hits
            // per slot within the sample.
            let cap = self.cap as f64;
            let wd = (self.whits as f64 + 1.0) / self.wmax.max(1) as f64;
            let md = if self.c.density_marginal {
                (self.phits as f64 + 1.0) / (self.mmax - self.pmax).max(1) as f64
            } else {
                (self.hits.saturating_sub(self.whits) as f64 + 1.0) / self.mmax.max(1) as f64
            };
            self.phits = 0;
            let err = (wd / (md * self.c.density_bias)).ln();
            let amount = err.signum() * (err.abs() * self.c.density * cap).min(0.3 * cap);
            self.hits = 0;
            self.whits = 0;
            self.reqs = 0;
            self.prev = rate;
            let lo = ((cap * self.c.density_floor) as u64).min(self.cap - 1);
            self.set_window(self.moved_window(amount).clamp(lo, self.cap - 1));
            return;
        }
        self.hits = 0;
        self.whits = 0;
        self.reqs = 0;
        if self.prev.is_nan() {
            self.prev = rate;
            return;
        }
        let change = rate - self.prev;
        self.phase += 1;
        if self.c.dead_zone > 0.0 && self.phase > self.c.dead_zone_after {
            let p = f64::midpoint(rate, self.prev).clamp(1e-6, 1.0 - 1e-6);
            let se = (2.0 * p * (1.0 - p) / self.sample as f64).sqrt();
            if change.abs() < self.c.dead_zone * se {
                self.step *= self.c.decay;
                self.prev = rate;
                return;
            }
        }
        if self.c.climb_protected && self.phase.is_multiple_of(2) {
            // alternate: adapt the protected share
            let amount = if change >= 0.0 {
                self.pstep
            } else {
                -self.pstep
            };
            self.pstep = if change.abs() >= self.c.restart {
                0.1f64.copysign(amount)
            } else {
                amount * self.c.decay
            };
            self.ppct = (self.ppct + amount).clamp(0.0, self.c.protected);
            self.prev = rate;
            self.pmax = self.mmax - ((self.mmax as f64 * (1.0 - self.ppct) + 1e-9) as u64);
            return;
        }
        let amount = if change >= 0.0 { self.step } else { -self.step };
        let restart = self.cap as f64 * self.c.step;
        self.step = if change.abs() >= self.c.restart {
            restart.copysign(amount)
        } else {
            amount * self.c.decay
        };
        self.prev = rate;
        let hi = ((self.cap as f64 * self.c.window_max_frac) as u64).min(self.cap - 1);
        let w = self.moved_window(amount);
        self.set_window(w.clamp(self.c.window_min, hi.max(self.c.window_min)));
    }
    /// The window grown (`amount` > 0) or shrunk by `amount`, rounded, before any bound.
    fn moved_window(&self, amount: f64) -> u64 {
        let by = amount.abs().round() as u64;
        if amount >= 0.0 {
            self.wmax.saturating_add(by)
        } else {
            self.wmax.saturating_sub(by)
        }
    }
    /// A window of `w`: the main area takes the rest, protected its share of it.
    fn set_window(&mut self, w: u64) {
        self.wmax = w;
        self.mmax = self.cap - w;
        self.pmax = self.mmax - ((self.mmax as f64 * (1.0 - self.ppct) + 1e-9) as u64);
    }
    fn balance(&mut self) {
        let mut spared = 0;
        while self.l[2].len > self.pmax {
            self.settle_t();
            let Some(d) = self.back(T) else { break };
            self.unlink(d);
            if self.take_ref(d) && spared < self.l[2].len {
                // `clock`: hit since the scan last passed it: it stays, as the newest.
                spared += 1;
                self.push(T, d);
            } else {
                self.push(P, d);
            }
        }
    }
    /// `epoch`: while protected's oldest was hit since it was placed, re-place it at the front
    /// of the region of its hit's epoch (behind every entry of a later epoch), as a store whose
    /// protected area is a list per epoch would: order exact between epochs, by placing within.
    fn settle_t(&mut self) {
        if self.c.epoch <= 0.0 {
            return;
        }
        for _ in 0..self.l[2].len {
            let Some(t) = self.back(T) else { return };
            let (placed, touched) = {
                let n = &self.nodes[t as usize];
                (n.placed, n.touched)
            };
            if touched <= placed {
                return;
            }
            self.unlink(t);
            // Walk from the newest past every entry placed in a later epoch.
            let mut at = self.l[2].head;
            while at != NIL && self.nodes[at as usize].placed > touched {
                at = self.nodes[at as usize].next;
            }
            let prev = if at == NIL {
                self.l[2].tail
            } else {
                self.nodes[at as usize].prev
            };
            {
                let n = &mut self.nodes[t as usize];
                n.placed = touched;
                n.q = T;
                n.prev = prev;
                n.next = at;
            }
            if prev == NIL {
                self.l[2].head = t;
            } else {
                self.nodes[prev as usize].next = t;
            }
            if at == NIL {
                self.l[2].tail = t;
            } else {
                self.nodes[at as usize].prev = t;
            }
            self.l[2].len += 1;
        }
    }
    /// `clock`: whether node `i` was hit since the scan last passed it (the bit is cleared).
    fn take_ref(&mut self, i: u32) -> bool {
        let r = &mut self.nodes[i as usize].refb;
        if self.c.clock == 0 || *r == 0 {
            return false;
        }
        *r -= 1;
        true
    }
    fn access(&mut self, key: u64, hash: u64) -> bool {
        if let Some(&i) = self.map.get(&key) {
            self.seen += 1;
            if self.c.hit_sample > 1 && !self.seen.is_multiple_of(self.c.hit_sample) {
                return true;
            }
            if self.c.buffer > 0 && self.seen > self.c.buffer {
                // A read buffer of `buffer` records, replayed by the next write only: the
                // hits after it fills are lost.
                return true;
            }
            // `lfree`: only the hits a store without a lock on its hit path can count in the
            // shard (under its lock, or once an epoch) move the climber's and the aging's clocks:
            // a probation hit (promoted under the lock), a window entry's first hit, a protected
            // entry's first hit in an epoch. Every hit still counts in its node.
            // `stamp`: a protected entry, or a window entry hit before, already moved in this
            // epoch is hit under the read lock: counted in its node only, and not moved.
            let shared = {
                let n = &self.nodes[i as usize];
                self.swidth > 0 && (n.q == T || (n.q == W && n.whit)) && n.st == self.snow
            };
            let counted = !shared
                && (!self.c.lfree || {
                    let n = &self.nodes[i as usize];
                    match n.q {
                        P => true,
                        W => !n.whit,
                        _ => n.touched != self.epoch_now,
                    }
                });
            if self.c.sketch_sample <= 1 || self.seen.is_multiple_of(self.c.sketch_sample) {
                self.read(i, counted);
            }
            let n = &mut self.nodes[i as usize];
            if n.q == W && !(self.c.density_first && n.whit) {
                self.whits += 1;
            }
            n.whit = n.q == W;
            self.phits += u64::from(self.nodes[i as usize].q == P);
            if counted {
                self.record(true);
            }
            let lazy = match self.nodes[i as usize].q {
                W => CLOCK_W,
                P => CLOCK_P,
                _ => CLOCK_T,
            };
            if self.c.clock & lazy != 0 {
                // A hit that takes no lock: a reference bit; the eviction scan reorders.
                let r = &mut self.nodes[i as usize].refb;
                *r = (*r + 1).min(self.c.clock_max);
                return true;
            }
            match self.nodes[i as usize].q {
                W if shared => {}
                W => {
                    self.unlink(i);
                    self.push(W, i);
                }
                P => {
                    self.unlink(i);
                    if self.pmax == 0 {
                        self.push(P, i);
                    } else {
                        self.push(T, i);
                        self.balance();
                    }
                }
                _ if shared => {}
                _ if self.c.epoch > 0.0 => {
                    // `epoch`: the hit stamps the entry with the epoch; the scan re-places it.
                    self.nodes[i as usize].touched = self.epoch_now;
                }
                _ => {
                    // `tskip`: an entry still in the newest part of protected stays where it is
                    // (its hit needs no reordering, so no lock).
                    let age = self.pushes - self.nodes[i as usize].pushed;
                    #[allow(clippy::cast_precision_loss)]
                    let young = (age as f64) < self.c.tskip * self.l[2].len as f64;
                    if !young {
                        self.unlink(i);
                        self.push(T, i);
                    }
                }
            }
            return true;
        }
        // miss: insert
        self.sinserts += 1;
        if let Some(epoch) = self.sinserts.checked_div(self.swidth) {
            self.snow = epoch as u16;
        }
        if self.c.epoch > 0.0 {
            self.inserts += 1;
            let width = ((self.cap as f64 * self.c.epoch) as u64).max(1);
            self.epoch_now = self.inserts / width;
        }
        if self.c.buffer > 0 {
            self.seen = 0;
        }
        if self.c.lazy && !self.c.moka_sketch {
            if !self.allocated() && 2 * (self.l[0].len + self.main()) >= self.cap {
                self.alloc();
            }
        } else if !self.c.lazy {
            self.alloc();
        }
        self.inc(hash);
        self.record(false);
        let node = Node {
            key,
            hash,
            prev: NIL,
            next: NIL,
            q: W,
            whit: false,
            reads: 0,
            refb: 0,
            pushed: 0,
            placed: 0,
            touched: 0,
            st: 0,
        };
        let i = if let Some(i) = self.free.pop() {
            self.nodes[i as usize] = node;
            i
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        };
        self.map.insert(key, i);
        self.push(W, i);
        if self.c.caffeine_evict {
            self.evict_caffeine();
        } else {
            self.evict();
        }
        self.balance();
        if self.c.moka_sketch
            && self.c.lazy
            && !self.allocated()
            && self.l[0].len + self.main() >= self.cap / 2
        {
            self.alloc();
        }
        false
    }
    fn evict(&mut self) {
        while self.l[0].len > self.wmax {
            let Some(c) = self.back(W) else { break };
            self.unlink(c);
            let cf = self.freq_of(c);
            let mut admitted = true;
            while self.main() + 1 > self.mmax {
                self.settle_t();
                let v = self.back(P).or_else(|| self.back(T));
                let Some(v) = v else { break };
                let vf = self.freq_of(v);
                if cf > vf {
                    self.flush(v);
                    self.unlink(v);
                    let k = self.nodes[v as usize].key;
                    self.map.remove(&k);
                    self.free.push(v);
                } else {
                    admitted = false;
                    break;
                }
            }
            if admitted {
                if self.c.admit_protected && self.pmax > 0 {
                    self.push(T, c);
                } else {
                    self.push(P, c);
                }
            } else {
                self.flush(c);
                let k = self.nodes[c as usize].key;
                self.map.remove(&k);
                self.free.push(c);
            }
        }
        while self.main() > self.mmax {
            self.settle_t();
            let Some(v) = self.back(P).or_else(|| self.back(T)) else {
                break;
            };
            self.drop_node(v);
        }
    }
    fn evict_caffeine(&mut self) {
        // window overflow -> probation MRU
        let mut cands = 0;
        let mut spared = 0;
        while self.l[0].len > self.wmax {
            let Some(c) = self.back(W) else { break };
            self.unlink(c);
            if self.take_ref(c) && spared < self.l[0].len {
                // `clock`: a window entry hit since the scan passed it goes round again.
                spared += 1;
                self.push(W, c);
                continue;
            }
            self.push(P, c);
            cands += 1;
        }
        let total = |s: &Self| s.l[0].len + s.main();
        let mut promoted = 0;
        while total(self) > self.cap {
            if self.c.clock != 0 && promoted < self.l[1].len + self.l[2].len {
                // `clock`: probation's oldest, hit since it was admitted, is promoted now (as a
                // hit would have promoted it); protected's oldest, hit, goes round again.
                let old = self
                    .back(P)
                    .filter(|&v| Some(v) != (cands > 0).then_some(self.l[1].head));
                if let Some(v) = old
                    && self.nodes[v as usize].refb > 0
                {
                    self.nodes[v as usize].refb = 0;
                    self.unlink(v);
                    promoted += 1;
                    if self.pmax == 0 {
                        self.push(P, v);
                    } else {
                        self.push(T, v);
                        self.balance();
                    }
                    continue;
                }
                if old.is_none()
                    && let Some(t) = self.back(T)
                    && self.take_ref(t)
                {
                    self.unlink(t);
                    promoted += 1;
                    self.push(T, t);
                    continue;
                }
            }
            self.settle_t();
            let mut victim = self.back(P).or_else(|| self.back(T));
            if self.c.victims > 1 && cands > 0 {
                // The least frequent of probation's oldest few (not the candidate itself).
                let head = self.l[1].head;
                let mut best: Option<(u8, u32)> = None;
                let mut at = self.l[1].tail;
                for _ in 0..self.c.victims {
                    if at == NIL || at == head {
                        break;
                    }
                    let f = self.freq_of(at);
                    if best.is_none_or(|(bf, _)| f < bf) {
                        best = Some((f, at));
                    }
                    at = self.nodes[at as usize].prev;
                }
                if let Some((_, v)) = best {
                    victim = Some(v);
                }
            }
            let cand = if cands > 0 {
                Some(self.l[1].head)
            } else {
                self.back(W)
            };
            match (victim, cand) {
                (Some(v), Some(c)) if v != c => {
                    cands -= (cands > 0) as i32;
                    let vf = self.freq_of(v);
                    let cf = self.freq_of(c);
                    if cf > vf {
                        self.drop_node(v);
                    } else {
                        self.drop_node(c);
                    }
                }
                (Some(v), _) => {
                    self.drop_node(v);
                }
                (None, Some(c)) => self.drop_node(c),
                (None, None) => break,
            }
        }
    }
}

impl Variant {
    /// The hits of this variant with `capacity` entries over `keys`, whose hashes (one per
    /// request, as the cache's hasher gives them) are `hashes`: demand-filled, as the `hitratio`
    /// bin replays.
    #[must_use]
    pub fn hits(&self, keys: &[u64], hashes: &[u64], capacity: usize) -> u64 {
        run(self, keys, hashes, capacity)
    }

    /// moka 0.12's TinyLFU: no window, a plain LRU main area, moka's sketch (layout, hashing,
    /// enabled once half full).
    #[must_use]
    pub fn moka() -> Self {
        Self::parse("w=0,wmin=0,p=0,climb=0,msk=1,stamp=0").unwrap_or_default()
    }

    /// The variant's name: the spec it was parsed from.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn run(cfg: &Variant, keys: &[u64], hashes: &[u64], cap: usize) -> u64 {
    let mut s = Sim2::new(cap.max(1) as u64, cfg);
    let mut h = 0;
    for (k, hh) in keys.iter().zip(hashes) {
        h += s.access(*k, *hh) as u64;
    }
    h
}

impl Variant {
    /// Reads a variant from `knob=value` pairs separated by commas over the defaults (which are
    /// `cache-runtime`'s `lfu`; `base` alone means the defaults):
    ///
    /// - `w` initial window share (0.01), `wmin` smallest window (0), `wmaxf` largest window share
    ///   (1.0), `p` protected share of the main area (0.8);
    /// - `climb` (1/0) hill climbing, `step` (0.0625), `decay` (0.9), `restart` (0.05),
    ///   `mult` sample in capacities (10), `minsample` (500), `shrink` (1/0) first move shrinks,
    ///   `dz` dead zone in standard errors of the change (2; 0 for none), `dzafter` decisions
    ///   before the dead zone applies (1), `cp` (1/0) climb the protected share too, on
    ///   alternate samples;
    /// - `aging` increments an entry between halvings (10), `floor` smallest sketch in entries
    ///   (512), `scale` columns an entry (4), `lazy` (1/0) allocate when half full, `seed`
    ///   (1/0, default 1) count each entry held once when the counters are allocated, `msk`
    ///   (1/0) moka's sketch instead; `cu` (1/0, 0) conservative update (increment only the
    ///   counters at the key's minimum); `blk` (1/0, 0) Caffeine's blocked layout (a key's four
    ///   counters in one 64-byte block instead of four rows apart); `wfloor` smallest sketch
    ///   width in entries (512; at least `floor`), so the width can grow without slowing the
    ///   aging;
    /// - `dens` (0.02; 0 for the hill climber above) the density climber's gain: every sample,
    ///   the window moves by `dens x ln(window density / main density) x capacity` (at most 30%
    ///   of it), floored at `dfloor` of the capacity (0); `dmarg` (1/0, 1) the main density is
    ///   probation's (the margin) rather than the whole main area's; `dfirst` (1/0, 1) a window
    ///   entry's hits count once; `dbias` (1.0) divides the window's density;
    /// - `caf` (1/0, 1) Caffeine's eviction: the window's overflow joins probation and the main
    ///   area evicts only when the whole is over capacity, candidate (probation's newest) against
    ///   victim (its oldest); with 0, each candidate leaving the window meets a victim at once;
    ///   `admp` (1/0) admitted candidates go to protected; `vk` (1) the victim is the least
    ///   frequent of probation's oldest `vk` entries (with Caffeine's eviction);
    /// - what a lossy read buffer would cost: `hs` (1) only every `hs`-th hit reaches the policy;
    ///   `hss` (1) only every `hss`-th hit increments the sketch; `buf` (0 = none) a buffer of
    ///   `buf` hits replayed by the next miss only (the hits after it fills are lost); `defer`
    ///   (1/0, 1) a hit is counted in its entry and added to the sketch when the entry leaves or
    ///   the sketch ages (as `cache-runtime`'s `lfu` does; 0: into the sketch at once);
    ///   `clock` (0) which segments a hit leaves in place, setting only its entry's reference bit
    ///   (what a hit without the shard's lock could do), a sum of 1 (window), 2 (probation), 4
    ///   (protected); the eviction scan reorders: a window entry or a protected one hit since
    ///   the scan passed it goes round again, a probation one is promoted; `cmax` (1) how many
    ///   passes of the scan a run of hits buys (a counter, GCLOCK, instead of a bit); `tskip`
    ///   (0) a hit of a protected entry that fewer than this share of protected's length
    ///   entered after it leaves it in place (memcached's bump-once-in-a-while); `epoch` (0) a
    ///   hit of a protected entry only stamps it with the epoch (inserts / (this share of the
    ///   capacity)), and protected's oldest, when stamped later than it was placed, is re-placed
    ///   by its stamp (a list per epoch, the order exact between epochs); `lfree` (0) only the
    ///   hits a store without a lock on the hit path can count in the shard (probation hits,
    ///   a window entry's first hit, a protected entry's first hit in an epoch) move the
    ///   climber's sample and the sketch's aging; the others count in their node only;
    ///   `stamp` (1/0, 1: `cache-runtime`'s `lfu` since issue 18) at every size (see `sfloor`),
    ///   a protected entry, or a window entry hit before, moves to the front only on its first
    ///   hit in an epoch (1/64 of the capacity of inserts), and its later hits in the epoch
    ///   count in its node only (the store takes only its read lock for them); `sfloor` (0) the
    ///   capacity from which it does so (below it, every hit moves; 1,024 was `lfu`'s floor
    ///   until issue 18 gave it epochs at every size); `epoch`,
    ///   `clock` and `tskip` turn it off. The model's epochs count misses (unit weights, no
    ///   replacements), the store's inserted weight; and it replays one thread, so the counts
    ///   a race loses under the read lock are not modelled.
    ///
    /// `stamp=0` is the `lfu` of issue 18 before its stamped protected segment (every
    /// protected hit moved under the shard's lock); `seed=0,floor=128,dens=0,minsample=5000,defer=0,stamp=0`
    /// the `lfu` of before issue 18 (the hill climber with a dead zone, an aging floor of 128,
    /// no count of the entries held when the sketch starts, each hit into the sketch at once);
    /// `seed=0,floor=128,dens=0,minsample=5000,defer=0,stamp=0,caf=0,wmin=1,dz=0` the one before that (a
    /// climber without a dead zone, a window of at least 1, admission as an entry leaves the
    /// window).
    ///
    /// # Errors
    /// An unknown knob or a value that does not parse.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut c = Variant {
            name: spec.to_string(),
            ..Variant::default()
        };
        for kv in spec.split(',').filter(|s| !s.is_empty() && *s != "base") {
            let (k, v) = kv.split_once('=').unwrap_or((kv, "1"));
            let f = || v.parse::<f64>().map_err(|e| format!("{k}={v}: {e}"));
            let u = || v.parse::<u64>().map_err(|e| format!("{k}={v}: {e}"));
            let b = v == "1";
            match k {
                "w" => c.window_pct = f()?,
                "wmin" => c.window_min = u()?,
                "wmaxf" => c.window_max_frac = f()?,
                "p" => c.protected = f()?,
                "climb" => c.climb = b,
                "step" => c.step = f()?,
                "decay" => c.decay = f()?,
                "restart" => c.restart = f()?,
                "mult" => c.sample_mult = u()?,
                "minsample" => c.min_sample = u()?,
                "shrink" => c.first_move_shrink = b,
                "cp" => c.climb_protected = b,
                "aging" => c.aging = u()?,
                "floor" => c.floor = usize::try_from(u()?).map_err(|e| e.to_string())?,
                "scale" => c.scale = usize::try_from(u()?).map_err(|e| e.to_string())?,
                "lazy" => c.lazy = b,
                "msk" => c.moka_sketch = b,
                "cu" => c.conservative = b,
                "blk" => c.blocked = b,
                "seed" => c.seed_resident = b,
                "dens" => c.density = f()?,
                "dfloor" => c.density_floor = f()?,
                "dbias" => c.density_bias = f()?,
                "dmarg" => c.density_marginal = b,
                "dfirst" => c.density_first = b,
                "hs" => c.hit_sample = u()?.max(1),
                "buf" => c.buffer = u()?,
                "hss" => c.sketch_sample = u()?,
                "defer" => c.defer = b,
                "clock" => c.clock = u8::try_from(u()?).map_err(|e| e.to_string())?,
                "tskip" => c.tskip = f()?,
                "epoch" => c.epoch = f()?,
                "lfree" => c.lfree = b,
                "stamp" => c.stamp = b,
                "sfloor" => c.stamp_floor = u()?,
                "cmax" => c.clock_max = u8::try_from(u()?).map_err(|e| e.to_string())?.max(1),
                "vk" => c.victims = u32::try_from(u()?).map_err(|e| e.to_string())?,
                "wfloor" => c.width_floor = usize::try_from(u()?).map_err(|e| e.to_string())?,
                "caf" => c.caffeine_evict = b,
                "admp" => c.admit_protected = b,
                "dz" => c.dead_zone = f()?,
                "dzafter" => c.dead_zone_after = u()?,
                _ => return Err(format!("unknown knob {k}")),
            }
        }
        if c.epoch > 0.0 || c.clock != 0 || c.tskip > 0.0 {
            // Other protected orders: the stamped one is theirs to replace.
            c.stamp = false;
        }
        if c.lfree && c.epoch <= 0.0 {
            // Without epochs no protected hit would ever be counted.
            return Err("lfree needs epoch".into());
        }
        Ok(c)
    }
}

/// The standard error of the mean per-seed difference (percentage points) between a variant's
/// hits and moka's at one point: the sample standard deviation of the paired differences over
/// the square root of the seed count (0 with one seed).
#[must_use]
pub fn paired_standard_error(ours: &[u64], mokas: &[u64], requests: usize) -> f64 {
    let n = ours.len().min(mokas.len());
    if n < 2 {
        return 0.0;
    }
    let d: Vec<f64> = ours
        .iter()
        .zip(mokas)
        .map(|(&a, &b)| (a as f64 - b as f64) * 100.0 / requests as f64)
        .collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (var / n as f64).sqrt()
}
