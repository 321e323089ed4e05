use cache_runtime::cached;

#[cached(ttl = "5x")]
fn unknown_unit(x: u64) -> u64 {
    x
}

#[cached(ttl = "5")]
fn no_unit(x: u64) -> u64 {
    x
}

#[cached(ttl = "")]
fn empty(x: u64) -> u64 {
    x
}

#[cached(ttl = "1m30")]
fn trailing_number(x: u64) -> u64 {
    x
}

fn main() {}
