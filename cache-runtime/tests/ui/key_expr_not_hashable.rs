use cache_runtime::cached;

#[derive(Clone, PartialEq, Eq)]
struct Point {
    x: i32,
}

// `key = p.clone()`: the key's type is the owned form of `p`'s, underlined there.
#[cached(key = p.clone())]
fn f(p: &Point, scale: i32) -> i32 {
    p.x * scale
}

fn main() {}
