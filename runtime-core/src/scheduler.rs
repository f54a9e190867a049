//! The scheduling-policy contract.
//!
//! Core owns the tasks, the worker threads and parking; a [`Scheduler`] only stores runnable
//! tasks and decides which one a worker runs next. Core calls the scheduler, never the other way
//! round for running futures.

use crate::task::Runnable;

/// Why a task is being handed to [`Scheduler::schedule`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleReason {
    /// The task was just spawned and has never run.
    Spawn,
    /// The task was woken by a waker (from a worker, see [`ScheduleInfo::worker`], or from a
    /// thread outside the runtime).
    Wake,
    /// The task woke itself while it was running: it yielded (for instance through
    /// [`yield_now`](crate::yield_now) or because its cooperative budget ran out). A policy that
    /// wants fairness puts such a task behind the others.
    Yield,
}

/// What core tells a scheduler about a [`schedule`](Scheduler::schedule) call.
///
/// Marked `#[non_exhaustive]` so that the runtime can add information without breaking
/// schedulers written outside this workspace.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleInfo {
    /// Why the task became runnable.
    pub reason: ScheduleReason,
    /// The index of the worker of *this* runtime whose thread makes the call, or `None` when the
    /// call comes from any other thread (a foreign thread, a blocking pool thread, a worker of
    /// another runtime).
    pub worker: Option<usize>,
}

impl ScheduleInfo {
    /// Builds an info value; useful to unit-test a scheduler outside a runtime.
    pub fn new(reason: ScheduleReason, worker: Option<usize>) -> Self {
        ScheduleInfo { reason, worker }
    }
}

/// After a task has been scheduled: should core wake an idle worker to run it?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// Wake nobody: a worker that is awake will find the task.
    None,
    /// Wake one idle worker, unless one is already awake and searching for work.
    Any,
    /// Wake this worker if it is idle (for a policy that keeps per-worker queues).
    Worker(usize),
}

/// A scheduling policy: where a runnable task goes and which one runs next.
///
/// Core guarantees:
/// - `init` is called once, before any other method, with the number of workers
///   (`1` in current-thread mode).
/// - `new_local(i)` is called once per worker, before worker `i` calls `next`. Worker `i`'s
///   [`Local`](Scheduler::Local) value is only ever touched by the thread that is worker `i` at
///   that moment (in current-thread mode the thread inside `block_on`).
/// - `schedule` may be called from any thread, concurrently with everything else. When it runs
///   on worker `i`'s thread, it gets worker `i`'s local state (unless that state is already
///   borrowed further up the stack, in which case it gets `None`).
/// - `next` is called only by worker `i`, with its own local state.
///
/// A scheduler must meet these invariants (the conformance suite in `tests/` checks them):
/// 1. **No lost task.** Once `schedule` has returned, a later `next` on some worker returns the
///    task (unless the runtime shuts down). Core takes care of waking a worker: after each
///    `schedule` it asks [`notify`](Scheduler::notify) and wakes the worker named there, and an
///    idle worker always calls `next` once more after announcing that it will sleep. So a task
///    may only be hidden in a place that the worker named by `notify` (or, for
///    [`Notify::Any`], every worker) looks at in `next`.
/// 2. **At most once.** A task given to `schedule` comes back out of `next` or `drain` once.
/// 3. **No starvation.** A task that stays queued is eventually returned by `next` while the
///    workers keep calling it.
/// 4. **Drain.** At shutdown, `drain` hands back every task still queued.
///
/// # A complete scheduler
///
/// A single shared FIFO queue needs only `schedule` and `next`:
///
/// ```
/// use std::collections::VecDeque;
/// use std::sync::Mutex;
/// use runtime_core::{Runnable, ScheduleInfo, Scheduler};
///
/// #[derive(Default)]
/// struct Simple(Mutex<VecDeque<Runnable>>);
///
/// impl Scheduler for Simple {
///     type Local = ();
///     fn schedule(&self, task: Runnable, _: ScheduleInfo, _: Option<&mut ()>) {
///         self.0.lock().unwrap().push_back(task);
///     }
///     fn next(&self, _worker: usize, _: &mut ()) -> Option<Runnable> {
///         self.0.lock().unwrap().pop_front()
///     }
/// }
/// ```
pub trait Scheduler: Send + Sync + 'static {
    /// Per-worker state, such as a local run queue. Use `()` when the policy has none.
    type Local: Default + Send + 'static;

    /// Called once, before anything else, with the number of workers.
    fn init(&mut self, workers: usize) {
        let _ = workers;
    }

    /// Creates worker `worker`'s local state. The default is `Local::default()`.
    fn new_local(&self, worker: usize) -> Self::Local {
        let _ = worker;
        Self::Local::default()
    }

    /// A task became runnable: store it. `local` is the calling worker's state when the call
    /// is made on one of this runtime's workers.
    fn schedule(&self, task: Runnable, info: ScheduleInfo, local: Option<&mut Self::Local>);

    /// The task worker `worker` should run now, or `None` if there is nothing for it (core then
    /// parks the worker).
    fn next(&self, worker: usize, local: &mut Self::Local) -> Option<Runnable>;

    /// After `schedule(.., info, local)` has returned: which idle worker, if any, core should
    /// wake. `local` is the same worker state that `schedule` got, so a policy can remember
    /// there what it just did. The default wakes one idle worker unless another worker is
    /// already searching for work.
    fn notify(&self, info: &ScheduleInfo, local: Option<&mut Self::Local>) -> Notify {
        let _ = (info, local);
        Notify::Any
    }

    /// Whether core should time each poll and report it through [`account`](Self::account).
    /// Off by default: it costs two clock reads per poll. When on, workers also use the
    /// timestamps to notice a due timer between any two polls, not only every 61 polls.
    const TIMES_POLLS: bool = false;

    /// With [`TIMES_POLLS`](Self::TIMES_POLLS): worker `worker` just polled a task of
    /// `priority` (its priority when the poll started) for `elapsed`.
    fn account(
        &self,
        worker: usize,
        local: &mut Self::Local,
        priority: crate::Priority,
        elapsed: std::time::Duration,
    ) {
        let _ = (worker, local, priority, elapsed);
    }

    /// The policy's own counters (steals, queue overflows, …), summed over the workers when
    /// `worker` is `None`, else for that worker. Core adds them to
    /// [`RuntimeMetrics`](crate::RuntimeMetrics). The default has none.
    fn metrics(&self, worker: Option<usize>) -> Vec<(&'static str, u64)> {
        let _ = worker;
        Vec::new()
    }

    /// Hands back one queued task at shutdown, until it returns `None`.
    ///
    /// Core calls it first from each exiting worker with that worker's state
    /// (`Some((index, local))`), then, once every worker has exited, with `None` from whichever
    /// thread finishes the shutdown; and with `None` again from any thread that schedules a task
    /// while the runtime is closing. The default returns `next(index, local)`, and for `None`
    /// calls `next(0, &mut Local::default())`: right for a policy whose queues all live in
    /// `self`. A policy that keeps tasks in its local state, or whose `next` must only run on the
    /// worker's own thread, overrides it.
    fn drain(&self, local: Option<(usize, &mut Self::Local)>) -> Option<Runnable> {
        match local {
            Some((index, local)) => self.next(index, local),
            None => self.next(0, &mut Self::Local::default()),
        }
    }
}
