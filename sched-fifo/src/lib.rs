//! The FIFO scheduling policy: first in, first out, with bounded waiting.
//!
//! Tasks scheduled from outside the workers (spawned or woken by another thread, or by the
//! driver) enter one shared queue. With one worker, that queue and the worker's own tasks form
//! one order: tasks run in exactly the order they became runnable (see [One
//! worker](#one-worker)). With several workers, [`FifoOrder`] chooses how the tasks that the
//! workers schedule themselves (woken, spawned or yielding on a worker) are ordered.
//!
//! # Per-worker order (the default)
//!
//! A task scheduled on a worker stays on that worker: it enters the back of the worker's own
//! queue (at most [`MAX_PENDING`] tasks). A worker takes turns between its own queue and the
//! shared queue, one batch from each (at most [`MAX_BATCH`] tasks, and from the shared queue
//! no more than its share of what is queued there), and runs each batch in order.
//!
//! - **Order.** The shared queue is first in, first out. Tasks scheduled on one worker start
//!   in the order they were scheduled there. Two exceptions keep work moving, and both keep
//!   each group's order: an idle worker takes the oldest half of a busy worker's queue, and a
//!   full queue moves all of its tasks, in order, to the back of the shared queue. Tasks
//!   scheduled on different workers, or on a worker and from outside, have no order between
//!   them.
//! - **Bounded waiting.** A worker comes back to each of its two queues at least every second
//!   batch. So a task in a worker's queue starts after at most the tasks ahead of it there,
//!   plus one batch from the shared queue for each `MAX_BATCH` of them; and a task in the
//!   shared queue starts after at most the tasks queued before it, plus one batch of a worker's
//!   own queue for each batch that worker took from the shared queue before it. A yielding
//!   task goes to the back of its worker's queue, so a yielding loop cannot starve the others.
//!
//! This is the order that keeps a task's memory on one core: a task woken on a worker runs
//! there next, behind what that worker already has, instead of passing through the shared
//! queue to whichever worker asks first.
//!
//! # Global order
//!
//! With [`FifoOrder::Global`], the workers' own tasks enter the shared queue too, and tasks
//! leave it in the order in which they entered it: the order of the `schedule` calls, as
//! linearised by the queue.
//!
//! A worker takes tasks from the front of the queue in a small batch (at most [`MAX_BATCH`],
//! and no more than its share of what is queued) and runs them in that order, so one lock is
//! taken per batch, not per task. A task therefore starts after at most
//! `MAX_BATCH * (N - 1)` tasks that entered the queue after it, and `N` tasks run at a time, so
//! a later task can finish before an earlier one. A task scheduled on a worker is kept aside
//! and enters the queue at that worker's next batch (at most `MAX_BATCH` picks later, in the
//! order it was scheduled), behind everything queued by then, so a yielding loop cannot starve
//! the others; a task scheduled from outside the workers enters the queue at once. When
//! [`MAX_PENDING`] tasks are kept aside, they enter the queue at once, in order, with the next
//! one.
//!
//! The bound is what this order promises: a runnable task waits for at most the tasks queued
//! before it plus one batch per other worker, whatever the load. The price is that tasks move
//! between cores: in a steady state, a task woken on one worker is as likely to run next on
//! another.
//!
//! In both orders, a worker with nothing to do takes the tasks another worker has taken but
//! not started (its batch and its own queue, oldest first), so no task waits behind a worker
//! stuck in a long poll.
//!
//! # One worker
//!
//! With a single worker (current-thread mode, or `worker_threads(1)`), tasks scheduled on the
//! worker itself go to a plain `VecDeque` that only the worker touches, and the shared queue
//! becomes an inbox for the other threads. The inbox is moved to the back of the deque before
//! every push to the deque and before every pick, so a task from the inbox always precedes a
//! task scheduled after it: tasks run exactly in the order they became runnable, in either
//! [`FifoOrder`], with no atomic operation on the worker's own schedules.
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

/// The most tasks a worker keeps in its own queue (the tasks scheduled on it: in the global
/// order, those that enter the shared queue at its next batch); with one more, they all enter
/// the shared queue at once, in order.
pub const MAX_PENDING: usize = pending::CAPACITY;

/// How a FIFO scheduler with several workers orders the tasks its workers schedule (woken,
/// spawned or yielding on a worker). With one worker, both are the same order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FifoOrder {
    /// Each worker keeps the tasks scheduled on it in a queue of its own, in order, and takes
    /// turns between that queue and the shared one (the default). See [Per-worker
    /// order](crate#per-worker-order-the-default).
    #[default]
    PerWorker,
    /// Every task passes through the shared queue, so tasks start in one order for the whole
    /// runtime, at the price of moving between cores. See [Global order](crate#global-order).
    Global,
}

/// Settings of the FIFO policy.
///
/// ```
/// use sched_fifo::{Fifo, FifoConfig, FifoOrder};
///
/// let fifo = Fifo::with_config(FifoConfig::default().with_order(FifoOrder::Global));
/// assert_eq!(fifo.config().order, FifoOrder::Global);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FifoConfig {
    /// How the tasks scheduled on workers are ordered with several workers (default: per
    /// worker).
    pub order: FifoOrder,
}

impl FifoConfig {
    /// These settings with another order.
    pub fn with_order(mut self, order: FifoOrder) -> Self {
        self.order = order;
        self
    }
}

/// First-in, first-out queues: one shared queue, and with several workers, each worker's own
/// queue (in the default [`FifoOrder`]). See the [crate docs](crate) for the ordering
/// guarantees.
#[derive(Debug)]
pub struct Fifo {
    config: FifoConfig,
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
    /// Tasks scheduled on this worker (woken, spawned or yielding here): its own queue, or in
    /// the global order, the tasks to enter the shared queue at the next batch.
    pending: Owned,
    /// Per-worker order: whether the next batch comes from `pending` first (the worker takes
    /// turns between it and the shared queue).
    own_turn: bool,
}

/// A worker's own end of its [`Pending`] ring: only the worker holding its `Local` pushes and
/// takes all (the ring's single owner), which `&mut Local` and `!Sync` ensure.
#[derive(Debug)]
struct Owned(Arc<Pending>, std::marker::PhantomData<std::cell::Cell<()>>);

impl Local {
    /// Per-worker order: takes the oldest `MAX_BATCH` of this worker's own tasks into its
    /// batch; returns the first of them.
    fn take_own(&self) -> Option<Runnable> {
        let mut first = None;
        self.pending.take(MAX_BATCH, |t| match first {
            None => first = Some(t),
            Some(_) => self.batch.push(t),
        });
        first
    }
}

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

    fn take(&self, max: usize, out: impl FnMut(Runnable)) -> usize {
        // SAFETY: as in `push`.
        unsafe { self.0.take(max, out) }
    }
}

impl Fifo {
    /// A FIFO scheduler with the default settings (per-worker order).
    pub fn new() -> Fifo {
        Fifo::with_config(FifoConfig::default())
    }

    /// A FIFO scheduler with these settings.
    pub fn with_config(config: FifoConfig) -> Fifo {
        Fifo {
            config,
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

    /// The settings this scheduler was made with.
    pub fn config(&self) -> &FifoConfig {
        &self.config
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

    /// Several workers: takes a batch from the front of the shared queue into `l`'s batch,
    /// after putting `l`'s pending tasks at its back if `with_pending` (the global order);
    /// returns the first task of the batch.
    fn refill(&self, l: &Local, with_pending: bool) -> Option<Runnable> {
        let with_pending = with_pending && !l.pending.is_empty();
        if !with_pending && self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut q = self.lock_with_pending(with_pending.then_some(l));
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
            own_turn: false,
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
                // The worker's own queue (in the global order: kept aside, to enter the shared
                // queue at this worker's next batch, one lock for all of them). An idle worker
                // woken for it takes it from here.
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
        if let Some(t) = l.batch.pop() {
            return Some(t);
        }
        match self.config.order {
            FifoOrder::Global => self.refill(l, true),
            FifoOrder::PerWorker => {
                // Turns: this batch from one queue, the next from the other, so that neither
                // waits for more than a batch of the other.
                l.own_turn = !l.own_turn;
                if l.own_turn {
                    l.take_own().or_else(|| self.refill(l, false))
                } else {
                    self.refill(l, false).or_else(|| l.take_own())
                }
            }
        }
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
    use runtime_core::{JoinHandle, ScheduleReason, TaskId};

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

    fn two_workers(order: FifoOrder) -> (Fifo, Local, Local) {
        let mut f = Fifo::with_config(FifoConfig::default().with_order(order));
        f.init(2);
        let (w0, w1) = (f.new_local(0), f.new_local(1));
        (f, w0, w1)
    }

    /// Several workers, in either order: an idle worker takes the oldest of another's pending
    /// tasks; a worker with more than `MAX_PENDING` pending tasks puts them all in the shared
    /// queue, in order. In the global order everything then comes out in schedule order; per
    /// worker, the queue's tasks and the later ones each keep theirs, in turns of at most
    /// `MAX_BATCH`.
    #[test]
    fn pending_tasks_are_stolen_oldest_first_and_overflow_in_order() {
        for order in [FifoOrder::Global, FifoOrder::PerWorker] {
            let (f, mut w0, mut w1) = two_workers(order);
            let on_w0 = ScheduleInfo::new(ScheduleReason::Wake, Some(0));
            let (tasks, _handles): (Vec<_>, Vec<_>) = (0..3).map(|_| task()).unzip();
            let ids: Vec<_> = tasks.iter().map(|t| t.metadata().id()).collect();
            for t in tasks {
                assert_eq!(f.schedule(t, on_w0, Some(&mut w0)), Notify::Any);
            }
            // Worker 1 has nothing queued: it takes half of worker 0's pending tasks, oldest
            // first. (One steal takes two of the three: the second comes from worker 1's own
            // batch.)
            let next = |w: usize, l: &mut Local| f.next(w, l).map(|t| t.metadata().id());
            assert_eq!(
                [next(1, &mut w1), next(1, &mut w1)],
                [Some(ids[0]), Some(ids[1])],
                "{order:?}"
            );
            assert_eq!(next(0, &mut w0), Some(ids[2]), "{order:?}");
            assert_eq!(next(0, &mut w0), None, "{order:?}");

            let n = MAX_PENDING + 50;
            let (tasks, _handles): (Vec<_>, Vec<_>) = (0..n).map(|_| task()).unzip();
            let ids: Vec<_> = tasks.iter().map(|t| t.metadata().id()).collect();
            for t in tasks {
                f.schedule(t, on_w0, Some(&mut w0));
            }
            // The first `MAX_PENDING + 1` entered the queue together; the rest follow them.
            assert_eq!(f.len.load(Ordering::Acquire), MAX_PENDING + 1, "{order:?}");
            let out: Vec<_> = std::iter::from_fn(|| f.next(0, &mut w0))
                .map(|t| t.metadata().id())
                .collect();
            let (queued, kept) = ids.split_at(MAX_PENDING + 1);
            match order {
                FifoOrder::Global => assert_eq!(out, ids),
                FifoOrder::PerWorker => {
                    let from = |group: &[TaskId]| -> Vec<TaskId> {
                        out.iter()
                            .filter(|id| group.contains(id))
                            .copied()
                            .collect()
                    };
                    assert_eq!(out.len(), n);
                    assert_eq!(from(queued), queued);
                    assert_eq!(from(kept), kept);
                    // The later tasks come at most one batch at a time while the shared queue
                    // still has tasks.
                    let last_queued = out.iter().rposition(|id| queued.contains(id)).unwrap();
                    let longest_run = out[..last_queued]
                        .split(|id| queued.contains(id))
                        .map(<[TaskId]>::len)
                        .max();
                    assert!(longest_run <= Some(MAX_BATCH), "{longest_run:?}");
                }
            }
        }
    }

    /// Per-worker order: a worker's own tasks stay with it, in order, and it takes turns with
    /// the shared queue: a task from outside waits for at most one batch of the worker's own
    /// tasks, however many it has.
    #[test]
    fn per_worker_order_keeps_tasks_on_their_worker_and_takes_turns() {
        let (f, mut w0, mut w1) = two_workers(FifoOrder::PerWorker);
        let on = |w| ScheduleInfo::new(ScheduleReason::Yield, Some(w));
        let foreign = ScheduleInfo::new(ScheduleReason::Wake, None);
        let (tasks, _handles): (Vec<_>, Vec<_>) = (0..100).map(|_| task()).unzip();
        let ids: Vec<_> = tasks.iter().map(|t| t.metadata().id()).collect();
        let mut tasks = tasks.into_iter();
        for t in tasks.by_ref().take(40) {
            assert_eq!(f.schedule(t, on(0), Some(&mut w0)), Notify::None);
        }
        for t in tasks.by_ref().take(40) {
            f.schedule(t, on(1), Some(&mut w1));
        }
        let outside: Vec<_> = tasks.collect();
        for t in outside {
            f.schedule(t, foreign, None);
        }
        let mut got: [Vec<TaskId>; 2] = Default::default();
        // The two workers pick in alternation until both are empty.
        loop {
            let a = f.next(0, &mut w0).map(|t| t.metadata().id());
            let b = f.next(1, &mut w1).map(|t| t.metadata().id());
            got[0].extend(a);
            got[1].extend(b);
            if a.is_none() && b.is_none() {
                break;
            }
        }
        let (own0, rest) = ids.split_at(40);
        let (own1, outside) = rest.split_at(40);
        let first_outside = |g: &[TaskId]| g.iter().position(|id| outside.contains(id));
        let of = |w: usize, group: &[TaskId]| -> Vec<TaskId> {
            got[w]
                .iter()
                .filter(|id| group.contains(id))
                .copied()
                .collect()
        };
        for (w, own) in [(0, own0), (1, own1)] {
            // At the end, the worker that runs out first takes the oldest of what the other
            // has left: each keeps the order.
            let (mine, taken) = (of(w, own), of(1 - w, own));
            assert_eq!(mine.len() + taken.len(), own.len());
            let in_order = |g: &[TaskId]| g.windows(2).all(|p| p[0] < p[1]);
            assert!(in_order(&mine) && in_order(&taken), "worker {w}");
            assert!(
                mine.len() >= own.len() * 3 / 4,
                "worker {w} kept {}",
                mine.len()
            );
            let first = first_outside(&got[w]);
            assert!(
                first.is_some_and(|i| i <= MAX_BATCH),
                "worker {w}: {first:?}"
            );
        }
        let mut outside_seen: Vec<_> = got
            .iter()
            .flatten()
            .filter(|id| outside.contains(id))
            .copied()
            .collect();
        let mut expected = outside.to_vec();
        outside_seen.sort();
        expected.sort();
        assert_eq!(outside_seen, expected, "every task from outside ran once");
    }
}
