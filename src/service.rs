//! The catalog as an HTTP service (axum): cached product pages, a stock write that invalidates,
//! and the caches' statistics for Prometheus.
//!
//! - `GET /products/{id}`: the product and its stock summary as JSON, through
//!   [`catalog::product_page`] (the `#[cached]` functions); 404 for an unknown product, 400 for
//!   an id that is not a number.
//! - `POST /products/{id}/stock` with a body `{"store": 3, "quantity": 25}`: sets the product's
//!   stock in that store through [`catalog::set_stock`] (`#[cache_evict]`) and answers the
//!   [`catalog::StockChange`]; 400 for a malformed body or a quantity out of range, 404 for an
//!   unknown product or store.
//! - `GET /metrics`: [`cache_runtime::registry::prometheus_text`], as
//!   `text/plain; version=0.0.4; charset=utf-8` (Prometheus' text format).
//!
//! Every error is a JSON `{"error": "..."}` with its status; no input panics the service.
//! Queries run on Tokio's blocking threads, each on a pooled SQLite connection.
//!
//! Install the catalog's cache backend first ([`catalog::install_backend`]): the caches are
//! keyed by product id, so a process serves one catalog database.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use cache_suite::{catalog, service};
//!
//! catalog::install_backend(None, "catalog-service")?;
//! let app = service::app("catalog.db")?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! service::serve(listener, app).await?;
//! # Ok(()) }
//! ```

use std::ops::Deref;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Json, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::catalog::{self, CatalogError};

/// The content type of `GET /metrics`: Prometheus' text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Connections kept open between requests.
const IDLE_CONNECTIONS: usize = 8;

/// The body of `POST /products/{id}/stock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockUpdate {
    /// The store whose stock changes.
    pub store: u64,
    /// The new quantity on hand, `0..=`[`catalog::MAX_QUANTITY`].
    pub quantity: i64,
}

/// A few SQLite connections to one database, opened on demand and reused.
struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    fn get(&self) -> Result<Pooled<'_>, CatalogError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => catalog::open(&self.path)?,
        };
        Ok(Pooled {
            pool: self,
            conn: Some(conn),
        })
    }
}

/// A connection borrowed from the [`Pool`], returned to it on drop.
struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Connection>,
}

impl Deref for Pooled<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self
                .pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(conn);
            }
        }
    }
}

/// The router of the catalog service over the database at `db_path` (built with
/// [`catalog::build`]). The catalog's cache backend must be installed
/// ([`catalog::install_backend`]).
///
/// # Errors
/// When the database cannot be opened.
pub fn app(db_path: impl AsRef<FsPath>) -> Result<Router, CatalogError> {
    let path = db_path.as_ref().to_path_buf();
    // Open one connection now: a wrong path fails here, not at the first request.
    let first = catalog::open(&path)?;
    let pool = Arc::new(Pool {
        path,
        idle: Mutex::new(vec![first]),
    });
    Ok(Router::new()
        .route("/products/{id}", get(get_product))
        .route("/products/{id}/stock", post(post_stock))
        .route("/metrics", get(metrics))
        .with_state(pool))
}

/// Serves `app` on `listener` until the process ends (or an I/O error).
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

/// An error answer: a status and a JSON `{"error": "..."}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        (self.0, Json(Body { error: self.1 })).into_response()
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        let status = match e {
            CatalogError::NotFound(_) => StatusCode::NOT_FOUND,
            CatalogError::Invalid(_) => StatusCode::BAD_REQUEST,
            CatalogError::Db(_) | CatalogError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

/// A product id from the path: a positive integer, or a 400.
fn parse_id(id: &str) -> Result<u64, ApiError> {
    id.parse::<u64>().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("product id `{id}` is not a non-negative integer"),
        )
    })
}

/// Runs `f` on a blocking thread with a pooled connection.
async fn with_conn<T, F>(pool: Arc<Pool>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, CatalogError> + Send + 'static,
{
    let joined = tokio::task::spawn_blocking(move || {
        let conn = pool.get()?;
        f(&conn)
    })
    .await;
    match joined {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the query failed: {e}"),
        )),
    }
}

async fn get_product(State(pool): State<Arc<Pool>>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match with_conn(pool, move |conn| catalog::product_page(conn, id)).await {
        Ok(Some(page)) => Json(page).into_response(),
        Ok(None) => ApiError(StatusCode::NOT_FOUND, format!("no product {id}")).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn post_stock(
    State(pool): State<Arc<Pool>>,
    Path(id): Path<String>,
    body: Result<Json<StockUpdate>, JsonRejection>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let update = match body {
        Ok(Json(update)) => update,
        Err(rejection) => {
            return ApiError(
                StatusCode::BAD_REQUEST,
                format!(
                    "expected a JSON body {{\"store\": <id>, \"quantity\": <units>}}: {}",
                    rejection.body_text()
                ),
            )
            .into_response();
        }
    };
    let set = move |conn: &Connection| catalog::set_stock(conn, id, update.store, update.quantity);
    match with_conn(pool, set).await {
        Ok(change) => Json(change).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        cache_runtime::registry::prometheus_text(),
    )
        .into_response()
}
