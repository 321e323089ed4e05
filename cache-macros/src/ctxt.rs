//! Error collection: every problem found is reported, together, in one build.

use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// Collects errors, combined (`syn::Error::combine`) in the order they are found.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Option<syn::Error>,
}

impl Ctxt {
    /// An error spanning `tokens`.
    pub(crate) fn error_spanned_by(&mut self, tokens: impl ToTokens, msg: impl Display) {
        self.push(spanned(tokens, msg));
    }

    /// An error at `span`.
    pub(crate) fn error_at(&mut self, span: proc_macro2::Span, msg: impl Display) {
        self.push(syn::Error::new(span, msg));
    }

    /// Records an error (several may already be combined in it).
    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.errors {
            Some(all) => all.combine(e),
            None => self.errors = Some(e),
        }
    }

    /// Whether any error was recorded.
    pub(crate) fn has_errors(&self) -> bool {
        self.errors.is_some()
    }

    /// The errors as `compile_error!` invocations (empty if none).
    pub(crate) fn into_compile_errors(self) -> TokenStream {
        self.errors
            .map(syn::Error::into_compile_error)
            .unwrap_or_default()
    }
}

/// An error spanning `tokens` (from their first to their last token), to record later.
pub(crate) fn spanned(tokens: impl ToTokens, msg: impl Display) -> syn::Error {
    syn::Error::new_spanned(tokens.into_token_stream(), msg)
}

/// `tokens` (the item as written) followed by every error recorded: what an attribute emits when
/// it cannot expand, so that one mistake does not cascade into errors about a missing function.
pub(crate) fn beside(mut tokens: TokenStream, cx: Ctxt) -> TokenStream {
    tokens.extend(cx.into_compile_errors());
    tokens
}
