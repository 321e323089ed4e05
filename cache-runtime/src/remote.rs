//! The remote tier of a two-level cache: typed entries over a byte [`RedisBackend`], through a
//! [`Codec`].
//!
//! Keys are namespaced `<prefix>:<cache name>:<hash of the encoded key>`; the payload carries
//! the full encoded key, checked on read, so two keys whose hashes collide never read each
//! other's values. A payload that does not decode (another codec, another format version,
//! corruption, a hash collision) is a miss, and is deleted unless it belongs to another key.

use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Entry;
use crate::codec::{Codec, CodecError, Decoded, decode_payload, encode_key, encode_payload};
use crate::redis_backend::RedisBackend;
use crate::tier::{BoxFuture, LocalL1, Tier};

/// Escapes the glob characters of a `SCAN MATCH` pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// How often a process waiting on another's lease looks for the value.
const POLL_EVERY: Duration = Duration::from_millis(10);

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

/// Entries of one cache in Redis. `M` says how negative results travel: [`WithNegatives`]
/// (serde) or [`NoNegatives`] (a cache whose negative type is `Infallible`).
pub(crate) struct RedisTier<C, M> {
    backend: Arc<RedisBackend>,
    /// `<prefix>:<cache name>:`
    namespace: String,
    /// Evicts this process's L1 copies on other processes' invalidations (held here; the
    /// backend keeps a weak reference).
    handler: std::sync::OnceLock<Arc<crate::redis_backend::Handler>>,
    _codec: PhantomData<fn() -> (C, M)>,
}

/// Negative results are encoded with serde.
pub(crate) struct WithNegatives;
/// The cache has no negative results (`N = Infallible`, which serde cannot encode).
pub(crate) struct NoNegatives;

/// How a tier turns entries into payloads and back.
trait Payloads<C, V, N> {
    fn encode(key: &[u8], entry: &Entry<V, N>) -> Result<Vec<u8>, CodecError>;
    fn decode(key: &[u8], bytes: &[u8]) -> Result<Entry<V, N>, CodecError>;
}

impl<C, V, N> Payloads<C, V, N> for WithNegatives
where
    C: Codec,
    V: Serialize + DeserializeOwned,
    N: Serialize + DeserializeOwned,
{
    fn encode(key: &[u8], entry: &Entry<V, N>) -> Result<Vec<u8>, CodecError> {
        match entry {
            Entry::Value(v) => encode_payload::<C, V, N>(key, &Decoded::Value(v)),
            Entry::Negative(n) => encode_payload::<C, V, N>(key, &Decoded::Negative(n)),
        }
    }

    fn decode(key: &[u8], bytes: &[u8]) -> Result<Entry<V, N>, CodecError> {
        Ok(match decode_payload::<C, V, N>(key, bytes)? {
            Decoded::Value(v) => Entry::Value(v),
            Decoded::Negative(n) => Entry::Negative(n),
        })
    }
}

impl<C, V> Payloads<C, V, std::convert::Infallible> for NoNegatives
where
    C: Codec,
    V: Serialize + DeserializeOwned,
{
    fn encode(
        key: &[u8],
        entry: &Entry<V, std::convert::Infallible>,
    ) -> Result<Vec<u8>, CodecError> {
        match entry {
            Entry::Value(v) => encode_payload::<C, V, ()>(key, &Decoded::Value(v)),
            Entry::Negative(n) => match *n {},
        }
    }

    fn decode(key: &[u8], bytes: &[u8]) -> Result<Entry<V, std::convert::Infallible>, CodecError> {
        match decode_payload::<C, V, ()>(key, bytes)? {
            Decoded::Value(v) => Ok(Entry::Value(v)),
            Decoded::Negative(()) => Err(CodecError::Header(
                "a negative result in a cache without them",
            )),
        }
    }
}

impl<C: Codec, M> RedisTier<C, M> {
    /// `type_tag` tells apart caches of one name but different key or value types (two
    /// unnamed caches numbered alike in two processes, two versions of a function).
    pub(crate) fn new(
        backend: Arc<RedisBackend>,
        prefix: &str,
        cache_name: &str,
        type_tag: &str,
    ) -> Self {
        let tag = foldhash::quality::FixedState::with_seed(0x7A9).hash_one(type_tag);
        Self {
            backend,
            namespace: format!("{prefix}:{cache_name}:{:08x}:", tag & 0xFFFF_FFFF),
            handler: std::sync::OnceLock::new(),
            _codec: PhantomData,
        }
    }

    /// The encoded key and the Redis key it is stored under.
    fn keys<K: Serialize>(&self, key: &K) -> Result<(Vec<u8>, String), CodecError> {
        let encoded = encode_key::<C, K>(key)?;
        let h = foldhash::quality::FixedState::with_seed(0x5EED).hash_one(&encoded);
        Ok((encoded, format!("{}{h:016x}", self.namespace)))
    }
}

impl<C, M, K, V, N> Tier<K, V, N> for RedisTier<C, M>
where
    C: Codec,
    M: Payloads<C, V, N> + 'static,
    K: Serialize + DeserializeOwned + Send + Sync + 'static,
    V: Send + Sync,
    N: Send + Sync,
{
    fn lease(&self, key: &K, lease: Duration) -> Option<Option<String>> {
        let Ok((_, rk)) = self.keys(key) else {
            return Some(None);
        };
        let token = lease_token();
        match self
            .backend
            .try_lease(&format!("{rk}:lease"), &token, lease)
        {
            Ok(true) => Some(Some(token)),
            Ok(false) => None,
            Err(_) => Some(None),
        }
    }

    fn lease_async<'a>(
        &'a self,
        key: &'a K,
        lease: Duration,
    ) -> BoxFuture<'a, Option<Option<String>>> {
        Box::pin(async move {
            let Ok((_, rk)) = self.keys(key) else {
                return Some(None);
            };
            let token = lease_token();
            match self
                .backend
                .try_lease_async(&format!("{rk}:lease"), &token, lease)
                .await
            {
                Ok(true) => Some(Some(token)),
                Ok(false) => None,
                Err(_) => Some(None),
            }
        })
    }

    fn release(&self, key: &K, token: &str) {
        if let Ok((_, rk)) = self.keys(key) {
            let _ = self.backend.release_lease(&format!("{rk}:lease"), token);
        }
    }

    fn release_async<'a>(&'a self, key: &'a K, token: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Ok((_, rk)) = self.keys(key) {
                let _ = self
                    .backend
                    .release_lease_async(&format!("{rk}:lease"), token)
                    .await;
            }
        })
    }

    fn wait_for(&self, key: &K, max: Duration) -> Option<Entry<V, N>> {
        let (encoded, rk) = self.keys(key).ok()?;
        let bytes = self
            .backend
            .poll_get(&rk, &format!("{rk}:lease"), max, POLL_EVERY)
            .ok()??;
        M::decode(&encoded, &bytes).ok()
    }

    fn wait_for_async<'a>(
        &'a self,
        key: &'a K,
        max: Duration,
    ) -> BoxFuture<'a, Option<Entry<V, N>>> {
        Box::pin(async move {
            let (encoded, rk) = self.keys(key).ok()?;
            let bytes = self
                .backend
                .poll_get_async(&rk, &format!("{rk}:lease"), max, POLL_EVERY)
                .await
                .ok()??;
            M::decode(&encoded, &bytes).ok()
        })
    }

    fn broadcast(&self, key: Option<&K>) {
        match key {
            Some(k) => {
                if let Ok(encoded) = encode_key::<C, K>(k) {
                    self.backend
                        .publish_invalidation(&self.namespace, Some(&encoded));
                }
            }
            None => self.backend.publish_invalidation(&self.namespace, None),
        }
    }

    fn attach(&self, l1: std::sync::Weak<dyn LocalL1<K>>) {
        let handler: Arc<crate::redis_backend::Handler> = Arc::new(move |key: Option<&[u8]>| {
            let Some(l1) = l1.upgrade() else { return };
            match key {
                None => l1.evict_local(None),
                Some(bytes) => {
                    if let Ok(k) = C::decode::<K>(bytes) {
                        l1.evict_local(Some(&k));
                    }
                }
            }
        });
        if self.handler.set(Arc::clone(&handler)).is_ok() {
            self.backend
                .on_invalidation(&self.namespace, Arc::downgrade(&handler));
        }
    }

    fn get(&self, key: &K) -> Option<Entry<V, N>> {
        let (encoded, rk) = self.keys(key).ok()?;
        let bytes = self.backend.get(&rk).ok()??;
        match M::decode(&encoded, &bytes) {
            Ok(e) => Some(e),
            // Another key's payload (a hash collision): leave it to its owner.
            Err(CodecError::KeyMismatch) => None,
            Err(_) => {
                let _ = self.backend.delete(&rk);
                None
            }
        }
    }

    fn put(&self, key: &K, entry: &Entry<V, N>, ttl: Option<Duration>) {
        let Ok((encoded, rk)) = self.keys(key) else {
            return;
        };
        if let Ok(bytes) = M::encode(&encoded, entry) {
            let _ = self.backend.set(&rk, &bytes, ttl);
        }
    }

    fn delete(&self, key: &K) {
        if let Ok((_, rk)) = self.keys(key) {
            let _ = self.backend.delete(&rk);
        }
    }

    fn delete_async<'a>(&'a self, key: &'a K) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Ok((_, rk)) = self.keys(key) {
                let _ = self.backend.delete_async(&rk).await;
            }
        })
    }

    fn clear(&self) {
        let _ = self
            .backend
            .delete_matching(&format!("{}*", glob_escape(&self.namespace)));
    }

    fn get_async<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Option<Entry<V, N>>> {
        Box::pin(async move {
            let (encoded, rk) = self.keys(key).ok()?;
            let bytes = self.backend.get_async(&rk).await.ok()??;
            match M::decode(&encoded, &bytes) {
                Ok(e) => Some(e),
                Err(CodecError::KeyMismatch) => None,
                Err(_) => {
                    let _ = self.backend.delete_async(&rk).await;
                    None
                }
            }
        })
    }

    fn put_async<'a>(
        &'a self,
        key: &'a K,
        entry: &'a Entry<V, N>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Ok((encoded, rk)) = self.keys(key) else {
                return;
            };
            if let Ok(bytes) = M::encode(&encoded, entry) {
                let _ = self.backend.set_async(&rk, &bytes, ttl).await;
            }
        })
    }
}
