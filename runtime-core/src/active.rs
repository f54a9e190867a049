//! The registry of live tasks, so that shutdown can reach a task nobody will ever wake.
//!
//! A task that waits on a future that never completes is referenced only by wakers that nobody
//! calls; without this registry it could never be cancelled, and its future would never be
//! dropped. Each live task has one entry (a counted reference to its cell, which reaches its
//! metadata too) in one of a few sharded tables (at most 64); the entry goes when the task's
//! future is dropped.
//!
//! # Ground rules
//!
//! - `insert` checks `closed` *under the shard lock*, and shutdown sets `closed` before it
//!   drains each shard under the same lock: a spawn either lands in a shard before it is drained
//!   (and is cancelled by the drain) or sees `closed` and never starts.
//! - An entry is removed only by its own task or by the shutdown drain, which empties the shard
//!   for good (no insert follows it). So a key never names another task's entry when its task
//!   removes it. `wake` (for `abort`) may race with the task's completion and wake a newer task
//!   that reused the slot: a spurious wake-up, which every future tolerates.
//! - Tasks are woken outside the lock: waking a task at shutdown drops its future, whose
//!   destructor removes its entry.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cell::TaskRef;
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

    fn get(&self, index: usize) -> Option<&TaskRef> {
        self.slots.get(index)?.as_ref()
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

    /// Removes a task's entry, if it is still there (the shutdown drain may have taken it), and
    /// marks the task ended under the lock (see [`Active::task_of`]).
    pub(crate) fn remove(&self, key: ActiveKey, meta: &TaskMeta) {
        let mut slab = lock(&self.shards[key.shard()]);
        meta.set_ended();
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

    /// Wakes the task of `key`, if its entry is still there.
    pub(crate) fn wake(&self, key: ActiveKey) {
        let task = lock(&self.shards[key.shard()]).get(key.index()).cloned();
        if let Some(t) = task {
            t.wake();
        }
    }

    /// A reference to the task whose entry is `key`, if the task has not ended. Its entry is
    /// removed, and `ended` set, under the shard lock; so under the lock, a task not ended still
    /// owns its slot (no other task's entry is there).
    pub(crate) fn task_of(&self, key: ActiveKey, meta: &TaskMeta) -> Option<TaskRef> {
        let slab = lock(&self.shards[key.shard()]);
        if meta.is_ended() {
            return None;
        }
        slab.get(key.index()).cloned()
    }

    /// Calls `f` with the metadata of the live task `id`, if there is one (a scan of its shard,
    /// and of the others if a full shard had passed it on, under each shard's lock: for rare
    /// reports, not hot paths).
    pub(crate) fn find<R>(&self, id: TaskId, f: impl FnOnce(&TaskMeta) -> R) -> Option<R> {
        let home = id.as_u64() as usize & self.mask;
        for i in 0..self.shards.len() {
            let slab = lock(&self.shards[(home + i) & self.mask]);
            let found = slab.iter().find(|t| t.metadata().id() == id);
            if let Some(task) = found {
                return Some(f(task.metadata()));
            }
        }
        None
    }

    /// Calls `f` with the metadata of every live task, one shard at a time, under its lock
    /// (`f` must not spawn or end tasks).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&TaskRef)) {
        for shard in self.shards.iter() {
            let slab = lock(shard);
            for task in slab.iter() {
                f(task);
            }
        }
    }

    /// Shutdown: takes every entry out and returns the tasks.
    pub(crate) fn drain(&self) -> Vec<TaskRef> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(lock(shard).drain());
        }
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len).sum()
    }
}

#[cfg(test)]
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
            active.remove(key, tasks[i].metadata());
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
            assert!(active.task_of(*key, meta).is_some());
        }
        let extra = task();
        let full = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            insert(&active, &extra, &closed)
        }))
        .expect_err("a 13th task does not fit");
        let msg = full.downcast_ref::<String>().expect("a formatted message");
        assert!(msg.contains("12 live tasks"), "{msg}");
        // A removed entry makes room again, and its task counts as ended.
        active.remove(keys[3], tasks[3].metadata());
        assert!(tasks[3].metadata().is_ended());
        assert!(active.task_of(keys[3], tasks[3].metadata()).is_none());
        assert!(insert(&active, &extra, &closed).is_some());
        assert_eq!(active.drain().len(), 12);
    }
}
