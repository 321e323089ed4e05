use cache_runtime::cached;

#[derive(Clone, PartialEq, Eq)]
struct Point {
    x: i32,
}

// The refreshing path (`stale`) reports the missing `Hash` at the argument's type too.
#[cached(ttl = "1s", stale = "10s")]
fn f(p: Point) -> i32 {
    p.x
}

fn main() {}
