//! The memcached backend's operations, each built once as an [`Exchange`] that the blocking
//! runner and the async runner both run on a connection to the key's server. All use the meta
//! protocol (memcached 1.6+): `mg`, `ms`, `md`.
//!
//! - `get`: the namespace's generation and the entry under the generation this process knows,
//!   in one round trip (`mg <generation key> v`, `mg <entry key> v`, pipelined); when another
//!   process cleared the namespace meanwhile, the entry is read again under the new generation.
//! - `set`: `ms <entry key> <size> T<expiry>` under the known generation (a write under a
//!   generation just replaced is only wasted: no one reads it).
//! - `delete`: reads the generation first, so that it deletes the entry that readers see.
//! - leases: `ms <lease key> <size> T<ttl> ME` (add: stored only if absent) takes one; releasing
//!   reads its token and CAS (`mg <lease key> v c`, then `md <lease key> C<cas>`), so only its
//!   holder releases it; a waiter polls the entry and the lease (backoff from 5 to 50 ms).
//! - `clear`: a new generation.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_memcached::{Client, Error, ErrorKind, MetaProtocol, MetaValue, Status};

use super::keys::{self, DataKey};
use crate::tier::BoxFuture;

/// What an operation does on a connection; called again for a second try.
pub(super) type Exchange<T> =
    Arc<dyn for<'c> Fn(&'c mut Client) -> BoxFuture<'c, Result<T, Error>> + Send + Sync>;

/// The generation this process last saw of each namespace, per server.
#[derive(Debug, Default)]
pub(super) struct Generations {
    known: RwLock<HashMap<String, Vec<Option<Arc<str>>>>>,
}

impl Generations {
    fn get(&self, server: usize, namespace: &str) -> Option<Arc<str>> {
        self.known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(namespace)
            .and_then(|per_server| per_server.get(server).cloned().flatten())
    }

    fn set(&self, server: usize, namespace: &str, generation: &str) {
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        let per_server = known.entry(namespace.to_owned()).or_default();
        if per_server.len() <= server {
            per_server.resize(server + 1, None);
        }
        per_server[server] = Some(Arc::from(generation));
    }
}

/// An operation on one server: the generations, the server's index, the key (shared by the
/// tries of one operation).
#[derive(Clone)]
struct On {
    generations: Arc<Generations>,
    server: usize,
    key: Arc<DataKey>,
}

impl On {
    /// The namespace's generation on this server: the one known, or the server's (made now if
    /// it has none).
    async fn generation(&self, c: &mut Client) -> Result<Arc<str>, Error> {
        match self.generations.get(self.server, &self.key.namespace) {
            Some(g) => Ok(g),
            None => self.fetch_generation(c).await,
        }
    }

    /// Reads the namespace's generation from the server; stores a new one if it has none (first
    /// use, or evicted, or the server restarted: a new token never brings older entries back).
    async fn fetch_generation(&self, c: &mut Client) -> Result<Arc<str>, Error> {
        let gen_key = self.key.generation_key();
        for _ in 0..3 {
            if let Some(g) = value(c.meta_get(gen_key, false, None, Some(&["v"])).await?) {
                return Ok(self.learn(&g));
            }
            let fresh = keys::new_generation();
            match c
                .meta_set(gen_key, fresh.as_str(), false, None, Some(&["ME", "T0"]))
                .await
            {
                Ok(_) => return Ok(self.learn(fresh.as_bytes())),
                // Another process made one meanwhile: read it.
                Err(Error::Protocol(Status::NotStored)) => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::Protocol(Status::NotStored))
    }

    /// Remembers the generation `bytes` (a token that is not ours to read still names one).
    fn learn(&self, bytes: &[u8]) -> Arc<str> {
        let g = token(bytes);
        self.generations.set(self.server, &self.key.namespace, &g);
        Arc::from(g)
    }

    /// The entry under the namespace's current generation, in one round trip when the
    /// generation known here is still current.
    async fn read(&self, c: &mut Client) -> Result<Option<Vec<u8>>, Error> {
        let known = self.generation(c).await?;
        let gen_key = self.key.generation_key();
        let entry_key = self.key.under(&known);
        let found = c
            .meta_get_multi(&[gen_key.as_bytes(), entry_key.as_bytes()], Some(&["v"]))
            .await?;
        let (mut current, mut entry) = (None, None);
        for v in found {
            match v.key.as_deref() {
                Some(k) if k == gen_key.as_bytes() => current = v.data,
                Some(k) if k == entry_key.as_bytes() => entry = v.data,
                _ => {}
            }
        }
        match current {
            Some(g) if keys::fit(&String::from_utf8_lossy(&g)) == *known => Ok(entry),
            // Another process cleared the namespace: read under its generation.
            Some(g) => {
                let g = self.learn(&g);
                Ok(value(
                    c.meta_get(self.key.under(&g), false, None, Some(&["v"]))
                        .await?,
                ))
            }
            // The generation is gone (evicted, a restarted server): a new one, with nothing yet.
            None => {
                self.fetch_generation(c).await?;
                Ok(None)
            }
        }
    }
}

/// A generation as it goes into keys: the stored token, made a valid key part if someone else
/// wrote something odd there.
fn token(bytes: &[u8]) -> String {
    keys::fit(&String::from_utf8_lossy(bytes)).into_owned()
}

/// The data of a meta reply.
fn value(v: Option<MetaValue>) -> Option<Vec<u8>> {
    v.and_then(|v| v.data)
}

/// `T<expiry>`.
fn expiry_flag(ttl: Option<Duration>) -> String {
    format!("T{}", keys::expiry(ttl, keys::unix_now()))
}

/// The entry of `key` (an entry key of the typed tier), `None` for a miss.
pub(super) fn get(
    generations: &Arc<Generations>,
    server: usize,
    key: &str,
) -> Exchange<Option<Vec<u8>>> {
    let on = On {
        generations: Arc::clone(generations),
        server,
        key: Arc::new(DataKey::new(key)),
    };
    Arc::new(move |c| {
        let on = on.clone();
        Box::pin(async move { on.read(c).await })
    })
}

/// Stores `value` under `key` for `ttl`.
pub(super) fn set(
    generations: &Arc<Generations>,
    server: usize,
    key: &str,
    value: &[u8],
    ttl: Option<Duration>,
) -> Exchange<()> {
    let on = On {
        generations: Arc::clone(generations),
        server,
        key: Arc::new(DataKey::new(key)),
    };
    let value: Arc<[u8]> = Arc::from(value);
    Arc::new(move |c| {
        let (on, value) = (on.clone(), Arc::clone(&value));
        Box::pin(async move {
            let g = on.generation(c).await?;
            let flag = expiry_flag(ttl);
            match c
                .meta_set(on.key.under(&g), &value[..], false, None, Some(&[&flag]))
                .await
            {
                Ok(_) => Ok(()),
                // A value over the server's item size (`-I`, 1 MiB by default) is not stored: a
                // skipped write, not a fault of the server (its connection is fine).
                Err(Error::Protocol(Status::Error(ErrorKind::Server(m))))
                    if m.contains("too large") =>
                {
                    Ok(())
                }
                Err(e) => Err(e),
            }
        })
    })
}

/// Deletes `key` under the namespace's current generation (read first: a delete must reach the
/// entry that readers see).
pub(super) fn delete(generations: &Arc<Generations>, server: usize, key: &str) -> Exchange<()> {
    let on = On {
        generations: Arc::clone(generations),
        server,
        key: Arc::new(DataKey::new(key)),
    };
    Arc::new(move |c| {
        let on = on.clone();
        Box::pin(async move {
            let g = on.fetch_generation(c).await?;
            match c.meta_delete(on.key.under(&g), false, None, None).await {
                Ok(_) | Err(Error::Protocol(Status::NotFound)) => Ok(()),
                Err(e) => Err(e),
            }
        })
    })
}

/// A new generation for `namespace` on this server: every entry stored before is unreachable.
pub(super) fn clear(
    generations: &Arc<Generations>,
    server: usize,
    namespace: &str,
) -> Exchange<()> {
    let generations = Arc::clone(generations);
    let namespace = namespace.to_owned();
    Arc::new(move |c| {
        let (generations, namespace) = (Arc::clone(&generations), namespace.clone());
        Box::pin(async move {
            let fresh = keys::new_generation();
            c.meta_set(
                keys::generation_key(&namespace),
                fresh.as_str(),
                false,
                None,
                Some(&["T0"]),
            )
            .await?;
            generations.set(server, &namespace, &fresh);
            Ok(())
        })
    })
}

/// Takes the lease `key` with `token` for `ttl` unless it is held: `true` when taken.
pub(super) fn try_lease(key: &str, token: &str, ttl: Duration) -> Exchange<bool> {
    let key = keys::fit(key).into_owned();
    let token = token.to_owned();
    Arc::new(move |c| {
        let (key, token) = (key.clone(), token.clone());
        Box::pin(async move {
            let flag = expiry_flag(Some(ttl));
            match c
                .meta_set(&key, token.as_str(), false, None, Some(&["ME", &flag]))
                .await
            {
                Ok(_) => Ok(true),
                Err(Error::Protocol(Status::NotStored)) => Ok(false),
                Err(e) => Err(e),
            }
        })
    })
}

/// Deletes the lease `key` if it still holds `token`: compare-and-delete by CAS.
pub(super) fn release_lease(key: &str, token: &str) -> Exchange<()> {
    let key = keys::fit(key).into_owned();
    let token = token.to_owned();
    Arc::new(move |c| {
        let (key, token) = (key.clone(), token.clone());
        Box::pin(async move {
            let Some(held) = c.meta_get(&key, false, None, Some(&["v", "c"])).await? else {
                return Ok(());
            };
            let (Some(data), Some(cas)) = (held.data, held.cas) else {
                return Ok(());
            };
            if data != token.as_bytes() {
                return Ok(());
            }
            let flag = format!("C{cas}");
            match c.meta_delete(&key, false, None, Some(&[&flag])).await {
                Ok(_)
                | Err(Error::Protocol(Status::NotFound))
                | Err(Error::Protocol(Status::Exists)) => Ok(()),
                Err(e) => Err(e),
            }
        })
    })
}

/// The first wait between two looks of a lease waiter, and the longest.
const POLL_FIRST: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(50);

/// Looks for `key`'s entry, with backoff, until it appears, the lease `lease` is gone (its
/// holder finished without writing, or died), or `max` passes.
pub(super) fn wait_for(
    generations: &Arc<Generations>,
    server: usize,
    key: &str,
    lease: &str,
    max: Duration,
) -> Exchange<Option<Vec<u8>>> {
    let on = On {
        generations: Arc::clone(generations),
        server,
        key: Arc::new(DataKey::new(key)),
    };
    let lease = keys::fit(lease).into_owned();
    Arc::new(move |c| {
        let (on, lease) = (on.clone(), lease.clone());
        Box::pin(async move {
            let start = tokio::time::Instant::now();
            let mut every = POLL_FIRST;
            loop {
                let v = on.read(c).await?;
                if v.is_some() || start.elapsed() >= max {
                    return Ok(v);
                }
                // `s` (the size): a hit without any flag would read as a miss.
                if c.meta_get(&lease, false, None, Some(&["s"]))
                    .await?
                    .is_none()
                {
                    // One last look: the holder may have written just before releasing.
                    return on.read(c).await;
                }
                let left = max.saturating_sub(start.elapsed());
                tokio::time::sleep(every.min(left)).await;
                every = (every * 2).min(POLL_MAX);
            }
        })
    })
}

/// `version`: the server's version, to check that it speaks the meta protocol.
pub(super) fn version() -> Exchange<String> {
    Arc::new(|c| Box::pin(async move { c.version().await }))
}
