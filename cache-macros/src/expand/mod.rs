//! The models, as tokens. Nothing here can fail: every check was done in `validate`.
//!
//! `expand` writes a `#[cached]` function (`shaped` the body of one that refreshes or classifies
//! its results, `settings` its cache's settings); `write` a `#[cache_put]`/`#[cache_evict]` one.

mod settings;
mod shaped;
pub(crate) mod write;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ReturnType, Type};

use crate::item::Func;
use crate::model::{KeyPlan, KeyType, Model, Param, Refresh, Returns};

/// The memoized function: the original signature, and a body that goes through the cache.
pub(crate) fn expand(m: &Model) -> TokenStream {
    let g = Gen::new(m);
    let krate = &g.krate;
    let func = &m.func;

    let names = Names::new();
    let Names {
        cache_static,
        cache,
        bypass,
        key,
        entry,
        load,
        result,
    } = &names;

    let (key_ty, value_ty, ret_ty, neg_ty) = (&g.key_ty, &g.value_ty, &g.ret_ty, &g.neg_ty);
    let shape = shaped::shape(&g);
    if let KeyPlan::Inferred { expr } = &m.key {
        return expand_inferred(&g, expr, &shape);
    }
    let const_checks = settings::const_checks(&g);

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
        KeyPlan::Borrowed(Param { ident, .. }) => {
            (quote!(), quote!(#ident), quote!(), quote!(#ident))
        }
        KeyPlan::Owned(Param { ident, .. }) => (
            quote!(),
            quote!(&#ident),
            quote!(let #key: #key_ty = ::core::clone::Clone::clone(&#ident);),
            quote!(&#key),
        ),
        plan => {
            let expr = key_expr(plan);
            (
                quote!(let #key: #key_ty = #expr;),
                quote!(&#key),
                quote!(),
                quote!(&#key),
            )
        }
    };

    // Calls whose bounds a bad key or value type breaks are spanned at the user's types, so that
    // every error lands there.
    let kspan = key_ty.span();
    let get_cache = quote!(#cache_static.get());
    let builder = settings::builder(&g);
    let (build_call, backend_check) = match &m.backend {
        None => (
            quote_spanned!(kspan=> #krate::__private::build::<#key_ty, #value_ty, #neg_ty>(#builder)),
            quote!(),
        ),
        Some(name) => {
            let build = if m.negative {
                quote_spanned!(kspan=> #krate::__private::build_remote_negative::<#key_ty, #value_ty, #neg_ty>)
            } else {
                quote_spanned!(kspan=> #krate::__private::build_remote::<#key_ty, #value_ty>)
            };
            (
                quote!(#build(#builder, #name)),
                quote_spanned!(name.span()=>
                    const _: () = #krate::__private::assert_remote_backends::<()>();
                ),
            )
        }
    };
    // The cache is built by a closure-free `fn` (a static's initializer) from builder calls.
    let build_fn = quote! {
        {
            fn __build() -> #krate::Cache<#key_ty, #value_ty, #neg_ty> {
                #build_call
            }
            __build
        }
    };
    let lookup_call = quote_spanned!(kspan=> #krate::__private::lookup(#cache, #lookup_ref));
    let load_call = load_call(&g, &shape, &quote!(#cache), &load_ref, load);

    let (loader_def, call_load) = body_closure(&g, load, result);
    // `if = ..`: a call whose condition is false skips the cache (as `uncached` does).
    let bypass_init = bypass_init(&g);
    let site = settings::site(&g);
    let static_def = quote! {
        static #cache_static: #krate::__private::FnCache<#key_ty, #value_ty, #neg_ty> =
            #krate::__private::FnCache::new(#site, #build_fn);
    };
    let companion = companion(&g, &static_def, cache_static);

    let shaped = m.refresh != Refresh::None || m.unless.is_some();
    let lookup_and_load = if shaped {
        shaped::body(
            &g,
            &names,
            &lookup_ref,
            &key_after,
            &load_ref,
            (&loader_def, &call_load),
        )
    } else {
        quote! {
            if !#bypass {
                if let #krate::__private::Some(#entry) = #lookup_call {
                    return #krate::__private::shape_hit::<#shape, _, _, _>(#entry);
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

    let mut out = rewrite(
        func,
        quote! {
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
        },
    );
    out.extend(companion);
    out
}

/// The generated locals and statics. They cannot clash with the user's names: they live at
/// `mixed_site` hygiene.
pub(super) struct Names {
    pub(super) cache_static: syn::Ident,
    pub(super) cache: syn::Ident,
    pub(super) bypass: syn::Ident,
    pub(super) key: syn::Ident,
    pub(super) entry: syn::Ident,
    pub(super) load: syn::Ident,
    pub(super) result: syn::Ident,
}

impl Names {
    fn new() -> Self {
        let span = Span::mixed_site();
        Names {
            cache_static: format_ident!("__CACHE", span = span),
            cache: format_ident!("__cache", span = span),
            bypass: format_ident!("__cache_bypass", span = span),
            key: format_ident!("__cache_key", span = span),
            entry: format_ident!("__cache_entry", span = span),
            load: format_ident!("__cache_load", span = span),
            result: format_ident!("__cache_result", span = span),
        }
    }
}

/// The model, and its paths and types as tokens.
pub(super) struct Gen<'a> {
    pub(super) m: &'a Model,
    /// The runtime's path.
    pub(super) krate: TokenStream,
    /// The key type, spanned at the user's tokens it comes from (`_` for an inferred key).
    pub(super) key_ty: TokenStream,
    /// The cached value type.
    pub(super) value_ty: TokenStream,
    /// The declared return type (`()` when none).
    pub(super) ret_ty: TokenStream,
    /// The cached negative result (`Infallible` without `negative_ttl`).
    pub(super) neg_ty: TokenStream,
}

impl<'a> Gen<'a> {
    fn new(m: &'a Model) -> Self {
        let krate = match &m.krate {
            Some(path) => path.to_token_stream(),
            None => quote!(::cache_runtime),
        };
        let ret_ty = ret_ty(&m.func);
        let span = ret_ty.span();
        let value_ty = match m.returns {
            Returns::Value => ret_ty.clone(),
            Returns::Result => {
                quote_spanned!(span=> <#ret_ty as #krate::__private::ResultParts>::Ok)
            }
            Returns::Option => {
                quote_spanned!(span=> <#ret_ty as #krate::__private::OptionParts>::Some)
            }
        };
        let neg_ty = match (m.returns, m.negative) {
            (Returns::Result, true) => {
                quote_spanned!(ret_ty.span()=> <#ret_ty as #krate::__private::ResultParts>::Err)
            }
            (Returns::Option, true) => quote!(()),
            _ => quote!(::core::convert::Infallible),
        };
        Gen {
            m,
            key_ty: key_ty(&m.key),
            krate,
            value_ty,
            ret_ty,
            neg_ty,
        }
    }
}

/// The declared return type (`()` when none).
pub(super) fn ret_ty(func: &Func) -> TokenStream {
    match &func.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, t) => t.to_token_stream(),
    }
}

/// The function as written around a new body: its attributes, visibility and signature.
pub(super) fn rewrite(func: &Func, body: TokenStream) -> TokenStream {
    let (attrs, vis, defaultness, sig) = (&func.attrs, &func.vis, &func.defaultness, &func.sig);
    quote! {
        #(#attrs)*
        #vis #defaultness #sig {
            #body
        }
    }
}

/// The owned form of a parameter's type: `&T` becomes `<T as ToOwned>::Owned`.
fn owned_ty(ty: &Type) -> TokenStream {
    match ty {
        Type::Reference(r) => {
            let inner = &r.elem;
            quote_spanned!(ty.span()=> <#inner as ::std::borrow::ToOwned>::Owned)
        }
        _ => ty.to_token_stream(),
    }
}

/// The owned value of a parameter, for a key.
fn owned_value(p: &Param) -> TokenStream {
    let ident = &p.ident;
    match p.ty {
        Type::Reference(_) => quote!(::std::borrow::ToOwned::to_owned(#ident)),
        _ => quote!(::core::clone::Clone::clone(&#ident)),
    }
}

/// The key's type.
fn key_ty(plan: &KeyPlan) -> TokenStream {
    match plan {
        KeyPlan::Borrowed(p) | KeyPlan::Owned(p) => owned_ty(&p.ty),
        KeyPlan::Tuple(ps) => {
            let tys = ps.iter().map(|p| owned_ty(&p.ty));
            quote!((#(#tys,)*))
        }
        KeyPlan::Expr { ty, .. } => match ty {
            KeyType::Given(t) => t.to_token_stream(),
            KeyType::String => quote!(::std::string::String),
            KeyType::OwnedOf(t) => owned_ty(t),
        },
        KeyPlan::Inferred { .. } => quote!(_),
    }
}

/// The key's value (one argument is the argument itself; other keys are computed before the
/// lookup).
fn key_expr(plan: &KeyPlan) -> TokenStream {
    match plan {
        KeyPlan::Tuple(ps) => {
            let vals = ps.iter().map(owned_value);
            quote!((#(#vals,)*))
        }
        KeyPlan::Expr { expr, .. } | KeyPlan::Inferred { expr } => expr.to_token_stream(),
        KeyPlan::Borrowed(p) | KeyPlan::Owned(p) => p.ident.to_token_stream(),
    }
}

/// `__cache_of_<fn>`: the function's cache, for `cache_put` and `cache_evict`. It shares the
/// function's cache (same `site`). Emitted where it can be: a method in a trait impl cannot
/// gain items, so a method with a `self` receiver gets one only when it has an explicit
/// visibility (which trait impl methods never have); an inferred key has no nameable type.
fn companion(g: &Gen<'_>, static_def: &TokenStream, cache_static: &syn::Ident) -> TokenStream {
    let m = g.m;
    let sig = &m.func.sig;
    let has_receiver = matches!(sig.inputs.first(), Some(syn::FnArg::Receiver(_)));
    let inherited = matches!(m.func.vis, syn::Visibility::Inherited);
    if matches!(m.key, KeyPlan::Inferred { .. }) || (has_receiver && inherited) {
        return quote!();
    }
    let (krate, vis) = (&g.krate, &m.func.vis);
    let (key_ty, value_ty, neg_ty) = (&g.key_ty, &g.value_ty, &g.neg_ty);
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
fn expand_inferred(g: &Gen<'_>, expr: &syn::Expr, shape: &TokenStream) -> TokenStream {
    let (m, krate) = (g.m, &g.krate);
    let Names {
        cache_static,
        cache,
        key,
        entry,
        load,
        result,
        ..
    } = &Names::new();
    let (value_ty, ret_ty, neg_ty) = (&g.value_ty, &g.ret_ty, &g.neg_ty);
    let const_checks = settings::const_checks(g);
    let configure = settings::configure(g);
    let bypass_init = bypass_init(g);
    let assert_value = quote_spanned!(ret_ty.span()=>
        const _: () = #krate::__private::assert_value::<#value_ty>();
    );
    let get = quote_spanned!(expr.span()=>
        #cache_static.get::<_, #value_ty, #neg_ty>(&#key, {
            fn __configure<K>(
                b: #krate::__private::CacheBuilder<K, #value_ty, #neg_ty>,
            ) -> #krate::__private::CacheBuilder<K, #value_ty, #neg_ty> {
                b #configure
            }
            __configure
        })
    );
    let (loader_def, call_load) = body_closure(g, load, result);
    let call_cached = load_call(g, shape, &quote!(#cache), &quote!(&#key), load);
    rewrite(
        &m.func,
        quote! {
            #assert_value
            #(#const_checks)*
            static #cache_static: #krate::__private::ErasedFnCache =
                #krate::__private::ErasedFnCache::new();
            let #key = #expr;
            #loader_def
            match #get {
                #krate::__private::Some(#cache) if !(#bypass_init) => {
                    if let #krate::__private::Some(#entry) = #krate::__private::lookup(#cache, &#key) {
                        return #krate::__private::shape_hit::<#shape, _, _, _>(#entry);
                    }
                    #call_cached
                }
                _ => #call_load,
            }
        },
    )
}

/// The load after a miss: the body's outcome, classified by the function's return shape,
/// through the runtime's miss path (its blocking or its async front).
fn load_call(
    g: &Gen<'_>,
    shape: &TokenStream,
    cache: &TokenStream,
    key_ref: &TokenStream,
    load: &syn::Ident,
) -> TokenStream {
    let (krate, value_ty, neg_ty) = (&g.krate, &g.value_ty, &g.neg_ty);
    let kspan = g.key_ty.span();
    let classify = quote!(#krate::__private::classify::<#shape, #value_ty, #neg_ty, _>);
    if g.m.func.sig.asyncness.is_some() {
        quote_spanned!(kspan=> #krate::__private::load_async(
            #shape,
            #cache,
            #key_ref,
            move || async move { #classify(#load().await, #krate::__private::None) },
        )
        .await)
    } else {
        quote_spanned!(kspan=> #krate::__private::load(
            #shape,
            #cache,
            #key_ref,
            move || #classify(#load(), #krate::__private::None),
        ))
    }
}

/// Whether a call skips the cache: inside `uncached`, or (`if = ..`) when its condition is false.
fn bypass_init(g: &Gen<'_>) -> TokenStream {
    let krate = &g.krate;
    match &g.m.condition {
        Some(c) => quote_spanned!(c.span()=>
            #krate::__private::bypassed() || !{ let __cond: bool = #c; __cond }
        ),
        None => quote!(#krate::__private::bypassed()),
    }
}

/// The loader: the user's body, moved verbatim into a closure (an async block for `async fn`),
/// and the call that runs it uncached.
fn body_closure(g: &Gen<'_>, load: &syn::Ident, result: &syn::Ident) -> (TokenStream, TokenStream) {
    let block = &g.m.func.block;
    let ret_ty = &g.ret_ty;
    if g.m.func.sig.asyncness.is_some() {
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
