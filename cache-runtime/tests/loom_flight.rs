//! Model checking of the single-flight state machine with loom.
//!
//! `src/flight.rs` takes its locks from `crate::sync`; this test compiles the same file against
//! loom's `Mutex`, `Condvar`, `Arc` and threads, and loom explores every interleaving (within a
//! preemption bound) for lost wake-ups (a waiter blocked forever is reported as a deadlock),
//! double loads, and a load's result overwriting a later invalidation.

#![allow(dead_code, missing_docs)]

mod sync {
    pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub(crate) type ThreadToken = loom::thread::ThreadId;

    pub(crate) fn thread_token() -> ThreadToken {
        loom::thread::current().id()
    }
    use std::sync::PoisonError;

    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn wait<'a, T>(cond: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        cond.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }
}

#[path = "../src/flight.rs"]
mod flight;

use flight::{Failure, Flight, Flights, Join, Waited};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};

const KEY: u64 = 7;
const HASH: u64 = 0xABCD_0000_1234;

/// A stand-in for the cache: a store slot, the flights, and a count of loads.
struct Model {
    store: Mutex<Option<u64>>,
    flights: Flights<u64, u64>,
    loads: AtomicUsize,
}

impl Model {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            store: Mutex::new(None),
            flights: Flights::new(2),
            loads: AtomicUsize::new(0),
        })
    }

    fn stored(&self) -> Option<u64> {
        *self.store.lock().unwrap()
    }

    /// The cache's sync miss path; `fail_first` makes the first load give up (an error that is
    /// not shared, or a cancellation).
    fn get_or_load(&self, fail_first: bool) -> Option<u64> {
        self.get_or_load_with(if fail_first {
            First::Abandon
        } else {
            First::Load
        })
    }

    /// The cache's sync miss path, the first load ending as `first` says. A caller that meets a
    /// failure (its own, or the leader's it waited on) returns `None`.
    fn get_or_load_with(&self, first: First) -> Option<u64> {
        loop {
            if let Some(v) = self.stored() {
                return Some(v);
            }
            match self.flights.join(HASH, &KEY, true) {
                Join::Leader(leader) => {
                    if let Some(v) = self.stored() {
                        leader.complete(&v, || ());
                        return Some(v);
                    }
                    let n = self.loads.fetch_add(1, Ordering::SeqCst);
                    match first {
                        _ if n > 0 => {}
                        First::Load => {}
                        First::Abandon => {
                            drop(leader); // abandoned: an unshared error or a cancellation
                            return None;
                        }
                        First::Fail => {
                            leader.fail(Failure::Error(std::sync::Arc::new(7_u64)));
                            return None;
                        }
                        First::Panic => {
                            let mut leader = leader;
                            // The loader panics: the lead records it and, dropped, fails the flight.
                            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                leader.call(|| std::panic::resume_unwind(Box::new("loader")))
                            }));
                            assert!(r.is_err());
                            drop(leader);
                            return None;
                        }
                    }
                    leader.complete(&42, || *self.store.lock().unwrap() = Some(42));
                    return Some(42);
                }
                Join::Waiter(f, stale) => match f.wait() {
                    Waited::Value(v) if !stale => return Some(v),
                    Waited::Failed(Failure::Error(e)) if !stale => {
                        assert_eq!(e.downcast_ref::<u64>(), Some(&7));
                        return None;
                    }
                    Waited::Failed(Failure::Panicked) if !stale => {
                        assert_eq!(first, First::Panic);
                        return None;
                    }
                    Waited::Value(_) | Waited::Failed(_) => {}
                    Waited::Retry => {}
                    Waited::Reentrant => unreachable!("different threads"),
                },
            }
        }
    }

    /// The async miss path, with the waiter awaiting instead of blocking.
    fn get_or_load_async(&self) -> u64 {
        loom::future::block_on(async {
            loop {
                if let Some(v) = self.stored() {
                    return v;
                }
                match self.flights.join(HASH, &KEY, false) {
                    Join::Leader(leader) => {
                        if let Some(v) = self.stored() {
                            leader.complete(&v, || ());
                            return v;
                        }
                        self.loads.fetch_add(1, Ordering::SeqCst);
                        leader.complete(&42, || *self.store.lock().unwrap() = Some(42));
                        return 42;
                    }
                    Join::Waiter(f, stale) => match Flight::wait_async(f).await {
                        Waited::Value(v) if !stale => return v,
                        Waited::Value(_) => {}
                        Waited::Failed(_) => unreachable!("the async leader never fails"),
                        Waited::Retry | Waited::Reentrant => {}
                    },
                }
            }
        })
    }
}

/// How the first load of a key ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum First {
    /// With the value.
    Load,
    /// Abandoned: an error that is not shared, or a cancelled leader.
    Abandon,
    /// Failed with a shared error.
    Fail,
    /// The loader panicked.
    Panic,
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

#[test]
fn two_sync_callers_one_load_no_lost_wakeup() {
    model(|| {
        let m = Model::new();
        let m2 = m.clone();
        let t = loom::thread::spawn(move || m2.get_or_load(false));
        let a = m.get_or_load(false);
        let b = t.join().unwrap();
        assert_eq!((a, b), (Some(42), Some(42)));
        assert_eq!(m.loads.load(Ordering::SeqCst), 1, "double load");
        assert_eq!(m.flights.len(), 0, "flight left in the table");
    });
}

#[test]
fn three_sync_callers_one_load() {
    model(|| {
        let m = Model::new();
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                loom::thread::spawn(move || m.get_or_load(false))
            })
            .collect();
        assert_eq!(m.get_or_load(false), Some(42));
        for t in ts {
            assert_eq!(t.join().unwrap(), Some(42));
        }
        assert_eq!(m.loads.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn abandoned_leader_releases_the_waiter_which_loads_once() {
    model(|| {
        let m = Model::new();
        let m2 = m.clone();
        let t = loom::thread::spawn(move || m2.get_or_load(true));
        let a = m.get_or_load(true);
        let b = t.join().unwrap();
        // Exactly one caller met the failed load; the other loaded (or found the value).
        let got: Vec<_> = [a, b].into_iter().flatten().collect();
        // One failed load, then exactly one more, whose value the other caller gets.
        assert_eq!(m.loads.load(Ordering::SeqCst), 2);
        assert_eq!(got, vec![42]);
        assert_eq!(m.stored(), Some(42));
    });
}

#[test]
fn async_waiter_is_woken() {
    model(|| {
        let m = Model::new();
        let m2 = m.clone();
        let t = loom::thread::spawn(move || m2.get_or_load_async());
        assert_eq!(m.get_or_load_async(), 42);
        assert_eq!(t.join().unwrap(), 42);
        assert_eq!(m.loads.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn mixed_sync_leader_and_async_waiter() {
    model(|| {
        let m = Model::new();
        let m2 = m.clone();
        let t = loom::thread::spawn(move || m2.get_or_load_async());
        assert_eq!(m.get_or_load(false), Some(42));
        assert_eq!(t.join().unwrap(), 42);
        assert_eq!(m.loads.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn invalidation_during_a_load_is_not_overwritten() {
    model(|| {
        let m = Model::new();
        // The load starts first...
        let Join::Leader(leader) = m.flights.join(HASH, &KEY, true) else {
            unreachable!("nobody else is loading")
        };
        // ...then, concurrently with its completion, the key is invalidated.
        let m2 = m.clone();
        let t = loom::thread::spawn(move || {
            m2.flights.invalidate(HASH, &KEY);
            *m2.store.lock().unwrap() = None;
        });
        leader.complete(&1, || *m.store.lock().unwrap() = Some(1));
        t.join().unwrap();
        // Whatever the interleaving, the invalidation wins.
        assert_eq!(m.stored(), None);
    });
}

/// Two callers, the first load failing (`first`): whatever the interleaving, a caller that
/// waited on the failed load gets its failure and does not load; one that arrived after it
/// loads anew. So: one load and two failures, or two loads and the value once.
fn failing_first_load_is_shared(first: First) {
    model(move || {
        let m = Model::new();
        let m2 = m.clone();
        let t = loom::thread::spawn(move || m2.get_or_load_with(first));
        let a = m.get_or_load_with(first);
        let b = t.join().unwrap();
        let loads = m.loads.load(Ordering::SeqCst);
        let got: Vec<_> = [a, b].into_iter().flatten().collect();
        match loads {
            1 => assert!(got.is_empty(), "a waiter loaded after a failure: {got:?}"),
            2 => assert_eq!(got, vec![42]),
            n => panic!("{n} loads"),
        }
        assert_eq!(m.flights.len(), 0, "flight left in the table");
    });
}

#[test]
fn failed_leader_hands_its_error_to_the_waiter() {
    failing_first_load_is_shared(First::Fail);
}

#[test]
fn panicking_loader_fails_the_waiter_instead_of_releasing_it() {
    // The loader's panics are caught in the model; keep the output quiet.
    std::panic::set_hook(Box::new(|_| {}));
    failing_first_load_is_shared(First::Panic);
}
