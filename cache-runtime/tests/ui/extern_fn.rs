use cache_runtime::cached;

#[cached]
extern "C" fn f(x: u64) -> u64 {
    x
}

fn main() {}
