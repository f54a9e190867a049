//! The state every thread of a runtime shares: the policy, the idle and park protocols, the
//! registry of live tasks, counters; and the paths every task takes through them (schedule,
//! poll, completion, the drain at shutdown).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::Thread;

use crate::active::Active;
use crate::config::Extensions;
use crate::context::{self, WorkerRef};
use crate::idle::Idle;
use crate::metrics::{Counters, bump};
use crate::park::Parking;
use crate::policy::Policy;
use crate::scheduler::{Hooks, Notify, ScheduleInfo, ScheduleReason, Scheduler};
use crate::sync::lock_unpoisoned as lock;
use crate::task::{Runnable, TaskMeta};
use crate::watchdog::{PollMark, Watchdog};
use crate::worker::{DynScheduler, MainTask, WorkerState};

pub(crate) struct Shared {
    /// The policy, and the fallback it is replaced by if it fails (policy.rs).
    pub(crate) policy: Policy,
    pub(crate) idle: Idle,
    pub(crate) parking: Parking,
    pub(crate) active: Active,
    pub(crate) counters: Counters,
    pub(crate) watchdog: Option<Watchdog>,
    /// The policy's optional operations, read once at build.
    pub(crate) hooks: Hooks,
    pub(crate) closed: AtomicBool,
    pub(crate) workers: usize,
    pub(crate) current_thread: bool,
    /// Worker threads that have not exited yet, and a condvar signalled on each exit.
    pub(crate) alive: Mutex<usize>,
    pub(crate) exited: Condvar,
    /// Each worker's policy state while that worker is not running (`None` while it runs: its
    /// thread holds it). In current-thread mode, worker 0's state is here while no `block_on`
    /// drives it.
    pub(crate) states: Box<[Mutex<Option<WorkerState>>]>,
    /// Current-thread mode: whether a `block_on` drives worker 0, and the threads in
    /// `block_on` waiting for it to be free.
    pub(crate) ct_driven: Mutex<bool>,
    pub(crate) ct_waiters: Mutex<Vec<Thread>>,
    pub(crate) extensions: Extensions,
    /// The task hooks, boxed only when one is set (hooks.rs).
    pub(crate) task_hooks: Option<Box<crate::hooks::TaskHooks>>,
    pub(crate) thread_hooks: crate::hooks::ThreadHooks,
    /// Poll-time and schedule-latency histograms, when on.
    pub(crate) histograms: Option<Box<crate::histogram::Histograms>>,
}

thread_local! {
    /// The runnables of closed runtimes that this thread has yet to drop, while it is dropping
    /// one (see [`drop_closed`]); `None` when it is not.
    static DROPPING: std::cell::RefCell<Option<Vec<Runnable>>> =
        const { std::cell::RefCell::new(None) };
}

/// Drops the runnable of a task woken after its runtime closed, which cancels the task: its
/// future is dropped here. Unless this thread is already dropping one: a future's destructor
/// may wake another task while it holds a lock (h2's connection does), and that task's
/// destructor may take the same lock. So a drop inside a drop is queued, and the outermost one
/// drops the queue after its own, once the destructors that woke them have returned.
pub(crate) fn drop_closed(task: Runnable) {
    let first = DROPPING.try_with(|d| {
        let mut d = d.borrow_mut();
        match d.as_mut() {
            Some(queue) => {
                queue.push(task);
                None
            }
            None => {
                *d = Some(Vec::new());
                Some(task)
            }
        }
    });
    let task = match first {
        Ok(None) => return,
        Ok(Some(task)) => task,
        // The thread is exiting: no queue, drop it now.
        Err(_) => return,
    };
    /// Resets the queue even if a destructor panics (the harness catches the future's own).
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            let rest = DROPPING.with(|d| d.borrow_mut().take());
            drop(rest);
        }
    }
    let _done = Done;
    drop(task);
    while let Some(next) = DROPPING.with(|d| d.borrow_mut().as_mut().and_then(Vec::pop)) {
        drop(next);
    }
}

impl Shared {
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Schedules a runnable task: the policy stores it, core wakes a worker if needed. `here` is
    /// the calling thread's worker identity if it is one of this runtime's workers.
    #[inline(always)]
    pub(crate) fn schedule(&self, task: Runnable, reason: ScheduleReason, here: Option<WorkerRef>) {
        let Some(w) = here.filter(|_| !self.policy.is_ejected()) else {
            return self.schedule_elsewhere(task, reason);
        };
        // This thread is in the policy's worker loop (`here` is set only there, and a worker
        // switches to the fallback's loop only after seeing `ejected`).
        // SAFETY: counted in the policy's loop, `ejected` unset (policy.rs).
        let primary = unsafe { self.policy.primary() };
        let scheduled = catch_unwind(AssertUnwindSafe(|| {
            primary.schedule_task(self, task, reason, here)
        }));
        match scheduled {
            // On one of our workers there is no race with shutdown: this worker drains (its
            // own state and the shared queues) when it stops, after this call. So no fence is
            // needed unless someone must be woken (and with a single worker, the caller is the
            // one that will run the task).
            Ok(Some(notify)) => {
                bump(&self.counters.workers[w.index].scheduled, true);
                if notify != Notify::None && self.workers > 1 {
                    std::sync::atomic::fence(Ordering::SeqCst);
                    self.notify(notify);
                }
            }
            // Closed: the task was dropped, nothing was queued. (Draining here could deadlock:
            // this may be a destructor running inside a drain that holds a state's lock.)
            Ok(None) => {}
            Err(p) => self.policy_panicked("schedule", p),
        }
    }

    #[cold]
    #[inline(never)]
    fn policy_panicked(&self, method: &str, payload: crate::worker::Panic) {
        self.policy.eject(self, method, &*payload);
    }

    /// `schedule` from a thread that is not one of this runtime's workers, or after an
    /// ejection. Out of line: the worker-local path above is the hot one.
    #[inline(never)]
    fn schedule_elsewhere(&self, task: Runnable, reason: ScheduleReason) {
        if !self.policy.enter(self) {
            return self.schedule_fallback(task);
        }
        // SAFETY: counted in by `enter`, `ejected` unset.
        let primary = unsafe { self.policy.primary() };
        let scheduled = catch_unwind(AssertUnwindSafe(|| {
            primary.schedule_task(self, task, reason, None)
        }));
        match scheduled {
            Ok(Some(notify)) => {
                // Pairs with the fences of the parking protocol (idle.rs) and with the
                // `closed` store of shutdown (step 5 in runtime.rs).
                std::sync::atomic::fence(Ordering::SeqCst);
                if self.closed.load(Ordering::Relaxed) {
                    self.policy.exit_scheduled(self);
                    self.drain_stopped();
                    return;
                }
                self.notify(notify);
                self.policy.exit_scheduled(self);
                return;
            }
            Ok(None) => {}
            Err(p) => self.policy_panicked("schedule", p),
        }
        self.policy.exit(self);
    }

    /// Schedules on the fallback policy (after an ejection), with the same shutdown race
    /// handling as the policy's own foreign path.
    pub(crate) fn schedule_fallback(&self, task: Runnable) {
        if self.is_closed() {
            drop_closed(task);
            return;
        }
        let info = ScheduleInfo::new(ScheduleReason::Wake, None);
        let notify = self.policy.fallback.schedule(task, info, None);
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.closed.load(Ordering::Relaxed) {
            self.drain_fallback();
            return;
        }
        self.notify(notify);
    }

    fn drain_fallback(&self) {
        while let Some(task) = self.policy.fallback.drain(0, &mut ()) {
            drop(task);
        }
    }

    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// About how many tasks the policy holds: handed to `schedule`, not yet handed out by `next`
    /// (each task handed out is polled once). Exact only while nothing moves: the stall check
    /// reads it while every worker is parked.
    pub(crate) fn held_by_policy(&self) -> u64 {
        let workers: u64 = self
            .counters
            .workers
            .iter()
            .map(|w| w.scheduled.load(Ordering::Relaxed))
            .sum();
        (workers + self.policy.foreign_scheduled()).saturating_sub(self.counters.total_polls())
    }

    /// Current-thread mode: whether a `block_on` drives worker 0.
    pub(crate) fn ct_is_driven(&self) -> bool {
        *lock(&self.ct_driven)
    }

    /// No worker can be in a poll: all of them are parked, or (current-thread mode) nobody is
    /// inside `block_on`. SeqCst, for the watchdog's dormancy protocol.
    pub(crate) fn nothing_to_watch(&self) -> bool {
        self.idle.all_parked() || (self.current_thread && !*lock(&self.ct_driven))
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
        if let Some(h) = self.histograms.as_deref() {
            return self.run_task_timed(h, index, task);
        }
        self.run_task_plain(index, task);
    }

    #[inline(always)]
    fn run_task_plain(&self, index: usize, task: Runnable) {
        let slot = &self.counters.workers[index];
        bump(&slot.polls, true);
        // For the watchdog (see watchdog.rs): a plain store before and after the poll.
        let _polling = PollMark::start(&slot.current, task.metadata().id().as_u64());
        self.poll_task(task);
    }

    /// A poll with its time and its schedule latency recorded (histograms on): out of line,
    /// so that the common path keeps its registers.
    #[inline(never)]
    fn run_task_timed(&self, h: &crate::histogram::Histograms, index: usize, task: Runnable) {
        let meta = task.metadata();
        let class = h.class_of(meta.priority());
        let woken = meta.woken_at();
        let start = std::time::Instant::now();
        self.run_task_plain(index, task);
        h.record(index, class, woken, start, std::time::Instant::now());
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

    #[inline]
    pub(crate) fn worker_index_here(&self) -> Option<usize> {
        self.worker_here().map(|w| w.index)
    }

    pub(crate) fn task_done(
        &self,
        key: Option<crate::active::ActiveKey>,
        meta: &TaskMeta,
        completed: bool,
    ) {
        // A task in a nursery has no key: its entry goes when its worker next compacts.
        if let Some(key) = key {
            self.active.remove(key);
        }
        let id = meta.id();
        if self.hooks.wants_task_ended() && !meta.is_local() && !self.policy.is_ejected() {
            self.policy
                .with_primary(self, "task_ended", |p| p.task_ended(meta));
        }
        if !completed {
            crate::policy::note_cancelled();
        }
        let (slot, owned) = self.counters.slot(self.worker_index_here());
        bump(&slot.completed, owned);
        if let Some(hooks) = &self.task_hooks {
            hooks.terminated(meta);
        }
        if completed {
            tracing::debug!(task.id = id.as_u64(), "task completed");
        } else {
            tracing::debug!(task.id = id.as_u64(), "task cancelled");
        }
    }

    /// Worker `index`'s thread stops running it: its state goes back to `states`, and if the
    /// runtime is closing, everything the policy still holds that this state reaches is dropped
    /// (under the slot's lock, so a racing `drain_stopped` waits for it and then finds nothing).
    ///
    /// The caller is counted in the policy's loop (policy.rs): the policy is still there. After
    /// an ejection the state is only put back: retiring the policy drains it.
    pub(crate) fn worker_stopped(&self, index: usize, state: WorkerState) {
        let mut slot = lock(&self.states[index]);
        if self.is_closed() && !self.policy.is_ejected() {
            // SAFETY: counted in the policy's loop, `ejected` unset.
            let primary = unsafe { self.policy.primary() };
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| primary.drain_state(index, &state))) {
                self.policy.eject(self, "drain", &*p);
            }
        }
        *slot = Some(state);
    }

    /// Drains, with each worker's state that is not in use, every task the policy still holds
    /// (shutdown step 2 and 5). A worker that is still running drains when it stops.
    ///
    /// After an ejection, the fallback's queue (the ejected policy's states are drained when it
    /// is retired).
    pub(crate) fn drain_stopped(&self) {
        self.policy.with_primary(self, "drain", |primary| {
            for (index, slot) in self.states.iter().enumerate() {
                if let Some(state) = lock(slot).as_ref() {
                    primary.drain_state(index, state);
                }
            }
        });
        self.drain_fallback();
        if self.is_closed() {
            crate::active::cancel(self.active.take_undriven());
        }
    }

    /// A worker thread has exited (after `worker_stopped`).
    pub(crate) fn worker_exited(&self) {
        *lock(&self.alive) -= 1;
        self.exited.notify_all();
    }
}

/// A worker's state, taken out of `Shared::states` by the thread that runs the worker; given
/// back (and drained, if the runtime is closing) when the lease is dropped, even by a panic.
pub(crate) struct StateLease<'a> {
    shared: &'a Shared,
    index: usize,
    state: Option<WorkerState>,
}

impl<'a> StateLease<'a> {
    /// Worker `index`'s state, unless another thread runs that worker.
    pub(crate) fn take(shared: &'a Shared, index: usize) -> Option<StateLease<'a>> {
        let state = lock(&shared.states[index]).take()?;
        Some(StateLease {
            shared,
            index,
            state: Some(state),
        })
    }

    pub(crate) fn state(&self) -> &WorkerState {
        self.state.as_ref().expect("held until drop")
    }
}

impl Drop for StateLease<'_> {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            self.shared.worker_stopped(self.index, state);
        }
    }
}

/// Runs worker `index` on this thread (a worker thread, or `block_on` in current-thread mode)
/// until the runtime closes or `main` finishes: the policy's loop, and, if the policy is ejected
/// meanwhile, the fallback's.
pub(crate) fn drive<'m>(
    shared: &Arc<Shared>,
    index: usize,
    mut main: Option<&mut (dyn MainTask + 'm)>,
) {
    let policy = &shared.policy;
    // This thread owns the worker's nursery until it returns (even by a panic); stopping after
    // the close, it empties it.
    struct Lease<'a>(&'a Shared, usize);
    impl Drop for Lease<'_> {
        fn drop(&mut self) {
            let closed = self.0.is_closed();
            // SAFETY: taken below, by this thread.
            crate::active::cancel(unsafe { self.0.active.end_lease(self.1, closed) });
        }
    }
    shared.active.lease(index);
    let _lease = Lease(shared, index);
    if policy.enter_loop(shared) {
        let lease = StateLease::take(shared, index).expect("one thread drives each worker");
        // SAFETY: counted in the policy's loop, `ejected` unset.
        let primary = unsafe { policy.primary() };
        let ran = primary.run_worker(shared, index, lease.state(), main.as_deref_mut(), true);
        if let Err(p) = ran {
            // The loop calls only `next` and `account` of the policy.
            policy.eject(shared, "next` or `account", &*p);
        }
        // The state goes back while this thread still counts in the loop (policy.rs).
        drop(lease);
        policy.leave_loop(shared);
    }
    let finished = main.as_ref().is_some_and(|m| m.finished());
    if finished || shared.is_closed() || !policy.is_ejected() {
        return;
    }
    let state = policy.fallback.new_state(index);
    if let Err(p) = policy
        .fallback
        .run_worker(shared, index, &state, main, false)
    {
        // The fallback is ours; a panic here is a bug of the runtime: report, do not hide it.
        crate::fault::report_panic("the fallback policy", &*p);
    }
}
