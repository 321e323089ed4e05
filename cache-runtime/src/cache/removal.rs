//! The removal listener: told of each value that leaves the cache, and why, once no lock is held.
//!
//! The store hands every entry it lets go of back to its caller in an
//! [`Evictions`](crate::store::Evictions) list (evicted or replaced by an insert, removed,
//! swept, cleared), and the list tells the listener when it is dropped: after the store's and
//! the single-flight table's locks are released. A hit removes nothing, so it never gets here.

use std::hash::Hash;
use std::sync::Arc;

use super::Core;
use crate::clock::Clock;
use crate::entry::{Entry, Stored};
use crate::store::{Gone, OnRemove};
use crate::ttl::NEVER;

/// Why a value left the cache, as told to the
/// [`on_removal`](crate::CacheBuilder::on_removal) listener.
///
/// A value past its deadline (and past its `stale` window), or left unread for its
/// [time-to-idle](crate::CacheBuilder::time_to_idle), is reported `Expired` whatever removed it: a read that found it, a sweep, an eviction, a replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Its TTL had passed, or it was left unread for its time-to-idle.
    Expired,
    /// Evicted to make room (or refused for being heavier than the cache).
    Evicted,
    /// Invalidated explicitly: [`remove`](crate::Cache::remove),
    /// [`invalidate_if`](crate::Cache::invalidate_if), [`clear`](crate::Cache::clear),
    /// `#[cache_evict]`, one of its tags or of the entries it was computed from invalidated
    /// (reported when the entry is next looked up: a tag's invalidation is O(1)), or another
    /// process's invalidation.
    Explicit,
    /// Replaced by a new value for its key: [`insert`](crate::Cache::insert), `#[cache_put]`, a
    /// load or a refresh.
    Replaced,
}

/// The user's listener.
pub(crate) type OnRemoval<K, V> = Arc<dyn Fn(&K, &V, RemovalCause) + Send + Sync>;

/// The listener as the builder keeps it, with the key copy that `quick_cache`'s sweep needs
/// (it lends its keys only).
pub(crate) struct Removal<K, V> {
    pub(crate) listener: OnRemoval<K, V>,
    pub(crate) copy_key: fn(&K) -> K,
}

/// A key's copy, for [`Removal::copy_key`].
pub(crate) fn copy_key<K: Clone>(k: &K) -> K {
    k.clone()
}

/// What the store tells when its entries leave: the user's listener, given each value (a
/// negative entry is not one) with its cause.
pub(crate) fn notify<K, V, N>(
    removal: Removal<K, V>,
    clock: Clock,
    stale: u64,
) -> OnRemove<K, Stored<V, N>>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
    N: Send + Sync + 'static,
{
    let Removal { listener, copy_key } = removal;
    let notify = Arc::new(move |k: K, s: Stored<V, N>, why: Gone| {
        let Entry::Value(v) = &s.entry else {
            return;
        };
        let expired = (s.expires_at() != NEVER
            && clock.is_past(s.expires_at().saturating_add(stale)))
            || s.idle_expired();
        let cause = match why {
            _ if expired => RemovalCause::Expired,
            Gone::Expired => RemovalCause::Expired,
            Gone::Evicted => RemovalCause::Evicted,
            Gone::Replaced => RemovalCause::Replaced,
            Gone::Explicit => RemovalCause::Explicit,
        };
        listener(&k, v, cause);
    });
    (notify, copy_key)
}

impl<K, V, N> Core<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    /// An entry taken out of the store, dropped (and told to the listener) now: call it with
    /// no lock held.
    pub(crate) fn removed(&self, gone: Option<(K, Stored<V, N>)>, why: Gone) {
        if let Some((k, s)) = gone {
            let mut list = self.store.evictions();
            list.push(k, s, why);
        }
    }
}
