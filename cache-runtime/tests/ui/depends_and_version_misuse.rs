use cache_runtime::cached;

#[cached(depends = "no")]
fn depends_a_string(id: u64) -> u64 {
    id
}

#[cached(depends)]
fn depends_without_value(id: u64) -> u64 {
    id
}

#[cached(version = "2")]
fn version_a_string(id: u64) -> u64 {
    id
}

#[cached(version = -1)]
fn version_negative(id: u64) -> u64 {
    id
}

#[cached(version = 2.5)]
fn version_a_float(id: u64) -> u64 {
    id
}

#[cached(version = 5_000_000_000)]
fn version_too_large(id: u64) -> u64 {
    id
}

const V: u32 = 3;

#[cached(version = V, deps = false)]
fn version_a_constant(id: u64) -> u64 {
    id
}

fn main() {
    let _ = V;
}
