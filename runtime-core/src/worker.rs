//! The worker loop, generic over the scheduler, and the type-erased view of a scheduler that
//! the rest of the runtime uses.
//!
//! Tasks reach their scheduler through `dyn DynScheduler` (one indirect call per schedule), so
//! that spawning is generic only over the future, and a runtime built from an environment
//! variable or a user's own policy has the same type as any other. The worker loop itself is
//! monomorphised per scheduler: `next` is a direct call.
//!
//! Each worker's state lives in a [`WorkerState`] box that core keeps (`Shared::states`): the
//! worker's thread takes it while it runs and puts it back when it stops, so that the state
//! can still be drained after the worker is gone.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::context::{self, WorkerRef};
use crate::scheduler::{MetricsVisitor, Notify, ScheduleInfo, ScheduleReason, Scheduler};
use crate::service::{PollClock, Service};
use crate::shared::Shared;
use crate::task::{Runnable, TaskMeta};
use crate::watchdog::{MAIN_POLL, PollMark};

/// One worker's policy state, type-erased: a `RefCell<S::Local>` for the runtime's scheduler
/// `S`. Boxed, so that its address (which `WorkerRef::local` holds) does not move.
pub(crate) type WorkerState = Box<dyn Any + Send>;

/// The main future of `block_on` in current-thread mode, polled by worker 0 between tasks.
pub(crate) trait MainTask {
    /// Whether the main future was woken since its last poll (clears the flag).
    fn take_woken(&self) -> bool;
    /// Polls the main future; true once it has completed (or panicked: the panic is kept for
    /// `block_on` to resume once the worker is back in order).
    fn poll(&mut self) -> bool;
    /// Whether it has completed or panicked.
    fn finished(&self) -> bool;
}

/// A panic payload.
pub(crate) type Panic = Box<dyn Any + Send>;

pub(crate) trait DynScheduler: Send + Sync + 'static {
    /// Hands a runnable task to the policy and returns whom to wake; `None` if the runtime is
    /// closed (the task was dropped instead).
    fn schedule_task(
        &self,
        shared: &Shared,
        task: Runnable,
        reason: ScheduleReason,
        here: Option<WorkerRef>,
    ) -> Option<Notify>;
    fn new_state(&self, index: usize) -> WorkerState;
    /// Runs worker `index` until the runtime closes or `main` completes (or, for the runtime's
    /// own policy, `primary`, until it is ejected). A panic out of the policy (`next`,
    /// `account`) is caught and returned, after the worker's idle state is put back in order.
    fn run_worker<'m>(
        &self,
        shared: &Arc<Shared>,
        index: usize,
        state: &WorkerState,
        main: Option<&mut (dyn MainTask + 'm)>,
        primary: bool,
    ) -> Result<(), Panic>;
    /// One `drain` call with worker `index`'s state.
    fn drain_one(&self, index: usize, state: &WorkerState) -> Option<Runnable>;
    /// Drops every task that `drain` hands back with worker `index`'s state.
    fn drain_state(&self, index: usize, state: &WorkerState);
    fn task_ended(&self, task: &TaskMeta);
    fn metrics(&self, worker: Option<usize>, out: &mut dyn MetricsVisitor);
    fn name(&self) -> &str;
}

impl<S: Scheduler> DynScheduler for S {
    #[inline]
    fn schedule_task(
        &self,
        shared: &Shared,
        task: Runnable,
        reason: ScheduleReason,
        here: Option<WorkerRef>,
    ) -> Option<Notify> {
        if shared.is_closed() {
            crate::shared::drop_closed(task);
            return None;
        }
        let Some(w) = here else {
            return Some(self.schedule(task, ScheduleInfo::new(reason, None), None));
        };
        let info = ScheduleInfo::new(reason, Some(w.index));
        // `here` is this thread's `WorkerRef` for this very runtime (the caller checked the
        // `shared` address; a runtime has one scheduler type `S`), so `w.local` points to the
        // `RefCell<S::Local>` of the worker loop running on this thread, valid while the
        // `WorkerRef` is installed: the whole time we are on this thread inside that loop.
        // SAFETY: per the above, a valid `RefCell<S::Local>` that outlives this call.
        let cell = unsafe { &*(w.local as *const RefCell<S::Local>) };
        Some(match cell.try_borrow_mut() {
            Ok(mut local) => self.schedule(task, info, Some(&mut local)),
            Err(_) => self.schedule(task, info, None),
        })
    }

    fn new_state(&self, index: usize) -> WorkerState {
        Box::new(Isolated(RefCell::new(self.new_local(index))))
    }

    fn run_worker<'m>(
        &self,
        shared: &Arc<Shared>,
        index: usize,
        state: &WorkerState,
        main: Option<&mut (dyn MainTask + 'm)>,
        primary: bool,
    ) -> Result<(), Panic> {
        let cell = cell_of::<S>(state);
        catch_unwind(AssertUnwindSafe(|| {
            run(self, shared, index, cell, main, primary)
        }))
    }

    fn drain_one(&self, index: usize, state: &WorkerState) -> Option<Runnable> {
        self.drain(index, &mut cell_of::<S>(state).borrow_mut())
    }

    fn drain_state(&self, index: usize, state: &WorkerState) {
        // `drain_one` ends its borrow of the state before the task is dropped: the future's
        // destructor may wake other tasks, which reach `schedule_task` (and, the runtime being
        // closed, are dropped there without touching the state).
        while let Some(task) = self.drain_one(index, state) {
            drop(task);
        }
    }

    fn task_ended(&self, task: &TaskMeta) {
        Scheduler::task_ended(self, task);
    }

    fn metrics(&self, worker: Option<usize>, out: &mut dyn MetricsVisitor) {
        Scheduler::metrics(self, worker, out);
    }

    fn name(&self) -> &str {
        Scheduler::name(self)
    }
}

/// A worker's state, alone on its cache lines: every `next` and every local `schedule` write
/// its `RefCell` flag (and usually the policy's own fields), and two workers' states, small
/// allocations made one after the other, would otherwise share a line. Two lines, for the
/// adjacent-line prefetcher.
#[repr(align(128))]
struct Isolated<T>(T);

/// The `RefCell<S::Local>` inside a worker state made by `new_state`.
fn cell_of<S: Scheduler>(state: &WorkerState) -> &RefCell<S::Local> {
    &state
        .downcast_ref::<Isolated<RefCell<S::Local>>>()
        .expect("a runtime's worker states are made by its own scheduler")
        .0
}

/// The worker loop. See `idle.rs` for the sleep/wake protocol it follows.
fn run<S: Scheduler>(
    sched: &S,
    shared: &Arc<Shared>,
    index: usize,
    cell: &RefCell<S::Local>,
    mut main: Option<&mut (dyn MainTask + '_)>,
    primary: bool,
) {
    let _worker = context::set_worker(WorkerRef {
        shared: Arc::as_ptr(shared),
        index,
        local: cell as *const RefCell<S::Local> as *const (),
    });
    let accounts = primary && shared.hooks.accounts_polls();
    let idle = &shared.idle;
    shared.worker_resumed();
    let current = &shared.counters.workers[index].current;
    let mut main_polls: u64 = 0;
    // Put back in order when the loop ends, even by a panic out of the policy.
    let mut st = IdleState {
        shared,
        index,
        searching: false,
        registered: false,
    };
    // When to service the driver between polls (service.rs).
    let mut service = Service::new(shared.parking.timer_hint(), shared.parking.io_hint());
    // With `account_polls`: poll times, read from the clock every few polls (service.rs).
    let mut clock = PollClock::new();

    while !(shared.is_closed() || primary && shared.policy.is_ejected()) {
        if let Some(m) = main.as_deref_mut() {
            if m.take_woken() {
                // Watched like a task (watchdog.rs); successive polls publish different words.
                main_polls = main_polls.wrapping_add(1);
                let mark = PollMark::start(current, MAIN_POLL | main_polls);
                let done = m.poll();
                drop(mark);
                if done {
                    break;
                }
                service.after_poll(&shared.parking, None);
                clock.interrupt();
            }
        }
        let task = sched.next(index, &mut cell.borrow_mut());
        match task {
            Some(task) => {
                if st.registered {
                    st.searching = idle.transition_from_parked(index);
                    st.registered = false;
                    shared.worker_resumed();
                }
                if st.searching {
                    st.searching = false;
                    if idle.transition_from_searching() {
                        shared.notify(Notify::Any);
                    }
                }
                if accounts {
                    let priority = task.metadata().priority();
                    clock.before_poll();
                    shared.run_task(index, task);
                    let (elapsed, now) = clock.after_poll();
                    sched.account(index, &mut cell.borrow_mut(), priority, elapsed);
                    if service.after_poll(&shared.parking, now) {
                        clock.interrupt();
                    }
                } else {
                    shared.run_task(index, task);
                    service.after_poll(&shared.parking, None);
                }
            }
            None if !st.registered => {
                clock.interrupt();
                // Out of work: a moment to give back the nursery's entries of ended tasks.
                // SAFETY: this thread runs worker `index`, inside `drive`, which holds the
                // nursery's lease.
                unsafe { shared.active.tidy_local(index) };
                // Announce, then look once more before sleeping (no lost wake-up).
                idle.transition_to_parked(index, st.searching);
                st.searching = false;
                st.registered = true;
            }
            None => {
                crate::metrics::bump(&shared.counters.workers[index].parks, true);
                shared.thread_hooks.parking(index);
                shared.parking.park(index);
                shared.thread_hooks.unparked(index);
                service.parked();
                st.searching = idle.transition_from_parked(index);
                st.registered = false;
                shared.worker_resumed();
            }
        }
    }
}

/// A worker's place in the idle protocol (idle.rs), put back in order when its loop ends, by
/// a return or by a panic out of the policy: off the sleepers list, and no longer searching
/// (passing the search on), so the other workers' protocol is not left waiting on it.
struct IdleState<'a> {
    shared: &'a Shared,
    index: usize,
    searching: bool,
    /// On the sleepers list, having announced that it will park.
    registered: bool,
}

impl Drop for IdleState<'_> {
    fn drop(&mut self) {
        let idle = &self.shared.idle;
        if self.registered {
            self.searching = idle.transition_from_parked(self.index);
        }
        if self.searching && idle.transition_from_searching() && !self.shared.is_closed() {
            self.shared.notify(Notify::Any);
        }
    }
}
