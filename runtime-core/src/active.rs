//! The registry of live tasks, so that shutdown can reach a task nobody will ever wake.
//!
//! A task that waits on a future that never completes is referenced only by wakers that nobody
//! calls; without this registry it could never be cancelled, and its future would never be
//! dropped. Each live task has one entry (its id and a waker) in one of a few sharded slabs;
//! the entry goes when the task's future is dropped.
//!
//! # Ground rules
//!
//! - `insert` checks `closed` *under the shard lock*, and shutdown sets `closed` before it
//!   drains each shard under the same lock: a spawn either lands in a shard before it is drained
//!   (and is cancelled by the drain) or sees `closed` and never starts.
//! - An entry is removed only by its own task (`remove` checks the id) or by the shutdown drain,
//!   which empties the shard for good.
//! - Wakers are called outside the lock: waking a task at shutdown drops its future, whose
//!   destructor removes its entry.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Waker;

use slab::Slab;

use crate::sync::lock_std as lock;
use crate::task::TaskId;

/// Where a task's entry lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActiveKey {
    shard: u32,
    index: u32,
}

/// One shard: each live task's id and a waker for it.
type Shard = Mutex<Slab<(TaskId, Waker)>>;

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
        make: impl FnOnce(Option<ActiveKey>) -> (R, Option<Waker>),
    ) -> R {
        let shard = id.as_u64() as usize & self.mask;
        let mut slab = lock(&self.shards[shard]);
        if closed.load(Ordering::SeqCst) {
            drop(slab);
            return make(None).0;
        }
        let index = slab.vacant_key();
        let key = ActiveKey {
            shard: shard as u32,
            index: index as u32,
        };
        let (out, waker) = make(Some(key));
        if let Some(waker) = waker {
            slab.insert((id, waker));
        }
        out
    }

    /// Removes task `id`'s entry, if it is still there.
    pub(crate) fn remove(&self, key: ActiveKey, id: TaskId) {
        let mut slab = lock(&self.shards[key.shard as usize]);
        if slab.get(key.index as usize).is_some_and(|(i, _)| *i == id) {
            let (_, waker) = slab.remove(key.index as usize);
            drop(slab);
            drop(waker);
        }
    }

    /// Wakes task `id` through its entry, if it is still there.
    pub(crate) fn wake(&self, key: ActiveKey, id: TaskId) {
        let waker = {
            let slab = lock(&self.shards[key.shard as usize]);
            match slab.get(key.index as usize) {
                Some((i, w)) if *i == id => w.clone(),
                _ => return,
            }
        };
        waker.wake();
    }

    /// Shutdown: takes every entry out and returns the wakers.
    pub(crate) fn drain(&self) -> Vec<Waker> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let mut slab = lock(shard);
            out.extend(slab.drain().map(|(_, w)| w));
            slab.shrink_to_fit();
        }
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}
