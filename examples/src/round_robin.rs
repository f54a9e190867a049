//! A scheduler written outside the runtime's crates, with nothing but `facade::scheduler`:
//! per-worker queues, new work dealt round-robin like cards, and an idle worker taking from the
//! others. The conformance kit runs it against the same invariants as the built-in policies.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use facade::scheduler::{Notify, Runnable, ScheduleInfo, ScheduleReason, Scheduler};

/// Deals runnable tasks round-robin across per-worker queues.
#[derive(Debug, Default)]
pub struct RoundRobin {
    queues: Vec<Mutex<VecDeque<Runnable>>>,
    next: AtomicUsize,
}

impl RoundRobin {
    /// The policy; its queues are made when the runtime says how many workers it has.
    pub fn new() -> Self {
        Self::default()
    }

    fn queue(&self, i: usize) -> MutexGuard<'_, VecDeque<Runnable>> {
        // A push or pop cannot leave a queue inconsistent: poisoning is ignored.
        self.queues[i].lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Scheduler for RoundRobin {
    type Local = ();

    fn name(&self) -> &str {
        "round-robin"
    }

    // Core tells us how many workers there are before anything is scheduled.
    fn init(&mut self, workers: usize) {
        self.queues = (0..workers).map(|_| Mutex::default()).collect();
    }

    // No per-worker state: everything lives in `self`.
    fn new_local(&self, _worker: usize) {}

    fn schedule(&self, task: Runnable, info: ScheduleInfo, _: Option<&mut ()>) -> Notify {
        let queue = match (info.reason, info.worker) {
            // A task that yields goes to the back of its own worker's queue.
            (ScheduleReason::Yield, Some(w)) => w,
            // Everything else is dealt to the next queue in turn.
            _ => self.next.fetch_add(1, Ordering::Relaxed) % self.queues.len(),
        };
        self.queue(queue).push_back(task);
        // Every worker looks at every queue, so any idle worker will do.
        Notify::Any
    }

    // `drain` keeps its default (`next`), which looks at every queue.
    fn next(&self, worker: usize, _: &mut ()) -> Option<Runnable> {
        let n = self.queues.len();
        (0..n).find_map(|k| self.queue((worker + k) % n).pop_front())
    }
}
