//! The per-worker run queue, in the two implementations that were measured against each other:
//! `crossbeam-deque` (the default; rayon-core's queue) and a bounded `concurrent-queue`.
//! Which one a runtime uses is a setting ([`QueueKind`]); the benchmark harness runs both.

use std::sync::Arc;

use concurrent_queue::ConcurrentQueue;
use crossbeam_deque::{Steal, Stealer as DequeStealer, Worker as DequeWorker};
use runtime_core::Runnable;

/// Which structure backs the local run queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueKind {
    /// `crossbeam-deque`'s Chase-Lev deque in FIFO mode: the owner pushes and pops without a
    /// read-modify-write on the fast path; thieves take half in one operation.
    #[default]
    Deque,
    /// `concurrent-queue`'s bounded MPMC queue: every push and pop is a CAS; thieves pop one task
    /// at a time.
    Concurrent,
}

/// Most tasks a thief takes in one steal (crossbeam's own cap).
const MAX_STEAL: usize = 32;

/// The owner's end of a local queue.
pub(crate) enum LocalQueue {
    Deque(DequeWorker<Runnable>),
    Concurrent(Arc<ConcurrentQueue<Runnable>>),
}

/// The thieves' end of a local queue.
pub(crate) enum Stealer {
    Deque(DequeStealer<Runnable>),
    Concurrent(Arc<ConcurrentQueue<Runnable>>),
}

impl LocalQueue {
    pub(crate) fn new(kind: QueueKind, capacity: usize) -> (LocalQueue, Stealer) {
        match kind {
            QueueKind::Deque => {
                let w = DequeWorker::new_fifo();
                let s = w.stealer();
                (LocalQueue::Deque(w), Stealer::Deque(s))
            }
            QueueKind::Concurrent => {
                let q = Arc::new(ConcurrentQueue::bounded(capacity));
                (LocalQueue::Concurrent(q.clone()), Stealer::Concurrent(q))
            }
        }
    }

    /// Pushes at the back; gives the task back if the queue is full.
    #[inline]
    pub(crate) fn push(&self, task: Runnable, capacity: usize) -> Result<(), Runnable> {
        match self {
            LocalQueue::Deque(w) => {
                if w.len() >= capacity {
                    return Err(task);
                }
                w.push(task);
                Ok(())
            }
            LocalQueue::Concurrent(q) => q.push(task).map_err(|e| e.into_inner()),
        }
    }

    /// Pops from the front (the oldest task).
    #[inline]
    pub(crate) fn pop(&self) -> Option<Runnable> {
        match self {
            LocalQueue::Deque(w) => w.pop(),
            LocalQueue::Concurrent(q) => q.pop().ok(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            LocalQueue::Deque(w) => w.len(),
            LocalQueue::Concurrent(q) => q.len(),
        }
    }
}

impl Stealer {
    /// Moves about half of the victim's tasks (at most [`MAX_STEAL`]) into `dest` and returns
    /// one of them to run. A task that does not fit in `dest` goes to `overflow`.
    pub(crate) fn steal_into(
        &self,
        dest: &LocalQueue,
        capacity: usize,
        overflow: impl Fn(Runnable),
    ) -> Option<Runnable> {
        match (self, dest) {
            (Stealer::Deque(s), LocalQueue::Deque(d)) => loop {
                match s.steal_batch_with_limit_and_pop(d, MAX_STEAL) {
                    Steal::Success(t) => return Some(t),
                    Steal::Empty => return None,
                    Steal::Retry => std::hint::spin_loop(),
                }
            },
            (Stealer::Concurrent(victim), dest) => {
                let first = victim.pop().ok()?;
                let room = capacity.saturating_sub(dest.len());
                let more = (victim.len() / 2).min(MAX_STEAL - 1).min(room);
                for _ in 0..more {
                    let Ok(t) = victim.pop() else { break };
                    if let Err(t) = dest.push(t, capacity) {
                        overflow(t);
                    }
                }
                Some(first)
            }
            (Stealer::Deque(s), LocalQueue::Concurrent(_)) => s.steal().success(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Stealer::Deque(s) => s.is_empty(),
            Stealer::Concurrent(q) => q.is_empty(),
        }
    }
}
