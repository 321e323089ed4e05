use cache_runtime::cached;

fn main() {
    let f = #[cached] |x: u64| x + 1;
    let _ = f(1);
}
