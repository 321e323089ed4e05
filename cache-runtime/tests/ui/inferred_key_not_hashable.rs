use cache_runtime::cached;

struct Reading {
    celsius: f64,
}

#[cached(key = reading.celsius * 1.8 + 32.0)]
fn describe(reading: &Reading) -> String {
    format!("{}", reading.celsius)
}

fn main() {}
