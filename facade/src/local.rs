//! [`LocalRuntime`] and [`spawn_local`](crate::task::spawn_local): `!Send` futures.
//!
//! Local tasks are kept beside the scheduling policy, in a run queue owned by the thread that
//! built the runtime ([`runtime_core::LocalTasks`]): a policy may move any task it holds to any
//! worker, so a `!Send` task must never reach one. `LocalRuntime::block_on` runs the queued
//! local tasks between polls of its future, up to a batch at a time, so that the runtime's other
//! tasks (current-thread mode) and its timers and sockets keep their turn. This works the same
//! under every scheduler, a third party's included, with no change to the plug-in contract.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use runtime_core::{JoinHandle, LocalTasks, RuntimeMetrics, SpawnOptions};

use crate::{Handle, Runtime};

/// A runtime that also runs `!Send` futures (tokio's `LocalRuntime`), on the thread that owns
/// it. Build one with [`Builder::build_local`](crate::Builder::build_local). It is itself
/// `!Send`.
///
/// [`block_on`](Self::block_on) takes a future that need not be `Send`, and inside it
/// [`task::spawn_local`](crate::task::spawn_local) spawns `!Send` tasks, which run on this
/// thread. Ordinary `spawn` works as on any runtime.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let rt = facade::Builder::new_current_thread().build_local()?;
/// let count = Rc::new(Cell::new(0)); // not Send
/// rt.block_on(async {
///     let tasks: Vec<_> = (0..3)
///         .map(|_| {
///             let count = count.clone();
///             facade::task::spawn_local(async move { count.set(count.get() + 1) })
///         })
///         .collect();
///     for t in tasks {
///         t.await.unwrap();
///     }
/// });
/// assert_eq!(count.get(), 3);
/// # Ok::<(), facade::BuildError>(())
/// ```
#[derive(Debug)]
pub struct LocalRuntime {
    // Field order is drop order: the runtime shuts down first (its registry wakes the local
    // tasks still waiting, which queue themselves), then the local queue drops them here, on
    // their own thread.
    rt: Runtime,
    local: Rc<LocalTasks>,
}

thread_local! {
    /// The local queue of the `LocalRuntime::block_on` running on this thread.
    static CURRENT: RefCell<Option<(Rc<LocalTasks>, Handle)>> = const { RefCell::new(None) };
}

impl LocalRuntime {
    pub(crate) fn new(rt: Runtime) -> LocalRuntime {
        LocalRuntime {
            rt,
            local: Rc::new(LocalTasks::new()),
        }
    }

    /// Runs `future` (which need not be `Send`) to completion on this thread, running this
    /// runtime's local tasks meanwhile.
    ///
    /// # Panics
    ///
    /// As [`Runtime::block_on`]: inside a task or another `block_on`.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let previous = CURRENT.with(|c| {
            c.borrow_mut()
                .replace((self.local.clone(), self.rt.handle().clone()))
        });
        struct Restore(Option<(Rc<LocalTasks>, Handle)>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = previous);
            }
        }
        let _restore = Restore(previous);
        self.rt.block_on(Driver {
            future: std::pin::pin!(future),
            local: &self.local,
        })
    }

    /// Spawns a `!Send` future on this runtime; it runs while this thread is in
    /// [`block_on`](Self::block_on).
    #[track_caller]
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.local
            .spawn_local(self.rt.handle().as_core(), future, SpawnOptions::default())
    }

    /// Spawns a task (which may run on any worker) on this runtime.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.rt.spawn(future)
    }

    /// The runtime's handle (for `Send` work: it cannot spawn local tasks).
    pub fn handle(&self) -> &Handle {
        self.rt.handle()
    }

    /// The runtime's counters.
    pub fn metrics(&self) -> RuntimeMetrics {
        self.rt.metrics()
    }

    /// The name of the scheduling policy in use.
    pub fn scheduler(&self) -> String {
        self.rt.scheduler()
    }

    /// Shuts down, waiting at most `timeout` for the worker threads (see
    /// [`Runtime::shutdown_timeout`]); local tasks are dropped on this thread.
    pub fn shutdown_timeout(self, timeout: Duration) {
        let LocalRuntime { rt, local } = self;
        rt.shutdown_timeout(timeout);
        drop(local);
    }
}

/// The future `LocalRuntime::block_on` gives the runtime: local tasks, then the user's future.
struct Driver<'a, F> {
    future: Pin<&'a mut F>,
    local: &'a LocalTasks,
}

impl<F: Future> Future for Driver<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.local.run_ready(cx);
        self.future.as_mut().poll(cx)
    }
}

/// Spawns a `!Send` future on the [`LocalRuntime`] whose `block_on` is running on this thread
/// (tokio's `task::spawn_local`). The task runs on this thread only.
///
/// # Panics
///
/// Outside `LocalRuntime::block_on` (for example on a runtime built with `build`, or on a
/// worker thread), with a message that says where it works.
///
/// ```
/// let rt = facade::Builder::new_current_thread().build_local()?;
/// let out = rt.block_on(async {
///     let text = std::rc::Rc::new(String::from("local"));
///     facade::task::spawn_local(async move { text.len() }).await.unwrap()
/// });
/// assert_eq!(out, 5);
/// # Ok::<(), facade::BuildError>(())
/// ```
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let current = CURRENT.with(|c| c.borrow().clone());
    match current {
        Some((local, handle)) => {
            let options = SpawnOptions::default();
            local.spawn_local(handle.as_core(), future, options)
        }
        None => panic!("{SPAWN_LOCAL_OUTSIDE}"),
    }
}

/// The message of `spawn_local` called where no local runtime runs.
pub(crate) const SPAWN_LOCAL_OUTSIDE: &str = "facade::task::spawn_local called outside \
    LocalRuntime::block_on: !Send tasks run only on the thread of a LocalRuntime. Build one \
    with facade::Builder::new_current_thread().build_local() and call spawn_local inside its \
    block_on (or use LocalRuntime::spawn_local); for a Send future use facade::spawn";
