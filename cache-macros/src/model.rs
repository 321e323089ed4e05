//! What to generate, as plain data: `validate` builds it (having checked everything), `expand`
//! turns it into tokens. The user's own expressions and types are kept as written (`syn::Expr`,
//! `syn::Type`), so that the generated code carries their spans.

use proc_macro2::Span;
use syn::{Expr, Ident, LitFloat, LitStr, Path, Type};

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
    pub(crate) negative_ttl: Option<Dur>,
    pub(crate) jitter: Option<Jitter>,
    pub(crate) stale: Option<Dur>,
    /// XFetch's beta, positive and finite.
    pub(crate) early_refresh: Option<f64>,
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
    /// The `#[cached]` function whose cache is written.
    pub(crate) target: Path,
    /// `key = <expr>` (`None`: `cache_evict(f, all)`).
    pub(crate) key: Option<WriteKey>,
    /// What counts as success (the write happens only then).
    pub(crate) returns: Returns,
}

/// The key of a write.
pub(crate) struct WriteKey {
    pub(crate) expr: Expr,
    /// Whether it names `result` (the returned value): it is then computed after the body.
    pub(crate) from_result: bool,
}
