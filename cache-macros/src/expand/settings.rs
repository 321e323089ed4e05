//! The cache's settings as tokens, and the compile-time checks of settings given as expressions.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::Gen;
use crate::model::{Capacity, Dur, Jitter};

/// The settings of the function's cache, as the runtime takes them: today the literal
/// `__private::Settings { .. }`, every field spelled out. This is the one place that says how
/// settings reach the runtime (to become builder calls, change only this function); each
/// value is made by the helpers below, and `backend` is the `Option` of the backend's name.
pub(super) fn settings(g: &Gen<'_>, backend: &TokenStream) -> TokenStream {
    let (s, krate) = (&g.m.settings, &g.krate);
    let (name, capacity, unbounded) = (name(g), capacity(g), s.unbounded);
    let policy = format_ident!("{}", format!("{:?}", s.policy));
    let (ttl, negative_ttl) = (
        duration(g, s.ttl.as_ref()),
        duration(g, s.negative_ttl.as_ref()),
    );
    let (jitter, lease, fingerprint) = (jitter(g), lease(g), fingerprint(g));
    let (stale, early_refresh) = (duration(g, s.stale.as_ref()), option(g, s.early_refresh));
    quote! {
        #krate::__private::Settings {
            name: #name,
            capacity: #capacity,
            unbounded: #unbounded,
            policy: #krate::Policy::#policy,
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
fn name(g: &Gen<'_>) -> TokenStream {
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

/// An `Option<Duration>` setting (spanned at the user's literal or expression).
fn duration(g: &Gen<'_>, d: Option<&Dur>) -> TokenStream {
    let krate = &g.krate;
    match d {
        None => quote!(#krate::__private::None),
        Some(Dur::Lit(nanos, span)) => {
            let (secs, sub) = secs_nanos(*nanos);
            quote_spanned!(*span=> #krate::__private::Some(#krate::__private::Duration::new(#secs, #sub)))
        }
        Some(Dur::Expr(e)) => quote_spanned!(e.span()=> #krate::__private::Some(#e)),
    }
}

/// `Some(value)` or `None`.
fn option(g: &Gen<'_>, value: Option<impl ToTokens>) -> TokenStream {
    let krate = &g.krate;
    match value {
        Some(v) => quote!(#krate::__private::Some(#v)),
        None => quote!(#krate::__private::None),
    }
}

/// The `Option<Jitter>`.
fn jitter(g: &Gen<'_>) -> TokenStream {
    let krate = &g.krate;
    option(
        g,
        g.m.settings.jitter.as_ref().map(|j| match j {
            Jitter::Fraction(f) => quote!(#krate::Jitter::Fraction(#f)),
            Jitter::Spread(nanos, _) => {
                let (secs, sub) = secs_nanos(*nanos);
                quote!(#krate::Jitter::Spread(#krate::__private::Duration::new(#secs, #sub)))
            }
        }),
    )
}

/// `distributed_lock`: the lease, an `Option<Duration>`.
fn lease(g: &Gen<'_>) -> TokenStream {
    let krate = &g.krate;
    option(
        g,
        g.m.lease.as_ref().map(|d| match d {
            Dur::Lit(nanos, span) => {
                let (secs, sub) = secs_nanos(*nanos);
                quote_spanned!(*span=> #krate::__private::Duration::new(#secs, #sub))
            }
            Dur::Expr(e) => e.to_token_stream(),
        }),
    )
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
