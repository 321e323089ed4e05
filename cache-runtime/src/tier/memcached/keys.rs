//! Keys and expiries as memcached takes them.
//!
//! - A memcached key is at most 250 bytes of printable ASCII without spaces. A key that is
//!   longer, or holds anything else, is stored under its readable start (other bytes made `_`)
//!   followed by `#` and the MD5 of the whole key: never refused, and two keys share an entry only
//!   if their 128-bit digests collide (never, in practice; and the typed tier checks the full
//!   encoded key inside the payload besides).
//! - memcached cannot delete by prefix, so each namespace (a cache: `<prefix>:<cache>:<tag>:`) has
//!   a generation, a random token stored on every server under `<namespace>~gen`, and its entries
//!   live under `<namespace>g<generation>:<hash>`. Clearing the namespace stores a new token: the
//!   old entries become unreachable and age out.
//! - An expiry is whole seconds, rounded up (a TTL under a second is one second, never zero,
//!   which memcached reads as "never"); past 30 days memcached reads the number as an absolute
//!   Unix time, so longer TTLs are sent as one.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest key memcached accepts.
pub(super) const MAX_KEY: usize = 250;
/// The readable start kept of a key that must be hashed (then `#` and 32 hex digits).
const READABLE: usize = 200;
/// The longest expiry memcached reads as relative (30 days, in seconds); larger numbers are
/// absolute Unix times.
pub(super) const RELATIVE_LIMIT: u64 = 60 * 60 * 24 * 30;

/// `key` as memcached takes it: itself when it can be, else its readable start and its digest.
pub(super) fn fit(key: &str) -> Cow<'_, str> {
    if key.len() <= MAX_KEY && !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic()) {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(READABLE + 33);
    for c in key.chars() {
        if out.len() >= READABLE {
            break;
        }
        out.push(if c.is_ascii_graphic() { c } else { '_' });
    }
    out.push('#');
    for b in md5::compute(key.as_bytes()).0 {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xF)]));
    }
    Cow::Owned(out)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A data key, split into its namespace (up to and including its last `:`) and the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct DataKey {
    /// The whole key; the namespace is `key[..at]`.
    key: String,
    at: usize,
    /// The memcached key of the namespace's generation.
    generation_key: String,
}

impl DataKey {
    /// Splits a backend key (`<prefix>:<cache>:<tag>:<hash>` from the typed tier).
    pub(super) fn new(key: &str) -> Self {
        let at = key.bytes().rposition(|b| b == b':').map_or(0, |i| i + 1);
        Self {
            key: key.to_owned(),
            at,
            generation_key: generation_key(&key[..at]),
        }
    }

    /// The namespace: what `clear_prefix` clears.
    pub(super) fn namespace(&self) -> &str {
        &self.key[..self.at]
    }

    /// The memcached key of this entry in generation `generation`.
    pub(super) fn under(&self, generation: &str) -> String {
        let (namespace, rest) = self.key.split_at(self.at);
        fitted(&[namespace, "g", generation, ":", rest])
    }

    /// The memcached key of the namespace's generation.
    pub(super) fn generation_key(&self) -> &str {
        &self.generation_key
    }
}

/// The memcached key of the concatenation of `parts`: one allocation when it fits as it is.
fn fitted(parts: &[&str]) -> String {
    let mut key = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        key.push_str(p);
    }
    match fit(&key) {
        Cow::Borrowed(_) => key,
        Cow::Owned(hashed) => hashed,
    }
}

/// The memcached key that holds `namespace`'s generation.
pub(super) fn generation_key(namespace: &str) -> String {
    fitted(&[namespace, "~gen"])
}

/// A fresh generation token: 12 random hex digits.
pub(super) fn new_generation() -> String {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = RandomState::new().hash_one((
        std::process::id(),
        SystemTime::now(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    ));
    format!("{:012x}", n & 0xFFFF_FFFF_FFFF)
}

/// The `T` (expiry) of an entry that lives `ttl` (`None`: never), at Unix time `now`.
pub(super) fn expiry(ttl: Option<Duration>, now: u64) -> u64 {
    let Some(ttl) = ttl else { return 0 };
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0))
        .max(1);
    if secs <= RELATIVE_LIMIT {
        secs
    } else {
        // memcached keeps expiries in a signed 32-bit number.
        now.saturating_add(secs).min(i32::MAX as u64)
    }
}

/// The Unix time now, in seconds.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_printable_keys_are_kept_and_others_hashed_with_a_readable_start() {
        assert_eq!(fit("app:users:1a2b3c4d:00ff"), "app:users:1a2b3c4d:00ff");
        let spaced = fit("app:my cache:00ff");
        assert!(spaced.starts_with("app:my_cache:00ff#"), "{spaced}");
        assert_eq!(spaced.len(), "app:my_cache:00ff#".len() + 32);
        assert_ne!(fit("app:my cache:00ff"), fit("app:my_cache:00ff"));
        let long = "x".repeat(400);
        let fitted = fit(&long);
        assert!(fitted.len() <= MAX_KEY && fitted.starts_with(&"x".repeat(200)));
        assert!(fit("caf\u{e9}:1").starts_with("caf_:1#"));
        assert!(fit("").starts_with('#'));
        // Two long keys that differ only past the readable start still differ.
        let (a, b) = (format!("{long}a"), format!("{long}b"));
        assert_ne!(fit(&a), fit(&b));
        assert!(fit(&"k".repeat(250)).len() == 250 && fit(&"k".repeat(251)).contains('#'));
    }

    #[test]
    fn data_keys_carry_their_namespace_and_generation() {
        let k = DataKey::new("app:users:1a2b3c4d:00000000000000ff");
        assert_eq!(k.namespace(), "app:users:1a2b3c4d:");
        assert_eq!(k.under("abc"), "app:users:1a2b3c4d:gabc:00000000000000ff");
        assert_eq!(k.generation_key(), "app:users:1a2b3c4d:~gen");
        assert_eq!(DataKey::new("plain").namespace(), "");
        // A key too long for memcached is hashed as a whole, the generation included.
        let ns = format!("app:{}:", "n".repeat(240));
        let long = DataKey::new(&format!("{ns}00ff"));
        assert_eq!(long.under("abc"), fit(&format!("{ns}gabc:00ff")));
        assert!(long.under("abc").contains('#') && long.under("abd") != long.under("abc"));
        assert_eq!(long.generation_key(), fit(&format!("{ns}~gen")));
        assert_ne!(new_generation(), new_generation());
        assert_eq!(new_generation().len(), 12);
    }

    #[test]
    fn expiries_are_whole_seconds_rounded_up_and_absolute_past_30_days() {
        let now = 1_750_000_000;
        assert_eq!(expiry(None, now), 0);
        assert_eq!(expiry(Some(Duration::from_millis(1)), now), 1);
        assert_eq!(expiry(Some(Duration::ZERO), now), 1);
        assert_eq!(expiry(Some(Duration::from_millis(1_200)), now), 2);
        assert_eq!(expiry(Some(Duration::from_secs(60)), now), 60);
        let month = Duration::from_secs(RELATIVE_LIMIT);
        assert_eq!(expiry(Some(month), now), RELATIVE_LIMIT);
        let forty_days = Duration::from_secs(40 * 86_400);
        assert_eq!(expiry(Some(forty_days), now), now + 40 * 86_400);
        assert_eq!(expiry(Some(Duration::MAX), now), i32::MAX as u64);
    }
}
