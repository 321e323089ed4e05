//! `#[cache_put(f, key = ..)]` and `#[cache_evict(f, key = .. | all, tags = [..])]` (or
//! `#[cache_evict(tags = [..])]`, every cache): checks the arguments and builds the
//! [`WriteModel`]. Every problem is reported through the [`Ctxt`].

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Expr, ReturnType, Type};

use crate::args::{Arg, WriteArgs};
use crate::attr;
use crate::ctxt::Ctxt;
use crate::item::Func;
use crate::model::{Kind, Returns, WriteKey, WriteModel};
use crate::symbol::{self, did_you_mean};

/// Validates everything; `None` when there were errors (all recorded in `cx`).
pub(crate) fn validate(
    cx: &mut Ctxt,
    kind: Kind,
    args: &WriteArgs,
    func: Func,
) -> Option<WriteModel> {
    let attr = kind.name();
    let example = match kind {
        Kind::Put => "#[cache_put(load_user, key = user.id)]",
        Kind::Evict => "#[cache_evict(load_user, key = id)]",
    };
    let mut key: Option<Expr> = None;
    let mut all: Option<&Arg> = None;
    let mut tags: Option<Vec<Expr>> = None;
    // `tags` given, even with a value in error (so that no error about a missing target or
    // action follows from it).
    let mut tags_given = false;
    let allowed: &[&str] = match kind {
        Kind::Put => &["key"],
        Kind::Evict => &["key", "all", symbol::TAGS],
    };
    for a in &args.rest {
        let name = a.name.to_string();
        match (name.as_str(), kind) {
            (symbol::TAGS, Kind::Evict) if tags_given => {
                cx.error_spanned_by(&a.name, "duplicate argument `tags`");
            }
            (symbol::TAGS, Kind::Evict) => {
                tags_given = true;
                match attr::tags(a, false) {
                    Ok(t) => tags = Some(t.of_args),
                    Err(Some(e)) => cx.push(e),
                    Err(None) => {
                        cx.error_spanned_by(&a.name, "`tags` needs a value: `tags = [...]`");
                    }
                }
            }
            (symbol::TAGS, Kind::Put) => cx.error_spanned_by(
                &a.name,
                "`cache_put` stores one value; to invalidate tags when a function succeeds, use \
                 `#[cache_evict(tags = [...])]` (every cache) or `#[cache_evict(f, tags = [...])]` \
                 (`f`'s cache)",
            ),
            ("key", _) if key.is_some() => cx.error_spanned_by(&a.name, "duplicate argument `key`"),
            ("key", _) => match &a.value {
                Some(v) => key = Some(v.clone()),
                None => cx.error_spanned_by(&a.name, "`key` needs a value: `key = ...`"),
            },
            ("all", Kind::Evict) => {
                if a.value.is_some() {
                    cx.error_at(a.span(), "`all` takes no value");
                }
                all = Some(a);
            }
            ("all", Kind::Put) => cx.error_spanned_by(
                &a.name,
                "`cache_put` stores one value under one key; to clear the whole cache, use \
                 `#[cache_evict(f, all)]`",
            ),
            _ => {
                let hint = did_you_mean(&name, allowed)
                    .map(|h| format!("; did you mean `{h}`?"))
                    .unwrap_or_default();
                cx.error_spanned_by(
                    &a.name,
                    format!(
                        "unknown argument `{name}`{hint}\nthe arguments are: the function's name, then {}",
                        match kind {
                            Kind::Put => "`key = <expr>`",
                            Kind::Evict => "`key = <expr>` or `all`, and `tags = [...]`",
                        }
                    ),
                );
            }
        }
    }
    match (&key, all) {
        (Some(k), Some(a)) => {
            let mut e = syn::Error::new(
                a.name.span(),
                "`all` and `key` conflict: evict one key, or the whole cache",
            );
            e.combine(syn::Error::new(k.span(), "`key` is given here"));
            cx.push(e);
        }
        (None, None) if args.target.is_some() && !tags_given => cx.error_at(
            args.target.as_ref().map_or(args.span, Spanned::span),
            match kind {
                Kind::Put => "`cache_put` needs the key to store under: add `key = <expr>` (over \
                              the arguments, or `result` for the returned value)"
                    .to_string(),
                Kind::Evict => "`cache_evict` needs `key = <expr>` (one entry), `all` (the \
                                whole cache) or `tags = [...]` (the entries tagged so)"
                    .to_string(),
            },
        ),
        _ => {}
    }
    // Without a target, tags are invalidated in every cache; anything else needs the target.
    if args.target.is_none() {
        let lone = match (kind, &key, all, tags_given) {
            (Kind::Evict, None, None, true) => None,
            (Kind::Evict, Some(k), _, true) => Some(k.span()),
            (Kind::Evict, None, Some(a), true) => Some(a.name.span()),
            _ => Some(args.span),
        };
        if let Some(at) = lone {
            cx.error_at(
                at,
                format!(
                    "`#[{attr}]` first names the `#[cached]` function whose cache it updates, \
                     e.g. `{example}`{}",
                    if kind == Kind::Evict {
                        " (only `tags = [...]` goes without one: it invalidates the tags in every \
                         cache)"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
    if let Some(a) = &func.sig.constness {
        cx.error_spanned_by(a, format!("`#[{attr}]` cannot go on a `const fn`"));
    }
    if cx.has_errors() {
        return None;
    }
    let write_key = |expr: Expr| WriteKey {
        from_result: mentions_result(expr.to_token_stream()),
        expr,
    };
    Some(WriteModel {
        kind,
        returns: outcome(&func),
        func,
        target: args.target.clone(),
        key: key.map(write_key),
        all: all.is_some(),
        tags: tags
            .map(|t| t.into_iter().map(write_key).collect())
            .unwrap_or_default(),
    })
}

/// What the function returns, for "did the write succeed".
fn outcome(func: &Func) -> Returns {
    let ReturnType::Type(_, t) = &func.sig.output else {
        return Returns::Value;
    };
    if let Type::Path(p) = &**t
        && let Some(last) = p.path.segments.last()
    {
        if last.ident == "Result" {
            return Returns::Result;
        }
        if last.ident == "Option" {
            return Returns::Option;
        }
    }
    Returns::Value
}

/// Whether `tokens` mention the identifier `result` (the key is then computed from it), also as
/// an inline argument of a format string (`format!("product:{result}")`).
fn mentions_result(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => i == "result",
        TokenTree::Group(g) => mentions_result(g.stream()),
        TokenTree::Literal(l) => {
            // `{{` is an escaped brace, not an argument.
            let l = l.to_string().replace("{{", "");
            l.starts_with('"') && (l.contains("{result}") || l.contains("{result:"))
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::mentions_result;
    use quote::quote;

    #[test]
    fn result_is_found_in_expressions_and_inline_format_arguments() {
        assert!(mentions_result(quote!(result.id)));
        assert!(mentions_result(quote!(format!("product:{}", result.id))));
        assert!(mentions_result(quote!(format!("product:{result}"))));
        assert!(mentions_result(quote!(format!("product:{result:?}"))));
        assert!(!mentions_result(quote!(format!("product:{id}"))));
        assert!(!mentions_result(quote!(format!(
            "{{result}}: {id}",
            id = results
        ))));
        assert!(!mentions_result(quote!("result")));
    }
}
