use cache_runtime::cached;

struct Product {
    brand: String,
}

#[cached(tags = ["catalog", id])]
fn tag_not_a_string(id: u64) -> u64 {
    id
}

#[cached(tags = |p: &Product| vec![p.brand.clone()])]
fn closure_of_another_type(id: u64) -> u64 {
    id
}

#[cached(tags = |v: &u64| *v)]
fn closure_not_returning_tags(id: u64) -> u64 {
    id
}

fn main() {
    let _ = Product { brand: String::new() }.brand;
}
