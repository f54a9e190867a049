//! The FIFO scheduling policy: one shared queue served by every worker.
//!
//! # Ordering guarantee
//!
//! Tasks are handed out in the order in which they became runnable: the order of the
//! `schedule` calls, as linearised by the queue (`concurrent-queue`'s unbounded queue is
//! linearisable). With one worker, tasks therefore *run* in exactly that order. With `N`
//! workers, tasks *start* in that order, but `N` of them run at a time, so a later task can
//! finish before an earlier one. A task that yields goes to the back, behind everything already
//! queued, so a yielding loop cannot starve the others.
//!
//! FIFO is simple, fair, and has predictable latency: a runnable task waits for at most the
//! tasks queued before it. Its cost is that every schedule and every pick goes through one shared
//! queue, which becomes a point of contention with many workers; work-stealing avoids it.
//!
//! ```
//! use runtime_core::{Config, Runtime};
//! use sched_fifo::Fifo;
//!
//! let rt = Runtime::new(Fifo::new(), Config { worker_threads: 0, ..Config::default() })?;
//! let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
//! rt.block_on(async {
//!     let handles: Vec<_> = (0..3)
//!         .map(|i| {
//!             let order = order.clone();
//!             rt.spawn(async move { order.lock().unwrap().push(i) })
//!         })
//!         .collect();
//!     for h in handles {
//!         h.await.unwrap();
//!     }
//! });
//! // One worker: tasks ran in the order they were spawned.
//! assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
//! # Ok::<(), std::io::Error>(())
//! ```

use concurrent_queue::ConcurrentQueue;
use runtime_core::{Runnable, ScheduleInfo, Scheduler};

/// One shared first-in, first-out queue. See the [crate docs](crate) for the ordering guarantee.
#[derive(Debug)]
pub struct Fifo {
    queue: ConcurrentQueue<Runnable>,
}

impl Fifo {
    /// A FIFO scheduler with an empty queue.
    pub fn new() -> Fifo {
        Fifo {
            queue: ConcurrentQueue::unbounded(),
        }
    }

    /// Tasks queued right now.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no task is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

impl Default for Fifo {
    fn default() -> Self {
        Fifo::new()
    }
}

impl Scheduler for Fifo {
    type Local = ();

    #[inline]
    fn schedule(&self, task: Runnable, _info: ScheduleInfo, _local: Option<&mut ()>) {
        // An unbounded queue that is never closed accepts every push.
        if let Err(e) = self.queue.push(task) {
            unreachable!("the FIFO queue is never closed: {e}");
        }
    }

    #[inline]
    fn next(&self, _worker: usize, _local: &mut ()) -> Option<Runnable> {
        self.queue.pop().ok()
    }
}
