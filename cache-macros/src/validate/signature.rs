//! Checks of the function's signature: its form (`const`, `unsafe`, `extern`, receivers,
//! `&mut` arguments), and whether a type can be part of the cache's static type.

use std::collections::HashSet;

use proc_macro2::TokenTree;
use quote::ToTokens;
use syn::{FnArg, ReturnType, Type};

use crate::ctxt::Ctxt;
use crate::item::Func;

/// The function's own form: what `#[cached]` cannot memoize.
pub(super) fn check(cx: &mut Ctxt, func: &Func) {
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
                syn::ReceiverKind::Reference(_, _, Some(m)) => {
                    // From the `mut` to the end of the receiver.
                    let mut from_mut = m.to_token_stream();
                    r.to_tokens(&mut from_mut);
                    cx.error_spanned_by(
                        from_mut,
                        "`#[cached]` cannot memoize a `&mut self` method: a cached result must \
                         not depend on state the call may change; take `&self`",
                    );
                }
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

/// Whether a type mentions `impl Trait`.
pub(super) fn contains_impl_trait(t: &Type) -> bool {
    t.to_token_stream()
        .into_iter()
        .any(|tt| matches!(&tt, TokenTree::Ident(i) if i == "impl"))
}

/// A type that becomes part of the cache's static type must be concrete and `'static`.
pub(super) fn check_storable(
    cx: &mut Ctxt,
    ty: &Type,
    generics: &syn::Generics,
    what: &str,
) -> bool {
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
