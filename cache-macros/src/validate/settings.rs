//! The cache's settings: each value as read, and the checks between them (`capacity` against
//! `unbounded`, `jitter` against the TTL). `depends` and `version` have no checks beyond their
//! values' (`version` only matters with a remote tier, but is accepted without one).

use crate::attr::CachedArgs;
use crate::ctxt::{Ctxt, spanned};
use crate::model::{Dur, Jitter, Settings};

/// The settings; every error is recorded in `cx` (the settings are then not used).
pub(super) fn settings(cx: &mut Ctxt, args: &CachedArgs) -> Settings {
    let name = args.name.as_ref().and_then(|a| a.read(cx)).cloned();
    let unbounded = args
        .unbounded
        .as_ref()
        .is_some_and(|a| a.ok() == Some(&true));
    let capacity = args.capacity.as_ref().and_then(|a| {
        if unbounded && let Some(u) = &args.unbounded {
            let mut e = syn::Error::new(
                a.name.span(),
                "`capacity` and `unbounded` conflict: a cache is either bounded or not",
            );
            e.combine(syn::Error::new(
                u.name.span(),
                "`unbounded` is given here; remove one of the two",
            ));
            cx.push(e);
        }
        a.read(cx).cloned()
    });
    let policy = args
        .policy
        .as_ref()
        .and_then(|a| a.read(cx))
        .copied()
        .unwrap_or_default();
    let ttl = args.ttl.as_ref().and_then(|a| a.read(cx)).cloned();
    let tti = args.tti.as_ref().and_then(|a| a.read(cx)).cloned();
    let negative_ttl = args.negative_ttl.as_ref().and_then(|a| a.read(cx)).cloned();
    let jitter = args.jitter.as_ref().and_then(|a| {
        // The TTL the jitter is measured against.
        let Some(against) = ttl.as_ref().or(negative_ttl.as_ref()) else {
            cx.error_spanned_by(
                &a.name,
                "`jitter` spreads the TTL of each entry, but there is no `ttl` or `negative_ttl`",
            );
            return None;
        };
        let jitter = a.read(cx)?;
        if let (Jitter::Spread(n, s), Dur::Lit(t, _)) = (jitter, against)
            && n > t
        {
            cx.push(spanned(
                s,
                format!(
                    "a jitter of `\"{}\"` is over 100% of the TTL: each entry's TTL is drawn from \
                     TTL +/- jitter, so it must not exceed the TTL",
                    s.value()
                ),
            ));
            return None;
        }
        Some(jitter.clone())
    });
    let stale = args.stale.as_ref().and_then(|a| a.read(cx)).cloned();
    let early_refresh = args
        .early_refresh
        .as_ref()
        .and_then(|a| a.read(cx))
        .copied();
    let depends = args.depends.as_ref().and_then(|a| a.read(cx)).copied();
    let version = args.version.as_ref().and_then(|a| a.read(cx)).cloned();
    Settings {
        name,
        capacity,
        unbounded,
        policy,
        ttl,
        tti,
        negative_ttl,
        jitter,
        stale,
        early_refresh,
        depends,
        version,
    }
}
