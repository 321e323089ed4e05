use cache_runtime::cached;

#[derive(Clone, PartialEq, Eq)]
struct Point {
    x: i32,
}

// `key = (p, scale)`: a tuple of arguments, reported at the argument list.
#[cached(key = (p, scale))]
fn f(p: Point, scale: i32, verbose: bool) -> i32 {
    if verbose {
        println!("{}", p.x);
    }
    p.x * scale
}

fn main() {}
