//! Tasks: spawning with options ([`Builder`]), sets of tasks ([`JoinSet`]), `!Send` tasks
//! ([`spawn_local`]), aborting ([`AbortHandle`]), and the current task's priority.

use std::future::Future;

use runtime_core::{Priority, SpawnOptions};

use crate::Handle;

pub use crate::join_set::JoinSet;
pub use crate::local::spawn_local;
pub use crate::{spawn, spawn_blocking, yield_now};
pub use runtime_core::{AbortHandle, JoinError, JoinHandle, TaskId};

/// The id of the task this is called from (tokio's `task::id`).
///
/// # Panics
///
/// Outside a task (in `block_on`'s own future, say): use [`try_id`] there.
pub fn id() -> TaskId {
    try_id().expect("facade::task::id called outside a task: use facade::task::try_id")
}

/// The id of the task this is called from, or `None` outside a task (tokio's `task::try_id`).
pub fn try_id() -> Option<TaskId> {
    runtime_core::with_current_task(|t| t.map(|t| t.id()))
}

/// The priority of the task this is called from (`None` outside a task). A task spawned from a
/// task inherits its priority unless given one.
pub fn priority() -> Option<Priority> {
    runtime_core::current_priority()
}

/// Changes the priority of the task this is called from; it applies from the task's next
/// scheduling (a yield, a wake-up). Returns `false` outside a task.
pub fn set_priority(priority: Priority) -> bool {
    runtime_core::set_current_priority(priority)
}

/// Spawns a task with a name and a priority.
///
/// The name appears in traces (and in watchdog reports). The priority is read by schedulers that
/// have priorities; FIFO and work-stealing carry it and ignore it. Without `priority`, a task
/// spawned from a task inherits that task's priority.
///
/// ```
/// use facade::{Priority, task};
///
/// facade::block_on(async {
///     let h = task::Builder::new()
///         .name("control-loop")
///         .priority(Priority::HIGH)
///         .spawn(async { 5 });
///     assert_eq!(h.await.unwrap(), 5);
/// });
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    options: SpawnOptions,
}

impl Builder {
    /// No name, default priority.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The task's name.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.options.name = Some(name.into());
        self
    }

    /// The task's priority.
    pub fn priority(mut self, priority: Priority) -> Builder {
        self.options.priority = Some(priority);
        self
    }

    /// Spawns on the current runtime.
    ///
    /// # Panics
    ///
    /// Outside a runtime, with a message that says what to do.
    #[track_caller]
    pub fn spawn<F>(self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = Handle::try_current()
            .unwrap_or_else(|_| panic!("{}", runtime_core::NoRuntime::new("task::Builder::spawn")));
        handle.spawn_with(future, self.options)
    }

    /// Spawns on the runtime of `handle`.
    #[track_caller]
    pub fn spawn_on<F>(self, future: F, handle: &Handle) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        handle.spawn_with(future, self.options)
    }
}
