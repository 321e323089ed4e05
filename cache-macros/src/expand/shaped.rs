//! The body of a function with `stale`, `early_refresh` or `unless`: its results are shaped
//! (`__private::shape`) so that a hit can carry a refresh, and a load can be classified.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::{Gen, Names};
use crate::model::{KeyPlan, Refresh, Returns};

/// The lookup and load of a function with `stale`, `early_refresh` or `unless`: a hit may come
/// with the key's refresh to run (in the background, or here), and the loader's outcome is
/// classified (`unless`) before it is cached.
pub(super) fn body(
    g: &Gen<'_>,
    names: &Names,
    lookup_ref: &TokenStream,
    key_after: &TokenStream,
    load_ref: &TokenStream,
    (loader_def, call_load): (&TokenStream, &TokenStream),
) -> TokenStream {
    let (m, krate) = (g.m, &g.krate);
    let (value_ty, neg_ty) = (&g.value_ty, &g.neg_ty);
    let kspan = g.key_ty.span();
    let Names {
        cache,
        bypass,
        key,
        entry,
        load,
        ..
    } = names;
    let span = Span::mixed_site();
    let found = format_ident!("__cache_found", span = span);
    let loaded = format_ident!("__cache_loaded", span = span);
    let refresh = format_ident!("__cache_refresh", span = span);
    let unless_fn = format_ident!("__cache_unless", span = span);
    let shape = shape(g);
    let is_async = m.func.sig.asyncness.is_some();

    let unless = match &m.unless {
        Some(u) => quote_spanned!(u.span()=> {
            let #unless_fn: fn(&#value_ty) -> bool = #u;
            #krate::__private::Some(#unless_fn)
        }),
        None => quote!(#krate::__private::None),
    };
    let classified = super::classify(g, &shape, &quote!(#load()), &unless);
    let classified_async = super::classify(g, &shape, &quote!(#load().await), &unless);
    let loaded_def = if is_async {
        // Located at `stale` for a background refresh, which sends the future to another
        // thread: one that is not `Send` is reported there (the compiler's notes show what the
        // body holds across an `.await`).
        let at = match &m.stale_name {
            Some(name) if m.refresh == Refresh::Background => span.located_at(name.span()),
            _ => span,
        };
        let future = quote_spanned!(at=> async move { #classified_async });
        quote!(let #loaded = move || #future;)
    } else {
        quote!(let #loaded = move || #classified;)
    };
    // The key a refresh owns.
    let owned_key = match &m.key {
        KeyPlan::Borrowed(p) => {
            let (ident, q_ty) = (&p.ident, &g.q_ty);
            quote_spanned!(kspan=> #krate::__private::owned_key_of::<#q_ty>(#ident))
        }
        _ => quote!(#key),
    };
    // Every call that needs the key and value bounds spells the types at the user's tokens.
    let (key_ty, q_ty) = (&g.key_ty, &g.q_ty);
    let kvn = quote!(#key_ty, #value_ty, #neg_ty);
    let types = super::types(g);
    // The async calls return futures, whose bounds are proven again where they are awaited:
    // they go through `__private::Call`, which reports nothing of its own.
    let call = super::call_types(g, &shape);
    // A background refresh sends the body's closure (or future) to another thread: one that is
    // not `Send + 'static` is reported at `stale`, which asks for it (the compiler's notes name
    // the argument or the value held across an `.await`). The outcome type is spelled at the
    // return type, where an async function's outcome that is not `Send` is reported.
    let stale_at = m.stale_name.as_ref().map_or(kspan, syn::Ident::span);
    let ret_ty = &g.ret_ty;
    let loaded_arg = format_ident!("__cache_loaded", span = span.located_at(stale_at));
    let krate_at = super::respan(krate.clone(), stale_at);
    let on_refresh = match (m.refresh, is_async) {
        (Refresh::Background, false) => quote_spanned! {stale_at=>
            #krate::__private::spawn_refresh::<#kvn, #ret_ty>(#cache, #refresh, #owned_key, #loaded_arg);
        },
        (Refresh::Background, true) => quote_spanned! {stale_at=>
            #krate_at::__private::spawn_refresh_async::<#kvn, #ret_ty, _>(#cache, #refresh, #owned_key, #loaded_arg);
        },
        (_, false) => quote_spanned! {kspan=>
            let #entry = #krate::__private::refresh_inline::<#kvn, _>(#cache, #refresh, #owned_key, #entry, #loaded);
        },
        (_, true) => {
            let refresh_inline = super::dispatched(
                g,
                &call,
                super::CALL_TRAITS,
                quote!(refresh_inline_async(#cache, #refresh, #owned_key, #entry, #loaded)),
            );
            quote!(let #entry = #refresh_inline.await;)
        }
    };
    let on_refresh = quote! {
        #on_refresh
        return #krate::__private::shape_hit::<#shape, _, _, _>(#entry);
    };
    let lookup = quote_spanned!(kspan=>
        #krate::__private::lookup_refresh::<#kvn, #q_ty>(#cache, #lookup_ref)
    );
    let share = super::share(g);
    let load_call = if is_async {
        let load_async = super::dispatched(
            g,
            &call,
            super::CALL_TRAITS,
            quote!(load_async(#shape, #cache, #load_ref, #share, #loaded)),
        );
        quote!(#load_async.await)
    } else {
        quote_spanned!(kspan=>
            #krate::__private::load::<#shape, #types, _>(#shape, #cache, #load_ref, #share, #loaded)
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

/// The marker of the function's return shape in `__private::shape`.
pub(super) fn shape(g: &Gen<'_>) -> TokenStream {
    let (m, krate) = (g.m, &g.krate);
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
