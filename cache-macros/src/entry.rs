//! What each attribute does, step by step: parse (`args`, `attr`, `item`), validate into a model
//! (`validate`, errors collected in a `Ctxt`), expand the model (`expand`). On any error the
//! function is emitted unchanged beside every error, so that one mistake does not cascade.

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::args::{Args, WriteArgs};
use crate::attr::CachedArgs;
use crate::ctxt::{Ctxt, beside};
use crate::model::Kind;
use crate::{expand, item, validate};

/// `#[cached(args)] input`.
pub(crate) fn cached(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let args = match syn::parse2::<Args>(args) {
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
    let fallback = func.to_token_stream();
    let Some(args) = args else {
        return beside(fallback, cx);
    };
    let args = CachedArgs::from_args(&mut cx, &args);
    match validate::validate(&mut cx, &args, func) {
        Some(model) if !cx.has_errors() => expand::expand(&model),
        _ => beside(fallback, cx),
    }
}

/// `#[cache_put(args)] input` or `#[cache_evict(args)] input`.
pub(crate) fn write(kind: Kind, args: TokenStream, input: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let attr = kind.name();
    let func = match item::parse_func(&mut cx, input, |what| {
        format!("`#[{attr}]` goes on a function with a body, not {what}")
    }) {
        Ok(f) => f,
        Err(out) => return out,
    };
    let fallback = func.to_token_stream();
    let args = match syn::parse2::<WriteArgs>(args) {
        Ok(a) => a,
        Err(e) => {
            cx.push(e);
            return beside(fallback, cx);
        }
    };
    match validate::write::validate(&mut cx, kind, &args, func) {
        Some(model) if !cx.has_errors() => expand::write::expand(&model),
        _ => beside(fallback, cx),
    }
}
