//! [`Handle`] (spawning and inspecting a runtime from anywhere), the schedule function every
//! task shares, and [`pool_task`] for pools with threads of their own.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::cell::{self, Schedule, Spawned};
use crate::config::SpawnOptions;
use crate::context::{self, EnterGuard};
use crate::metrics::{RuntimeMetrics, bump};
use crate::scheduler::ScheduleReason;
use crate::shared::Shared;
use crate::task::{JoinError, JoinHandle, Priority, Runnable, TaskFuture, TaskId, TaskMeta};

/// Creates a task that belongs to no runtime, for pools that run tasks on threads of their own
/// (the blocking pool, the rayon bridge): `schedule` receives the runnable whenever the task must run, and
/// whoever holds it calls [`Runnable::run`]. The task gets the same
/// harness as any other: a panic reaches the [`JoinHandle`] as a `JoinError`, dropping the
/// runnable cancels the task, and the handle can be awaited from any runtime.
///
/// ```
/// let (runnable, handle) = runtime_core::pool_task(async { 6 * 7 }, |_| {}, None);
/// runnable.run(); // completes in one poll
/// assert_eq!(futures_lite::future::block_on(handle).unwrap(), 42);
/// ```
#[track_caller]
pub fn pool_task<F, S>(
    future: F,
    schedule: S,
    name: Option<String>,
) -> (Runnable, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Fn(Runnable) + Send + Sync + 'static,
{
    let meta = TaskMeta::new(
        TaskId::next(),
        name,
        Priority::default(),
        None,
        None,
        std::panic::Location::caller(),
    );
    let (runnable, task, _) = cell::spawn(
        meta,
        move |meta: &TaskMeta| TaskFuture::new(meta, future),
        schedule,
    );
    (runnable, JoinHandle::new(task))
}

/// The schedule function of every runtime task (zero-sized: the runtime is found in the
/// metadata).
struct ToRuntime;

impl Schedule for ToRuntime {
    fn schedule(&self, task: Runnable, woken_while_running: bool) {
        let reason = if woken_while_running {
            ScheduleReason::Yield
        } else {
            ScheduleReason::Wake
        };
        let meta = task.metadata();
        meta.stamp_woken();
        #[cfg(feature = "console")]
        meta.console.woken();
        let Some(owner) = &meta.shared else {
            return; // not spawned by a runtime (cannot happen for tasks made by `spawn_with`)
        };
        let shared: *const Shared = Arc::as_ptr(owner);
        // `shared` must stay valid after the task is handed to the scheduler, when another thread
        // may run it to completion and free it with its `Arc`. On one of this runtime's workers that
        // holds: the worker loop owns an `Arc<Shared>` for as long as it runs. Elsewhere we take an
        // `Arc` of our own first.
        // SAFETY: `shared` is valid now: the task (alive, we hold its runnable) holds an `Arc` to it.
        let here = unsafe { &*shared }.worker_here();
        if here.is_some() {
            // SAFETY: see above: the worker loop's own `Arc` keeps it alive.
            unsafe { &*shared }.schedule(task, reason, here);
        } else {
            let shared = owner.clone();
            shared.schedule(task, reason, None);
        }
    }
}

/// A cloneable reference to a runtime, usable from any thread: spawn tasks, read metrics.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.shared.workers)
            .field("current_thread", &self.shared.current_thread)
            .field("closed", &self.shared.is_closed())
            .finish()
    }
}

impl Handle {
    /// The handle of the runtime this thread is in (a worker, `block_on`, or an
    /// [`enter`](Handle::enter) guard).
    pub fn try_current() -> Result<Handle, context::NoRuntime> {
        context::try_current().ok_or(context::NoRuntime("Handle::current"))
    }

    /// Spawns a task.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_with(future, SpawnOptions::default())
    }

    /// Spawns a task with a name and a priority.
    #[track_caller]
    pub fn spawn_with<F>(&self, future: F, options: SpawnOptions) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let started = self.start_task(options, false, |meta| {
            cell::spawn(
                meta,
                move |meta: &TaskMeta| TaskFuture::new(meta, future),
                ToRuntime,
            )
        });
        let (runnable, handle) = started;
        if let Some(runnable) = runnable {
            let shared = &self.shared;
            let here = shared.worker_here();
            shared.schedule(runnable, ScheduleReason::Spawn, here);
        }
        handle
    }

    /// What every spawn shares: an id, the inherited priority, the task's entry in the registry
    /// and its metadata (given to `make`, which creates the task), counters and the trace.
    /// Returns the first runnable to schedule, or `None` when the runtime is closed (the task
    /// is then cancelled and the handle says so).
    #[track_caller]
    pub(crate) fn start_task<T>(
        &self,
        options: SpawnOptions,
        local: bool,
        make: impl FnOnce(TaskMeta) -> Spawned<Result<T, JoinError>>,
    ) -> (Option<Runnable>, JoinHandle<T>) {
        let shared = &self.shared;
        let location = std::panic::Location::caller();
        let id = TaskId::next();
        let name = options.name;
        // A task spawned by a task inherits its priority unless told otherwise.
        let priority = options
            .priority
            .or_else(crate::task::current_priority)
            .unwrap_or_default();
        let meta = |key| {
            let mut meta = TaskMeta::new(id, name, priority, Some(shared.clone()), key, location);
            if local {
                meta.set_local();
            }
            meta
        };
        let here = shared.worker_index_here();
        let (runnable, task) = match here {
            // Spawned on one of our workers: into its nursery, without a lock (the check of
            // `closed` pairs with the worker's emptying of the nursery when it stops: see
            // active.rs).
            Some(index) if !shared.is_closed() => {
                let mut meta = meta(None);
                meta.set_in_nursery();
                let (runnable, task, entry) = make(meta);
                let entry = entry.expect("a runtime's task has a registry reference");
                // SAFETY: this thread runs worker `index` (`worker_index_here`), so it drives
                // that worker and holds its nursery's lease (`drive`).
                unsafe { shared.active.enter_local(index, entry) };
                (runnable, task)
            }
            _ => shared.active.insert(id, &shared.closed, |key| {
                let (runnable, task, entry) = make(meta(key));
                ((runnable, task), entry)
            }),
        };
        let handle = JoinHandle::new(task);
        if shared.is_closed() {
            // Never started: dropping the runnable cancels the task.
            drop(runnable);
            return (None, handle);
        }
        let (slot, owned) = shared.counters.slot(here);
        bump(&slot.spawned, owned);
        if let Some(hooks) = &shared.task_hooks {
            hooks.spawned(runnable.metadata());
        }
        runnable.metadata().stamp_woken();
        tracing::debug!(
            task.id = id.as_u64(),
            task.name = runnable.metadata().name(),
            local,
            "spawn"
        );
        (Some(runnable), handle)
    }

    /// Makes this runtime the current one on this thread until the guard is dropped, so that
    /// the free `spawn` functions and the resource types find it.
    pub fn enter(&self) -> EnterGuard {
        context::enter(self.clone())
    }

    /// Every live task: id, name, spawn location, idle / scheduled / running, age, polls
    /// (see [`TaskDump`](crate::TaskDump)).
    pub fn dump(&self) -> crate::TaskDump {
        crate::TaskDump::collect(&self.shared)
    }

    /// A snapshot of the runtime's counters. The counters are read one after another while
    /// the workers run, not frozen together: while tasks are polled, two figures that count the
    /// same polls (the per-worker and per-class histograms, say) may differ by the polls that
    /// ended in between.
    pub fn metrics(&self) -> RuntimeMetrics {
        let mut m = self.shared.counters.snapshot();
        m.tasks_alive = m.tasks_spawned.saturating_sub(m.tasks_completed);
        m.ejection = self.shared.policy.ejection();
        m.scheduler = self.policy_counters(None);
        for (i, w) in m.workers.iter_mut().enumerate() {
            w.scheduler = self.policy_counters(Some(i));
            if let Some(dog) = &self.shared.watchdog {
                w.slow_polls = dog.slow_polls[i].load(Ordering::Relaxed);
            }
        }
        m.slow_polls = m.workers.iter().map(|w| w.slow_polls).sum();
        if let Some(h) = &self.shared.histograms {
            for (i, w) in m.workers.iter_mut().enumerate() {
                w.poll_time = Some(h.poll_time(Some(i), None));
                w.schedule_latency = Some(h.latency(Some(i), None));
            }
            for (c, name) in h.class_names().iter().enumerate() {
                m.poll_time.push((name.clone(), h.poll_time(None, Some(c))));
                m.schedule_latency
                    .push((name.clone(), h.latency(None, Some(c))));
            }
        }
        m
    }

    fn policy_counters(&self, worker: Option<usize>) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let shared = &self.shared;
        shared.policy.with_primary(shared, "metrics", |p| {
            p.metrics(worker, &mut |name: &str, value| {
                out.push((name.to_owned(), value))
            })
        });
        out
    }

    /// Tasks registered as alive right now (for tests and diagnostics; takes locks).
    pub fn active_tasks(&self) -> usize {
        self.shared.active.len()
    }

    /// The number of workers (1 in current-thread mode).
    pub fn workers(&self) -> usize {
        self.shared.workers
    }

    /// Whether the runtime runs its single worker on the thread inside `block_on`.
    pub fn is_current_thread(&self) -> bool {
        self.shared.current_thread
    }

    /// Whether the runtime has shut down (or is shutting down).
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// The state of type `T` that the layer above attached at build time (see
    /// [`Extensions`](crate::Extensions)).
    #[inline]
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.shared.extensions.get::<T>()
    }

    /// The name of the scheduling policy ([`Scheduler::name`](crate::Scheduler::name)).
    ///
    /// After an ejection (see [`RuntimeMetrics::ejection`]), the fallback's: `basic-fifo`.
    pub fn scheduler_name(&self) -> String {
        self.shared.policy.name_in_use()
    }

    /// Whether the runtime's policy was ejected for a fault (cheaper than [`Handle::metrics`]).
    pub fn policy_ejected(&self) -> bool {
        self.shared.policy.is_ejected()
    }

    /// Whether two handles refer to the same runtime.
    pub fn ptr_eq(&self, other: &Handle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}
