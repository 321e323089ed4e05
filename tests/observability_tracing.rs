//! `tracing` events name the cache and the key's hash, never the key or the value.
//!
//! One test in its own binary: it installs the process-wide subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};

use cache_runtime::cached;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cached(name = "obs.traced", capacity = 2)]
fn traced(id: u64) -> Result<String, String> {
    if id == 13 {
        Err("unlucky".into())
    } else {
        Ok(format!("private-value-{id}"))
    }
}

#[test]
fn tracing_events_name_the_cache_and_hash_but_not_the_key_or_value() {
    let buf = Buffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A global subscriber, installed before any cache call in this process: tracing caches each
    // callsite's interest when it is first hit, so a subscriber scoped to one thread while other
    // test threads hit the same callsites can miss events (that raced once in CI).
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    for id in [424_242, 13, 515_151, 616_161] {
        let _ = traced(id);
    }
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("cache load"), "{out}");
    assert!(
        out.contains("cache load not cached"),
        "the error load: {out}"
    );
    assert!(
        out.contains("cache eviction"),
        "capacity 2, three values: {out}"
    );
    assert!(
        out.contains("cache=obs.traced") && out.contains("key_hash="),
        "{out}"
    );
    assert!(
        !out.contains("424242") && !out.contains("private-value"),
        "no keys or values: {out}"
    );
}
