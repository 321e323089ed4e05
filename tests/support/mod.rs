//! What the Redis fault tests share: `redis-server` processes of their own on free ports, from
//! `cache-test-support` (stopped when dropped, or when the test binary exits).

pub use cache_test_support::{Server, free_port};

/// Starts `redis-server` on 127.0.0.1:`port` (nothing saved, `DEBUG` enabled) and waits until it
/// answers; `None` if it cannot be started.
pub fn start_server(port: u16) -> Option<Server> {
    Server::redis(port, &[]).ok()
}
