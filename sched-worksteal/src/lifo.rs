//! The LIFO slot: one task, owned by its worker but stealable.
//!
//! The owner puts the task most recently woken by the running task here and runs it next
//! (message-passing locality). Another worker may take it on its last stealing pass, so a task
//! in the slot is not stranded behind a worker stuck in a long poll.
//!
//! # Ground rules
//!
//! - The slot holds either null or a pointer obtained from `Runnable::into_raw`.
//! - Every transfer in or out is one atomic `swap`: whoever swaps a pointer out owns it and
//!   turns it back into a `Runnable` exactly once. No pointer is ever read without being
//!   swapped out, so there is no ABA and no double ownership.

use std::ptr::{NonNull, null_mut};

use runtime_core::Runnable;

#[cfg(rt_loom)]
use loom::sync::atomic::{AtomicPtr, Ordering};
#[cfg(not(rt_loom))]
use std::sync::atomic::{AtomicPtr, Ordering};

pub(crate) struct LifoSlot(AtomicPtr<()>);

impl LifoSlot {
    pub(crate) fn new() -> LifoSlot {
        LifoSlot(AtomicPtr::new(null_mut()))
    }

    /// Puts `task` in the slot; returns the task it displaced.
    pub(crate) fn put(&self, task: Runnable) -> Option<Runnable> {
        let old = self.0.swap(task.into_raw().as_ptr(), Ordering::AcqRel);
        Self::own(old)
    }

    /// Takes the task out of the slot, if there is one.
    pub(crate) fn take(&self) -> Option<Runnable> {
        if self.0.load(Ordering::Relaxed).is_null() {
            return None;
        }
        Self::own(self.0.swap(null_mut(), Ordering::AcqRel))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.load(Ordering::Relaxed).is_null()
    }

    fn own(ptr: *mut ()) -> Option<Runnable> {
        // SAFETY: by the ground rules, a non-null pointer in the slot came from
        // `Runnable::into_raw`, and the `swap` that returned it made us its only owner.
        NonNull::new(ptr).map(|p| unsafe { Runnable::from_raw(p) })
    }
}

impl Drop for LifoSlot {
    fn drop(&mut self) {
        drop(self.take());
    }
}

#[cfg(all(test, not(rt_loom)))]
mod tests {
    use super::*;
    fn task() -> (Runnable, runtime_core::JoinHandle<()>) {
        runtime_core::pool_task(async {}, |_| {}, None)
    }

    #[test]
    fn put_take_and_displace() {
        let slot = LifoSlot::new();
        assert!(slot.take().is_none());
        let (a, _ta) = task();
        let (b, _tb) = task();
        let a_id = a.metadata().id();
        assert!(slot.put(a).is_none());
        let displaced = slot.put(b).expect("a was displaced");
        assert_eq!(displaced.metadata().id(), a_id);
        assert!(slot.take().is_some());
        assert!(slot.is_empty());
    }

    #[test]
    fn dropping_the_slot_drops_its_task() {
        let slot = LifoSlot::new();
        let (a, t) = task();
        slot.put(a);
        drop(slot);
        // The runnable was dropped: the task is cancelled.
        assert!(futures_lite::future::block_on(t).is_err_and(|e| e.is_cancelled()));
    }
}

#[cfg(all(test, rt_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    /// The owner puts two tasks and takes; a thief takes concurrently. Every task comes out
    /// exactly once (a double take would be a double free, a lost one a leak, both of which
    /// the final count catches).
    #[test]
    fn each_task_taken_once() {
        loom::model(|| {
            let slot = Arc::new(LifoSlot::new());
            let (a, _ta) = runtime_core::pool_task(async {}, |_| {}, None);
            let (b, _tb) = runtime_core::pool_task(async {}, |_| {}, None);
            let thief = {
                let slot = slot.clone();
                loom::thread::spawn(move || slot.take().map(|r| r.metadata().id()))
            };
            let mut out = Vec::new();
            out.extend(slot.put(a).map(|r| r.metadata().id()));
            out.extend(slot.put(b).map(|r| r.metadata().id()));
            out.extend(slot.take().map(|r| r.metadata().id()));
            out.extend(thief.join().unwrap());
            assert_eq!(out.len(), 2, "two tasks in, two out");
            out.sort();
            out.dedup();
            assert_eq!(out.len(), 2, "each task exactly once");
        });
    }
}
