//! The catalog as an HTTP service (axum): `cargo run --release --example service`.
//!
//! Serves the catalog database of `cargo run --release --example catalog` (built here first if
//! it is missing, with a progress bar; `--db PATH` serves another existing catalog) through the
//! same `#[cached]` functions; the routes are in `src/service.rs`, and `tests/service.rs` drives
//! them over a loopback socket.
//!
//! ```sh
//! cargo run --release --example service                     # http://127.0.0.1:3000, memory caches
//! cargo run --release --example service -- --addr 127.0.0.1:3001 --backend redis://127.0.0.1/
//!
//! curl -s localhost:3000/products/42                        # the product and its stock (a miss)
//! curl -s localhost:3000/products/42                        # the same, from the cache
//! curl -s -X POST localhost:3000/products/42/stock \
//!      -H 'content-type: application/json' -d '{"store": 7, "quantity": 0}'   # evicts 42's stock
//! curl -s localhost:3000/products/42                        # the new stock (loaded again)
//! curl -s localhost:3000/metrics | grep catalog.stock       # cache_hits_total{...} 1, ...
//! ```
//!
//! With `--backend redis://...`, several instances on different ports (and the catalog
//! example's `--watch` / `--set-stock`) share cached pages and invalidations through Redis.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use cache_suite::catalog::{self, Size};
use cache_suite::service;

const USAGE: &str = "usage: service [--addr 127.0.0.1:3000] [--backend redis://HOST/ | memcached://HOST:PORT] [--db PATH] [--rebuild]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut addr: SocketAddr = ([127, 0, 0, 1], 3000).into();
    let mut backend: Option<String> = None;
    let mut db: Option<PathBuf> = None;
    let mut rebuild = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let parsed = match arg.as_str() {
            "--addr" => args.next().and_then(|a| a.parse().ok()).map(|a| addr = a),
            "--backend" => args.next().map(|b| backend = Some(b)),
            "--db" => args.next().map(|d| db = Some(d.into())),
            "--rebuild" => {
                rebuild = true;
                Some(())
            }
            _ => None,
        };
        if parsed.is_none() {
            eprintln!("service: bad argument `{arg}`\n{USAGE}");
            return ExitCode::from(64);
        }
    }
    match run(addr, backend.as_deref(), db, rebuild).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("service: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    addr: SocketAddr,
    backend: Option<&str>,
    db: Option<PathBuf>,
    rebuild: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    // `--db` names an existing catalog (of any size); by default, the catalog example's file.
    let path = match db {
        Some(path) => path,
        None => {
            let path = catalog::default_db_path(Size::FULL);
            let to_build = path.clone();
            tokio::task::spawn_blocking(move || catalog::ensure(&to_build, Size::FULL, rebuild))
                .await??;
            path
        }
    };
    catalog::install_backend(backend, &catalog::redis_prefix(&path)?)?;
    let app = service::app(&path)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "catalog service on http://{} ({}; caches: {})",
        listener.local_addr()?,
        path.display(),
        backend.unwrap_or("memory")
    );
    service::serve(listener, app).await?;
    Ok(())
}
