//! The synchronisation primitives of the park/idle protocol (and the watchdog's dormancy), swapped for loom's under
//! `--cfg loom` so that the protocol can be model-checked.

#[cfg(rt_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, fence};
#[cfg(rt_loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

#[cfg(not(rt_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, fence};
#[cfg(not(rt_loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

/// Locks one of the model-checked mutexes above, ignoring poisoning: the protected data of
/// this crate stays consistent across a panic (every critical section is a few non-panicking
/// operations).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Locks a `std` mutex, ignoring poisoning: for data that stays consistent across a panic in a
/// critical section (each user says why at the lock it guards). The one helper of the
/// workspace's crates for this.
pub fn lock_unpoisoned<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An `UnsafeCell` that loom checks for racing accesses (under `--cfg rt_loom`), for the
/// nursery's table (nursery.rs); a plain `UnsafeCell` otherwise.
pub(crate) struct RacyCell<T>(
    #[cfg(rt_loom)] loom::cell::UnsafeCell<T>,
    #[cfg(not(rt_loom))] std::cell::UnsafeCell<T>,
);

impl<T> RacyCell<T> {
    pub(crate) fn new(value: T) -> RacyCell<T> {
        #[cfg(rt_loom)]
        return RacyCell(loom::cell::UnsafeCell::new(value));
        #[cfg(not(rt_loom))]
        RacyCell(std::cell::UnsafeCell::new(value))
    }

    /// Calls `f` with a pointer to read the value through.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(rt_loom)]
        return self.0.with(f);
        #[cfg(not(rt_loom))]
        f(self.0.get())
    }

    /// Calls `f` with a pointer to write the value through.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(rt_loom)]
        return self.0.with_mut(f);
        #[cfg(not(rt_loom))]
        f(self.0.get())
    }
}
