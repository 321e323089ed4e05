//! The key: which arguments it is made of, or the `key` expression and its type.

use syn::{Expr, FnArg, Pat, Type};

use super::signature::{check_storable, contains_impl_trait};
use crate::attr::CachedArgs;
use crate::ctxt::Ctxt;
use crate::item::Func;
use crate::model::{KeyPlan, KeyType, Param};
use crate::symbol::did_you_mean;

/// The function's arguments: `Ok` for a plain `ident: ty`, `Err` for a pattern or `ref` binding.
fn params(func: &Func) -> Vec<Result<Param, &syn::PatType>> {
    func.sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(pt) => Some(pt),
            FnArg::Receiver(_) => None,
        })
        .map(|pt| match &*pt.pat {
            Pat::Ident(pi) if pi.subpat.is_none() && pi.by_ref.is_none() => Ok(Param {
                ident: pi.ident.clone(),
                ty: (*pt.ty).clone(),
            }),
            _ => Err(pt),
        })
        .collect()
}

/// Checks that a parameter can be (part of) the key.
fn check_key_param(cx: &mut Ctxt, p: &Param, func: &Func) -> bool {
    if contains_impl_trait(&p.ty) {
        cx.error_spanned_by(
            &p.ty,
            format!(
                "argument `{}` has an `impl Trait` type, which cannot be part of the key; give a \
                 `key` made of the other arguments (e.g. `key = id`)",
                p.ident
            ),
        );
        return false;
    }
    let stripped = match &p.ty {
        Type::Reference(r) => &*r.elem,
        t => t,
    };
    check_storable(cx, stripped, &func.sig.generics, "key")
}

/// How the key is found; `None` after reporting why it cannot be.
pub(super) fn plan(cx: &mut Ctxt, args: &CachedArgs, func: &Func) -> Option<KeyPlan> {
    let key_type = args.key_type.as_ref();
    let key = args.key.as_ref().and_then(|a| a.ok());
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
            return None;
        }
        return default_key(cx, func);
    }
    let expr = key?;
    if let Some(kt) = key_type {
        let t = kt.ok()?;
        check_storable(cx, t, &func.sig.generics, "key");
        return Some(KeyPlan::Expr {
            expr: expr.clone(),
            ty: KeyType::Given(t.clone()),
        });
    }
    infer_key(cx, expr, func)
}

/// No `key`: every argument, owned.
fn default_key(cx: &mut Ctxt, func: &Func) -> Option<KeyPlan> {
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
        return None;
    }
    match <[Param; 1]>::try_from(ps) {
        Ok([p]) => Some(single(p)),
        Err(many) => Some(KeyPlan::Tuple(many)),
    }
}

/// The key is one argument.
fn single(p: Param) -> KeyPlan {
    match p.ty {
        Type::Reference(_) => KeyPlan::Borrowed(p),
        _ => KeyPlan::Owned(p),
    }
}

/// `key = <expr>` without `key_type`: the type is read off simple forms.
fn infer_key(cx: &mut Ctxt, expr: &Expr, func: &Func) -> Option<KeyPlan> {
    let ps: Vec<Param> = params(func).into_iter().filter_map(Result::ok).collect();
    let names: Vec<String> = ps.iter().map(|p| p.ident.to_string()).collect();
    let find = |cx: &mut Ctxt, e: &Expr| -> Option<usize> {
        let Expr::Path(path) = e else { return None };
        let ident = path.path.get_ident()?;
        let i = ps.iter().position(|p| p.ident == *ident);
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
    let cant_infer = || Some(KeyPlan::Inferred { expr: expr.clone() });
    match expr {
        Expr::Path(p) if p.path.get_ident().is_some() => match find(cx, expr) {
            Some(i) => {
                if !check_key_param(cx, &ps[i], func) {
                    return None;
                }
                Some(single(ps[i].clone()))
            }
            None if p.path.is_ident("self") => cant_infer(),
            None => None,
        },
        Expr::Tuple(t) => {
            let mut parts = Vec::new();
            let mut missing = false;
            for e in &t.elems {
                let Expr::Path(p) = e else {
                    return cant_infer();
                };
                if p.path.get_ident().is_none() {
                    return cant_infer();
                }
                match find(cx, e) {
                    Some(i) => {
                        if !check_key_param(cx, &ps[i], func) {
                            missing = true;
                            continue;
                        }
                        parts.push(ps[i].clone());
                    }
                    None => missing = true,
                }
            }
            if missing {
                return None;
            }
            Some(KeyPlan::Tuple(parts))
        }
        Expr::MethodCall(m) if m.args.is_empty() && m.turbofish.is_none() => {
            let i = match &*m.receiver {
                Expr::Path(p) if p.path.get_ident().is_some() => find(cx, &m.receiver),
                _ => return cant_infer(),
            };
            let i = i?;
            if !check_key_param(cx, &ps[i], func) {
                return None;
            }
            let ty = match m.method.to_string().as_str() {
                "to_string" => KeyType::String,
                "clone" | "to_owned" => KeyType::OwnedOf(ps[i].ty.clone()),
                _ => return cant_infer(),
            };
            Some(KeyPlan::Expr {
                expr: expr.clone(),
                ty,
            })
        }
        _ => cant_infer(),
    }
}
