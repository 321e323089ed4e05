//! A product catalog on an embedded SQLite database, with its heavy reads memoized.
//!
//! The database (built by [`build`], deterministically) holds products (name, category, price),
//! stores (each in a region), and one stock row per product and store: 11,000 products in 170
//! stores ([`Size::FULL`]) make 1,870,000 stock rows.
//!
//! Reads come in two forms: the plain queries ([`query_product`], [`query_stock`],
//! [`query_product_page`]) and the memoized ones ([`product`], [`stock`], [`product_page`]),
//! which are `#[cached]` functions (cache-aside) on the backend named [`CACHE_BACKEND`]. Stock
//! changes go through [`set_stock`] and [`adjust_stock`], `#[cache_evict]` functions: once one
//! has committed, the next [`stock`] of that product queries again, in this process and (with a
//! Redis backend) in every other process, so no stale stock is served after a write.
//!
//! The caches are keyed by product id only: one catalog database per process. Every statement
//! run by this module is counted ([`queries`]), so callers can show how many reached the
//! database.
//!
//! ```no_run
//! use cache_suite::catalog::{self, Size};
//!
//! let path = std::env::temp_dir().join("catalog-doc.db");
//! catalog::build(&path, Size { products: 100, stores: 5 }, |_, _| {})?;
//! catalog::install_backend(None, "doc")?; // memory; Some("redis://127.0.0.1/") for a fleet
//! let conn = catalog::open(&path)?;
//! let page = catalog::product_page(&conn, 7)?.expect("product 7 exists");
//! assert_eq!(catalog::product_page(&conn, 7)?, Some(page)); // a hit: no query
//! catalog::set_stock(&conn, 7, 1, 42)?; // evicts product 7's stock
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::config::{self, ConfigError, Memcached, Redis, Spec};
use cache_runtime::{CacheStats, cache_evict, cached};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

/// The name of the backend the catalog's caches use: install it with [`install_backend`] (or
/// `cache_runtime::config`) before the first read.
pub const CACHE_BACKEND: &str = "catalog";
/// The registry name of [`product`]'s cache.
pub const PRODUCT_CACHE: &str = "catalog.product";
/// The registry name of [`stock`]'s cache.
pub const STOCK_CACHE: &str = "catalog.stock";
/// The name of the product page cache (built from the two others).
pub const PAGE_CACHE: &str = "catalog.page";

/// The largest stock quantity [`set_stock`] and [`adjust_stock`] accept.
pub const MAX_QUANTITY: i64 = 1_000_000;

/// Version of the generated data: a database built by another version is rebuilt.
const GENERATOR: &str = "catalog-v1";

/// The regions stores are in.
pub const REGIONS: [&str; 6] = ["central", "east", "islands", "north", "south", "west"];

const CATEGORIES: [&str; 12] = [
    "audio", "books", "camping", "garden", "kitchen", "lighting", "office", "pets", "sports",
    "tools", "toys", "travel",
];
const ADJECTIVES: [&str; 16] = [
    "Amber", "Bold", "Compact", "Deluxe", "Eco", "Fast", "Grand", "Handy", "Ideal", "Jumbo",
    "Kind", "Light", "Mini", "Nova", "Prime", "Quiet",
];
const NOUNS: [&str; 16] = [
    "Anchor", "Basket", "Candle", "Drill", "Easel", "Flask", "Globe", "Hammock", "Kettle",
    "Lantern", "Mixer", "Notebook", "Pillow", "Radio", "Speaker", "Tent",
];

/// How many products and stores a catalog has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Products, with ids `1..=products`.
    pub products: u32,
    /// Stores, with ids `1..=stores`.
    pub stores: u32,
}

impl Size {
    /// The example's catalog: 11,000 products in 170 stores (1,870,000 stock rows).
    pub const FULL: Size = Size {
        products: 11_000,
        stores: 170,
    };

    /// One stock row per product and store.
    #[must_use]
    pub fn stock_rows(self) -> u64 {
        u64::from(self.products) * u64::from(self.stores)
    }
}

/// What can go wrong in the catalog.
#[derive(Debug)]
pub enum CatalogError {
    /// No such product, store or stock row.
    NotFound(String),
    /// An argument out of range.
    Invalid(String),
    /// The database failed.
    Db(rusqlite::Error),
    /// Creating, removing or renaming the database file failed.
    Io(std::io::Error),
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(what) => write!(f, "not found: {what}"),
            Self::Invalid(why) => write!(f, "invalid: {why}"),
            Self::Db(e) => write!(f, "database: {e}"),
            Self::Io(e) => write!(f, "database file: {e}"),
        }
    }
}

impl std::error::Error for CatalogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Db(e) => Some(e),
            Self::Io(e) => Some(e),
            Self::NotFound(_) | Self::Invalid(_) => None,
        }
    }
}

impl From<rusqlite::Error> for CatalogError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(e)
    }
}

impl From<std::io::Error> for CatalogError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// A product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its category.
    pub category: String,
    /// Its price, in cents.
    pub price_cents: i64,
}

/// A product's stock in one region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionStock {
    /// The region.
    pub region: String,
    /// Units on hand and not reserved, over the region's stores.
    pub available: i64,
    /// Units reserved for orders.
    pub reserved: i64,
    /// Stores of the region with at least one available unit.
    pub stores_with_stock: u32,
    /// Stores with 1 to 4 available units.
    pub low_stock_stores: u32,
}

/// A product's stock, per region and in total: an aggregate over its row in every store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockSummary {
    /// The product.
    pub product_id: u64,
    /// Available units over every store.
    pub total_available: i64,
    /// Stores with at least one available unit.
    pub stores_with_stock: u32,
    /// Per region, in region order.
    pub regions: Vec<RegionStock>,
}

/// What a product page shows: the product and its stock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductPage {
    /// The product.
    pub product: Product,
    /// Its stock.
    pub stock: StockSummary,
}

/// A stock change made by [`set_stock`] or [`adjust_stock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChange {
    /// The product.
    pub product_id: u64,
    /// The store.
    pub store_id: u64,
    /// The quantity before the change.
    pub previous: i64,
    /// The quantity now.
    pub quantity: i64,
}

/// Statements run against the database by this module, since the process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryCounts {
    /// `SELECT`s.
    pub reads: u64,
    /// `UPDATE`s.
    pub writes: u64,
}

impl QueryCounts {
    /// Reads and writes.
    #[must_use]
    pub fn total(self) -> u64 {
        self.reads + self.writes
    }

    /// The statements run between `earlier` and `self`.
    #[must_use]
    pub fn since(self, earlier: QueryCounts) -> QueryCounts {
        QueryCounts {
            reads: self.reads - earlier.reads,
            writes: self.writes - earlier.writes,
        }
    }
}

static READS: AtomicU64 = AtomicU64::new(0);
static WRITES: AtomicU64 = AtomicU64::new(0);

/// The statements this module has run so far.
#[must_use]
pub fn queries() -> QueryCounts {
    QueryCounts {
        reads: READS.load(Ordering::Relaxed),
        writes: WRITES.load(Ordering::Relaxed),
    }
}

/// A small deterministic random number generator (SplitMix64): the data and the example's
/// request streams are the same on every run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        // Lemire's multiply-shift: unbiased enough for test data.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        // 53 random bits.
        #[allow(clippy::cast_precision_loss)]
        let x = (self.next_u64() >> 11) as f64;
        x / (1u64 << 53) as f64
    }
}

/// How long [`build`] took and what it wrote.
#[derive(Clone, Copy, Debug)]
pub struct BuildReport {
    /// The catalog's size.
    pub size: Size,
    /// Stock rows written.
    pub stock_rows: u64,
    /// From start to the renamed, complete file.
    pub elapsed: Duration,
}

/// `path` with `suffix` appended to its file name (`catalog.db` + `-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Removes a database file and its SQLite companions, if they exist.
fn remove_db_files(path: &Path) -> std::io::Result<()> {
    for p in [
        path.to_path_buf(),
        with_suffix(path, "-wal"),
        with_suffix(path, "-shm"),
        with_suffix(path, "-journal"),
    ] {
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Builds the catalog database at `path` (replacing any file there), deterministically: the
/// same size gives the same data. `progress(done, total)` is called as stock rows are written
/// (about 200 times, then once with `done == total` when the file is in place).
///
/// The rows go in through prepared statements in one transaction, into `<path>.building`,
/// which is renamed to `path` once complete: a `path` that exists is always a complete
/// catalog (see [`is_complete`]).
///
/// # Errors
/// [`CatalogError::Invalid`] for an empty size; database and file errors.
pub fn build(
    path: &Path,
    size: Size,
    mut progress: impl FnMut(u64, u64),
) -> Result<BuildReport, CatalogError> {
    if size.products == 0 || size.stores == 0 {
        return Err(CatalogError::Invalid(format!(
            "a catalog needs products and stores, not {size:?}"
        )));
    }
    let start = Instant::now();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = with_suffix(path, ".building");
    remove_db_files(&tmp)?;
    let mut conn = Connection::open(&tmp)?;
    // Nothing to recover if the build dies: the file is rebuilt.
    conn.execute_batch(
        "PRAGMA journal_mode = OFF;
         PRAGMA synchronous = OFF;
         CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE stores (
             id INTEGER PRIMARY KEY,
             name TEXT NOT NULL,
             region TEXT NOT NULL
         );
         CREATE TABLE products (
             id INTEGER PRIMARY KEY,
             name TEXT NOT NULL,
             category TEXT NOT NULL,
             price_cents INTEGER NOT NULL
         );
         CREATE TABLE stock (
             product_id INTEGER NOT NULL REFERENCES products (id),
             store_id INTEGER NOT NULL REFERENCES stores (id),
             quantity INTEGER NOT NULL,
             reserved INTEGER NOT NULL,
             PRIMARY KEY (product_id, store_id)
         ) WITHOUT ROWID;",
    )?;
    let total = size.stock_rows();
    let mut rng = Rng::new(0x00CA_7A10_6000_0001);
    let tx = conn.transaction()?;
    {
        let mut store = tx.prepare("INSERT INTO stores (id, name, region) VALUES (?1, ?2, ?3)")?;
        for id in 1..=size.stores {
            let region = REGIONS[rng.below(REGIONS.len() as u64) as usize];
            store.execute(params![id, format!("Store {id:03}"), region])?;
        }
        let mut product = tx.prepare(
            "INSERT INTO products (id, name, category, price_cents) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut stock = tx.prepare(
            "INSERT INTO stock (product_id, store_id, quantity, reserved) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let step = (total / 200).max(1);
        let mut done = 0u64;
        for id in 1..=size.products {
            let name = format!(
                "{} {} {id}",
                ADJECTIVES[rng.below(ADJECTIVES.len() as u64) as usize],
                NOUNS[rng.below(NOUNS.len() as u64) as usize]
            );
            let category = CATEGORIES[rng.below(CATEGORIES.len() as u64) as usize];
            let price = 199 + rng.below(49_800) as i64;
            product.execute(params![id, name, category, price])?;
            for store_id in 1..=size.stores {
                // A quarter of the shelves are empty; some units are reserved for orders.
                let quantity = if rng.below(4) == 0 {
                    0
                } else {
                    1 + rng.below(200) as i64
                };
                let reserved = rng.below(quantity.min(10) as u64 + 1) as i64;
                stock.execute(params![id, store_id, quantity, reserved])?;
                done += 1;
                if done.is_multiple_of(step) && done < total {
                    progress(done, total);
                }
            }
        }
        let mut meta = tx.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")?;
        meta.execute(params!["generator", GENERATOR])?;
        meta.execute(params!["build", build_id()])?;
        meta.execute(params!["products", size.products.to_string()])?;
        meta.execute(params!["stores", size.stores.to_string()])?;
        meta.execute(params!["complete", "1"])?;
    }
    tx.commit()?;
    conn.execute_batch("ANALYZE; PRAGMA journal_mode = WAL;")?;
    conn.close().map_err(|(_, e)| e)?;
    // A stale `-wal` beside `path` would be replayed into the new file: remove it with the file.
    remove_db_files(path)?;
    std::fs::rename(&tmp, path)?;
    progress(total, total);
    Ok(BuildReport {
        size,
        stock_rows: total,
        elapsed: start.elapsed(),
    })
}

/// Where the examples keep the catalog of `size` by default: one file per size in the OS temp
/// directory, shared by every example process (and reused between runs).
#[must_use]
pub fn default_db_path(size: Size) -> PathBuf {
    std::env::temp_dir().join(format!(
        "cache-rs-catalog-{}x{}.db",
        size.products, size.stores
    ))
}

/// The key prefix (in Redis or memcached) the examples use for the catalog at `path`: it names the catalog's
/// size and build (a random id [`build`] stores), so processes sharing a database share its
/// cache entries, and entries of another build (an earlier file, another size) are never read.
///
/// # Errors
/// When `path` is not a complete catalog.
pub fn redis_prefix(path: &Path) -> Result<String, CatalogError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let value = |key: &str| -> Result<String, CatalogError> {
        Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))?)
    };
    Ok(format!(
        "catalog-example:{}x{}:{}",
        value("products")?,
        value("stores")?,
        value("build")?
    ))
}

/// Builds the catalog at `path` unless it already holds a complete one of this size (or
/// `rebuild` is set), drawing a progress bar on stderr while it builds. `Some(report)` when it
/// built.
///
/// # Errors
/// As [`build`].
pub fn ensure(path: &Path, size: Size, rebuild: bool) -> Result<Option<BuildReport>, CatalogError> {
    if !rebuild && is_complete(path, size) {
        return Ok(None);
    }
    eprintln!(
        "building the catalog: {} products x {} stores = {} stock rows at {}",
        size.products,
        size.stores,
        size.stock_rows(),
        path.display()
    );
    let report = build(path, size, progress_bar(Instant::now()))?;
    Ok(Some(report))
}

/// A progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise.
fn progress_bar(start: Instant) -> impl FnMut(u64, u64) {
    use std::io::{IsTerminal, Write};
    let terminal = std::io::stderr().is_terminal();
    let mut last_tenth = 0;
    move |done, total| {
        let fraction = if total == 0 {
            1.0
        } else {
            #[allow(clippy::cast_precision_loss)]
            let f = done as f64 / total as f64;
            f
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let filled = (fraction * 40.0).round() as usize;
        let line = format!(
            "[{}{}] {:>3.0}%  {done}/{total} rows  {:.1?}",
            "#".repeat(filled),
            "-".repeat(40 - filled.min(40)),
            fraction * 100.0,
            start.elapsed()
        );
        let mut err = std::io::stderr().lock();
        if terminal {
            let _ = write!(err, "\r{line}");
            if done == total {
                let _ = writeln!(err);
            }
        } else {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let tenth = (fraction * 10.0).floor() as u32;
            if tenth > last_tenth || done == total {
                last_tenth = tenth;
                let _ = writeln!(err, "{line}");
            }
        }
        let _ = err.flush();
    }
}

/// An id that tells one build of a catalog from another: the time and the process.
fn build_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut rng = Rng::new(u64::from(std::process::id()) ^ (nanos as u64));
    format!("{:016x}", rng.next_u64())
}

/// Whether `path` holds a complete catalog of this size, built by this version of [`build`].
#[must_use]
pub fn is_complete(path: &Path, size: Size) -> bool {
    let Ok(conn) = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return false;
    };
    let value = |key: &str| -> Option<String> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .ok()
    };
    value("complete").as_deref() == Some("1")
        && value("generator").as_deref() == Some(GENERATOR)
        && value("products") == Some(size.products.to_string())
        && value("stores") == Some(size.stores.to_string())
        && value("build").is_some()
}

/// Opens a catalog database for queries and updates, shared safely with other connections and
/// processes (WAL journal, a 5 s busy timeout).
///
/// # Errors
/// [`CatalogError::NotFound`] when `path` does not exist (use [`build`]); database errors.
pub fn open(path: &Path) -> Result<Connection, CatalogError> {
    if !path.exists() {
        return Err(CatalogError::NotFound(format!(
            "no catalog database at {}",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // 64 MiB of page cache per connection: the uncached queries run from memory too.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;")?;
    Ok(conn)
}

/// An id as SQLite's integer, or `None` when it cannot name a row.
fn sql_id(id: u64) -> Option<i64> {
    i64::try_from(id).ok()
}

/// One product, uncached: a primary-key lookup.
///
/// # Errors
/// Database errors.
pub fn query_product(conn: &Connection, id: u64) -> Result<Option<Product>, CatalogError> {
    let Some(sql_id) = sql_id(id) else {
        return Ok(None);
    };
    READS.fetch_add(1, Ordering::Relaxed);
    let mut stmt =
        conn.prepare_cached("SELECT id, name, category, price_cents FROM products WHERE id = ?1")?;
    let product = stmt
        .query_row([sql_id], |r| {
            Ok(Product {
                id: r.get::<_, i64>(0)?.unsigned_abs(),
                name: r.get(1)?,
                category: r.get(2)?,
                price_cents: r.get(3)?,
            })
        })
        .optional()?;
    Ok(product)
}

/// One product's stock summary, uncached: an aggregate over its row in every store, joined with
/// the stores and grouped by region. A product without stock rows has an empty summary.
///
/// # Errors
/// Database errors.
pub fn query_stock(conn: &Connection, product_id: u64) -> Result<StockSummary, CatalogError> {
    let mut summary = StockSummary {
        product_id,
        total_available: 0,
        stores_with_stock: 0,
        regions: Vec::new(),
    };
    let Some(sql_id) = sql_id(product_id) else {
        return Ok(summary);
    };
    READS.fetch_add(1, Ordering::Relaxed);
    let mut stmt = conn.prepare_cached(
        "SELECT st.region,
                SUM(MAX(s.quantity - s.reserved, 0)),
                SUM(MIN(s.reserved, s.quantity)),
                SUM(s.quantity - s.reserved > 0),
                SUM(s.quantity - s.reserved BETWEEN 1 AND 4)
           FROM stock AS s
           JOIN stores AS st ON st.id = s.store_id
          WHERE s.product_id = ?1
          GROUP BY st.region
          ORDER BY st.region",
    )?;
    let rows = stmt.query_map([sql_id], |r| {
        Ok(RegionStock {
            region: r.get(0)?,
            available: r.get(1)?,
            reserved: r.get(2)?,
            stores_with_stock: r.get(3)?,
            low_stock_stores: r.get(4)?,
        })
    })?;
    for region in rows {
        let region = region?;
        summary.total_available += region.available;
        summary.stores_with_stock += region.stores_with_stock;
        summary.regions.push(region);
    }
    Ok(summary)
}

/// A product page, uncached: [`query_product`], then [`query_stock`] if the product exists.
///
/// # Errors
/// Database errors.
pub fn query_product_page(conn: &Connection, id: u64) -> Result<Option<ProductPage>, CatalogError> {
    let Some(product) = query_product(conn, id)? else {
        return Ok(None);
    };
    let stock = query_stock(conn, id)?;
    Ok(Some(ProductPage { product, stock }))
}

/// One product, memoized ([`PRODUCT_CACHE`]): products change rarely, so an hour; unknown ids
/// are cached too (as `None`). Tagged `catalog`: a catalogue rebuild ([`rebuild_prices`])
/// drops every product at once, and through the dependency every [`page`] built from one.
///
/// # Errors
/// Database errors (not cached).
#[cached(
    backend = "catalog",
    name = "catalog.product",
    key = id,
    key_type = u64,
    capacity = 5_000,
    policy = "lfu",
    ttl = "1h",
    jitter = 0.1,
    tags = ["catalog"]
)]
pub fn product(conn: &Connection, id: u64) -> Result<Option<Product>, CatalogError> {
    query_product(conn, id)
}

/// One product's stock summary, memoized ([`STOCK_CACHE`]), until [`set_stock`] or
/// [`adjust_stock`] changes that product's stock (or ten minutes pass).
///
/// # Errors
/// Database errors (not cached).
#[cached(
    backend = "catalog",
    name = "catalog.stock",
    key = product_id,
    key_type = u64,
    capacity = 5_000,
    policy = "lfu",
    ttl = "10m",
    jitter = 0.1
)]
pub fn stock(conn: &Connection, product_id: u64) -> Result<StockSummary, CatalogError> {
    query_stock(conn, product_id)
}

/// A product page through the caches: [`page`], itself built from [`product`] and [`stock`].
///
/// # Errors
/// Database errors.
pub fn product_page(conn: &Connection, id: u64) -> Result<Option<ProductPage>, CatalogError> {
    page(conn, id)
}

/// A product page, memoized ([`PAGE_CACHE`]) and built from the memoized [`product`] and
/// [`stock`] ("Russian doll" caching): the entry depends on the two it read, so a stock update
/// ([`adjust_stock`] evicts the product's [`stock`]) or a catalogue rebuild (the `catalog` tag on
/// [`product`]) drops it too, with no eviction code of its own.
///
/// # Errors
/// Database errors (not cached).
#[cached(
    backend = "catalog",
    name = "catalog.page",
    key = id,
    key_type = u64,
    capacity = 5_000,
    policy = "lfu",
    ttl = "10m",
    jitter = 0.1
)]
pub fn page(conn: &Connection, id: u64) -> Result<Option<ProductPage>, CatalogError> {
    let Some(product) = product(conn, id)? else {
        return Ok(None);
    };
    let stock = stock(conn, id)?;
    Ok(Some(ProductPage { product, stock }))
}

/// A catalogue rebuild: every product's price moves by `delta_cents` (one `UPDATE` of the whole
/// table), then every entry tagged `catalog` is dropped, in every cache and, with a remote
/// backend, in every process; the pages built from them go through their dependency. Returns
/// how many products changed.
///
/// # Errors
/// Database errors (nothing is invalidated then).
#[cache_evict(tags = ["catalog"])]
pub fn rebuild_prices(conn: &Connection, delta_cents: i64) -> Result<u64, CatalogError> {
    WRITES.fetch_add(1, Ordering::Relaxed);
    let n = conn
        .prepare_cached("UPDATE products SET price_cents = price_cents + ?1")?
        .execute([delta_cents])?;
    Ok(n as u64)
}

/// Sets a product's stock in one store, and on success evicts that product's [`stock`] entry
/// (everywhere, with a Redis backend): the next read queries the new stock.
///
/// Reads the previous quantity and writes the new one in one immediate transaction.
///
/// # Errors
/// [`CatalogError::Invalid`] for a quantity outside `0..=`[`MAX_QUANTITY`];
/// [`CatalogError::NotFound`] for an unknown product or store (nothing is evicted then);
/// database errors.
#[cache_evict(stock, key = product_id)]
pub fn set_stock(
    conn: &Connection,
    product_id: u64,
    store_id: u64,
    quantity: i64,
) -> Result<StockChange, CatalogError> {
    change_stock(conn, product_id, store_id, |_| quantity)
}

/// Adds `delta` units (negative: removes them) to a product's stock in one store, and on
/// success evicts that product's [`stock`] entry, like [`set_stock`].
///
/// Adjustments commute: undoing one with `-delta` restores the quantity even when other
/// adjustments (from other processes too) ran in between.
///
/// # Errors
/// [`CatalogError::Invalid`] when the quantity would leave `0..=`[`MAX_QUANTITY`];
/// [`CatalogError::NotFound`] for an unknown product or store; database errors. Nothing is
/// changed or evicted on an error.
#[cache_evict(stock, key = product_id)]
pub fn adjust_stock(
    conn: &Connection,
    product_id: u64,
    store_id: u64,
    delta: i64,
) -> Result<StockChange, CatalogError> {
    change_stock(conn, product_id, store_id, |q| q.saturating_add(delta))
}

/// Reads a stock row's quantity and writes `new(previous)`, in one immediate transaction.
fn change_stock(
    conn: &Connection,
    product_id: u64,
    store_id: u64,
    new: impl FnOnce(i64) -> i64,
) -> Result<StockChange, CatalogError> {
    let not_found = || {
        CatalogError::NotFound(format!(
            "no stock row for product {product_id} in store {store_id}"
        ))
    };
    let (Some(product), Some(store)) = (sql_id(product_id), sql_id(store_id)) else {
        return Err(not_found());
    };
    // Immediate: the write lock first, so that two processes never both read then write.
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    READS.fetch_add(1, Ordering::Relaxed);
    let previous: Option<i64> = tx
        .prepare_cached("SELECT quantity FROM stock WHERE product_id = ?1 AND store_id = ?2")?
        .query_row([product, store], |r| r.get(0))
        .optional()?;
    let Some(previous) = previous else {
        return Err(not_found());
    };
    let quantity = new(previous);
    if !(0..=MAX_QUANTITY).contains(&quantity) {
        return Err(CatalogError::Invalid(format!(
            "quantity {quantity} is outside 0..={MAX_QUANTITY}"
        )));
    }
    WRITES.fetch_add(1, Ordering::Relaxed);
    tx.prepare_cached("UPDATE stock SET quantity = ?3 WHERE product_id = ?1 AND store_id = ?2")?
        .execute(params![product, store, quantity])?;
    tx.commit()?;
    Ok(StockChange {
        product_id,
        store_id,
        previous,
        quantity,
    })
}

/// Installs the catalog's backend ([`CACHE_BACKEND`]) for this process: memory only, or with
/// `url` a two-level cache under `prefix` on Redis (`redis://...`) or memcached
/// (`memcached://host:port`, several servers separated by commas), shared with every process
/// using the same URL and prefix. Call it once, before the first read.
///
/// # Errors
/// [`ConfigError`]: a configuration is already installed, or the URL is malformed (or of
/// another scheme).
pub fn install_backend(url: Option<&str>, prefix: &str) -> Result<(), ConfigError> {
    let spec: Spec = match url {
        None => Spec::Memory,
        Some(url) if url.starts_with("memcached://") => Memcached::url(url).prefix(prefix).into(),
        Some(url) => Redis::url(url).prefix(prefix).into(),
    };
    config::configure().backend(CACHE_BACKEND, spec).install()
}

/// The statistics of the catalog's three caches: `(product, stock, page)`.
///
/// # Panics
/// When [`CACHE_BACKEND`] is not configured (see [`install_backend`]).
#[must_use]
pub fn cache_stats() -> (CacheStats, CacheStats, CacheStats) {
    (
        __cache_of_product().stats(),
        __cache_of_stock().stats(),
        __cache_of_page().stats(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        std::env::temp_dir().join(format!(
            "cache-suite-{name}-{}-{nanos}.db",
            std::process::id()
        ))
    }

    #[test]
    fn build_is_complete_deterministic_and_aggregates_match_the_rows() {
        let size = Size {
            products: 30,
            stores: 7,
        };
        let path = temp_db("catalog-unit");
        let mut calls = Vec::new();
        let report = build(&path, size, |done, total| calls.push((done, total))).unwrap();
        assert_eq!(report.stock_rows, 210);
        assert_eq!(calls.last(), Some(&(210, 210)));
        assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(is_complete(&path, size));
        assert!(!is_complete(&path, Size::FULL));
        assert!(!is_complete(&path.with_extension("missing"), size));

        let conn = open(&path).unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM stock", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 210);
        assert_eq!(query_product(&conn, 31).unwrap(), None);
        assert_eq!(query_product(&conn, u64::MAX).unwrap(), None);
        let first = query_product_page(&conn, 5).unwrap().unwrap();
        assert_eq!(first.product.id, 5);

        // The aggregate, recomputed from the raw rows.
        let mut raw = conn
            .prepare("SELECT quantity, reserved FROM stock WHERE product_id = 5")
            .unwrap();
        let rows: Vec<(i64, i64)> = raw
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let available: i64 = rows.iter().map(|(q, r)| (q - r).max(0)).sum();
        let with_stock = rows.iter().filter(|(q, r)| q > r).count();
        assert_eq!(first.stock.total_available, available);
        assert_eq!(first.stock.stores_with_stock as usize, with_stock);
        let per_region: i64 = first.stock.regions.iter().map(|r| r.available).sum();
        assert_eq!(per_region, available);
        drop(raw);
        drop(conn);

        // The same size builds the same data.
        let again = temp_db("catalog-unit-again");
        build(&again, size, |_, _| {}).unwrap();
        let conn = open(&again).unwrap();
        assert_eq!(query_product_page(&conn, 5).unwrap().unwrap(), first);
        drop(conn);
        for p in [&path, &again] {
            remove_db_files(p).unwrap();
        }
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1_000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
            let u = a.unit();
            assert_eq!(u.to_bits(), b.unit().to_bits());
            assert!((0.0..1.0).contains(&u));
        }
    }
}
