//! A scheduler written outside the runtime's crates, with nothing but `runtime-core`'s public
//! API: per-worker queues, new work dealt round-robin like cards, and an idle worker taking from
//! the others. The conformance suite in `tests/` runs this very file against the same invariants
//! as the built-in schedulers.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use runtime_core::{Runnable, ScheduleInfo, ScheduleReason, Scheduler};

/// Deals runnable tasks round-robin across per-worker queues.
#[derive(Debug, Default)]
pub(crate) struct RoundRobin {
    queues: Vec<Mutex<VecDeque<Runnable>>>,
    next: AtomicUsize,
}

impl RoundRobin {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn queue(&self, i: usize) -> std::sync::MutexGuard<'_, VecDeque<Runnable>> {
        self.queues[i].lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Scheduler for RoundRobin {
    type Local = ();

    // Core tells us how many workers there are before anything is scheduled.
    fn init(&mut self, workers: usize) {
        self.queues = (0..workers).map(|_| Mutex::default()).collect();
    }

    fn schedule(&self, task: Runnable, info: ScheduleInfo, _: Option<&mut ()>) {
        let queue = match (info.reason, info.worker) {
            // A task that yields goes to the back of its own worker's queue.
            (ScheduleReason::Yield, Some(w)) => w,
            // Everything else is dealt to the next queue in turn.
            _ => self.next.fetch_add(1, Ordering::Relaxed) % self.queues.len(),
        };
        self.queue(queue).push_back(task);
    }

    // `notify` keeps its default: wake any idle worker, since every worker looks at every
    // queue. `drain` keeps its default too, because all queues live in `self`.

    fn next(&self, worker: usize, _: &mut ()) -> Option<Runnable> {
        let n = self.queues.len();
        (0..n).find_map(|k| self.queue((worker + k) % n).pop_front())
    }
}
