//! Invalidation of groups: by tag, by dependency, and (in [`version`]) by version.
//!
//! - **Tags**: a loader (or `#[cached(tags = ...)]`) attaches names to the entry it loads with
//!   [`tag`]; [`invalidate_tag`] (every cache) or [`Cache::invalidate_tag`](crate::Cache::invalidate_tag)
//!   (one cache) drops every entry carrying the tag.
//! - **Dependencies**: an entry loaded while its loader read other caches (another memoized
//!   function, sync or async) depends on what it read; invalidating one of those entries (remove,
//!   insert, `#[cache_evict]`, `#[cache_put]`, their tags, a clear) drops it too, however deep.
//!
//! Neither walks the entries. Each tag of a cache and each entry read by a load has a
//! generation slot ([`stamps`]); invalidation bumps one slot, and a read of an entry checks the
//! few slots it recorded. With a remote tier, the same names are generation keys in the backend
//! (`<namespace>tag:<tag>`, `<prefix>:tag:<tag>`, `<namespace>dep:<key hash>`): an L2 entry
//! carries the tokens they held when it was stored and is a miss once one changed, in any
//! process; and other processes hear of tag invalidations on the backend's invalidation channel.

pub(crate) mod frame;
pub(crate) mod stamps;
#[cfg(feature = "serde")]
pub(crate) mod version;

use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::tier::Backend;
use stamps::{name_hash, slot_of};

/// The invalidation identity of one cache: the names of its tags and entries.
pub(crate) struct Scope {
    /// Where its names start: the remote tier's namespace, or `<name>#<id>:` in this process.
    pub(crate) name: String,
    /// Bumped by a clear: every entry that read one of this cache's entries depends on it.
    pub(crate) clear_slot: u16,
    /// With a remote tier: the prefix of fleet-wide tag keys (`<prefix>:tag:`), and its backend.
    pub(crate) global_tags: Option<String>,
    pub(crate) backend: Option<Arc<dyn Backend>>,
}

impl Scope {
    /// The scope of a cache of this process only.
    pub(crate) fn local(name: &str) -> Self {
        Self::new(name.to_owned(), None)
    }

    /// A scope named `name`; `remote`: the tier's prefix and backend.
    pub(crate) fn new(name: String, remote: Option<(&str, Arc<dyn Backend>)>) -> Self {
        let clear_slot = slot_of(name_hash(&[name.as_bytes(), b"clear"]));
        let (global_tags, backend) = match remote {
            Some((prefix, b)) => (Some(format!("{prefix}:tag:")), Some(b)),
            None => (None, None),
        };
        Scope {
            name,
            clear_slot,
            global_tags,
            backend,
        }
    }

    pub(crate) fn tag_slot(&self, tag: &str) -> u16 {
        slot_of(name_hash(&[self.name.as_bytes(), b"tag:", tag.as_bytes()]))
    }

    pub(crate) fn tag_key(&self, tag: &str) -> String {
        format!("{}tag:{tag}", self.name)
    }

    pub(crate) fn dep_slot(&self, ident: u64) -> u16 {
        slot_of(name_hash(&[self.name.as_bytes(), b"dep:", &hex16(ident)]))
    }

    pub(crate) fn dep_key(&self, ident: u64) -> String {
        format!("{}dep:{ident:016x}", self.name)
    }

    /// An explicit write of the entry `ident` (remove, insert, an invalidation from another
    /// process): the entries that read it are stale. Every explicit write bumps (two atomic
    /// operations; the miss path's own stores do not), so that a read and a write that race
    /// never lose the write.
    #[inline]
    pub(crate) fn wrote(&self, ident: u64) {
        stamps::bump(self.dep_slot(ident));
    }

    /// A clear of the whole cache.
    pub(crate) fn cleared(&self) {
        stamps::bump(self.clear_slot);
    }

    /// Invalidates `tag` in this cache (here only).
    pub(crate) fn invalidate_tag_here(&self, tag: &str) {
        stamps::bump(self.tag_slot(tag));
    }
}

/// `v` as 16 lowercase hex digits, without allocating.
pub(crate) fn hex16(v: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = DIGITS[((v >> (60 - 4 * i)) & 0xF) as usize];
    }
    out
}

/// Every cache's scope, for [`invalidate_tag`].
static SCOPES: Mutex<Vec<Weak<Scope>>> = Mutex::new(Vec::new());

pub(crate) fn register(scope: &Arc<Scope>) {
    let mut all = SCOPES.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(scope));
}

fn scopes() -> Vec<Arc<Scope>> {
    SCOPES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect()
}

/// Attaches `tag` to the entry being loaded on this thread (or in this task): call it from a
/// loader. [`invalidate_tag`] then drops the entry. Outside a loader it does nothing and returns
/// `false`. `#[cached(tags = [...])]` calls it for you.
///
/// ```
/// use cache_runtime::{Cache, invalidate_tag, tag};
///
/// let products: Cache<u64, String> = Cache::builder().build()?;
/// let name = products.get_or_insert_with(&7, || {
///     tag("catalog");
///     "teapot".to_string()
/// });
/// assert_eq!(name, "teapot");
/// assert!(products.contains_key(&7));
/// invalidate_tag("catalog"); // every cache's entries tagged "catalog"
/// assert!(!products.contains_key(&7));
/// assert!(!tag("catalog")); // not in a loader: nothing to tag
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
pub fn tag(tag: impl AsRef<str>) -> bool {
    frame::tag(tag.as_ref())
}

/// Drops every entry tagged `tag` in every cache of this process and, through their remote
/// tiers, in the fleet: the tag's generation moves on, here, in each remote backend (so that
/// L2 copies read as misses in every process), and on the backend's invalidation channel (so
/// that other processes drop their L1 copies at once; without a channel, as memcached alone,
/// they live at most their `l1_ttl`). O(1) in the number of tagged entries: none is visited.
///
/// ```
/// use cache_runtime::{Cache, invalidate_tag, tag};
///
/// let pages: Cache<String, String> = Cache::builder().build()?;
/// for page in ["/tea", "/coffee"] {
///     pages.get_or_insert_with(page, || {
///         tag("menu");
///         format!("<h1>{page}</h1>")
///     });
/// }
/// pages.insert("/about".to_string(), "about us".to_string()); // untagged
/// invalidate_tag("menu");
/// assert!(!pages.contains_key("/tea") && !pages.contains_key("/coffee"));
/// assert!(pages.contains_key("/about"));
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
pub fn invalidate_tag(tag: impl AsRef<str>) {
    let tag = tag.as_ref();
    let mut told: Vec<(String, *const ())> = Vec::new();
    for scope in scopes() {
        scope.invalidate_tag_here(tag);
        if let (Some(global), Some(backend)) = (&scope.global_tags, &scope.backend) {
            let id = Arc::as_ptr(backend).cast::<()>();
            if told.iter().any(|(g, b)| g == global && *b == id) {
                continue;
            }
            told.push((global.clone(), id));
            remote::bump_global(&**backend, global, tag);
        }
    }
}

pub(crate) mod remote;
