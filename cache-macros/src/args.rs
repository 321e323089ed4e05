//! The syntax of the attributes' arguments: `name [= value]`, comma separated (after the target
//! function's path for `cache_put`/`cache_evict`). Each keeps its tokens; `attr` reads what the
//! values of `#[cached]` mean, and `validate` checks them.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Path, Token};

/// One `name` or `name = value` of the attribute.
pub(crate) struct Arg {
    pub(crate) name: Ident,
    pub(crate) value: Option<Expr>,
    /// The value of `key_type`, a type rather than an expression.
    pub(crate) ty: Option<syn::Type>,
}

impl Arg {
    /// The span covering the whole argument, for errors about it as a whole.
    pub(crate) fn span(&self) -> Span {
        let start = self.name.span();
        let end = match (&self.value, &self.ty) {
            (Some(v), _) => syn::spanned::Spanned::span(v),
            (None, Some(t)) => syn::spanned::Spanned::span(t),
            (None, None) => return start,
        };
        start.join(end).unwrap_or(start)
    }
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // `crate` is a keyword; accept any identifier here and judge it in `validate`.
        let lookahead = input.lookahead1();
        if !(lookahead.peek(Ident::peek_any)) {
            return Err(syn::Error::new(
                input.span(),
                "expected an argument such as `ttl = \"5s\"`, `capacity = 10_000` or `key = id`",
            ));
        }
        let name = Ident::parse_any(input)?;
        if input.peek(Token![=]) {
            let _eq: Token![=] = input.parse()?;
            if name == crate::symbol::KEY_TYPE {
                return Ok(Arg {
                    name,
                    value: None,
                    ty: Some(input.parse()?),
                });
            }
            let value: Expr = input.parse()?;
            Ok(Arg {
                name,
                value: Some(value),
                ty: None,
            })
        } else {
            Ok(Arg {
                name,
                value: None,
                ty: None,
            })
        }
    }
}

/// All the arguments, in order.
pub(crate) struct Args {
    pub(crate) list: Vec<Arg>,
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let list = Punctuated::<Arg, Token![,]>::parse_terminated(input)?;
        Ok(Args {
            list: list.into_iter().collect(),
        })
    }
}

/// The arguments of `cache_put`/`cache_evict`: `f, key = expr, all`.
pub(crate) struct WriteArgs {
    /// The `#[cached]` function whose cache is written.
    pub(crate) target: Option<Path>,
    /// Where the arguments start (for "missing target" errors).
    pub(crate) span: Span,
    pub(crate) rest: Vec<Arg>,
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
        let rest = Punctuated::<Arg, Token![,]>::parse_terminated(input)?;
        Ok(WriteArgs {
            target,
            span,
            rest: rest.into_iter().collect(),
        })
    }
}
