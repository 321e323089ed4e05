//! Test-suite package.
//!
//! Besides the user-level tests and examples, it holds the code the catalog example, the
//! service example and their tests share: [`catalog`] (a product catalog on SQLite, read through
//! `#[cached]` functions) and [`service`] (the catalog over HTTP, with axum).

pub mod catalog;
pub mod service;
