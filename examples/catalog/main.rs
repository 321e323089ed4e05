//! A product catalog whose stock queries are heavy, on a real SQLite database, first uncached and
//! then through `#[cached]` functions, with stock updates going through `#[cache_evict]`.
//!
//! ```sh
//! cargo run --release --example catalog                       # memory backend
//! cargo run --release --example catalog -- --backend redis://127.0.0.1/
//! cargo run --release --example catalog -- --backend memcached://127.0.0.1:11211
//! cargo run --release --example catalog -- --requests 50000 --rebuild
//! cargo run --release --example catalog -- --rebuild-every 5000  # catalogue rebuilds too
//! ```
//!
//! What it does:
//!
//! 1. Builds (once; `--rebuild` to redo it) a SQLite file in the OS temp directory with 11,000
//!    products (name, category, price) and their stock in 170 stores (each in one of six
//!    regions): 1,870,000 stock rows, in one transaction through prepared statements, with a
//!    progress bar on stderr. Later runs reuse the file when it is complete.
//! 2. Draws a fixed stream (seed 42) of `--requests` requests (default 50,000): product pages
//!    whose products follow Zipf's law (s = 1.0 over the 11,000 products), and about 1% stock
//!    updates (a delivery of 1 to 50 units of a product, drawn the same way, to one store). A
//!    page is a primary-key lookup of the product and a stock aggregate: its 170 stock rows
//!    joined with the stores, grouped by region (available units, reserved units, stores with
//!    stock, stores running low).
//! 3. Replays the stream twice: uncached (`catalog::query_*`), then through the memoized
//!    `catalog::page`, built from the memoized `catalog::product` and `catalog::stock`
//!    (`#[cached(backend = "catalog", ...)]`, cache-aside, "Russian doll": a page depends on the
//!    two entries it read). Updates go through `catalog::adjust_stock`, a
//!    `#[cache_evict(stock, key = product_id)]` function, in both runs: it drops the product's
//!    stock entry, and through the dependency its page. With `--rebuild-every N`, every N
//!    requests a catalogue rebuild (`catalog::rebuild_prices`: every price moves by a cent, then
//!    `#[cache_evict(tags = ["catalog"])]`) drops every product (tagged `catalog`) and, through
//!    them, every page. After each run its updates and rebuilds are undone (newest first,
//!    through the same functions, with the opposite delta) so both runs see the same data.
//! 4. Prints the table below and checks that every cached answer equals the uncached answer of
//!    the same request; it exits with status 1 (and the first differing request) if one differs.
//!
//! The table, one row per run:
//!
//! - `requests/s`: requests over the run's wall time (one thread, one connection);
//! - `p50`, `p99`: the latency of half and of 99% of the requests (page views and updates);
//! - `DB queries`: statements that reached SQLite (a page view is two `SELECT`s uncached; an
//!   update is a `SELECT` and an `UPDATE` in both runs);
//! - `hit ratio`: lookups of the two caches answered from this process's memory, from the
//!   caches' own statistics (`hits / (hits + misses)`); the line below splits the misses into
//!   loads (a query) and, with Redis or memcached, remote hits (no query).
//!
//! # A fleet: two processes sharing results and invalidations through Redis
//!
//! With `--backend redis://127.0.0.1/` the caches are two-level: each process's memory (L1, 5 s)
//! in front of Redis (keys `catalog-example:11000x170:<build id>:catalog.stock:<hash>`, the
//! build id naming this build of the database file). A second run started after the first (in
//! another terminal, or the same) finds the first one's results in Redis: its cached run shows
//! Redis hits and fewer DB queries, and its check still passes. Every process that writes the
//! file must use the same backend: a memory-only writer cannot evict what Redis holds (it stays
//! until its TTL, 10 minutes for stock).
//!
//! To watch one process see another's writes at once, in two terminals:
//!
//! ```sh
//! # terminal 1: read product 42's stock through the cache every 50 ms for 60 s (--seconds S),
//! # printing each change, where the answer came from (memory, Redis, the database), and any
//! # read that differs from the database
//! cargo run --release --example catalog -- --backend redis://127.0.0.1/ --watch 42
//! # terminal 2: read it (a Redis hit: terminal 1 loaded it), set store 7's quantity, read again
//! cargo run --release --example catalog -- --backend redis://127.0.0.1/ --set-stock 42 7 0
//! # ... and put back the quantity it printed (`store 7: 183 -> 0 units`)
//! cargo run --release --example catalog -- --backend redis://127.0.0.1/ --set-stock 42 7 183
//! ```
//!
//! Terminal 1 prints the new stock right after each write (terminal 2's `#[cache_evict]` deleted
//! the Redis entry and told every process to drop its memory copy), long before its 5 s L1 TTL,
//! and ends with how many of its reads differed from the database (0 expected).
//!
//! With `--backend memcached://127.0.0.1:11211` (several servers: comma-separated URLs) the
//! caches are two-level on memcached, and a second run finds the first one's results there just
//! the same. memcached cannot broadcast invalidations: a `--set-stock` deletes the memcached
//! entry at once, and a `--watch` in another process sees the new stock within its L1 TTL (1 s
//! by default with memcached) instead of at once.
//!
//! Two benchmarks may also run side by side (their undos still restore the data exactly:
//! deliveries commute), and share results through Redis, but the per-request check then has
//! nothing fixed to compare: each one's runs see the other's deliveries come and go. The
//! example notices (SQLite's `data_version` changed under it), says that the check is
//! inconclusive and exits with status 2, rather than calling it a wrong answer.

mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cache_suite::catalog::{self, Size, StockSummary};
use workload::{Answer, Counters, Request, RunResult};

const USAGE: &str = "\
usage: catalog [--requests N] [--rebuild-every N] [--backend URL] [--rebuild] [--db PATH] [--seed N]
       catalog --backend URL --watch PRODUCT [--seconds S]
       catalog --backend URL --set-stock PRODUCT STORE QUANTITY
where URL is redis://HOST/ or memcached://HOST:PORT (several memcached servers: comma-separated)";

/// What to do.
enum Mode {
    /// The benchmark: uncached, then cached, and the check.
    Bench,
    /// Read one product's stock through the cache, repeatedly.
    Watch { product: u64, seconds: u64 },
    /// Set one stock row through `set_stock`.
    SetStock {
        product: u64,
        store: u64,
        quantity: i64,
    },
}

struct Options {
    requests: usize,
    rebuild_every: Option<usize>,
    backend: Option<String>,
    rebuild: bool,
    db: Option<PathBuf>,
    seed: u64,
    mode: Mode,
}

fn parse_args() -> Result<Options, String> {
    fn value<T: std::str::FromStr>(
        args: &mut impl Iterator<Item = String>,
        flag: &str,
    ) -> Result<T, String> {
        let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{flag}: `{v}` is not a valid value"))
    }
    let mut o = Options {
        requests: 50_000,
        rebuild_every: None,
        backend: None,
        rebuild: false,
        db: None,
        seed: 42,
        mode: Mode::Bench,
    };
    let mut seconds = 60;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--requests" => o.requests = value(&mut args, "--requests")?,
            "--rebuild-every" => o.rebuild_every = Some(value(&mut args, "--rebuild-every")?),
            "--backend" => o.backend = Some(value(&mut args, "--backend")?),
            "--rebuild" => o.rebuild = true,
            "--db" => o.db = Some(value(&mut args, "--db")?),
            "--seed" => o.seed = value(&mut args, "--seed")?,
            "--seconds" => seconds = value(&mut args, "--seconds")?,
            "--watch" => {
                o.mode = Mode::Watch {
                    product: value(&mut args, "--watch")?,
                    seconds: 0,
                }
            }
            "--set-stock" => {
                o.mode = Mode::SetStock {
                    product: value(&mut args, "--set-stock PRODUCT")?,
                    store: value(&mut args, "--set-stock STORE")?,
                    quantity: value(&mut args, "--set-stock QUANTITY")?,
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if let Mode::Watch { seconds: s, .. } = &mut o.mode {
        *s = seconds;
    }
    if o.requests == 0 {
        return Err("--requests must be at least 1".into());
    }
    if let Some(url) = &o.backend
        && !url.starts_with("redis://")
        && !url.starts_with("rediss://")
        && !url.starts_with("memcached://")
    {
        return Err(format!(
            "--backend: `{url}` is neither a redis:// nor a memcached:// URL"
        ));
    }
    Ok(o)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("catalog: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if why.is_empty() { 0 } else { 64 });
        }
    };
    match run(&options) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("catalog: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(o: &Options) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let size = Size::FULL;
    let path =
        o.db.clone()
            .unwrap_or_else(|| catalog::default_db_path(size));
    let built = catalog::ensure(&path, size, o.rebuild)?;

    // The prefix names this build of the file: entries of an earlier build are never read.
    let prefix = catalog::redis_prefix(&path)?;
    catalog::install_backend(o.backend.as_deref(), &prefix)?;
    if let Some(url) = &o.backend
        && let Err(e) = ping(url)
    {
        eprintln!(
            "warning: {} at {url} does not answer ({e}): the caches run on memory alone",
            remote_name(url)
        );
    }
    let conn = catalog::open(&path)?;

    match o.mode {
        Mode::Watch { product, seconds } => {
            watch(&conn, product, Duration::from_secs(seconds))?;
            return Ok(ExitCode::SUCCESS);
        }
        Mode::SetStock {
            product,
            store,
            quantity,
        } => {
            set_stock(&conn, product, store, quantity)?;
            return Ok(ExitCode::SUCCESS);
        }
        Mode::Bench => {}
    }

    if cfg!(debug_assertions) {
        eprintln!("note: a debug build; run with --release for meaningful numbers");
    }
    println!(
        "catalog: {} products x {} stores = {} stock rows in {}",
        thousands(size.products.into()),
        size.stores,
        thousands(size.stock_rows()),
        path.display()
    );
    match built {
        Some(b) => println!(
            "         built in {:.2} s ({} rows/s)",
            b.elapsed.as_secs_f64(),
            thousands(rate(b.stock_rows, b.elapsed))
        ),
        None => println!("         reused (complete; --rebuild to build it again)"),
    }

    let requests = workload::stream(o.seed, o.requests, size, 1.0, 10);
    let updates = requests
        .iter()
        .filter(|r| matches!(r, Request::Deliver { .. }))
        .count();
    println!(
        "stream:  {} requests ({} page views, {} stock updates), \
         Zipf s = 1.0 over {} products, seed {}",
        thousands(requests.len() as u64),
        thousands((requests.len() - updates) as u64),
        thousands(updates as u64),
        thousands(size.products.into()),
        o.seed
    );
    let backend = match &o.backend {
        Some(url) => format!(
            "{} ({url}, prefix {prefix}) behind memory",
            remote_name(url)
        ),
        None => "memory".to_string(),
    };
    println!(
        "caches:  catalog.page (built from) catalog.product, catalog.stock on backend `catalog` = {backend}"
    );
    println!();

    let uncached = workload::run(&conn, &requests, false, o.rebuild_every)?;
    let cached = workload::run(&conn, &requests, true, o.rebuild_every)?;

    println!(
        "{:<10} {:>12} {:>10} {:>10} {:>12} {:>10}",
        "run", "requests/s", "p50", "p99", "DB queries", "hit ratio"
    );
    for (name, r) in [("uncached", &uncached), ("cached", &cached)] {
        println!(
            "{:<10} {:>12} {:>10} {:>10} {:>12} {:>10}",
            name,
            thousands(r.throughput().round() as u64),
            micros(r.percentile(50)),
            micros(r.percentile(99)),
            thousands(r.queries.total()),
            r.cache
                .hit_ratio()
                .map_or_else(|| "-".to_string(), |h| format!("{:.1}%", h * 100.0)),
        );
    }
    println!();
    for (name, r) in [("uncached", &uncached), ("cached", &cached)] {
        println!(
            "{name:<10} DB queries: {} reads + {} writes",
            thousands(r.queries.reads),
            thousands(r.queries.writes)
        );
    }
    let c: Counters = cached.cache;
    let mut viewed: Vec<u64> = requests
        .iter()
        .filter_map(|r| match r {
            Request::View(id) => Some(*id),
            Request::Deliver { .. } => None,
        })
        .collect();
    let views = viewed.len();
    viewed.sort_unstable();
    viewed.dedup();
    println!(
        "cached     cache lookups: {} = {} hits + {} misses \
         ({} loaded: {} from the database, {} pages from the two other caches; \
         {} from the remote tier)",
        thousands(c.hits + c.misses),
        thousands(c.hits),
        thousands(c.misses),
        thousands(c.loads),
        thousands(c.loads - c.page_loads),
        thousands(c.page_loads),
        thousands(c.remote_hits)
    );
    #[allow(clippy::cast_precision_loss)]
    let best = 1.0 - viewed.len() as f64 / views.max(1) as f64;
    println!(
        "           (the first view of each of the {} distinct products viewed must miss: \
         at most {:.1}% can hit)",
        thousands(viewed.len() as u64),
        best * 100.0
    );
    println!(
        "invalidations: {} catalogue rebuilds (tag `catalog`: every product, and through them \
         every page), {} stock updates (one product's stock, and through it its page); \
         {} pages built",
        cached.rebuilds,
        thousands(cached.updates),
        thousands(c.page_loads)
    );
    println!(
        "speed-up:  {:.1}x requests/s, p50 {:.1}x lower, {:.1}x fewer DB queries",
        cached.throughput() / uncached.throughput(),
        ratio(uncached.percentile(50), cached.percentile(50)),
        ratio_u64(uncached.queries.total(), cached.queries.total())
    );
    Ok(check(&uncached, &cached))
}

/// Compares the runs' answers (one per request, and one per catalogue rebuild), index by index.
fn check(uncached: &RunResult, cached: &RunResult) -> ExitCode {
    let n = uncached.answers.len();
    let differing: Vec<usize> = (0..n)
        .filter(|&i| cached.answers.get(i) != Some(&uncached.answers[i]))
        .collect();
    if differing.is_empty() && cached.answers.len() == n {
        println!(
            "check:     all {} cached answers equal the uncached answers",
            thousands(n as u64)
        );
        return ExitCode::SUCCESS;
    }
    let Some(&i) = differing.first() else {
        eprintln!(
            "check FAILED: the runs gave {n} and {} answers",
            cached.answers.len()
        );
        return ExitCode::FAILURE;
    };
    if uncached.external_writes || cached.external_writes {
        eprintln!(
            "check: {} answers differ, but another process wrote to the database during the runs \
             (SQLite's data_version changed), so the two runs did not see the same data: the \
             check is inconclusive. Run one benchmark at a time (--watch / --set-stock show two \
             processes side by side).",
            differing.len()
        );
        return ExitCode::from(2);
    }
    eprintln!(
        "check FAILED: {} of {} cached answers differ from the uncached ones; the first, answer \
         #{i}:\n  uncached: {}\n  cached:   {}",
        differing.len(),
        n,
        describe(&uncached.answers[i]),
        cached
            .answers
            .get(i)
            .map_or_else(|| "none".to_string(), describe),
    );
    ExitCode::FAILURE
}

fn describe(a: &Answer) -> String {
    match a {
        Answer::Page(None) => "no such product".into(),
        Answer::Page(Some(p)) => format!("{:?} / {}", p.product, summary(&p.stock)),
        Answer::Set(c) => format!("{c:?}"),
        Answer::Rebuilt(n) => format!("a catalogue rebuild ({n} products repriced)"),
    }
}

fn summary(s: &StockSummary) -> String {
    format!(
        "{} units available in {} stores ({})",
        s.total_available,
        s.stores_with_stock,
        s.regions
            .iter()
            .map(|r| format!("{} {}", r.region, r.available))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Where the last `stock` call's answer came from, by the change of the counters.
fn source(before: Counters, after: Counters) -> &'static str {
    let d = after.since(before);
    if d.loads > 0 {
        "loaded from the database"
    } else if d.remote_hits > 0 {
        "from the remote tier (Redis or memcached): another process loaded it"
    } else {
        "from this process's memory"
    }
}

/// `--watch`: reads `product`'s stock through the cache every 50 ms, prints each change and
/// where it came from, and compares every answer with the database.
fn watch(
    conn: &rusqlite::Connection,
    product: u64,
    seconds: Duration,
) -> Result<(), catalog::CatalogError> {
    let start = Instant::now();
    let mut last: Option<StockSummary> = None;
    let (mut reads, mut transient, mut stale) = (0u64, 0u64, 0u64);
    println!("watching product {product}'s stock through the cache for {seconds:?} (every 50 ms)");
    loop {
        let before = Counters::now();
        let cached = catalog::stock(conn, product)?;
        let from = source(before, Counters::now());
        reads += 1;
        if cached != catalog::query_stock(conn, product)? {
            // Another process's write reaches this one within milliseconds; a read in between
            // (or a write between the two reads above) differs once. Look again.
            std::thread::sleep(Duration::from_millis(20));
            if catalog::stock(conn, product)? == catalog::query_stock(conn, product)? {
                transient += 1;
            } else {
                stale += 1;
                println!(
                    "{:>8.3} s  STALE: the cache still answers {} 20 ms later",
                    start.elapsed().as_secs_f64(),
                    summary(&cached)
                );
            }
        }
        if last.as_ref() != Some(&cached) {
            println!(
                "{:>8.3} s  product {product}: {} ({from})",
                start.elapsed().as_secs_f64(),
                summary(&cached)
            );
            last = Some(cached);
        }
        if start.elapsed() >= seconds {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "{reads} reads: {stale} stale (still different from the database 20 ms later), \
         {transient} differing once within a write's propagation"
    );
    Ok(())
}

/// `--set-stock`: reads `product`'s stock through the cache, sets one row through the
/// `#[cache_evict]` function, and reads again.
fn set_stock(
    conn: &rusqlite::Connection,
    product: u64,
    store: u64,
    quantity: i64,
) -> Result<(), catalog::CatalogError> {
    let before = Counters::now();
    let old = catalog::stock(conn, product)?;
    println!(
        "before: product {product}: {} ({})",
        summary(&old),
        source(before, Counters::now())
    );
    let change = catalog::set_stock(conn, product, store, quantity)?;
    println!(
        "set:    store {store}: {} -> {} units (committed; the stock entry is evicted here and in \
         the remote tier; other processes drop their copies at once with Redis, within their 1 s \
         L1 TTL with memcached)",
        change.previous, change.quantity
    );
    let before = Counters::now();
    let new = catalog::stock(conn, product)?;
    println!(
        "after:  product {product}: {} ({})",
        summary(&new),
        source(before, Counters::now())
    );
    Ok(())
}

/// The kind of server `url` names.
fn remote_name(url: &str) -> &'static str {
    if url.starts_with("memcached://") {
        "memcached"
    } else {
        "Redis"
    }
}

/// Whether the server answers (Redis a `PING`, every memcached server its version) within a
/// second.
fn ping(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    if url.starts_with("memcached://") {
        let urls: Vec<&str> = url.split(',').map(str::trim).collect();
        let servers = cache_runtime::MemcachedBackend::new(&urls, Duration::from_secs(1))?;
        return if servers.check()? {
            Ok(())
        } else {
            Err("not reachable".into())
        };
    }
    let client = redis::Client::open(url)?;
    let mut con = client.get_connection_with_timeout(Duration::from_secs(1))?;
    redis::cmd("PING").query::<String>(&mut con)?;
    Ok(())
}

fn rate(n: u64, d: Duration) -> u64 {
    #[allow(clippy::cast_precision_loss)]
    let r = n as f64 / d.as_secs_f64().max(1e-9);
    r.round() as u64
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn ratio_u64(a: u64, b: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let r = a as f64 / b.max(1) as f64;
    r
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A latency in microseconds, or milliseconds from 10 ms.
fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1_000.0)
    } else {
        format!("{us:.1} µs")
    }
}
