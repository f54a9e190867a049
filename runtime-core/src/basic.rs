//! [`BasicFifo`]: the smallest complete policy, kept in core as the reference implementation
//! and as the policy core can always fall back on.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::scheduler::{Notify, ScheduleInfo, Scheduler, shrink_drained};
use crate::sync::lock_unpoisoned as lock;
use crate::task::Runnable;

/// One mutex-guarded queue, first in, first out. Correct and simple; for speed under
/// contention use the `sched-fifo` crate, which has the same order.
///
/// ```
/// use runtime_core::{BasicFifo, Config, Runtime};
/// let rt = Runtime::new(BasicFifo::default(), Config::default())?;
/// assert_eq!(rt.block_on(rt.spawn(async { 7 })).unwrap(), 7);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct BasicFifo {
    // Poisoning is ignored: a push or pop cannot leave the deque inconsistent.
    queue: Mutex<VecDeque<Runnable>>,
}

impl Scheduler for BasicFifo {
    type Local = ();

    fn name(&self) -> &str {
        "basic-fifo"
    }

    fn new_local(&self, _worker: usize) {}

    fn schedule(&self, task: Runnable, _: ScheduleInfo, _: Option<&mut ()>) -> Notify {
        lock(&self.queue).push_back(task);
        Notify::Any
    }

    fn next(&self, _worker: usize, _: &mut ()) -> Option<Runnable> {
        let mut queue = lock(&self.queue);
        let task = queue.pop_front();
        shrink_drained(&mut queue);
        task
    }
}
