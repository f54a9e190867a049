//! The registry of live tasks, so that shutdown can reach a task nobody will ever wake.
//!
//! A task that waits on a future that never completes is referenced only by wakers that nobody
//! calls; without this registry it could never be cancelled, and its future would never be
//! dropped. Each live task has one entry (a counted reference to its cell, which reaches its
//! metadata too). A task spawned on one of the runtime's workers has it in that worker's
//! nursery (`nursery.rs`: no lock to enter, nothing to do at the task's end, given back in
//! batches by the worker); any other task in one of a few sharded tables (at most 64), where
//! the entry goes when the task's future is dropped.
//!
//! # Ground rules
//!
//! - `insert` checks `closed` *under the shard lock*, and shutdown sets `closed` before it
//!   drains each shard under the same lock: a spawn either lands in a shard before it is drained
//!   (and is cancelled by the drain) or sees `closed` and never starts.
//! - A shard entry is removed only by its own task or by the shutdown drain, which empties the
//!   shard for good (no insert follows it). So a key never names another task's entry when its
//!   task removes it.
//! - A worker checks `closed` before it enters a task in its nursery, and empties the nursery
//!   (waking what is live) when it stops driving the worker after the close; the shutdown
//!   empties the nurseries that nobody drives, and its drain wakes what the others hold. So a
//!   task spawned before the close is reached one way or another, and one spawned after it
//!   never starts.
//! - Tasks are woken outside the locks: waking a task at shutdown drops its future, whose
//!   destructor removes its shard entry.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cell::TaskRef;
use crate::nursery::{Nursery, Word};
use crate::sync::lock_unpoisoned as lock;
use crate::task::{TaskId, TaskMeta};

/// Where a task's entry lives, in 32 bits (it is in every task's metadata): the shard in the
/// top [`SHARD_BITS`], the slot index + 1 below (so that `Option<ActiveKey>` is 4 bytes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActiveKey(NonZeroU32);

/// At most 64 shards.
const SHARD_BITS: u32 = 6;
const MAX_SHARDS: usize = 1 << SHARD_BITS;
const INDEX_BITS: u32 = 32 - SHARD_BITS;
/// Entries per shard: 2^26 - 1 (67 million). A shard that is full passes the task to the next
/// one, so a runtime holds `shards x` that many live tasks (with 8 shards, 537 million: some
/// 60 GB of tasks) before a spawn fails.
const MAX_INDEX: usize = (1 << INDEX_BITS) - 2;

impl ActiveKey {
    fn new(shard: usize, index: usize) -> ActiveKey {
        debug_assert!(shard < MAX_SHARDS && index <= MAX_INDEX);
        let packed = ((shard as u32) << INDEX_BITS) | (index as u32 + 1);
        ActiveKey(NonZeroU32::new(packed).expect("index + 1 is never zero"))
    }

    fn shard(self) -> usize {
        (self.0.get() >> INDEX_BITS) as usize
    }

    fn index(self) -> usize {
        (self.0.get() & ((1 << INDEX_BITS) - 1)) as usize - 1
    }
}

/// One shard: an entry for each live task.
type Shard = Mutex<Slots>;

/// A shard's entries: one word per slot (a `TaskRef`, or `None` for a vacant one), and the
/// vacant slots' indices, taken last-freed first. A slab would keep its free list in the vacant
/// slots, at the price of a word and a tag per slot: 16 bytes where this takes 8.
#[derive(Default)]
struct Slots {
    slots: Vec<Option<TaskRef>>,
    vacant: Vec<u32>,
    len: usize,
}

const _: () = assert!(std::mem::size_of::<Option<TaskRef>>() == std::mem::size_of::<usize>());

impl Slots {
    /// The index the next `insert` takes.
    fn vacant_key(&self) -> usize {
        match self.vacant.last() {
            Some(&i) => i as usize,
            None => self.slots.len(),
        }
    }

    /// Fills the slot `vacant_key` names.
    fn insert(&mut self, task: TaskRef) {
        match self.vacant.pop() {
            Some(i) => self.slots[i as usize] = Some(task),
            None => self.slots.push(Some(task)),
        }
        self.len += 1;
    }

    fn try_remove(&mut self, index: usize) -> Option<TaskRef> {
        let task = self.slots.get_mut(index)?.take()?;
        // Indices stay below 2^26 (`MAX_INDEX`).
        self.vacant.push(index as u32);
        self.len -= 1;
        Some(task)
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the shard, keeping its memory (the next burst fills it front to back).
    fn clear(&mut self) {
        self.slots.clear();
        self.vacant.clear();
        self.len = 0;
    }

    fn iter(&self) -> impl Iterator<Item = &TaskRef> {
        self.slots.iter().flatten()
    }

    /// Takes every entry out, and gives the memory back.
    fn drain(&mut self) -> Vec<TaskRef> {
        let out = std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect();
        *self = Slots::default();
        out
    }
}

pub(crate) struct Active {
    shards: Box<[Shard]>,
    /// One per worker, for the tasks spawned on it.
    nurseries: Box<[Nursery]>,
    mask: usize,
    /// The largest slot index a shard takes: [`MAX_INDEX`] (smaller in tests).
    max_index: usize,
}

impl Active {
    pub(crate) fn new(workers: usize) -> Active {
        Active::with_limit(workers, MAX_INDEX)
    }

    fn with_limit(workers: usize, max_index: usize) -> Active {
        let n = (workers.max(1) * 4).next_power_of_two().min(MAX_SHARDS);
        Active {
            shards: (0..n).map(|_| Mutex::new(Slots::default())).collect(),
            nurseries: (0..workers.max(1)).map(|_| Nursery::new()).collect(),
            mask: n - 1,
            max_index: max_index.min(MAX_INDEX),
        }
    }

    /// Reserves an entry for task `id` and fills it with the reference that `make` returns,
    /// unless the runtime is `closed`. `make` runs under the shard lock and gets the key.
    pub(crate) fn insert<R>(
        &self,
        id: TaskId,
        closed: &AtomicBool,
        make: impl FnOnce(Option<ActiveKey>) -> (R, Option<TaskRef>),
    ) -> R {
        let home = id.as_u64() as usize & self.mask;
        let mut shard = home;
        let mut slab = loop {
            let slab = lock(&self.shards[shard]);
            if closed.load(Ordering::SeqCst) {
                drop(slab);
                return make(None).0;
            }
            if slab.vacant_key() <= self.max_index {
                break slab;
            }
            drop(slab);
            shard = (shard + 1) & self.mask;
            assert!(
                shard != home,
                "spawn: the runtime holds {} live tasks, as many as its task registry can \
                 (finish or drop some before spawning more)",
                self.shards.len() * (self.max_index + 1)
            );
        };
        let key = ActiveKey::new(shard, slab.vacant_key());
        let (out, entry) = make(Some(key));
        if let Some(entry) = entry {
            slab.insert(entry);
        }
        out
    }

    /// Enters `task`, spawned on worker `index`, in that worker's nursery (every worker index
    /// of the runtime has one).
    ///
    /// # Safety
    ///
    /// This thread drives worker `index` (it holds the nursery's lease: see nursery.rs).
    #[inline]
    pub(crate) unsafe fn enter_local(&self, index: usize, task: TaskRef) {
        // SAFETY: the caller is the nursery's owner.
        unsafe { self.nurseries[index].push(task.into_raw(), ended, release) }
    }

    /// Gives back what worker `index`'s nursery holds for ended tasks, if enough has been
    /// entered since the last time to pay for the scan or a second has passed (a worker about
    /// to park).
    ///
    /// # Safety
    ///
    /// This thread drives worker `index` (it holds the nursery's lease).
    pub(crate) unsafe fn tidy_local(&self, index: usize) {
        let now = || crate::task::coarse_now().as_secs() as usize;
        // SAFETY: the caller is the nursery's owner.
        unsafe { self.nurseries[index].tidy(now, ended, release) }
    }

    /// Makes this thread the owner of worker `index`'s nursery: it drives that worker until
    /// [`Active::end_lease`].
    pub(crate) fn lease(&self, index: usize) {
        self.nurseries[index].lease();
    }

    /// This thread stops driving worker `index`; with `empty` (the runtime is closed) it
    /// empties the nursery and returns its entries, for [`cancel`].
    ///
    /// # Safety
    ///
    /// This thread holds the lease ([`Active::lease`]).
    pub(crate) unsafe fn end_lease(&self, index: usize, empty: bool) -> Vec<TaskRef> {
        // SAFETY: the caller holds the lease.
        let words = unsafe { self.nurseries[index].end_lease(empty) };
        // SAFETY: every word taken out of a nursery is a reference entered by `into_raw`.
        words
            .into_iter()
            .map(|w| unsafe { TaskRef::from_raw(w) })
            .collect()
    }

    /// Shutdown: empties the nurseries of the workers nobody drives and returns their entries,
    /// for [`cancel`].
    pub(crate) fn take_undriven(&self) -> Vec<TaskRef> {
        let words = self.nurseries.iter().flat_map(Nursery::take_undriven);
        // SAFETY: every word taken out of a nursery is a reference entered by `into_raw`.
        words.map(|w| unsafe { TaskRef::from_raw(w) }).collect()
    }

    /// Calls `f` with each live task of the nurseries (under each one's lock).
    fn for_each_local(&self, mut f: impl FnMut(&TaskRef)) {
        for n in self.nurseries.iter() {
            n.for_each(|word| {
                // SAFETY: a word below a nursery's length, read under its lock, is a reference
                // that only the owner gives back, under the same lock.
                let task = unsafe { TaskRef::peek(word) };
                if !task.is_complete() {
                    f(&task);
                }
            });
        }
    }

    /// Removes a task's shard entry, if it is still there (the shutdown drain may have taken
    /// it).
    pub(crate) fn remove(&self, key: ActiveKey) {
        let mut slab = lock(&self.shards[key.shard()]);
        let task = slab.try_remove(key.index());
        if slab.is_empty() {
            // Reset, so that the next burst of spawns fills the slab front to back instead of
            // following a free list scattered by the order in which the tasks ended (see the
            // timer wheel's `take`).
            slab.clear();
        }
        drop(slab);
        drop(task);
    }

    /// Calls `f` with the metadata of the live task `id`, if there is one (a scan of its shard,
    /// of the others if a full shard had passed it on, and of the nurseries, under each one's
    /// lock: for rare reports, not hot paths).
    pub(crate) fn find<R>(&self, id: TaskId, f: impl FnOnce(&TaskMeta) -> R) -> Option<R> {
        let home = id.as_u64() as usize & self.mask;
        for i in 0..self.shards.len() {
            let slab = lock(&self.shards[(home + i) & self.mask]);
            let found = slab.iter().find(|t| t.metadata().id() == id);
            if let Some(task) = found {
                return Some(f(task.metadata()));
            }
        }
        let mut f = Some(f);
        let mut out = None;
        self.for_each_local(|t| {
            if t.metadata().id() == id {
                out = f.take().map(|f| f(t.metadata()));
            }
        });
        out
    }

    /// Calls `f` with the metadata of every live task, one shard or nursery at a time, under
    /// its lock (`f` must not spawn or end tasks).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&TaskRef)) {
        for shard in self.shards.iter() {
            let slab = lock(shard);
            for task in slab.iter() {
                f(task);
            }
        }
        self.for_each_local(f);
    }

    /// Shutdown: takes every shard entry out, and a reference to every live task of the
    /// nurseries (which their owners empty), and returns the tasks.
    pub(crate) fn drain(&self) -> Vec<TaskRef> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(lock(shard).drain());
        }
        self.for_each_local(|t| out.push(t.clone()));
        out
    }

    /// The live tasks.
    pub(crate) fn len(&self) -> usize {
        let mut n: usize = self.shards.iter().map(|s| lock(s).len).sum();
        self.for_each_local(|_| n += 1);
        n
    }
}

/// Shutdown: wakes each of `tasks` that has not ended (so that it is cancelled: the runtime is
/// closed) and drops the references. Call it holding no lock: a cancelled future's destructor
/// runs here.
pub(crate) fn cancel(tasks: Vec<TaskRef>) {
    for task in tasks {
        if !task.is_complete() {
            task.wake();
        }
    }
}

/// Whether the task of a nursery's `word` has ended (its future is gone): the nursery's
/// compaction asks, as the owner, under its lock.
fn ended(word: Word) -> bool {
    // SAFETY: the nursery calls this on words below its length, which it gives back only
    // after (`release`).
    unsafe { TaskRef::peek(word) }.is_complete()
}

/// Gives back a nursery's entry for an ended task.
fn release(word: Word) {
    // SAFETY: the nursery hands each word it gives back here once, after `ended` said so.
    unsafe { TaskRef::from_raw(word) }.release_ended();
}

#[cfg(all(test, not(rt_loom)))]
mod tests {
    use super::*;

    /// A reference to a task of no runtime (cancelled at once: only its cell matters here).
    fn task() -> TaskRef {
        let (runnable, _) = crate::pool_task(async {}, |_| {}, None);
        TaskRef::new(&runnable)
    }

    fn insert(active: &Active, task: &TaskRef, closed: &AtomicBool) -> Option<ActiveKey> {
        active.insert(task.metadata().id(), closed, |key| {
            (key, key.map(|_| task.clone()))
        })
    }

    #[test]
    fn keys_pack_shard_and_index_into_32_bits() {
        for (shard, index) in [(0, 0), (63, 0), (5, 12_345), (63, MAX_INDEX)] {
            let key = ActiveKey::new(shard, index);
            assert_eq!((key.shard(), key.index()), (shard, index));
        }
        assert_eq!(std::mem::size_of::<Option<ActiveKey>>(), 4);
        assert_eq!(Active::new(1000).shards.len(), MAX_SHARDS);
    }

    #[test]
    fn a_drained_shard_is_refilled_front_to_back() {
        // One worker, a big limit: 4 shards; the ids choose the shard, so take one shard's.
        let active = Active::with_limit(1, 1000);
        let closed = AtomicBool::new(false);
        let shard_of = |m: &TaskMeta| m.id().as_u64() as usize & active.mask;
        let tasks: Vec<TaskRef> = (0..400)
            .map(|_| task())
            .filter(|t| shard_of(t.metadata()) == 0)
            .collect();
        let fill = || -> Vec<usize> {
            (tasks.iter())
                .map(|t| insert(&active, t, &closed).unwrap().index())
                .collect()
        };
        let first = fill();
        assert_eq!(first, (0..tasks.len()).collect::<Vec<_>>());
        // Tasks end in another order than they started (odd ones first, then even ones)...
        let order = (1..first.len())
            .step_by(2)
            .chain((0..first.len()).step_by(2));
        for i in order {
            let key = ActiveKey::new(0, first[i]);
            active.remove(key);
        }
        // ... and the next burst still takes the slots in order, not that order reversed.
        assert_eq!(fill(), first);
    }

    #[test]
    fn a_full_shard_passes_tasks_on_and_a_full_registry_says_so() {
        // One worker: 4 shards of 3 entries each.
        let active = Active::with_limit(1, 2);
        let closed = AtomicBool::new(false);
        let tasks: Vec<TaskRef> = (0..12).map(|_| task()).collect();
        let keys: Vec<ActiveKey> = tasks
            .iter()
            .map(|t| insert(&active, t, &closed).expect("room for 12"))
            .collect();
        assert_eq!(active.len(), 12);
        for (task, key) in tasks.iter().zip(&keys) {
            let meta = task.metadata();
            assert!(key.index() <= 2);
            // Found wherever it went, with its own metadata.
            assert_eq!(active.find(meta.id(), TaskMeta::id), Some(meta.id()));
        }
        let extra = task();
        let full = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            insert(&active, &extra, &closed)
        }))
        .expect_err("a 13th task does not fit");
        let msg = full.downcast_ref::<String>().expect("a formatted message");
        assert!(msg.contains("12 live tasks"), "{msg}");
        // A removed entry makes room again.
        active.remove(keys[3]);
        assert_eq!(active.find(tasks[3].metadata().id(), TaskMeta::id), None);
        assert!(insert(&active, &extra, &closed).is_some());
        assert_eq!(active.drain().len(), 12);
    }

    /// Tasks entered in a worker's nursery are found, listed and counted while they live; the
    /// ended ones leave the count at once and their entries go at a compaction (the nursery
    /// is filled past its first table); emptying it hands back every entry left.
    #[test]
    fn a_nursery_lists_its_live_tasks_and_gives_back_the_ended() {
        let active = Active::with_limit(1, 1000);
        active.lease(0);
        let mut live = Vec::new();
        let mut ended = Vec::new();
        for i in 0..40 {
            let (runnable, handle) = crate::pool_task(async {}, |_| {}, None);
            let id = runnable.metadata().id();
            // SAFETY: this thread holds worker 0's lease.
            unsafe { active.enter_local(0, TaskRef::new(&runnable)) };
            if i % 4 == 0 {
                runnable.run(); // completes
                ended.push(id);
            } else {
                live.push((id, runnable));
            }
            drop(handle);
        }
        assert_eq!(active.len(), live.len());
        let mut listed = Vec::new();
        active.for_each(|t| listed.push(t.metadata().id()));
        assert_eq!(listed, live.iter().map(|(id, _)| *id).collect::<Vec<_>>());
        for (id, _) in &live {
            assert_eq!(active.find(*id, TaskMeta::id), Some(*id));
        }
        for id in &ended {
            assert_eq!(active.find(*id, TaskMeta::id), None);
        }
        assert!(active.take_undriven().is_empty(), "not while driven");
        // SAFETY: as above.
        assert!(unsafe { active.end_lease(0, false) }.is_empty());
        let left = active.take_undriven();
        assert!(
            left.len() >= live.len() && left.len() < 40,
            "compacted on the way"
        );
        drop(left);
        assert_eq!(active.len(), 0);
        drop(live);
    }
}
