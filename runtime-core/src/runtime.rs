//! [`Runtime`]: starting the workers, `block_on`, and shutdown.
//!
//! # Shutdown
//!
//! 1. `closed` is set (SeqCst). From then on a spawn is cancelled at once, and `schedule` drops
//!    the runnable it is given instead of queueing it (which cancels the task and drops its
//!    future, on the thread that woke it).
//! 2. Every worker is unparked. A worker sees `closed` at the top of its loop (so a task that is
//!    being polled finishes that poll), puts its state back into `Shared::states` and, under
//!    that slot's lock, drops every task the policy's `drain` hands back with it (its own
//!    queues and the shared ones). As it stops driving the worker it empties the worker's
//!    nursery (the registry's entries of the tasks spawned on it: it wakes the live ones, which
//!    are then dropped as in step 1), then exits.
//! 3. The shutting-down thread waits for the workers (without limit, up to a timeout, or not at
//!    all for `shutdown_background`), and joins those that exited.
//!    Then it drains with every worker state that is not in use (current-thread mode: worker
//!    0's, when no `block_on` holds it), and empties the nurseries of the workers that nobody
//!    drives (also those of a worker whose state an ejected policy took with it).
//! 4. It takes every entry out of the registry's shards (`active.rs`), and a reference to each
//!    live task of the nurseries of workers still running, and wakes them: tasks that were
//!    waiting on something are scheduled, hence dropped (step 1). Tasks that were
//!    queued were dropped in step 2; a task that is running on a worker that has not exited is
//!    dropped when its poll returns.
//! 5. A `schedule` that raced with step 1 (checked `closed` too early) pushes its task, fences,
//!    and checks `closed` again: if set, it drains with every worker state that is not in use,
//!    taking each slot's lock. A worker that still runs drains under that lock when it stops:
//!    either it does so after the push (and sees the task), or the racing thread finds its
//!    state back in the slot. A task can thus not be stranded in a queue that nobody will
//!    read again.
//!
//! Each future is dropped exactly once: the task cell guarantees it, and the tests count drops.

use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::active::Active;
use crate::config::Config;
use crate::context::{self, EnterGuard};
use crate::handle::Handle;
use crate::idle::Idle;
use crate::metrics::{Counters, RuntimeMetrics};
use crate::park::Parking;
use crate::scheduler::Scheduler;
use crate::shared::Shared;
use crate::sync::lock_unpoisoned as lock;
use crate::task::JoinHandle;
use crate::watchdog::Watchdog;
use crate::worker::DynScheduler;

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
        // A policy that panics while it is set up is refused with an error naming it and the
        // method (the builder reports it), not a panic out of the constructor.
        let name = scheduler.name().to_owned();
        let refused = |method: &'static str, p: crate::worker::Panic| {
            let message = crate::fault::panic_message(&*p);
            tracing::error!(policy = %name, method, panic = %message, "the scheduling policy failed while the runtime started");
            io::Error::other(crate::fault::PolicyPanicked {
                policy: name.clone(),
                method,
                message,
            })
        };
        let setup = catch_unwind(AssertUnwindSafe(|| {
            scheduler.init(workers);
            scheduler.hooks()
        }));
        let hooks = setup.map_err(|p| refused("init", p))?;
        let states = catch_unwind(AssertUnwindSafe(|| {
            (0..workers)
                .map(|i| Mutex::new(Some(scheduler.new_state(i))))
                .collect::<Box<[_]>>()
        }))
        .map_err(|p| refused("new_local", p))?;
        let (task_hooks, thread_hooks) = config.hooks.split();
        let shared = Arc::new(Shared {
            policy: crate::policy::Policy::new(Box::new(scheduler)),
            hooks,
            idle: Idle::new(workers),
            parking: Parking::new(workers, config.driver),
            active: Active::new(workers),
            counters: Counters::new(workers),
            watchdog: config
                .watchdog
                .map(|t| Watchdog::new(t, config.policy_stall_timeout, workers)),
            closed: AtomicBool::new(false),
            workers,
            current_thread,
            alive: Mutex::new(0),
            exited: Condvar::new(),
            states,
            ct_driven: Mutex::new(false),
            ct_waiters: Mutex::new(Vec::new()),
            extensions: config.extensions,
            task_hooks,
            thread_hooks,
            histograms: config
                .histograms
                .map(|c| Box::new(crate::histogram::Histograms::new(c, workers))),
        });
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
            return Ok(rt);
        }
        // Workers report where the runtime's creator traces (as the watchdog does).
        let dispatch = crate::fault::creators_subscriber();
        for index in 0..workers {
            let dispatch = dispatch.clone();
            let mut builder = thread::Builder::new().name((config.thread_name)(index));
            if let Some(size) = config.thread_stack_size {
                builder = builder.stack_size(size);
            }
            let shared2 = shared.clone();
            *lock(&shared.alive) += 1;
            let spawned = builder.spawn(move || {
                /// Counts the worker out when its thread ends, even by a panic.
                struct CountOut<'a>(&'a Shared);
                impl Drop for CountOut<'_> {
                    fn drop(&mut self) {
                        self.0.worker_exited();
                    }
                }
                let _count_out = CountOut(&shared2);
                let _enter = context::enter(Handle {
                    shared: shared2.clone(),
                });
                let _driving = context::enter_driving();
                crate::fault::with_subscriber(dispatch.as_ref(), || {
                    shared2.thread_hooks.started();
                    crate::shared::drive(&shared2, index, None);
                    shared2.thread_hooks.stopped();
                });
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
    #[track_caller]
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
        // Polled with a fresh budget each time, as a task is: a loop over resources that are
        // always ready yields here too (and, in current-thread mode, lets the tasks run).
        let mut future = std::pin::pin!(future);
        let future =
            std::future::poll_fn(move |cx| crate::coop::with_budget(|| future.as_mut().poll(cx)));
        if self.handle.shared.current_thread {
            crate::block_on::block_on_current_thread(&self.handle.shared, future)
        } else {
            futures_lite::future::block_on(future)
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
        shared.drain_stopped();
        for task in shared.active.drain() {
            task.wake();
        }
        shared.drain_stopped();
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}

/// Shutdown step 5 (module docs) as a model: a schedule racing with the close either finds
/// `closed` set after its push (and drains itself) or pushed before the closer's drain. The
/// queue is a counter; `stranded` is what is left in it once both are done.
#[cfg(all(test, rt_loom))]
mod loom_tests {
    use crate::sync::{AtomicBool, AtomicUsize, fence};
    use loom::sync::Arc;
    use std::sync::atomic::Ordering::{Relaxed, SeqCst};

    fn round(check_before_push_only: bool) {
        let queue = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicBool::new(false));
        let scheduler = {
            let (queue, closed) = (queue.clone(), closed.clone());
            loom::thread::spawn(move || {
                // The first check (in schedule_task): closed means drop the task.
                if closed.load(SeqCst) {
                    return;
                }
                queue.fetch_add(1, SeqCst);
                if check_before_push_only {
                    return; // the bug: no second look after the push
                }
                // Push, fence, look again: closed means drain it ourselves.
                fence(SeqCst);
                if closed.load(Relaxed) {
                    queue.store(0, SeqCst);
                }
            })
        };
        // The closer: set closed, then drain what is queued (the workers' drains).
        closed.store(true, SeqCst);
        fence(SeqCst);
        queue.store(0, SeqCst);
        scheduler.join().unwrap();
        assert_eq!(queue.load(SeqCst), 0, "a task is stranded in a queue");
    }

    /// No interleaving strands a task.
    #[test]
    fn a_schedule_racing_with_shutdown_strands_nothing() {
        loom::model(|| round(false));
    }

    /// Without the second look after the push, a task can be stranded, and the model finds it.
    #[test]
    #[should_panic(expected = "stranded")]
    fn without_the_second_look_a_task_is_stranded() {
        loom::model(|| round(true));
    }
}
