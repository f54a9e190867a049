//! The FIFO scheduling policy: one shared queue served by every worker.
//!
//! # Ordering guarantee
//!
//! Tasks leave the shared queue in the order in which they entered it: the order of the
//! `schedule` calls, as linearised by the queue. With one worker, tasks therefore *run* in
//! exactly the order they became runnable (see below).
//!
//! With `N` workers, a worker takes tasks from the front of the queue in a small batch (at most
//! [`MAX_BATCH`], and no more than its share of what is queued) and runs them in that order,
//! so one lock is taken per batch, not per task. A task therefore starts after at most
//! `MAX_BATCH * (N - 1)` tasks that entered the queue after it, and `N` tasks run at a time, so
//! a later task can finish before an earlier one. A task scheduled on a worker (woken, spawned
//! or yielding there) is kept aside and enters the queue at that worker's next batch (at most
//! `MAX_BATCH` picks later, in the order it was scheduled), behind everything queued by then,
//! so a yielding loop cannot starve the others; a task scheduled from outside the workers
//! enters the queue at once. When [`MAX_PENDING`] tasks are kept aside, they enter the queue
//! at once, in order, with the next one.
//!
//! The bound is what FIFO promises: a runnable task waits for at most the tasks queued before
//! it plus one batch per other worker, whatever the load. A worker with nothing to do takes
//! the tasks another worker has taken but not started (its batch and its pending tasks, oldest
//! first), so no task waits behind a worker stuck in a long poll.
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

mod pending;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crossbeam_deque::{Steal, Stealer, Worker};
use pending::Pending;
use runtime_core::{
    MetricsVisitor, Notify, Runnable, ScheduleInfo, ScheduleReason, Scheduler,
    lock_unpoisoned as lock, shrink_drained,
};

/// The most tasks a worker takes from the shared queue at once.
pub const MAX_BATCH: usize = 16;

/// The most tasks a worker keeps aside (scheduled on it, to enter the shared queue at its next
/// batch); with one more, they all enter the queue at once, in order.
pub const MAX_PENDING: usize = pending::CAPACITY;

/// One shared first-in, first-out queue. See the [crate docs](crate) for the ordering guarantee.
#[derive(Debug)]
pub struct Fifo {
    queue: Mutex<VecDeque<Runnable>>,
    /// `queue`'s length, updated under its lock (read without it, to skip the lock when there
    /// is nothing).
    len: AtomicUsize,
    /// Whether the runtime has a single worker (then it keeps a private deque, see the crate
    /// docs).
    single: bool,
    /// What the other workers can take of each worker's batch and pending tasks.
    workers: Box<[WorkerShared]>,
}

#[derive(Debug, Default)]
struct WorkerShared {
    batch: OnceLock<Stealer<Runnable>>,
    pending: OnceLock<Arc<Pending>>,
}

/// A worker's state.
#[derive(Debug)]
pub struct Local {
    index: usize,
    /// One worker: its private deque of everything (see the crate docs). Several: unused.
    deque: VecDeque<Runnable>,
    /// Tasks taken from the shared queue, in its order, not started yet.
    batch: Worker<Runnable>,
    /// Tasks scheduled on this worker (woken, spawned or yielding here), to enter the shared
    /// queue at the next batch.
    pending: Owned,
}

/// A worker's own end of its [`Pending`] ring: only the worker holding its `Local` pushes and
/// takes all (the ring's single owner), which `&mut Local` and `!Sync` ensure.
#[derive(Debug)]
struct Owned(Arc<Pending>, std::marker::PhantomData<std::cell::Cell<()>>);

impl Owned {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn push(&self, task: Runnable) -> Result<(), Runnable> {
        // SAFETY: `Owned` is the ring's one owner (made once per worker, not `Clone`, not
        // `Sync`).
        unsafe { self.0.push(task) }
    }

    fn take_all(&self, out: impl FnMut(Runnable)) {
        // SAFETY: as in `push`.
        unsafe { self.0.take_all(out) }
    }
}

impl Fifo {
    /// A FIFO scheduler with an empty queue.
    pub fn new() -> Fifo {
        Fifo {
            queue: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
            single: false,
            workers: Box::new([]),
        }
    }

    /// Pushes `task` at the back of the shared queue, behind the pending tasks of `l`'s worker
    /// if given (which move there first, in order).
    fn push_shared(&self, task: Runnable, l: Option<&Local>) {
        let mut q = self.lock_with_pending(l);
        q.push_back(task);
        self.len.store(q.len(), Ordering::Release);
    }

    /// Locks the shared queue and moves the pending tasks of `l`'s worker, if given, to its
    /// back.
    fn lock_with_pending(&self, l: Option<&Local>) -> MutexGuard<'_, VecDeque<Runnable>> {
        let mut q = lock(&self.queue);
        if let Some(l) = l {
            l.pending.take_all(|t| q.push_back(t));
        }
        q
    }

    /// Moves everything in the shared inbox to the back of the worker's deque.
    #[inline]
    fn take_inbox(&self, local: &mut VecDeque<Runnable>) {
        if self.len.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut q = lock(&self.queue);
        local.extend(q.drain(..));
        shrink_drained(&mut q);
        self.len.store(0, Ordering::Release);
    }

    /// Several workers: puts this worker's pending tasks at the back of the shared queue and
    /// takes a batch from its front; returns the first task of the batch.
    fn refill(&self, l: &Local) -> Option<Runnable> {
        if l.pending.is_empty() && self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut q = self.lock_with_pending(Some(l));
        let share = q.len().div_ceil(self.workers.len().max(1)).min(MAX_BATCH);
        let first = q.pop_front();
        for _ in 1..share {
            match q.pop_front() {
                Some(t) => l.batch.push(t),
                None => break,
            }
        }
        self.len.store(q.len(), Ordering::Release);
        shrink_drained(&mut q);
        first
    }

    /// Takes what another worker has taken but not started (an idle worker: nothing queued):
    /// its batch, then its pending tasks, oldest first.
    fn steal(&self, l: &Local) -> Option<Runnable> {
        let n = self.workers.len();
        for k in 1..n {
            let w = &self.workers[(l.index + k) % n];
            if let Some(s) = w.batch.get() {
                loop {
                    match s.steal_batch_and_pop(&l.batch) {
                        Steal::Success(t) => return Some(t),
                        Steal::Empty => break,
                        Steal::Retry => std::hint::spin_loop(),
                    }
                }
            }
            if let Some(t) = w.pending.get().and_then(|p| p.steal(|t| l.batch.push(t))) {
                return Some(t);
            }
        }
        None
    }
}

impl Default for Fifo {
    fn default() -> Self {
        Fifo::new()
    }
}

impl Scheduler for Fifo {
    type Local = Local;

    fn name(&self) -> &str {
        "fifo"
    }

    fn init(&mut self, workers: usize) {
        self.single = workers == 1;
        self.workers = (0..workers.max(1))
            .map(|_| WorkerShared::default())
            .collect();
    }

    fn new_local(&self, worker: usize) -> Local {
        let (batch, pending) = (Worker::new_fifo(), Arc::new(Pending::new()));
        let shared = &self.workers[worker];
        if shared.batch.set(batch.stealer()).is_err()
            || shared.pending.set(pending.clone()).is_err()
        {
            panic!("core creates worker {worker}'s state once");
        }
        Local {
            index: worker,
            deque: VecDeque::new(),
            batch,
            pending: Owned(pending, std::marker::PhantomData),
        }
    }

    #[inline]
    fn schedule(&self, task: Runnable, info: ScheduleInfo, local: Option<&mut Local>) -> Notify {
        match local {
            Some(l) if self.single => {
                // The only worker is the caller: awake, and it looks here next.
                self.take_inbox(&mut l.deque);
                l.deque.push_back(task);
                Notify::None
            }
            Some(l) => {
                // Kept aside: it enters the queue at this worker's next batch (one lock for
                // all of them), and an idle worker woken for it takes it from here.
                if let Err(task) = l.pending.push(task) {
                    // Full: everything kept aside enters the queue now, in order.
                    self.push_shared(task, Some(l));
                }
                // A yield wakes nobody: this worker is awake and comes back to it.
                if info.reason == ScheduleReason::Yield {
                    Notify::None
                } else {
                    Notify::Any
                }
            }
            _ => {
                self.push_shared(task, None);
                Notify::Any
            }
        }
    }

    #[inline]
    fn next(&self, _worker: usize, l: &mut Local) -> Option<Runnable> {
        if self.single {
            self.take_inbox(&mut l.deque);
            let task = l.deque.pop_front();
            // The last task of a burst: give back what it grew the deque to.
            shrink_drained(&mut l.deque);
            return task;
        }
        l.batch
            .pop()
            .or_else(|| self.refill(l))
            .or_else(|| self.steal(l))
    }

    fn metrics(&self, worker: Option<usize>, out: &mut dyn MetricsVisitor) {
        // Queue depth now (a gauge): the shared queue for the runtime as a whole, and the
        // stealable batches and pending tasks of the workers (the single-worker mode's private
        // deque is not visible from other threads).
        let pick: &[WorkerShared] = match worker {
            Some(i) => self.workers.get(i..=i).unwrap_or(&[]),
            None => &self.workers,
        };
        let mut queued: usize = pick
            .iter()
            .map(|w| w.batch.get().map_or(0, Stealer::len) + w.pending.get().map_or(0, |p| p.len()))
            .sum();
        if worker.is_none() {
            queued += self.len.load(Ordering::Acquire);
        }
        out.counter("queued", queued as u64);
    }

    fn drain(&self, _worker: usize, l: &mut Local) -> Option<Runnable> {
        let Local { deque, pending, .. } = l;
        pending.take_all(|t| deque.push_back(t));
        l.batch.pop().or_else(|| l.deque.pop_front()).or_else(|| {
            let mut q = lock(&self.queue);
            let t = q.pop_front();
            self.len.store(q.len(), Ordering::Release);
            t
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_core::{JoinHandle, ScheduleReason};

    fn task() -> (Runnable, JoinHandle<()>) {
        runtime_core::pool_task(async {}, |_| {}, None)
    }

    /// With one worker, a task from the inbox precedes a task the worker schedules later, and
    /// the worker's own tasks keep their order.
    #[test]
    fn single_worker_keeps_the_order_across_inbox_and_deque() {
        let mut f = Fifo::new();
        f.init(1);
        let mut local = f.new_local(0);
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

    /// A burst grows the queues; once it has drained they give the memory back (without
    /// this, a run queue that once held the burst keeps 8 bytes per task of it for good).
    #[test]
    #[cfg_attr(miri, ignore = "a quarter of a million tasks: too slow under Miri")]
    fn queues_drained_after_a_burst_shrink() {
        let n = runtime_core::RETAINED_QUEUE_CAPACITY + 1;
        let foreign = ScheduleInfo::new(ScheduleReason::Wake, None);
        for workers in [1, 2] {
            let mut f = Fifo::new();
            f.init(workers);
            let mut local = f.new_local(0);
            let on_worker = ScheduleInfo::new(ScheduleReason::Wake, Some(0));
            let (tasks, _handles): (Vec<_>, Vec<_>) = (0..2 * n).map(|_| task()).unzip();
            let mut tasks = tasks.into_iter();
            // Half from outside (the shared queue, or one worker's inbox), half on the worker
            // (its deque, or its pending tasks and then the shared queue).
            for t in tasks.by_ref().take(n) {
                f.schedule(t, foreign, None);
            }
            for t in tasks {
                f.schedule(t, on_worker, Some(&mut local));
            }
            let mut ran = 0;
            while f.next(0, &mut local).is_some() {
                ran += 1;
            }
            assert_eq!(ran, 2 * n, "{workers} workers");
            let shared = lock(&f.queue).capacity();
            assert!(shared <= runtime_core::RETAINED_QUEUE_CAPACITY, "{shared}");
            let own = local.deque.capacity();
            assert!(own <= runtime_core::RETAINED_QUEUE_CAPACITY, "{own}");
        }
    }

    /// Several workers: an idle worker takes the oldest of another's pending tasks; a worker
    /// with more than `MAX_PENDING` pending tasks puts them all in the queue, in order.
    #[test]
    fn pending_tasks_are_stolen_oldest_first_and_overflow_in_order() {
        let mut f = Fifo::new();
        f.init(2);
        let (mut w0, mut w1) = (f.new_local(0), f.new_local(1));
        let on_w0 = ScheduleInfo::new(ScheduleReason::Wake, Some(0));
        let (tasks, _handles): (Vec<_>, Vec<_>) = (0..3).map(|_| task()).unzip();
        let ids: Vec<_> = tasks.iter().map(|t| t.metadata().id()).collect();
        for t in tasks {
            assert_eq!(f.schedule(t, on_w0, Some(&mut w0)), Notify::Any);
        }
        // Worker 1 has nothing queued: it takes half of worker 0's pending tasks, oldest first.
        // (One steal takes two of the three: the second comes from worker 1's own batch.)
        let next = |w: usize, l: &mut Local| f.next(w, l).map(|t| t.metadata().id());
        assert_eq!(
            [next(1, &mut w1), next(1, &mut w1)],
            [Some(ids[0]), Some(ids[1])]
        );
        assert_eq!(next(0, &mut w0), Some(ids[2]));
        assert_eq!(next(0, &mut w0), None);

        let n = MAX_PENDING + 50;
        let (tasks, _handles): (Vec<_>, Vec<_>) = (0..n).map(|_| task()).unzip();
        let ids: Vec<_> = tasks.iter().map(|t| t.metadata().id()).collect();
        for t in tasks {
            f.schedule(t, on_w0, Some(&mut w0));
        }
        // The first `MAX_PENDING + 1` entered the queue together; the rest follow them.
        assert_eq!(f.len.load(Ordering::Acquire), MAX_PENDING + 1);
        let out: Vec<_> = std::iter::from_fn(|| f.next(0, &mut w0))
            .map(|t| t.metadata().id())
            .collect();
        assert_eq!(out, ids);
    }
}
