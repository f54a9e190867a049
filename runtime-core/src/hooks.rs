//! Runtime hooks: user callbacks at a task's spawn, polls and end, and at a worker thread's
//! start, stop, park and unpark (tokio's unstable `on_task_spawn` & co., stable here).
//!
//! Unset hooks cost a branch on a null pointer: the task hooks live in one box that exists only
//! when at least one of them is set, and each task reaches it through its runtime. A hook that
//! panics is caught and reported (a `tracing` error and
//! [`RuntimeMetrics::caught_panics`](crate::RuntimeMetrics)) like any contained fault: the task
//! or the worker goes on as if the hook had returned.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::task::TaskMeta;

/// A hook given a task's metadata (its id, name, priority, spawn location, polls).
pub type TaskHook = Arc<dyn Fn(&TaskMeta) + Send + Sync>;
/// A hook run on a runtime thread, with no argument.
pub type ThreadHook = Arc<dyn Fn() + Send + Sync>;
/// A hook given the index of the worker it runs on.
pub type WorkerHook = Arc<dyn Fn(usize) + Send + Sync>;

/// The hooks of one runtime; every one optional. See the module docs for cost and panics.
#[derive(Clone, Default)]
pub struct RuntimeHooks {
    /// After a task is spawned, on the spawning thread, before it can first run.
    pub on_task_spawn: Option<TaskHook>,
    /// When a task's future is dropped: completed, panicked or cancelled. On the thread that
    /// drops it.
    pub on_task_terminate: Option<TaskHook>,
    /// Before each poll of a task, on the polling thread.
    pub on_before_task_poll: Option<TaskHook>,
    /// After each poll of a task (also after a poll that panicked), on the polling thread.
    pub on_after_task_poll: Option<TaskHook>,
    /// On each worker thread the runtime starts, before it runs a task.
    pub on_thread_start: Option<ThreadHook>,
    /// On each worker thread, after its last task, before it exits.
    pub on_thread_stop: Option<ThreadHook>,
    /// Before a worker parks (it found nothing to do); given the worker's index.
    pub on_thread_park: Option<WorkerHook>,
    /// After a worker wakes from parking; given the worker's index.
    pub on_thread_unpark: Option<WorkerHook>,
}

impl fmt::Debug for RuntimeHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeHooks")
            .field("on_task_spawn", &self.on_task_spawn.is_some())
            .field("on_task_terminate", &self.on_task_terminate.is_some())
            .field("on_before_task_poll", &self.on_before_task_poll.is_some())
            .field("on_after_task_poll", &self.on_after_task_poll.is_some())
            .field("on_thread_start", &self.on_thread_start.is_some())
            .field("on_thread_stop", &self.on_thread_stop.is_some())
            .field("on_thread_park", &self.on_thread_park.is_some())
            .field("on_thread_unpark", &self.on_thread_unpark.is_some())
            .finish()
    }
}

/// The task hooks, boxed in `Shared` only when one is set.
pub(crate) struct TaskHooks {
    spawn: Option<TaskHook>,
    terminate: Option<TaskHook>,
    before: Option<TaskHook>,
    after: Option<TaskHook>,
}

/// The thread hooks, kept by value in `Shared` (called a few times per park, not per poll).
#[derive(Default)]
pub(crate) struct ThreadHooks {
    start: Option<ThreadHook>,
    stop: Option<ThreadHook>,
    park: Option<WorkerHook>,
    unpark: Option<WorkerHook>,
}

impl RuntimeHooks {
    pub(crate) fn split(self) -> (Option<Box<TaskHooks>>, ThreadHooks) {
        let task = TaskHooks {
            spawn: self.on_task_spawn,
            terminate: self.on_task_terminate,
            before: self.on_before_task_poll,
            after: self.on_after_task_poll,
        };
        let any_task = task.spawn.is_some()
            || task.terminate.is_some()
            || task.before.is_some()
            || task.after.is_some();
        let thread = ThreadHooks {
            start: self.on_thread_start,
            stop: self.on_thread_stop,
            park: self.on_thread_park,
            unpark: self.on_thread_unpark,
        };
        (any_task.then(|| Box::new(task)), thread)
    }
}

/// Runs `f`; a panic is caught and reported as a panic of `what`.
#[inline]
fn contained(what: &str, f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        crate::fault::report_panic(what, &*payload);
    }
}

impl TaskHooks {
    pub(crate) fn spawned(&self, meta: &TaskMeta) {
        if let Some(h) = &self.spawn {
            contained("the on_task_spawn hook", || h(meta));
        }
    }

    pub(crate) fn terminated(&self, meta: &TaskMeta) {
        if let Some(h) = &self.terminate {
            contained("the on_task_terminate hook", || h(meta));
        }
    }

    #[inline]
    pub(crate) fn before_poll(&self, meta: &TaskMeta) {
        if let Some(h) = &self.before {
            contained("the on_before_task_poll hook", || h(meta));
        }
    }

    #[inline]
    pub(crate) fn after_poll(&self, meta: &TaskMeta) {
        if let Some(h) = &self.after {
            contained("the on_after_task_poll hook", || h(meta));
        }
    }
}

impl ThreadHooks {
    pub(crate) fn started(&self) {
        if let Some(h) = &self.start {
            contained("the on_thread_start hook", || h());
        }
    }

    pub(crate) fn stopped(&self) {
        if let Some(h) = &self.stop {
            contained("the on_thread_stop hook", || h());
        }
    }

    #[inline]
    pub(crate) fn parking(&self, worker: usize) {
        if let Some(h) = &self.park {
            contained("the on_thread_park hook", || h(worker));
        }
    }

    #[inline]
    pub(crate) fn unparked(&self, worker: usize) {
        if let Some(h) = &self.unpark {
            contained("the on_thread_unpark hook", || h(worker));
        }
    }
}
