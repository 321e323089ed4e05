//! The typed tier: a cache's keys and entries as a backend's keys and payloads, through a
//! [`Codec`]. It does no IO (the operations of [`tier`](super) do).
//!
//! Keys are namespaced `<prefix>:<cache name>:<type tag>:<hash of the encoded key>`; the
//! payload carries the full encoded key, checked on read, so two keys whose hashes collide never
//! read each other's values. A payload that does not decode (another codec, another format
//! version, corruption) is a miss.

use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Backend, Decoded, InvalidationHandler, LocalL1, Pending, RemoteKey, Tier};
use crate::codec::{
    Codec, CodecError, Decoded as Payload, decode_stamped, encode_key, encode_stamped,
};
use crate::entry::Entry;
use crate::invalidate::stamps::Remote;

/// Entries of one cache in a remote backend. `M` says how negative results travel:
/// [`WithNegatives`] (serde) or [`NoNegatives`] (a cache whose negative type is `Infallible`).
pub(crate) struct Typed<C, M> {
    backend: Arc<dyn Backend>,
    /// The prefix within the process namespace: fleet-wide tag keys start with it.
    prefix: String,
    /// `<prefix>:<cache name>:<type tag>:`
    namespace: String,
    /// Evicts this process's L1 copies on other processes' invalidations (held here; the
    /// backend keeps a weak reference).
    handler: std::sync::OnceLock<Arc<InvalidationHandler>>,
    pending: Arc<Pending>,
    _codec: PhantomData<fn() -> (C, M)>,
}

/// Negative results are encoded with serde.
pub(crate) struct WithNegatives;
/// The cache has no negative results (`N = Infallible`, which serde cannot encode).
pub(crate) struct NoNegatives;

/// How a tier turns entries into payloads and back.
trait Payloads<C, V, N> {
    fn encode(key: &[u8], stamps: &[Remote], entry: &Entry<V, N>) -> Result<Vec<u8>, CodecError>;
    fn decode(key: &[u8], bytes: &[u8]) -> Result<(Entry<V, N>, Vec<Remote>), CodecError>;
}

impl<C, V, N> Payloads<C, V, N> for WithNegatives
where
    C: Codec,
    V: Serialize + DeserializeOwned,
    N: Serialize + DeserializeOwned,
{
    fn encode(key: &[u8], stamps: &[Remote], entry: &Entry<V, N>) -> Result<Vec<u8>, CodecError> {
        match entry {
            Entry::Value(v) => encode_stamped::<C, V, N>(key, stamps, &Payload::Value(v)),
            Entry::Negative(n) => encode_stamped::<C, V, N>(key, stamps, &Payload::Negative(n)),
        }
    }

    fn decode(key: &[u8], bytes: &[u8]) -> Result<(Entry<V, N>, Vec<Remote>), CodecError> {
        let (p, stamps) = decode_stamped::<C, V, N>(key, bytes)?;
        let e = match p {
            Payload::Value(v) => Entry::Value(v),
            Payload::Negative(n) => Entry::Negative(n),
        };
        Ok((e, stamps))
    }
}

impl<C, V> Payloads<C, V, std::convert::Infallible> for NoNegatives
where
    C: Codec,
    V: Serialize + DeserializeOwned,
{
    fn encode(
        key: &[u8],
        stamps: &[Remote],
        entry: &Entry<V, std::convert::Infallible>,
    ) -> Result<Vec<u8>, CodecError> {
        match entry {
            Entry::Value(v) => encode_stamped::<C, V, ()>(key, stamps, &Payload::Value(v)),
            Entry::Negative(n) => match *n {},
        }
    }

    #[allow(clippy::type_complexity)]
    fn decode(
        key: &[u8],
        bytes: &[u8],
    ) -> Result<(Entry<V, std::convert::Infallible>, Vec<Remote>), CodecError> {
        match decode_stamped::<C, V, ()>(key, bytes)? {
            (Payload::Value(v), stamps) => Ok((Entry::Value(v), stamps)),
            (Payload::Negative(()), _) => Err(CodecError::Header(
                "a negative result in a cache without them",
            )),
        }
    }
}

impl<C: Codec, M> Typed<C, M> {
    /// `shape` (the cache's version and a hash of its types' shapes, see
    /// [`version`](crate::invalidate::version)) tells apart caches of one name but different
    /// key or value types (two unnamed caches numbered alike in two processes, two versions of
    /// a function, a value type that changed in a deploy); the process namespace comes first.
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        prefix: &str,
        cache_name: &str,
        shape: &str,
    ) -> Self {
        let prefix = crate::invalidate::version::namespaced(prefix);
        let namespace = format!("{prefix}:{cache_name}:{shape}:");
        Self {
            prefix,
            pending: Arc::new(Pending::new(Arc::clone(&backend), namespace.clone())),
            backend,
            namespace,
            handler: std::sync::OnceLock::new(),
            _codec: PhantomData,
        }
    }
}

impl<C, M, K, V, N> Tier<K, V, N> for Typed<C, M>
where
    C: Codec,
    M: Payloads<C, V, N> + 'static,
    K: Serialize + DeserializeOwned + Send + Sync + 'static,
    V: Send + Sync,
    N: Send + Sync,
{
    fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    fn shared_backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, key: &K) -> Option<RemoteKey> {
        let encoded = encode_key::<C, K>(key).ok()?;
        let h = foldhash::quality::FixedState::with_seed(0x5EED).hash_one(&encoded);
        let mut data = String::with_capacity(self.namespace.len() + 16);
        data.push_str(&self.namespace);
        data.extend(crate::invalidate::hex16(h).map(char::from));
        Some(RemoteKey { encoded, data })
    }

    fn encode(&self, key: &RemoteKey, entry: &Entry<V, N>, stamps: &[Remote]) -> Option<Vec<u8>> {
        M::encode(&key.encoded, stamps, entry).ok()
    }

    fn decode(&self, key: &RemoteKey, bytes: &[u8]) -> Decoded<(Entry<V, N>, Vec<Remote>)> {
        match M::decode(&key.encoded, bytes) {
            Ok(e) => Decoded::Hit(e),
            Err(CodecError::KeyMismatch) => Decoded::Foreign,
            Err(_) => Decoded::Corrupt,
        }
    }

    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn pending(&self) -> &Arc<Pending> {
        &self.pending
    }

    fn attach(&self, l1: std::sync::Weak<dyn LocalL1<K>>) {
        let handler: Arc<InvalidationHandler> = Arc::new(move |key: Option<&[u8]>| {
            let Some(l1) = l1.upgrade() else { return };
            // An echo of this process's own invalidation moved its generation slots already.
            let bump = !super::echo();
            match key {
                None => l1.evict_local(None, bump),
                Some(bytes) => {
                    if let Ok(k) = C::decode::<K>(bytes) {
                        l1.evict_local(Some(&k), bump);
                    }
                }
            }
        });
        if self.handler.set(Arc::clone(&handler)).is_ok() {
            self.backend
                .subscribe(&self.namespace, Arc::downgrade(&handler));
        }
    }
}
