//! Tags, dependencies and versions through the remote tier (issue 15), against this test
//! binary's own Redis and memcached (`cache_test_support`). Two caches on two clients stand for
//! two processes; a process's L1 copy is dropped (`evict_local`) so that what is checked is what
//! the fleet reads from L2: a stale L2 entry must read as a miss in every process.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_runtime::tier::Backend;
use cache_runtime::{Cache, MemcachedBackend, RedisBackend, invalidate_tag, tag};
use cache_test_support::{memcached_url, redis_url};

fn prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("cache-rs-test:{test}:{}:{nanos}", std::process::id())
}

type MakeBackend = fn() -> Arc<dyn Backend>;

fn redis() -> Arc<dyn Backend> {
    Arc::new(RedisBackend::new(redis_url(), Duration::from_secs(2)).unwrap())
}

fn memcached() -> Arc<dyn Backend> {
    Arc::new(MemcachedBackend::new(&[memcached_url()], Duration::from_secs(2)).unwrap())
}

const BACKENDS: [(&str, MakeBackend); 2] = [("redis", redis), ("memcached", memcached)];

/// One process's caches: product pages built from stock levels, tagged `tag`.
///
/// Each test tags its pages with a tag of its own: the tests of this file run at once, in one
/// process, and [`invalidate_tag`] reaches every cache of the process (and their L2 entries).
struct Node {
    stock: Cache<u64, u32>,
    page: Cache<u64, String>,
    tag: &'static str,
    page_loads: Arc<AtomicUsize>,
    stock_value: Arc<AtomicUsize>,
}

impl Node {
    fn new(
        backend: &Arc<dyn Backend>,
        p: &str,
        tag: &'static str,
        counters: (&Arc<AtomicUsize>, &Arc<AtomicUsize>),
    ) -> Self {
        fn build<V>(backend: &Arc<dyn Backend>, p: &str, name: &str) -> Cache<u64, V>
        where
            V: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
        {
            Cache::builder()
                .name(name)
                .ttl(Duration::from_secs(600))
                .l1_ttl(Duration::from_secs(600))
                .remote(backend.clone(), p)
                .build()
                .unwrap()
        }
        Node {
            stock: build(backend, p, "stock"),
            page: build(backend, p, "page"),
            tag,
            page_loads: counters.0.clone(),
            stock_value: counters.1.clone(),
        }
    }

    fn stock(&self, id: u64) -> u32 {
        self.stock.get_or_insert_with(&id, || {
            u32::try_from(self.stock_value.load(Ordering::SeqCst)).unwrap()
        })
    }

    fn page(&self, id: u64) -> String {
        self.page.get_or_insert_with(&id, || {
            self.page_loads.fetch_add(1, Ordering::SeqCst);
            tag(self.tag);
            format!("product {id}: {} left", self.stock(id))
        })
    }

    fn forget(&self, id: u64) {
        self.page.evict_local(&id);
        self.stock.evict_local(&id);
    }
}

#[test]
fn a_dependency_is_honoured_through_l2_by_another_process() {
    for (name, make) in BACKENDS {
        let p = prefix(&format!("deps-{name}"));
        let (loads, stock) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(5)));
        let a = Node::new(&make(), &p, "deps-pages", (&loads, &stock));
        let b = Node::new(&make(), &p, "deps-pages", (&loads, &stock));
        assert_eq!(a.page(1), "product 1: 5 left");
        a.page(2);
        // B reads A's pages from L2: no load.
        b.forget(1);
        assert_eq!(b.page(1), "product 1: 5 left");
        assert_eq!(loads.load(Ordering::SeqCst), 2, "{name}");
        // B updates product 1's stock; A's L1 copy of the page is gone (here, as after an
        // L1 eviction), so A reads L2: the page there read the old stock, and reloads.
        stock.store(4, Ordering::SeqCst);
        b.stock.remove(&1);
        a.forget(1);
        a.forget(2);
        assert_eq!(a.page(1), "product 1: 4 left", "{name}");
        assert_eq!(loads.load(Ordering::SeqCst), 3, "{name}");
        // Product 2's page did not read product 1's stock: still served from L2.
        a.page(2);
        assert_eq!(
            loads.load(Ordering::SeqCst),
            3,
            "{name}: another product's page stays"
        );
        // And the reloaded page is in L2 for B.
        b.forget(1);
        assert_eq!(b.page(1), "product 1: 4 left");
        assert_eq!(loads.load(Ordering::SeqCst), 3, "{name}");
        a.page.clear();
        a.stock.clear();
    }
}

#[test]
fn a_tag_invalidation_reaches_l2_entries_in_every_process() {
    for (name, make) in BACKENDS {
        let p = prefix(&format!("tags-{name}"));
        let (loads, stock) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(1)));
        let a = Node::new(&make(), &p, "tags-pages", (&loads, &stock));
        let b = Node::new(&make(), &p, "tags-pages", (&loads, &stock));
        for id in 0..10 {
            a.page(id);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 10);
        // One cache's tag, from B.
        b.page.invalidate_tag("tags-pages");
        for id in 0..10 {
            a.forget(id);
            a.page(id);
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            20,
            "{name}: every page reloads once"
        );
        for id in 0..10 {
            b.forget(id);
            b.page(id);
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            20,
            "{name}: and is shared again"
        );
        // Every cache's tag.
        invalidate_tag("tags-pages");
        for id in 0..10 {
            b.forget(id);
            b.page(id);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 30, "{name}");
        a.page.clear();
        a.stock.clear();
    }
}

mod v1 {
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    pub struct User {
        pub id: u64,
        pub name: String,
    }
}

mod v2 {
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    pub struct User {
        pub id: u64,
        pub name: String,
        pub email: Option<String>,
    }
}

#[test]
fn a_changed_value_type_or_version_never_reads_old_payloads() {
    for (name, make) in BACKENDS {
        let p = prefix(&format!("versions-{name}"));
        let backend = make();
        let old: Cache<u64, v1::User> = Cache::builder()
            .name("users")
            .remote(backend.clone(), &p)
            .build()
            .unwrap();
        old.insert(
            1,
            v1::User {
                id: 1,
                name: "ada".into(),
            },
        );
        // Same cache name, same struct name, one field more: a new namespace, a load.
        let new: Cache<u64, v2::User> = Cache::builder()
            .name("users")
            .remote(backend.clone(), &p)
            .build()
            .unwrap();
        let u = new.get_or_insert_with(&1, || v2::User {
            id: 1,
            name: "ada".into(),
            email: Some("ada@example.org".into()),
        });
        assert_eq!(u.email.as_deref(), Some("ada@example.org"), "{name}");
        // The same type again reads the old entry.
        let again: Cache<u64, v1::User> = Cache::builder()
            .name("users")
            .remote(backend.clone(), &p)
            .build()
            .unwrap();
        assert_eq!(again.get_or_insert_with(&1, || unreachable!()).name, "ada");
        // An explicit version moves to another namespace as well.
        let v3: Cache<u64, v1::User> = Cache::builder()
            .name("users")
            .version(3)
            .remote(backend.clone(), &p)
            .build()
            .unwrap();
        let loaded = AtomicUsize::new(0);
        v3.get_or_insert_with(&1, || {
            loaded.fetch_add(1, Ordering::SeqCst);
            v1::User {
                id: 1,
                name: "v3".into(),
            }
        });
        assert_eq!(loaded.load(Ordering::SeqCst), 1, "{name}");
        old.clear();
        new.clear();
        v3.clear();
    }
}
