//! The cache's settings as tokens, and the compile-time checks of settings given as expressions.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::Gen;
use crate::model::{Capacity, Dur, Jitter};

/// The attribute's settings as calls on a `CacheBuilder` (`.name(..).capacity(..) ..`): the
/// one shape in which settings reach the runtime. Each value is made by the helpers below,
/// spanned at the user's tokens.
pub(super) fn configure(g: &Gen<'_>) -> TokenStream {
    let (s, krate) = (&g.m.settings, &g.krate);
    let name = name(g);
    let mut calls = vec![quote!(.name(#name))];
    calls.push(if s.unbounded {
        quote!(.unbounded())
    } else {
        let capacity = capacity(g);
        quote!(.capacity(#capacity))
    });
    let policy = format_ident!("{}", format!("{:?}", s.policy));
    calls.push(quote!(.policy(#krate::Policy::#policy)));
    let durations = [
        ("ttl", s.ttl.as_ref()),
        ("time_to_idle", s.tti.as_ref()),
        ("negative_ttl", s.negative_ttl.as_ref()),
        ("stale_while_revalidate", s.stale.as_ref()),
        ("distributed_lock", g.m.lease.as_ref()),
    ];
    for (setter, d) in durations {
        if let Some(d) = d {
            let setter = format_ident!("{}", setter);
            let d = duration(g, d);
            calls.push(quote!(.#setter(#d)));
        }
    }
    if let Some(j) = jitter(g) {
        calls.push(quote!(.jitter(#j)));
    }
    if let Some(beta) = &s.early_refresh {
        calls.push(quote!(.early_refresh(#beta)));
    }
    if let Some(d) = s.depends {
        calls.push(quote!(.depends(#d)));
    }
    if let Some(v) = &s.version {
        let n = v.base10_parse::<u32>().unwrap_or_default();
        calls.push(quote_spanned!(v.span()=> .version(#n)));
    }
    if let Some(f) = &g.m.ttl_fn {
        calls.push(quote_spanned!(f.span()=> .ttl_fn(#f)));
    }
    if let Some(f) = &g.m.on_removal {
        calls.push(quote_spanned!(f.span()=> .on_removal(#f)));
    }
    quote!(#(#calls)*)
}

/// Where the attribute is: the file, line and column, and a fingerprint of the function. The
/// function's cache and its companions' share one cache through it.
pub(super) fn site(g: &Gen<'_>) -> TokenStream {
    let fingerprint = fingerprint(g);
    quote!(
        ::core::concat!(::core::file!(), ":", ::core::line!(), ":", ::core::column!(), ":", #fingerprint)
    )
}

/// `const _: () = assert!(..)` items that check, at compile time, the settings given as
/// expressions: a capacity of at least 1, a jitter within the TTL, durations longer than zero.
pub(super) fn const_checks(g: &Gen<'_>) -> Vec<TokenStream> {
    let (s, krate) = (&g.m.settings, &g.krate);
    let mut checks = Vec::new();
    if let Some(Capacity::Expr(e)) = &s.capacity {
        checks.push(quote_spanned!(e.span()=>
            const _: () = ::core::assert!((#e) as u64 > 0, "`capacity` must be at least 1");
        ));
    }
    if let Some(Jitter::Spread(n, lit)) = &s.jitter
        && let Some(Dur::Expr(e)) = s.ttl.as_ref().or(s.negative_ttl.as_ref())
    {
        checks.push(quote_spanned!(lit.span()=>
            const _: () = ::core::assert!(
                #n <= #krate::__private::Duration::as_nanos(&(#e)),
                "the jitter is over 100% of the TTL: it must not exceed the TTL"
            );
        ));
    }
    for (what, d) in [
        ("ttl", &s.ttl),
        ("tti", &s.tti),
        ("negative_ttl", &s.negative_ttl),
        ("stale", &s.stale),
    ] {
        if let Some(Dur::Expr(e)) = d {
            let msg = format!("`{what}` must be longer than zero");
            checks.push(quote_spanned!(e.span()=>
                const _: () = ::core::assert!(!#krate::__private::Duration::is_zero(&(#e)), #msg);
            ));
        }
    }
    checks
}

/// `name = ".."`, or the function's module path and name.
pub(super) fn name(g: &Gen<'_>) -> TokenStream {
    match &g.m.settings.name {
        Some(s) => s.to_token_stream(),
        None => {
            let ident = g.m.func.sig.ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #ident))
        }
    }
}

/// The capacity, a `u64`.
fn capacity(g: &Gen<'_>) -> TokenStream {
    let krate = &g.krate;
    match &g.m.settings.capacity {
        Some(Capacity::Lit(n)) => quote!(#n),
        Some(Capacity::Expr(e)) => quote_spanned!(e.span()=> (#e) as u64),
        None => quote!(#krate::DEFAULT_CAPACITY),
    }
}

/// Seconds and nanoseconds, for `Duration::new`.
fn secs_nanos(nanos: u128) -> (u64, u32) {
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    (secs, sub)
}

/// A `Duration` setting (spanned at the user's literal or expression).
pub(super) fn duration(g: &Gen<'_>, d: &Dur) -> TokenStream {
    let krate = &g.krate;
    match d {
        Dur::Lit(nanos, span) => {
            let (secs, sub) = secs_nanos(*nanos);
            quote_spanned!(*span=> #krate::__private::Duration::new(#secs, #sub))
        }
        Dur::Expr(e) => quote_spanned!(e.span()=> #e),
    }
}

/// The `Jitter`, if any.
fn jitter(g: &Gen<'_>) -> Option<TokenStream> {
    let krate = &g.krate;
    g.m.settings.jitter.as_ref().map(|j| match j {
        Jitter::Fraction(f) => quote!(#krate::Jitter::Fraction(#f)),
        Jitter::Spread(nanos, _) => {
            let (secs, sub) = secs_nanos(*nanos);
            quote!(#krate::Jitter::Spread(#krate::__private::Duration::new(#secs, #sub)))
        }
    })
}

/// The end of the cache's `site`, beside the file, line and column: the function's name and a
/// hash of its tokens. Functions that one `macro_rules!` invocation stamps out share a file,
/// line and column, and must not share a cache.
fn fingerprint(g: &Gen<'_>) -> String {
    use std::hash::{Hash, Hasher};
    let func = &g.m.func;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    func.sig.to_token_stream().to_string().hash(&mut h);
    func.block.to_token_stream().to_string().hash(&mut h);
    format!("{}#{:016x}", func.sig.ident, h.finish())
}
