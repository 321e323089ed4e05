//! `#[cache_put(f, key = ..)]` and `#[cache_evict(f, key = .. | all)]`: functions that change
//! data keep a `#[cached]` function's cache in step (write-through, invalidation on write).
//!
//! Same steps as `#[cached]`: parse ([`WriteArgs`]), validate (every error collected), expand.
//! The named function's cache is reached through the companion `#[cached]` emits beside it,
//! `__cache_of_<f>`, so a misspelled name or a key of the wrong type is a compile error at the
//! user's own tokens.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, Path, ReturnType, Token, Type};

use crate::args::Arg;
use crate::ctxt::Ctxt;
use crate::item::Func;
use crate::symbol::did_you_mean;

/// Which attribute.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Put,
    Evict,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Put => "cache_put",
            Kind::Evict => "cache_evict",
        }
    }
}

/// `f, key = expr, all`.
struct WriteArgs {
    target: Option<Path>,
    /// Where the arguments start (for "missing target" errors).
    span: Span,
    rest: Vec<Arg>,
}

impl Parse for WriteArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let span = input.span();
        if input.is_empty() {
            return Ok(WriteArgs {
                target: None,
                span,
                rest: Vec::new(),
            });
        }
        // The target is a path not followed by `=` (`key = ..` first means it was left out).
        let fork = input.fork();
        let target = if fork.parse::<Path>().is_ok() && !fork.peek(Token![=]) {
            Some(input.parse::<Path>()?)
        } else {
            None
        };
        if target.is_some() && !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
        let rest = syn::punctuated::Punctuated::<Arg, Token![,]>::parse_terminated(input)?;
        Ok(WriteArgs {
            target,
            span,
            rest: rest.into_iter().collect(),
        })
    }
}

/// What the function returns, for "did the write succeed".
#[derive(Clone, Copy)]
enum Outcome {
    Value,
    Result,
    Option,
}

fn outcome(func: &Func) -> Outcome {
    let ReturnType::Type(_, t) = &func.sig.output else {
        return Outcome::Value;
    };
    if let Type::Path(p) = &**t
        && let Some(last) = p.path.segments.last()
    {
        if last.ident == "Result" {
            return Outcome::Result;
        }
        if last.ident == "Option" {
            return Outcome::Option;
        }
    }
    Outcome::Value
}

/// Whether `tokens` mention the identifier `result` (the key is then computed from it).
fn mentions_result(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => i == "result",
        TokenTree::Group(g) => mentions_result(g.stream()),
        _ => false,
    })
}

pub(crate) fn expand(kind: Kind, args: TokenStream, input: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let attr = kind.name();
    let func = match crate::item::parse_func(&mut cx, input, |what| {
        format!("`#[{attr}]` goes on a function with a body, not {what}")
    }) {
        Ok(f) => f,
        Err(out) => return out,
    };
    let fallback = func.to_token_stream();
    let args = match syn::parse2::<WriteArgs>(args) {
        Ok(a) => a,
        Err(e) => {
            cx.push(e);
            let mut out = fallback;
            out.extend(cx.into_compile_errors());
            return out;
        }
    };

    // Validate: collect every problem.
    let example = match kind {
        Kind::Put => "#[cache_put(load_user, key = user.id)]",
        Kind::Evict => "#[cache_evict(load_user, key = id)]",
    };
    if args.target.is_none() {
        cx.error_at(
            args.span,
            format!(
                "`#[{attr}]` first names the `#[cached]` function whose cache it updates, e.g. \
                 `{example}`"
            ),
        );
    }
    let mut key: Option<Expr> = None;
    let mut all: Option<&Arg> = None;
    let allowed: &[&str] = match kind {
        Kind::Put => &["key"],
        Kind::Evict => &["key", "all"],
    };
    for a in &args.rest {
        let name = a.name.to_string();
        match (name.as_str(), kind) {
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
                            Kind::Evict => "`key = <expr>` or `all`",
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
        (None, None) if args.target.is_some() => cx.error_at(
            args.target.as_ref().map_or(args.span, Spanned::span),
            match kind {
                Kind::Put => "`cache_put` needs the key to store under: add `key = <expr>` (over \
                              the arguments, or `result` for the returned value)"
                    .to_string(),
                Kind::Evict => "`cache_evict` needs `key = <expr>` (one entry) or `all` (the \
                                whole cache)"
                    .to_string(),
            },
        ),
        _ => {}
    }
    if let Some(a) = &func.sig.constness {
        cx.error_spanned_by(a, format!("`#[{attr}]` cannot go on a `const fn`"));
    }
    let (Some(target), false) = (args.target.clone(), cx.has_errors()) else {
        let mut out = fallback;
        out.extend(cx.into_compile_errors());
        return out;
    };

    // Expand.
    let mut cache_fn = target.clone();
    if let Some(last) = cache_fn.segments.last_mut() {
        let id = &last.ident;
        last.ident = format_ident!(
            "__cache_of_{}",
            id.to_string().trim_start_matches("r#"),
            span = id.span()
        );
    }
    let get_cache = quote_spanned!(target.span()=> #cache_fn());
    let span = Span::mixed_site();
    let result = format_ident!("__cache_result", span = span);
    // Located at the user's tokens (same hygiene), so that a type mismatch is reported there:
    // the value at the return type, the key at its expression.
    let ret_span = match &func.sig.output {
        ReturnType::Default => func.sig.ident.span(),
        ReturnType::Type(_, t) => t.span(),
    };
    let value = format_ident!("__cache_value", span = span.located_at(ret_span));
    let key_span = key.as_ref().map_or(span, |k| span.located_at(k.span()));
    let key_id = format_ident!("__cache_key", span = key_span);
    let ret_ty = match &func.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, t) => t.to_token_stream(),
    };
    let block = &func.block;
    let run = if func.sig.asyncness.is_some() {
        quote!(let #result: #ret_ty = async move #block.await;)
    } else {
        quote! {
            #[allow(unused_mut, clippy::redundant_closure_call)]
            let mut __body = move || -> #ret_ty #block;
            let #result: #ret_ty = __body();
        }
    };
    // The key: computed before the body (which may move the arguments), or from `result`.
    let key_from_result = key
        .as_ref()
        .is_some_and(|k| mentions_result(k.to_token_stream()));
    let (key_before, key_after) = match &key {
        Some(k) if !key_from_result => (quote_spanned!(k.span()=> let #key_id = #k;), quote!()),
        Some(k) => (
            quote!(),
            quote_spanned!(k.span()=> #[allow(unused_variables)] let result = #value; let #key_id = #k;),
        ),
        None => (quote!(), quote!()),
    };
    let success = match outcome(&func) {
        Outcome::Result => quote!(::core::result::Result::Ok(#value)),
        Outcome::Option => quote!(::core::option::Option::Some(#value)),
        Outcome::Value => quote!(#value),
    };
    let act = match (kind, &key) {
        (Kind::Put, Some(k)) => {
            let insert = quote_spanned!(k.span()=>
                #get_cache.insert(#key_id, ::core::clone::Clone::clone(#value))
            );
            quote!(#key_after #insert;)
        }
        (Kind::Evict, Some(k)) => {
            let remove = quote_spanned!(k.span()=> #get_cache.remove(&#key_id));
            quote!(#key_after let _ = #remove;)
        }
        (_, None) => quote!(#get_cache.clear();),
    };
    let (attrs, vis, defaultness, sig) = (&func.attrs, &func.vis, &func.defaultness, &func.sig);
    quote! {
        #(#attrs)*
        #vis #defaultness #sig {
            #key_before
            #run
            #[allow(irrefutable_let_patterns)]
            if let #success = &#result {
                #act
            }
            #result
        }
    }
}
