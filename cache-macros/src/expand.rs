//! The model, as tokens. Nothing here can fail: every check was done in `validate`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::validate::{KeyPlan, Model, Returns};

/// The memoized function: the original signature, and a body that goes through the cache.
pub(crate) fn expand(m: &Model) -> TokenStream {
    let krate = &m.krate;
    let func = &m.func;
    let attrs = &func.attrs;
    let vis = &func.vis;
    let defaultness = &func.defaultness;
    let sig = &func.sig;
    let is_async = sig.asyncness.is_some();

    // Generated names cannot clash with the user's: they live at `mixed_site` hygiene.
    let span = Span::mixed_site();
    let cache_static = format_ident!("__CACHE", span = span);
    let cache = format_ident!("__cache", span = span);
    let bypass = format_ident!("__cache_bypass", span = span);
    let key = format_ident!("__cache_key", span = span);
    let entry = format_ident!("__cache_entry", span = span);
    let load = format_ident!("__cache_load", span = span);
    let result = format_ident!("__cache_result", span = span);

    let key_ty = &m.key_ty;
    let value_ty = &m.value_ty;
    let ret_ty = &m.ret_ty;
    let neg_ty = match (m.returns, m.negative) {
        (Returns::Result, true) => {
            quote_spanned!(ret_ty.span()=> <#ret_ty as #krate::__private::ResultParts>::Err)
        }
        (Returns::Option, true) => quote!(()),
        _ => quote!(::core::convert::Infallible),
    };
    let (hit, loader) = match (m.returns, m.negative) {
        (Returns::Value, _) => ("hit_value", "load_value"),
        (Returns::Result, false) => ("hit_result", "load_result"),
        (Returns::Result, true) => ("hit_result_negative", "load_result_negative"),
        (Returns::Option, false) => ("hit_option", "load_option"),
        (Returns::Option, true) => ("hit_option_negative", "load_option_negative"),
    };
    let hit = format_ident!("{}", hit);
    let loader = if is_async {
        format_ident!("{}_async", loader)
    } else {
        format_ident!("{}", loader)
    };

    let const_checks = &m.settings.const_checks;

    if let KeyPlan::Inferred { expr } = &m.key {
        return expand_inferred(m, expr, &neg_ty, &hit, &loader);
    }

    // Bound checks at the user's own types, so that a missing `Hash` or `Clone` is reported there.
    let assert_key = quote_spanned!(key_ty.span()=>
        const _: () = #krate::__private::assert_key::<#key_ty>();
    );
    let assert_value = quote_spanned!(ret_ty.span()=>
        const _: () = #krate::__private::assert_value::<#value_ty>();
    );
    // A cached negative result (the `Err` type) must be clonable too: checked at the return type.
    let assert_negative = if m.negative {
        quote_spanned!(ret_ty.span()=>
            const _: () = #krate::__private::assert_value::<#neg_ty>();
        )
    } else {
        quote!()
    };

    // The lookup borrows the arguments; the key is owned (on a miss) before the body, which may
    // move them, is captured.
    let (key_before, lookup_ref, key_after, load_ref) = match &m.key {
        KeyPlan::Borrowed { ident } => (quote!(), quote!(#ident), quote!(), quote!(#ident)),
        KeyPlan::Owned { ident } => (
            quote!(),
            quote!(&#ident),
            quote!(let #key: #key_ty = ::core::clone::Clone::clone(&#ident);),
            quote!(&#key),
        ),
        KeyPlan::Computed { expr } | KeyPlan::Inferred { expr } => (
            quote!(let #key: #key_ty = #expr;),
            quote!(&#key),
            quote!(),
            quote!(&#key),
        ),
    };

    // Calls whose bounds a bad key or value type breaks are spanned at the user's types, so that
    // every error lands there.
    let kspan = key_ty.span();
    let get_cache = quote!(#cache_static.get());
    let (build_fn, backend_setting, backend_check) = match &m.backend {
        None => (
            quote_spanned!(kspan=> #krate::__private::build::<#key_ty, #value_ty, #neg_ty>),
            quote!(#krate::__private::None),
            quote!(),
        ),
        Some(name) => {
            let build = if m.negative {
                quote_spanned!(kspan=> #krate::__private::build_remote_negative::<#key_ty, #value_ty, #neg_ty>)
            } else {
                quote_spanned!(kspan=> #krate::__private::build_remote::<#key_ty, #value_ty>)
            };
            (
                build,
                quote!(#krate::__private::Some(#name)),
                quote_spanned!(name.span()=>
                    const _: () = #krate::__private::assert_remote_backends::<()>();
                ),
            )
        }
    };
    let lookup_call = quote_spanned!(kspan=> #krate::__private::lookup(#cache, #lookup_ref));
    let load_call = quote_spanned!(kspan=> #krate::__private::#loader(#cache, #load_ref, #load));

    let settings = settings(m, &backend_setting);
    let (loader_def, call_load) = body_closure(m, &load, &result);
    let load_call = if is_async {
        quote!(#load_call.await)
    } else {
        load_call
    };
    let body = quote! {
        #loader_def
        if #bypass {
            return #call_load;
        }
        #load_call
    };

    quote! {
        #(#attrs)*
        #vis #defaultness #sig {
            #assert_key
            #assert_value
            #assert_negative
            #backend_check
            #(#const_checks)*
            static #cache_static: #krate::__private::FnCache<#key_ty, #value_ty, #neg_ty> =
                #krate::__private::FnCache::new(#settings, #build_fn);
            let #cache = #get_cache;
            let #bypass = #krate::__private::bypassed();
            #key_before
            if !#bypass {
                if let #krate::__private::Some(#entry) = #lookup_call {
                    return #krate::__private::#hit(#entry);
                }
            }
            #key_after
            #body
        }
    }
}

/// A function whose key type only the compiler knows: the key is evaluated first, and its type
/// picks the cache out of a type-erased static.
fn expand_inferred(
    m: &Model,
    expr: &TokenStream,
    neg_ty: &TokenStream,
    hit: &syn::Ident,
    loader: &syn::Ident,
) -> TokenStream {
    let krate = &m.krate;
    let func = &m.func;
    let (attrs, vis, defaultness, sig) = (&func.attrs, &func.vis, &func.defaultness, &func.sig);
    let span = Span::mixed_site();
    let cache_static = format_ident!("__CACHE", span = span);
    let cache = format_ident!("__cache", span = span);
    let key = format_ident!("__cache_key", span = span);
    let entry = format_ident!("__cache_entry", span = span);
    let load = format_ident!("__cache_load", span = span);
    let result = format_ident!("__cache_result", span = span);
    let value_ty = &m.value_ty;
    let ret_ty = &m.ret_ty;
    let const_checks = &m.settings.const_checks;
    let settings = settings(m, &quote!(#krate::__private::None));
    let assert_value = quote_spanned!(ret_ty.span()=>
        const _: () = #krate::__private::assert_value::<#value_ty>();
    );
    let get = quote_spanned!(expr.span()=>
        #cache_static.get::<_, #value_ty, #neg_ty>(&#key)
    );
    let (loader_def, call_load) = body_closure(m, &load, &result);
    let call_cached = if sig.asyncness.is_some() {
        quote!(#krate::__private::#loader(#cache, &#key, #load).await)
    } else {
        quote!(#krate::__private::#loader(#cache, &#key, #load))
    };
    quote! {
        #(#attrs)*
        #vis #defaultness #sig {
            #assert_value
            #(#const_checks)*
            static #cache_static: #krate::__private::ErasedFnCache =
                #krate::__private::ErasedFnCache::new(#settings);
            let #key = #expr;
            #loader_def
            match #get {
                #krate::__private::Some(#cache) if !#krate::__private::bypassed() => {
                    if let #krate::__private::Some(#entry) = #krate::__private::lookup(#cache, &#key) {
                        return #krate::__private::#hit(#entry);
                    }
                    #call_cached
                }
                _ => #call_load,
            }
        }
    }
}

/// The `Settings` literal of the function's cache.
fn settings(m: &Model, backend: &TokenStream) -> TokenStream {
    let krate = &m.krate;
    let lease = match &m.lease {
        Some(d) => quote!(#krate::__private::Some(#d)),
        None => quote!(#krate::__private::None),
    };
    let s = &m.settings;
    let (name, capacity, unbounded, policy, ttl, negative_ttl, jitter) = (
        &s.name,
        &s.capacity,
        s.unbounded,
        &s.policy,
        &s.ttl,
        &s.negative_ttl,
        &s.jitter,
    );
    quote! {
        #krate::__private::Settings {
            name: #name,
            capacity: #capacity,
            unbounded: #unbounded,
            policy: #policy,
            ttl: #ttl,
            negative_ttl: #negative_ttl,
            jitter: #jitter,
            backend: #backend,
            lease: #lease,
        }
    }
}

/// The loader: the user's body, moved verbatim into a closure (an async block for `async fn`),
/// and the call that runs it uncached.
fn body_closure(m: &Model, load: &syn::Ident, result: &syn::Ident) -> (TokenStream, TokenStream) {
    let block = &m.func.block;
    let ret_ty = &m.ret_ty;
    if m.func.sig.asyncness.is_some() {
        (
            quote! {
                #[allow(unused_mut)]
                let mut #load = move || async move {
                    let #result: #ret_ty = async move #block.await;
                    #result
                };
            },
            quote!(#load().await),
        )
    } else {
        (
            quote! {
                // `mut`: a body that mutates a `mut` argument makes the closure `FnMut`.
                #[allow(unused_mut)]
                let mut #load = move || -> #ret_ty #block;
            },
            quote!(#load()),
        )
    }
}
