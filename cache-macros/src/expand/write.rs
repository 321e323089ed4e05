//! A `#[cache_put]`/`#[cache_evict]` function as tokens: the body runs, then, on success, the
//! named function's cache is written. The cache is reached through the companion `#[cached]`
//! emits beside the function, `__cache_of_<f>`, so a misspelled name or a key of the wrong type
//! is a compile error at the user's own tokens.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ReturnType;
use syn::spanned::Spanned;

use super::{ret_ty, rewrite};
use crate::model::{Kind, Returns, WriteModel};

/// The function, writing to the cache after its body.
pub(crate) fn expand(m: &WriteModel) -> TokenStream {
    let func = &m.func;
    let key = m.key.as_ref().map(|k| &k.expr);
    let get_cache = m.target.as_ref().map(|target| {
        let mut cache_fn = target.clone();
        if let Some(last) = cache_fn.segments.last_mut() {
            let id = &last.ident;
            last.ident = format_ident!(
                "__cache_of_{}",
                id.to_string().trim_start_matches("r#"),
                span = id.span()
            );
        }
        quote_spanned!(target.span()=> #cache_fn())
    });
    let span = Span::mixed_site();
    let result = format_ident!("__cache_result", span = span);
    // Located at the user's tokens (same hygiene), so that a type mismatch is reported there:
    // the value at the return type, the key at its expression.
    let ret_span = match &func.sig.output {
        ReturnType::Default => func.sig.ident.span(),
        ReturnType::Type(_, t) => t.span(),
    };
    let value = format_ident!("__cache_value", span = span.located_at(ret_span));
    let key_span = key.map_or(span, |k| span.located_at(k.span()));
    let key_id = format_ident!("__cache_key", span = key_span);
    let ret_ty = ret_ty(func);
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
    let (key_before, key_after) = match &m.key {
        Some(k) if !k.from_result => {
            let k = &k.expr;
            (quote_spanned!(k.span()=> let #key_id = #k;), quote!())
        }
        Some(k) => {
            let k = &k.expr;
            (
                quote!(),
                quote_spanned!(k.span()=> #[allow(unused_variables)] let result = #value; let #key_id = #k;),
            )
        }
        None => (quote!(), quote!()),
    };
    let success = match m.returns {
        Returns::Result => quote!(::core::result::Result::Ok(#value)),
        Returns::Option => quote!(::core::option::Option::Some(#value)),
        Returns::Value => quote!(#value),
    };
    let act = match (m.kind, key, &get_cache) {
        (Kind::Put, Some(k), Some(get_cache)) => {
            let insert = quote_spanned!(k.span()=>
                #get_cache.insert(#key_id, ::core::clone::Clone::clone(#value))
            );
            quote!(#key_after #insert;)
        }
        (Kind::Evict, Some(k), Some(get_cache)) => {
            let remove = quote_spanned!(k.span()=> #get_cache.remove(&#key_id));
            quote!(#key_after let _ = #remove;)
        }
        (_, None, Some(get_cache)) if m.all => quote!(#get_cache.clear();),
        _ => quote!(),
    };
    let (tags_before, tags_after) = tags(m, get_cache.as_ref(), &value);
    rewrite(
        func,
        quote! {
            #key_before
            #tags_before
            #run
            #[allow(irrefutable_let_patterns)]
            if let #success = &#result {
                #act
                #tags_after
            }
            #result
        },
    )
}

/// `tags = [..]`: each tag computed before the body (which may move the arguments), or after it
/// from `result`, then invalidated: in the target's cache (`Cache::invalidate_tag`), or without
/// a target in every cache (`cache_runtime::invalidate_tag`). Each call is spanned at its tag,
/// so a tag that is not `AsRef<str>` is reported there.
fn tags(
    m: &WriteModel,
    get_cache: Option<&TokenStream>,
    value: &syn::Ident,
) -> (TokenStream, TokenStream) {
    let (mut before, mut after) = (TokenStream::new(), TokenStream::new());
    for (i, t) in m.tags.iter().enumerate() {
        let expr = &t.expr;
        let at = expr.span();
        let id = format_ident!(
            "__cache_tag_{}",
            i,
            span = Span::mixed_site().located_at(at)
        );
        let def = quote_spanned!(at=> let #id = #expr;);
        if t.from_result {
            after.extend(quote_spanned!(at=> #[allow(unused_variables)] let result = #value; #def));
        } else {
            before.extend(def);
        }
        let as_str = quote_spanned!(at=>
            <_ as ::core::convert::AsRef<::core::primitive::str>>::as_ref(&#id)
        );
        after.extend(match get_cache {
            Some(get_cache) => quote_spanned!(at=> #get_cache.invalidate_tag(#as_str);),
            None => quote_spanned!(at=> ::cache_runtime::invalidate_tag(#as_str);),
        });
    }
    (before, after)
}
