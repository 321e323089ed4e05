use cache_runtime::cached;

struct Reading {
    celsius: f64,
}

// A key type the compiler infers, in an async function: reported once, at the `key` expression.
#[cached(key = reading.celsius * 1.8 + 32.0)]
async fn describe(reading: &Reading) -> String {
    format!("{}", reading.celsius)
}

fn main() {}
