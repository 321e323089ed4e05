//! The `#[cached]` attribute. Use it through `cache-runtime`, which re-exports it and provides
//! everything the generated code calls; see that crate's documentation.
//!
//! The work is split as in `thiserror` and `serde_derive`: [`args`] and [`item`] parse,
//! [`validate`] checks everything and collects every error (through [`ctxt`]) into a model,
//! and [`expand`] turns the model into tokens and cannot fail.

mod args;
mod ctxt;
mod expand;
mod item;
mod symbol;
mod validate;

use proc_macro::TokenStream;
use quote::ToTokens;

/// Memoizes a function or method through `cache-runtime`. See the `cache_runtime` crate for the
/// arguments and examples.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, input: TokenStream) -> TokenStream {
    cached_impl(args.into(), input.into()).into()
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
    let func = match syn::parse2::<item::Input>(input.clone()) {
        Ok(item::Input::Func(f)) => *f,
        Ok(item::Input::Other(tokens, what)) => {
            cx.error_spanned_by(
                &tokens,
                format!("`#[cached]` memoizes functions and methods with a body, not {what}"),
            );
            let mut out = tokens;
            out.extend(cx.into_compile_errors());
            return out;
        }
        Err(e) => {
            cx.push(e);
            let mut out = input;
            out.extend(cx.into_compile_errors());
            return out;
        }
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
