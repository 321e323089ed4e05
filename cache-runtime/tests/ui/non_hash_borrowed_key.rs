use cache_runtime::cached;

#[derive(Clone, PartialEq, Eq)]
struct Point {
    x: i32,
}

// Taken by reference, owned (with `ToOwned`) for the cache: `Point` must be hashable.
#[cached]
fn f(p: &Point) -> i32 {
    p.x
}

fn main() {}
