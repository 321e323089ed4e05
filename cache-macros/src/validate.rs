//! Checks the attribute's arguments and the function's signature, and turns them into a
//! [`Model`] of what to generate. Every problem is reported through the [`Ctxt`]; nothing here
//! panics on user input.

use std::collections::{HashMap, HashSet};

use cache_policy::Policy;
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, FnArg, Lit, Pat, ReturnType, Type};

use crate::args::{Arg, Args};
use crate::ctxt::Ctxt;
use crate::item::Func;
use crate::symbol::{self, did_you_mean};

/// What the function returns, as far as caching is concerned.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Returns {
    /// Any value: always cached.
    Value,
    /// `Result<T, E>`: `Ok` cached; `Err` only with `negative_ttl`.
    Result,
    /// `Option<T>`: `Some` cached; `None` only with `negative_ttl`.
    Option,
}

/// How the key is found from the arguments.
pub(crate) enum KeyPlan {
    /// One argument taken by reference (`x: &T`): looked up as `x`, owned with `ToOwned`.
    Borrowed { ident: syn::Ident },
    /// One argument taken by value (`x: T`): looked up as `&x`, owned with `Clone`.
    Owned { ident: syn::Ident },
    /// A key value computed before the lookup.
    Computed { expr: TokenStream },
    /// A key expression whose type the macro cannot read off: the compiler infers it, and the
    /// cache is reached through a type-erased static (one downcast per call).
    Inferred { expr: TokenStream },
}

/// Everything `expand` needs.
pub(crate) struct Model {
    pub(crate) func: Func,
    pub(crate) krate: TokenStream,
    pub(crate) returns: Returns,
    pub(crate) negative: bool,
    pub(crate) key: KeyPlan,
    /// The key type, spanned at the user's tokens it comes from.
    pub(crate) key_ty: TokenStream,
    /// The cached value type.
    pub(crate) value_ty: TokenStream,
    /// The declared return type (`()` when none).
    pub(crate) ret_ty: TokenStream,
    pub(crate) settings: Settings,
    /// `backend = "name"`: a configured remote tier.
    pub(crate) backend: Option<syn::LitStr>,
    /// `distributed_lock = "5s"`: the fleet-wide lease, as a `Duration` expression.
    pub(crate) lease: Option<TokenStream>,
    /// How an early or stale value is refreshed.
    pub(crate) refresh: Refresh,
    /// `unless = |v| ..`: results not to cache.
    pub(crate) unless: Option<Expr>,
    /// `if = ..`: calls that skip the cache entirely.
    pub(crate) condition: Option<Expr>,
    /// `ttl_fn = |v| ..`: a value's own TTL.
    pub(crate) ttl_fn: Option<Expr>,
}

/// How a function refreshes values (`stale`, `early_refresh`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// Neither: an expired value is a miss.
    None,
    /// `early_refresh` alone: the caller that draws an early refresh recomputes (XFetch).
    Inline,
    /// `stale`: stale (and early) values are served while a background refresh runs.
    Background,
}

/// The attribute's settings, as expressions of the runtime's types.
pub(crate) struct Settings {
    pub(crate) name: TokenStream,
    pub(crate) capacity: TokenStream,
    pub(crate) unbounded: bool,
    pub(crate) policy: TokenStream,
    pub(crate) ttl: TokenStream,
    pub(crate) negative_ttl: TokenStream,
    pub(crate) jitter: TokenStream,
    pub(crate) stale: TokenStream,
    pub(crate) early_refresh: TokenStream,
    /// Compile-time checks of settings given as expressions.
    pub(crate) const_checks: Vec<TokenStream>,
}

/// A duration setting as written.
enum Dur {
    /// A literal, parsed: nanoseconds.
    Lit(u128, Span),
    /// A `Duration` expression.
    Expr(Expr),
}

/// The arguments, each at most once, after the first checks.
#[derive(Default)]
struct Given<'a> {
    seen: HashMap<String, &'a Arg>,
}

/// Validates everything; `None` when there were errors (all recorded in `cx`).
pub(crate) fn validate(cx: &mut Ctxt, args: &Args, func: Func) -> Option<Model> {
    let given = collect(cx, args);
    let krate = match given.seen.get(symbol::CRATE) {
        Some(a) => match &a.value {
            Some(Expr::Path(p)) => p.path.to_token_stream(),
            _ => {
                cx.error_at(
                    a.span(),
                    "`crate` takes the path of the runtime crate, e.g. `crate = my_cache_runtime`",
                );
                quote!(::cache_runtime)
            }
        },
        None => quote!(::cache_runtime),
    };

    check_signature(cx, &func);
    let returns = classify_return(cx, &given, &func);
    let negative = given.seen.contains_key(symbol::NEGATIVE_TTL);
    if negative
        && returns == Returns::Value
        && let Some(a) = given.seen.get(symbol::NEGATIVE_TTL)
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
    let settings = settings(cx, &given, &func, &krate);
    let (ret_ty, value_ty) = value_types(cx, &func, returns, &krate);
    let (key, key_ty) = key_plan(cx, &given, &func);
    let backend = given
        .seen
        .get(symbol::BACKEND)
        .and_then(|a| match &a.value {
            Some(Expr::Lit(syn::ExprLit {
                lit: Lit::Str(s), ..
            })) if !s.value().trim().is_empty() => Some(s.clone()),
            Some(v) => {
                cx.error_spanned_by(
                    v,
                    "`backend` takes the name of a configured backend, e.g. `backend = \"shared\"`",
                );
                None
            }
            None => None,
        });
    let lease = given.seen.get(symbol::DISTRIBUTED_LOCK).and_then(|a| {
        if backend.is_none() {
            cx.error_spanned_by(
                &a.name,
                "`distributed_lock` is a lease in a shared backend: add `backend = \"...\"`",
            );
            return None;
        }
        match duration(cx, a, "distributed_lock")? {
            Dur::Lit(nanos, span) => {
                let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
                let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
                Some(quote_spanned!(span=> #krate::__private::Duration::new(#secs, #sub)))
            }
            Dur::Expr(e) => Some(e.to_token_stream()),
        }
    });
    if backend.is_some()
        && let Some(KeyPlan::Inferred { expr }) = &key
    {
        cx.error_spanned_by(
            expr,
            "with `backend`, name the key's type: add `key_type = <Type>` (keys are encoded for \
             the remote tier)",
        );
    }
    let refresh = refresh_mode(cx, &given, &func, key.as_ref());
    let closure_arg = |name: &str| given.seen.get(name).and_then(|a| a.value.clone());
    let unless = closure_arg(symbol::UNLESS);
    let condition = closure_arg(symbol::IF);
    let ttl_fn = closure_arg(symbol::TTL_FN);
    for (name, v) in [(symbol::UNLESS, &unless), (symbol::TTL_FN, &ttl_fn)] {
        if v.is_some()
            && let Some(KeyPlan::Inferred { expr }) = &key
        {
            cx.error_spanned_by(
                expr,
                format!("with `{name}`, name the key's type: add `key_type = <Type>`"),
            );
        }
    }
    if ttl_fn.is_some() && given.seen.contains_key(symbol::TTL) {
        let a = given.seen[symbol::TTL_FN];
        cx.error_spanned_by(
            &a.name,
            "`ttl_fn` and `ttl` conflict: `ttl_fn` gives each value its own TTL; remove `ttl`",
        );
    }
    if cx.has_errors() {
        return None;
    }
    let (key, key_ty) = (key?, key_ty?);
    Some(Model {
        func,
        krate,
        returns,
        negative,
        key,
        key_ty,
        value_ty,
        ret_ty,
        settings,
        backend,
        lease,
        refresh,
        unless,
        condition,
        ttl_fn,
    })
}

/// `stale` and `early_refresh`: what they need of the function, and how it refreshes.
fn refresh_mode(cx: &mut Ctxt, given: &Given<'_>, func: &Func, key: Option<&KeyPlan>) -> Refresh {
    let stale = given.seen.get(symbol::STALE);
    let early = given.seen.get(symbol::EARLY_REFRESH);
    let Some(first) = stale.or(early) else {
        return Refresh::None;
    };
    let has_ttl = given.seen.contains_key(symbol::TTL) || given.seen.contains_key(symbol::TTL_FN);
    for a in [stale, early].into_iter().flatten() {
        if !has_ttl {
            cx.error_spanned_by(
                &a.name,
                format!(
                    "`{}` acts around a value's expiry: add `ttl = \"...\"` (or `ttl_fn`)",
                    a.name
                ),
            );
        }
    }
    if let Some(KeyPlan::Inferred { expr }) = key {
        cx.error_spanned_by(
            expr,
            format!(
                "with `{}`, name the key's type: add `key_type = <Type>` (a refresh owns its key)",
                first.name
            ),
        );
    }
    let Some(stale) = stale else {
        return Refresh::Inline;
    };
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
    let _ = stale;
    Refresh::Background
}

/// Records each argument once; reports unknown and duplicate ones.
fn collect<'a>(cx: &mut Ctxt, args: &'a Args) -> Given<'a> {
    let mut given = Given::default();
    for a in &args.list {
        let name = a.name.to_string();
        if !symbol::ALL.contains(&name.as_str()) {
            let hint = symbol::ALIASES
                .iter()
                .find(|(alias, _)| *alias == name)
                .map(|(_, meant)| *meant)
                .or_else(|| did_you_mean(&name, symbol::ALL));
            let list = symbol::ALL
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let msg = match hint {
                Some(h) => format!(
                    "unknown argument `{name}`; did you mean `{h}`?\nthe arguments are: {list}"
                ),
                None => format!("unknown argument `{name}`; the arguments are: {list}"),
            };
            cx.error_spanned_by(&a.name, msg);
            continue;
        }
        if let Some(first) = given.seen.get(name.as_str()) {
            let mut e = syn::Error::new(a.name.span(), format!("duplicate argument `{name}`"));
            e.combine(syn::Error::new(
                first.name.span(),
                format!("`{name}` is first given here"),
            ));
            cx.push(e);
            continue;
        }
        let flag = name == symbol::UNBOUNDED;
        match (&a.value, flag) {
            (None, false) if a.ty.is_none() => {
                cx.error_spanned_by(&a.name, format!("`{name}` needs a value: `{name} = ...`"))
            }
            (Some(v), true) if !matches!(v, Expr::Lit(l) if matches!(l.lit, Lit::Bool(_))) => {
                cx.error_spanned_by(v, "`unbounded` takes no value (or `true`/`false`)");
            }
            _ => {}
        }
        given.seen.insert(name, a);
    }
    given
}

fn check_signature(cx: &mut Ctxt, func: &Func) {
    let sig = &func.sig;
    if let Some(c) = &sig.constness {
        cx.error_spanned_by(
            c,
            "`#[cached]` cannot memoize a `const fn`: a cache is runtime state; remove `const`",
        );
    }
    if let syn::Safety::Unsafe(u) = &sig.safety {
        cx.error_spanned_by(
            u,
            "`#[cached]` does not support `unsafe fn`: memoize a safe function that wraps the \
             unsafe call instead",
        );
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(
            abi,
            "`#[cached]` cannot memoize an `extern` function: its callers may be foreign code; \
             memoize a Rust function that it calls instead",
        );
    }
    if let Some(v) = &sig.variadic {
        cx.error_spanned_by(v, "`#[cached]` cannot memoize a variadic function");
    }
    if let ReturnType::Type(_, t) = &sig.output
        && contains_impl_trait(t)
    {
        cx.error_spanned_by(
            t,
            "`#[cached]` needs a nameable return type to store; `impl Trait` cannot be cached \
             (return a concrete type, or a `Box<dyn Trait>` that is `Clone`)",
        );
    }
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => match &r.kind {
                syn::ReceiverKind::Reference(_, _, Some(m)) => cx.error_spanned_by(
                    quote!(#m #r),
                    "`#[cached]` cannot memoize a `&mut self` method: a cached result must not \
                     depend on state the call may change; take `&self`",
                ),
                syn::ReceiverKind::Value => cx.error_spanned_by(
                    r,
                    "`#[cached]` cannot memoize a method that takes `self` by value; take `&self`",
                ),
                syn::ReceiverKind::Typed(_, ty) if matches!(&**ty, Type::Reference(t) if t.mutability.is_some()) =>
                {
                    cx.error_spanned_by(
                        r,
                        "`#[cached]` cannot memoize a `&mut self` method: a cached result must not \
                         depend on state the call may change; take `&self`",
                    );
                }
                _ => {}
            },
            FnArg::Typed(pt) => {
                if let Type::Reference(r) = &*pt.ty
                    && r.mutability.is_some()
                {
                    cx.error_spanned_by(
                        &pt.ty,
                        format!(
                            "`#[cached]` cannot memoize a function that takes `&mut` arguments \
                             (`{}`): a cache hit would skip the body's writes through it",
                            pt.pat.to_token_stream()
                        ),
                    );
                }
            }
        }
    }
}

fn contains_impl_trait(t: &Type) -> bool {
    t.to_token_stream()
        .into_iter()
        .any(|tt| matches!(&tt, TokenTree::Ident(i) if i == "impl"))
}

fn classify_return(cx: &mut Ctxt, given: &Given<'_>, func: &Func) -> Returns {
    if let Some(a) = given.seen.get(symbol::RETURNS) {
        return match &a.value {
            Some(Expr::Lit(syn::ExprLit {
                lit: Lit::Str(s), ..
            })) => match s.value().as_str() {
                "result" => Returns::Result,
                "option" => Returns::Option,
                "value" => Returns::Value,
                other => {
                    let hint = did_you_mean(other, &["result", "option", "value"])
                        .map(|h| format!("; did you mean `\"{h}\"`?"))
                        .unwrap_or_default();
                    cx.error_spanned_by(
                        s,
                        format!(
                            "unknown `returns = \"{other}\"`{hint}\nexpected `\"result\"`, \
                             `\"option\"` or `\"value\"`"
                        ),
                    );
                    Returns::Value
                }
            },
            Some(v) => {
                cx.error_spanned_by(
                    v,
                    "`returns` takes a string: `\"result\"`, `\"option\"` or `\"value\"`",
                );
                Returns::Value
            }
            None => Returns::Value,
        };
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

/// The declared return type and the cached value type.
fn value_types(
    cx: &mut Ctxt,
    func: &Func,
    returns: Returns,
    krate: &TokenStream,
) -> (TokenStream, TokenStream) {
    let ret = match &func.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, t) => {
            check_storable(cx, t, &func.sig.generics, "return");
            t.to_token_stream()
        }
    };
    let span = ret.span();
    let value = match returns {
        Returns::Value => ret.clone(),
        Returns::Result => {
            quote_spanned!(span=> <#ret as #krate::__private::ResultParts>::Ok)
        }
        Returns::Option => {
            quote_spanned!(span=> <#ret as #krate::__private::OptionParts>::Some)
        }
    };
    (ret, value)
}

/// A type that becomes part of the cache's static type must be concrete and `'static`.
fn check_storable(cx: &mut Ctxt, ty: &Type, generics: &syn::Generics, what: &str) -> bool {
    let params: HashSet<String> = generics
        .params
        .iter()
        .filter_map(|p| match p {
            syn::GenericParam::Type(t) => Some(t.ident.to_string()),
            syn::GenericParam::Const(c) => Some(c.ident.to_string()),
            syn::GenericParam::Lifetime(_) => None,
        })
        .collect();
    let mut ok = true;
    let mut walk = vec![ty.to_token_stream()];
    while let Some(ts) = walk.pop() {
        let mut prev_apostrophe = false;
        for tt in ts {
            match &tt {
                TokenTree::Group(g) => walk.push(g.stream()),
                TokenTree::Ident(i) if prev_apostrophe && i != "static" => {
                    cx.error_spanned_by(
                        ty,
                        format!(
                            "the {what} type borrows (`'{i}`), so it cannot be stored in a \
                             cache; use an owned type{}",
                            if what == "key" {
                                ", or give a `key` that owns its data"
                            } else {
                                ""
                            }
                        ),
                    );
                    return false;
                }
                TokenTree::Ident(i) if params.contains(&i.to_string()) => {
                    cx.error_spanned_by(
                        i,
                        format!(
                            "the {what} type depends on the generic parameter `{i}`, but one \
                             cache serves every instantiation: make the {what} type concrete{}",
                            if what == "key" {
                                " with an explicit `key` and `key_type`"
                            } else {
                                ""
                            }
                        ),
                    );
                    ok = false;
                }
                TokenTree::Ident(i) if i == "Self" => {
                    cx.error_spanned_by(
                        i,
                        format!(
                            "the {what} type names `Self`, which the function's cache (a static) \
                             cannot use: write the concrete type"
                        ),
                    );
                    ok = false;
                }
                _ => {}
            }
            prev_apostrophe = matches!(&tt, TokenTree::Punct(p) if p.as_char() == '\'');
        }
    }
    ok
}

/// An argument `ident: ty` of the signature.
struct Param<'a> {
    ident: &'a syn::Ident,
    ty: &'a Type,
}

fn params(func: &Func) -> Vec<Result<Param<'_>, &syn::PatType>> {
    func.sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(pt) => Some(pt),
            FnArg::Receiver(_) => None,
        })
        .map(|pt| match &*pt.pat {
            Pat::Ident(pi) if pi.subpat.is_none() && pi.by_ref.is_none() => Ok(Param {
                ident: &pi.ident,
                ty: &pt.ty,
            }),
            _ => Err(pt),
        })
        .collect()
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
fn owned_value(p: &Param<'_>) -> TokenStream {
    let ident = p.ident;
    match p.ty {
        Type::Reference(_) => quote!(::std::borrow::ToOwned::to_owned(#ident)),
        _ => quote!(::core::clone::Clone::clone(&#ident)),
    }
}

/// Checks that a parameter can be (part of) the key.
fn check_key_param(cx: &mut Ctxt, p: &Param<'_>, func: &Func) -> bool {
    if contains_impl_trait(p.ty) {
        cx.error_spanned_by(
            p.ty,
            format!(
                "argument `{}` has an `impl Trait` type, which cannot be part of the key; give a \
                 `key` made of the other arguments (e.g. `key = id`)",
                p.ident
            ),
        );
        return false;
    }
    let stripped = match p.ty {
        Type::Reference(r) => &*r.elem,
        t => t,
    };
    check_storable(cx, stripped, &func.sig.generics, "key")
}

fn key_plan(
    cx: &mut Ctxt,
    given: &Given<'_>,
    func: &Func,
) -> (Option<KeyPlan>, Option<TokenStream>) {
    let key_type = given.seen.get(symbol::KEY_TYPE);
    let key = given.seen.get(symbol::KEY).and_then(|a| a.value.as_ref());
    let receiver = func.sig.receiver();
    if key.is_none() {
        if let Some(kt) = key_type {
            cx.error_spanned_by(
                &kt.name,
                "`key_type` gives the type of a `key` expression, but there is no `key`",
            );
        }
        if let Some(r) = receiver {
            cx.error_spanned_by(
                r,
                format!(
                    "a method needs an explicit `key`: `self` is rarely what identifies the \
                     result, so say what does, e.g. `#[cached(key = {})]`",
                    params(func)
                        .first()
                        .and_then(|p| p.as_ref().ok().map(|p| p.ident.to_string()))
                        .unwrap_or_else(|| "self.id".into())
                ),
            );
            return (None, None);
        }
        return default_key(cx, func);
    }
    let Some(expr) = key else {
        return (None, None);
    };
    if let Some(kt) = key_type {
        let Some(t) = &kt.ty else {
            return (None, None);
        };
        check_storable(cx, t, &func.sig.generics, "key");
        let ty = t.to_token_stream();
        return (
            Some(KeyPlan::Computed {
                expr: expr.to_token_stream(),
            }),
            Some(ty),
        );
    }
    infer_key(cx, expr, func)
}

/// No `key`: every argument, owned.
fn default_key(cx: &mut Ctxt, func: &Func) -> (Option<KeyPlan>, Option<TokenStream>) {
    let mut ok = true;
    let mut ps = Vec::new();
    for p in params(func) {
        match p {
            Ok(p) => {
                ok &= check_key_param(cx, &p, func);
                ps.push(p);
            }
            Err(pt) => {
                cx.error_spanned_by(
                    &pt.pat,
                    "a pattern argument (or a `ref` binding) cannot be part of the default key; \
                     give the argument a plain name, or a `key` expression",
                );
                ok = false;
            }
        }
    }
    if !ok {
        return (None, None);
    }
    match ps.as_slice() {
        [] => (
            Some(KeyPlan::Computed { expr: quote!(()) }),
            Some(quote!(())),
        ),
        [p] => single(p),
        many => {
            let tys = many.iter().map(|p| owned_ty(p.ty));
            let vals = many.iter().map(owned_value);
            (
                Some(KeyPlan::Computed {
                    expr: quote!((#(#vals,)*)),
                }),
                Some(quote!((#(#tys,)*))),
            )
        }
    }
}

fn single(p: &Param<'_>) -> (Option<KeyPlan>, Option<TokenStream>) {
    let plan = match p.ty {
        Type::Reference(_) => KeyPlan::Borrowed {
            ident: p.ident.clone(),
        },
        _ => KeyPlan::Owned {
            ident: p.ident.clone(),
        },
    };
    (Some(plan), Some(owned_ty(p.ty)))
}

/// `key = <expr>` without `key_type`: the type is read off simple forms.
fn infer_key(cx: &mut Ctxt, expr: &Expr, func: &Func) -> (Option<KeyPlan>, Option<TokenStream>) {
    let ps: Vec<Param<'_>> = params(func).into_iter().filter_map(Result::ok).collect();
    let names: Vec<String> = ps.iter().map(|p| p.ident.to_string()).collect();
    let find = |cx: &mut Ctxt, e: &Expr| -> Option<usize> {
        let Expr::Path(path) = e else { return None };
        let ident = path.path.get_ident()?;
        let i = ps.iter().position(|p| p.ident == ident);
        if i.is_none() && ident != "self" {
            let hint = did_you_mean(
                &ident.to_string(),
                &names.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .map(|h| format!("; did you mean `{h}`?"))
            .unwrap_or_default();
            let list = if names.is_empty() {
                "it takes no arguments".to_string()
            } else {
                format!(
                    "its arguments are {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            cx.error_spanned_by(
                ident,
                format!(
                    "the key names `{ident}`, which is not an argument of `{}`{hint}\n{list}",
                    func.sig.ident
                ),
            );
        }
        i
    };
    let cant_infer = |_: &mut Ctxt| {
        (
            Some(KeyPlan::Inferred {
                expr: expr.to_token_stream(),
            }),
            Some(quote!(_)),
        )
    };
    match expr {
        Expr::Path(p) if p.path.get_ident().is_some() => match find(cx, expr) {
            Some(i) => {
                if !check_key_param(cx, &ps[i], func) {
                    return (None, None);
                }
                single(&ps[i])
            }
            None => {
                if p.path.is_ident("self") {
                    return cant_infer(cx);
                }
                (None, None)
            }
        },
        Expr::Tuple(t) => {
            let mut tys = Vec::new();
            let mut vals = Vec::new();
            let mut missing = false;
            for e in &t.elems {
                let Expr::Path(p) = e else {
                    return cant_infer(cx);
                };
                if p.path.get_ident().is_none() {
                    return cant_infer(cx);
                }
                match find(cx, e) {
                    Some(i) => {
                        if !check_key_param(cx, &ps[i], func) {
                            missing = true;
                            continue;
                        }
                        tys.push(owned_ty(ps[i].ty));
                        vals.push(owned_value(&ps[i]));
                    }
                    None => missing = true,
                }
            }
            if missing {
                return (None, None);
            }
            (
                Some(KeyPlan::Computed {
                    expr: quote!((#(#vals,)*)),
                }),
                Some(quote!((#(#tys,)*))),
            )
        }
        Expr::MethodCall(m) if m.args.is_empty() && m.turbofish.is_none() => {
            let method = m.method.to_string();
            let i = match &*m.receiver {
                Expr::Path(p) if p.path.get_ident().is_some() => find(cx, &m.receiver),
                _ => return cant_infer(cx),
            };
            let Some(i) = i else { return (None, None) };
            if !check_key_param(cx, &ps[i], func) {
                return (None, None);
            }
            let ty = match method.as_str() {
                "to_string" => quote!(::std::string::String),
                "clone" | "to_owned" => owned_ty(ps[i].ty),
                _ => return cant_infer(cx),
            };
            (
                Some(KeyPlan::Computed {
                    expr: expr.to_token_stream(),
                }),
                Some(ty),
            )
        }
        _ => cant_infer(cx),
    }
}

fn settings(cx: &mut Ctxt, given: &Given<'_>, func: &Func, krate: &TokenStream) -> Settings {
    let mut const_checks = Vec::new();
    let name = match given.seen.get(symbol::NAME) {
        Some(a) => match &a.value {
            Some(Expr::Lit(syn::ExprLit {
                lit: Lit::Str(s), ..
            })) if !s.value().trim().is_empty() => s.to_token_stream(),
            Some(v) => {
                cx.error_spanned_by(
                    v,
                    "`name` takes a non-empty string, e.g. `name = \"users\"`",
                );
                quote!("")
            }
            None => quote!(""),
        },
        None => {
            let ident = func.sig.ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #ident))
        }
    };

    let unbounded = given.seen.get(symbol::UNBOUNDED).is_some_and(|a| {
        !matches!(&a.value, Some(Expr::Lit(syn::ExprLit { lit: Lit::Bool(b), .. })) if !b.value)
    });
    let capacity = match given.seen.get(symbol::CAPACITY) {
        Some(a) => {
            if unbounded && let Some(u) = given.seen.get(symbol::UNBOUNDED) {
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
            capacity(cx, a, &mut const_checks)
        }
        None => quote!(#krate::DEFAULT_CAPACITY),
    };

    let policy = match given
        .seen
        .get(symbol::POLICY)
        .and_then(|a| a.value.as_ref())
    {
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        })) => {
            match s.value().parse::<Policy>() {
                // The variant's name is its derived `Debug`.
                Ok(p) => {
                    let v = format_ident!("{}", format!("{p:?}"));
                    quote!(#krate::Policy::#v)
                }
                Err(_) => {
                    let v = s.value().to_ascii_lowercase();
                    let hint = did_you_mean(&v, &symbol::policy_names())
                        .map(|h| format!("; did you mean `\"{h}\"`?"))
                        .unwrap_or_default();
                    cx.error_spanned_by(
                        s,
                        format!(
                            "unknown policy `\"{}\"`{hint}\nexpected one of {}",
                            s.value(),
                            symbol::policy_list()
                        ),
                    );
                    quote!(#krate::Policy::S3Fifo)
                }
            }
        }
        Some(v) => {
            cx.error_spanned_by(
                v,
                format!("`policy` takes a string: {}", symbol::policy_alternatives()),
            );
            quote!(#krate::Policy::S3Fifo)
        }
        None => quote!(#krate::Policy::S3Fifo),
    };

    let ttl = given
        .seen
        .get(symbol::TTL)
        .and_then(|a| duration(cx, a, "ttl"));
    let negative_ttl = given
        .seen
        .get(symbol::NEGATIVE_TTL)
        .and_then(|a| duration(cx, a, "negative_ttl"));

    let jitter = match given.seen.get(symbol::JITTER) {
        Some(a) => jitter(
            cx,
            a,
            ttl.as_ref().or(negative_ttl.as_ref()),
            krate,
            &mut const_checks,
        ),
        None => quote!(#krate::__private::None),
    };

    let mut dur_tokens = |d: Option<Dur>, what: &str| -> TokenStream {
        match d {
            None => quote!(#krate::__private::None),
            Some(Dur::Lit(nanos, span)) => {
                let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
                let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
                quote_spanned!(span=> #krate::__private::Some(#krate::__private::Duration::new(#secs, #sub)))
            }
            Some(Dur::Expr(e)) => {
                let msg = format!("`{what}` must be longer than zero");
                const_checks.push(quote_spanned!(e.span()=>
                    const _: () = ::core::assert!(!#krate::__private::Duration::is_zero(&(#e)), #msg);
                ));
                quote_spanned!(e.span()=> #krate::__private::Some(#e))
            }
        }
    };
    let ttl = dur_tokens(ttl, "ttl");
    let negative_ttl = dur_tokens(negative_ttl, "negative_ttl");
    let stale = given
        .seen
        .get(symbol::STALE)
        .and_then(|a| duration(cx, a, "stale"));
    let stale = dur_tokens(stale, "stale");
    let early_refresh = match given.seen.get(symbol::EARLY_REFRESH) {
        None => quote!(#krate::__private::None),
        Some(a) => early_refresh(cx, a, krate),
    };

    Settings {
        name,
        capacity,
        unbounded,
        policy,
        ttl,
        negative_ttl,
        jitter,
        stale,
        early_refresh,
        const_checks,
    }
}

/// `early_refresh = 1.0`: XFetch's beta, a positive number.
fn early_refresh(cx: &mut Ctxt, a: &Arg, krate: &TokenStream) -> TokenStream {
    let beta = match &a.value {
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Float(f), ..
        })) => f.base10_parse::<f64>().ok(),
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        })) => i.base10_parse::<u32>().ok().map(f64::from),
        _ => None,
    };
    match beta {
        Some(b) if b > 0.0 && b <= 1e6 && b.is_finite() => {
            quote!(#krate::__private::Some(#b))
        }
        _ => {
            let msg = "`early_refresh` takes XFetch's beta, a positive number such as `1.0` (the \
                       usual choice; larger refreshes earlier)";
            match &a.value {
                Some(v) => cx.error_spanned_by(v, msg),
                None => cx.error_spanned_by(&a.name, msg),
            }
            quote!(#krate::__private::None)
        }
    }
}

fn capacity(cx: &mut Ctxt, a: &Arg, const_checks: &mut Vec<TokenStream>) -> TokenStream {
    match &a.value {
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        })) => match i.base10_parse::<u64>() {
            Ok(0) => {
                cx.error_spanned_by(
                    i,
                    "`capacity` must be at least 1 (for no bound at all, write `unbounded`)",
                );
                quote!(1u64)
            }
            Ok(n) => quote!(#n),
            Err(_) => {
                cx.error_spanned_by(i, "`capacity` must be a whole number up to `u64::MAX`");
                quote!(1u64)
            }
        },
        Some(Expr::Unary(u)) if matches!(u.op, syn::UnOp::Neg(_)) => {
            cx.error_spanned_by(u, "`capacity` must be a positive number of entries");
            quote!(1u64)
        }
        Some(Expr::Lit(l)) => {
            cx.error_spanned_by(
                l,
                "`capacity` is a number of entries, e.g. `capacity = 10_000`",
            );
            quote!(1u64)
        }
        Some(e) => {
            const_checks.push(quote_spanned!(e.span()=>
                const _: () = ::core::assert!((#e) as u64 > 0, "`capacity` must be at least 1");
            ));
            quote_spanned!(e.span()=> (#e) as u64)
        }
        None => quote!(1u64),
    }
}

/// Parses a duration setting; `None` after reporting an error.
fn duration(cx: &mut Ctxt, a: &Arg, what: &str) -> Option<Dur> {
    match a.value.as_ref()? {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => match parse_duration(&s.value()) {
            Ok(0) => {
                cx.error_spanned_by(
                    s,
                    format!(
                        "`{what}` must be longer than zero (to disable caching, remove the attribute)"
                    ),
                );
                None
            }
            Ok(n) if n > u128::from(u64::MAX / 2) => {
                cx.error_spanned_by(
                    s,
                    format!("`{what}` is too long (the limit is about 292 years)"),
                );
                None
            }
            Ok(n) => Some(Dur::Lit(n, s.span())),
            Err(why) => {
                cx.error_spanned_by(
                    s,
                    format!(
                        "invalid duration `\"{}\"`: {why}\nwrite a number and a unit (`ns`, `us`, \
                         `ms`, `s`, `m`, `h`, `d`), e.g. `\"250ms\"`, `\"5s\"`, `\"1m30s\"`",
                        s.value()
                    ),
                );
                None
            }
        },
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        }) => {
            cx.error_spanned_by(
                i,
                format!(
                    "a bare number has no unit: write `{what} = \"{}s\"` (or a `Duration` expression)",
                    i.base10_digits()
                ),
            );
            None
        }
        Expr::Lit(l) => {
            cx.error_spanned_by(
                l,
                format!(
                    "`{what}` takes a duration string such as `\"5s\"` or a `Duration` expression"
                ),
            );
            None
        }
        e => Some(Dur::Expr(e.clone())),
    }
}

/// `"1m30s"` to nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Result<u128, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("it is empty".into());
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let (num, tail) = rest.split_at(digits);
        let n: u128 = num.parse().map_err(|_| format!("`{num}` is too large"))?;
        let tail = tail.trim_start();
        let unit_len = tail
            .chars()
            .take_while(|c| c.is_alphabetic())
            .map(char::len_utf8)
            .sum::<usize>();
        if unit_len == 0 {
            return Err(format!("`{num}` has no unit"));
        }
        let (unit, tail) = tail.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" | "nanos" | "nanosecond" | "nanoseconds" => 1,
            "us" | "µs" | "micros" | "microsecond" | "microseconds" => 1_000,
            "ms" | "millis" | "millisecond" | "milliseconds" => 1_000_000,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60 * 1_000_000_000,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600 * 1_000_000_000,
            "d" | "day" | "days" => 86_400 * 1_000_000_000,
            other => return Err(format!("unknown unit `{other}`")),
        };
        total = n
            .checked_mul(scale)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(|| "it is too long".to_string())?;
        rest = tail.trim_start();
    }
    Ok(total)
}

/// `ttl` is the TTL the jitter is measured against (`ttl`, else `negative_ttl`).
fn jitter(
    cx: &mut Ctxt,
    a: &Arg,
    ttl: Option<&Dur>,
    krate: &TokenStream,
    const_checks: &mut Vec<TokenStream>,
) -> TokenStream {
    let none = quote!(#krate::__private::None);
    if ttl.is_none() {
        cx.error_spanned_by(
            &a.name,
            "`jitter` spreads the TTL of each entry, but there is no `ttl` or `negative_ttl`",
        );
        return none;
    }
    let Some(v) = &a.value else { return none };
    match v {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Float(f), ..
        }) => match f.base10_parse::<f64>() {
            Ok(x) if (0.0..=1.0).contains(&x) => {
                quote!(#krate::__private::Some(#krate::Jitter::Fraction(#f)))
            }
            _ => {
                cx.error_spanned_by(
                    f,
                    "a jitter fraction must be within 0.0..=1.0 (0% to 100% of the TTL), e.g. \
                     `jitter = 0.1` for +/-10%",
                );
                none
            }
        },
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        }) => {
            cx.error_spanned_by(
                i,
                "write the jitter as a fraction of the TTL (`jitter = 0.1` for +/-10%) or as a \
                 duration string (`jitter = \"2s\"`)",
            );
            none
        }
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => match parse_duration(&s.value()) {
            Ok(n) => {
                if let Some(Dur::Expr(e)) = ttl {
                    // Checked at compile time against the TTL expression.
                    const_checks.push(quote_spanned!(s.span()=>
                        const _: () = ::core::assert!(
                            #n <= #krate::__private::Duration::as_nanos(&(#e)),
                            "the jitter is over 100% of the TTL: it must not exceed the TTL"
                        );
                    ));
                }
                if let Some(Dur::Lit(t, _)) = ttl
                    && n > *t
                {
                    cx.error_spanned_by(
                        s,
                        format!(
                            "a jitter of `\"{}\"` is over 100% of the TTL: each entry's TTL is \
                             drawn from TTL +/- jitter, so it must not exceed the TTL",
                            s.value()
                        ),
                    );
                    return none;
                }
                let secs = u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX);
                let sub = u32::try_from(n % 1_000_000_000).unwrap_or(0);
                quote!(#krate::__private::Some(#krate::Jitter::Spread(#krate::__private::Duration::new(#secs, #sub))))
            }
            Err(why) => {
                cx.error_spanned_by(
                    s,
                    format!("invalid jitter duration `\"{}\"`: {why}", s.value()),
                );
                none
            }
        },
        e => {
            cx.error_spanned_by(
                e,
                "`jitter` takes a fraction literal (`0.1`) or a duration string (`\"2s\"`)",
            );
            none
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration("5s"), Ok(5_000_000_000));
        assert_eq!(parse_duration("10m"), Ok(600_000_000_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000_000_000));
        assert_eq!(parse_duration("1d"), Ok(86_400_000_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("1h 5m"), Ok(3_900_000_000_000));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("99999999999999999999999999999999999999999d").is_err());
    }
}
