//! What to generate, as plain data: `validate` builds it (having checked everything), `expand`
//! turns it into tokens. The user's own expressions and types are kept as written (`syn::Expr`,
//! `syn::Type`), so that the generated code carries their spans.

use proc_macro2::Span;
use syn::{Expr, ExprClosure, Ident, LitFloat, LitInt, LitStr, Path, Type};

use crate::item::Func;

pub(crate) use cache_policy::Policy;

/// A `#[cached]` function, checked.
pub(crate) struct Model {
    pub(crate) func: Func,
    /// `crate = path`: the runtime's path (`None`: `::cache_runtime`).
    pub(crate) krate: Option<Path>,
    pub(crate) returns: Returns,
    /// `negative_ttl`: `Err` and `None` results are cached too.
    pub(crate) negative: bool,
    pub(crate) key: KeyPlan,
    pub(crate) settings: Settings,
    /// `backend = "name"`: a configured remote tier.
    pub(crate) backend: Option<LitStr>,
    /// `distributed_lock = "5s"`: the fleet-wide lease.
    pub(crate) lease: Option<Dur>,
    /// How an early or stale value is refreshed.
    pub(crate) refresh: Refresh,
    /// The name `stale` in the attribute: what a background refresh needs of the function (its
    /// body's closure or future must be `Send + 'static`) is reported there.
    pub(crate) stale_name: Option<Ident>,
    /// `unless = |v| ..`: results not to cache.
    pub(crate) unless: Option<Expr>,
    /// `if = ..`: calls that skip the cache entirely.
    pub(crate) condition: Option<Expr>,
    /// `ttl_fn = |v| ..`: a value's own TTL.
    pub(crate) ttl_fn: Option<Expr>,
    /// `on_removal = path`: told of each value that leaves the cache, and why.
    pub(crate) on_removal: Option<Expr>,
    /// `tags = [..]` or `tags = |v| ..`: what the loader tags its entry with.
    pub(crate) tags: Tags,
    /// `refresh_every = ".."` (and `refresh_top`): the scheduled refresh.
    pub(crate) schedule: Option<Schedule>,
    /// `batch`: the function takes a collection of keys and returns a map of those found.
    pub(crate) batch: Option<Batch>,
}

/// A `batch` function: `fn f(keys: C) -> M` (or `-> Result<M, E>`), where `C` is a collection
/// of keys and `M` a map from key to value; its cache maps each key to its value.
pub(crate) struct Batch {
    /// The argument's name, and its pattern (`mut ids`) and type, as written.
    pub(crate) ident: Ident,
    pub(crate) pat: Box<syn::Pat>,
    pub(crate) ty: Type,
    /// How the keys the cache misses are handed to the body as that argument.
    pub(crate) arg: BatchArg,
    /// The key and value types, as the return type spells them.
    pub(crate) key_ty: Type,
    pub(crate) value_ty: Type,
    /// `Result<M, E>`: an `Err` is returned, and nothing is cached.
    pub(crate) fallible: bool,
}

/// The collection a `batch` function takes.
pub(crate) enum BatchArg {
    /// An owned collection (`Vec<K>`, `HashSet<K>`, ...): built from the missing keys.
    Owned,
    /// `&[K]`: the missing keys, borrowed.
    Slice,
    /// `&C`: a `C` built from the missing keys, borrowed.
    Ref(Box<Type>),
}

/// `refresh_every` and `refresh_top`: every argument of the function is part of its key, so
/// that a background round can call the body again from a key alone.
pub(crate) struct Schedule {
    pub(crate) every: Dur,
    pub(crate) top: Option<u64>,
}

/// `tags = [..]`: the tags an entry is loaded with (both empty: no `tags`).
#[derive(Clone, Default)]
pub(crate) struct Tags {
    /// Tags over the function's arguments (anything `AsRef<str>`), attached as the load starts.
    pub(crate) of_args: Vec<Expr>,
    /// Closures over the cached value (`&V`, the `Ok`/`Some` value) returning tags, called
    /// once the body has returned a value to cache.
    pub(crate) of_value: Vec<ExprClosure>,
}

/// What the function returns, as far as caching is concerned.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Returns {
    /// Any value: always cached.
    Value,
    /// `Result<T, E>`: `Ok` cached; `Err` only with `negative_ttl`.
    Result,
    /// `Option<T>`: `Some` cached; `None` only with `negative_ttl`.
    Option,
}

/// An argument of the function, `ident: ty`, that (part of) the key is made of.
#[derive(Clone)]
pub(crate) struct Param {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

/// How the key is found from the arguments.
pub(crate) enum KeyPlan {
    /// One argument taken by reference (`x: &T`): looked up as `x`, owned with `ToOwned`.
    Borrowed(Param),
    /// One argument taken by value (`x: T`): looked up as `&x`, owned with `Clone`.
    Owned(Param),
    /// A tuple of the arguments' owned values (`()` for none): the default key of a function
    /// without exactly one argument, or `key = (a, b)`.
    Tuple(Vec<Param>),
    /// `key = <expr>` of a known type, computed before the lookup.
    Expr { expr: Expr, ty: KeyType },
    /// A key expression whose type the macro cannot read off: the compiler infers it, and the
    /// cache is reached through a type-erased static (one downcast per call).
    Inferred { expr: Expr },
}

/// The type of a `key = <expr>`.
pub(crate) enum KeyType {
    /// `key_type = <Type>`.
    Given(Type),
    /// `key = x.to_string()`.
    String,
    /// `key = x.clone()` or `x.to_owned()`: the owned form of this argument type.
    OwnedOf(Type),
}

/// How a function refreshes values (`stale`, `early_refresh`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// Neither: an expired value is a miss.
    None,
    /// `early_refresh` alone: the caller that draws an early refresh recomputes (XFetch).
    Inline,
    /// `stale`: stale (and early) values are served while a background refresh runs.
    Background,
}

/// The cache's settings.
pub(crate) struct Settings {
    /// `name = "..."` (`None`: the function's module path and name).
    pub(crate) name: Option<LitStr>,
    /// `capacity` (`None`: the runtime's default).
    pub(crate) capacity: Option<Capacity>,
    pub(crate) unbounded: bool,
    pub(crate) policy: Policy,
    pub(crate) ttl: Option<Dur>,
    /// `tti`: the time-to-idle.
    pub(crate) tti: Option<Dur>,
    pub(crate) negative_ttl: Option<Dur>,
    pub(crate) jitter: Option<Jitter>,
    pub(crate) stale: Option<Dur>,
    /// XFetch's beta, positive and finite.
    pub(crate) early_refresh: Option<f64>,
    /// `depends = false`: entries do not depend on what their loader reads.
    pub(crate) depends: Option<bool>,
    /// `version = 2`: part of every L2 key (a `u32` literal).
    pub(crate) version: Option<LitInt>,
}

/// A duration setting.
#[derive(Clone)]
pub(crate) enum Dur {
    /// A string literal, parsed: nanoseconds (more than zero), at the literal's span.
    Lit(u128, Span),
    /// A `Duration` expression, checked at compile time by the generated code.
    Expr(Box<Expr>),
}

/// `capacity = ...`.
#[derive(Clone)]
pub(crate) enum Capacity {
    /// A literal, at least 1.
    Lit(u64),
    /// An expression, checked at compile time by the generated code.
    Expr(Box<Expr>),
}

/// `jitter = ...`.
#[derive(Clone)]
pub(crate) enum Jitter {
    /// A fraction of the TTL, within `0.0..=1.0`.
    Fraction(LitFloat),
    /// A duration in nanoseconds, at most the TTL (checked at compile time against a TTL
    /// expression), and the literal it was read from.
    Spread(u128, LitStr),
}

/// Which of the two write attributes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Put,
    Evict,
}

impl Kind {
    /// The attribute's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Put => "cache_put",
            Kind::Evict => "cache_evict",
        }
    }
}

/// A `#[cache_put]` or `#[cache_evict]` function, checked.
pub(crate) struct WriteModel {
    pub(crate) kind: Kind,
    pub(crate) func: Func,
    /// The `#[cached]` function whose cache is written (`None`: `cache_evict(tags = [..])`,
    /// which invalidates its tags in every cache).
    pub(crate) target: Option<Path>,
    /// `key = <expr>` (`None`: `cache_evict(f, all)`, or tags alone).
    pub(crate) key: Option<WriteKey>,
    /// `all`: clear the target's cache.
    pub(crate) all: bool,
    /// `cache_evict(.., tags = [..])`: tags invalidated after the function succeeds.
    pub(crate) tags: Vec<WriteKey>,
    /// What counts as success (the write happens only then).
    pub(crate) returns: Returns,
}

/// The key of a write, or one of its tags.
pub(crate) struct WriteKey {
    pub(crate) expr: Expr,
    /// Whether it names `result` (the returned value): it is then computed after the body.
    pub(crate) from_result: bool,
}
