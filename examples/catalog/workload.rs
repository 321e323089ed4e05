//! The request stream (Zipf-distributed product pages and a few stock updates), the two runs
//! over it, and their measurements.

use std::time::{Duration, Instant};

use cache_suite::catalog::{self, CatalogError, ProductPage, QueryCounts, Rng, Size, StockChange};
use rusqlite::Connection;

/// One request of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// A product page: the product and its stock.
    View(u64),
    /// A delivery of `units` to one store (a stock update).
    Deliver {
        /// The product.
        product: u64,
        /// The store.
        store: u64,
        /// Units added to its quantity.
        units: i64,
    },
}

/// What a request answered: compared between the runs, index by index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A product page (`None`: no such product).
    Page(Option<ProductPage>),
    /// A stock update.
    Set(StockChange),
    /// A catalogue rebuild: how many products it repriced.
    Rebuilt(u64),
}

/// Zipf's law over `n` ranks: rank `k` (1-based) has weight `1 / k^s`.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u32, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / f64::from(k).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Self { cdf }
    }

    /// A 0-based rank.
    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// The stream: `n` requests over the catalog's products, popularity Zipf(`s`) over a fixed
/// random order of the products (the hot ones are spread over the ids); `update_per_mille`
/// of them (on average) deliver 1 to 50 units of a product to a random store, the product
/// drawn from the same popularity (popular products sell, and are restocked).
pub fn stream(seed: u64, n: usize, size: Size, s: f64, update_per_mille: u64) -> Vec<Request> {
    let mut rng = Rng::new(seed);
    let mut by_rank: Vec<u64> = (1..=u64::from(size.products)).collect();
    for i in (1..by_rank.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        by_rank.swap(i, j);
    }
    let zipf = Zipf::new(size.products, s);
    (0..n)
        .map(|_| {
            let product = by_rank[zipf.sample(&mut rng)];
            if rng.below(1_000) < update_per_mille {
                Request::Deliver {
                    product,
                    store: 1 + rng.below(u64::from(size.stores)),
                    units: 1 + rng.below(50) as i64,
                }
            } else {
                Request::View(product)
            }
        })
        .collect()
}

/// How a run went.
pub struct RunResult {
    /// Each request's answer.
    pub answers: Vec<Answer>,
    /// Each request's latency, sorted.
    pub latencies: Vec<Duration>,
    /// The whole run (without the undo).
    pub elapsed: Duration,
    /// Statements that reached the database during the run (without the undo).
    pub queries: QueryCounts,
    /// The change of the catalog caches' counters during the run, summed over the three caches.
    pub cache: Counters,
    /// Whether another connection committed changes to the database during the run.
    pub external_writes: bool,
    /// Catalogue rebuilds (invalidations of the `catalog` tag) during the run.
    pub rebuilds: u64,
    /// Stock updates (evictions of one product's stock, and through it of its page).
    pub updates: u64,
}

impl RunResult {
    /// Requests per second.
    pub fn throughput(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let n = self.answers.len() as f64;
        n / self.elapsed.as_secs_f64()
    }

    /// The latency below which `p` percent of the requests were answered (nearest rank).
    pub fn percentile(&self, p: usize) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (self.latencies.len() * p).div_ceil(100).max(1);
        self.latencies[rank - 1]
    }
}

/// SQLite's `data_version`: changes when another connection commits to the database.
fn data_version(conn: &Connection) -> Result<i64, CatalogError> {
    Ok(conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
}

/// The counters of the catalog's caches that the table shows, both caches added up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Lookups answered by this process's memory (L1).
    pub hits: u64,
    /// Lookups that found nothing fresh in memory.
    pub misses: u64,
    /// Misses answered by Redis (L2), without a query.
    pub remote_hits: u64,
    /// Misses that ran the query (or, for pages, read the two other caches).
    pub loads: u64,
    /// Of those, pages built (the first view of a product, or after an invalidation reached it
    /// through its dependencies).
    pub page_loads: u64,
}

impl Counters {
    /// Both caches' counters now.
    pub fn now() -> Self {
        let (p, s, g) = catalog::cache_stats();
        Self {
            hits: p.hits + s.hits + g.hits,
            misses: p.misses + s.misses + g.misses,
            remote_hits: p.remote_hits + s.remote_hits + g.remote_hits,
            loads: p.loads + s.loads + g.loads,
            page_loads: g.loads,
        }
    }

    /// The counts between `earlier` and `self`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            hits: self.hits - earlier.hits,
            misses: self.misses - earlier.misses,
            remote_hits: self.remote_hits - earlier.remote_hits,
            loads: self.loads - earlier.loads,
            page_loads: self.page_loads - earlier.page_loads,
        }
    }

    /// Hits over lookups (L1 only), or `None` without lookups.
    pub fn hit_ratio(self) -> Option<f64> {
        let lookups = self.hits + self.misses;
        #[allow(clippy::cast_precision_loss)]
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }
}

/// Replays `requests` on `conn`, through the caches (`cached`) or straight to the database, then
/// undoes its deliveries (newest first, through [`catalog::adjust_stock`], so the caches drop
/// what they change) so that the next run starts from the same data. Adjustments commute, so
/// the undo restores the data even if another process adjusted stock meanwhile.
pub fn run(
    conn: &Connection,
    requests: &[Request],
    cached: bool,
    rebuild_every: Option<usize>,
) -> Result<RunResult, CatalogError> {
    let version = data_version(conn)?;
    let queries = catalog::queries();
    let stats = Counters::now();
    let mut answers = Vec::with_capacity(requests.len());
    let mut latencies = Vec::with_capacity(requests.len());
    let mut changes = Vec::new();
    let mut rebuilds = 0i64;
    let start = Instant::now();
    for (i, &request) in requests.iter().enumerate() {
        // A catalogue rebuild every N requests (in both runs): every price moves by a cent, and
        // the `catalog` tag drops every cached product and, through them, every page.
        if let Some(n) = rebuild_every
            && n > 0
            && i > 0
            && i % n == 0
        {
            let t = Instant::now();
            let repriced = catalog::rebuild_prices(conn, 1)?;
            rebuilds += 1;
            latencies.push(t.elapsed());
            answers.push(Answer::Rebuilt(repriced));
        }
        let t = Instant::now();
        let answer = match request {
            Request::View(id) if cached => Answer::Page(catalog::product_page(conn, id)?),
            Request::View(id) => Answer::Page(catalog::query_product_page(conn, id)?),
            Request::Deliver {
                product,
                store,
                units,
            } => {
                let change = catalog::adjust_stock(conn, product, store, units)?;
                changes.push(change);
                Answer::Set(change)
            }
        };
        latencies.push(t.elapsed());
        answers.push(answer);
    }
    let elapsed = start.elapsed();
    let queries = catalog::queries().since(queries);
    let cache = Counters::now().since(stats);
    for change in changes.iter().rev() {
        let units = change.quantity - change.previous;
        catalog::adjust_stock(conn, change.product_id, change.store_id, -units)?;
    }
    if rebuilds > 0 {
        catalog::rebuild_prices(conn, -rebuilds)?;
    }
    // Our own rebuilds' undo is no external write: compare after it, as for deliveries.
    let external_writes = data_version(conn)? != version;
    latencies.sort_unstable();
    let updates = changes.len() as u64;
    Ok(RunResult {
        rebuilds: rebuilds.unsigned_abs(),
        updates,
        answers,
        latencies,
        elapsed,
        queries,
        cache,
        external_writes,
    })
}
