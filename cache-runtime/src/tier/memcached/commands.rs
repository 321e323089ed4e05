//! The memcached backend's operations, each built once as an [`Exchange`] that the blocking
//! runner and the async runner both run on a connection to the key's server. All use the meta
//! protocol (memcached 1.6+): `mg`, `ms`, `md`.
//!
//! - `get`: the namespace's generation and the entry under the generation this process knows,
//!   in one round trip (`mg <generation key> v k q`, `mg <entry key> v k q`, `mn`, pipelined);
//!   when another process cleared the namespace meanwhile, the entry is read again under the new
//!   generation. `get_many` is the same for all the keys of one server, in one round trip.
//! - `set`: `ms <entry key> <size> T<expiry>` under the known generation (a write under a
//!   generation just replaced is only wasted: no one reads it). `set_many` is the same for all
//!   the items of one server, quiet (`q`), then `mn`, in one round trip, on a plain connection
//!   (`pipe`): the client cannot give each item of a pipelined set an expiry of its own.
//! - `delete`: reads the generation first, so that it deletes the entry that readers see.
//! - leases: `ms <lease key> <size> T<ttl> ME` (add: stored only if absent) takes one; releasing
//!   reads its token and CAS (`mg <lease key> v c`, then `md <lease key> C<cas>`), so only its
//!   holder releases it; a waiter polls the entry and the lease (backoff from 5 to 50 ms).
//! - `clear`: a new generation.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_memcached::{Client, Error, ErrorKind, MetaProtocol, Status};

use super::keys::{self, DataKey};
use super::pipe::{Generational, Pipe, Reads, garbled};
use crate::tier::BoxFuture;

/// What an operation does on a connection (the client's, unless `C` says otherwise); called
/// again for a second try.
pub(super) type Exchange<T, C = Client> =
    Arc<dyn for<'c> Fn(&'c mut C) -> BoxFuture<'c, Result<T, Error>> + Send + Sync>;

/// Each namespace's generation, per server (`None`: not known yet). Read on every operation:
/// hashed with foldhash, not SipHash (the names are this process's own).
type Known = HashMap<String, Vec<Option<Arc<str>>>, foldhash::fast::RandomState>;

/// The generation this process last saw of each namespace, per server.
#[derive(Debug, Default)]
pub(super) struct Generations {
    known: RwLock<Known>,
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
    async fn generation(&self, c: &mut impl Generational) -> Result<Arc<str>, Error> {
        match self.generations.get(self.server, self.key.namespace()) {
            Some(g) => Ok(g),
            None => self.fetch_generation(c).await,
        }
    }

    /// Reads the namespace's generation from the server; stores a new one if it has none (first
    /// use, or evicted, or the server restarted: a new token never brings older entries back).
    async fn fetch_generation(&self, c: &mut impl Generational) -> Result<Arc<str>, Error> {
        let gen_key = self.key.generation_key();
        for _ in 0..3 {
            if let Some(g) = c.value(gen_key).await? {
                return Ok(self.learn(&g));
            }
            let fresh = keys::new_generation();
            if c.add(gen_key, &fresh).await? {
                return Ok(self.learn(fresh.as_bytes()));
            }
            // Another process made one meanwhile: read it.
        }
        Err(Error::Protocol(Status::NotStored))
    }

    /// Remembers the generation `bytes` (a token that is not ours to read still names one).
    fn learn(&self, bytes: &[u8]) -> Arc<str> {
        let g = token(bytes);
        self.generations.set(self.server, self.key.namespace(), &g);
        Arc::from(g)
    }

    /// What the namespace's generation read on the server (`current`) says of the one known
    /// here (`known`), with which entries were read: current, moved on (another process cleared
    /// the namespace: learnt now), or gone (evicted, a restarted server: a new one is made).
    async fn check(
        &self,
        known: &str,
        current: Option<Vec<u8>>,
        c: &mut impl Generational,
    ) -> Result<Generation, Error> {
        match current {
            Some(g) if keys::fit(&String::from_utf8_lossy(&g)) == known => Ok(Generation::Known),
            Some(g) => Ok(Generation::Moved(self.learn(&g))),
            None => {
                self.fetch_generation(c).await?;
                Ok(Generation::Gone)
            }
        }
    }

    /// The entry under the namespace's current generation: [`read_many`] of one key, in one
    /// round trip without its lists (the request built in the connection's own buffer, the
    /// replies matched in place).
    async fn read(&self, c: &mut impl Reads) -> Result<Option<Vec<u8>>, Error> {
        let known = self.generation(c).await?;
        let entry = self.key.under(&known);
        let [current, value] = c.pair([self.key.generation_key(), &entry]).await?;
        match self.check(&known, current, c).await? {
            Generation::Known => Ok(value),
            // Read as the batch reads it (an entry may be as large as an item: not `value`,
            // which reads generation tokens).
            Generation::Moved(g) => {
                let entry = self.key.under(&g);
                Ok(get_each(c, &[&entry]).await?.pop().flatten())
            }
            Generation::Gone => Ok(None),
        }
    }
}

/// What a namespace's generation read with its entries says (see [`On::check`]).
enum Generation {
    /// The one known here: the entries read under it are current.
    Known,
    /// Another process cleared the namespace: its entries are under this one.
    Moved(Arc<str>),
    /// It was gone, and a new one was made: the namespace holds nothing yet.
    Gone,
}

/// The entries of `wanted` (all of one server), each under its namespace's current generation:
/// one round trip when the generations known here are current (`mg <key> v k q` for each
/// namespace's generation and for each entry, then `mn`, written together: misses stay silent,
/// each value comes back with its key, and `MN` ends the answer). The keys of a namespace that
/// another process cleared meanwhile cost one more round trip (read under the new generation);
/// a namespace whose generation is gone (evicted, a restarted server) gets a new one, with
/// nothing under it yet.
async fn read_many(wanted: &[On], c: &mut impl Reads) -> Result<Vec<Option<Vec<u8>>>, Error> {
    // Each namespace once, with the generation known here (read from the server if none).
    let mut spaces: Vec<(&On, Arc<str>)> = Vec::new();
    let mut index = Seen::default();
    let mut space_of = Vec::with_capacity(wanted.len());
    for on in wanted {
        let at = match index.get(on.key.namespace().as_bytes()) {
            Some(at) => at,
            None => {
                spaces.push((on, on.generation(c).await?));
                index.insert(on.key.namespace().as_bytes(), spaces.len() - 1);
                spaces.len() - 1
            }
        };
        space_of.push(at);
    }
    let entries: Vec<String> = wanted
        .iter()
        .zip(&space_of)
        .map(|(on, &at)| on.key.under(&spaces[at].1))
        .collect();
    let asked: Vec<&str> = spaces
        .iter()
        .map(|(on, _)| on.key.generation_key())
        .chain(entries.iter().map(String::as_str))
        .collect();
    let mut found = get_each(c, &asked).await?;
    let mut values = found.split_off(spaces.len());
    let (mut again, mut again_keys) = (Vec::new(), Vec::new());
    for (at, ((on, known), current)) in spaces.iter().zip(found).enumerate() {
        let keys_of = space_of.iter().enumerate().filter(|(_, s)| **s == at);
        match on.check(known, current, c).await? {
            Generation::Known => {}
            // Another process cleared the namespace: read its keys under its generation.
            Generation::Moved(g) => {
                for (i, _) in keys_of {
                    again.push(i);
                    again_keys.push(wanted[i].key.under(&g));
                }
            }
            // The generation is gone (evicted, a restarted server): nothing under the new one.
            Generation::Gone => {
                for (i, _) in keys_of {
                    values[i] = None;
                }
            }
        }
    }
    if !again.is_empty() {
        let asked: Vec<&str> = again_keys.iter().map(String::as_str).collect();
        for (i, v) in again.into_iter().zip(get_each(c, &asked).await?) {
            values[i] = v;
        }
    }
    Ok(values)
}

/// The values under `keys`, one slot per key in order, in one pipelined round trip. A reply
/// that is not a value of a key asked, or more replies than keys, is a protocol error: the
/// answers are matched by key, never by position.
async fn get_each(c: &mut impl Reads, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
    let replies = c.hits(keys).await?;
    if replies.len() > keys.len() {
        return Err(garbled());
    }
    // Each key's first position: a key asked twice shares the reply.
    let mut first = Seen::default();
    for (i, k) in keys.iter().enumerate() {
        if first.get(k.as_bytes()).is_none() {
            first.insert(k.as_bytes(), i);
        }
    }
    let mut values = vec![None; keys.len()];
    for (key, data) in replies {
        let at = first.get(key.as_slice()).ok_or_else(garbled)?;
        values[at] = Some(data);
    }
    for (i, k) in keys.iter().enumerate() {
        let at = first.get(k.as_bytes()).unwrap_or(i);
        if at != i {
            values[i] = values[at].clone();
        }
    }
    Ok(values)
}

/// Each name's first position among those seen: searched in order while they are few (most
/// reads: one namespace, two keys; no hashing), through a map once there are more.
#[derive(Default)]
struct Seen<'a> {
    few: Vec<(&'a [u8], usize)>,
    many: HashMap<&'a [u8], usize>,
}

/// How many names [`Seen`] searches in order.
const FEW: usize = 8;

impl<'a> Seen<'a> {
    fn get(&self, name: &[u8]) -> Option<usize> {
        if self.many.is_empty() {
            self.few.iter().find(|(n, _)| *n == name).map(|&(_, at)| at)
        } else {
            self.many.get(name).copied()
        }
    }

    /// Records `name` (not seen yet) at `at`.
    fn insert(&mut self, name: &'a [u8], at: usize) {
        if self.many.is_empty() && self.few.len() < FEW {
            self.few.push((name, at));
            return;
        }
        self.many.extend(self.few.drain(..));
        self.many.insert(name, at);
    }
}

/// A generation as it goes into keys: the stored token, made a valid key part if someone else
/// wrote something odd there.
fn token(bytes: &[u8]) -> String {
    keys::fit(&String::from_utf8_lossy(bytes)).into_owned()
}

/// `T<expiry>`.
fn expiry_flag(ttl: Option<Duration>) -> String {
    format!("T{}", keys::expiry(ttl, keys::unix_now()))
}

/// The entry of `key` (an entry key of the typed tier), `None` for a miss, on a connection of
/// either kind for reads.
pub(super) fn get<C: Reads + 'static>(
    generations: &Arc<Generations>,
    server: usize,
    key: &str,
) -> Exchange<Option<Vec<u8>>, C> {
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

/// The entries of `keys` (all of this server), one slot per key, in one round trip (see
/// [`read_many`]).
pub(super) fn get_many<C: Reads + 'static>(
    generations: &Arc<Generations>,
    server: usize,
    keys: &[&str],
) -> Exchange<Vec<Option<Vec<u8>>>, C> {
    let keys: Arc<[On]> = keys
        .iter()
        .map(|k| On {
            generations: Arc::clone(generations),
            server,
            key: Arc::new(DataKey::new(k)),
        })
        .collect();
    Arc::new(move |c| {
        let keys = Arc::clone(&keys);
        Box::pin(async move { read_many(&keys, c).await })
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

/// Stores each item of `items` (all of this server's) under its namespace's generation, as
/// [`set`] stores one (the same key, the same `T<expiry>`: `keys::expiry`, one clock reading
/// for the batch), in one request on a [`Pipe`]: `ms <key> <size> T<expiry> q` and the data for
/// each item, then `mn`, written together. A quiet set answers only when it fails, so the
/// answer is `MN` alone when every item was stored (see [`Pipe::store_quietly`]). A namespace
/// whose generation this process does not know yet costs one more round trip first, as it does
/// for `set`.
pub(super) fn set_many(
    generations: &Arc<Generations>,
    server: usize,
    items: &[(&str, &[u8], Option<Duration>)],
) -> Exchange<(), Pipe> {
    /// An item of the batch: its key, its value, its TTL.
    type Item = (On, Box<[u8]>, Option<Duration>);
    let items: Arc<[Item]> = items
        .iter()
        .map(|&(key, value, ttl)| {
            let on = On {
                generations: Arc::clone(generations),
                server,
                key: Arc::new(DataKey::new(key)),
            };
            (on, Box::from(value), ttl)
        })
        .collect();
    Arc::new(move |p| {
        let items = Arc::clone(&items);
        Box::pin(async move {
            let mut known: HashMap<&str, Arc<str>> = HashMap::new();
            let size: usize = items.iter().map(|(_, v, _)| v.len() + 64).sum();
            let mut request = Vec::with_capacity(size + 8);
            let now = keys::unix_now();
            for (on, value, ttl) in items.iter() {
                let g = match known.get(on.key.namespace()) {
                    Some(g) => Arc::clone(g),
                    None => {
                        let g = on.generation(p).await?;
                        known.insert(on.key.namespace(), Arc::clone(&g));
                        g
                    }
                };
                let key = on.key.under(&g);
                let expiry = keys::expiry(*ttl, now);
                request.extend_from_slice(
                    format!("ms {key} {} T{expiry} q\r\n", value.len()).as_bytes(),
                );
                request.extend_from_slice(value);
                request.extend_from_slice(b"\r\n");
            }
            request.extend_from_slice(b"mn\r\n");
            p.store_quietly(&request).await
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
