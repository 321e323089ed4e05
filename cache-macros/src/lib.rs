//! The `#[cached]`, `#[cache_put]` and `#[cache_evict]` attributes. Use them through
//! `cache-runtime`, which re-exports them and provides everything the generated code calls; see
//! that crate's documentation.
//!
//! The work is split as in `thiserror` and `serde_derive`: `args` and `item` parse, `validate`
//! checks everything and collects every error (through `ctxt`) into a model, and `expand` turns
//! the model into tokens and cannot fail; `write` does the same for `cache_put`/`cache_evict`.

mod args;
mod ctxt;
mod expand;
mod item;
mod symbol;
mod validate;
mod write;

use proc_macro::TokenStream;
use quote::ToTokens;

/// Memoizes a function or method through `cache-runtime`. See the `cache_runtime` crate for the
/// arguments and examples.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, input: TokenStream) -> TokenStream {
    cached_impl(args.into(), input.into()).into()
}

/// Write-through: after the function returns successfully (`Ok`, `Some`, or any value), stores
/// its value in the named `#[cached]` function's cache under `key`. See the `cache_runtime`
/// crate for examples.
#[proc_macro_attribute]
pub fn cache_put(args: TokenStream, input: TokenStream) -> TokenStream {
    write::expand(write::Kind::Put, args.into(), input.into()).into()
}

/// Invalidation on write: after the function returns successfully, removes `key` (or, with
/// `all`, every entry) from the named `#[cached]` function's cache. See the `cache_runtime`
/// crate for examples.
#[proc_macro_attribute]
pub fn cache_evict(args: TokenStream, input: TokenStream) -> TokenStream {
    write::expand(write::Kind::Evict, args.into(), input.into()).into()
}

fn cached_impl(
    args: proc_macro2::TokenStream,
    input: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let mut cx = ctxt::Ctxt::default();
    let parsed_args = match syn::parse2::<args::Args>(args) {
        Ok(a) => Some(a),
        Err(e) => {
            cx.push(e);
            None
        }
    };
    let func = match item::parse_func(&mut cx, input, |what| {
        format!("`#[cached]` memoizes functions and methods with a body, not {what}")
    }) {
        Ok(f) => f,
        Err(out) => return out,
    };
    let Some(parsed_args) = parsed_args else {
        // Emit the function unchanged beside the error, so that one mistake does not cascade.
        let mut out = func.to_token_stream();
        out.extend(cx.into_compile_errors());
        return out;
    };
    let fallback = func.to_token_stream();
    match validate::validate(&mut cx, &parsed_args, func) {
        Some(model) if !cx.has_errors() => expand::expand(&model),
        _ => {
            let mut out = fallback;
            out.extend(cx.into_compile_errors());
            out
        }
    }
}
