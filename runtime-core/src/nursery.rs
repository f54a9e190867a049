//! A worker's own part of the task registry: the tasks spawned on that worker, entered without
//! a lock or a read-modify-write, and given back by the worker in batches.
//!
//! The registry (`active.rs`) must reach every live task, so that shutdown can cancel one that
//! nobody will wake and the dump can list it. Its sharded tables cost a spawn a lock and an
//! unlock, and the task's end another pair: a fifth of a one-thread spawn's instructions, more
//! of its time. Most tasks are spawned by a task, on a worker; their entries go here instead.
//!
//! # Protocol
//!
//! A nursery has at most one *owner*: the thread that drives its worker (the worker thread, or
//! `block_on`'s thread in current-thread mode, with the policy's loop or, after an ejection,
//! the fallback's), from [`Nursery::lease`] to [`Nursery::end_lease`], which set and clear
//! `driven` under the lock (so one owner's accesses happen before the next one's). Everyone
//! else is a *reader* (the dump, the watchdog, shutdown); at shutdown a reader that finds the
//! nursery not driven may empty it ([`Nursery::take_undriven`]), holding the lock throughout.
//!
//! - The owner **appends** without the lock: it writes the word at `len`, then stores `len + 1`
//!   (release). Only the owner writes `len` and the words at or above it.
//! - A reader takes `lock`, loads `len` (acquire) and reads the words below it. While the lock
//!   is held nobody changes those words: only the owner does, and only under the lock.
//! - The owner **compacts** under the lock, when its words are full or when it is about to
//!   park: the words of tasks that have ended move above the live ones, `len` drops to the
//!   live count, and the table doubles if more than half of it is still live (so a compaction's
//!   scan is paid for by the appends that filled the room it made). After unlocking it gives
//!   up the ended tasks' references, which it alone can still see.
//! - A task's end takes nothing here: its entry is found ended at the next compaction. Until
//!   then the entry keeps the task's cell (not its future, which is gone) allocated.
//!
//! An entry is a `TaskRef` made raw (`TaskRef::into_raw`), a pointer this module never follows,
//! so that its loom model stores made-up ones. A nursery is emptied at shutdown, by its owner
//! as it stops or by the shutdown itself if nobody drives the worker: an entry holds its task,
//! whose metadata holds the runtime, so a nursery left full would keep both alive.

use crate::sync::{AtomicPtr, AtomicUsize, Mutex, RacyCell, lock};
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// An entry: a raw `TaskRef`.
pub(crate) type Word = *mut ();

/// Entries in a new nursery. Small on purpose: while few tasks live at once (a chain of spawns)
/// the table stays this size, and each compaction frees at most 7 cells, which glibc's cache of
/// freed blocks (7 per size) takes whole, so the next spawns reuse them at once. With 16,
/// chained_spawn costs 2.6% more instructions (callgrind: 5,016,309 against 4,886,172).
const FIRST_CAPACITY: usize = 8;

pub(crate) struct Nursery {
    /// Held by a reader while it reads, and by the owner while it rewrites words below `len`
    /// or replaces `words`; it guards `driven`: whether an owner holds the lease.
    lock: Mutex<bool>,
    /// The entries, the first `len` of them filled. Replaced only by the owner, under `lock`.
    words: RacyCell<Box<[AtomicPtr<()>]>>,
    len: AtomicUsize,
    /// `len` after the last compaction (the owner's alone: relaxed): entries above it are
    /// new since.
    settled: AtomicUsize,
    /// When the last compaction was, in `tidy`'s clock (the owner's alone).
    tidied_at: AtomicUsize,
}

// SAFETY: the table is read by readers only under `lock`, and written (or replaced) only by the
// owner under `lock` (module docs); its words and `len` are atomics.
unsafe impl Sync for Nursery {}

impl Nursery {
    pub(crate) fn new() -> Nursery {
        Nursery::with_capacity(FIRST_CAPACITY)
    }

    fn with_capacity(capacity: usize) -> Nursery {
        Nursery {
            lock: Mutex::new(false),
            words: RacyCell::new(empty_words(capacity.max(1))),
            len: AtomicUsize::new(0),
            settled: AtomicUsize::new(0),
            tidied_at: AtomicUsize::new(0),
        }
    }

    /// Appends `word`; when the table is full first compacts it, calling `ended` on each word,
    /// and hands the words of ended entries to `release` (after unlocking).
    ///
    /// # Safety
    ///
    /// The caller is the owner (module docs).
    pub(crate) unsafe fn push(
        &self,
        word: Word,
        ended: impl Fn(Word) -> bool,
        release: impl FnMut(Word),
    ) {
        let mut len = self.len.load(Relaxed);
        // SAFETY: the owner reads `words` without the lock: only it ever replaces them.
        if len == self.words.with(|w| unsafe { (&*w).len() }) {
            // SAFETY: the caller is the owner.
            unsafe { self.compact(true, &ended, release) };
            len = self.len.load(Relaxed);
        }
        // SAFETY: as above; the word at `len` is the owner's (no reader reads it yet).
        self.words
            .with(|w| unsafe { (&*w)[len].store(word, Relaxed) });
        self.len.store(len + 1, Release);
    }

    /// Compacts (a worker about to park; `now` reads seconds of any monotonic clock, and only
    /// if there are entries) if
    /// enough entries were made since the last time for the scan to be paid for by them, or if
    /// the last time was a second ago or more: tasks that ended among the older entries are
    /// given back then, at most once a second's cost of a scan.
    ///
    /// # Safety
    ///
    /// The caller is the owner.
    pub(crate) unsafe fn tidy(
        &self,
        now: impl FnOnce() -> usize,
        ended: impl Fn(Word) -> bool,
        release: impl FnMut(Word),
    ) {
        let len = self.len.load(Relaxed);
        if len == 0 {
            return;
        }
        let now = now();
        let fresh = len.saturating_sub(self.settled.load(Relaxed));
        let stale = now != self.tidied_at.load(Relaxed);
        if fresh > 0 && fresh * 2 >= len || stale {
            self.tidied_at.store(now, Relaxed);
            // SAFETY: the caller is the owner.
            unsafe { self.compact(false, &ended, release) };
        }
    }

    /// Moves the ended entries above the live ones, drops `len` to the live count, doubles the
    /// table if `grow` and more than half of it is live, then (unlocked) releases the ended.
    ///
    /// # Safety
    ///
    /// The caller is the owner.
    #[cold]
    unsafe fn compact(
        &self,
        grow: bool,
        ended: &dyn Fn(Word) -> bool,
        mut release: impl FnMut(Word),
    ) {
        let guard = lock(&self.lock);
        let len = self.len.load(Relaxed);
        let live = self.words.with(|w| {
            // SAFETY: under the lock, as the owner: nobody else touches the words.
            let words = unsafe { &*w };
            let mut live = 0;
            for i in 0..len {
                let word = words[i].load(Relaxed);
                if !ended(word) {
                    words[i].store(words[live].load(Relaxed), Relaxed);
                    words[live].store(word, Relaxed);
                    live += 1;
                }
            }
            live
        });
        // SAFETY: the owner reads `words` (and under the lock).
        let capacity = self.words.with(|w| unsafe { (&*w).len() });
        if grow && live * 2 > capacity {
            let bigger = empty_words(capacity * 2);
            self.words.with(|w| {
                // SAFETY: under the lock, as the owner.
                for (i, word) in unsafe { &*w }[..len].iter().enumerate() {
                    bigger[i].store(word.load(Relaxed), Relaxed);
                }
            });
            // SAFETY: under the lock, as the owner: no reader holds a borrow of the old table.
            let old = self
                .words
                .with_mut(|w| unsafe { std::mem::replace(&mut *w, bigger) });
            drop(old);
        }
        self.len.store(live, Release);
        self.settled.store(live, Relaxed);
        drop(guard);
        // The ended words sit between `live` and the old `len`: the owner's alone now (no
        // reader reads at or above `len`).
        for i in live..len {
            // A load and a store, not a swap: nobody else touches these words, and a swap is
            // an atomic read-modify-write per task.
            let word = self.words.with(|w| {
                // SAFETY: the owner reads its own words.
                let slot = unsafe { &(&*w)[i] };
                let word = slot.load(Relaxed);
                slot.store(ptr::null_mut(), Relaxed);
                word
            });
            release(word);
        }
    }

    /// Makes the calling thread the owner, until [`end_lease`](Self::end_lease).
    ///
    /// # Panics
    ///
    /// If another thread holds the lease: one thread drives each worker.
    pub(crate) fn lease(&self) {
        let mut driven = lock(&self.lock);
        assert!(!*driven, "one thread drives each worker");
        *driven = true;
    }

    /// Gives the lease up; with `empty`, takes every entry out first (the owner stopping at
    /// shutdown).
    ///
    /// # Safety
    ///
    /// The caller holds the lease.
    pub(crate) unsafe fn end_lease(&self, empty: bool) -> Vec<Word> {
        let mut driven = lock(&self.lock);
        *driven = false;
        // Under the lock, the owner until it unlocks.
        if empty {
            self.take_locked()
        } else {
            Vec::new()
        }
    }

    /// Takes every entry out if nobody holds the lease (shutdown, for a worker nobody drives).
    pub(crate) fn take_undriven(&self) -> Vec<Word> {
        let driven = lock(&self.lock);
        // Holding the lock with `driven` clear, this thread stands in for the owner: nobody
        // can take the lease meanwhile.
        if *driven {
            Vec::new()
        } else {
            self.take_locked()
        }
    }

    /// Every entry, taken out: by the owner or a stand-in, under the lock.
    fn take_locked(&self) -> Vec<Word> {
        let len = self.len.load(Relaxed);
        let out = self.words.with(|w| {
            // SAFETY: the caller holds the lock and is the owner or stands in for it.
            let words = unsafe { &*w };
            words[..len]
                .iter()
                .map(|x| x.swap(ptr::null_mut(), Relaxed))
                .collect()
        });
        self.len.store(0, Release);
        self.settled.store(0, Relaxed);
        out
    }

    /// Calls `f` with every entry, under the lock (any thread; `f` must not spawn or end tasks
    /// of this nursery's worker).
    pub(crate) fn for_each(&self, f: impl FnMut(Word)) {
        let _guard = lock(&self.lock);
        self.read(f);
    }

    /// The reader's part of `for_each`, lock aside (its loom model's broken twin calls it
    /// without the lock).
    fn read(&self, mut f: impl FnMut(Word)) {
        let len = self.len.load(Acquire);
        self.words.with(|w| {
            // SAFETY: under the lock the words below `len` do not change, and the table is not
            // replaced (module docs).
            for word in &unsafe { &*w }[..len] {
                f(word.load(Relaxed));
            }
        });
    }
}

fn empty_words(n: usize) -> Box<[AtomicPtr<()>]> {
    (0..n).map(|_| AtomicPtr::new(ptr::null_mut())).collect()
}

#[cfg(all(test, not(rt_loom)))]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Entry `x` as a made-up pointer (never followed), and back.
    fn word(x: usize) -> Word {
        ptr::without_provenance_mut(x)
    }
    fn num(w: Word) -> usize {
        w.addr()
    }

    // Each test is its nursery's only thread, so its owner: the helpers' unsafe calls are sound.

    fn push(n: &Nursery, x: usize, ended: impl Fn(usize) -> bool, mut release: impl FnMut(usize)) {
        // SAFETY: the test's thread is the owner.
        unsafe { n.push(word(x), |w| ended(num(w)), |w| release(num(w))) }
    }

    fn tidy(
        n: &Nursery,
        now: usize,
        ended: impl Fn(usize) -> bool,
        mut release: impl FnMut(usize),
    ) {
        // SAFETY: as above.
        unsafe { n.tidy(|| now, |w| ended(num(w)), |w| release(num(w))) }
    }

    fn take_all(n: &Nursery) -> Vec<usize> {
        n.take_undriven().into_iter().map(num).collect()
    }

    fn capacity(n: &Nursery) -> usize {
        // SAFETY: as above.
        n.words.with(|w| unsafe { (&*w).len() })
    }

    fn entries(n: &Nursery) -> Vec<usize> {
        let mut out = Vec::new();
        n.for_each(|w| out.push(num(w)));
        out
    }

    /// A full table is compacted: ended entries go (once each, to `release`), live ones stay in
    /// their order, and the table doubles when more than half of it is live.
    #[test]
    fn a_full_nursery_gives_back_the_ended_and_grows_when_mostly_live() {
        let n = Nursery::with_capacity(4);
        let released = RefCell::new(Vec::new());
        let ended = |w: usize| w % 2 == 0; // even words stand for ended tasks
        let release = |w| released.borrow_mut().push(w);
        for w in 1..=4 {
            push(&n, w, ended, release);
        }
        assert_eq!(entries(&n), [1, 2, 3, 4]);
        // Full: 2 and 4 have ended, 1 and 3 are half of 4, so no growth.
        push(&n, 5, ended, release);
        assert_eq!(entries(&n), [1, 3, 5]);
        assert_eq!(released.borrow().as_slice(), [2, 4]);
        assert_eq!(capacity(&n), 4);
        // Full again with 1, 3, 5, 7 live: doubles.
        push(&n, 7, ended, release);
        push(&n, 9, ended, release);
        assert_eq!(entries(&n), [1, 3, 5, 7, 9]);
        assert_eq!(capacity(&n), 8);
        assert_eq!(released.borrow().len(), 2, "nothing released twice");
        assert_eq!(take_all(&n), [1, 3, 5, 7, 9]);
        assert!(entries(&n).is_empty());
    }

    /// While a thread holds the lease nobody else can empty the nursery, nor take the lease;
    /// given up, the entries stay for the next owner or for the shutdown's stand-in.
    #[test]
    fn the_lease_keeps_the_entries_the_owners() {
        let n = Nursery::with_capacity(4);
        n.lease();
        push(&n, 1, |_| false, |_| {});
        assert!(
            n.take_undriven().is_empty(),
            "driven: not a stand-in's to take"
        );
        let second = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| n.lease()));
        assert!(second.is_err(), "one thread drives each worker");
        // SAFETY: this thread holds the lease.
        assert!(unsafe { n.end_lease(false) }.is_empty());
        n.lease();
        push(&n, 2, |_| false, |_| {});
        // SAFETY: as above; stopping after the close, the owner takes everything.
        let taken: Vec<usize> = unsafe { n.end_lease(true) }.into_iter().map(num).collect();
        assert_eq!(taken, [1, 2]);
        assert!(take_all(&n).is_empty());
    }

    /// A worker about to park compacts once enough entries were made since the last time, or
    /// once a second has passed since then.
    #[test]
    fn tidy_scans_when_paid_for_or_a_second_later() {
        let n = Nursery::with_capacity(64);
        let released = RefCell::new(Vec::new());
        let release = |w| released.borrow_mut().push(w);
        for w in 1..=10 {
            push(&n, w, |_| false, release);
        }
        tidy(&n, 7, |w| w <= 5, release);
        assert_eq!(entries(&n), [6, 7, 8, 9, 10]);
        assert_eq!(released.borrow().as_slice(), [1, 2, 3, 4, 5]);
        // One new entry beside five old ones, in the same second: not worth a scan yet.
        push(&n, 11, |_| false, release);
        tidy(&n, 7, |_| true, release);
        assert_eq!(entries(&n).len(), 6);
        // The next second: the old entries' tasks ended meanwhile, and go.
        tidy(&n, 8, |w| w != 11, release);
        assert_eq!(entries(&n), [11]);
        assert_eq!(released.borrow().len(), 10);
        take_all(&n);
    }
}

/// The protocol under loom: an owner appends (growing the table) and compacts while a reader
/// reads under the lock. The reader sees only words that were appended and not yet given
/// back, and every word is given back exactly once.
#[cfg(all(test, rt_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    fn round(
        ended: fn(usize) -> bool,
        released_then_kept: (&[usize], &[usize]),
        reader_locks: bool,
    ) {
        let n = Arc::new(Nursery::with_capacity(2));
        n.lease();
        let reader = {
            let n = n.clone();
            loom::thread::spawn(move || {
                let check =
                    |w: Word| assert!((1..=3).contains(&w.addr()), "a word never appended: {w:?}");
                if reader_locks {
                    n.for_each(check);
                    // A stand-in finds the worker driven, and takes nothing.
                    assert!(n.take_undriven().is_empty(), "taken from under its owner");
                } else {
                    n.read(check);
                }
            })
        };
        let mut released = Vec::new();
        for x in 1..=3 {
            let ended = |w: Word| ended(w.addr());
            // SAFETY: this thread is the owner (it holds the lease).
            unsafe {
                n.push(ptr::without_provenance_mut(x), ended, |w| {
                    released.push(w.addr())
                })
            };
        }
        reader.join().unwrap();
        // SAFETY: this thread holds the lease.
        assert!(unsafe { n.end_lease(false) }.is_empty());
        assert_eq!(released, released_then_kept.0, "given back once each");
        let kept: Vec<usize> = n.take_undriven().iter().map(|w| w.addr()).collect();
        assert_eq!(kept, released_then_kept.1);
    }

    /// The third word finds the table full: word 1 has ended and goes, the table keeps its size.
    #[test]
    fn a_reader_races_an_owner_that_compacts() {
        loom::model(|| round(|w| w == 1, (&[1], &[2, 3]), true));
    }

    /// Nothing has ended: the table doubles while the reader may be reading it.
    #[test]
    fn a_reader_races_an_owner_that_grows_the_table() {
        loom::model(|| round(|_| false, (&[], &[1, 2, 3]), true));
    }

    /// The model catches a reader that skips the lock: the table is replaced under it.
    #[test]
    #[should_panic(expected = "Causality violation")]
    fn a_reader_without_the_lock_races_the_growth() {
        loom::model(|| round(|_| false, (&[], &[1, 2, 3]), false));
    }
}
