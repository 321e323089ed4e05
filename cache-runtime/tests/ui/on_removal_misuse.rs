use cache_runtime::{RemovalCause, cached};

fn log_removal(_: &u64, _: &String, _: RemovalCause) {}

fn wrong_value_type(_: &u64, _: &u64, _: RemovalCause) {}

#[cached(on_removal = "log_removal")]
fn a_string(id: u64) -> String {
    id.to_string()
}

#[cached(on_removal)]
fn without_value(id: u64) -> String {
    id.to_string()
}

#[cached(removal_listener = log_removal)]
fn renamed(id: u64) -> String {
    id.to_string()
}

#[cached(key = id + 1, on_removal = log_removal)]
fn inferred_key(id: u64) -> String {
    id.to_string()
}

#[cached(on_removal = wrong_value_type)]
fn listener_of_another_value(id: u64) -> String {
    id.to_string()
}

#[cached(on_removal = |_key: &u64, _value: &String| {})]
fn two_arguments(id: u64) -> String {
    id.to_string()
}

fn main() {}
