//! The attribute's argument names, and the "did you mean" helper.

use cache_policy::Policy;

pub(crate) const TTL: &str = "ttl";
pub(crate) const TTI: &str = "tti";
pub(crate) const CAPACITY: &str = "capacity";
pub(crate) const UNBOUNDED: &str = "unbounded";
pub(crate) const POLICY: &str = "policy";
pub(crate) const KEY: &str = "key";
pub(crate) const KEY_TYPE: &str = "key_type";
pub(crate) const JITTER: &str = "jitter";
pub(crate) const NEGATIVE_TTL: &str = "negative_ttl";
pub(crate) const NAME: &str = "name";
pub(crate) const CRATE: &str = "crate";
pub(crate) const RETURNS: &str = "returns";
pub(crate) const BACKEND: &str = "backend";
pub(crate) const DISTRIBUTED_LOCK: &str = "distributed_lock";
pub(crate) const STALE: &str = "stale";
pub(crate) const EARLY_REFRESH: &str = "early_refresh";
pub(crate) const UNLESS: &str = "unless";
pub(crate) const IF: &str = "if";
pub(crate) const TTL_FN: &str = "ttl_fn";
pub(crate) const TAGS: &str = "tags";
pub(crate) const DEPENDS: &str = "depends";
pub(crate) const VERSION: &str = "version";
pub(crate) const ON_REMOVAL: &str = "on_removal";
pub(crate) const REFRESH_EVERY: &str = "refresh_every";
pub(crate) const REFRESH_TOP: &str = "refresh_top";
pub(crate) const BATCH: &str = "batch";

/// Every argument `#[cached]` accepts, in the order the docs list them.
pub(crate) const ALL: &[&str] = &[
    TTL,
    TTI,
    CAPACITY,
    UNBOUNDED,
    POLICY,
    KEY,
    KEY_TYPE,
    JITTER,
    NEGATIVE_TTL,
    NAME,
    CRATE,
    RETURNS,
    BACKEND,
    DISTRIBUTED_LOCK,
    STALE,
    EARLY_REFRESH,
    UNLESS,
    IF,
    TTL_FN,
    TAGS,
    DEPENDS,
    VERSION,
    ON_REMOVAL,
    REFRESH_EVERY,
    REFRESH_TOP,
    BATCH,
];

/// The policy names, from the runtime's own table (`cache_policy::Policy::ALL`): the "did you
/// mean" candidates of `policy = "..."`.
pub(crate) fn policy_names() -> [&'static str; Policy::ALL.len()] {
    Policy::ALL.map(|(name, _)| name)
}

/// The policy names as the errors list them: `` `"s3-fifo"`, `"lru"`, `"lfu"` (the default), ... ``.
pub(crate) fn policy_list() -> String {
    Policy::ALL
        .iter()
        .map(|(name, p)| {
            let default = if *p == Policy::default() {
                " (the default)"
            } else {
                ""
            };
            format!("`\"{name}\"`{default}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The policy names as alternatives: `` `"s3-fifo"`, `"lru"`, `"lfu"` or `"fifo"` ``.
pub(crate) fn policy_alternatives() -> String {
    let names = policy_names().map(|n| format!("`\"{n}\"`"));
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Renamed or commonly mistyped arguments, with the argument meant.
pub(crate) const ALIASES: &[(&str, &str)] = &[
    ("time_to_live", TTL),
    ("expire", TTL),
    ("expires", TTL),
    ("refresh_interval", REFRESH_EVERY),
    ("refresh_period", REFRESH_EVERY),
    ("refresh_after", REFRESH_EVERY),
    ("refresh_hottest", REFRESH_TOP),
    ("refresh_keys", REFRESH_TOP),
    ("many", BATCH),
    ("get_many", BATCH),
    ("load_many", BATCH),
    ("multi", BATCH),
    ("bulk", BATCH),
    ("time_to_idle", TTI),
    ("idle", TTI),
    ("idle_ttl", TTI),
    ("expire_after_access", TTI),
    ("size", CAPACITY),
    ("max_capacity", CAPACITY),
    ("max_size", CAPACITY),
    ("eviction", POLICY),
    ("convert", KEY),
    ("ty", KEY_TYPE),
    ("negative", NEGATIVE_TTL),
    ("error_ttl", NEGATIVE_TTL),
    ("result", RETURNS),
    ("option", RETURNS),
    ("stale_while_revalidate", STALE),
    ("swr", STALE),
    ("serve_stale", STALE),
    ("xfetch", EARLY_REFRESH),
    ("beta", EARLY_REFRESH),
    ("condition", IF),
    ("when", IF),
    ("ttl_of", TTL_FN),
    ("expire_after", TTL_FN),
    ("tag", TAGS),
    ("labels", TAGS),
    ("dependencies", DEPENDS),
    ("deps", DEPENDS),
    ("track_dependencies", DEPENDS),
    ("schema_version", VERSION),
    ("ver", VERSION),
    ("removal_listener", ON_REMOVAL),
    ("eviction_listener", ON_REMOVAL),
    ("listener", ON_REMOVAL),
    ("on_evict", ON_REMOVAL),
    ("on_remove", ON_REMOVAL),
];

/// The closest of `candidates` to `given`, if close enough to be a typo.
pub(crate) fn did_you_mean<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let given = given.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&given, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting an adjacent transposition as one edit (`lur` -> `lru` is 1).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("lur", &policy_names()), Some("lru"));
        assert_eq!(did_you_mean("lfuu", &policy_names()), Some("lfu"));
        assert_eq!(did_you_mean("tll", ALL), Some("ttl"));
        assert_eq!(did_you_mean("capacty", ALL), Some("capacity"));
        assert_eq!(did_you_mean("colour", ALL), None);
    }

    #[test]
    fn policy_messages() {
        assert_eq!(
            policy_list(),
            "`\"s3-fifo\"`, `\"lru\"`, `\"lfu\"` (the default), `\"fifo\"`"
        );
        assert_eq!(
            policy_alternatives(),
            "`\"s3-fifo\"`, `\"lru\"`, `\"lfu\"` or `\"fifo\"`"
        );
    }
}
