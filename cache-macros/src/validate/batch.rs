//! `#[cached(batch)]`: a function that takes a collection of keys and returns a map of the keys
//! it found, memoized key by key (`Cache::get_or_load_many`). Checks the signature's shape and
//! the arguments that apply to one key's call only, and builds the [`Model`].

use quote::ToTokens;
use syn::{FnArg, GenericArgument, PathArguments, ReturnType, Type};

use super::{settings, signature};
use crate::attr::CachedArgs;
use crate::ctxt::Ctxt;
use crate::item::Func;
use crate::model::{Batch, BatchArg, KeyPlan, Model, Param, Refresh, Returns};
use crate::symbol;

/// What a `batch` function looks like, for the errors.
const SHAPE: &str = "a `batch` function takes the keys as one collection argument (`Vec<K>`, \
                     `&[K]`, `HashSet<K>`, ...) and returns the keys it found with their values \
                     (`HashMap<K, V>`, `BTreeMap<K, V>`, or `Result<HashMap<K, V>, E>`)";

/// Validates a `batch` function; `None` when there were errors (all recorded in `cx`).
pub(super) fn validate(cx: &mut Ctxt, args: &CachedArgs, func: Func) -> Option<Model> {
    let krate = args.krate.as_ref().and_then(|g| g.read(cx)).cloned();
    signature::check(cx, &func);
    not_for_batches(cx, args);
    let settings = settings::settings(cx, args);
    let sig = &func.sig;
    if let Some(r) = sig.receiver() {
        cx.error_spanned_by(
            r,
            "a `batch` function cannot take `self`: its cache is shared by every call; memoize a \
             free (or associated) function",
        );
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            "a `batch` function cannot be generic: its cache has one key and one value type",
        );
    }
    let typed: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(pt) => Some(pt),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let param = match typed.as_slice() {
        [one] => Some(*one),
        [] => {
            cx.error_spanned_by(
                &sig.ident,
                format!("{SHAPE}; `{}` takes no argument", sig.ident),
            );
            None
        }
        many => {
            cx.error_spanned_by(
                &sig.inputs,
                format!(
                    "{SHAPE}; `{}` takes {} arguments: the keys must be its only argument (any \
                     other would be part of every key)",
                    sig.ident,
                    many.len()
                ),
            );
            None
        }
    };
    if let Some(pt) = param
        && !matches!(&*pt.pat, syn::Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none())
    {
        cx.error_spanned_by(
            &pt.pat,
            "a `batch` function's argument must be a plain name (`ids: Vec<u64>`): the keys are \
             read from it, and the missing ones are handed to the body under it",
        );
    }
    let arg = param.and_then(|pt| collection(cx, pt));
    let map = map_types(cx, &func);
    if let ReturnType::Type(_, t) = &sig.output {
        signature::check_storable(cx, t, &sig.generics, "return");
    }
    let backend = args.backend.as_ref().and_then(|g| g.read(cx)).cloned();
    let ttl_fn = args.ttl_fn.as_ref().and_then(|g| g.ok()).cloned();
    let on_removal = args.on_removal.as_ref().and_then(|g| g.read(cx)).cloned();
    super::ttl_fn_conflict(cx, args);
    if cx.has_errors() {
        return None;
    }
    let (param, arg, (key_ty, value_ty, fallible)) = (param?, arg?, map?);
    let syn::Pat::Ident(pi) = &*param.pat else {
        return None;
    };
    let batch = Batch {
        ident: pi.ident.clone(),
        pat: param.pat.clone(),
        ty: (*param.ty).clone(),
        arg,
        key_ty: key_ty.clone(),
        value_ty,
        fallible,
    };
    Some(Model {
        krate,
        returns: Returns::Value,
        negative: args.negative_ttl.is_some(),
        // The key of the companion and of `cache_put`/`cache_evict`: one key of the batch.
        key: KeyPlan::Owned(Param {
            ident: pi.ident.clone(),
            ty: key_ty,
        }),
        settings,
        backend,
        lease: None,
        refresh: Refresh::None,
        stale_name: None,
        unless: None,
        condition: None,
        ttl_fn,
        on_removal,
        tags: crate::model::Tags::default(),
        schedule: None,
        batch: Some(batch),
        func,
    })
}

/// The arguments that apply to a call of one key, each an error with `batch`.
fn not_for_batches(cx: &mut Ctxt, args: &CachedArgs) {
    let reasons = [
        (
            args.key.as_ref().map(|a| &a.name),
            "each key of the collection is a key of the cache",
        ),
        (
            args.key_type.as_ref().map(|a| &a.name),
            "the key type is the map's key type",
        ),
        (
            args.returns.as_ref().map(|a| &a.name),
            "a batch returns a map (or a `Result` of one)",
        ),
        (
            args.stale.as_ref().map(|a| &a.name),
            "a batch does not refresh in the background",
        ),
        (
            args.early_refresh.as_ref().map(|a| &a.name),
            "a batch does not refresh early",
        ),
        (
            args.unless.as_ref().map(|a| &a.name),
            "every value the batch returns is cached",
        ),
        (
            args.condition.as_ref().map(|a| &a.name),
            "a batch always goes through its cache",
        ),
        (
            args.tags.as_ref().map(|a| &a.name),
            "a batch's entries carry no tags",
        ),
        (
            args.distributed_lock.as_ref().map(|a| &a.name),
            "a batch takes no fleet-wide lease (its misses are looked up in one round trip, then \
             loaded together)",
        ),
        (
            args.refresh_every.as_ref().map(|a| &a.name),
            "a scheduled refresh reloads one key at a time",
        ),
        (
            args.refresh_top.as_ref().map(|a| &a.name),
            "a scheduled refresh reloads one key at a time",
        ),
    ];
    for (name, why) in reasons {
        if let Some(name) = name {
            cx.error_spanned_by(
                name,
                format!(
                    "`{name}` does not apply to a `{}` function: {why}",
                    symbol::BATCH
                ),
            );
        }
    }
}

/// How the argument's collection is rebuilt from the missing keys.
fn collection(cx: &mut Ctxt, pt: &syn::PatType) -> Option<BatchArg> {
    let arg = match &*pt.ty {
        Type::Reference(r) if r.mutability.is_none() => match &*r.elem {
            Type::Slice(_) => Some(BatchArg::Slice),
            inner if element(inner).is_some() => Some(BatchArg::Ref(Box::new(inner.clone()))),
            _ => None,
        },
        Type::Reference(_) => None,
        ty if element(ty).is_some() => Some(BatchArg::Owned),
        _ => None,
    };
    if arg.is_none() {
        cx.error_spanned_by(
            &pt.ty,
            format!("{SHAPE}; `{}` is not a collection of keys", pretty(&pt.ty)),
        );
    }
    arg
}

/// The element type of a collection type written `Name<T, ..>`.
fn element(ty: &Type) -> Option<&Type> {
    type_args(ty).into_iter().next()
}

/// The type arguments of the last segment of a path type.
fn type_args(ty: &Type) -> Vec<&Type> {
    let Type::Path(p) = ty else {
        return Vec::new();
    };
    let Some(last) = p.path.segments.last() else {
        return Vec::new();
    };
    match &last.arguments {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|g| match g {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The key and value types of the returned map, and whether it is in a `Result`.
fn map_types(cx: &mut Ctxt, func: &Func) -> Option<(Type, Type, bool)> {
    let ReturnType::Type(_, ret) = &func.sig.output else {
        cx.error_spanned_by(
            &func.sig.ident,
            format!("{SHAPE}; `{}` returns nothing", func.sig.ident),
        );
        return None;
    };
    let result = match &**ret {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
        _ => false,
    };
    let map = if result {
        type_args(ret).first().copied()
    } else {
        Some(&**ret)
    };
    match map.map(type_args).as_deref() {
        Some([k, v, ..]) => Some(((*k).clone(), (*v).clone(), result)),
        _ => {
            cx.error_spanned_by(ret, format!("{SHAPE}; `{}` is not a map", pretty(ret)));
            None
        }
    }
}

/// A type as the user wrote it, without the token stream's spaces (`Vec<String>`).
fn pretty(ty: &Type) -> String {
    ty.to_token_stream()
        .to_string()
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace("& ", "&")
        .replace(" :: ", "::")
}
