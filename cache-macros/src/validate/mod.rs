//! Checks the arguments of `#[cached]` and the function's signature, and builds the [`Model`] of
//! what to generate. Every problem is reported through the [`Ctxt`], in the order of the checks;
//! nothing here panics on user input, and nothing here makes tokens.

mod batch;
mod key;
mod settings;
mod signature;
pub(crate) mod write;

use quote::ToTokens;
use syn::{FnArg, ReturnType, Type};

use crate::attr::CachedArgs;
use crate::ctxt::Ctxt;
use crate::item::Func;
use crate::model::{KeyPlan, Model, Refresh, Returns, Schedule};
use crate::symbol;

/// Validates everything; `None` when there were errors (all recorded in `cx`).
pub(crate) fn validate(cx: &mut Ctxt, args: &CachedArgs, func: Func) -> Option<Model> {
    if args
        .batch
        .as_ref()
        .is_some_and(|b| matches!(b.value, Ok(true)))
    {
        return batch::validate(cx, args, func);
    }
    let krate = args.krate.as_ref().and_then(|g| g.read(cx)).cloned();
    signature::check(cx, &func);
    let returns = returns(cx, args, &func);
    let negative = args.negative_ttl.is_some();
    if negative
        && returns == Returns::Value
        && let Some(a) = &args.negative_ttl
    {
        let ret = match &func.sig.output {
            ReturnType::Default => "()".to_string(),
            ReturnType::Type(_, t) => t.to_token_stream().to_string(),
        };
        cx.error_spanned_by(
            &a.name,
            format!(
                "`negative_ttl` caches `Err` and `None` results, but `{}` returns `{ret}`, which is \
                 neither `Result` nor `Option`; if it is an alias of one, add `returns = \"result\"` \
                 or `returns = \"option\"`",
                func.sig.ident
            ),
        );
    }
    let settings = settings::settings(cx, args);
    if let ReturnType::Type(_, t) = &func.sig.output {
        signature::check_storable(cx, t, &func.sig.generics, "return");
    }
    let key = key::plan(cx, args, &func);
    let inferred_key = match &key {
        Some(KeyPlan::Inferred { expr }) => Some(expr),
        _ => None,
    };
    let backend = args.backend.as_ref().and_then(|g| g.read(cx)).cloned();
    let lease = args.distributed_lock.as_ref().and_then(|a| {
        if backend.is_none() {
            cx.error_spanned_by(
                &a.name,
                "`distributed_lock` is a lease in a shared backend: add `backend = \"...\"`",
            );
            return None;
        }
        a.read(cx).cloned()
    });
    if backend.is_some()
        && let Some(expr) = inferred_key
    {
        cx.error_spanned_by(
            expr,
            "with `backend`, name the key's type: add `key_type = <Type>` (keys are encoded for \
             the remote tier)",
        );
    }
    let refresh = refresh_mode(cx, args, &func, inferred_key);
    let schedule = schedule(cx, args, &func, key.as_ref());
    let unless = args.unless.as_ref().and_then(|g| g.ok()).cloned();
    let condition = args.condition.as_ref().and_then(|g| g.ok()).cloned();
    let ttl_fn = args.ttl_fn.as_ref().and_then(|g| g.ok()).cloned();
    let on_removal = args.on_removal.as_ref().and_then(|g| g.read(cx)).cloned();
    let tags = args
        .tags
        .as_ref()
        .and_then(|g| g.read(cx))
        .cloned()
        .unwrap_or_default();
    for (name, v) in [
        (symbol::UNLESS, &unless),
        (symbol::TTL_FN, &ttl_fn),
        (symbol::ON_REMOVAL, &on_removal),
    ] {
        if v.is_some()
            && let Some(expr) = inferred_key
        {
            cx.error_spanned_by(
                expr,
                format!("with `{name}`, name the key's type: add `key_type = <Type>`"),
            );
        }
    }
    ttl_fn_conflict(cx, args);
    if cx.has_errors() {
        return None;
    }
    Some(Model {
        func,
        krate,
        returns,
        negative,
        key: key?,
        settings,
        backend,
        lease,
        refresh,
        stale_name: args.stale.as_ref().map(|a| a.name.clone()),
        unless,
        condition,
        ttl_fn,
        on_removal,
        tags,
        schedule,
        batch: None,
    })
}

/// `ttl_fn` with `ttl`: one of the two is too many.
fn ttl_fn_conflict(cx: &mut Ctxt, args: &CachedArgs) {
    if args.ttl.is_some()
        && let Some(a) = &args.ttl_fn
        && a.ok().is_some()
    {
        cx.error_spanned_by(
            &a.name,
            "`ttl_fn` and `ttl` conflict: `ttl_fn` gives each value its own TTL; remove `ttl`",
        );
    }
}

/// `refresh_every` and `refresh_top`: a round reloads keys in the background, calling the body
/// with arguments rebuilt from each key, so every argument must be the key (or part of it).
fn schedule(
    cx: &mut Ctxt,
    args: &CachedArgs,
    func: &Func,
    key: Option<&KeyPlan>,
) -> Option<Schedule> {
    let Some(every) = &args.refresh_every else {
        if let Some(top) = &args.refresh_top {
            cx.error_spanned_by(
                &top.name,
                "`refresh_top` is how many keys a scheduled refresh reloads: add \
                 `refresh_every = \"...\"`",
            );
        }
        return None;
    };
    let name = &every.name;
    let mut ok = true;
    if let Some(r) = func.sig.receiver() {
        cx.error_spanned_by(
            r,
            "`refresh_every` reloads keys in the background, where there is no `self` to call \
             the method on: memoize a free (or associated) function whose arguments are the key",
        );
        ok = false;
    }
    if !func.sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &func.sig.generics,
            "`refresh_every` does not support generic functions: a background round cannot \
             tell which instance to call",
        );
        ok = false;
    }
    // The parameters the key is made of, in the key's order.
    let in_key: Vec<&syn::Ident> = match key {
        Some(KeyPlan::Borrowed(p) | KeyPlan::Owned(p)) => vec![&p.ident],
        Some(KeyPlan::Tuple(ps)) => ps.iter().map(|p| &p.ident).collect(),
        Some(KeyPlan::Expr { expr, .. } | KeyPlan::Inferred { expr }) => {
            cx.error_spanned_by(
                expr,
                format!(
                    "with `{name}`, the key must be the arguments themselves (a background round \
                     calls the function again from its key alone): use `key = <argument>` or \
                     `key = (a, b)`, or no `key`"
                ),
            );
            return None;
        }
        None => return None,
    };
    for arg in &func.sig.inputs {
        if let FnArg::Typed(pt) = arg {
            let named = match &*pt.pat {
                syn::Pat::Ident(pi) => in_key.contains(&&pi.ident),
                _ => false,
            };
            if !named {
                cx.error_spanned_by(
                    &pt.pat,
                    format!(
                        "with `{name}`, every argument must be part of the key (a background round \
                         calls the function again from its key alone), and `{}` is not",
                        pt.pat.to_token_stream()
                    ),
                );
                ok = false;
            }
        }
    }
    let every = every.read(cx).cloned()?;
    let top = args.refresh_top.as_ref().and_then(|a| a.read(cx)).copied();
    if let (crate::model::Dur::Lit(n, span), Some(Ok(crate::model::Dur::Lit(ttl, _)))) =
        (&every, args.ttl.as_ref().map(|t| &t.value))
        && n >= ttl
    {
        cx.error_at(
            *span,
            format!(
                "`{name}` must be shorter than `ttl`: a hot key is reloaded every round, and \
                 would expire before its refresh otherwise"
            ),
        );
        ok = false;
    }
    ok.then_some(Schedule { every, top })
}

/// What the function returns: as `returns = ".."` says, else read off the return type.
fn returns(cx: &mut Ctxt, args: &CachedArgs, func: &Func) -> Returns {
    if let Some(a) = &args.returns {
        return a.read(cx).copied().unwrap_or(Returns::Value);
    }
    let ReturnType::Type(_, t) = &func.sig.output else {
        return Returns::Value;
    };
    match &**t {
        Type::Path(p) if p.qself.is_none() => match p.path.segments.last() {
            Some(s) if s.ident == "Result" => Returns::Result,
            Some(s) if s.ident == "Option" => Returns::Option,
            _ => Returns::Value,
        },
        _ => Returns::Value,
    }
}

/// `stale` and `early_refresh`: what they need of the function, and how it refreshes.
fn refresh_mode(
    cx: &mut Ctxt,
    args: &CachedArgs,
    func: &Func,
    inferred_key: Option<&syn::Expr>,
) -> Refresh {
    let stale = args.stale.as_ref().map(|a| &a.name);
    let early = args.early_refresh.as_ref().map(|a| &a.name);
    let Some(first) = stale.or(early) else {
        return Refresh::None;
    };
    let has_ttl = args.ttl.is_some() || args.ttl_fn.is_some();
    for name in [stale, early].into_iter().flatten() {
        if !has_ttl {
            cx.error_spanned_by(
                name,
                format!("`{name}` acts around a value's expiry: add `ttl = \"...\"` (or `ttl_fn`)"),
            );
        }
    }
    if let Some(expr) = inferred_key {
        cx.error_spanned_by(
            expr,
            format!(
                "with `{first}`, name the key's type: add `key_type = <Type>` (a refresh owns its \
                 key)"
            ),
        );
    }
    if stale.is_none() {
        return Refresh::Inline;
    }
    // The background refresh runs the body after the call has returned: it must own everything.
    for arg in &func.sig.inputs {
        match arg {
            FnArg::Receiver(r) => cx.error_spanned_by(
                r,
                "`stale` refreshes in the background after the call returns, which a method borrowing `self` cannot outlive; memoize a free function (or an associated one) taking owned arguments, or use `early_refresh`, which refreshes in the caller",
            ),
            FnArg::Typed(pt) => {
                if matches!(&*pt.ty, Type::Reference(_)) {
                    cx.error_spanned_by(
                        &pt.ty,
                        format!(
                            "`stale` refreshes in the background after the call returns, so the arguments must be owned: `{}` is borrowed; take it by value (e.g. `String` for `&str`)",
                            pt.pat.to_token_stream()
                        ),
                    );
                }
            }
        }
    }
    Refresh::Background
}
