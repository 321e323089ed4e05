use cache_runtime::cached;

#[cached(tags = "catalog")]
fn a_string(id: u64) -> u64 {
    id
}

#[cached(tags = catalog_tags())]
fn a_call(id: u64) -> u64 {
    id
}

#[cached(tags = [])]
fn empty(id: u64) -> u64 {
    id
}

#[cached(tags = ["catalog", |a: &u64, b: &u64| [a + b]], tag = ["typo"])]
fn two_arguments(id: u64) -> u64 {
    id
}

#[cached(tags = || ["catalog"])]
fn no_argument(id: u64) -> u64 {
    id
}

#[cached(tags)]
fn no_value(id: u64) -> u64 {
    id
}

fn catalog_tags() -> Vec<String> {
    Vec::new()
}

fn main() {}
