//! [`JoinSet`]: a collection of tasks awaited in the order they finish.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use runtime_core::{AbortHandle, JoinError, JoinHandle, lock_unpoisoned as lock};
use slab::Slab;

/// A set of tasks, awaited in the order they finish (tokio's `JoinSet`). Dropping the set
/// aborts the tasks still in it.
///
/// Each task has a waker of its own, so [`join_next`](Self::join_next) polls only the tasks that
/// finished since its last call, not the whole set.
///
/// ```
/// use facade::task::JoinSet;
///
/// facade::block_on(async {
///     let mut set = JoinSet::new();
///     for i in 0..10u64 {
///         set.spawn(async move { i * 2 });
///     }
///     let mut sum = 0;
///     while let Some(out) = set.join_next().await {
///         sum += out.unwrap();
///     }
///     assert_eq!(sum, 90);
/// });
/// ```
pub struct JoinSet<T> {
    tasks: Slab<Entry<T>>,
    ready: Arc<Ready>,
}

struct Entry<T> {
    handle: JoinHandle<T>,
    waker: Waker,
}

/// The tasks woken since `join_next` last looked, and the waker of whoever waits in it.
struct Ready {
    state: Mutex<ReadyState>,
}

struct ReadyState {
    keys: VecDeque<usize>,
    parent: Option<Waker>,
}

/// The waker a task's handle is polled with: queues the task's key and wakes `join_next`.
struct EntryWaker {
    key: usize,
    ready: Arc<Ready>,
}

impl Wake for EntryWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut st = lock(&self.ready.state);
        st.keys.push_back(self.key);
        let parent = st.parent.take();
        drop(st);
        if let Some(p) = parent {
            p.wake();
        }
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> Self {
        JoinSet::new()
    }
}

impl<T> JoinSet<T> {
    /// An empty set.
    pub fn new() -> JoinSet<T> {
        JoinSet {
            tasks: Slab::new(),
            ready: Arc::new(Ready {
                state: Mutex::new(ReadyState {
                    keys: VecDeque::new(),
                    parent: None,
                }),
            }),
        }
    }

    /// Tasks in the set (finished ones count until `join_next` returns them).
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the set holds no task.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Adds a task the caller spawned (with [`spawn`](crate::spawn), a
    /// [`task::Builder`](crate::task::Builder), on a handle) to the set.
    pub fn insert(&mut self, handle: JoinHandle<T>) -> AbortHandle {
        let abort = handle.abort_handle();
        let entry = self.tasks.vacant_entry();
        let key = entry.key();
        let waker = Waker::from(Arc::new(EntryWaker {
            key,
            ready: self.ready.clone(),
        }));
        // A new task is looked at by the next `join_next` (it may have finished already).
        waker.wake_by_ref();
        entry.insert(Entry { handle, waker });
        abort
    }

    /// Spawns a task on the current runtime into the set.
    ///
    /// # Panics
    ///
    /// Outside a runtime, with a message that says what to do.
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.insert(crate::spawn(future))
    }

    /// Spawns a task on the runtime of `handle` into the set.
    #[track_caller]
    pub fn spawn_on<F>(&mut self, future: F, handle: &crate::Handle) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.insert(handle.spawn(future))
    }

    /// Spawns a `!Send` task into the set, as [`task::spawn_local`](crate::task::spawn_local).
    #[track_caller]
    pub fn spawn_local<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
        T: 'static,
    {
        self.insert(crate::local::spawn_local(future))
    }

    /// Spawns the blocking function `f` on the blocking pool into the set.
    #[track_caller]
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.insert(crate::spawn_blocking(f))
    }

    /// Waits for one of the tasks to finish and returns its output, or `None` when the set is
    /// empty. Cancel-safe: dropping the future loses no output.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// The output of a task that already finished, without waiting (`None` if none has, or
    /// the set is empty).
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        let waker = Waker::noop();
        match self.poll_next_ready(&mut Context::from_waker(waker), false) {
            Poll::Ready(out) => out,
            Poll::Pending => None,
        }
    }

    /// Polls for the next finished task, as `join_next` does.
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        self.poll_next_ready(cx, true)
    }

    fn poll_next_ready(
        &mut self,
        cx: &mut Context<'_>,
        register: bool,
    ) -> Poll<Option<Result<T, JoinError>>> {
        if self.tasks.is_empty() {
            return Poll::Ready(None);
        }
        loop {
            let key = {
                let mut st = lock(&self.ready.state);
                match st.keys.pop_front() {
                    Some(k) => k,
                    None => {
                        if register {
                            st.parent = Some(cx.waker().clone());
                        }
                        return Poll::Pending;
                    }
                }
            };
            // A key may be queued twice, or name an entry already returned and replaced.
            let Some(entry) = self.tasks.get_mut(key) else {
                continue;
            };
            let mut own = Context::from_waker(&entry.waker);
            match Pin::new(&mut entry.handle).poll(&mut own) {
                Poll::Ready(out) => {
                    self.tasks.remove(key);
                    return Poll::Ready(Some(out));
                }
                Poll::Pending => {
                    // The handle spent the budget: come back after a yield.
                    if !runtime_core::coop::has_budget_remaining() {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    /// Aborts every task in the set; they stay in it until `join_next` returns their
    /// (cancelled) results.
    pub fn abort_all(&mut self) {
        for (_, e) in self.tasks.iter() {
            e.handle.abort();
        }
    }

    /// Removes every task from the set without aborting them: they keep running, detached.
    pub fn detach_all(&mut self) {
        self.tasks.clear();
        lock(&self.ready.state).keys.clear();
    }

    /// Aborts every task and waits until all of them are gone.
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }
}

impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len()).finish()
    }
}
