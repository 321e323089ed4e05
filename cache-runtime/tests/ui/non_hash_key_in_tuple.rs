use cache_runtime::cached;

#[derive(Clone, PartialEq, Eq)]
struct Point {
    x: i32,
}

// The key is `(Point, u32)`: every argument must be hashable.
#[cached]
fn f(p: Point, scale: u32) -> i32 {
    p.x * scale as i32
}

fn main() {}
