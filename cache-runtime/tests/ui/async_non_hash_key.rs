use cache_runtime::cached;

#[derive(Clone, PartialEq, Eq)]
struct Point {
    x: i32,
}

// The awaited load does not report the missing `Hash` a second time: once, at the argument's type.
#[cached]
async fn f(p: Point) -> i32 {
    p.x
}

fn main() {}
