//! Invalidation by tag and by dependency, in one process (issue 15): through the runtime API,
//! sync and async, counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{Cache, invalidate_tag, tag};

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

#[test]
fn a_tag_drops_every_entry_carrying_it_and_nothing_else() {
    let products: Cache<u64, String> = Cache::builder().build().unwrap();
    let loads = counter();
    let load = |id: u64| {
        let loads = loads.clone();
        products.get_or_insert_with(&id, move || {
            loads.fetch_add(1, Ordering::SeqCst);
            tag("catalog-t1");
            tag(format!("product-t1:{id}"));
            format!("product {id}")
        })
    };
    for id in 0..100 {
        load(id);
    }
    products.insert(1_000, "untagged".into());
    assert_eq!(loads.load(Ordering::SeqCst), 100);
    for id in 0..100 {
        load(id); // hits
    }
    assert_eq!(loads.load(Ordering::SeqCst), 100);
    invalidate_tag("product-t1:7");
    load(7);
    load(8);
    assert_eq!(loads.load(Ordering::SeqCst), 101, "only product 7 reloads");
    invalidate_tag("catalog-t1");
    for id in 0..100 {
        load(id);
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        201,
        "every tagged entry reloads once"
    );
    assert_eq!(products.get(&1_000).as_deref(), Some("untagged"));
}

#[test]
fn cache_invalidate_tag_is_one_cache_only() {
    let a: Cache<u64, u64> = Cache::builder().build().unwrap();
    let b: Cache<u64, u64> = Cache::builder().build().unwrap();
    for c in [&a, &b] {
        c.get_or_insert_with(&1, || {
            tag("shared-t2");
            1
        });
    }
    a.invalidate_tag("shared-t2");
    assert!(!a.contains_key(&1));
    assert!(b.contains_key(&1));
    invalidate_tag("shared-t2");
    assert!(!b.contains_key(&1));
}

/// The example: `product_page(id)` reads `product(id)` and `stock(id, store)`.
struct Shop {
    product: Cache<u64, String>,
    stock: Cache<(u64, u32), u32>,
    page: Cache<u64, String>,
    page_loads: AtomicUsize,
}

impl Shop {
    fn new(depends: bool) -> Self {
        Shop {
            product: Cache::builder().build().unwrap(),
            stock: Cache::builder().build().unwrap(),
            page: Cache::builder().depends(depends).build().unwrap(),
            page_loads: AtomicUsize::new(0),
        }
    }
    fn product(&self, id: u64) -> String {
        self.product
            .get_or_insert_with(&id, || format!("product {id}"))
    }
    fn stock(&self, id: u64, store: u32) -> u32 {
        self.stock.get_or_insert_with(&(id, store), || 10)
    }
    fn page(&self, id: u64) -> String {
        self.page.get_or_insert_with(&id, || {
            self.page_loads.fetch_add(1, Ordering::SeqCst);
            format!("{}: {} left", self.product(id), self.stock(id, 1))
        })
    }
    fn loads(&self) -> usize {
        self.page_loads.load(Ordering::SeqCst)
    }
}

#[test]
fn an_outer_entry_reloads_when_an_inner_entry_it_read_is_invalidated() {
    let shop = Shop::new(true);
    shop.page(1);
    shop.page(2);
    shop.page(1);
    assert_eq!(shop.loads(), 2);
    // An update of product 2's stock: product 1's page stays.
    shop.stock.remove(&(2, 1));
    shop.page(1);
    assert_eq!(shop.loads(), 2);
    shop.page(2);
    assert_eq!(shop.loads(), 3);
    // A put of the inner entry, and a removal of the other inner entry, each reload once.
    shop.stock.insert((1, 1), 9);
    assert_eq!(shop.page(1), "product 1: 9 left");
    assert_eq!(shop.loads(), 4);
    shop.product.remove(&1);
    shop.page(1);
    shop.page(1);
    assert_eq!(shop.loads(), 5);
    // A clear of an inner cache drops every page built from it.
    shop.stock.clear();
    shop.page(1);
    shop.page(2);
    assert_eq!(shop.loads(), 7);
}

#[test]
fn depends_false_ignores_what_the_loader_read() {
    let shop = Shop::new(false);
    shop.page(1);
    shop.stock.insert((1, 1), 0);
    shop.page(1);
    assert_eq!(shop.loads(), 1);
}

/// An insert whose `ttl_fn` gives zero is not stored and removes the old entry: a write, so the
/// entries computed from the old one reload.
#[test]
fn an_insert_with_a_zero_ttl_invalidates_what_read_the_old_entry() {
    let stock: Cache<u64, u32> = Cache::builder()
        .ttl_fn(|left: &u32| Duration::from_secs(if *left == 0 { 0 } else { 60 }))
        .build()
        .unwrap();
    let pages: Cache<u64, String> = Cache::builder().build().unwrap();
    let page = || {
        pages.get_or_insert_with(&1, || {
            format!("{} left", stock.get_or_insert_with(&1, || 5))
        })
    };
    assert_eq!(page(), "5 left");
    stock.insert(1, 0); // sold out: not cached
    assert!(!stock.contains_key(&1));
    assert!(!pages.contains_key(&1), "the page read the old stock");
}

#[test]
fn dependencies_are_transitive_and_carry_inner_tags() {
    let base: Cache<u64, u64> = Cache::builder().build().unwrap();
    let mid: Cache<u64, u64> = Cache::builder().build().unwrap();
    let top: Cache<u64, u64> = Cache::builder().build().unwrap();
    let top_loads = AtomicUsize::new(0);
    let read_base = |k: u64| {
        base.get_or_insert_with(&k, || {
            tag("base-t5");
            k
        })
    };
    let read_mid = |k: u64| mid.get_or_insert_with(&k, || read_base(k) + 1);
    let read_top = |k: u64| {
        top.get_or_insert_with(&k, || {
            top_loads.fetch_add(1, Ordering::SeqCst);
            read_mid(k) + 1
        })
    };
    assert_eq!(read_top(1), 3);
    assert_eq!(read_top(1), 3);
    assert_eq!(top_loads.load(Ordering::SeqCst), 1);
    base.remove(&1); // two levels down (reloaded with its tag)
    assert_eq!(read_top(1), 3);
    assert_eq!(top_loads.load(Ordering::SeqCst), 2);
    read_top(1);
    invalidate_tag("base-t5"); // the innermost entry's tag
    read_top(1);
    assert_eq!(top_loads.load(Ordering::SeqCst), 3);
}

#[test]
fn an_invalidation_during_the_outer_load_is_not_lost() {
    let inner: Cache<u64, u64> = Cache::builder().build().unwrap();
    let outer: Cache<u64, u64> = Cache::builder().build().unwrap();
    inner.insert(1, 1);
    // The outer load reads the old inner value, then the inner entry changes before the outer
    // value is stored: the stored outer value must not be served.
    let v = outer.get_or_insert_with(&1, || {
        let old = inner.get(&1).unwrap();
        inner.insert(1, 2);
        old * 100
    });
    assert_eq!(v, 100);
    assert_eq!(
        outer.get_or_insert_with(&1, || inner.get(&1).unwrap() * 100),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_loaders_record_across_await_and_threads() {
    let stock: Cache<u64, u32> = Cache::builder().build().unwrap();
    let page: Cache<u64, String> = Cache::builder().build().unwrap();
    let loads = AtomicUsize::new(0);
    let render = async |id: u64| {
        let (stock, loads) = (&stock, &loads);
        page.get_or_insert_with_async(&id, move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            let n = stock
                .get_or_insert_with_async(&id, || async {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    5
                })
                .await;
            tokio::task::yield_now().await;
            tag("pages-t7");
            format!("{n} left")
        })
        .await
    };
    render(1).await;
    render(1).await;
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    stock.insert(1, 4);
    assert_eq!(render(1).await, "4 left");
    assert_eq!(loads.load(Ordering::SeqCst), 2);
    invalidate_tag("pages-t7");
    render(1).await;
    assert_eq!(loads.load(Ordering::SeqCst), 3);
}

#[test]
fn many_threads_one_invalidation_each_key_reloads_once() {
    let page: Cache<u64, u64> = Cache::builder().build().unwrap();
    let loads = AtomicUsize::new(0);
    let read = |k: u64| {
        page.get_or_insert_with(&k, || {
            loads.fetch_add(1, Ordering::SeqCst);
            tag("threads-t8");
            k
        })
    };
    for k in 0..64 {
        read(k);
    }
    invalidate_tag("threads-t8");
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for k in 0..64 {
                    read(k);
                }
            });
        }
    });
    assert_eq!(loads.load(Ordering::SeqCst), 128);
}
