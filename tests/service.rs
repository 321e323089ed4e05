//! The catalog service (`src/service.rs`) over a real loopback socket, driven by an HTTP client:
//! a second GET is a cache hit (no query), a POST invalidates (the next GET shows the new stock
//! and counts a load), bad input gets 400 / 404, and `/metrics` reports the counters.
//!
//! One test: the caches are per process, and the counters it checks are exact.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cache_suite::catalog::{self, ProductPage, Size, StockChange};
use cache_suite::service;
use serde_json::json;

/// A blocking client against one server.
struct Client {
    agent: ureq::Agent,
    base: String,
}

/// A response: status, content type, body.
struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

impl Reply {
    fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not the expected JSON ({e}): {}", self.body))
    }

    fn error(&self) -> String {
        let v: serde_json::Value = self.json();
        v["error"].as_str().expect("an error message").to_string()
    }
}

impl Client {
    fn new(addr: std::net::SocketAddr) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build();
        Self {
            agent: ureq::Agent::new_with_config(config),
            base: format!("http://{addr}"),
        }
    }

    fn reply(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = response.expect("the server answers");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Reply {
            status: response.status().as_u16(),
            content_type,
            body: response.body_mut().read_to_string().expect("a text body"),
        }
    }

    fn get(&self, path: &str) -> Reply {
        Self::reply(self.agent.get(format!("{}{path}", self.base)).call())
    }

    fn post(&self, path: &str, body: &str) -> Reply {
        Self::reply(
            self.agent
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .send(body),
        )
    }

    /// `/metrics`, checked for its status and content type.
    fn metrics(&self) -> String {
        let reply = self.get("/metrics");
        assert_eq!(reply.status, 200);
        assert!(
            reply.content_type.starts_with("text/plain; version=0.0.4"),
            "{}",
            reply.content_type
        );
        reply.body
    }
}

/// The value of `metric{cache="cache"}` in a Prometheus text.
fn counter(text: &str, metric: &str, cache: &str) -> u64 {
    let prefix = format!("{metric}{{cache=\"{cache}\"}} ");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{text}"));
    line[prefix.len()..].parse().expect("a number")
}

/// A fresh directory of its own under the OS temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "cache-suite-service-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn cached_pages_invalidating_writes_and_metrics_over_http() {
    let dir = TempDir::new();
    let db = dir.path().join("catalog.db");
    let size = Size {
        products: 200,
        stores: 10,
    };
    catalog::build(&db, size, |_, _| {}).unwrap();
    catalog::install_backend(None, "unused").unwrap();

    // The service on a real loopback port, on a runtime of its own; the client blocks here.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = service::app(&db).unwrap();
    rt.spawn(service::serve(listener, app));
    let client = Client::new(addr);
    // The database as the test sees it, uncached.
    let direct = catalog::open(&db).unwrap();

    // A first GET: a miss of the page cache and of the two it is built from, two queries.
    let queries = catalog::queries();
    let first = client.get("/products/17");
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.content_type.starts_with("application/json"));
    let page: ProductPage = first.json();
    assert_eq!(page.product.id, 17);
    assert!(!page.stock.regions.is_empty());
    let expected = catalog::query_product_page(&direct, 17).unwrap().unwrap();
    assert_eq!(page, expected, "the page is what the database holds");
    assert_eq!(catalog::queries().since(queries).reads, 2 + 2); // the service's, and ours

    let metrics = client.metrics();
    for cache in ["catalog.page", "catalog.product", "catalog.stock"] {
        assert_eq!(counter(&metrics, "cache_hits_total", cache), 0);
        assert_eq!(counter(&metrics, "cache_misses_total", cache), 1);
        assert_eq!(counter(&metrics, "cache_loads_total", cache), 1);
        assert_eq!(counter(&metrics, "cache_entries", cache), 1);
    }

    // The second GET: a hit of the page, no query, the same answer.
    let queries = catalog::queries();
    let second = client.get("/products/17");
    assert_eq!(second.status, 200);
    assert_eq!(second.body, first.body);
    assert_eq!(catalog::queries().since(queries).total(), 0, "no query");
    let metrics = client.metrics();
    assert!(
        metrics.contains("cache_hits_total{cache=\"catalog.page\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("cache_hits_total{cache=\"catalog.stock\"} 0\n"));
    assert!(metrics.contains("cache_loads_total{cache=\"catalog.stock\"} 1\n"));

    // A POST sets store 3's quantity: it answers the change and evicts product 17's stock.
    let before: i64 = direct
        .query_row(
            "SELECT quantity FROM stock WHERE product_id = 17 AND store_id = 3",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let new_quantity = before + 37;
    let reply = client.post(
        "/products/17/stock",
        &json!({"store": 3, "quantity": new_quantity}).to_string(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let change: StockChange = reply.json();
    assert_eq!(
        change,
        StockChange {
            product_id: 17,
            store_id: 3,
            previous: before,
            quantity: new_quantity,
        }
    );

    // The next GET shows the new stock: the page depended on the evicted stock, so it is built
    // again; the stock is loaded again, the product a hit.
    let queries = catalog::queries();
    let third: ProductPage = client.get("/products/17").json();
    assert_eq!(
        catalog::queries().since(queries).reads,
        1,
        "the stock query"
    );
    assert_eq!(third.product, page.product);
    assert_eq!(
        third,
        catalog::query_product_page(&direct, 17).unwrap().unwrap()
    );
    let reserved: i64 = direct
        .query_row(
            "SELECT reserved FROM stock WHERE product_id = 17 AND store_id = 3",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let available = |q: i64| (q - reserved).max(0);
    assert_eq!(
        third.stock.total_available - page.stock.total_available,
        available(new_quantity) - available(before),
    );
    let metrics = client.metrics();
    assert_eq!(counter(&metrics, "cache_loads_total", "catalog.page"), 2);
    assert_eq!(counter(&metrics, "cache_hits_total", "catalog.page"), 1);
    assert_eq!(counter(&metrics, "cache_loads_total", "catalog.stock"), 2);
    assert_eq!(counter(&metrics, "cache_misses_total", "catalog.stock"), 2);
    assert_eq!(counter(&metrics, "cache_hits_total", "catalog.stock"), 0);
    assert_eq!(counter(&metrics, "cache_loads_total", "catalog.product"), 1);
    assert_eq!(counter(&metrics, "cache_hits_total", "catalog.product"), 1);

    // Bad input: 400 and 404, never a panic, and nothing evicted by a refused write.
    let cases: [(&str, Option<&str>, u16); 9] = [
        ("/products/abc", None, 400),
        ("/products/-1", None, 400),
        ("/products/99999999999999999999999", None, 400),
        ("/products/17/stock", Some("not json"), 400),
        ("/products/17/stock", Some(r#"{"store": 3}"#), 400),
        (
            "/products/17/stock",
            Some(r#"{"store": 3, "quantity": -1}"#),
            400,
        ),
        (
            "/products/17/stock",
            Some(r#"{"store": 999, "quantity": 5}"#),
            404,
        ),
        (
            "/products/abc/stock",
            Some(r#"{"store": 3, "quantity": 5}"#),
            400,
        ),
        (
            "/products/9999/stock",
            Some(r#"{"store": 3, "quantity": 5}"#),
            404,
        ),
    ];
    for (path, body, status) in cases {
        let reply = match body {
            None => client.get(path),
            Some(body) => client.post(path, body),
        };
        assert_eq!(reply.status, status, "{path} {body:?}: {}", reply.body);
        assert!(!reply.error().is_empty(), "{path}: an error message");
    }
    let unknown = client.get("/products/9999");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error(), "no product 9999");
    assert_eq!(client.get("/products/18446744073709551615").status, 404);
    assert_eq!(client.get("/nowhere").status, 404);
    let queries = catalog::queries();
    let fourth: ProductPage = client.get("/products/17").json();
    assert_eq!(fourth, third);
    assert_eq!(
        catalog::queries().since(queries).total(),
        0,
        "still cached: the refused writes evicted nothing"
    );

    // Concurrent GETs of a cold product: one load, every answer the same.
    let pages: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| client.get("/products/42")))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let reply = h.join().unwrap();
                assert_eq!(reply.status, 200);
                reply.body
            })
            .collect()
    });
    assert!(pages.iter().all(|p| *p == pages[0]));

    // The final counters, as Prometheus lines. Page lookups: 4 of 17, 1 of 9999, 1 of
    // u64::MAX, 8 of 42; page loads: 17 twice (the POST evicted its stock, and through the
    // dependency the page), 9999 and u64::MAX (both cached as "no product"), 42 once. Products
    // and stock are looked up by page loads only: products 17 (twice), 9999, u64::MAX, 42 (4
    // loads); stock 17 twice, 42 once (3 lookups, 3 loads).
    let metrics = client.metrics();
    assert_eq!(counter(&metrics, "cache_loads_total", "catalog.page"), 5);
    let page_hits = counter(&metrics, "cache_hits_total", "catalog.page");
    let page_misses = counter(&metrics, "cache_misses_total", "catalog.page");
    let page_joined = counter(&metrics, "cache_joined_total", "catalog.page");
    assert_eq!(
        page_hits + page_misses,
        4 + 1 + 1 + 8,
        "every page lookup counted once"
    );
    assert!(page_joined <= page_misses - 5);
    assert_eq!(counter(&metrics, "cache_loads_total", "catalog.product"), 4);
    assert_eq!(counter(&metrics, "cache_loads_total", "catalog.stock"), 3);
    let stock_hits = counter(&metrics, "cache_hits_total", "catalog.stock");
    let stock_misses = counter(&metrics, "cache_misses_total", "catalog.stock");
    assert_eq!(
        stock_hits + stock_misses,
        3,
        "every stock lookup counted once"
    );
    assert!(metrics.contains(&format!(
        "cache_hits_total{{cache=\"catalog.stock\"}} {stock_hits}\n"
    )));
    assert!(metrics.contains("# TYPE cache_hits_total counter\n"));
    assert!(metrics.contains("cache_entries{cache=\"catalog.stock\"} 2\n"));
    assert!(metrics.contains("cache_entries{cache=\"catalog.product\"} 4\n"));
}
