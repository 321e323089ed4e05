//! Tags and dependencies in the fleet: generation keys in the backend, checked by every read
//! of a stamped L2 entry, and tag invalidations told on the backend's invalidation channel.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use super::scopes;
use super::stamps::{self, Remote, RemoteKind, Stamps, name_hash, slot_of};
use crate::driver::Io;
use crate::tier::{Backend, InvalidationHandler};

/// The channel namespace of tag invalidations (no cache's namespace starts with a NUL).
const TAGS: &str = "\0cache-runtime:tags";

/// How long a generation key lives once created: past it, the entries stamped with it read as
/// stale (one reload), never as fresh.
const GENERATION_TTL: Duration = Duration::from_secs(30 * 86_400);

/// A new generation token: random text (the backend's lease primitive stores text).
fn new_token() -> String {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = RandomState::new().hash_one((
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now(),
    ));
    format!("{t:016x}")
}

/// The token a generation key holds: a hash of its bytes, never 0; an absent key's is 0, which
/// no stamp records.
fn token_of(bytes: Option<&[u8]>) -> u64 {
    bytes.map_or(0, |b| name_hash(&[b]).max(1))
}

/// Invalidates what the generation key `key` stamps: deletes it (best effort: a fault leaves
/// the L2 copies to their TTL, and the L1 copies are dropped by the broadcast). A generation key
/// exists only while an entry depends on it (created when such an entry is stored), so an
/// invalidation of an entry nothing depends on leaves nothing behind.
pub(crate) fn bump_key(backend: &dyn Backend, key: &str) {
    let _ = backend.delete(key);
}

/// Invalidates `tag` in every cache of the prefix whose tag keys start with `global`.
pub(crate) fn bump_global(backend: &dyn Backend, global: &str, tag: &str) {
    bump_key(backend, &format!("{global}{tag}"));
    backend.publish(TAGS, Some(&message(b'g', global, tag)));
}

/// Invalidates `tag` in the cache whose namespace is `namespace`, in the fleet.
pub(crate) fn bump_cache_tag(backend: &dyn Backend, namespace: &str, tag: &str) {
    bump_key(backend, &format!("{namespace}tag:{tag}"));
    backend.publish(TAGS, Some(&message(b'c', namespace, tag)));
}

fn message(kind: u8, scope: &str, tag: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(5 + scope.len() + tag.len());
    m.push(kind);
    m.extend_from_slice(&u32::try_from(scope.len()).unwrap_or(u32::MAX).to_le_bytes());
    m.extend_from_slice(scope.as_bytes());
    m.extend_from_slice(tag.as_bytes());
    m
}

/// A tag invalidation from another process.
fn heard(msg: &[u8]) {
    let Some((&kind, rest)) = msg.split_first() else {
        return;
    };
    let Some((len, rest)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return;
    }
    let (scope, tag) = rest.split_at(len);
    match kind {
        b'g' => {
            for s in scopes() {
                if s.global_tags.as_deref().map(str::as_bytes) == Some(scope) {
                    stamps::bump(slot_of(name_hash(&[s.name.as_bytes(), b"tag:", tag])));
                }
            }
        }
        b'c' => stamps::bump(slot_of(name_hash(&[scope, b"tag:", tag]))),
        _ => {}
    }
}

/// The tag handlers subscribed, one per live backend (kept alive here: backends hold weak
/// ones). A backend is known by its allocation while it lives; the entries of dropped
/// backends are forgotten, so a new backend allocated where a dropped one was subscribes too.
type Listening = Vec<(Weak<dyn Backend>, Arc<InvalidationHandler>)>;
static LISTENING: Mutex<Listening> = Mutex::new(Vec::new());

/// Listens for tag invalidations on `backend`'s channel, once per backend.
pub(crate) fn listen(backend: &Arc<dyn Backend>) {
    if !backend.broadcasts() {
        return;
    }
    let mut all = LISTENING.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|(b, _)| b.strong_count() > 0);
    let id = Arc::as_ptr(backend).cast::<()>();
    if all.iter().any(|(b, _)| b.as_ptr().cast::<()>() == id) {
        return;
    }
    let handler: Arc<InvalidationHandler> = Arc::new(|msg: Option<&[u8]>| {
        // An echo of this process's own invalidation: the slots moved when it was made.
        if let Some(m) = msg.filter(|_| !crate::tier::echo()) {
            heard(m);
        }
    });
    backend.subscribe(TAGS, Arc::downgrade(&handler));
    all.push((Arc::downgrade(backend), handler));
}

/// The generation tokens `remote`'s keys hold now (`None`: the backend did not answer).
async fn tokens<I: Io>(backend: &dyn Backend, remote: &[Remote]) -> Option<Vec<u64>> {
    let mut out = Vec::with_capacity(remote.len());
    for r in remote {
        let bytes = I::get(backend, &r.key).await.ok()?;
        out.push(token_of(bytes.as_deref()));
    }
    Some(out)
}

/// `stamps`' remote stamps with the tokens their keys hold now, for an L2 write (`None`: the
/// backend did not answer; the entry is then not written). A key that does not exist yet is
/// created (two processes creating it at once: the entry of the one overwritten reloads once).
pub(crate) async fn resolve<I: Io>(backend: &dyn Backend, stamps: &Stamps) -> Option<Vec<Remote>> {
    let mut out = Vec::with_capacity(stamps.remote.len());
    for r in &*stamps.remote {
        let bytes = match I::get(backend, &r.key).await.ok()? {
            Some(b) => b,
            None => {
                let fresh = new_token().into_bytes();
                I::set(backend, &r.key, &fresh, Some(GENERATION_TTL))
                    .await
                    .ok()?;
                fresh
            }
        };
        out.push(Remote {
            kind: r.kind,
            key: r.key.clone(),
            token: token_of(Some(&bytes)),
        });
    }
    Some(out)
}

/// Whether no generation key of an L2 entry's stamps moved since it was stored.
pub(crate) async fn still_valid<I: Io>(backend: &dyn Backend, remote: &[Remote]) -> bool {
    match tokens::<I>(backend, remote).await {
        Some(now) => now.iter().zip(remote).all(|(t, r)| *t == r.token),
        None => false,
    }
}

/// The stamps of an entry read from L2 as this process keeps it in L1: its remote stamps, and
/// the local slots of the same names (so that an invalidation heard on the channel drops it).
pub(crate) fn local_stamps(remote: Vec<Remote>) -> Option<Arc<Stamps>> {
    if remote.is_empty() {
        return None;
    }
    let slots: Vec<u16> = remote
        .iter()
        .filter(|r| r.kind == RemoteKind::Local)
        .map(|r| slot_of(name_hash(&[r.key.as_bytes()])))
        .collect();
    Some(Arc::new(Stamps::new(
        stamps::epoch(),
        slots.into(),
        remote.into(),
    )))
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::tier::testing::Probe;
    use crate::tier::{self, Backend};
    use crate::{Cache, tag};

    /// A cache of product pages (tagged `menu`, built from the stock cache) on `probe`, under
    /// `prefix`; loads counted in `loads`.
    struct Shop {
        stock: Cache<u64, u32>,
        pages: Cache<u64, String>,
        loads: AtomicUsize,
    }

    impl Shop {
        fn new(probe: &Arc<Probe>, prefix: &str) -> Self {
            let backend: Arc<dyn Backend> = probe.clone();
            Shop {
                stock: Cache::builder()
                    .name("stock")
                    .remote(backend.clone(), prefix)
                    .build()
                    .unwrap(),
                pages: Cache::builder()
                    .name("pages")
                    .remote(backend, prefix)
                    .build()
                    .unwrap(),
                loads: AtomicUsize::new(0),
            }
        }

        /// Page 1, from `stock` units; `meanwhile` runs during its load, if it loads.
        fn page(&self, stock: u32, meanwhile: impl FnOnce()) -> String {
            self.pages.get_or_insert_with(&1, || {
                self.loads.fetch_add(1, Ordering::SeqCst);
                tag("menu");
                let left = self.stock.get_or_insert_with(&1, || stock);
                meanwhile();
                format!("{left} left")
            })
        }

        /// Whether page 1 is in L1 and, once L1 forgot it, in L2 (read without a load).
        fn kept(&self) -> (bool, bool) {
            let l1 = self.pages.contains_key(&1);
            self.pages.evict_local(&1);
            let before = self.loads.load(Ordering::SeqCst);
            self.page(0, || {});
            (l1, self.loads.load(Ordering::SeqCst) == before)
        }
    }

    /// The invalidation this process published, heard back on the channel during a load that
    /// started after it: through another backend of this process (an echo), it was applied
    /// here when it was made and is not applied again; the load's entry is kept in L1 and L2.
    #[test]
    fn an_echo_of_a_tag_invalidation_does_not_undo_a_load_that_started_after_it() {
        let probe = Arc::new(Probe::broadcasting());
        let shop = Shop::new(&probe, "echo-tag-test");
        assert_eq!(shop.page(5, || {}), "5 left");
        probe.deliver();
        shop.pages.invalidate_tag("menu");
        assert!(!shop.pages.contains_key(&1));
        let echo = || tier::deliver_echo(|| probe.deliver());
        assert_eq!(shop.page(5, echo), "5 left");
        assert_eq!(shop.loads.load(Ordering::SeqCst), 2);
        assert_eq!(shop.kept(), (true, true), "(L1, L2)");
    }

    /// The same for a dependency: the stock the page read was removed before the page's load.
    #[test]
    fn an_echo_of_a_removal_does_not_undo_a_load_that_started_after_it() {
        let probe = Arc::new(Probe::broadcasting());
        let shop = Shop::new(&probe, "echo-dep-test");
        assert_eq!(shop.page(5, || {}), "5 left");
        probe.deliver();
        shop.stock.remove(&1);
        assert!(!shop.pages.contains_key(&1), "the page read the stock");
        let echo = || tier::deliver_echo(|| probe.deliver());
        assert_eq!(shop.page(4, echo), "4 left");
        assert_eq!(shop.loads.load(Ordering::SeqCst), 2);
        assert_eq!(shop.kept(), (true, true), "(L1, L2)");
    }

    /// Another process's invalidation heard during a load cannot be ordered with it: it may
    /// have been made after the loader read its data, so the entry is kept neither in L1 nor
    /// in L2 (one more load, never a stale value).
    #[test]
    fn another_processs_invalidation_heard_during_a_load_keeps_its_entry_out() {
        let probe = Arc::new(Probe::broadcasting());
        let shop = Shop::new(&probe, "heard-test");
        assert_eq!(shop.page(5, || {}), "5 left");
        probe.deliver();
        shop.stock.remove(&1);
        assert_eq!(shop.page(4, || probe.deliver()), "4 left");
        assert_eq!(shop.kept(), (false, false), "(L1, L2)");

        shop.pages.invalidate_tag("menu");
        assert_eq!(shop.page(4, || probe.deliver()), "4 left");
        assert_eq!(shop.kept(), (false, false), "(L1, L2)");
    }

    /// A backend allocated where a dropped one was (as one test's probe after another's: the
    /// allocator hands a freed block of the same size back to the same thread) is a new
    /// backend: it gets its own tag handler, and the dropped one's is forgotten.
    #[test]
    fn a_backend_allocated_where_a_dropped_one_was_listens_too() {
        for _ in 0..32 {
            let first = Arc::new(Probe::broadcasting());
            let backend: Arc<dyn Backend> = first.clone();
            super::listen(&backend);
            assert_eq!(first.listeners(super::TAGS), 1);
            drop((backend, first));
            let second = Arc::new(Probe::broadcasting());
            let backend: Arc<dyn Backend> = second.clone();
            super::listen(&backend);
            super::listen(&backend);
            assert_eq!(second.listeners(super::TAGS), 1, "once per backend");
        }
    }
}
