//! The models, as tokens. Nothing here can fail: every check was done in `validate`.
//!
//! `expand` writes a `#[cached]` function (`shaped` the body of one that refreshes or classifies
//! its results, `settings` its cache's settings); `write` a `#[cache_put]`/`#[cache_evict]` one.

mod batch;
mod schedule;
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
        cache_local,
        cache,
        bypass,
        key,
        entry,
        load,
        result,
    } = &names;

    let (key_ty, value_ty, neg_ty) = (&g.key_ty, &g.value_ty, &g.neg_ty);
    let shape = shaped::shape(&g);
    if let Some(b) = &m.batch {
        return batch::expand(&g, b, &shape);
    }
    if let KeyPlan::Inferred { expr } = &m.key {
        return expand_inferred(&g, expr, &shape);
    }
    let const_checks = settings::const_checks(&g);

    // Bound checks at the user's own types, so that a missing `Hash` or `Clone` is reported there,
    // first. They are statements of the function (and of its companion, with the same tokens):
    // the compiler reports a failed bound once per span, and identical errors once, so the
    // runtime calls below, whose types are spelled at the same tokens, add no second error.
    let asserts = asserts(&g);

    // The lookup borrows the arguments; the key is owned (on a miss) before the body, which may
    // move them, is captured.
    let (key_before, lookup_ref, key_after, load_ref) = match &m.key {
        KeyPlan::Borrowed(Param { ident, .. }) => {
            (quote!(), quote!(#ident), quote!(), quote!(#ident))
        }
        KeyPlan::Owned(Param { ident, .. }) => (
            quote!(),
            quote!(&#ident),
            // At the key type: a key that is not `Clone` is reported there, once.
            quote_spanned!(key_ty.span()=>
                let #key: #key_ty = #krate::__private::owned_key::<#key_ty>(&#ident);
            ),
            quote!(&#key),
        ),
        plan => {
            let expr = key_expr(&g, plan);
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
    let q_ty = &g.q_ty;
    let (backend_check, configure_fn) = configured(&g, &shape);
    let lookup_call = quote_spanned!(kspan=>
        #krate::__private::lookup::<#key_ty, #value_ty, #neg_ty, #q_ty>(#cache, #lookup_ref)
    );
    let load_call = load_call(&g, &shape, &quote!(#cache), &load_ref, load);

    let (loader_def, call_load) = body_closure(&g, load, result);
    // `if = ..`: a call whose condition is false skips the cache (as `uncached` does).
    let bypass_init = bypass_init(&g);
    let static_def = statics(&g, cache_static, cache_local);
    let get_cache = fn_cache(&g, cache_static, cache_local, &configure_fn);
    let companion = companion(&g, &asserts, &static_def, &get_cache);

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

    let body = quote! {
        #asserts
        #static_def
        let #cache = #get_cache;
        let #bypass = #bypass_init;
        #key_before
        #lookup_and_load
    };
    // The companion's copy leaves out the compile-time checks: each error is reported once.
    let refresh = refresh_companion(&g, &body);
    let mut out = rewrite(
        func,
        quote! {
            #backend_check
            #(#const_checks)*
            #body
        },
    );
    out.extend(companion);
    out.extend(refresh);
    out
}

/// The cache's settings as a closure-free `fn` over its builder (the remote tier included), and
/// the link-time registration of its backend (with `backend = ".."`).
fn configured(g: &Gen<'_>, shape: &TokenStream) -> (TokenStream, TokenStream) {
    let (m, krate) = (g.m, &g.krate);
    let (key_ty, value_ty, neg_ty) = (&g.key_ty, &g.value_ty, &g.neg_ty);
    let configure = settings::configure(g);
    let builder = format_ident!("__cache_builder", span = Span::mixed_site());
    let (configure, backend_check) = match &m.backend {
        None => (quote!(#builder #configure), quote!()),
        Some(name) => {
            // The tier is added through `__private::Call`, which reports nothing of its own:
            // the checks at the user's tokens report a key or value that cannot be encoded.
            // A batch's cache has negative entries (`()`, "not found") whatever its settings.
            let method = if m.negative || m.batch.is_some() {
                quote!(remote_negative)
            } else {
                quote!(remote)
            };
            let add = dispatched(
                g,
                &call_types(g, shape),
                &["RemoteChecked", "RemoteNegativeChecked", "RemoteUnchecked"],
                quote!(#method(#builder, #name)),
            );
            (quote!(let #builder = #builder #configure; #add), {
                // Registered at link time, for `config::verify`.
                let function = settings::name(g);
                quote_spanned!(name.span()=>
                    const _: () = #krate::__private::assert_remote_backends::<()>();
                    #krate::__private::inventory::submit! {
                        #krate::__private::BackendUse { function: #function, backend: #name }
                    }
                )
            })
        }
    };
    // The settings reach the cache through a closure-free `fn`: builder calls without bounds,
    // so that it adds no error of its own.
    let configure_fn = quote! {
        {
            fn __configure(
                #builder: #krate::__private::CacheBuilder<#key_ty, #value_ty, #neg_ty>,
            ) -> #krate::__private::CacheBuilder<#key_ty, #value_ty, #neg_ty> {
                #configure
            }
            __configure
        }
    };
    (backend_check, configure_fn)
}

/// The statics where the function's cache is: its site, and each thread's reference to it. No
/// static's type names the key or value types, so that nothing but the bound checks at the
/// user's tokens can report a type that is not `Send` or `Sync`.
fn statics(g: &Gen<'_>, cache_static: &syn::Ident, cache_local: &syn::Ident) -> TokenStream {
    let (krate, key_ty, value_ty, neg_ty) = (&g.krate, &g.key_ty, &g.value_ty, &g.neg_ty);
    let site = settings::site(g);
    quote! {
        static #cache_static: #krate::__private::FnSite = #krate::__private::FnSite::new(#site);
        #krate::__private::thread_local! {
            static #cache_local: #krate::__private::FnLocal<#key_ty, #value_ty, #neg_ty> =
                const { #krate::__private::FnLocal::new(#krate::__private::None) };
        }
    }
}

/// `<fn>_refresh`: the function with the same signature, whose call reloads the entry of its
/// arguments whatever its state (a forced refresh), joining a load already in flight. It runs
/// the same body in a forced-refresh frame (`__private::reload`), whose first lookup misses and
/// whose load reloads: the original function cannot be named from here (a free function and an
/// associated one are called differently), so the body is the expansion's own. Emitted where
/// `__cache_of_<fn>` is (see [`companion`]); elsewhere `cache_runtime::reload` does the same.
fn refresh_companion(g: &Gen<'_>, body: &TokenStream) -> TokenStream {
    let m = g.m;
    let func = &m.func;
    let has_receiver = matches!(func.sig.inputs.first(), Some(syn::FnArg::Receiver(_)));
    let inherited = matches!(func.vis, syn::Visibility::Inherited);
    if has_receiver && inherited {
        return quote!();
    }
    let krate = &g.krate;
    let name = &func.sig.ident;
    let mut sig = func.sig.clone();
    sig.ident = format_ident!(
        "{}_refresh",
        name.to_string().trim_start_matches("r#"),
        span = name.span()
    );
    let doc = format!(
        "Reloads the cached result of [`{name}`] for these arguments, whatever its state \
         (a forced refresh), and returns it: a load of the same key already in flight is \
         joined instead of started again; an outcome that is not cached (an error, a \
         `None` without `negative_ttl`) is returned and leaves the entry as it was."
    );
    let attrs = func.attrs.iter().filter(|a| !a.path().is_ident("doc"));
    let (vis, defaultness) = (&func.vis, &func.defaultness);
    let wrapped = if sig.asyncness.is_some() {
        quote!(#krate::__private::reload_async(async move { #body }).await)
    } else {
        quote!(#krate::__private::reload(move || { #body }))
    };
    quote! {
        #(#attrs)*
        #[doc = #doc]
        #[allow(dead_code, clippy::redundant_closure_call)]
        #vis #defaultness #sig {
            #wrapped
        }
    }
}

/// The generated locals and statics. They cannot clash with the user's names: they live at
/// `mixed_site` hygiene.
pub(super) struct Names {
    pub(super) cache_static: syn::Ident,
    pub(super) cache_local: syn::Ident,
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
            cache_local: format_ident!("__CACHE_LOCAL", span = span),
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
    /// The type a lookup borrows the key as: the key type, or `T` of a `&T` argument (spanned
    /// as the key type, so that both report a missing trait at one place).
    pub(super) q_ty: TokenStream,
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
        // The parts of a `Result` or `Option`, read through `ResultParts` / `OptionParts` (so
        // that aliases work), and spanned at the part the user wrote where the return type
        // spells it (`Result<T, E>`: `T` and `E`), else at the whole return type.
        let (value_at, err_at) = part_spans(&m.func, m.returns);
        let value_ty = match m.returns {
            Returns::Value => ret_ty.clone(),
            Returns::Result => spanning(
                quote!(<#ret_ty as #krate::__private::ResultParts>::),
                quote!(Ok),
                value_at,
            ),
            Returns::Option => spanning(
                quote!(<#ret_ty as #krate::__private::OptionParts>::),
                quote!(Some),
                value_at,
            ),
        };
        let neg_ty = match (m.returns, m.negative) {
            (Returns::Result, true) => spanning(
                quote!(<#ret_ty as #krate::__private::ResultParts>::),
                quote!(Err),
                err_at,
            ),
            (Returns::Option, true) => quote!(()),
            _ => quote!(::core::convert::Infallible),
        };
        let key_ty = key_ty(m);
        if let Some(b) = &m.batch {
            // A batch's cache: each key of the collection to its value, "not found" (`()`)
            // cached with `negative_ttl`; the types as the returned map spells them.
            let key_ty = b.key_ty.to_token_stream();
            return Gen {
                m,
                q_ty: key_ty.clone(),
                key_ty,
                krate,
                value_ty: b.value_ty.to_token_stream(),
                ret_ty,
                neg_ty: quote!(()),
            };
        }
        // A key borrowed as `&T` is looked up as `T`, written as the user wrote it: its errors
        // land where the key type's do (`<T as ToOwned>::Owned`, spanned at `T`).
        let q_ty = match &m.key {
            KeyPlan::Borrowed(Param {
                ty: Type::Reference(r),
                ..
            }) => r.elem.to_token_stream(),
            _ => key_ty.clone(),
        };
        Gen {
            m,
            key_ty,
            q_ty,
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

/// The owned form of a parameter's type: `&T` becomes `<T as ToOwned>::Owned`, spanned at `T`.
fn owned_ty(ty: &Type) -> TokenStream {
    match ty {
        Type::Reference(r) => {
            let inner = &r.elem;
            spanning(
                quote!(<#inner as ::std::borrow::ToOwned>::),
                quote!(Owned),
                ends(inner),
            )
        }
        _ => ty.to_token_stream(),
    }
}

/// The owned value of a parameter, for a part of a tuple key (whose type is spanned at `span`,
/// the argument list): a part that cannot be owned is reported there, where the tuple is.
fn owned_value(krate: &TokenStream, p: &Param, span: Span) -> TokenStream {
    let ident = &p.ident;
    match &p.ty {
        Type::Reference(r) => {
            let inner = respan(r.elem.to_token_stream(), span);
            quote_spanned!(span=> #krate::__private::owned_key_of::<#inner>(#ident))
        }
        ty => {
            let ty = respan(ty.to_token_stream(), span);
            quote_spanned!(span=> #krate::__private::owned_key::<#ty>(&#ident))
        }
    }
}

/// The spans of the first and last tokens of `tokens`.
fn ends(tokens: &impl ToTokens) -> (Span, Span) {
    let mut it = tokens.to_token_stream().into_iter();
    let first = it.next().map_or_else(Span::call_site, |t| t.span());
    let last = it.last().map_or(first, |t| t.span());
    (first, last)
}

/// A qualified path type, `head` then `last` (`<T as Trait>::` then `Assoc`), whose first
/// token is at `first` and last at `last`: the compiler spans a type from its first token to
/// its last, so this one underlines the user's tokens from `first` to `last`.
fn spanning(head: TokenStream, last: TokenStream, (first, end): (Span, Span)) -> TokenStream {
    let mut out = respan_first(head, first);
    out.extend(respan(last, end));
    out
}

/// `tokens` with their first token at `span` (the rest as they were).
fn respan_first(tokens: TokenStream, span: Span) -> TokenStream {
    let mut it = tokens.into_iter();
    let mut out = TokenStream::new();
    if let Some(mut t) = it.next() {
        t.set_span(span);
        out.extend([t]);
    }
    out.extend(it);
    out
}

/// Where the value type (the `Ok` or `Some` type) and the error type (`Err`) are written: the
/// type argument of a return type spelled `Result<T, E>`, `Result<T>` or `Option<T>`, else
/// the whole return type. Only the spans come from here: the types are read through the
/// return type's `ResultParts` / `OptionParts`.
fn part_spans(func: &Func, returns: Returns) -> ((Span, Span), (Span, Span)) {
    let ReturnType::Type(_, ret) = &func.sig.output else {
        let whole = ends(&func.sig.ident);
        return (whole, whole);
    };
    let whole = ends(ret);
    let args: Vec<&Type> = match &**ret {
        Type::Path(p) if p.qself.is_none() => match p.path.segments.last() {
            Some(seg)
                if (returns == Returns::Result && seg.ident == "Result")
                    || (returns == Returns::Option && seg.ident == "Option") =>
            {
                match &seg.arguments {
                    syn::PathArguments::AngleBracketed(a) => a
                        .args
                        .iter()
                        .filter_map(|a| match a {
                            syn::GenericArgument::Type(t) => Some(t),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let value = args.first().map_or(whole, ends);
    let err = match (returns, args.as_slice()) {
        (Returns::Result, [_, e]) => ends(e),
        _ => whole,
    };
    (value, err)
}

/// `tokens`, all at `span` (for a type that must report its errors where another does).
pub(super) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut t| {
            if let proc_macro2::TokenTree::Group(g) = &t {
                let mut inner = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                inner.set_span(span);
                return proc_macro2::TokenTree::Group(inner);
            }
            t.set_span(span);
            t
        })
        .collect()
}

/// The key's type. A tuple of arguments is spanned at the argument list.
fn key_ty(m: &Model) -> TokenStream {
    match &m.key {
        KeyPlan::Borrowed(p) | KeyPlan::Owned(p) => owned_ty(&p.ty),
        KeyPlan::Tuple(ps) => {
            let tys = ps.iter().map(|p| owned_ty(&p.ty));
            let span = m.func.sig.paren_token.span.join();
            quote_spanned!(span=> (#(#tys,)*))
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
fn key_expr(g: &Gen<'_>, plan: &KeyPlan) -> TokenStream {
    match plan {
        KeyPlan::Tuple(ps) => {
            let span = g.m.func.sig.paren_token.span.join();
            let vals = ps.iter().map(|p| owned_value(&g.krate, p, span));
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
fn companion(
    g: &Gen<'_>,
    asserts: &TokenStream,
    static_def: &TokenStream,
    get_cache: &TokenStream,
) -> TokenStream {
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
            #asserts
            #static_def
            #get_cache
        }
    }
}

/// A function whose key type only the compiler knows: the key is evaluated first, checked where
/// the user wrote it, and its type picks the cache out of a type-erased static.
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
    let call = format_ident!("__cache_call", span = Span::mixed_site());
    let (value_ty, ret_ty, neg_ty) = (&g.value_ty, &g.ret_ty, &g.neg_ty);
    let const_checks = settings::const_checks(g);
    let configure = settings::configure(g);
    let builder = format_ident!("__cache_builder", span = Span::mixed_site());
    let bypass_init = bypass_init(g);
    let assert_value = quote_spanned!(ret_ty.span()=>
        #krate::__private::assert_value::<#value_ty>();
    );
    // The key's type is only known to the compiler: `key_of` checks it at the key expression
    // (the whole of it: the expression is its argument), and the calls that need its bounds go
    // through `__private::Call`, which reports nothing of its own.
    let key_of = respan(quote!(#krate::__private::key_of), expr.span());
    let key_def = quote!(let #key = #key_of(#expr););
    let call_def = quote! {
        let #call = #krate::__private::call_of::<#shape, _, #value_ty, #neg_ty, #ret_ty>(&#key);
    };
    let configure_fn = format_ident!("__cache_configure", span = Span::mixed_site());
    let configure_def = quote! {
        let #configure_fn = {
            fn __configure<K>(
                #builder: #krate::__private::CacheBuilder<K, #value_ty, #neg_ty>,
            ) -> #krate::__private::CacheBuilder<K, #value_ty, #neg_ty> {
                #builder #configure
            }
            __configure
        };
    };
    let get = dispatched(
        g,
        &call,
        CALL_TRAITS,
        quote!(erased_cache(&#cache_static, #configure_fn)),
    );
    let lookup = dispatched(g, &call, CALL_TRAITS, quote!(lookup(#cache, &#key)));
    let (loader_def, call_load) = body_closure(g, load, result);
    let call_cached = load_call(g, shape, &quote!(#cache), &quote!(&#key), load);
    rewrite(
        &m.func,
        quote! {
            #assert_value
            #(#const_checks)*
            static #cache_static: #krate::__private::ErasedFnCache =
                #krate::__private::ErasedFnCache::new();
            #key_def
            #call_def
            #configure_def
            #loader_def
            match #get {
                #krate::__private::Some(#cache) if !(#bypass_init) => {
                    if let #krate::__private::Some(#entry) = #lookup {
                        return #krate::__private::shape_hit::<#shape, _, _, _>(#entry);
                    }
                    #call_cached
                }
                _ => #call_load,
            }
        },
    )
}

/// `(&&call).method(..)`: a runtime call through `__private::Call`, which needs the key and
/// value bounds but reports nothing when they fail (the checks at the user's tokens do), with
/// the traits that offer it. Its tokens are all at `mixed_site`, and it holds none of the
/// user's: it cannot fail, and its trait imports reach nothing else.
pub(super) fn dispatched(
    g: &Gen<'_>,
    call: &impl ToTokens,
    traits: &[&str],
    method: TokenStream,
) -> TokenStream {
    let krate = &g.krate;
    let traits = traits.iter().map(|t| format_ident!("{}", t));
    quote_spanned!(Span::mixed_site()=> {
        #[allow(unused_imports)]
        use #krate::__private::{#(#traits as _),*};
        (&&#call).#method
    })
}

/// The traits of the calls of [`dispatched`] that go through `__private::call`.
pub(super) const CALL_TRAITS: &[&str] = &["CallChecked", "CallUnchecked"];

/// The types of the function's calls, for [`dispatched`] calls: `Call::<S, K, V, N, Q, Out>`
/// (a function with an inferred key type has its own, made from its key).
pub(super) fn call_types(g: &Gen<'_>, shape: &TokenStream) -> TokenStream {
    let (krate, key_ty, value_ty, neg_ty, q_ty, ret_ty) = (
        &g.krate,
        &g.key_ty,
        &g.value_ty,
        &g.neg_ty,
        &g.q_ty,
        &g.ret_ty,
    );
    quote!(#krate::__private::Call::<#shape, #key_ty, #value_ty, #neg_ty, #q_ty, #ret_ty>::new())
}

/// The load after a miss: the body's outcome, classified by the function's return shape,
/// through the runtime's miss path (its blocking or its async front). The async front and every
/// call of a function with an inferred key type are [`dispatched`]: an awaited future's bounds
/// are proven again where no span of the user's can be given.
fn load_call(
    g: &Gen<'_>,
    shape: &TokenStream,
    cache: &TokenStream,
    key_ref: &TokenStream,
    load: &syn::Ident,
) -> TokenStream {
    let krate = &g.krate;
    let kspan = g.key_ty.span();
    let none = quote!(#krate::__private::None);
    let classified = classify(g, shape, &quote!(#load()), &none);
    let classified_async = classify(g, shape, &quote!(#load().await), &none);
    let share = share(g);
    let inferred = matches!(g.m.key, KeyPlan::Inferred { .. });
    let call = if inferred {
        format_ident!("__cache_call", span = Span::mixed_site()).to_token_stream()
    } else {
        call_types(g, shape)
    };
    if g.m.func.sig.asyncness.is_some() {
        let load_async = dispatched(
            g,
            &call,
            CALL_TRAITS,
            quote!(load_async(
                #shape,
                #cache,
                #key_ref,
                #share,
                move || async move { #classified_async },
            )),
        );
        quote!(#load_async.await)
    } else if inferred {
        dispatched(
            g,
            &call,
            CALL_TRAITS,
            quote!(load(
                #shape,
                #cache,
                #key_ref,
                #share,
                move || #classified,
            )),
        )
    } else {
        let types = types(g);
        quote_spanned!(kspan=> #krate::__private::load::<#shape, #types, _>(
            #shape,
            #cache,
            #key_ref,
            #share,
            move || #classified,
        ))
    }
}

/// `classify(outcome, unless)`: what to cache of the body's outcome. Spanned at the return
/// type: a value type that borrows (a hidden lifetime, as in `Cow<str>`), which the cache's
/// `'static` value cannot be made of, is reported there.
pub(super) fn classify(
    g: &Gen<'_>,
    shape: &TokenStream,
    outcome: &TokenStream,
    unless: &TokenStream,
) -> TokenStream {
    let (krate, value_ty, neg_ty) = (&g.krate, &g.value_ty, &g.neg_ty);
    let (first, last) = match &g.m.func.sig.output {
        ReturnType::Type(_, t) => ends(t),
        ReturnType::Default => ends(&g.m.func.sig.ident),
    };
    let krate = respan(krate.clone(), first);
    let mut args = proc_macro2::Group::new(
        proc_macro2::Delimiter::Parenthesis,
        quote!(#outcome, #unless),
    );
    args.set_span(last);
    quote_spanned!(first=>
        #krate::__private::classify::<#shape, #value_ty, #neg_ty, _> #args
    )
}

/// How an outcome that is not cached (an `Err`, a `None`, a value `unless` rejects) reaches the
/// callers waiting on its load: shared by cloning when the declared return type is
/// `Clone + Send + Sync + 'static` (detected for the concrete type by autoref specialization),
/// else `None` (they retry).
pub(super) fn share(g: &Gen<'_>) -> TokenStream {
    let (krate, ret_ty) = (&g.krate, &g.ret_ty);
    quote_spanned!(Span::mixed_site()=> {
        #[allow(unused_imports)]
        use #krate::__private::{ShareCloned as _, ShareNone as _};
        (&&#krate::__private::Probe::<#ret_ty>::new()).share()
    })
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
/// and the call that runs it uncached. With `tags`, the loader tags its entry: with the tags
/// over the arguments as it starts, and with those of the value (`|v| ..`) once the body has
/// returned one to cache (an `Err` or `None`, cached or not, gets the argument tags only). The
/// body then runs in a closure (an async block) of its own, so that its `return` and `?` end the
/// body, not the loader.
pub(super) fn body_closure(
    g: &Gen<'_>,
    load: &syn::Ident,
    result: &syn::Ident,
) -> (TokenStream, TokenStream) {
    let block = &g.m.func.block;
    let ret_ty = &g.ret_ty;
    let tags = &g.m.tags;
    let is_async = g.m.func.sig.asyncness.is_some();
    if tags.of_args.is_empty() && tags.of_value.is_empty() {
        return if is_async {
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
        };
    }
    let arg_tags = arg_tags(g);
    let value_tags = value_tags(g, result);
    if is_async {
        (
            quote! {
                #[allow(unused_mut)]
                let mut #load = move || async move {
                    #arg_tags
                    let #result: #ret_ty = async move #block.await;
                    #value_tags
                    #result
                };
            },
            quote!(#load().await),
        )
    } else {
        let body = format_ident!("__cache_body", span = Span::mixed_site());
        (
            quote! {
                #[allow(unused_mut)]
                let mut #load = move || -> #ret_ty {
                    #arg_tags
                    #[allow(unused_mut, clippy::redundant_closure_call)]
                    let mut #body = move || -> #ret_ty #block;
                    let #result: #ret_ty = #body();
                    #value_tags
                    #result
                };
            },
            quote!(#load()),
        )
    }
}

/// `tag(..)` of each tag over the arguments, spanned at the user's expression (one that is not
/// `AsRef<str>` is reported there).
fn arg_tags(g: &Gen<'_>) -> TokenStream {
    let krate = &g.krate;
    let calls = g.m.tags.of_args.iter().map(|t| {
        let tag = respan(quote!(#krate::tag), t.span());
        quote_spanned!(t.span()=> let _ = #tag(#t);)
    });
    quote!(#(#calls)*)
}

/// The tags of the value: each closure of `tags` called on the `Ok`/`Some` value (the whole
/// value of a function returning neither), its tags attached. The closure's argument type is
/// the cached value's, so `|p| ..` needs no annotation; it is reported at the closure if it
/// does not fit.
fn value_tags(g: &Gen<'_>, result: &syn::Ident) -> TokenStream {
    let closures = &g.m.tags.of_value;
    if closures.is_empty() {
        return quote!();
    }
    let (krate, value_ty) = (&g.krate, &g.value_ty);
    let span = Span::mixed_site();
    let value = format_ident!("__cache_value", span = span);
    // A runtime function, not a local one: the `<fn>_refresh` companion's copy of this code
    // then reports a closure of the wrong type with the same error, which is shown once.
    let calls = closures.iter().map(|c| {
        let call = respan(
            quote!(#krate::__private::tag_value::<#value_ty, _, _>),
            c.span(),
        );
        quote_spanned!(c.span()=> #call(#value, #c);)
    });
    let pattern = match g.m.returns {
        Returns::Result => quote!(::core::result::Result::Ok(#value)),
        Returns::Option => quote!(::core::option::Option::Some(#value)),
        Returns::Value => quote!(#value),
    };
    quote! {
        #[allow(irrefutable_let_patterns)]
        if let #pattern = &#result {
            #(#calls)*
        }
    }
}

/// The key, value, negative and lookup types of the runtime's calls (`K, V, N, Q`), each at
/// the user's tokens, so that a missing trait is reported there (once: where the checks are).
pub(super) fn types(g: &Gen<'_>) -> TokenStream {
    let (key_ty, value_ty, neg_ty, q_ty) = (&g.key_ty, &g.value_ty, &g.neg_ty, &g.q_ty);
    quote!(#key_ty, #value_ty, #neg_ty, #q_ty)
}

/// The statements that check the key and value types at the user's tokens: the key at the
/// argument's type (or `key_type`), the value (and a cached `Err`) at the return type; with a
/// backend, that each can be encoded.
fn asserts(g: &Gen<'_>) -> TokenStream {
    let (krate, key_ty, value_ty, neg_ty, ret_ty) =
        (&g.krate, &g.key_ty, &g.value_ty, &g.neg_ty, &g.ret_ty);
    let mut out = quote_spanned!(key_ty.span()=> #krate::__private::assert_key::<#key_ty>(););
    out.extend(quote_spanned!(ret_ty.span()=> #krate::__private::assert_value::<#value_ty>();));
    // A cached negative result (the `Err` type) must be clonable too: checked at the return type.
    if g.m.negative {
        out.extend(quote_spanned!(ret_ty.span()=> #krate::__private::assert_value::<#neg_ty>();));
    }
    if g.m.backend.is_some() {
        out.extend(quote_spanned!(key_ty.span()=> #krate::__private::assert_remote::<#key_ty>();));
        out.extend(
            quote_spanned!(ret_ty.span()=> #krate::__private::assert_remote::<#value_ty>();),
        );
        if g.m.negative {
            out.extend(
                quote_spanned!(ret_ty.span()=> #krate::__private::assert_remote::<#neg_ty>();),
            );
        }
    }
    out
}

/// The function's cache, from its statics: the one call that finds it (and builds it on the
/// process's first call), with its types spelled at the user's tokens.
fn fn_cache(
    g: &Gen<'_>,
    cache_static: &syn::Ident,
    cache_local: &syn::Ident,
    configure_fn: &TokenStream,
) -> TokenStream {
    let (krate, key_ty, value_ty, neg_ty) = (&g.krate, &g.key_ty, &g.value_ty, &g.neg_ty);
    let Some(sched) = &g.m.schedule else {
        return quote_spanned!(key_ty.span()=>
            #krate::__private::fn_cache::<#key_ty, #value_ty, #neg_ty>(
                &#cache_local,
                &#cache_static,
                #configure_fn,
            )
        );
    };
    // `refresh_every`: the builder also gets the reloader, a closure over nothing defined here
    // (the body may name `Self`, which a nested `fn` could not).
    let (reload_def, reload) = schedule::reloader(g, &shaped::shape(g));
    let every = settings::duration(g, &sched.every);
    let method = if g.m.func.sig.asyncness.is_some() {
        quote!(refresh_every_loaded_async)
    } else {
        quote!(refresh_every_loaded)
    };
    let top = sched.top.map(|n| {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        quote!(.refresh_top(#n))
    });
    let builder = format_ident!("__cache_builder", span = Span::mixed_site());
    let get = quote_spanned!(key_ty.span()=>
        #krate::__private::fn_cache_with::<#key_ty, #value_ty, #neg_ty>(
            &#cache_local,
            &#cache_static,
            #configure_fn,
            move |#builder| #builder.#method(#every, #reload) #top,
        )
    );
    quote!({
        #reload_def
        #get
    })
}
