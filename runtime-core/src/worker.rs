//! The worker loop, generic over the scheduler, and the type-erased view of a scheduler that
//! the rest of the runtime uses.
//!
//! Tasks reach their scheduler through `dyn DynScheduler` (one indirect call per schedule), so
//! that spawning is generic only over the future, and a runtime built from an environment
//! variable or a user's own policy has the same type as any other. The worker loop itself is
//! monomorphised per scheduler: `next` is a direct call.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;

use crate::context::{self, WorkerRef};
use crate::runtime::Shared;
use crate::scheduler::{Notify, ScheduleInfo, ScheduleReason, Scheduler};
use crate::task::Runnable;
use crate::watchdog::{MAIN_POLL, Polling};

/// How many task polls a busy worker makes between two non-blocking driver polls.
pub(crate) const DRIVER_INTERVAL: u32 = 61;

/// The main future of `block_on` in current-thread mode, polled by worker 0 between tasks.
pub(crate) trait MainTask {
    /// Whether the main future was woken since its last poll (clears the flag).
    fn take_woken(&self) -> bool;
    /// Polls the main future; true once it has completed.
    fn poll(&mut self) -> bool;
}

pub(crate) trait DynScheduler: Send + Sync + 'static {
    /// Hands a runnable task to the policy (or drops it if the runtime is closed) and returns
    /// whom to wake.
    fn schedule_task(
        &self,
        shared: &Shared,
        task: Runnable,
        reason: ScheduleReason,
        here: Option<WorkerRef>,
    ) -> Notify;
    fn new_local_boxed(&self, index: usize) -> Box<dyn Any + Send>;
    /// Runs worker `index` until the runtime closes or `main` completes.
    fn run_worker(
        &self,
        shared: &Arc<Shared>,
        index: usize,
        local: &mut (dyn Any + Send),
        main: Option<&mut dyn MainTask>,
    );
    /// Drops every task queued in `local`.
    fn drain_local(&self, index: usize, local: &mut (dyn Any + Send));
    /// Drops every task queued outside the workers' local state.
    fn drain_global(&self);
    fn metrics(&self, worker: Option<usize>) -> Vec<(&'static str, u64)>;
}

impl<S: Scheduler> DynScheduler for S {
    #[inline]
    fn schedule_task(
        &self,
        shared: &Shared,
        task: Runnable,
        reason: ScheduleReason,
        here: Option<WorkerRef>,
    ) -> Notify {
        if shared.is_closed() {
            drop(task);
            return Notify::None;
        }
        match here {
            Some(w) => {
                let info = ScheduleInfo::new(reason, Some(w.index));
                // `here` is this thread's `WorkerRef` for this very runtime (the caller checked
                // the `shared` address; a runtime has one scheduler type `S`), so `w.local` points
                // to the worker loop's `RefCell<S::Local>`, valid while the `WorkerRef` is
                // installed: the whole time we are on this thread inside that loop.
                // SAFETY: per the above, a valid `RefCell<S::Local>` that outlives this call.
                let cell = unsafe { &*(w.local as *const RefCell<S::Local>) };
                match cell.try_borrow_mut() {
                    Ok(mut local) => {
                        self.schedule(task, info, Some(&mut local));
                        self.notify(&info, Some(&mut local))
                    }
                    Err(_) => {
                        self.schedule(task, info, None);
                        self.notify(&info, None)
                    }
                }
            }
            None => {
                let info = ScheduleInfo::new(reason, None);
                self.schedule(task, info, None);
                self.notify(&info, None)
            }
        }
    }

    fn new_local_boxed(&self, index: usize) -> Box<dyn Any + Send> {
        Box::new(self.new_local(index))
    }

    fn run_worker(
        &self,
        shared: &Arc<Shared>,
        index: usize,
        local: &mut (dyn Any + Send),
        main: Option<&mut dyn MainTask>,
    ) {
        let local = local
            .downcast_mut::<S::Local>()
            .expect("worker state of another scheduler type");
        run(self, shared, index, local, main);
    }

    fn drain_local(&self, index: usize, local: &mut (dyn Any + Send)) {
        if let Some(local) = local.downcast_mut::<S::Local>() {
            while let Some(task) = self.drain(Some((index, local))) {
                drop(task);
            }
        }
    }

    fn drain_global(&self) {
        while let Some(task) = self.drain(None) {
            drop(task);
        }
    }

    fn metrics(&self, worker: Option<usize>) -> Vec<(&'static str, u64)> {
        Scheduler::metrics(self, worker)
    }
}

/// Puts the local state back where it came from when the loop ends, even by a panic.
struct PutBack<'a, L: Default> {
    cell: &'a RefCell<L>,
    slot: &'a mut L,
}

impl<L: Default> Drop for PutBack<'_, L> {
    fn drop(&mut self) {
        *self.slot = std::mem::take(&mut *self.cell.borrow_mut());
    }
}

/// The worker loop. See `idle.rs` for the sleep/wake protocol it follows.
fn run<S: Scheduler>(
    sched: &S,
    shared: &Arc<Shared>,
    index: usize,
    local: &mut S::Local,
    mut main: Option<&mut dyn MainTask>,
) {
    let cell = RefCell::new(std::mem::take(local));
    let _put_back = PutBack {
        cell: &cell,
        slot: local,
    };
    let _worker = context::set_worker(WorkerRef {
        shared: Arc::as_ptr(shared),
        index,
        local: &cell as *const RefCell<S::Local> as *const (),
    });
    let idle = &shared.idle;
    shared.worker_resumed();
    let current = &shared.counters.workers[index].current;
    let mut main_polls: u64 = 0;
    let mut searching = false;
    // On the sleepers list, having announced that it will park.
    let mut registered = false;
    let mut tick: u32 = 0;

    while !shared.is_closed() {
        if let Some(m) = main.as_deref_mut() {
            if m.take_woken() {
                // Watched like a task (watchdog.rs); successive polls publish different words.
                main_polls = main_polls.wrapping_add(1);
                let polling = Polling::start(current, MAIN_POLL | main_polls);
                let done = m.poll();
                drop(polling);
                if done {
                    break;
                }
            }
        }
        let task = {
            let mut l = cell.borrow_mut();
            sched.next(index, &mut l)
        };
        match task {
            Some(task) => {
                if registered {
                    searching = idle.transition_from_parked(index);
                    registered = false;
                    shared.worker_resumed();
                }
                if searching {
                    searching = false;
                    if idle.transition_from_searching() {
                        shared.notify(Notify::Any);
                    }
                }
                if S::TIMES_POLLS {
                    let priority = task.metadata().priority();
                    let start = std::time::Instant::now();
                    shared.run_task(index, task);
                    let now = std::time::Instant::now();
                    sched.account(index, &mut cell.borrow_mut(), priority, now - start);
                    // Having the time anyway: a due timer is noticed after this very poll.
                    if shared.parking.timer_due(now) {
                        shared.parking.poll_driver();
                    }
                } else {
                    shared.run_task(index, task);
                }
                tick = tick.wrapping_add(1);
                if tick % DRIVER_INTERVAL == 0 {
                    shared.parking.poll_driver();
                }
            }
            None if !registered => {
                // Announce, then look once more before sleeping (no lost wake-up).
                idle.transition_to_parked(index, searching);
                searching = false;
                registered = true;
            }
            None => {
                crate::metrics::bump(&shared.counters.workers[index].parks, true);
                shared.parking.park(index);
                searching = idle.transition_from_parked(index);
                registered = false;
                shared.worker_resumed();
            }
        }
    }

    if registered {
        searching = idle.transition_from_parked(index);
    }
    if searching && idle.transition_from_searching() && !shared.is_closed() {
        shared.notify(Notify::Any);
    }
}
