//! The function being rewritten: its signature is kept whole and its body is moved verbatim.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Block, Signature, Visibility};

/// A function or method with a body.
#[derive(Clone)]
pub(crate) struct Func {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) defaultness: Option<syn::Token![default]>,
    pub(crate) sig: Signature,
    pub(crate) block: Block,
}

/// What the attribute was put on.
pub(crate) enum Input {
    Func(Box<Func>),
    /// Anything else: the tokens, kept to be emitted unchanged, and what it is (for the error).
    Other(TokenStream, &'static str),
}

impl Parse for Input {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let ahead = input.fork();
        let vis: Visibility = ahead.parse()?;
        let defaultness: Option<syn::Token![default]> = ahead.parse()?;
        if ahead.fork().parse::<Signature>().is_ok() {
            let sig: Signature = ahead.parse()?;
            if ahead.peek(syn::token::Brace) {
                let block: Block = ahead.parse()?;
                if ahead.is_empty() {
                    use syn::parse::discouraged::Speculative;
                    input.advance_to(&ahead);
                    return Ok(Input::Func(Box::new(Func {
                        attrs,
                        vis,
                        defaultness,
                        sig,
                        block,
                    })));
                }
            } else {
                let rest: TokenStream = input.parse()?;
                let mut all = TokenStream::new();
                for a in &attrs {
                    a.to_tokens(&mut all);
                }
                all.extend(rest);
                return Ok(Input::Other(all, "a function without a body"));
            }
        }
        let rest: TokenStream = input.parse()?;
        let kind = describe(&rest);
        let mut all = TokenStream::new();
        for a in &attrs {
            a.to_tokens(&mut all);
        }
        all.extend(rest);
        Ok(Input::Other(all, kind))
    }
}

/// A short description of a non-function item, for the error message.
fn describe(tokens: &TokenStream) -> &'static str {
    match syn::parse2::<syn::Item>(tokens.clone()) {
        Ok(syn::Item::Struct(_)) => "a struct",
        Ok(syn::Item::Enum(_)) => "an enum",
        Ok(syn::Item::Union(_)) => "a union",
        Ok(syn::Item::Impl(_)) => "an impl block (put it on a method inside)",
        Ok(syn::Item::Trait(_)) => "a trait",
        Ok(syn::Item::Mod(_)) => "a module",
        Ok(syn::Item::Static(_)) => "a static",
        Ok(syn::Item::Const(_)) => "a const",
        Ok(syn::Item::Type(_)) => "a type alias",
        Ok(syn::Item::Use(_)) => "a use declaration",
        Ok(syn::Item::ForeignMod(_)) => "an extern block",
        _ => match syn::parse2::<syn::Expr>(tokens.clone()) {
            Ok(syn::Expr::Closure(_)) => "a closure",
            Ok(_) => "an expression",
            Err(_) => "this item",
        },
    }
}

impl ToTokens for Func {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        for a in &self.attrs {
            a.to_tokens(tokens);
        }
        self.vis.to_tokens(tokens);
        self.defaultness.to_tokens(tokens);
        self.sig.to_tokens(tokens);
        self.block.to_tokens(tokens);
    }
}

/// Parses the item an attribute is on: the function, or `Err` with the tokens to emit (the
/// item unchanged, and every error recorded in `cx` so far plus this one). `not_a_fn` words
/// the error for an item that is not a function with a body (it is given what the item is).
pub(crate) fn parse_func(
    cx: &mut crate::ctxt::Ctxt,
    input: TokenStream,
    not_a_fn: impl FnOnce(&str) -> String,
) -> Result<Func, TokenStream> {
    let mut out = match syn::parse2::<Input>(input.clone()) {
        Ok(Input::Func(f)) => return Ok(*f),
        Ok(Input::Other(tokens, what)) => {
            cx.error_spanned_by(&tokens, not_a_fn(what));
            tokens
        }
        Err(e) => {
            cx.push(e);
            input
        }
    };
    out.extend(std::mem::take(cx).into_compile_errors());
    Err(out)
}
