//! Fleet-wide single-flight when the lease holder dies: the waiters contend for a new lease
//! instead of all loading at once. Several caches on one shared `MemoryBackend` stand for the
//! processes of a fleet (tests/fleet.rs runs real processes on Redis).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use cache_runtime::Cache;
use cache_runtime::tier::MemoryBackend;

#[test]
fn waiters_contend_for_a_new_lease_when_the_holder_dies() {
    let shared = Arc::new(MemoryBackend::new());
    // 1 s: the second holder must finish its 20 ms load within its lease even on a busy machine.
    let lease = Duration::from_secs(1);
    let node = || {
        Cache::<u64, u64>::builder()
            .name("fleet-lease")
            .remote(shared.clone(), "fleet-lease")
            .distributed_lock(lease)
            .build()
            .unwrap()
    };
    let loads = Arc::new(AtomicUsize::new(0));

    // The holder takes the lease and hangs in its load, as a process killed mid-load would.
    let (release, hung) = mpsc::channel::<()>();
    let holder = {
        let (cache, loads) = (node(), Arc::clone(&loads));
        thread::spawn(move || {
            cache.get_or_insert_with(&7, || {
                loads.fetch_add(1, Ordering::SeqCst);
                let _ = hung.recv();
                0
            })
        })
    };
    let waiting = Instant::now();
    while loads.load(Ordering::SeqCst) == 0 {
        assert!(
            waiting.elapsed() < Duration::from_secs(5),
            "the holder never loaded"
        );
        thread::sleep(Duration::from_millis(1));
    }

    // Six more processes, eight callers each, on the same cold key.
    let start = Instant::now();
    let callers: Vec<_> = (0..6)
        .flat_map(|_| {
            let cache = node();
            let loads = Arc::clone(&loads);
            (0..8).map(move |_| {
                let (cache, loads) = (cache.clone(), Arc::clone(&loads));
                thread::spawn(move || {
                    cache.get_or_insert_with(&7, || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(20));
                        42
                    })
                })
            })
        })
        .collect();
    for c in callers {
        assert_eq!(c.join().unwrap(), 42);
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "the dead holder's load and one more, fleet-wide"
    );
    assert!(
        start.elapsed() < lease * 4,
        "every caller answered within a few leases: {:?}",
        start.elapsed()
    );
    release.send(()).unwrap();
    holder.join().unwrap();
}
