//! The synchronisation primitives of the park/idle protocol (and the watchdog's dormancy), swapped for loom's under
//! `--cfg loom` so that the protocol can be model-checked.

#[cfg(rt_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, fence};
#[cfg(rt_loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

#[cfg(not(rt_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, fence};
#[cfg(not(rt_loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

/// Locks one of the model-checked mutexes above, ignoring poisoning: the protected data of
/// this crate stays consistent across a panic (every critical section is a few non-panicking
/// operations).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Locks a plain `std` mutex (those outside the loom model), ignoring poisoning for the same
/// reason.
pub(crate) fn lock_std<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
