//! Synchronization primitives of the single-flight table.
//!
//! `flight.rs` reaches its locks only through this module, so the model-checking test
//! (`tests/loom_flight.rs`) compiles the very same file against loom's versions instead.
//!
//! Locks never poison here: every critical section of ours leaves its data consistent even when a
//! user's `Hash`, `Eq` or `Clone` panics inside it, so [`lock`] and [`wait`] take the guard back.

pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Identifies the calling thread cheaply (no `Arc` clone, unlike `thread::current()`).
pub(crate) type ThreadToken = usize;

/// The address of a thread-local: unique among live threads.
#[inline]
pub(crate) fn thread_token() -> ThreadToken {
    thread_local! {
        static TOKEN: u8 = const { 0 };
    }
    TOKEN.with(|t| std::ptr::from_ref(t) as usize)
}

use std::sync::PoisonError;

/// Locks `m`, ignoring poison.
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `cond`, ignoring poison.
#[inline]
pub(crate) fn wait<'a, T>(cond: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cond.wait(guard).unwrap_or_else(PoisonError::into_inner)
}
