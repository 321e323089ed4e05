//! The remote tier (L2) behind a cache's in-process store (L1).
//!
//! Three layers, each unaware of those above it:
//! - [`Backend`]: a byte store shared by the fleet (Redis in [`RedisBackend`](crate::RedisBackend),
//!   or your own). Blocking and async operations, bounded in time, never failing a caller.
//! - the typed tier (crate-internal): turns a cache's keys and entries into backend keys and
//!   payloads through a [`Codec`](crate::codec::Codec), negative entries included, and back.
//!   It does no IO itself.
//! - the operations below, written once over an IO driver: a fault is a miss or a skipped
//!   write, and a payload that does not decode is a miss.
//!
//! A cache reaches its tier only through these operations; nothing in the cache names a backend.

mod backend;
mod memory;
mod pending;
// The circuit breaker is backend-generic: Redis and memcached use it.
#[cfg(any(feature = "redis", feature = "memcached"))]
pub(crate) mod breaker;
#[cfg(feature = "memcached")]
pub(crate) mod memcached;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(feature = "serde")]
mod typed;

pub use backend::{Backend, BoxFuture, Fault, Faults, Health, InvalidationHandler};
pub use memory::MemoryBackend;
pub(crate) use pending::{DEFAULT_LIMIT as DEFAULT_PENDING_LIMIT, Pending};
#[cfg(feature = "serde")]
pub(crate) use typed::{NoNegatives, Typed, WithNegatives};

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use pending::Write;

use crate::driver::Io;
use crate::entry::Entry;
use crate::invalidate::remote as fleet;
use crate::invalidate::stamps::Remote;

/// This process's store of a cache, as the remote tier sees it.
pub(crate) trait LocalL1<K>: Send + Sync {
    /// Drops the local copy of `key` (`None`: of every key); with `bump`, also what this process
    /// computed from it (its generation slots move on). Without: an [`echo`] of an invalidation
    /// this process made itself, which moved them when it was made.
    fn evict_local(&self, key: Option<&K>, bump: bool);
}

std::thread_local! {
    /// Set while a backend hands its caches an invalidation that another backend of this
    /// process published (see [`deliver_echo`]).
    static ECHO: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Hands the caches (through `deliver`, which calls their invalidation handlers) an invalidation
/// that this process published itself, through another of its backends, and now hears back on
/// the channel (as when two backends of one process stand for two processes): an echo.
///
/// The generation slots of tags and dependencies are process-wide, and the call that made the
/// invalidation moved them at once; moving them again when the echo is heard, later, would make
/// the loads that started in between (after the invalidation) read as invalidated during their
/// load: their entries would not be stored, in L1 or L2. So a handler asks [`echo`] and, for an
/// echo, drops its cache's L1 copies only.
#[cfg_attr(not(feature = "redis"), allow(dead_code))] // the Redis listener's only
pub(crate) fn deliver_echo<R>(deliver: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            ECHO.with(|e| e.set(self.0));
        }
    }
    let _reset = Reset(ECHO.with(|e| e.replace(true)));
    deliver()
}

/// Whether the invalidation being handed to the caches on this thread is an echo (see
/// [`deliver_echo`]).
pub(crate) fn echo() -> bool {
    ECHO.with(std::cell::Cell::get)
}

/// A cache key as the remote tier names it.
pub(crate) struct RemoteKey {
    /// The encoded cache key, carried in the payload and checked on read.
    pub(crate) encoded: Vec<u8>,
    /// The backend key of the entry.
    pub(crate) data: String,
}

impl RemoteKey {
    /// The backend key of the key's fleet-wide lease.
    fn lease(&self) -> String {
        format!("{}:lease", self.data)
    }
}

/// What a payload read back is.
#[cfg_attr(not(feature = "serde"), allow(dead_code))] // made by the typed tier only
pub(crate) enum Decoded<T> {
    /// This key's entry.
    Hit(T),
    /// Another key's entry (a hash collision): left to its owner.
    Foreign,
    /// Not ours to read (another format, corruption): deleted.
    Corrupt,
}

/// A remote tier of typed entries, without IO: it names keys and encodes entries; the
/// operations of this module do the IO on its backend.
pub(crate) trait Tier<K, V, N>: Send + Sync {
    /// The byte store.
    fn backend(&self) -> &dyn Backend;
    /// The byte store, shared (for the caches' invalidation scopes).
    fn shared_backend(&self) -> &Arc<dyn Backend>;
    /// The prefix of the cache's keys, within the process namespace (fleet-wide tag keys
    /// start with `<prefix>:tag:`).
    fn prefix(&self) -> &str;
    /// `key` as the backend names it (`None`: the key does not encode).
    fn key(&self, key: &K) -> Option<RemoteKey>;
    /// The payload of `entry`, which depends on `stamps` (`None`: it does not encode).
    fn encode(&self, key: &RemoteKey, entry: &Entry<V, N>, stamps: &[Remote]) -> Option<Vec<u8>>;
    /// The entry of a payload, and what it depends on.
    fn decode(&self, key: &RemoteKey, bytes: &[u8]) -> Decoded<(Entry<V, N>, Vec<Remote>)>;
    /// The prefix of every backend key of this cache (`<prefix>:<name>:<type tag>:`).
    fn namespace(&self) -> &str;
    /// Lets the tier evict this process's L1 copies when other processes invalidate.
    fn attach(&self, l1: Weak<dyn LocalL1<K>>);
    /// The writes the backend did not take, retried in the background.
    fn pending(&self) -> &Arc<Pending>;
}

/// What the tier had for a key.
pub(crate) enum Fetched<T> {
    /// This key's entry.
    Hit(T),
    /// None (or a payload that is not this key's).
    Miss,
    /// The backend did not answer: for this call, the tier is out of reach.
    Fault,
    /// Not asked: a write of this key that the backend did not take is pending, so its copy
    /// may be older than this process's (see [`Pending`]).
    Distrusted,
}

/// The entry of `key` in the tier. A payload that is not this key's is a miss, and deleted
/// unless it is another key's.
pub(crate) async fn get<I: Io, K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
) -> Fetched<(Entry<V, N>, Vec<Remote>)> {
    if tier.pending().distrusts(&key.data) {
        return Fetched::Distrusted;
    }
    let read = I::get(tier.backend(), &key.data).await;
    fetched::<I, K, V, N>(tier, key, read).await
}

/// The entries of `keys` in the tier, one slot per key in order, each as [`get`] has it, but
/// with one backend lookup ([`Backend::get_many`]) for the keys asked: a key whose write is
/// pending is not asked (`Distrusted`), and a fault of the lookup faults every slot asked.
pub(crate) async fn get_many<I: Io, K, V, N>(
    tier: &dyn Tier<K, V, N>,
    keys: &[&RemoteKey],
) -> Vec<Fetched<(Entry<V, N>, Vec<Remote>)>> {
    // Decided once per key: the pending writes may change while the lookup runs.
    let distrusted: Vec<bool> = keys
        .iter()
        .map(|k| tier.pending().distrusts(&k.data))
        .collect();
    let asked: Vec<&str> = keys
        .iter()
        .zip(&distrusted)
        .filter(|(_, d)| !**d)
        .map(|(k, _)| k.data.as_str())
        .collect();
    let answer = if asked.is_empty() {
        Ok(Vec::new())
    } else {
        I::get_many(tier.backend(), &asked).await
    };
    // A backend of someone else's that answers the wrong number of slots has not answered.
    let mut reads = match answer {
        Ok(values) if values.len() == asked.len() => Ok(values.into_iter()),
        Ok(_) => Err(Fault::Reply),
        Err(f) => Err(f),
    };
    let mut out = Vec::with_capacity(keys.len());
    for (key, distrusted) in keys.iter().zip(distrusted) {
        if distrusted {
            out.push(Fetched::Distrusted);
            continue;
        }
        let read = match &mut reads {
            Ok(values) => values.next().ok_or(Fault::Reply),
            Err(f) => Err(*f),
        };
        out.push(fetched::<I, K, V, N>(tier, key, read).await);
    }
    out
}

/// What one read of `key` from the backend means: a payload that is not this key's is a miss,
/// and deleted unless it is another key's; a hit whose tags or dependencies moved on is a miss.
async fn fetched<I: Io, K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
    read: Result<Option<Vec<u8>>, Fault>,
) -> Fetched<(Entry<V, N>, Vec<Remote>)> {
    let bytes = match read {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Fetched::Miss,
        Err(_) => return Fetched::Fault,
    };
    match tier.decode(key, &bytes) {
        Decoded::Hit((e, stamps)) => {
            // An entry whose tags or dependencies moved on since it was stored is stale.
            if stamps.is_empty() || fleet::still_valid::<I>(tier.backend(), &stamps).await {
                Fetched::Hit((e, stamps))
            } else {
                Fetched::Miss
            }
        }
        Decoded::Foreign => Fetched::Miss,
        Decoded::Corrupt => {
            let _ = I::delete(tier.backend(), &key.data).await;
            Fetched::Miss
        }
    }
}

/// Stores a loaded `entry` under `key` for `ttl`, best effort: a fault skips the write (the
/// tier had no entry for the key, or one this process distrusts, whose pending write this one
/// then replaces).
pub(crate) async fn put<I: Io, K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
    entry: &Entry<V, N>,
    stamps: &[Remote],
    ttl: Option<Duration>,
) {
    if let Some(bytes) = payload_to_put(tier, key, entry, stamps, ttl) {
        let _ = I::set(tier.backend(), &key.data, &bytes, ttl).await;
    }
}

/// [`put`] of several loaded entries (a batch's), which all depend on `stamps`, each with its
/// own TTL: best effort, in one round trip where the backend can.
pub(crate) async fn put_many<I: Io, K, V, N>(
    tier: &dyn Tier<K, V, N>,
    items: &[(&RemoteKey, &Entry<V, N>, Option<Duration>)],
    stamps: &[Remote],
) {
    let payloads: Vec<(&str, Vec<u8>, Option<Duration>)> = items
        .iter()
        .filter_map(|(key, entry, ttl)| {
            let bytes = payload_to_put(tier, key, entry, stamps, *ttl)?;
            Some((key.data.as_str(), bytes, *ttl))
        })
        .collect();
    let items: Vec<(&str, &[u8], Option<Duration>)> = payloads
        .iter()
        .map(|(data, bytes, ttl)| (*data, bytes.as_slice(), *ttl))
        .collect();
    if !items.is_empty() {
        let _ = I::set_many(tier.backend(), &items).await;
    }
}

/// The payload [`put`] sends for `entry`: `None` when it does not encode, or when a write of
/// the key is pending (this one then takes its place, see [`Pending`]).
fn payload_to_put<K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
    entry: &Entry<V, N>,
    stamps: &[Remote],
    ttl: Option<Duration>,
) -> Option<Vec<u8>> {
    let write = set_of(tier, key, entry, stamps, ttl)?;
    if tier.pending().queue_behind(&key.data, &key.encoded, &write) {
        return None;
    }
    match write {
        Write::Set { bytes, .. } => Some(bytes),
        Write::Delete => None,
    }
}

/// Writes `entry` under `key` for `ttl` or, for `None`, deletes `key`'s entry: a write-through or
/// an invalidation, which must reach the tier. `true` when it did (the caller then tells the
/// other processes); a fault leaves it pending, to be retried and broadcast (see [`Pending`]).
pub(crate) async fn write<I: Io, K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
    entry: Option<(&Entry<V, N>, Option<Duration>)>,
) -> bool {
    let write = match entry {
        Some((e, ttl)) => match set_of(tier, key, e, &[], ttl) {
            Some(w) => w,
            // An entry that does not encode cannot replace the old one: delete that instead.
            None => Write::Delete,
        },
        None => Write::Delete,
    };
    let pending = tier.pending();
    if pending.queue_behind(&key.data, &key.encoded, &write) {
        return false;
    }
    let sent = match &write {
        Write::Set { bytes, expires } => {
            let ttl = expires.map(|e| e.saturating_duration_since(Instant::now()));
            I::set(tier.backend(), &key.data, bytes, ttl).await
        }
        Write::Delete => I::delete(tier.backend(), &key.data).await,
    };
    if sent.is_err() {
        pending.record(&key.data, &key.encoded, write);
        return false;
    }
    true
}

/// The write of `entry` for `ttl` (`None`: it does not encode).
fn set_of<K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
    entry: &Entry<V, N>,
    stamps: &[Remote],
    ttl: Option<Duration>,
) -> Option<Write> {
    let bytes = tier.encode(key, entry, stamps)?;
    tier.pending().extend_horizon(ttl);
    Some(Write::Set {
        bytes,
        expires: ttl.and_then(|t| Instant::now().checked_add(t)),
    })
}

/// The outcome of trying to take a key's fleet-wide lease.
pub(crate) enum Leased {
    /// Taken, with this token: this process loads.
    Held(String),
    /// Another process holds it, and loads.
    Busy,
    /// The backend could not say (a fault): load without it (fail open).
    Unknown,
}

/// Tries to take the fleet-wide lease of loading `key`, for `ttl`.
pub(crate) async fn lease<I: Io, K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
    ttl: Duration,
) -> Leased {
    let token = lease_token();
    match I::try_lease(tier.backend(), &key.lease(), &token, ttl).await {
        Ok(true) => Leased::Held(token),
        Ok(false) => Leased::Busy,
        Err(_) => Leased::Unknown,
    }
}

/// Releases a lease taken by [`lease`] (only if still ours).
pub(crate) async fn release<I: Io, K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
    token: &str,
) {
    let _ = I::release_lease(tier.backend(), &key.lease(), token).await;
}

/// Waits, at most `max`, for another process's load of `key` to appear.
pub(crate) async fn wait_for<I: Io, K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
    max: Duration,
) -> Option<(Entry<V, N>, Vec<Remote>)> {
    let bytes = I::wait_for(tier.backend(), &key.data, &key.lease(), max)
        .await
        .ok()??;
    match tier.decode(key, &bytes) {
        // Just stored by another process's load: its stamps are as fresh as can be.
        Decoded::Hit(e) => Some(e),
        Decoded::Foreign | Decoded::Corrupt => None,
    }
}

/// Tells other processes that `key` (`None`: every key) changed.
pub(crate) fn broadcast<K, V, N>(tier: &dyn Tier<K, V, N>, key: Option<&RemoteKey>) {
    tier.backend()
        .publish(tier.namespace(), key.map(|k| k.encoded.as_slice()));
}

/// Removes every entry of this cache from the tier, and tells the other processes. A fault
/// leaves the clear pending: the cache uses L1 only until it went through (see [`Pending`]).
pub(crate) fn clear<K, V, N>(tier: &dyn Tier<K, V, N>) {
    if tier.backend().clear_prefix(tier.namespace()).is_ok() {
        tier.pending().cleared();
        broadcast(tier, None);
    } else {
        tier.pending().record_clear();
    }
}

/// A random token identifying one lease holder.
fn lease_token() -> String {
    use std::hash::{BuildHasher, RandomState};
    let s = RandomState::new();
    format!(
        "{:016x}{:016x}",
        s.hash_one(std::process::id()),
        s.hash_one(std::time::SystemTime::now())
    )
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::testing::Probe;
    use super::*;
    use crate::codec::Bincode;
    use crate::driver::{Async, Blocking, block_on};
    use crate::invalidate::stamps::RemoteKind;

    type Users = Typed<Bincode, WithNegatives>;
    type Got = Fetched<(Entry<String, String>, Vec<Remote>)>;

    fn users(probe: &Arc<Probe>) -> Users {
        let backend: Arc<dyn Backend> = probe.clone();
        Users::new(backend, "batch-test", "users", "shape")
    }

    fn keys(tier: &dyn Tier<u64, String, String>, n: u64) -> Vec<RemoteKey> {
        (0..n).map(|i| tier.key(&i).unwrap()).collect()
    }

    /// A slot, as text.
    fn kind(got: &Got) -> String {
        match got {
            Fetched::Hit((Entry::Value(v), _)) => format!("value {v}"),
            Fetched::Hit((Entry::Negative(n), _)) => format!("negative {n}"),
            Fetched::Miss => "miss".into(),
            Fetched::Fault => "fault".into(),
            Fetched::Distrusted => "distrusted".into(),
        }
    }

    fn kinds(got: &[Got]) -> Vec<String> {
        got.iter().map(kind).collect()
    }

    /// A key made pending (its delete refused), so distrusted from now on.
    fn make_pending(probe: &Probe, tier: &dyn Tier<u64, String, String>, key: &RemoteKey) {
        probe.refuse(&key.data);
        assert!(!block_on(write::<Blocking, _, _, _>(tier, key, None)));
        assert!(tier.pending().distrusts(&key.data));
    }

    #[test]
    fn each_slot_of_a_batch_is_what_get_says_of_its_key() {
        let probe = Arc::new(Probe::default());
        let typed = users(&probe);
        let tier: &dyn Tier<u64, String, String> = &typed;
        let k = keys(tier, 7);
        let put_entry = |key: &RemoteKey, e: Entry<String, String>, stamps: &[Remote]| {
            let bytes = tier.encode(key, &e, stamps).unwrap();
            probe.inner.set(&key.data, &bytes, None).unwrap();
        };
        put_entry(&k[0], Entry::Value("zero".into()), &[]);
        // k[1]: nothing stored.
        probe.inner.set(&k[2].data, b"not a payload", None).unwrap();
        // k[3]: another key's payload under k[3]'s backend key (a hash collision).
        let foreign = tier
            .encode(&k[4], &Entry::Value("four".into()), &[])
            .unwrap();
        probe.inner.set(&k[3].data, &foreign, None).unwrap();
        make_pending(&probe, tier, &k[4]);
        // k[5]: stamped by a generation key that moved on (absent: its token is 0).
        let gen_key = "batch-test-gen".to_owned();
        let stale = Remote {
            kind: RemoteKind::Local,
            key: gen_key.clone(),
            token: 42,
        };
        put_entry(&k[5], Entry::Value("five".into()), &[stale]);
        put_entry(&k[6], Entry::Negative("none".into()), &[]);
        probe.reads();

        let mut asked: Vec<&RemoteKey> = k.iter().collect();
        asked.push(&k[0]); // a key twice: two slots
        let got = block_on(get_many::<Blocking, _, _, _>(tier, &asked));
        assert_eq!(
            kinds(&got),
            [
                "value zero",
                "miss",
                "miss",
                "miss",
                "distrusted",
                "miss",
                "negative none",
                "value zero"
            ]
        );
        let mut expected: Vec<String> = asked
            .iter()
            .filter(|key| key.data != k[4].data)
            .map(|key| key.data.clone())
            .collect();
        expected.push(gen_key); // the stamped hit's check
        let mut read = probe.reads();
        read.sort();
        expected.sort();
        assert_eq!(read, expected, "the pending key is not asked");
        assert_eq!(
            probe.inner.get(&k[2].data).unwrap(),
            None,
            "corrupt: deleted"
        );
        assert!(
            probe.inner.get(&k[3].data).unwrap().is_some(),
            "another key's payload is left to its owner"
        );

        // The same answers through `get`, key by key, and through the async driver.
        let one_by_one: Vec<Got> = asked
            .iter()
            .map(|key| block_on(get::<Blocking, _, _, _>(tier, key)))
            .collect();
        assert_eq!(kinds(&one_by_one), kinds(&got));
        let async_got = block_on(get_many::<Async, _, _, _>(tier, &asked));
        assert_eq!(kinds(&async_got), kinds(&got));
    }

    #[test]
    fn a_fault_of_the_lookup_faults_every_slot_asked_and_no_key_means_no_lookup() {
        let probe = Arc::new(Probe::default());
        let typed = users(&probe);
        let tier: &dyn Tier<u64, String, String> = &typed;
        let k = keys(tier, 3);
        let stored = tier.encode(&k[0], &Entry::Value("v".into()), &[]).unwrap();
        probe.inner.set(&k[0].data, &stored, None).unwrap();
        make_pending(&probe, tier, &k[1]);
        probe.set_down(true);
        let got = block_on(get_many::<Blocking, _, _, _>(tier, &[&k[0], &k[1], &k[2]]));
        assert_eq!(kinds(&got), ["fault", "distrusted", "fault"]);
        assert!(
            probe.inner.get(&k[0].data).unwrap().is_some(),
            "nothing deleted"
        );

        probe.reads();
        assert!(block_on(get_many::<Blocking, _, _, _>(tier, &[])).is_empty());
        let got = block_on(get_many::<Async, _, _, _>(tier, &[&k[1], &k[1]]));
        assert_eq!(kinds(&got), ["distrusted", "distrusted"]);
        assert!(probe.reads().is_empty(), "no key to ask: no lookup");
    }

    #[test]
    fn the_default_batch_reads_each_key_in_order_and_a_fault_faults_it_whole() {
        let probe = Probe::default();
        probe.inner.set("a", b"1", None).unwrap();
        let got = probe.get_many(&["b", "a", "b"]).unwrap();
        assert_eq!(got, [None, Some(b"1".to_vec()), None]);
        assert_eq!(probe.reads(), ["b", "a", "b"]);
        let got = block_on(probe.get_many_async(&["a"])).unwrap();
        assert_eq!(got, [Some(b"1".to_vec())]);
        assert!(probe.get_many(&[]).unwrap().is_empty());
        probe.reads();
        probe.set_down(true);
        assert_eq!(probe.get_many(&["a", "b"]), Err(Fault::Timeout));
        assert_eq!(
            block_on(probe.get_many_async(&["a", "b"])),
            Err(Fault::Timeout)
        );
        assert_eq!(probe.reads(), ["a", "a"], "it stops at the first fault");
    }
}
