//! The scheduling-policy contract, version 2. The [crate docs](crate#the-scheduler-contract)
//! describe it as a whole; each item here documents its own part.

use std::collections::VecDeque;
use std::time::Duration;

use crate::task::{Priority, Runnable, TaskMeta};

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
/// schedulers written outside this workspace; [`ScheduleInfo::new`] builds one for unit tests.
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

/// The answer of [`Scheduler::schedule`]: should core wake an idle worker to run the task?
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// Wake nobody: a worker that is awake will find the task (for instance the calling worker,
    /// which put the task in its own queue).
    None,
    /// Wake one idle worker, unless one is already awake and searching for work.
    Any,
    /// Wake this worker if it is idle (for a policy that keeps per-worker queues).
    Worker(usize),
}

/// The optional operations a policy takes part in, read once when the runtime starts (as a
/// sched_ext policy fills in only the ops it needs). Everything is off by default and costs
/// nothing while off.
///
/// ```
/// use runtime_core::Hooks;
/// let hooks = Hooks::NONE.account_polls().task_ended();
/// assert!(hooks.accounts_polls() && hooks.wants_task_ended());
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hooks {
    account: bool,
    task_ended: bool,
}

impl Hooks {
    /// No optional operation.
    pub const NONE: Hooks = Hooks {
        account: false,
        task_ended: false,
    };

    /// Time every poll and report it through [`Scheduler::account`] (two clock reads per poll).
    pub const fn account_polls(mut self) -> Hooks {
        self.account = true;
        self
    }

    /// Call [`Scheduler::task_ended`] when a task's future is gone.
    pub const fn task_ended(mut self) -> Hooks {
        self.task_ended = true;
        self
    }

    /// Whether [`account`](Scheduler::account) is called.
    pub const fn accounts_polls(self) -> bool {
        self.account
    }

    /// Whether [`task_ended`](Scheduler::task_ended) is called.
    pub const fn wants_task_ended(self) -> bool {
        self.task_ended
    }
}

/// Receives a policy's counters from [`Scheduler::metrics`], one call per counter, with no
/// allocation on the policy's side.
pub trait MetricsVisitor {
    /// One counter: its name (any string: a band's own name, say) and its value.
    fn counter(&mut self, name: &str, value: u64);
}

impl<F: FnMut(&str, u64)> MetricsVisitor for F {
    fn counter(&mut self, name: &str, value: u64) {
        self(name, value)
    }
}

/// The most entries a drained queue keeps room for after [`shrink_drained`]: 65,536 (512 KiB
/// of [`Runnable`]s). Bursts up to this size reuse the room they grew, with no reallocation.
pub const RETAINED_QUEUE_CAPACITY: usize = 1 << 16;

/// Gives back the memory of a queue that a burst grew and that has drained: when `queue` is
/// empty and has room for more than [`RETAINED_QUEUE_CAPACITY`] entries, shrinks it to that.
///
/// A `VecDeque` keeps its largest capacity for good, so without this a run queue that once held
/// a million tasks goes on holding 8 MB after they have all run or parked. Call it after each
/// pop: the check is a comparison while the queue holds tasks (one more when it has just
/// emptied), and the shrink one reallocation per burst larger than the retained room.
///
/// ```
/// use std::collections::VecDeque;
/// use runtime_core::{RETAINED_QUEUE_CAPACITY, shrink_drained};
///
/// let mut queue: VecDeque<u64> = (0..=RETAINED_QUEUE_CAPACITY as u64).collect();
/// queue.clear();
/// shrink_drained(&mut queue);
/// assert!(queue.capacity() <= RETAINED_QUEUE_CAPACITY);
/// ```
#[inline]
pub fn shrink_drained<T>(queue: &mut VecDeque<T>) {
    if queue.is_empty() && queue.capacity() > RETAINED_QUEUE_CAPACITY {
        queue.shrink_to(RETAINED_QUEUE_CAPACITY);
    }
}

/// A scheduling policy: where a runnable task goes and which one runs next.
///
/// What core guarantees and what a policy must meet are listed in the
/// [crate docs](crate#the-scheduler-contract). A complete policy is two methods:
///
/// ```
/// use std::collections::VecDeque;
/// use std::sync::Mutex;
/// use runtime_core::{Notify, Runnable, ScheduleInfo, Scheduler};
///
/// #[derive(Default)]
/// struct Simple(Mutex<VecDeque<Runnable>>);
///
/// impl Scheduler for Simple {
///     type Local = ();
///     fn new_local(&self, _worker: usize) {}
///     fn schedule(&self, task: Runnable, _: ScheduleInfo, _: Option<&mut ()>) -> Notify {
///         self.0.lock().unwrap().push_back(task);
///         Notify::Any
///     }
///     fn next(&self, _worker: usize, _: &mut ()) -> Option<Runnable> {
///         self.0.lock().unwrap().pop_front()
///     }
/// }
/// ```
pub trait Scheduler: Send + Sync + 'static {
    /// Per-worker state, such as a local run queue: made by [`new_local`](Self::new_local),
    /// held by core, lent to the policy on that worker's thread. Use `()` when the policy has
    /// none.
    type Local: Send + 'static;

    /// A name for reports (the ERROR of a caught fault, `tracing` events). The default is the
    /// type's name.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// Called once, before anything else, with the number of workers (`1` in current-thread
    /// mode).
    fn init(&mut self, workers: usize) {
        let _ = workers;
    }

    /// Creates worker `worker`'s state; called once per worker, after `init`, before that worker
    /// calls anything else. The only constructor of [`Local`](Self::Local).
    fn new_local(&self, worker: usize) -> Self::Local;

    /// Which optional operations this policy takes part in (read once, after `init`).
    fn hooks(&self) -> Hooks {
        Hooks::NONE
    }

    /// A task became runnable: store it, and say whom core should wake for it. `local` is the
    /// calling worker's state when the call is made on one of this runtime's workers (and that
    /// state is not already borrowed further up the stack).
    ///
    /// [`Notify::Any`] is always correct; [`Notify::None`] only when a worker that is awake is
    /// certain to look where the task went (see invariant 1 in the crate docs).
    fn schedule(
        &self,
        task: Runnable,
        info: ScheduleInfo,
        local: Option<&mut Self::Local>,
    ) -> Notify;

    /// The task worker `worker` should run now, or `None` if there is nothing for it (core then
    /// parks the worker, after asking once more).
    fn next(&self, worker: usize, local: &mut Self::Local) -> Option<Runnable>;

    /// With [`Hooks::account_polls`]: worker `worker` just polled a task of `priority` (its
    /// priority when the poll started) for `elapsed`.
    fn account(
        &self,
        worker: usize,
        local: &mut Self::Local,
        priority: Priority,
        elapsed: Duration,
    ) {
        let _ = (worker, local, priority, elapsed);
    }

    /// With [`Hooks::task_ended`]: `task`'s future is gone (it completed, was cancelled, or was
    /// dropped at shutdown). Called once per task, on any thread; the last moment to release
    /// per-task state kept under [`TaskMeta::policy_slot`].
    fn task_ended(&self, task: &TaskMeta) {
        let _ = task;
    }

    /// Reports the policy's own counters (steals, polls per band, …) to `out`: summed over the
    /// workers when `worker` is `None`, else for that worker. The default has none.
    fn metrics(&self, worker: Option<usize>, out: &mut dyn MetricsVisitor) {
        let _ = (worker, out);
    }

    /// Hands back one task still queued, at shutdown, until it returns `None`.
    ///
    /// Core calls it with worker `worker`'s state once that worker has stopped (on its own
    /// thread as it exits, or, for a worker that is not running, on the thread that shuts the
    /// runtime down or that scheduled a task while it was closing). It must return the tasks in
    /// `local` and those in state shared by all workers; a task it never returns is never
    /// dropped (it holds its runtime's shared state, which holds the policy: a leak).
    ///
    /// The default is `next(worker, local)`: right for any policy whose `next` looks at every
    /// queue a task can be in.
    fn drain(&self, worker: usize, local: &mut Self::Local) -> Option<Runnable> {
        self.next(worker, local)
    }
}
