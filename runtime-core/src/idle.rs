//! Which workers sleep, and which one to wake.
//!
//! # Protocol
//!
//! The state word packs two counters: `unparked` (workers not asleep) and `searching` (awake
//! workers that were woken to look for work and have not found any yet).
//!
//! - **Notify** (after a task was scheduled): `fence(SeqCst)`, then read the state. If some
//!   worker is searching, it will find the task: wake nobody. If every worker is awake, nobody
//!   to wake. Otherwise, under the sleepers lock and after checking again, pop a sleeper, count it
//!   as unparked *and searching*, and unpark it. Because the woken worker counts as searching,
//!   a burst of schedules wakes one worker, not all of them.
//! - **Found work**: a searching worker that gets a task stops searching; if it was the last
//!   searcher it notifies once more, so that when there is more work the wake-ups spread one
//!   worker at a time instead of in a thundering herd.
//! - **Park**: a worker with nothing to do pushes itself on the sleepers list and decrements the
//!   counters (a SeqCst read-modify-write, followed by a SeqCst fence), then asks its scheduler
//!   for work **once more** before it really sleeps.
//!
//! No lost wake-up: a scheduler pushes the task, then fences, then reads the state; a parking
//! worker writes the state, fences, then reads the queues. Under SeqCst one of the two sees the
//! other: either the scheduler sees the worker asleep (and wakes one) or the worker's second look
//! finds the task. When the scheduler saw a *searching* worker instead, that worker's own
//! park-then-look-again step finds the task.
//!
//! - **Unpark** (after waking, or after the second look found work): under the lock, a worker
//!   still on the list removes itself and counts itself unparked (not searching); a worker no
//!   longer on the list was popped by a notifier, which already counted it as unparked and
//!   searching.

use crate::sync::{AtomicUsize, Mutex, fence, lock};
use std::sync::atomic::Ordering::SeqCst;

const SEARCHING_MASK: usize = (1 << 16) - 1;
const UNPARKED_ONE: usize = 1 << 16;

/// The largest number of workers the state word can count.
pub const MAX_WORKERS: usize = SEARCHING_MASK;

pub(crate) struct Idle {
    state: AtomicUsize,
    sleepers: Mutex<Vec<usize>>,
    workers: usize,
}

fn searching(state: usize) -> usize {
    state & SEARCHING_MASK
}

fn unparked(state: usize) -> usize {
    state >> 16
}

impl Idle {
    pub(crate) fn new(workers: usize) -> Idle {
        assert!(workers <= MAX_WORKERS);
        Idle {
            state: AtomicUsize::new(workers * UNPARKED_ONE),
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            workers,
        }
    }

    fn should_wake(&self) -> bool {
        let s = self.state.load(SeqCst);
        searching(s) == 0 && unparked(s) < self.workers
    }

    /// The worker to unpark after a task was scheduled, if any. The caller must have issued a
    /// `fence(SeqCst)` after making the task visible.
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        if !self.should_wake() {
            return None;
        }
        let mut sleepers = lock(&self.sleepers);
        if !self.should_wake() {
            return None;
        }
        let worker = sleepers.pop()?;
        self.state.fetch_add(UNPARKED_ONE | 1, SeqCst);
        Some(worker)
    }

    /// Takes `worker` off the sleepers list to wake it, if it is asleep. Returns whether the
    /// caller must unpark it.
    pub(crate) fn claim_worker(&self, worker: usize) -> bool {
        let mut sleepers = lock(&self.sleepers);
        let Some(pos) = sleepers.iter().position(|&w| w == worker) else {
            return false;
        };
        sleepers.swap_remove(pos);
        self.state.fetch_add(UNPARKED_ONE | 1, SeqCst);
        true
    }

    /// A searching worker found work. Returns true if it was the last searcher, in which case
    /// the caller notifies another worker.
    pub(crate) fn transition_from_searching(&self) -> bool {
        let prev = self.state.fetch_sub(1, SeqCst);
        searching(prev) == 1
    }

    /// `worker` is about to sleep. The caller must look for work once more afterwards.
    pub(crate) fn transition_to_parked(&self, worker: usize, is_searching: bool) {
        let mut sleepers = lock(&self.sleepers);
        self.state
            .fetch_sub(UNPARKED_ONE | usize::from(is_searching), SeqCst);
        sleepers.push(worker);
        drop(sleepers);
        fence(SeqCst);
    }

    /// `worker` is awake again (woken, or its second look found work). Returns whether it now
    /// counts as searching.
    pub(crate) fn transition_from_parked(&self, worker: usize) -> bool {
        let mut sleepers = lock(&self.sleepers);
        if let Some(pos) = sleepers.iter().position(|&w| w == worker) {
            sleepers.swap_remove(pos);
            self.state.fetch_add(UNPARKED_ONE, SeqCst);
            false
        } else {
            true
        }
    }

    /// Every worker has announced that it parks (SeqCst: the watchdog's dormancy check).
    pub(crate) fn all_parked(&self) -> bool {
        unparked(self.state.load(SeqCst)) == 0
    }

    #[cfg(all(test, not(rt_loom)))]
    pub(crate) fn counts(&self) -> (usize, usize) {
        let s = self.state.load(SeqCst);
        (unparked(s), searching(s))
    }
}

#[cfg(all(test, not(rt_loom)))]
mod tests {
    use super::*;

    #[test]
    fn notify_wakes_one_sleeper_and_counts_it_searching() {
        let idle = Idle::new(2);
        assert_eq!(idle.worker_to_notify(), None, "everyone is awake");
        idle.transition_to_parked(0, false);
        idle.transition_to_parked(1, false);
        assert_eq!(idle.counts(), (0, 0));
        let w = idle.worker_to_notify().expect("a sleeper");
        assert_eq!(idle.counts(), (1, 1));
        assert_eq!(idle.worker_to_notify(), None, "a searcher is already awake");
        assert!(
            idle.transition_from_parked(w),
            "a notified worker is searching"
        );
        assert!(idle.transition_from_searching(), "it was the last searcher");
        assert_eq!(idle.counts(), (1, 0));
        let other = idle.worker_to_notify().expect("the second sleeper");
        assert_ne!(w, other);
    }

    #[test]
    fn spurious_wake_removes_itself() {
        let idle = Idle::new(1);
        idle.transition_to_parked(0, false);
        assert!(!idle.transition_from_parked(0));
        assert_eq!(idle.counts(), (1, 0));
        assert!(!idle.claim_worker(0));
    }
}

#[cfg(all(test, rt_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicUsize as Queue;

    /// One round of the protocol: a producer schedules a task while the worker looks for work
    /// and parks. `notify_first` swaps the producer's two steps, which is the classic bug.
    fn round(notify_first: bool) {
        let idle = Arc::new(Idle::new(1));
        let queue = Arc::new(Queue::new(0));
        let notified = Arc::new(Queue::new(0));

        let producer = {
            let (idle, queue, notified) = (idle.clone(), queue.clone(), notified.clone());
            loom::thread::spawn(move || {
                let notify = || {
                    if idle.worker_to_notify().is_some() {
                        notified.fetch_add(1, SeqCst);
                    }
                };
                if notify_first {
                    fence(SeqCst);
                    notify();
                    queue.fetch_add(1, SeqCst);
                } else {
                    queue.fetch_add(1, SeqCst);
                    fence(SeqCst);
                    notify();
                }
            })
        };

        // The worker: nothing found at first (the task may not be there yet).
        if queue.load(SeqCst) == 0 {
            idle.transition_to_parked(0, false);
            let second = queue.load(SeqCst);
            producer.join().unwrap();
            if second == 0 {
                assert_eq!(notified.load(SeqCst), 1, "wake-up lost");
            } else {
                idle.transition_from_parked(0);
            }
        } else {
            producer.join().unwrap();
        }
    }

    /// The task is either seen by the worker's second look or announced to it by a notify.
    #[test]
    fn no_lost_wakeup() {
        loom::model(|| round(false));
    }

    /// The model is strong enough to catch a lost wake-up when the protocol is broken.
    #[test]
    #[should_panic(expected = "wake-up lost")]
    fn notify_before_push_loses_the_wakeup() {
        loom::model(|| round(true));
    }
}
