//! The runtime: shared state, spawning, `block_on`, and shutdown.
//!
//! # Shutdown
//!
//! 1. `closed` is set (SeqCst). From then on a spawn is cancelled at once, and `schedule` drops
//!    the runnable it is given instead of queueing it (which cancels the task and drops its
//!    future, on the thread that woke it).
//! 2. Every worker is unparked. A worker sees `closed` at the top of its loop (so a task that is
//!    being polled finishes that poll), drops what its local state holds, and exits; the last
//!    worker to exit drains the policy's shared queues.
//! 3. The shutting-down thread waits for the workers (without limit, up to a timeout, or not at
//!    all for `shutdown_background`), and joins those that exited.
//! 4. It takes every entry out of the registry of live tasks (`active.rs`) and wakes it: tasks
//!    that were waiting on something are scheduled, hence dropped (step 1). Tasks that were
//!    queued were dropped in step 2; a task that is running on a worker that has not exited is
//!    dropped when its poll returns.
//! 5. A `schedule` that raced with step 1 (checked `closed` too early) pushes its task, fences,
//!    and checks `closed` again: if set, it drains the shared queues itself. A task can thus not
//!    be stranded in a queue that nobody will read again.
//!
//! Each future is dropped exactly once: async-task guarantees it, and the tests count drops.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::active::Active;
use crate::context::{self, EnterGuard, WorkerRef};
use crate::idle::Idle;
use crate::metrics::{Counters, RuntimeMetrics, bump};
use crate::park::{Driver, Parking};
use crate::scheduler::{Notify, ScheduleReason, Scheduler};
use crate::sync::lock_std as lock;
use crate::task::{JoinHandle, Owner, Priority, Runnable, TaskFuture, TaskId, TaskMeta};
use crate::watchdog::{Polling, Watchdog};
use crate::worker::{DynScheduler, MainTask};

/// How to build a core runtime. The facade's `Builder` fills this in; most users never see it.
pub struct Config {
    /// Worker threads; `0` runs the single worker on the thread inside `block_on`.
    pub worker_threads: usize,
    /// Names worker thread `i`.
    pub thread_name: Arc<dyn Fn(usize) -> String + Send + Sync>,
    /// Stack size of the worker threads, or the platform default.
    pub thread_stack_size: Option<usize>,
    /// The I/O and timer driver, if any; without one, idle workers sleep on a condvar.
    pub driver: Option<Box<dyn Driver>>,
    /// Extra state for the layer above (reachable through [`Handle::extension`]).
    pub extension: Option<Arc<dyn Any + Send + Sync>>,
    /// The watchdog's threshold: a single poll that keeps a worker longer than this is reported
    /// (a `tracing` warning naming the task and the worker, and
    /// [`RuntimeMetrics::slow_polls`]). `None`: no watchdog.
    pub watchdog: Option<Duration>,
    /// The watchdog thread's name.
    pub watchdog_thread_name: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            worker_threads: 1,
            thread_name: Arc::new(|i| format!("rt-worker-{i}")),
            thread_stack_size: None,
            driver: None,
            extension: None,
            watchdog: None,
            watchdog_thread_name: "rt-watchdog".into(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("worker_threads", &self.worker_threads)
            .field("thread_stack_size", &self.thread_stack_size)
            .field("driver", &self.driver.is_some())
            .field("watchdog", &self.watchdog)
            .finish_non_exhaustive()
    }
}

/// Options for one spawn.
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    /// The task's name, shown in traces and watchdog reports.
    pub name: Option<String>,
    /// The task's priority; `None` inherits the spawning task's, or gives [`Priority::NORMAL`]
    /// outside a task.
    pub priority: Option<Priority>,
}

pub(crate) struct Shared {
    pub(crate) sched: Box<dyn DynScheduler>,
    pub(crate) idle: Idle,
    pub(crate) parking: Parking,
    pub(crate) active: Active,
    pub(crate) counters: Counters,
    pub(crate) watchdog: Option<Watchdog>,
    closed: AtomicBool,
    workers: usize,
    current_thread: bool,
    /// Worker threads that have not exited yet, and a condvar signalled on each exit.
    alive: Mutex<usize>,
    exited: Condvar,
    /// Current-thread mode: worker 0's state while no `block_on` drives it.
    ct_core: Mutex<Option<Box<dyn Any + Send>>>,
    /// Threads in `block_on` waiting for `ct_core`.
    ct_waiters: Mutex<Vec<Thread>>,
    extension: OnceLock<Arc<dyn Any + Send + Sync>>,
}

impl Shared {
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Schedules a runnable task: the policy stores it, core wakes a worker if needed. `here` is
    /// the calling thread's worker identity if it is one of this runtime's workers.
    #[inline]
    pub(crate) fn schedule(&self, task: Runnable, reason: ScheduleReason, here: Option<WorkerRef>) {
        let notify = self.sched.schedule_task(self, task, reason, here);
        if here.is_some() {
            // On one of our workers there is no race with shutdown: the worker drops what its
            // own state holds when it exits, and the last worker to exit drains the shared
            // queues after it. So no fence is needed unless someone must be woken (and with a
            // single worker, the caller is the one that will run the task).
            if notify != Notify::None && self.workers > 1 {
                std::sync::atomic::fence(Ordering::SeqCst);
                self.notify(notify);
            }
            return;
        }
        // Pairs with the fences of the parking protocol (idle.rs) and with the `closed` store of
        // shutdown (step 5 there).
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.closed.load(Ordering::Relaxed) {
            self.sched.drain_global();
            return;
        }
        self.notify(notify);
    }

    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// No worker can be in a poll: all of them are parked, or (current-thread mode) nobody is
    /// inside `block_on`. SeqCst, for the watchdog's dormancy protocol.
    pub(crate) fn nothing_to_watch(&self) -> bool {
        self.idle.all_parked() || (self.current_thread && lock(&self.ct_core).is_some())
    }

    /// Out of line: the hot paths of spawn and completion only test whether a task has a name.
    #[cold]
    #[inline(never)]
    fn named_task_spawned(&self, id: TaskId, name: &Arc<String>) {
        if let Some(dog) = &self.watchdog {
            lock(&dog.names).insert(id, name.clone());
        }
    }

    #[cold]
    #[inline(never)]
    fn named_task_done(&self, id: TaskId) {
        if let Some(dog) = &self.watchdog {
            lock(&dog.names).remove(&id);
        }
    }

    /// A worker is back from parking or starts driving.
    #[inline]
    pub(crate) fn worker_resumed(&self) {
        if let Some(dog) = &self.watchdog {
            dog.worker_resumed();
        }
    }

    /// The calling thread's worker identity, if it is one of this runtime's workers.
    #[inline]
    pub(crate) fn worker_here(&self) -> Option<WorkerRef> {
        context::current_worker().filter(|w| std::ptr::eq(w.shared, self))
    }

    pub(crate) fn notify(&self, notify: Notify) {
        match notify {
            Notify::None => {}
            Notify::Any => {
                if let Some(w) = self.idle.worker_to_notify() {
                    self.parking.unpark(w);
                }
            }
            Notify::Worker(i) if i < self.workers => {
                if self.idle.claim_worker(i) {
                    self.parking.unpark(i);
                }
            }
            Notify::Worker(_) => self.notify(Notify::Any),
        }
    }

    /// Polls one task on worker `index`.
    #[inline]
    pub(crate) fn run_task(&self, index: usize, task: Runnable) {
        let slot = &self.counters.workers[index];
        bump(&slot.polls, true);
        // For the watchdog (see watchdog.rs): a plain store before and after the poll.
        let _polling = Polling::start(&slot.current, task.metadata().id().as_u64());
        self.poll_task(task);
    }

    #[inline]
    fn poll_task(&self, task: Runnable) {
        // Checked first (one relaxed load): even a disabled span costs a construction, an
        // enter and an exit per poll, 4.5% of yield_many's instructions when measured.
        if tracing::level_enabled!(tracing::Level::TRACE) {
            let span = {
                let meta = task.metadata();
                tracing::trace_span!(
                    "poll",
                    task.id = meta.id().as_u64(),
                    task.name = meta.name()
                )
            };
            let _entered = span.enter();
            crate::coop::with_budget(|| task.run());
        } else {
            crate::coop::with_budget(|| task.run());
        }
    }

    fn worker_index_here(&self) -> Option<usize> {
        self.worker_here().map(|w| w.index)
    }

    pub(crate) fn task_done(
        &self,
        key: crate::active::ActiveKey,
        id: TaskId,
        named: bool,
        completed: bool,
    ) {
        self.active.remove(key);
        if named {
            self.named_task_done(id);
        }
        let (slot, owned) = self.counters.slot(self.worker_index_here());
        bump(&slot.completed, owned);
        if completed {
            tracing::debug!(task.id = id.as_u64(), "task completed");
        } else {
            tracing::debug!(task.id = id.as_u64(), "task cancelled");
        }
    }

    fn worker_exited(&self) {
        let mut alive = lock(&self.alive);
        if *alive == 1 {
            // The last one (exits are counted under the lock, so only one sees 1): drain the
            // shared queues *before* counting itself out, so that a shutdown waiting for the
            // workers finds every queued future dropped when it wakes.
            drop(alive);
            self.sched.drain_global();
            alive = lock(&self.alive);
        }
        *alive -= 1;
        drop(alive);
        self.exited.notify_all();
    }
}

/// Creates a task that belongs to no runtime, for pools that run tasks on threads of their own
/// (the blocking pool): `schedule` receives the runnable whenever the task must run, and
/// whoever holds it calls [`Runnable::run`](async_task::Runnable::run). The task gets the same
/// harness as any other: a panic reaches the [`JoinHandle`] as a `JoinError`, dropping the
/// runnable cancels the task, and the handle can be awaited from any runtime.
///
/// ```
/// let (runnable, handle) = runtime_core::spawn_unowned(async { 6 * 7 }, |_| {}, None);
/// runnable.run(); // completes in one poll
/// assert_eq!(futures_lite::future::block_on(handle).unwrap(), 42);
/// ```
pub fn spawn_unowned<F, S>(
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
        name.map(Arc::new),
        Priority::default(),
        None,
    );
    // The future borrows only the task's metadata, which async-task keeps alive for as long as
    // the future; the future, its output and `schedule` are `Send + 'static` (and `Sync`).
    // SAFETY: per the above, `spawn_unchecked`'s conditions hold.
    let (runnable, task) = unsafe {
        async_task::Builder::new().metadata(meta).spawn_unchecked(
            move |meta: &TaskMeta| TaskFuture {
                meta,
                future: Some(future),
            },
            schedule,
        )
    };
    (runnable, JoinHandle::new(task))
}

/// The schedule function of every task (zero-sized: the runtime is found in the metadata).
fn schedule_fn(task: Runnable, info: async_task::ScheduleInfo) {
    let reason = if info.woken_while_running {
        ScheduleReason::Yield
    } else {
        ScheduleReason::Wake
    };
    let Some(owner) = &task.metadata().owner else {
        return; // not spawned by a runtime (cannot happen for tasks made by `spawn_with`)
    };
    let shared: *const Shared = Arc::as_ptr(&owner.shared);
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
        let shared = owner.shared.clone();
        shared.schedule(task, reason, None);
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
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_with(future, SpawnOptions::default())
    }

    /// Spawns a task with a name and a priority.
    pub fn spawn_with<F>(&self, future: F, options: SpawnOptions) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let shared = &self.shared;
        let id = TaskId::next();
        let name = options.name.map(Arc::new);
        // A task spawned by a task inherits its priority unless told otherwise.
        let priority = options
            .priority
            .or_else(crate::task::current_priority)
            .unwrap_or_default();
        let (runnable, task) = shared.active.insert(id, &shared.closed, |key| {
            let owner = Owner {
                shared: shared.clone(),
                key,
            };
            if let (Some(name), Some(_)) = (&name, key) {
                shared.named_task_spawned(id, name);
            }
            let meta = TaskMeta::new(id, name, priority, Some(owner));
            // The future borrows only the task's metadata, which async-task keeps alive for as
            // long as the future (the crate's documented use of `spawn_unchecked`); otherwise the
            // future and its output are `Send + 'static` and the schedule function is
            // `Send + Sync + 'static`, so the runnable and its wakers may go to any thread.
            // SAFETY: per the above, `spawn_unchecked`'s conditions hold.
            let (runnable, task) = unsafe {
                async_task::Builder::new().metadata(meta).spawn_unchecked(
                    move |meta: &TaskMeta| TaskFuture {
                        meta,
                        future: Some(future),
                    },
                    async_task::WithInfo(schedule_fn),
                )
            };
            let waker = key.map(|_| runnable.waker());
            ((runnable, task), waker)
        });
        let handle = JoinHandle::new(task);
        if shared.is_closed() {
            // Never started: dropping the runnable cancels the task.
            drop(runnable);
            return handle;
        }
        let (slot, owned) = shared.counters.slot(shared.worker_index_here());
        bump(&slot.spawned, owned);
        tracing::debug!(
            task.id = id.as_u64(),
            task.name = runnable.metadata().name(),
            "spawn"
        );
        let here = shared.worker_here();
        shared.schedule(runnable, ScheduleReason::Spawn, here);
        handle
    }

    /// Makes this runtime the current one on this thread until the guard is dropped, so that
    /// the free `spawn` functions and the resource types find it.
    pub fn enter(&self) -> EnterGuard {
        context::enter(self.clone())
    }

    /// A snapshot of the runtime's counters.
    pub fn metrics(&self) -> RuntimeMetrics {
        let mut m = self.shared.counters.snapshot();
        m.tasks_alive = m.tasks_spawned.saturating_sub(m.tasks_completed);
        m.scheduler = self.shared.sched.metrics(None);
        for (i, w) in m.workers.iter_mut().enumerate() {
            w.scheduler = self.shared.sched.metrics(Some(i));
            if let Some(dog) = &self.shared.watchdog {
                w.slow_polls = dog.slow_polls[i].load(Ordering::Relaxed);
            }
        }
        m.slow_polls = m.workers.iter().map(|w| w.slow_polls).sum();
        m
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

    /// The extra state that the layer above attached at build time.
    pub fn extension(&self) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.shared.extension.get()
    }

    /// Whether two handles refer to the same runtime.
    pub fn ptr_eq(&self, other: &Handle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

/// A running runtime: worker threads executing tasks with one scheduling policy.
///
/// Dropping it shuts it down (see the module docs): every task is cancelled and its future
/// dropped, and the worker threads are joined.
pub struct Runtime {
    handle: Handle,
    threads: Vec<thread::JoinHandle<()>>,
    watchdog: Option<thread::JoinHandle<()>>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("handle", &self.handle)
            .finish()
    }
}

impl Runtime {
    /// Starts a runtime that schedules with `scheduler`.
    ///
    /// Fails only if a worker thread cannot be started.
    pub fn new<S: Scheduler>(mut scheduler: S, config: Config) -> io::Result<Runtime> {
        let current_thread = config.worker_threads == 0;
        let workers = config.worker_threads.max(1);
        if workers > crate::idle::MAX_WORKERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "worker_threads = {workers}: at most {} workers are supported",
                    crate::idle::MAX_WORKERS
                ),
            ));
        }
        scheduler.init(workers);
        let locals: Vec<Box<dyn Any + Send>> =
            (0..workers).map(|i| scheduler.new_local_boxed(i)).collect();
        let shared = Arc::new(Shared {
            sched: Box::new(scheduler),
            idle: Idle::new(workers),
            parking: Parking::new(workers, config.driver),
            active: Active::new(workers),
            counters: Counters::new(workers),
            watchdog: config.watchdog.map(|t| Watchdog::new(t, workers)),
            closed: AtomicBool::new(false),
            workers,
            current_thread,
            alive: Mutex::new(0),
            exited: Condvar::new(),
            ct_core: Mutex::new(None),
            ct_waiters: Mutex::new(Vec::new()),
            extension: OnceLock::new(),
        });
        if let Some(ext) = config.extension {
            let _ = shared.extension.set(ext);
        }
        let mut rt = Runtime {
            handle: Handle {
                shared: shared.clone(),
            },
            threads: Vec::new(),
            watchdog: None,
        };
        if shared.watchdog.is_some() {
            rt.watchdog = Some(crate::watchdog::start(
                shared.clone(),
                config.watchdog_thread_name,
            )?);
        }
        if current_thread {
            *lock(&shared.ct_core) = locals.into_iter().next();
            return Ok(rt);
        }
        for (index, mut local) in locals.into_iter().enumerate() {
            let mut builder = thread::Builder::new().name((config.thread_name)(index));
            if let Some(size) = config.thread_stack_size {
                builder = builder.stack_size(size);
            }
            let shared2 = shared.clone();
            *lock(&shared.alive) += 1;
            let spawned = builder.spawn(move || {
                struct Exit<'a>(&'a Shared);
                impl Drop for Exit<'_> {
                    fn drop(&mut self) {
                        self.0.worker_exited();
                    }
                }
                let _exit = Exit(&shared2);
                let _enter = context::enter(Handle {
                    shared: shared2.clone(),
                });
                let _driving = context::enter_driving();
                shared2.sched.run_worker(&shared2, index, &mut *local, None);
                shared2.sched.drain_local(index, &mut *local);
            });
            match spawned {
                Ok(t) => rt.threads.push(t),
                Err(e) => {
                    *lock(&shared.alive) -= 1;
                    // `rt` drops here and stops the workers already started.
                    return Err(e);
                }
            }
        }
        Ok(rt)
    }

    /// A handle to this runtime.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Spawns a task.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs `future` to completion on the current thread, with this runtime as the current one.
    ///
    /// In current-thread mode this thread is also the runtime's only worker: spawned tasks run
    /// here while `future` waits.
    ///
    /// # Panics
    ///
    /// If this thread is already driving a runtime (a worker thread, or inside another
    /// `block_on`): blocking there would stall it. The message says what to do instead.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _driving = context::enter_driving().unwrap_or_else(|msg| panic!("{msg}"));
        let _enter = context::enter(self.handle.clone());
        if self.handle.shared.current_thread {
            self.block_on_current_thread(future)
        } else {
            futures_lite::future::block_on(future)
        }
    }

    fn block_on_current_thread<F: Future>(&self, future: F) -> F::Output {
        let shared = &self.handle.shared;
        let mut future = std::pin::pin!(future);
        let waker_state = Arc::new(MainWaker {
            woken: AtomicBool::new(true),
            thread: thread::current(),
            shared: shared.clone(),
        });
        let waker = Waker::from(waker_state.clone());
        loop {
            let core = lock(&shared.ct_core).take();
            if let Some(core) = core {
                struct Return<'a> {
                    shared: &'a Shared,
                    core: Option<Box<dyn Any + Send>>,
                }
                impl Drop for Return<'_> {
                    fn drop(&mut self) {
                        *lock(&self.shared.ct_core) = self.core.take();
                        for t in lock(&self.shared.ct_waiters).drain(..) {
                            t.unpark();
                        }
                    }
                }
                let mut main = Main {
                    future: future.as_mut(),
                    state: &waker_state,
                    waker: &waker,
                    output: None,
                };
                {
                    // The guard owns the core during the run, so that a panic unwinding out of
                    // the main future still returns it for the next `block_on`.
                    let mut ret = Return {
                        shared,
                        core: Some(core),
                    };
                    let core = ret.core.as_deref_mut().expect("just stored");
                    shared.sched.run_worker(shared, 0, core, Some(&mut main));
                }
                if let Some(out) = main.output {
                    return out;
                }
                panic!("the runtime was shut down while `block_on` was running");
            }
            // Another thread drives the runtime: poll our future here until it completes or
            // the worker becomes free.
            lock(&shared.ct_waiters).push(thread::current());
            if waker_state.woken.swap(false, Ordering::AcqRel) {
                let mut cx = Context::from_waker(&waker);
                if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                    return out;
                }
            }
            if lock(&shared.ct_core).is_none() {
                thread::park();
            }
        }
    }

    /// Makes this runtime the current one on this thread until the guard is dropped.
    pub fn enter(&self) -> EnterGuard {
        self.handle.enter()
    }

    /// A snapshot of the runtime's counters.
    pub fn metrics(&self) -> RuntimeMetrics {
        self.handle.metrics()
    }

    /// Shuts down, waiting at most `timeout` for workers stuck in a poll; those are left to
    /// finish in the background (their tasks are dropped when their poll returns).
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown(Some(timeout));
    }

    /// Shuts down without waiting for the worker threads.
    pub fn shutdown_background(mut self) {
        self.shutdown(Some(Duration::ZERO));
    }

    fn shutdown(&mut self, timeout: Option<Duration>) {
        let shared = &self.handle.shared;
        if shared.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::debug!("runtime shutting down");
        for i in 0..shared.workers {
            shared.parking.unpark(i);
        }
        for t in lock(&shared.ct_waiters).drain(..) {
            t.unpark();
        }
        // A worker cannot wait for itself (the runtime dropped from inside one of its tasks).
        let me = thread::current().id();
        let own = usize::from(self.threads.iter().any(|t| t.thread().id() == me));
        let deadline = timeout.map(|t| Instant::now().checked_add(t));
        let mut alive = lock(&shared.alive);
        while *alive > own {
            alive = match deadline {
                None | Some(None) => shared.exited.wait(alive).unwrap_or_else(|e| e.into_inner()),
                Some(Some(d)) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    shared
                        .exited
                        .wait_timeout(alive, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        let all_exited = *alive <= own;
        drop(alive);
        if let Some(dog) = &shared.watchdog {
            dog.stop();
        }
        if let Some(t) = self.watchdog.take() {
            // It exits at once when told to; not from its own thread (a report's subscriber
            // dropping the runtime).
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
        for t in std::mem::take(&mut self.threads) {
            // Every worker has counted itself out: only thread teardown is left, join them.
            // Otherwise join those that are done and leave the stuck ones running.
            if t.thread().id() != me && (all_exited || t.is_finished()) {
                let _ = t.join();
            }
        }
        if let Some(mut core) = lock(&shared.ct_core).take() {
            shared.sched.drain_local(0, &mut *core);
        }
        if *lock(&shared.alive) == 0 {
            shared.sched.drain_global();
        }
        for waker in shared.active.drain() {
            waker.wake();
        }
        if *lock(&shared.alive) == 0 {
            shared.sched.drain_global();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}

struct MainWaker {
    woken: AtomicBool,
    thread: Thread,
    shared: Arc<Shared>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.shared.parking.unpark(0);
            self.thread.unpark();
        }
    }
}

struct Main<'a, T> {
    future: Pin<&'a mut dyn Future<Output = T>>,
    state: &'a MainWaker,
    waker: &'a Waker,
    output: Option<T>,
}

impl<T> MainTask for Main<'_, T> {
    fn take_woken(&self) -> bool {
        self.state.woken.load(Ordering::Acquire) && self.state.woken.swap(false, Ordering::AcqRel)
    }

    fn poll(&mut self) -> bool {
        let mut cx = Context::from_waker(self.waker);
        match self.future.as_mut().poll(&mut cx) {
            Poll::Ready(v) => {
                self.output = Some(v);
                true
            }
            Poll::Pending => false,
        }
    }
}
