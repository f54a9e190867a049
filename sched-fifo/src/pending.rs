//! A worker's pending tasks: the tasks scheduled on it, in order, waiting for the worker's
//! next turn at them (or, in the global order, to enter the shared queue).
//!
//! The owner pushes one task at a time and takes them in bulk, oldest first (one
//! compare-and-swap for the lot, where a deque would take one read-modify-write per task); an
//! idle worker takes the oldest half. A ring of [`CAPACITY`] slots; a full ring refuses the
//! push and the owner moves everything to the shared queue.
//!
//! # Ground rules
//!
//! - `tail` is written by the owner only; `head` moves forward only, by a successful
//!   compare-and-swap, and whoever moves it from `h` to `h + n` owns the tasks of positions
//!   `h .. h + n`, turning each back into a `Runnable` exactly once.
//! - A slot holds a pointer from `Runnable::into_raw`, stored before the `tail` that covers
//!   it is published (release) and read only by someone who saw that `tail` (acquire).
//! - The owner writes slot `t % CAPACITY` only when `t - head < CAPACITY`, with `head` read
//!   acquiring: the position it overwrites was taken by a compare-and-swap that happens
//!   before the write. A thief that read that slot earlier fails its compare-and-swap (`head`
//!   has moved on) and drops nothing it read; positions are 32-bit and wrap, so that could only
//!   go wrong if a thief stalled between its read and its swap while 2^32 tasks passed.
//! - Slots are atomic pointers, so a thief's speculative read of a slot being rewritten is not a
//!   data race, only a stale value it then discards.

use std::ptr::{NonNull, null_mut};

use runtime_core::Runnable;

#[cfg(rt_loom)]
use loom::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
#[cfg(not(rt_loom))]
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// Slots in a ring (a power of two; two under loom, so a short model reuses a slot).
#[cfg(not(rt_loom))]
pub(crate) const CAPACITY: usize = 256;
#[cfg(rt_loom)]
pub(crate) const CAPACITY: usize = 2;
/// Most tasks a thief takes at once.
const MAX_STEAL: usize = 32;

pub(crate) struct Pending {
    head: AtomicU32,
    tail: AtomicU32,
    slots: Box<[AtomicPtr<()>]>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("len", &self.len()).finish()
    }
}

impl Pending {
    pub(crate) fn new() -> Pending {
        Pending {
            head: AtomicU32::new(0),
            tail: AtomicU32::new(0),
            slots: (0..CAPACITY).map(|_| AtomicPtr::new(null_mut())).collect(),
        }
    }

    fn slot(&self, pos: u32) -> &AtomicPtr<()> {
        &self.slots[pos as usize % CAPACITY]
    }

    /// Tasks in the ring now (a gauge: it may be stale by the time it is read).
    pub(crate) fn len(&self) -> usize {
        let t = self.tail.load(Ordering::Acquire);
        let h = self.head.load(Ordering::Acquire);
        (t.wrapping_sub(h) as usize).min(CAPACITY)
    }

    /// Whether the ring is empty (exact for the owner, a hint for anyone else).
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The owner's push at the back; gives the task back when the ring is full.
    ///
    /// # Safety
    ///
    /// Only the ring's owner calls `push`, [`take`](Self::take) and [`take_all`](Self::take_all),
    /// from one thread at a time (the ground rules' single writer of `tail`).
    pub(crate) unsafe fn push(&self, task: Runnable) -> Result<(), Runnable> {
        let t = self.tail.load(Ordering::Relaxed);
        let h = self.head.load(Ordering::Acquire);
        if t.wrapping_sub(h) as usize >= CAPACITY {
            return Err(task);
        }
        self.slot(t)
            .store(task.into_raw().as_ptr(), Ordering::Relaxed);
        self.tail.store(t.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// The owner's take of every task in the ring, oldest first, into `out`.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push).
    pub(crate) unsafe fn take_all(&self, out: impl FnMut(Runnable)) {
        // SAFETY: as the caller promises.
        unsafe { self.take(usize::MAX, out) };
    }

    /// The owner's take of the oldest `max` tasks in the ring (all of them if fewer), oldest
    /// first, into `out`; returns how many it took.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push).
    pub(crate) unsafe fn take(&self, max: usize, mut out: impl FnMut(Runnable)) -> usize {
        let t = self.tail.load(Ordering::Relaxed);
        let mut h = self.head.load(Ordering::Acquire);
        loop {
            let n = (t.wrapping_sub(h) as usize).min(max);
            if n == 0 {
                return 0;
            }
            let end = h.wrapping_add(n as u32);
            match self
                .head
                .compare_exchange_weak(h, end, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    while h != end {
                        // SAFETY: the swap made us the owner of positions `h .. end`, whose
                        // slots we wrote ourselves (we are the only writer).
                        out(unsafe { Self::own(self.slot(h).load(Ordering::Relaxed)) });
                        h = h.wrapping_add(1);
                    }
                    return n;
                }
                Err(now) => h = now,
            }
        }
    }

    /// A thief's take of the oldest half (at most [`MAX_STEAL`]): returns the oldest and gives
    /// the others, in order, to `rest`.
    pub(crate) fn steal(&self, rest: impl FnMut(Runnable)) -> Option<Runnable> {
        self.steal_checked::<true>(rest)
    }

    /// `steal`; `CAS = false`, taking without the compare-and-swap, is the mutated twin the
    /// loom model must catch.
    #[inline]
    fn steal_checked<const CAS: bool>(&self, mut rest: impl FnMut(Runnable)) -> Option<Runnable> {
        let mut taken = [null_mut(); MAX_STEAL];
        loop {
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Acquire);
            let n = t.wrapping_sub(h) as usize;
            if n == 0 {
                return None;
            }
            if n > CAPACITY {
                // `head` was read before a take and `tail` after the pushes that followed it.
                spin();
                continue;
            }
            let n = n.div_ceil(2).min(MAX_STEAL);
            for (k, p) in taken[..n].iter_mut().enumerate() {
                *p = self.slot(h.wrapping_add(k as u32)).load(Ordering::Acquire);
            }
            let end = h.wrapping_add(n as u32);
            let won = if CAS {
                self.head
                    .compare_exchange(h, end, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            } else {
                self.head.store(end, Ordering::Release);
                true
            };
            if won {
                // SAFETY: the swap made us the owner of positions `h .. end`, whose slots we
                // read after seeing the `tail` that published them and before the swap, so
                // before the owner could reuse them.
                let mut tasks = taken[..n].iter().map(|&p| unsafe { Self::own(p) });
                let first = tasks.next();
                tasks.for_each(&mut rest);
                return first;
            }
            spin();
        }
    }

    /// # Safety
    ///
    /// `p` came from `Runnable::into_raw` and the caller owns it (see the ground rules).
    unsafe fn own(p: *mut ()) -> Runnable {
        let p = NonNull::new(p).expect("a published slot holds a task");
        // SAFETY: as the caller promises.
        unsafe { Runnable::from_raw(p) }
    }
}

/// A retry's pause (under loom, a yield, so the model lets the other thread move on).
fn spin() {
    #[cfg(rt_loom)]
    loom::thread::yield_now();
    #[cfg(not(rt_loom))]
    std::hint::spin_loop();
}

impl Drop for Pending {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other thread holds the ring.
        unsafe { self.take_all(drop) };
    }
}

#[cfg(all(test, not(rt_loom)))]
mod tests {
    use super::*;
    use runtime_core::{JoinHandle, TaskId};

    fn task() -> (Runnable, JoinHandle<()>) {
        runtime_core::pool_task(async {}, |_| {}, None)
    }

    fn ids(tasks: &[Runnable]) -> Vec<TaskId> {
        tasks.iter().map(|t| t.metadata().id()).collect()
    }

    /// Pushes, a steal of the oldest half, the owner's take of the rest, across the ring's
    /// wrap-around, a full ring's refusal, and the drop of what is left.
    #[test]
    fn order_steal_refusal_and_drop() {
        let ring = Pending::new();
        let mut handles = Vec::new();
        let mut pushed = Vec::new();
        // Three rounds of 200 pass the end of the 256 slots.
        for _ in 0..3 {
            let mut round = Vec::new();
            for _ in 0..200 {
                let (r, h) = task();
                round.push(r.metadata().id());
                handles.push(h);
                // SAFETY: this thread is the only owner.
                assert!(unsafe { ring.push(r) }.is_ok());
            }
            assert_eq!(ring.len(), 200);
            let mut stolen = Vec::new();
            let first = ring.steal(|t| stolen.push(t)).expect("a task to steal");
            stolen.insert(0, first);
            assert_eq!(ids(&stolen), round[..MAX_STEAL]);
            let mut rest = Vec::new();
            // SAFETY: as above.
            unsafe { ring.take_all(|t| rest.push(t)) };
            assert_eq!(ids(&rest), round[MAX_STEAL..]);
            assert!(ring.is_empty() && ring.steal(drop).is_none());
            pushed.extend(stolen.into_iter().chain(rest));
        }
        for _ in 0..CAPACITY {
            let (r, h) = task();
            handles.push(h);
            // SAFETY: as above.
            assert!(unsafe { ring.push(r) }.is_ok());
        }
        let (r, _h) = task();
        // SAFETY: as above.
        assert!(unsafe { ring.push(r) }.is_err(), "a full ring refuses");
        drop(ring);
        // The ring dropped its tasks: theirs are cancelled.
        let cancelled = handles
            .drain(pushed.len()..)
            .map(futures_lite::future::block_on)
            .filter(|out| out.as_ref().is_err_and(|e| e.is_cancelled()))
            .count();
        assert_eq!(cancelled, CAPACITY);
    }
}

#[cfg(all(test, rt_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use runtime_core::TaskId;

    /// The owner pushes two (a full ring), takes one and pushes a third into a reused slot while
    /// a thief steals twice. Each taker records the ids it got and forgets the tasks (so a double take
    /// is counted, not freed twice): every task comes out exactly once, and each taker sees its
    /// tasks in push order.
    fn model<const CAS: bool>() {
        loom::model(|| {
            let ring = Arc::new(Pending::new());
            let tasks: Vec<_> = (0..3)
                .map(|_| runtime_core::pool_task(async {}, |_| {}, None))
                .collect();
            let order: Vec<TaskId> = tasks.iter().map(|(r, _)| r.metadata().id()).collect();
            let (runnables, handles): (Vec<_>, Vec<_>) = tasks.into_iter().unzip();
            std::mem::forget(handles);
            let record = |got: &mut Vec<TaskId>, t: Runnable| {
                got.push(t.metadata().id());
                std::mem::forget(t);
            };
            let thief = {
                let ring = ring.clone();
                loom::thread::spawn(move || {
                    // Two steals: the second may meet a slot the owner reused.
                    let mut got = Vec::new();
                    for _ in 0..2 {
                        let mut rest = Vec::new();
                        if let Some(t) = ring.steal_checked::<CAS>(|t| record(&mut rest, t)) {
                            record(&mut got, t);
                        }
                        got.extend(rest);
                    }
                    got
                })
            };
            let mut mine = Vec::new();
            let mut runnables = runnables.into_iter();
            // SAFETY: this thread is the ring's only owner.
            unsafe {
                assert!(ring.push(runnables.next().unwrap()).is_ok());
                assert!(ring.push(runnables.next().unwrap()).is_ok());
                // A partial take: the oldest one, unless the thief got there first.
                assert!(ring.take(1, |t| record(&mut mine, t)) <= 1);
                assert!(ring.push(runnables.next().unwrap()).is_ok());
                ring.take_all(|t| record(&mut mine, t));
            }
            let stolen = thief.join().unwrap();
            for got in [&mine, &stolen] {
                let mut sorted = got.clone();
                sorted.sort_by_key(|id| order.iter().position(|o| o == id));
                assert_eq!(&sorted, got, "each taker sees push order");
            }
            let mut all: Vec<_> = mine.into_iter().chain(stolen).collect();
            let taken = all.len();
            all.sort();
            all.dedup();
            assert!(all.len() == 3 && taken == 3, "each task exactly once");
        });
    }

    #[test]
    fn loom_pending_each_task_taken_once_in_order() {
        model::<true>();
    }

    #[test]
    #[should_panic(expected = "each task exactly once")]
    fn loom_pending_twin_without_the_swap_takes_one_twice() {
        model::<false>();
    }
}
