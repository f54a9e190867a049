//! `!Send` tasks: kept beside the policy, run by the thread that spawned them.
//!
//! A scheduling policy may hand any runnable to any worker (work-stealing does, and a policy
//! written by a third party may), so a task whose future is not `Send` must never reach one.
//! [`LocalTasks`] is a run queue of its own, owned by one thread: its tasks are polled only by
//! [`LocalTasks::run_ready`], which that thread calls from the future it blocks on (facade's
//! `LocalRuntime` does), between the polls of the runtime's other tasks. The plug-in contract is
//! unchanged (a policy only ever sees `Send` tasks), and every policy gets local tasks for free.
//!
//! What a local task shares with the others: the harness (panics become a `JoinError`, abort,
//! the cooperative budget, the current-task context), the runtime's registry (so `abort` reaches
//! a waiting task and shutdown cancels it), ids, names, priorities and counters.
//!
//! # Ground rules (what makes `spawn_unchecked` with a `!Send` future sound)
//!
//! - A runnable is run or dropped only on the owning thread: `run_ready` and the destructor run
//!   there (`LocalTasks` is `!Send`), and so does `spawn_local`.
//! - A waker may be called on any thread; the schedule function then only moves the runnable
//!   into the queue, under the queue's lock. Once the queue is closed (its `LocalTasks` is
//!   gone), a runnable scheduled on the owning thread is dropped there, and one scheduled
//!   elsewhere is leaked (never run, never dropped): the only sound thing to do with a `!Send`
//!   future on the wrong thread.
//! - `close` takes the lock, sets `closed` and empties the queue, so nothing is pushed after it.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::thread::{self, ThreadId};

use crate::config::SpawnOptions;
use crate::handle::Handle;
use crate::sync::lock_unpoisoned as lock;
use crate::task::{JoinHandle, Runnable, TaskFuture, TaskMeta};

/// Local tasks run per call of [`LocalTasks::run_ready`] at most, so that the runtime's other
/// tasks and its driver get their turn (the same batch as the worker loop's driver interval).
pub const LOCAL_BATCH: usize = 61;

/// A run queue for `!Send` tasks, owned by one thread (see the module docs).
///
/// ```
/// use std::rc::Rc;
/// use runtime_core::{BasicFifo, Config, LocalTasks, Runtime, SpawnOptions};
///
/// let rt = Runtime::new(BasicFifo::default(), Config::default())?;
/// let local = LocalTasks::new();
/// let shared = Rc::new(5); // not Send
/// let s = shared.clone();
/// let h = local.spawn_local(rt.handle(), async move { *s + 1 }, SpawnOptions::default());
/// let out = rt.block_on(std::future::poll_fn(|cx| {
///     local.run_ready(cx);
///     if h.is_finished() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
/// }));
/// assert_eq!(out, ());
/// assert_eq!(futures_lite::future::block_on(h).unwrap(), 6);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct LocalTasks {
    queue: Arc<LocalQueue>,
    /// Tasks of this set currently being run by `run_ready` (for re-entrance: a local task
    /// that calls `run_ready` itself runs nothing).
    running: Cell<bool>,
    _not_send: PhantomData<*const ()>,
}

struct LocalQueue {
    state: Mutex<QueueState>,
    owner: ThreadId,
}

struct QueueState {
    tasks: VecDeque<Runnable>,
    /// Woken when a task is queued: the future that calls `run_ready`.
    driver: Option<Waker>,
    closed: bool,
}

impl LocalQueue {
    fn schedule(&self, task: Runnable) {
        let mut st = lock(&self.state);
        if st.closed {
            drop(st);
            if thread::current().id() == self.owner {
                drop(task);
            } else {
                // See the module docs: a `!Send` future is never dropped off its thread.
                std::mem::forget(task);
            }
            return;
        }
        st.tasks.push_back(task);
        let driver = st.driver.clone();
        drop(st);
        if let Some(w) = driver {
            w.wake();
        }
    }
}

impl Default for LocalTasks {
    fn default() -> Self {
        LocalTasks::new()
    }
}

impl LocalTasks {
    /// An empty set, owned by the calling thread.
    pub fn new() -> LocalTasks {
        LocalTasks {
            queue: Arc::new(LocalQueue {
                state: Mutex::new(QueueState {
                    tasks: VecDeque::new(),
                    driver: None,
                    closed: false,
                }),
                owner: thread::current().id(),
            }),
            running: Cell::new(false),
            _not_send: PhantomData,
        }
    }

    /// Spawns `future` (which need not be `Send`) as a task of the runtime of `handle`, queued
    /// here. It runs when this thread calls [`run_ready`](Self::run_ready). If the runtime or
    /// this set is closed, the task is cancelled at once (its handle says so).
    #[track_caller]
    pub fn spawn_local<F>(
        &self,
        handle: &Handle,
        future: F,
        options: SpawnOptions,
    ) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let queue = self.queue.clone();
        let (runnable, join) = handle.start_task(options, true, |meta| {
            // The future is not `Send`: its runnable is run and dropped only on this thread
            // (module docs, ground rules), and the cell is not freed before its future is gone
            // (the registry's reference keeps it; without one, the runtime is closed and the
            // runnable is dropped here at once). The output is not `Send` either, nor is the
            // join handle then. The schedule function is `Send + Sync + 'static` (an `Arc` of
            // the queue), so wakers may go anywhere.
            // SAFETY: per the above, `spawn_unchecked`'s conditions hold.
            unsafe {
                crate::cell::spawn_unchecked(
                    meta,
                    move |meta: &TaskMeta| TaskFuture::new(meta, future),
                    move |task| queue.schedule(task),
                )
            }
        });
        if let Some(runnable) = runnable {
            self.queue.schedule(runnable);
        }
        join
    }

    /// Runs up to [`LOCAL_BATCH`] queued tasks, each with a fresh cooperative budget, and
    /// remembers `cx`'s waker to be woken when a task is queued. If tasks are still queued
    /// afterwards, wakes `cx` at once (so the caller yields to the runtime and comes back).
    /// Returns how many tasks ran.
    pub fn run_ready(&self, cx: &mut Context<'_>) -> usize {
        {
            let mut st = lock(&self.queue.state);
            if !st.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.driver = Some(cx.waker().clone());
            }
        }
        if self.running.replace(true) {
            return 0;
        }
        struct Reset<'a>(&'a Cell<bool>);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _reset = Reset(&self.running);
        let mut ran = 0;
        while ran < LOCAL_BATCH {
            let task = {
                let mut st = lock(&self.queue.state);
                let task = st.tasks.pop_front();
                crate::scheduler::shrink_drained(&mut st.tasks);
                task
            };
            let Some(task) = task else {
                return ran;
            };
            ran += 1;
            // The harness catches the future's panics; the budget is the task's own.
            crate::coop::with_budget(|| task.run());
        }
        if !lock(&self.queue.state).tasks.is_empty() {
            cx.waker().wake_by_ref();
        }
        ran
    }

    /// Tasks queued to run.
    pub fn queued(&self) -> usize {
        lock(&self.queue.state).tasks.len()
    }

    /// Closes the set: queued tasks are dropped here (cancelled), a task woken later is
    /// dropped if woken on this thread and leaked otherwise, and a later `spawn_local` is
    /// cancelled at once. Tasks still waiting are cancelled when their runtime shuts down (its
    /// registry wakes them); call `close` after that shutdown to drop them here.
    pub fn close(&self) {
        let tasks = {
            let mut st = lock(&self.queue.state);
            st.closed = true;
            st.driver = None;
            std::mem::take(&mut st.tasks)
        };
        drop(tasks);
    }
}

impl Drop for LocalTasks {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for LocalTasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.queue.state);
        f.debug_struct("LocalTasks")
            .field("queued", &st.tasks.len())
            .field("closed", &st.closed)
            .finish()
    }
}
