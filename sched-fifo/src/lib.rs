//! The FIFO scheduling policy: one shared queue served by every worker.
//!
//! # Ordering guarantee
//!
//! Tasks are handed out in the order in which they became runnable: the order of the
//! `schedule` calls, as linearised by the queue. With one worker, tasks therefore *run* in
//! exactly that order. With `N` workers, tasks *start* in that order, but `N` of them run at a
//! time, so a later task can finish before an earlier one. A task that yields goes to the back,
//! behind everything already queued, so a yielding loop cannot starve the others.
//!
//! FIFO is simple, fair, and has predictable latency: a runnable task waits for at most the
//! tasks queued before it. Its cost is that every schedule and every pick goes through one shared
//! queue, which becomes a point of contention with many workers; work-stealing avoids it.
//!
//! # One worker
//!
//! With a single worker (current-thread mode, or `worker_threads(1)`), tasks scheduled on the
//! worker itself go to a plain `VecDeque` that only the worker touches, and the shared queue
//! becomes an inbox for the other threads. The inbox is moved to the back of the deque before
//! every push to the deque and before every pick, so a task from the inbox always precedes a
//! task scheduled after it: the order above holds exactly, with no atomic operation on the
//! worker's own schedules.
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

use std::collections::VecDeque;

use concurrent_queue::ConcurrentQueue;
use runtime_core::{Notify, Runnable, ScheduleInfo, Scheduler};

/// One shared first-in, first-out queue. See the [crate docs](crate) for the ordering guarantee.
#[derive(Debug)]
pub struct Fifo {
    queue: ConcurrentQueue<Runnable>,
    /// Whether the runtime has a single worker (then it keeps a private deque, see the crate
    /// docs).
    single: bool,
}

impl Fifo {
    /// A FIFO scheduler with an empty queue.
    pub fn new() -> Fifo {
        Fifo {
            queue: ConcurrentQueue::unbounded(),
            single: false,
        }
    }

    fn push_shared(&self, task: Runnable) {
        // An unbounded queue that is never closed accepts every push.
        if let Err(e) = self.queue.push(task) {
            unreachable!("the FIFO queue is never closed: {e}");
        }
    }

    /// Moves everything in the shared inbox to the back of the worker's deque.
    #[inline]
    fn take_inbox(&self, local: &mut VecDeque<Runnable>) {
        while !self.queue.is_empty() {
            match self.queue.pop() {
                Ok(t) => local.push_back(t),
                Err(_) => break,
            }
        }
    }
}

impl Default for Fifo {
    fn default() -> Self {
        Fifo::new()
    }
}

impl Scheduler for Fifo {
    /// The single worker's private deque (unused with several workers).
    type Local = VecDeque<Runnable>;

    fn name(&self) -> &str {
        "fifo"
    }

    fn init(&mut self, workers: usize) {
        self.single = workers == 1;
    }

    fn new_local(&self, _worker: usize) -> Self::Local {
        VecDeque::new()
    }

    #[inline]
    fn schedule(
        &self,
        task: Runnable,
        _info: ScheduleInfo,
        local: Option<&mut Self::Local>,
    ) -> Notify {
        match local {
            Some(local) if self.single => {
                // The only worker is the caller: awake, and it looks here next.
                self.take_inbox(local);
                local.push_back(task);
                Notify::None
            }
            _ => {
                self.push_shared(task);
                Notify::Any
            }
        }
    }

    #[inline]
    fn next(&self, _worker: usize, local: &mut Self::Local) -> Option<Runnable> {
        if self.single {
            self.take_inbox(local);
            local.pop_front()
        } else {
            self.queue.pop().ok()
        }
    }

    fn drain(&self, _worker: usize, local: &mut Self::Local) -> Option<Runnable> {
        local.pop_front().or_else(|| self.queue.pop().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_core::{ScheduleReason, TaskMeta, async_task};

    fn task() -> (Runnable, async_task::Task<(), TaskMeta>) {
        async_task::Builder::new()
            .metadata(TaskMeta::default())
            .spawn(|_| async {}, |_| {})
    }

    /// With one worker, a task from the inbox precedes a task the worker schedules later, and
    /// the worker's own tasks keep their order.
    #[test]
    fn single_worker_keeps_the_order_across_inbox_and_deque() {
        let mut f = Fifo::new();
        f.init(1);
        let mut local = VecDeque::new();
        let (tasks, _handles): (Vec<_>, Vec<_>) = (0..4).map(|_| task()).unzip();
        let ids: Vec<_> = tasks.iter().map(|t| t.metadata().id()).collect();
        let mut tasks = tasks.into_iter();
        let on_worker = ScheduleInfo::new(ScheduleReason::Wake, Some(0));
        let foreign = ScheduleInfo::new(ScheduleReason::Wake, None);
        assert_eq!(
            f.schedule(tasks.next().unwrap(), on_worker, Some(&mut local)),
            Notify::None
        );
        assert_eq!(
            f.schedule(tasks.next().unwrap(), foreign, None),
            Notify::Any
        );
        f.schedule(tasks.next().unwrap(), on_worker, Some(&mut local));
        f.schedule(tasks.next().unwrap(), foreign, None);
        let out: Vec<_> = std::iter::from_fn(|| f.next(0, &mut local))
            .map(|t| t.metadata().id())
            .collect();
        assert_eq!(out, ids);
    }
}
