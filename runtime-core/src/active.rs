//! The registry of live tasks, so that shutdown can reach a task nobody will ever wake.
//!
//! A task that waits on a future that never completes is referenced only by wakers that nobody
//! calls; without this registry it could never be cancelled, and its future would never be
//! dropped. Each live task has one entry (a waker, 16 bytes) in one of a few sharded slabs; the
//! entry goes when the task's future is dropped.
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
//! - Wakers are called outside the lock: waking a task at shutdown drops its future, whose
//!   destructor removes its entry.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Waker;

use slab::Slab;

use std::num::NonZeroU64;
use std::ptr::NonNull;

use crate::sync::lock_unpoisoned as lock;
use crate::task::{TaskId, TaskMeta};

/// Where a task's entry lives: the shard in the top 16 bits, the slab index + 1 below (so that
/// `Option<ActiveKey>` is 8 bytes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActiveKey(NonZeroU64);

impl ActiveKey {
    fn new(shard: usize, index: usize) -> ActiveKey {
        let packed = ((shard as u64) << 48) | (index as u64 + 1);
        ActiveKey(NonZeroU64::new(packed).expect("index + 1 is never zero"))
    }

    fn shard(self) -> usize {
        (self.0.get() >> 48) as usize
    }

    fn index(self) -> usize {
        (self.0.get() & ((1 << 48) - 1)) as usize - 1
    }
}

/// A live task's entry: its waker, and its metadata for [`Active::for_each`] (24 bytes in the
/// slab: the waker's non-null vtable pointer holds the slab's vacant marker).
pub(crate) struct Entry {
    waker: Waker,
    meta: NonNull<TaskMeta>,
}

// SAFETY: `meta` points into the task's allocation, which the entry's own `waker` keeps alive;
// it is only dereferenced (as a shared reference: `TaskMeta` is `Sync`) under the shard lock,
// while the entry is in the slab.
unsafe impl Send for Entry {}

impl Entry {
    pub(crate) fn new(waker: Waker, meta: &TaskMeta) -> Entry {
        Entry {
            waker,
            meta: NonNull::from(meta),
        }
    }
}

/// One shard: an entry for each live task.
type Shard = Mutex<Slab<Entry>>;

pub(crate) struct Active {
    shards: Box<[Shard]>,
    mask: usize,
}

impl Active {
    pub(crate) fn new(workers: usize) -> Active {
        let n = (workers.max(1) * 4).next_power_of_two();
        Active {
            shards: (0..n).map(|_| Mutex::new(Slab::new())).collect(),
            mask: n - 1,
        }
    }

    /// Reserves an entry for task `id` and fills it with the waker that `make` returns, unless
    /// the runtime is `closed`. `make` runs under the shard lock and gets the key.
    pub(crate) fn insert<R>(
        &self,
        id: TaskId,
        closed: &AtomicBool,
        make: impl FnOnce(Option<ActiveKey>) -> (R, Option<Entry>),
    ) -> R {
        let shard = id.as_u64() as usize & self.mask;
        let mut slab = lock(&self.shards[shard]);
        if closed.load(Ordering::SeqCst) {
            drop(slab);
            return make(None).0;
        }
        let key = ActiveKey::new(shard, slab.vacant_key());
        let (out, entry) = make(Some(key));
        if let Some(entry) = entry {
            slab.insert(entry);
        }
        out
    }

    /// Removes a task's entry, if it is still there (the shutdown drain may have taken it), and
    /// marks the task ended under the lock (see [`Active::waker_of`]).
    pub(crate) fn remove(&self, key: ActiveKey, meta: &TaskMeta) {
        let mut slab = lock(&self.shards[key.shard()]);
        meta.ended.store(true, Ordering::Release);
        let waker = slab.try_remove(key.index());
        drop(slab);
        drop(waker);
    }

    /// Wakes the task of `key`, if its entry is still there.
    pub(crate) fn wake(&self, key: ActiveKey) {
        let waker = lock(&self.shards[key.shard()])
            .get(key.index())
            .map(|e| e.waker.clone());
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The waker of the task whose entry is `key`, if the task has not ended. Its entry is
    /// removed, and `ended` set, under the shard lock; so under the lock, a task not ended still
    /// owns its slot (no other task's entry is there).
    pub(crate) fn waker_of(&self, key: ActiveKey, meta: &TaskMeta) -> Option<Waker> {
        let slab = lock(&self.shards[key.shard()]);
        if meta.ended.load(Ordering::Acquire) {
            return None;
        }
        slab.get(key.index()).map(|e| e.waker.clone())
    }

    /// Calls `f` with the metadata of the live task `id`, if there is one (a scan of its shard,
    /// under the shard's lock: for rare reports, not hot paths).
    pub(crate) fn find<R>(&self, id: TaskId, f: impl FnOnce(&TaskMeta) -> R) -> Option<R> {
        let slab = lock(&self.shards[id.as_u64() as usize & self.mask]);
        let entry = slab.iter().find(|(_, e)| {
            // SAFETY: see `Entry`: the entry is in the slab and we hold the shard's lock.
            unsafe { e.meta.as_ref() }.id() == id
        })?;
        // SAFETY: as above.
        Some(f(unsafe { entry.1.meta.as_ref() }))
    }

    /// Calls `f` with the metadata of every live task, one shard at a time, under its lock
    /// (`f` must not spawn or end tasks).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&TaskMeta)) {
        for shard in self.shards.iter() {
            let slab = lock(shard);
            for (_, entry) in slab.iter() {
                // SAFETY: see `Entry`: the entry is in the slab and we hold the shard's lock.
                f(unsafe { entry.meta.as_ref() });
            }
        }
    }

    /// Shutdown: takes every entry out and returns the wakers.
    pub(crate) fn drain(&self) -> Vec<Waker> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let mut slab = lock(shard);
            out.extend(slab.drain().map(|e| e.waker));
            slab.shrink_to_fit();
        }
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}
