//! `#[cached(batch)]`: the function's body becomes the loader of `Cache::get_or_load_many`, called
//! with the keys the cache misses, handed to it as the argument it declares; the keys it found
//! are cached one by one (those it did not find as "not found" with `negative_ttl`), and the
//! call returns the map of every key found, from the cache or from the body.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::{Gen, Names, asserts, companion, configured, fn_cache, rewrite, settings, statics};
use crate::model::{Batch, BatchArg};

/// The memoized batch function (and its `__cache_of_<fn>` companion).
pub(super) fn expand(g: &Gen<'_>, b: &Batch, shape: &TokenStream) -> TokenStream {
    let (m, krate) = (g.m, &g.krate);
    let Names {
        cache_static,
        cache_local,
        cache,
        load,
        result,
        ..
    } = &Names::new();
    let span = Span::mixed_site();
    let missing = format_ident!("__cache_missing", span = span);
    let keys = format_ident!("__cache_keys", span = span);
    let body = format_ident!("__cache_body", span = span);
    let (key_ty, ret_ty, block) = (&g.key_ty, &g.ret_ty, &m.func.block);

    let asserts = asserts(g);
    let const_checks = settings::const_checks(g);
    let (backend_check, configure_fn) = configured(g, shape);
    let static_def = statics(g, cache_static, cache_local);
    let get_cache = fn_cache(g, cache_static, cache_local, &configure_fn);
    let companion = companion(g, &asserts, &static_def, &get_cache);

    // The keys asked for, owned, at the argument's type (an element that is not the map's key
    // type is reported there).
    let (ident, pat, ty) = (&b.ident, &b.pat, &b.ty);
    // At the argument's type: a key of another type than the map's is reported there.
    let k = format_ident!("__cache_k", span = ty.span());
    let owned = match &b.arg {
        BatchArg::Owned => {
            quote_spanned!(ty.span()=> ::core::iter::IntoIterator::into_iter(#ident))
        }
        BatchArg::Slice | BatchArg::Ref(_) => quote_spanned!(ty.span()=>
            ::core::iter::Iterator::cloned(::core::iter::IntoIterator::into_iter(#ident))
        ),
    };
    let keys_of = quote_spanned!(ty.span()=>
        ::core::iter::Iterator::map(#owned, |#k| -> #key_ty { #k })
    );
    let keys_let = quote_spanned!(ty.span()=> let #keys = #keys_of;);
    // The missing keys, as the argument the body declares.
    let rebind = match &b.arg {
        BatchArg::Owned => quote_spanned!(ty.span()=>
            let #pat: #ty = ::core::iter::FromIterator::from_iter(#missing);
        ),
        BatchArg::Slice => quote_spanned!(ty.span()=>
            let #pat: #ty = &#missing[..];
        ),
        BatchArg::Ref(c) => {
            let owned = format_ident!("__cache_owned", span = span);
            quote_spanned!(ty.span()=>
                let #owned: #c = ::core::iter::FromIterator::from_iter(#missing);
                let #pat: #ty = &#owned;
            )
        }
    };
    let (found, answer) = if b.fallible {
        (quote!(batch_found_result), quote!(batch_answer_result))
    } else {
        (quote!(batch_found), quote!(batch_answer))
    };
    let call = if m.func.sig.asyncness.is_some() {
        quote! {
            let #load = |#missing: ::std::vec::Vec<#key_ty>| async move {
                #rebind
                let #result: #ret_ty = async move #block.await;
                #krate::__private::#found(#result)
            };
            #krate::__private::#answer(#cache.get_or_load_many_async(#keys, #load).await)
        }
    } else {
        quote! {
            let #load = |#missing: ::std::vec::Vec<#key_ty>| {
                #rebind
                #[allow(unused_mut, clippy::redundant_closure_call)]
                let mut #body = move || -> #ret_ty #block;
                let #result: #ret_ty = #body();
                #krate::__private::#found(#result)
            };
            #krate::__private::#answer(#cache.get_or_load_many(#keys, #load))
        }
    };
    // The argument is only read out here: a `mut` it carries belongs to the body's binding.
    let mut func = m.func.clone();
    for arg in &mut func.sig.inputs {
        if let syn::FnArg::Typed(pt) = arg
            && let syn::Pat::Ident(pi) = &mut *pt.pat
        {
            pi.mutability = None;
        }
    }
    let mut out = rewrite(
        &func,
        quote! {
            #backend_check
            #(#const_checks)*
            #asserts
            #static_def
            let #cache = #get_cache;
            #keys_let
            #call
        },
    );
    out.extend(companion);
    out
}
