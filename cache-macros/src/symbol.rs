//! The attribute's argument names, and the "did you mean" helper.

pub(crate) const TTL: &str = "ttl";
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

/// Every argument `#[cached]` accepts, in the order the docs list them.
pub(crate) const ALL: &[&str] = &[
    TTL,
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
];

/// Policy names, as `cache_runtime::Policy` parses them.
pub(crate) const POLICIES: &[&str] = &["s3-fifo", "lru", "lfu", "fifo"];

/// Renamed or commonly mistyped arguments, with the argument meant.
pub(crate) const ALIASES: &[(&str, &str)] = &[
    ("time_to_live", TTL),
    ("expire", TTL),
    ("expires", TTL),
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
];

/// The closest of `candidates` to `given`, if close enough to be a typo.
pub(crate) fn did_you_mean<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let given = given.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&given, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}
