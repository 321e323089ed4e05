use cache_runtime::cached;

#[derive(Clone, PartialEq, Eq)]
struct Point {
    x: i32,
}

#[cached]
fn f(p: Point) -> i32 {
    p.x
}

fn main() {}
