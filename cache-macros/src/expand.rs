//! The model, as tokens. Nothing here can fail: every check was done in `validate`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::validate::{KeyPlan, Model, Refresh, Returns};

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
            quote_spanned!(kspan=> #krate::__private::build_hooked::<#key_ty, #value_ty, #neg_ty>),
            quote!(#krate::__private::None),
            quote!(),
        ),
        Some(name) => {
            let build = if m.negative {
                quote_spanned!(kspan=> #krate::__private::build_remote_negative_hooked::<#key_ty, #value_ty, #neg_ty>)
            } else {
                quote_spanned!(kspan=> #krate::__private::build_remote_hooked::<#key_ty, #value_ty>)
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
    // Settings that name the value type go in as a closure-free `fn` (a static's initializer).
    let hooks = match &m.ttl_fn {
        Some(f) => quote_spanned!(f.span()=> #krate::__private::Hooks::<#value_ty> {
            ttl_fn: #krate::__private::Some(#f),
        }),
        None => quote!(#krate::__private::Hooks::<#value_ty>::NONE),
    };
    let build_fn = quote! {
        {
            fn __build(
                s: &#krate::__private::Settings,
            ) -> #krate::Cache<#key_ty, #value_ty, #neg_ty> {
                #build_fn(s, #hooks)
            }
            __build
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
    // `if = ..`: a call whose condition is false skips the cache (as `uncached` does).
    let bypass_init = bypass_init(m);
    let static_def = quote! {
        static #cache_static: #krate::__private::FnCache<#key_ty, #value_ty, #neg_ty> =
            #krate::__private::FnCache::new(#settings, #build_fn);
    };
    let companion = companion(m, &static_def, &cache_static, &neg_ty);

    let shaped = m.refresh != Refresh::None || m.unless.is_some();
    let lookup_and_load = if shaped {
        shaped_body(
            m,
            &neg_ty,
            &ShapedIdents {
                cache: &cache,
                bypass: &bypass,
                key: &key,
                entry: &entry,
                load: &load,
            },
            &lookup_ref,
            &key_after,
            &load_ref,
            (&loader_def, &call_load),
        )
    } else {
        quote! {
            if !#bypass {
                if let #krate::__private::Some(#entry) = #lookup_call {
                    return #krate::__private::#hit(#entry);
                }
            }
            #key_after
            #loader_def
            if #bypass {
                return #call_load;
            }
            #load_call
        }
    };

    quote! {
        #(#attrs)*
        #vis #defaultness #sig {
            #assert_key
            #assert_value
            #assert_negative
            #backend_check
            #(#const_checks)*
            #static_def
            let #cache = #get_cache;
            let #bypass = #bypass_init;
            #key_before
            #lookup_and_load
        }
        #companion
    }
}

/// The generated local names the shaped body uses.
struct ShapedIdents<'a> {
    cache: &'a syn::Ident,
    bypass: &'a syn::Ident,
    key: &'a syn::Ident,
    entry: &'a syn::Ident,
    load: &'a syn::Ident,
}

/// The marker of the function's return shape in `__private::shape`.
fn shape(m: &Model) -> TokenStream {
    let krate = &m.krate;
    let name = match (m.returns, m.negative) {
        (Returns::Value, _) => "Plain",
        (Returns::Result, false) => "Res",
        (Returns::Result, true) => "ResNeg",
        (Returns::Option, false) => "Opt",
        (Returns::Option, true) => "OptNeg",
    };
    let name = format_ident!("{}", name);
    quote!(#krate::__private::shape::#name)
}

/// The lookup and load of a function with `stale`, `early_refresh` or `unless`: a hit may come
/// with the key's refresh to run (in the background, or here), and the loader's outcome is
/// classified (`unless`) before it is cached.
#[allow(clippy::too_many_arguments)]
fn shaped_body(
    m: &Model,
    neg_ty: &TokenStream,
    ids: &ShapedIdents<'_>,
    lookup_ref: &TokenStream,
    key_after: &TokenStream,
    load_ref: &TokenStream,
    (loader_def, call_load): (&TokenStream, &TokenStream),
) -> TokenStream {
    let krate = &m.krate;
    let value_ty = &m.value_ty;
    let kspan = m.key_ty.span();
    let ShapedIdents {
        cache,
        bypass,
        key,
        entry,
        load,
    } = *ids;
    let span = Span::mixed_site();
    let found = format_ident!("__cache_found", span = span);
    let loaded = format_ident!("__cache_loaded", span = span);
    let refresh = format_ident!("__cache_refresh", span = span);
    let unless_fn = format_ident!("__cache_unless", span = span);
    let shape = shape(m);
    let is_async = m.func.sig.asyncness.is_some();

    let unless = match &m.unless {
        Some(u) => quote_spanned!(u.span()=> {
            let #unless_fn: fn(&#value_ty) -> bool = #u;
            #krate::__private::Some(#unless_fn)
        }),
        None => quote!(#krate::__private::None),
    };
    let classify = quote!(#krate::__private::classify::<#shape, #value_ty, #neg_ty, _>);
    let loaded_def = if is_async {
        quote!(let #loaded = move || async move { #classify(#load().await, #unless) };)
    } else {
        quote!(let #loaded = move || #classify(#load(), #unless);)
    };
    // The key a refresh owns.
    let owned_key = match &m.key {
        KeyPlan::Borrowed { ident } => quote!(::std::borrow::ToOwned::to_owned(#ident)),
        _ => quote!(#key),
    };
    let on_refresh = match (m.refresh, is_async) {
        (Refresh::Background, false) => quote! {
            #cache.spawn_refresh(#refresh, #owned_key, #loaded);
            return #krate::__private::shape_hit::<#shape, _, _, _>(#entry);
        },
        (Refresh::Background, true) => quote! {
            #cache.spawn_refresh_async(#refresh, #owned_key, #loaded);
            return #krate::__private::shape_hit::<#shape, _, _, _>(#entry);
        },
        (_, false) => quote! {
            let #entry = #cache.refresh_inline(#refresh, #owned_key, #entry, #loaded);
            return #krate::__private::shape_hit::<#shape, _, _, _>(#entry);
        },
        (_, true) => quote! {
            let #entry = #cache.refresh_inline_async(#refresh, #owned_key, #entry, #loaded).await;
            return #krate::__private::shape_hit::<#shape, _, _, _>(#entry);
        },
    };
    let lookup = quote_spanned!(kspan=> #krate::__private::lookup_refresh(#cache, #lookup_ref));
    let load_call = if is_async {
        quote_spanned!(kspan=>
            #krate::__private::load_shaped_async::<#shape, _, _, _, _, _, _>(#cache, #load_ref, #loaded).await
        )
    } else {
        quote_spanned!(kspan=>
            #krate::__private::load_shaped::<#shape, _, _, _, _, _>(#cache, #load_ref, #loaded)
        )
    };
    quote! {
        let #found = if #bypass {
            #krate::__private::Lookup::Miss
        } else {
            #lookup
        };
        if let #krate::__private::Lookup::Hit(#entry) = #found {
            return #krate::__private::shape_hit::<#shape, _, _, _>(#entry);
        }
        #key_after
        #loader_def
        if #bypass {
            return #call_load;
        }
        #loaded_def
        if let #krate::__private::Lookup::Refresh(#entry, #refresh) = #found {
            #on_refresh
        }
        #load_call
    }
}

/// `__cache_of_<fn>`: the function's cache, for `cache_put` and `cache_evict`. It shares the
/// function's cache (same `site`). Emitted where it can be: a method in a trait impl cannot
/// gain items, so a method with a `self` receiver gets one only when it has an explicit
/// visibility (which trait impl methods never have); an inferred key has no nameable type.
fn companion(
    m: &Model,
    static_def: &TokenStream,
    cache_static: &syn::Ident,
    neg_ty: &TokenStream,
) -> TokenStream {
    let sig = &m.func.sig;
    let has_receiver = matches!(sig.inputs.first(), Some(syn::FnArg::Receiver(_)));
    let inherited = matches!(m.func.vis, syn::Visibility::Inherited);
    if matches!(m.key, KeyPlan::Inferred { .. }) || (has_receiver && inherited) {
        return quote!();
    }
    let krate = &m.krate;
    let vis = &m.func.vis;
    let (key_ty, value_ty) = (&m.key_ty, &m.value_ty);
    let name = format_ident!(
        "__cache_of_{}",
        sig.ident.to_string().trim_start_matches("r#")
    );
    let doc = format!(
        "The cache of `{}` (for `cache_put` and `cache_evict`).",
        sig.ident
    );
    quote! {
        #[doc = #doc]
        #[doc(hidden)]
        #[allow(dead_code, non_snake_case)]
        #[must_use]
        #[inline]
        #vis fn #name() -> &'static #krate::Cache<#key_ty, #value_ty, #neg_ty> {
            #static_def
            #cache_static.get()
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
    let bypass_init = bypass_init(m);
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
                #krate::__private::Some(#cache) if !(#bypass_init) => {
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

/// Whether a call skips the cache: inside `uncached`, or (`if = ..`) when its condition is false.
fn bypass_init(m: &Model) -> TokenStream {
    let krate = &m.krate;
    match &m.condition {
        Some(c) => quote_spanned!(c.span()=>
            #krate::__private::bypassed() || !{ let __cond: bool = #c; __cond }
        ),
        None => quote!(#krate::__private::bypassed()),
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
    let (stale, early_refresh) = (&s.stale, &s.early_refresh);
    // The site also names the function and hashes its tokens: functions that one `macro_rules!`
    // invocation stamps out share a file, line and column, and must not share a cache.
    let fingerprint = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        m.func.sig.to_token_stream().to_string().hash(&mut h);
        m.func.block.to_token_stream().to_string().hash(&mut h);
        format!("{}#{:016x}", m.func.sig.ident, h.finish())
    };
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
            site: ::core::concat!(::core::file!(), ":", ::core::line!(), ":", ::core::column!(), ":", #fingerprint),
            stale: #stale,
            early_refresh: #early_refresh,
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
