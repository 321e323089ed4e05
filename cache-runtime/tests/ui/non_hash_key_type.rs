use cache_runtime::cached;

#[derive(Clone, PartialEq, Eq)]
struct Point {
    x: i32,
}

struct Query {
    at: Point,
}

#[cached(key = query.at.clone(), key_type = Point)]
fn f(query: &Query) -> i32 {
    query.at.x
}

fn main() {}
