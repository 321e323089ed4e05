use cache_runtime::cached;

#[derive(Clone, PartialEq, Eq)]
struct Point {
    x: i32,
    y: i32,
}

struct Grid {
    origin: Point,
}

impl Grid {
    #[cached(key = self.origin.clone())]
    fn distance(&self) -> i32 {
        self.origin.x.abs() + self.origin.y.abs()
    }
}

fn main() {}
