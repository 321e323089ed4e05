use cache_runtime::cached;

#[cached]
const fn f(x: u64) -> u64 {
    x
}

fn main() {}
