//! `refresh_every`: the loader a background round calls with a key alone. The arguments are
//! rebuilt from the key (validation made sure that every argument is part of it), then the body
//! runs as a miss's loader does (with its tags), and its outcome is classified as a miss's is.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::Type;

use super::Gen;
use crate::model::{KeyPlan, Param};

/// `let __cache_reload: fn(..) -> .. = |key| ..;`: the function's reloader, as a plain function
/// pointer (a closure that captures nothing), with its name.
pub(super) fn reloader(g: &Gen<'_>, shape: &TokenStream) -> (TokenStream, syn::Ident) {
    let (krate, key_ty, value_ty, neg_ty) = (&g.krate, &g.key_ty, &g.value_ty, &g.neg_ty);
    let span = Span::mixed_site();
    let reload = format_ident!("__cache_reload", span = span);
    let rkey = format_ident!("__cache_rkey", span = span);
    let load = format_ident!("__cache_load", span = span);
    let result = format_ident!("__cache_result", span = span);
    let bindings = bindings(g, &rkey);
    let (loader_def, _) = super::body_closure(g, &load, &result);
    let unless = match &g.m.unless {
        Some(u) => {
            let unless_fn = format_ident!("__cache_unless", span = span);
            quote!({
                let #unless_fn: fn(&#value_ty) -> bool = #u;
                #krate::__private::Some(#unless_fn)
            })
        }
        None => quote!(#krate::__private::None),
    };
    let def = if g.m.func.sig.asyncness.is_some() {
        let classified = super::classify(g, shape, &quote!(#load().await), &unless);
        quote! {
            let #reload: fn(#key_ty) -> #krate::__private::ReloadFuture<#value_ty, #neg_ty> =
                |#rkey: #key_ty| {
                    ::std::boxed::Box::pin(async move {
                        let #rkey = &#rkey;
                        #bindings
                        #loader_def
                        #krate::__private::scheduled(#classified)
                    })
                };
        }
    } else {
        let classified = super::classify(g, shape, &quote!(#load()), &unless);
        quote! {
            let #reload: fn(&#key_ty) -> #krate::__private::Loaded<#value_ty, #neg_ty, ()> =
                |#rkey: &#key_ty| {
                    #bindings
                    #loader_def
                    #krate::__private::scheduled(#classified)
                };
        }
    };
    (def, reload)
}

/// The arguments, rebuilt from `rkey` (a reference to the key): an argument taken by value is
/// cloned out of the key, one taken by reference borrows it.
fn bindings(g: &Gen<'_>, rkey: &syn::Ident) -> TokenStream {
    let bind = |p: &Param, from: &TokenStream| {
        let ident = &p.ident;
        match &p.ty {
            Type::Reference(r) => {
                let elem = &r.elem;
                quote! {
                    let #ident = ::core::borrow::Borrow::<#elem>::borrow(#from);
                }
            }
            ty => quote! {
                #[allow(unused_mut)]
                let mut #ident: #ty = ::core::clone::Clone::clone(#from);
            },
        }
    };
    match &g.m.key {
        KeyPlan::Borrowed(p) | KeyPlan::Owned(p) => bind(p, &quote!(#rkey)),
        KeyPlan::Tuple(ps) => {
            let parts: Vec<syn::Ident> = (0..ps.len())
                .map(|i| format_ident!("__cache_part{}", i, span = Span::mixed_site()))
                .collect();
            let binds = ps
                .iter()
                .zip(&parts)
                .map(|(p, part)| bind(p, &quote!(#part)));
            quote! {
                let (#(#parts,)*) = #rkey;
                #(#binds)*
            }
        }
        // Validation allows no other key with `refresh_every`.
        KeyPlan::Expr { .. } | KeyPlan::Inferred { .. } => quote!(),
    }
}
