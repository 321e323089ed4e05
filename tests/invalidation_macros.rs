//! Invalidation by tag and by dependency through the attributes (issue 15): `#[cached(tags = ..,
//! depends = .., version = ..)]` and `#[cache_evict(.., tags = ..)]`, sync and async, counted.
//!
//! Each test has functions (and tag names) of its own: the tests of this file run in parallel,
//! and `invalidate_tag` reaches every cache of the process.

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{cache_evict, cached, invalidate_tag};

fn count(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}

fn bump(c: &AtomicUsize) {
    c.fetch_add(1, Ordering::SeqCst);
}

/// The scenario: a page made of a product and its stock, each memoized; an update of
/// one product's stock reloads that product's page only.
mod russian_doll {
    use super::*;

    pub static PRODUCT: AtomicUsize = AtomicUsize::new(0);
    pub static STOCK: AtomicUsize = AtomicUsize::new(0);
    pub static PAGE: AtomicUsize = AtomicUsize::new(0);
    pub static FLAT: AtomicUsize = AtomicUsize::new(0);

    #[cached]
    pub fn product(id: u64) -> String {
        bump(&PRODUCT);
        format!("product {id}")
    }

    #[cached]
    pub fn stock(id: u64, store: u32) -> u32 {
        bump(&STOCK);
        u32::try_from(id).unwrap() * 10 + store
    }

    #[cached]
    pub fn product_page(id: u64) -> String {
        bump(&PAGE);
        format!("{}: {} in store 1", product(id), stock(id, 1))
    }

    /// The same page, whose reads do not make it depend on them.
    #[cached(depends = false)]
    pub fn flat_page(id: u64) -> String {
        bump(&FLAT);
        format!("{}: {} in store 1", product(id), stock(id, 1))
    }

    #[cache_evict(stock, key = (id, store))]
    pub fn update_stock(id: u64, store: u32) {
        let _ = (id, store);
    }

    #[cache_evict(product, key = id)]
    pub fn rename(id: u64) -> Result<(), String> {
        if id == 0 {
            return Err("no product 0".into());
        }
        Ok(())
    }
}

#[test]
fn an_evicted_inner_entry_reloads_the_outer_one_and_no_other() {
    use russian_doll::*;
    assert_eq!(product_page(1), "product 1: 11 in store 1");
    assert_eq!(product_page(2), "product 2: 21 in store 1");
    assert_eq!(product_page(1), "product 1: 11 in store 1");
    assert_eq!((count(&PAGE), count(&PRODUCT), count(&STOCK)), (2, 2, 2));

    update_stock(1, 1);
    assert_eq!(product_page(1), "product 1: 11 in store 1");
    assert_eq!(
        count(&PAGE),
        3,
        "product 1's stock changed: its page reloads"
    );
    assert_eq!(count(&STOCK), 3, "and reads the stock again");
    assert_eq!(count(&PRODUCT), 2, "the product itself is still cached");
    product_page(2);
    assert_eq!(count(&PAGE), 3, "product 2's page did not read that stock");

    update_stock(2, 7); // a store product 2's page did not read
    product_page(2);
    assert_eq!(count(&PAGE), 3);

    // Through the other inner function, and only on success.
    assert_eq!(rename(0), Err("no product 0".into()));
    product_page(1);
    assert_eq!(count(&PAGE), 3, "a failed `cache_evict` evicts nothing");
    assert_eq!(rename(2), Ok(()));
    product_page(1);
    product_page(2);
    assert_eq!(count(&PAGE), 4, "product 2 was renamed: its page reloads");
    assert_eq!(count(&PRODUCT), 3);
}

#[test]
fn depends_false_keeps_the_outer_entry() {
    use russian_doll::*;
    flat_page(50);
    flat_page(50);
    assert_eq!(count(&FLAT), 1);
    update_stock(50, 1);
    assert_eq!(flat_page(50), "product 50: 501 in store 1");
    assert_eq!(count(&FLAT), 1, "`depends = false`: the page stays");
}

/// The same scenario, async: the reads happen across `.await`s, on a multi-threaded runtime.
mod russian_doll_async {
    use super::*;

    pub static STOCK: AtomicUsize = AtomicUsize::new(0);
    pub static PAGE: AtomicUsize = AtomicUsize::new(0);

    #[cached]
    pub async fn product(id: u64) -> String {
        tokio::task::yield_now().await;
        format!("product {id}")
    }

    #[cached]
    pub async fn stock(id: u64, store: u32) -> Result<u32, String> {
        bump(&STOCK);
        tokio::task::yield_now().await;
        Ok(u32::try_from(id).unwrap() * 10 + store)
    }

    #[cached]
    pub async fn product_page(id: u64) -> Result<String, String> {
        bump(&PAGE);
        let product = product(id).await;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let stock = stock(id, 1).await?;
        Ok(format!("{product}: {stock} in store 1"))
    }

    #[cache_evict(stock, key = (id, store))]
    pub async fn update_stock(id: u64, store: u32) -> Result<(), String> {
        tokio::task::yield_now().await;
        let _ = (id, store);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_dependencies_follow_the_loader_across_await() {
    use russian_doll_async::*;
    assert_eq!(product_page(1).await.unwrap(), "product 1: 11 in store 1");
    product_page(2).await.unwrap();
    product_page(1).await.unwrap();
    assert_eq!((count(&PAGE), count(&STOCK)), (2, 2));
    update_stock(1, 1).await.unwrap();
    product_page(1).await.unwrap();
    product_page(2).await.unwrap();
    assert_eq!(count(&PAGE), 3, "only product 1's page reloads");
    assert_eq!(count(&STOCK), 3);
}

/// Tags over the arguments, sync, async and on a method; invalidated globally and per function.
mod tags_of_args {
    use super::*;

    pub static PRODUCT: AtomicUsize = AtomicUsize::new(0);
    pub static STOCK: AtomicUsize = AtomicUsize::new(0);
    pub static PRICE: AtomicUsize = AtomicUsize::new(0);
    pub static METHOD: AtomicUsize = AtomicUsize::new(0);

    #[cached(tags = ["catalog-a", format!("product-a:{id}")])]
    pub fn product(id: u64) -> String {
        bump(&PRODUCT);
        format!("product {id}")
    }

    #[cached(tags = ["catalog-a", format!("store-a:{store}")])]
    pub async fn stock(id: u64, store: u32) -> u64 {
        bump(&STOCK);
        tokio::task::yield_now().await;
        id + u64::from(store)
    }

    /// Carries a tag `product` has too, but invalidated per function below.
    #[cached(tags = [format!("product-a:{id}")])]
    pub fn price(id: u64) -> u64 {
        bump(&PRICE);
        id * 100
    }

    pub struct Shop {
        pub name: &'static str,
    }

    impl Shop {
        #[cached(key = id, tags = [format!("shop-a:{}", self.name), "catalog-a"])]
        pub fn listing(&self, id: u64) -> String {
            bump(&METHOD);
            format!("{} #{id}", self.name)
        }
    }

    /// Every cache: `product`, `stock` and `listing` entries tagged `catalog-a`.
    #[cache_evict(tags = ["catalog-a"])]
    pub fn rebuild_catalog() {}

    /// `price`'s cache only, and only on success.
    #[cache_evict(price, tags = [format!("product-a:{id}")])]
    pub fn reprice(id: u64) -> Option<()> {
        (id != 0).then_some(())
    }
}

#[tokio::test]
async fn tags_of_the_arguments() {
    use tags_of_args::*;
    let shop = Shop { name: "north" };
    for id in 1..=3 {
        product(id);
        stock(id, 5).await;
        price(id);
        shop.listing(id);
    }
    let loads = || {
        (
            count(&PRODUCT),
            count(&STOCK),
            count(&PRICE),
            count(&METHOD),
        )
    };
    assert_eq!(loads(), (3, 3, 3, 3));

    // `product-a:2` per function (`price`'s cache): `product` keeps its entry for 2.
    assert_eq!(reprice(0), None); // fails: nothing invalidated
    assert_eq!(reprice(2), Some(()));
    for id in 1..=3 {
        product(id);
        price(id);
    }
    assert_eq!(loads(), (3, 3, 4, 3), "price 2 reloads, product 2 does not");

    // The argument tag of one entry, globally: `product` 2 and `price` 2.
    invalidate_tag("product-a:2");
    for id in 1..=3 {
        product(id);
        price(id);
    }
    assert_eq!(loads(), (4, 3, 5, 3));

    // A tag made of a method's receiver.
    invalidate_tag("shop-a:north");
    shop.listing(1);
    assert_eq!(count(&METHOD), 4);

    // `cache_evict` without a target: every cache.
    rebuild_catalog();
    for id in 1..=3 {
        product(id);
        stock(id, 5).await;
        price(id);
        shop.listing(id);
    }
    assert_eq!(
        loads(),
        (7, 6, 5, 7),
        "every `catalog-a` entry reloads, `price` does not"
    );
}

/// Tags from the cached value.
mod tags_of_values {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    pub struct Product {
        pub id: u64,
        pub brand: &'static str,
    }

    pub static PRODUCT: AtomicUsize = AtomicUsize::new(0);
    pub static FALLIBLE: AtomicUsize = AtomicUsize::new(0);
    pub static OPTIONAL: AtomicUsize = AtomicUsize::new(0);

    fn brand_of(id: u64) -> &'static str {
        if id.is_multiple_of(2) {
            "acme-v"
        } else {
            "globex-v"
        }
    }

    /// Both forms: a tag over the arguments, and a closure over the value.
    #[cached(tags = ["products-v", |p: &Product| vec![format!("brand-v:{}", p.brand)]])]
    pub fn product(id: u64) -> Product {
        bump(&PRODUCT);
        Product {
            id,
            brand: brand_of(id),
        }
    }

    /// A closure alone, over the `Ok` value (unannotated: its type is the cached value's). An
    /// `Err` is cached (`negative_ttl`) with the argument tags only: there is no value to tag.
    #[cached(negative_ttl = "1m", tags = ["fallible-v", |p| [p.brand]])]
    pub fn fallible(id: u64) -> Result<Product, String> {
        bump(&FALLIBLE);
        if id == 0 {
            return Err("no product 0".into());
        }
        Ok(Product {
            id,
            brand: brand_of(id),
        })
    }

    #[cached(tags = |p: &Product| std::iter::once(format!("id-v:{}", p.id)))]
    pub async fn optional(id: u64) -> Option<Product> {
        bump(&OPTIONAL);
        tokio::task::yield_now().await;
        (id != 0).then(|| Product {
            id,
            brand: brand_of(id),
        })
    }
}

#[tokio::test]
async fn tags_of_the_value() {
    use tags_of_values::*;
    for id in 1..=4 {
        product(id);
    }
    assert_eq!(count(&PRODUCT), 4);
    invalidate_tag("brand-v:acme-v"); // products 2 and 4
    for id in 1..=4 {
        product(id);
    }
    assert_eq!(count(&PRODUCT), 6);
    invalidate_tag("products-v"); // the argument tag: all four
    for id in 1..=4 {
        product(id);
    }
    assert_eq!(count(&PRODUCT), 10);

    // `Result`: the closure sees the `Ok` value.
    assert_eq!(fallible(0), Err("no product 0".into()));
    let _ = fallible(1);
    let _ = fallible(2);
    let _ = fallible(0);
    assert_eq!(count(&FALLIBLE), 3, "the `Err` is cached too");
    invalidate_tag("globex-v");
    let _ = fallible(0);
    let _ = fallible(1);
    let _ = fallible(2);
    assert_eq!(count(&FALLIBLE), 4, "only product 1 carried its brand");
    invalidate_tag("fallible-v");
    let _ = fallible(0);
    let _ = fallible(1);
    let _ = fallible(2);
    assert_eq!(
        count(&FALLIBLE),
        7,
        "the argument tag reaches the `Err` as well"
    );

    // `Option`, async: `None` is not cached, so not tagged.
    assert_eq!(optional(0).await, None);
    optional(3).await;
    optional(4).await;
    optional(3).await;
    assert_eq!(count(&OPTIONAL), 3);
    invalidate_tag("id-v:3");
    optional(3).await;
    optional(4).await;
    assert_eq!(count(&OPTIONAL), 4);
}

/// `version` is part of the L2 key: without a remote tier it changes nothing, but is accepted.
#[cached(version = 2, tags = ["versioned"])]
fn versioned(x: u64) -> u64 {
    x + 1
}

#[test]
fn version_without_a_backend_is_accepted() {
    assert_eq!(versioned(1), 2);
    assert_eq!(versioned(1), 2);
}
