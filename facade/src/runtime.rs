//! [`Runtime`] and [`Handle`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::driver::IoTime;

use runtime_core::{EnterGuard, JoinHandle, RuntimeMetrics, SpawnOptions, TaskDump};

/// A running runtime. Build one with [`Builder`](crate::Builder).
///
/// Dropping it shuts it down: every task still alive is cancelled and its future dropped, and
/// the worker threads are joined.
pub struct Runtime {
    /// `None` once shut down (dropped first, then the driver is closed).
    inner: Option<runtime_core::Runtime>,
    handle: Handle,
    scheduler: String,
    io: Arc<IoTime>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("scheduler", &self.scheduler)
            .field("workers", &self.handle.inner.workers())
            .finish()
    }
}

impl Runtime {
    pub(crate) fn from_core(
        inner: runtime_core::Runtime,
        scheduler: String,
        io: Arc<IoTime>,
    ) -> Runtime {
        let handle = Handle {
            inner: inner.handle().clone(),
        };
        Runtime {
            inner: Some(inner),
            handle,
            scheduler,
            io,
        }
    }

    fn core(&self) -> &runtime_core::Runtime {
        self.inner.as_ref().expect("present until shutdown")
    }

    /// After the tasks are gone: I/O and timers still held by someone fail instead of hanging,
    /// and the blocking pool gets at most `blocking_grace` for its running jobs (jobs that never
    /// started are cancelled).
    fn close_driver(&self, blocking_grace: Duration) {
        self.io.reactor.close();
        self.io.timers.close();
        self.io.blocking.shutdown(blocking_grace);
    }

    /// Runs `future` to completion on this thread, with this runtime as the current one (so
    /// [`spawn`](crate::spawn) works inside it). In current-thread mode, spawned tasks run on
    /// this thread meanwhile.
    ///
    /// # Panics
    ///
    /// When called on a thread that already drives a runtime (a task, or another `block_on`):
    /// use `.await` there instead.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.core().block_on(future)
    }

    /// Spawns a task on this runtime.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// A cloneable handle, usable from any thread.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Makes this runtime the current one on this thread until the guard is dropped.
    pub fn enter(&self) -> EnterGuard {
        self.core().enter()
    }

    /// A snapshot of the runtime's counters.
    pub fn metrics(&self) -> RuntimeMetrics {
        self.core().metrics()
    }

    /// The name of the scheduling policy in use: the one it was built with (`"fifo"`,
    /// `"worksteal"`, `"priority"`, a registered name, or a custom policy's own name), or
    /// `"basic-fifo"` once that policy has been ejected for a fault (see
    /// [`RuntimeMetrics::ejection`](crate::RuntimeMetrics)).
    pub fn scheduler(&self) -> String {
        if self.handle.inner.policy_ejected() {
            return self.handle.inner.scheduler_name();
        }
        self.scheduler.clone()
    }

    /// Shuts down, waiting at most `timeout` for a worker that is stuck inside a poll.
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        let start = std::time::Instant::now();
        if let Some(inner) = self.inner.take() {
            inner.shutdown_timeout(timeout);
        }
        self.close_driver(timeout.saturating_sub(start.elapsed()));
    }

    /// Shuts down without waiting for the worker threads to exit.
    pub fn shutdown_background(mut self) {
        if let Some(inner) = self.inner.take() {
            inner.shutdown_background();
        }
        self.close_driver(Duration::ZERO);
    }
}

/// How long dropping a runtime waits for running blocking jobs.
pub const BLOCKING_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            drop(inner);
            self.close_driver(BLOCKING_SHUTDOWN_GRACE);
        }
    }
}

/// A cloneable reference to a runtime: spawn on it from any thread.
#[derive(Clone)]
pub struct Handle {
    pub(crate) inner: runtime_core::Handle,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Handle {
    /// The runtime of the current thread.
    ///
    /// # Panics
    ///
    /// Outside a runtime, with a message that says where to call it from.
    pub fn current() -> Handle {
        Handle::try_current().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The runtime of the current thread, if there is one.
    pub fn try_current() -> Result<Handle, runtime_core::NoRuntime> {
        runtime_core::Handle::try_current().map(|inner| Handle { inner })
    }

    /// Spawns a task on this runtime.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.spawn(future)
    }

    #[track_caller]
    pub(crate) fn spawn_with<F>(&self, future: F, options: SpawnOptions) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.spawn_with(future, options)
    }

    /// Makes this runtime the current one on this thread until the guard is dropped.
    pub fn enter(&self) -> EnterGuard {
        self.inner.enter()
    }

    /// A snapshot of the runtime's counters.
    pub fn metrics(&self) -> RuntimeMetrics {
        self.inner.metrics()
    }

    /// Every live task: id, name, spawn location, idle / scheduled / running, age, polls
    /// (tokio's task dump, stable here and on every platform). `Display` prints a table.
    ///
    /// ```
    /// let rt = facade::Builder::new_current_thread().build()?;
    /// let _waiting = rt.spawn(std::future::pending::<()>());
    /// let dump = rt.handle().dump();
    /// assert_eq!(dump.tasks.len(), 1);
    /// assert_eq!(dump.tasks[0].state, facade::TaskState::Scheduled);
    /// # Ok::<(), facade::BuildError>(())
    /// ```
    pub fn dump(&self) -> TaskDump {
        self.inner.dump()
    }

    /// Runs the blocking function `f` on this runtime's blocking pool.
    #[track_caller]
    pub fn spawn_blocking<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let io = self
            .inner
            .extension::<Arc<IoTime>>()
            .expect("every facade runtime has a driver");
        io.blocking.spawn(f)
    }

    /// What the blocking pool is doing now (threads, idle, queued, spawn failures).
    pub fn blocking_metrics(&self) -> blocking::PoolMetrics {
        self.inner
            .extension::<Arc<IoTime>>()
            .map(|io| io.blocking.metrics())
            .unwrap_or_default()
    }

    /// The core handle, for code written against `runtime-core`.
    pub fn as_core(&self) -> &runtime_core::Handle {
        &self.inner
    }
}
