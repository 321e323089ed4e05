//! The arguments of `#[cached]`, typed: each accepted argument once, with its name as written
//! (errors about the argument as a whole point there) and its value read into what it means.
//!
//! Unknown and duplicate arguments, and missing values, are reported here. A value that cannot
//! be read keeps its error, which `validate` reports when it uses the argument: so errors come in
//! the order of the checks, and an argument that another mistake makes moot (a `jitter` without
//! a TTL, a `distributed_lock` without a `backend`) reports nothing more.

use std::collections::HashMap;

use syn::{Expr, Ident, Lit, LitInt, LitStr, Path, Type};

use crate::args::{Arg, Args};
use crate::ctxt::{Ctxt, spanned};
use crate::model::{Capacity, Dur, Jitter, Policy, Returns, Tags};
use crate::symbol::{self, did_you_mean};

/// An argument's value as read: `Err(Some(e))` is an error to report if the value is used,
/// `Err(None)` a missing value (already reported).
pub(crate) type Read<T> = Result<T, Option<syn::Error>>;

/// One accepted argument.
pub(crate) struct Given<T> {
    /// Its name as written.
    pub(crate) name: Ident,
    pub(crate) value: Read<T>,
}

impl<T> Given<T> {
    /// The value; an error to report goes to `cx`.
    pub(crate) fn read(&self, cx: &mut Ctxt) -> Option<&T> {
        match &self.value {
            Ok(v) => Some(v),
            Err(Some(e)) => {
                cx.push(e.clone());
                None
            }
            Err(None) => None,
        }
    }

    /// The value of an argument whose every value is valid (an expression or a type).
    pub(crate) fn ok(&self) -> Option<&T> {
        self.value.as_ref().ok()
    }
}

/// The arguments of `#[cached]`, each `None` when not given.
#[derive(Default)]
pub(crate) struct CachedArgs {
    pub(crate) ttl: Option<Given<Dur>>,
    pub(crate) tti: Option<Given<Dur>>,
    pub(crate) capacity: Option<Given<Capacity>>,
    /// `unbounded` (`unbounded = false` reads as `false`).
    pub(crate) unbounded: Option<Given<bool>>,
    pub(crate) policy: Option<Given<Policy>>,
    pub(crate) key: Option<Given<Expr>>,
    pub(crate) key_type: Option<Given<Type>>,
    pub(crate) jitter: Option<Given<Jitter>>,
    pub(crate) negative_ttl: Option<Given<Dur>>,
    pub(crate) name: Option<Given<LitStr>>,
    pub(crate) krate: Option<Given<Path>>,
    pub(crate) returns: Option<Given<Returns>>,
    pub(crate) backend: Option<Given<LitStr>>,
    pub(crate) distributed_lock: Option<Given<Dur>>,
    pub(crate) stale: Option<Given<Dur>>,
    pub(crate) early_refresh: Option<Given<f64>>,
    pub(crate) unless: Option<Given<Expr>>,
    pub(crate) condition: Option<Given<Expr>>,
    pub(crate) ttl_fn: Option<Given<Expr>>,
    pub(crate) tags: Option<Given<Tags>>,
    pub(crate) depends: Option<Given<bool>>,
    pub(crate) version: Option<Given<LitInt>>,
    pub(crate) on_removal: Option<Given<Expr>>,
    pub(crate) refresh_every: Option<Given<Dur>>,
    pub(crate) refresh_top: Option<Given<u64>>,
    /// `batch` (`batch = false` reads as `false`).
    pub(crate) batch: Option<Given<bool>>,
}

impl CachedArgs {
    /// Reads every argument; reports unknown and duplicate ones, and missing values.
    pub(crate) fn from_args(cx: &mut Ctxt, args: &Args) -> CachedArgs {
        let mut seen: HashMap<String, &Arg> = HashMap::new();
        let mut out = CachedArgs::default();
        for a in &args.list {
            let name = a.name.to_string();
            if !symbol::ALL.contains(&name.as_str()) {
                cx.error_spanned_by(&a.name, unknown_argument(&name));
                continue;
            }
            if let Some(first) = seen.get(name.as_str()) {
                let mut e = syn::Error::new(a.name.span(), format!("duplicate argument `{name}`"));
                e.combine(syn::Error::new(
                    first.name.span(),
                    format!("`{name}` is first given here"),
                ));
                cx.push(e);
                continue;
            }
            let flag = name == symbol::UNBOUNDED || name == symbol::BATCH;
            match (&a.value, flag) {
                (None, false) if a.ty.is_none() => {
                    cx.error_spanned_by(&a.name, format!("`{name}` needs a value: `{name} = ...`"))
                }
                (Some(v), true) if !matches!(v, Expr::Lit(l) if matches!(l.lit, Lit::Bool(_))) => {
                    cx.error_spanned_by(v, format!("`{name}` takes no value (or `true`/`false`)"));
                }
                _ => {}
            }
            out.read(a, &name);
            seen.insert(name, a);
        }
        out
    }

    /// Reads the value of `a`, a known argument given once.
    fn read(&mut self, a: &Arg, name: &str) {
        fn given<T>(a: &Arg, value: Read<T>) -> Option<Given<T>> {
            Some(Given {
                name: a.name.clone(),
                value,
            })
        }
        let expr = || a.value.clone().ok_or(None);
        match name {
            symbol::TTL => self.ttl = given(a, duration(a, name)),
            symbol::TTI => self.tti = given(a, duration(a, name)),
            symbol::CAPACITY => self.capacity = given(a, capacity(a)),
            symbol::UNBOUNDED => self.unbounded = given(a, Ok(!is_false(a))),
            symbol::POLICY => self.policy = given(a, policy(a)),
            symbol::KEY => self.key = given(a, expr()),
            symbol::KEY_TYPE => self.key_type = given(a, a.ty.clone().ok_or(None)),
            symbol::JITTER => self.jitter = given(a, jitter(a)),
            symbol::NEGATIVE_TTL => self.negative_ttl = given(a, duration(a, name)),
            symbol::NAME => {
                self.name = given(
                    a,
                    string(
                        a,
                        "`name` takes a non-empty string, e.g. `name = \"users\"`",
                    ),
                )
            }
            symbol::CRATE => self.krate = given(a, krate(a)),
            symbol::RETURNS => self.returns = given(a, returns(a)),
            symbol::BACKEND => {
                self.backend = given(
                    a,
                    string(
                        a,
                        "`backend` takes the name of a configured backend, e.g. `backend = \"shared\"`",
                    ),
                );
            }
            symbol::DISTRIBUTED_LOCK => self.distributed_lock = given(a, duration(a, name)),
            symbol::STALE => self.stale = given(a, duration(a, name)),
            symbol::EARLY_REFRESH => self.early_refresh = given(a, early_refresh(a)),
            symbol::UNLESS => self.unless = given(a, expr()),
            symbol::IF => self.condition = given(a, expr()),
            symbol::TTL_FN => self.ttl_fn = given(a, expr()),
            symbol::TAGS => self.tags = given(a, tags(a, true)),
            symbol::DEPENDS => self.depends = given(a, depends(a)),
            symbol::VERSION => self.version = given(a, version(a)),
            symbol::ON_REMOVAL => self.on_removal = given(a, listener(a)),
            symbol::REFRESH_EVERY => self.refresh_every = given(a, duration(a, name)),
            symbol::REFRESH_TOP => self.refresh_top = given(a, refresh_top(a)),
            symbol::BATCH => self.batch = given(a, Ok(!is_false(a))),
            _ => {}
        }
    }
}

/// The error of an unknown argument: the one meant, if it looks like one, and the whole list.
fn unknown_argument(name: &str) -> String {
    let hint = symbol::ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map(|(_, meant)| *meant)
        .or_else(|| did_you_mean(name, symbol::ALL));
    let list = symbol::ALL
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match hint {
        Some(h) => {
            format!("unknown argument `{name}`; did you mean `{h}`?\nthe arguments are: {list}")
        }
        None => format!("unknown argument `{name}`; the arguments are: {list}"),
    }
}

/// A string literal, if the value is one.
fn lit_str(a: &Arg) -> Option<&LitStr> {
    match &a.value {
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        })) => Some(s),
        _ => None,
    }
}

/// `unbounded = false`.
fn is_false(a: &Arg) -> bool {
    matches!(&a.value, Some(Expr::Lit(syn::ExprLit { lit: Lit::Bool(b), .. })) if !b.value)
}

/// A non-empty string (`name`, `backend`).
fn string(a: &Arg, msg: &str) -> Read<LitStr> {
    match (lit_str(a), &a.value) {
        (Some(s), _) if !s.value().trim().is_empty() => Ok(s.clone()),
        (_, Some(v)) => Err(Some(spanned(v, msg))),
        (_, None) => Err(None),
    }
}

/// `crate = path`.
fn krate(a: &Arg) -> Read<Path> {
    match &a.value {
        Some(Expr::Path(p)) => Ok(p.path.clone()),
        _ => Err(Some(syn::Error::new(
            a.span(),
            "`crate` takes the path of the runtime crate, e.g. `crate = my_cache_runtime`",
        ))),
    }
}

/// `returns = "result" | "option" | "value"`.
fn returns(a: &Arg) -> Read<Returns> {
    let Some(v) = &a.value else { return Err(None) };
    let Some(s) = lit_str(a) else {
        return Err(Some(spanned(
            v,
            "`returns` takes a string: `\"result\"`, `\"option\"` or `\"value\"`",
        )));
    };
    match s.value().as_str() {
        "result" => Ok(Returns::Result),
        "option" => Ok(Returns::Option),
        "value" => Ok(Returns::Value),
        other => {
            let hint = did_you_mean(other, &["result", "option", "value"])
                .map(|h| format!("; did you mean `\"{h}\"`?"))
                .unwrap_or_default();
            Err(Some(spanned(
                s,
                format!(
                    "unknown `returns = \"{other}\"`{hint}\nexpected `\"result\"`, `\"option\"` or \
                     `\"value\"`"
                ),
            )))
        }
    }
}

/// `policy = "lru"`, by the runtime's own names.
fn policy(a: &Arg) -> Read<Policy> {
    let Some(v) = &a.value else { return Err(None) };
    let Some(s) = lit_str(a) else {
        return Err(Some(spanned(
            v,
            format!("`policy` takes a string: {}", symbol::policy_alternatives()),
        )));
    };
    s.value().parse::<Policy>().map_err(|_| {
        let hint = did_you_mean(&s.value().to_ascii_lowercase(), &symbol::policy_names())
            .map(|h| format!("; did you mean `\"{h}\"`?"))
            .unwrap_or_default();
        Some(spanned(
            s,
            format!(
                "unknown policy `\"{}\"`{hint}\nexpected one of {}",
                s.value(),
                symbol::policy_list()
            ),
        ))
    })
}

/// `tags = [tag, ..]`, each an expression over the arguments or (`closures`: in `#[cached]`) a
/// closure over the cached value; or `tags = |v| ..` alone.
pub(crate) fn tags(a: &Arg, closures: bool) -> Read<Tags> {
    let Some(v) = &a.value else { return Err(None) };
    let forms = if closures {
        "an array of tags over the arguments, e.g. `tags = [\"catalog\", format!(\"store:{store}\")]`, \
         or a closure over the cached value returning tags, e.g. `tags = |p: &Product| \
         vec![format!(\"brand:{}\", p.brand)]`"
    } else {
        "an array of tags over the arguments (or `result`), e.g. `tags = [\"catalog\", \
         format!(\"store:{store}\")]`"
    };
    let mut out = Tags::default();
    let mut errors: Vec<syn::Error> = Vec::new();
    match v {
        Expr::Array(arr) if arr.elems.is_empty() => errors.push(spanned(
            arr,
            "`tags = []` attaches no tag: list at least one, or remove `tags`",
        )),
        Expr::Array(arr) => {
            for e in &arr.elems {
                match e {
                    Expr::Closure(c) => match tag_closure(c, closures) {
                        Ok(c) => out.of_value.push(c),
                        Err(e) => errors.push(e),
                    },
                    e => out.of_args.push(e.clone()),
                }
            }
        }
        Expr::Closure(c) => match tag_closure(c, closures) {
            Ok(c) => out.of_value.push(c),
            Err(e) => errors.push(e),
        },
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => errors.push(spanned(
            s,
            format!(
                "`tags` takes an array, even of one tag: `tags = [\"{}\"]`",
                s.value().escape_default()
            ),
        )),
        e => errors.push(spanned(e, format!("`tags` takes {forms}"))),
    }
    let mut errors = errors.into_iter();
    match errors.next() {
        Some(mut first) => {
            first.extend(errors);
            Err(Some(first))
        }
        None => Ok(out),
    }
}

/// A closure in `tags`: over the cached value, so in `#[cached]` only, with one argument.
fn tag_closure(c: &syn::ExprClosure, closures: bool) -> syn::Result<syn::ExprClosure> {
    if !closures {
        return Err(spanned(
            c,
            "in `#[cache_evict]`, a tag is an expression over the arguments (or `result`, the \
             returned value), not a closure: e.g. `tags = [format!(\"product:{}\", result.id)]`",
        ));
    }
    if c.inputs.len() != 1 {
        let (or1, or2) = (&c.inputs_begin, &c.inputs_end);
        let at = if c.inputs.is_empty() {
            quote::quote!(#or1 #or2)
        } else {
            quote::ToTokens::to_token_stream(&c.inputs)
        };
        return Err(spanned(
            at,
            format!(
                "a tag closure takes one argument, the cached value (the `Ok`/`Some` value), e.g. \
                 `|p: &Product| vec![p.brand.clone()]`; this one takes {}",
                c.inputs.len()
            ),
        ));
    }
    Ok(c.clone())
}

/// `depends = true | false`.
fn depends(a: &Arg) -> Read<bool> {
    match &a.value {
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Bool(b), ..
        })) => Ok(b.value),
        Some(v) => Err(Some(spanned(
            v,
            "`depends` takes `true` (the default: an entry is dropped when an entry of another \
             cache its loader read is invalidated) or `false`",
        ))),
        None => Err(None),
    }
}

/// `on_removal = path` (or a closure): a function, not a literal.
fn listener(a: &Arg) -> Read<Expr> {
    match &a.value {
        Some(v @ Expr::Lit(_)) => Err(Some(spanned(
            v,
            "`on_removal` takes a function called with `(&key, &value, cause)`: a path, e.g. \
             `on_removal = log_removal`, or a closure `|key, value, cause| ..`",
        ))),
        Some(v) => Ok(v.clone()),
        None => Err(None),
    }
}

/// `version = 2`: a `u32` literal.
fn version(a: &Arg) -> Read<LitInt> {
    let msg = "`version` takes a whole number literal from 0 to 4294967295 (`u32`), e.g. \
               `version = 2`";
    match &a.value {
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        })) if matches!(i.suffix(), "" | "u32") && i.base10_parse::<u32>().is_ok() => Ok(i.clone()),
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        })) if s.value().trim().parse::<u32>().is_ok() => Err(Some(spanned(
            s,
            format!(
                "`version` takes a number, not a string: `version = {}`",
                s.value().trim()
            ),
        ))),
        Some(v) => Err(Some(spanned(v, msg))),
        None => Err(None),
    }
}

/// `refresh_top = 100`: a whole number of keys, at least 1.
fn refresh_top(a: &Arg) -> Read<u64> {
    let msg = "`refresh_top` takes a whole number of keys (at least 1), e.g. `refresh_top = 100`";
    match &a.value {
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        })) => match i.base10_parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Some(spanned(i, msg))),
        },
        Some(v) => Err(Some(spanned(v, msg))),
        None => Err(None),
    }
}

/// `capacity = 10_000` or an expression.
fn capacity(a: &Arg) -> Read<Capacity> {
    let bad = |tokens: &dyn quote::ToTokens, msg: &str| Err(Some(spanned(tokens, msg)));
    match &a.value {
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        })) => match i.base10_parse::<u64>() {
            Ok(0) => bad(
                i,
                "`capacity` must be at least 1 (for no bound at all, write `unbounded`)",
            ),
            Ok(n) => Ok(Capacity::Lit(n)),
            Err(_) => bad(i, "`capacity` must be a whole number up to `u64::MAX`"),
        },
        Some(Expr::Unary(u)) if matches!(u.op, syn::UnOp::Neg(_)) => {
            bad(u, "`capacity` must be a positive number of entries")
        }
        Some(Expr::Lit(l)) => bad(
            l,
            "`capacity` is a number of entries, e.g. `capacity = 10_000`",
        ),
        Some(e) => Ok(Capacity::Expr(Box::new(e.clone()))),
        None => Err(None),
    }
}

/// `early_refresh = 1.0`: XFetch's beta, a positive number.
fn early_refresh(a: &Arg) -> Read<f64> {
    let beta = match &a.value {
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Float(f), ..
        })) => f.base10_parse::<f64>().ok(),
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        })) => i.base10_parse::<u32>().ok().map(f64::from),
        _ => None,
    };
    match beta {
        Some(b) if b > 0.0 && b <= 1e6 && b.is_finite() => Ok(b),
        _ => {
            let msg = "`early_refresh` takes XFetch's beta, a positive number such as `1.0` (the \
                       usual choice; larger refreshes earlier)";
            Err(Some(match &a.value {
                Some(v) => spanned(v, msg),
                None => spanned(&a.name, msg),
            }))
        }
    }
}

/// A duration setting: a string such as `"1m30s"`, or a `Duration` expression.
fn duration(a: &Arg, what: &str) -> Read<Dur> {
    let Some(value) = &a.value else {
        return Err(None);
    };
    let err = |tokens: &dyn quote::ToTokens, msg: String| Err(Some(spanned(tokens, msg)));
    match value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => match parse_duration(&s.value()) {
            Ok(0) => err(
                s,
                format!(
                    "`{what}` must be longer than zero ({})",
                    match what {
                        symbol::TTI => "to keep entries however long they go unread, remove `tti`",
                        symbol::REFRESH_EVERY =>
                            "to refresh only on a miss, remove `refresh_every`",
                        _ => "to disable caching, remove the attribute",
                    }
                ),
            ),
            Ok(n) if n > u128::from(u64::MAX / 2) => err(
                s,
                format!("`{what}` is too long (the limit is about 292 years)"),
            ),
            Ok(n) => Ok(Dur::Lit(n, s.span())),
            Err(why) => err(
                s,
                format!(
                    "invalid duration `\"{}\"`: {why}\nwrite a number and a unit (`ns`, `us`, \
                     `ms`, `s`, `m`, `h`, `d`), e.g. `\"250ms\"`, `\"5s\"`, `\"1m30s\"`",
                    s.value()
                ),
            ),
        },
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        }) => err(
            i,
            format!(
                "a bare number has no unit: write `{what} = \"{}s\"` (or a `Duration` expression)",
                i.base10_digits()
            ),
        ),
        Expr::Lit(l) => err(
            l,
            format!("`{what}` takes a duration string such as `\"5s\"` or a `Duration` expression"),
        ),
        e => Ok(Dur::Expr(Box::new(e.clone()))),
    }
}

/// `jitter = 0.1` (a fraction of the TTL) or `jitter = "2s"`. Whether there is a TTL to spread,
/// and whether the jitter exceeds it, is for `validate` to check.
fn jitter(a: &Arg) -> Read<Jitter> {
    let Some(v) = &a.value else { return Err(None) };
    match v {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Float(f), ..
        }) => match f.base10_parse::<f64>() {
            Ok(x) if (0.0..=1.0).contains(&x) => Ok(Jitter::Fraction(f.clone())),
            _ => Err(Some(spanned(
                f,
                "a jitter fraction must be within 0.0..=1.0 (0% to 100% of the TTL), e.g. \
                 `jitter = 0.1` for +/-10%",
            ))),
        },
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        }) => Err(Some(spanned(
            i,
            "write the jitter as a fraction of the TTL (`jitter = 0.1` for +/-10%) or as a \
             duration string (`jitter = \"2s\"`)",
        ))),
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => match parse_duration(&s.value()) {
            Ok(n) => Ok(Jitter::Spread(n, s.clone())),
            Err(why) => Err(Some(spanned(
                s,
                format!("invalid jitter duration `\"{}\"`: {why}", s.value()),
            ))),
        },
        e => Err(Some(spanned(
            e,
            "`jitter` takes a fraction literal (`0.1`) or a duration string (`\"2s\"`)",
        ))),
    }
}

/// `"1m30s"` to nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Result<u128, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("it is empty".into());
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let (num, tail) = rest.split_at(digits);
        let n: u128 = num.parse().map_err(|_| format!("`{num}` is too large"))?;
        let tail = tail.trim_start();
        let unit_len = tail
            .chars()
            .take_while(|c| c.is_alphabetic())
            .map(char::len_utf8)
            .sum::<usize>();
        if unit_len == 0 {
            return Err(format!("`{num}` has no unit"));
        }
        let (unit, tail) = tail.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" | "nanos" | "nanosecond" | "nanoseconds" => 1,
            "us" | "µs" | "micros" | "microsecond" | "microseconds" => 1_000,
            "ms" | "millis" | "millisecond" | "milliseconds" => 1_000_000,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60 * 1_000_000_000,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600 * 1_000_000_000,
            "d" | "day" | "days" => 86_400 * 1_000_000_000,
            other => return Err(format!("unknown unit `{other}`")),
        };
        total = n
            .checked_mul(scale)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(|| "it is too long".to_string())?;
        rest = tail.trim_start();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration("5s"), Ok(5_000_000_000));
        assert_eq!(parse_duration("10m"), Ok(600_000_000_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000_000_000));
        assert_eq!(parse_duration("1d"), Ok(86_400_000_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("1h 5m"), Ok(3_900_000_000_000));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("99999999999999999999999999999999999999999d").is_err());
    }
}
