use cache_runtime::cached;

#[derive(Clone, PartialEq, Eq)]
struct Point {
    x: i32,
}

// Taken as `&[Point]`, owned as `Vec<Point>`: underlined at `[Point]`, once (not again for the
// lookup by `[Point]`).
#[cached]
fn total(points: &[Point]) -> i32 {
    points.iter().map(|p| p.x).sum()
}

fn main() {}
