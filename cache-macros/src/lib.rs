//! The `#[cached]`, `#[cache_put]` and `#[cache_evict]` attributes. Use them through
//! `cache-runtime`, which re-exports them and provides everything the generated code calls; see
//! that crate's documentation.
//!
//! The work is split as in `thiserror` and `serde_derive`, each step in its own modules:
//!
//! - parse: `args` (the arguments' syntax), `attr` (what `#[cached]`'s values mean, each with
//!   its tokens), `item` (the function);
//! - validate: `validate` checks everything, collecting every error in a `ctxt::Ctxt`, and
//!   builds a `model` of what to generate (`validate::write` for `cache_put`/`cache_evict`);
//! - expand: `expand` turns a model into tokens and cannot fail (`expand::write` likewise).
//!
//! `entry` runs the steps; the policy names come from `cache-policy`, the runtime's own table.

mod args;
mod attr;
mod ctxt;
mod entry;
mod expand;
mod item;
mod model;
mod symbol;
mod validate;

use proc_macro::TokenStream;

/// Memoizes a function or method through `cache-runtime`. See the `cache_runtime` crate for the
/// arguments and examples.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, input: TokenStream) -> TokenStream {
    entry::cached(args.into(), input.into()).into()
}

/// Write-through: after the function returns successfully (`Ok`, `Some`, or any value), stores
/// its value in the named `#[cached]` function's cache under `key`. See the `cache_runtime`
/// crate for examples.
#[proc_macro_attribute]
pub fn cache_put(args: TokenStream, input: TokenStream) -> TokenStream {
    entry::write(model::Kind::Put, args.into(), input.into()).into()
}

/// Invalidation on write: after the function returns successfully, removes `key` (or, with
/// `all`, every entry) from the named `#[cached]` function's cache. See the `cache_runtime`
/// crate for examples.
#[proc_macro_attribute]
pub fn cache_evict(args: TokenStream, input: TokenStream) -> TokenStream {
    entry::write(model::Kind::Evict, args.into(), input.into()).into()
}
