use cache_runtime::cached;

#[derive(Clone, PartialEq, Eq)]
struct Point {
    x: i32,
}

// An early refresh owns its key (`ToOwned`): the missing `Hash` is still reported once.
#[cached(ttl = "1s", early_refresh = 1.0)]
fn f(p: &Point) -> i32 {
    p.x
}

fn main() {}
