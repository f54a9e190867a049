//! Home affinity: each task goes back to the worker that last ran it (its *home*, kept in the
//! task's policy slot), so its data stays in that core's cache; an idle worker takes work from
//! the others so that nothing waits behind a busy one. Written with `facade::scheduler` only.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use facade::scheduler::{
    Hooks, MetricsVisitor, Notify, Runnable, ScheduleInfo, Scheduler, TaskMeta,
};

/// No home yet (the slot starts at 0, so homes are stored as worker + 1).
const NO_HOME: u32 = 0;

/// The home-affinity policy.
#[derive(Debug, Default)]
pub struct HomeAffinity {
    queues: Vec<Mutex<VecDeque<Runnable>>>,
    ended: AtomicU64,
}

/// A worker's own state: just its index (no `Default`: only `new_local` makes one).
#[derive(Debug)]
pub struct Worker(usize);

impl HomeAffinity {
    fn push(&self, queue: usize, task: Runnable) {
        self.queues[queue]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(task);
    }

    fn pop(&self, queue: usize) -> Option<Runnable> {
        self.queues[queue]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }
}

impl Scheduler for HomeAffinity {
    type Local = Worker;

    fn name(&self) -> &str {
        "home-affinity"
    }

    fn init(&mut self, workers: usize) {
        self.queues = (0..workers).map(|_| Mutex::default()).collect();
    }

    fn new_local(&self, worker: usize) -> Worker {
        Worker(worker)
    }

    fn hooks(&self) -> Hooks {
        Hooks::NONE.task_ended()
    }

    fn schedule(&self, task: Runnable, info: ScheduleInfo, _: Option<&mut Worker>) -> Notify {
        let home = match task.metadata().policy_slot().load(Relaxed) {
            NO_HOME => info.worker.unwrap_or(0),
            h => (h - 1) as usize,
        };
        self.push(home, task);
        // Wake the home worker; if it is busy, it finds the task at its next pick.
        Notify::Worker(home)
    }

    fn next(&self, _: usize, me: &mut Worker) -> Option<Runnable> {
        let n = self.queues.len();
        // Its own queue first, then the others' (the task then moves home to this worker).
        let task = (0..n).find_map(|k| self.pop((me.0 + k) % n))?;
        task.metadata()
            .policy_slot()
            .store(me.0 as u32 + 1, Relaxed);
        Some(task)
    }

    fn task_ended(&self, _task: &TaskMeta) {
        self.ended.fetch_add(1, Relaxed);
    }

    fn metrics(&self, _worker: Option<usize>, out: &mut dyn MetricsVisitor) {
        out.counter("tasks_ended", self.ended.load(Relaxed));
    }
}
