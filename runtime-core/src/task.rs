//! The task harness: task identity and metadata, the future wrapper that catches panics and
//! honours `abort`, and [`JoinHandle`] / [`JoinError`].

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::active::ActiveKey;
use crate::cell::{Body, JoinCell, TaskRef};
use crate::shared::Shared;

pub use crate::cell::Runnable;

/// How many ids a thread takes from the process-wide counter at a time (see [`TaskId::next`]).
const ID_BLOCK: u64 = 1024;
/// Ids keep 56 bits: the metadata keeps the priority in the id's word (see [`TaskMeta`]).
const ID_MASK: u64 = (1 << 56) - 1;

/// A task's identifier, unique within the process (ids are below 2^56: they would repeat
/// after 2^56 spawns, some two centuries at ten million spawns a second).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

impl TaskId {
    /// A fresh id. Each thread takes ids from a block of its own ([`ID_BLOCK`] at a time from
    /// the process-wide counter), so a spawn does not write a counter that every spawning
    /// thread shares: ids are unique and increase on each thread, and only roughly follow
    /// spawn order across threads.
    pub(crate) fn next() -> TaskId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            /// The next id of this thread's block, and the block's end.
            static BLOCK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        BLOCK
            .try_with(|b| {
                let (mut next, mut end) = b.get();
                if next == end {
                    next = NEXT.fetch_add(ID_BLOCK, Ordering::Relaxed);
                    end = next + ID_BLOCK;
                }
                b.set((next + 1, end));
                TaskId(next & ID_MASK)
            })
            // A spawn while the thread's locals are being destroyed: one id of its own.
            .unwrap_or_else(|_| TaskId(NEXT.fetch_add(1, Ordering::Relaxed) & ID_MASK))
    }

    pub(crate) fn from_u64(id: u64) -> TaskId {
        TaskId(id)
    }

    /// The identifier as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A task's priority: a number that a scheduler may read. Higher is more urgent.
///
/// Schedulers that have no notion of priority (FIFO, work-stealing) carry it and ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Priority(pub u8);

impl Priority {
    /// Work that may wait for everything else.
    pub const BACKGROUND: Priority = Priority(0);
    /// Less urgent than the default.
    pub const LOW: Priority = Priority(64);
    /// The default priority of a task.
    pub const NORMAL: Priority = Priority(128);
    /// More urgent than the default.
    pub const HIGH: Priority = Priority(192);
    /// Latency-critical work.
    pub const CRITICAL: Priority = Priority(255);
}

impl Default for Priority {
    fn default() -> Self {
        Priority::NORMAL
    }
}

/// What the runtime knows about a task, readable by a scheduler through
/// [`Runnable::metadata`].
///
/// It lives in every task's header, so it is kept to five words. Values that are written
/// rarely or never share a word with one that is never written after the spawn, so that each
/// write stays a plain store: the priority shares the id's word, the abort bit the label's, and
/// the flags (written only by the thread that owns the future) the poll count's.
pub struct TaskMeta {
    /// The id above the low 8 bits, the priority in them: [`set_priority`](Self::set_priority)
    /// stores the word whole, keeping the id's bits, which never change.
    id_priority: AtomicU64,
    /// Where the task was spawned and, if it has one, its name, with the abort bit: one word
    /// (see [`Label`]).
    label: Label,
    /// The runtime that spawned the task (`None` for metadata made with `Default`, outside
    /// any runtime). Kept here rather than in the schedule function, so that the schedule
    /// function of every runtime task is one zero-sized type.
    pub(crate) shared: Option<Arc<Shared>>,
    /// The task's entry in its runtime's sharded registry (`None` outside a runtime, for a
    /// task entered in its worker's nursery instead, or when the runtime was already closed
    /// at spawn).
    pub(crate) key: Option<ActiveKey>,
    /// The scheduling policy's own word (see [`TaskMeta::policy_slot`]).
    policy_slot: AtomicU32,
    /// The polls so far above the low 8 bits (saturating), the flags in them:
    /// [`FUTURE_GONE`] (set while the task lives) and [`IN_NURSERY`], [`LOCAL`], [`HOOKED`],
    /// [`TIMED`] (set at spawn). Once the task is spawned only the thread that owns the
    /// future (polling or dropping it) writes this word, so a load and a store, not a
    /// read-modify-write (a bus-locked instruction), cannot lose a bit.
    polls_flags: AtomicU32,
    /// When it was spawned: the coarse clock in `SPAWN_TICK`s (wraps after two years).
    spawned_at: u32,
    /// tokio-console's view of the task (see [`crate::console`]).
    #[cfg(feature = "console")]
    pub(crate) console: crate::console::TaskSpan,
}

/// The task's entry is in its worker's nursery (set at spawn; see `nursery.rs`): with a
/// registry key, what tells a task that started from one its runtime cancelled at spawn.
const IN_NURSERY: u8 = 1 << 1;
/// The task's future has been dropped (by the thread that owns the future: see
/// [`TaskFuture`]).
const FUTURE_GONE: u8 = 1 << 2;
/// A `!Send` task kept beside the policy (see [`crate::LocalTasks`]): the policy never sees
/// it, so its end is not reported to the policy either.
const LOCAL: u8 = 1 << 3;
/// The runtime has task hooks (`Shared::task_hooks`): a bit to test per poll instead of three
/// pointers to follow.
const HOOKED: u8 = 1 << 4;
/// The runtime records histograms: schedules stamp `woken_at` (in the label's box).
const TIMED: u8 = 1 << 5;
/// The flags are the low byte of `polls_flags`; the count is above.
const FLAG_BITS: u32 = 0xff;
const POLL_ONE: u32 = 1 << 8;

/// A task's spawn location, optional name and abort bit in one word: a tagged pointer, either
/// to the location (`&'static`, [`Label::BOXED`] clear: no allocation, the common case) or to
/// a boxed [`Named`] ([`Label::BOXED`] set: a named task, or any task of a runtime that
/// records histograms), with [`Label::ABORTED`] beside. Both pointees are aligned to at least
/// 4, so the two low bits are free. The pointer never changes after the spawn, and the abort
/// bit is only ever set, so an abort is a plain store of the word with the bit added.
struct Label(AtomicPtr<u8>);

/// A boxed label.
struct Named {
    name: Option<String>,
    location: &'static Location<'static>,
    /// When the task was last scheduled, in the histograms' time base (only when [`TIMED`]).
    woken_at: AtomicU32,
}

const _: () = assert!(std::mem::align_of::<Location<'static>>() >= 4);
const _: () = assert!(std::mem::align_of::<Named>() >= 4);

impl Label {
    const BOXED: usize = 1;
    const ABORTED: usize = 2;
    const TAGS: usize = Self::BOXED | Self::ABORTED;

    fn new(name: Option<String>, location: &'static Location<'static>, timed: bool) -> Label {
        if name.is_none() && !timed {
            let ptr: *const Location<'static> = location;
            return Label(AtomicPtr::new(ptr.cast_mut().cast()));
        }
        let named = Box::into_raw(Box::new(Named {
            name,
            location,
            woken_at: AtomicU32::new(0),
        }));
        Label(AtomicPtr::new(
            named.cast::<u8>().map_addr(|a| a | Self::BOXED),
        ))
    }

    /// The word (relaxed: only the abort bit ever changes, and it is read with `is_aborted`).
    fn word(&self) -> *mut u8 {
        self.0.load(Ordering::Relaxed)
    }

    /// The untagged pointer to the boxed `Named`, if the label has one (with the box's own
    /// provenance, so that `drop` may free it).
    fn named_ptr(&self) -> Option<*mut Named> {
        let word = self.word();
        (word.addr() & Self::BOXED != 0).then(|| word.map_addr(|a| a & !Self::TAGS).cast())
    }

    fn named(&self) -> Option<&Named> {
        // SAFETY: the tag says this is the `Box<Named>` leaked in `new`, freed only in `drop`.
        self.named_ptr().map(|p| unsafe { &*p })
    }

    fn location(&self) -> &'static Location<'static> {
        match self.named() {
            Some(n) => n.location,
            // SAFETY: untagged, the pointer is the `&'static Location` given to `new`.
            None => unsafe { &*self.word().map_addr(|a| a & !Self::TAGS).cast() },
        }
    }

    fn name(&self) -> Option<&str> {
        self.named()?.name.as_deref()
    }

    /// Sets the abort bit: a plain store (release), since nothing else in the word changes.
    fn set_aborted(&self) {
        let word = self.word();
        self.0
            .store(word.map_addr(|a| a | Self::ABORTED), Ordering::Release);
    }

    /// Whether the abort bit is set (acquire: pairs with `set_aborted`).
    #[inline]
    fn is_aborted(&self) -> bool {
        self.0.load(Ordering::Acquire).addr() & Self::ABORTED != 0
    }
}

impl Drop for Label {
    fn drop(&mut self) {
        if let Some(named) = self.named_ptr() {
            // SAFETY: the box leaked in `new` (this pointer carries its provenance), dropped
            // once, here; nothing borrows it after.
            drop(unsafe { Box::from_raw(named) });
        }
    }
}

/// The coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`: a few nanoseconds to read, a
/// resolution of a few milliseconds), for task ages: a spawn cannot afford the precise clock.
pub(crate) fn coarse_now() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec; the call writes only into it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut t) };
    debug_assert_eq!(rc, 0, "CLOCK_MONOTONIC_COARSE is always there on Linux");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The unit of a task's spawn time: 2^24 ns (about 17 ms), so that a `u32` spans two years
/// and a spawn converts with a shift, not a division.
const SPAWN_TICK_SHIFT: u32 = 24;
pub(crate) const SPAWN_TICK: Duration = Duration::from_nanos(1 << SPAWN_TICK_SHIFT);

fn spawn_ticks(t: Duration) -> u32 {
    let nanos = t
        .as_secs()
        .wrapping_mul(1_000_000_000)
        .wrapping_add(u64::from(t.subsec_nanos()));
    (nanos >> SPAWN_TICK_SHIFT) as u32
}

impl TaskMeta {
    // Inline: a spawn builds the metadata in place instead of copying five words out of a call.
    #[inline]
    pub(crate) fn new(
        id: TaskId,
        name: Option<String>,
        priority: Priority,
        shared: Option<Arc<Shared>>,
        key: Option<ActiveKey>,
        location: &'static Location<'static>,
    ) -> TaskMeta {
        #[cfg(feature = "console")]
        let console = crate::console::TaskSpan::new(id, name.as_deref(), location);
        let mut flags = 0;
        if let Some(shared) = &shared {
            if shared.task_hooks.is_some() {
                flags |= HOOKED;
            }
            if shared.histograms.is_some() {
                flags |= TIMED;
            }
        }
        TaskMeta {
            id_priority: AtomicU64::new((id.0 << 8) | u64::from(priority.0)),
            label: Label::new(name, location, flags & TIMED != 0),
            shared,
            key,
            policy_slot: AtomicU32::new(0),
            polls_flags: AtomicU32::new(u32::from(flags)),
            spawned_at: spawn_ticks(coarse_now()),
            #[cfg(feature = "console")]
            console,
        }
    }

    #[inline]
    fn has(&self, flag: u8) -> bool {
        self.polls_flags.load(Ordering::Relaxed) & u32::from(flag) != 0
    }

    /// Marks the task local (before it is first scheduled).
    pub(crate) fn set_local(&mut self) {
        *self.polls_flags.get_mut() |= u32::from(LOCAL);
    }

    /// Marks the task entered in its worker's nursery (before it is first scheduled).
    pub(crate) fn set_in_nursery(&mut self) {
        *self.polls_flags.get_mut() |= u32::from(IN_NURSERY);
    }

    /// Whether the task has an entry in its runtime's registry: its runtime started it.
    #[inline]
    fn is_registered(&self) -> bool {
        self.key.is_some() || self.has(IN_NURSERY)
    }

    /// Whether the task is a `!Send` task kept beside the policy.
    #[inline]
    pub(crate) fn is_local(&self) -> bool {
        self.has(LOCAL)
    }

    fn set_aborted(&self) {
        self.label.set_aborted();
    }

    /// Sets `flag` ([`FUTURE_GONE`]). Only the thread that owns the task's future
    /// (polling or dropping it: the task cell hands the future from one such thread to the next
    /// with a happens-before edge) writes the word once the task is spawned, so a load and a
    /// store cannot lose another writer's bit.
    #[inline]
    fn set_owned_flag(&self, flag: u8) {
        let word = self.polls_flags.load(Ordering::Relaxed);
        self.polls_flags
            .store(word | u32::from(flag), Ordering::Release);
    }

    /// How long ago the task was spawned, to about 17 ms (correct for tasks younger than two
    /// years: the spawn time is kept in 32 bits of 2^24 ns).
    pub fn age(&self) -> Duration {
        let ticks = spawn_ticks(coarse_now()).wrapping_sub(self.spawned_at);
        SPAWN_TICK * ticks
    }

    /// Where the task was spawned: the caller of `spawn` (or of `JoinSet::spawn`,
    /// `spawn_local`, `Builder::spawn`, ...).
    pub fn location(&self) -> &'static Location<'static> {
        self.label.location()
    }

    /// How many times the task has been polled (up to 16,777,215: the count stops there).
    pub fn polls(&self) -> u32 {
        self.polls_flags.load(Ordering::Relaxed) >> 8
    }

    /// The task hooks of the task's runtime, if it has any.
    #[inline]
    pub(crate) fn hooks(&self) -> Option<&crate::hooks::TaskHooks> {
        if !self.has(HOOKED) {
            return None;
        }
        self.shared.as_ref()?.task_hooks.as_deref()
    }

    /// Stamps the time the task is scheduled, when its runtime records histograms.
    #[inline]
    pub(crate) fn stamp_woken(&self) {
        if self.has(TIMED) {
            self.stamp_woken_slow();
        }
    }

    #[cold]
    fn stamp_woken_slow(&self) {
        let histograms = self.shared.as_ref().and_then(|s| s.histograms.as_deref());
        if let (Some(h), Some(named)) = (histograms, self.label.named()) {
            named.woken_at.store(h.stamp(), Ordering::Relaxed);
        }
    }

    /// When the task was last scheduled, in the histograms' time base (0 unless its runtime
    /// records histograms).
    pub(crate) fn woken_at(&self) -> u32 {
        self.label
            .named()
            .map_or(0, |n| n.woken_at.load(Ordering::Relaxed))
    }

    /// A poll starts: counts it. Only the polling thread writes the count (see `polls_flags`).
    #[inline]
    fn begin_poll(&self) {
        let word = self.polls_flags.load(Ordering::Relaxed);
        if word < !FLAG_BITS {
            self.polls_flags.store(word + POLL_ONE, Ordering::Relaxed);
        }
    }

    /// The task's identifier.
    #[inline]
    pub fn id(&self) -> TaskId {
        TaskId(self.id_priority.load(Ordering::Relaxed) >> 8)
    }

    /// The task's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.label.name()
    }

    /// The task's current priority.
    #[inline]
    pub fn priority(&self) -> Priority {
        Priority(self.id_priority.load(Ordering::Relaxed) as u8)
    }

    /// Changes the priority; a scheduler sees it the next time the task is scheduled.
    pub fn set_priority(&self, priority: Priority) {
        // The id's bits never change: storing the word whole loses nothing.
        let word = self.id_priority.load(Ordering::Relaxed);
        self.id_priority
            .store((word & !0xff) | u64::from(priority.0), Ordering::Relaxed);
    }

    /// A word of per-task state that belongs to the scheduling policy: 0 when the task is
    /// spawned, never read or written by core. A policy keeps a small value here (a counter, a
    /// flag, a home worker) or an index into a table of its own, released in
    /// [`Scheduler::task_ended`](crate::Scheduler::task_ended). It costs nothing: it occupies
    /// what would be padding.
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    /// let meta = runtime_core::TaskMeta::default();
    /// meta.policy_slot().store(7, Ordering::Relaxed);
    /// assert_eq!(meta.policy_slot().load(Ordering::Relaxed), 7);
    /// ```
    pub fn policy_slot(&self) -> &AtomicU32 {
        &self.policy_slot
    }
}

/// Metadata with a fresh id, no name and the default priority, as the tasks of
/// [`pool_task`](crate::pool_task) have: for testing a scheduler outside a runtime.
impl Default for TaskMeta {
    #[track_caller]
    fn default() -> Self {
        TaskMeta::new(
            TaskId::next(),
            None,
            Priority::default(),
            None,
            None,
            Location::caller(),
        )
    }
}

impl fmt::Debug for TaskMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskMeta")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("location", &self.location())
            .field("priority", &self.priority())
            .finish()
    }
}

/// Why a task did not produce its output.
pub struct JoinError {
    id: TaskId,
    repr: Repr,
}

enum Repr {
    Cancelled,
    // The mutex only makes the error `Sync`; the payload is taken once, by value. Boxed so that
    // `JoinError` is two words: it is part of every task's output slot, panics are rare.
    Panic(Box<Mutex<Box<dyn Any + Send + 'static>>>),
}

// Part of every task's output slot: keep it two words.
const _: () = assert!(std::mem::size_of::<JoinError>() == 16);
// In every task's header: six words (40 bytes before the spawn location, spawn time, poll
// count, state and wake-up stamp came; 56 before the flags shared a byte and the registry key
// shrank to 32 bits).
#[cfg(not(feature = "console"))]
const _: () = assert!(std::mem::size_of::<TaskMeta>() <= 48);

impl JoinError {
    pub(crate) fn cancelled(id: TaskId) -> JoinError {
        JoinError {
            id,
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn panic(id: TaskId, payload: Box<dyn Any + Send>) -> JoinError {
        JoinError {
            id,
            repr: Repr::Panic(Box::new(Mutex::new(payload))),
        }
    }

    /// The task was cancelled: aborted through its handle, or dropped by a runtime shutdown.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The id of the task that failed.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The panic payload, to resume the panic with [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// If the task was cancelled rather than panicking; see [`try_into_panic`](Self::try_into_panic).
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .expect("JoinError::into_panic called on a cancelled task; check is_panic() first")
    }

    /// The panic payload, or the error back if the task was cancelled.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok((*p).into_inner().unwrap_or_else(|e| e.into_inner())),
            Repr::Cancelled => Err(self),
        }
    }

    fn panic_message(&self) -> Option<String> {
        let Repr::Panic(p) = &self.repr else {
            return None;
        };
        let p = p.lock().unwrap_or_else(|e| e.into_inner());
        crate::fault::panic_text(&**p)
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => write!(f, "task {} was cancelled", self.id),
            Repr::Panic(_) => match self.panic_message() {
                Some(msg) => write!(f, "task {} panicked with message {msg:?}", self.id),
                None => write!(f, "task {} panicked", self.id),
            },
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => write!(f, "JoinError::Cancelled({})", self.id),
            Repr::Panic(_) => match self.panic_message() {
                Some(msg) => write!(f, "JoinError::Panic({}, {msg:?})", self.id),
                None => write!(f, "JoinError::Panic({}, ..)", self.id),
            },
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> Self {
        std::io::Error::other(e.to_string())
    }
}

/// A handle to a spawned task, to await its output.
///
/// Follows tokio's semantics: awaiting it gives `Ok(output)`, or a [`JoinError`] if the task
/// panicked or was cancelled; dropping it detaches the task, which keeps running;
/// [`abort`](Self::abort) cancels it.
pub struct JoinHandle<T> {
    /// `None` once the output has been returned.
    task: Option<JoinCell<Result<T, JoinError>>>,
    id: TaskId,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: JoinCell<Result<T, JoinError>>) -> JoinHandle<T> {
        JoinHandle {
            id: task.metadata().id(),
            task: Some(task),
        }
    }

    /// Cancels the task. If it has not finished yet, its future is dropped the next time a
    /// worker would poll it (right away if it is waiting), and awaiting this handle gives a
    /// cancelled [`JoinError`]. A task that already finished keeps its output.
    pub fn abort(&self) {
        if let Some(task) = &self.task {
            let meta = task.metadata();
            if !task.is_finished() {
                meta.set_aborted();
                // Wake a runtime's task, so that it is polled and sees the flag (a task of the
                // blocking pool or the rayon bridge sees it if it has not started yet).
                if meta.shared.is_some() {
                    task.wake();
                }
            }
        }
    }

    /// A handle that can abort the task without owning this one (for a task of a runtime;
    /// for one of the blocking pool or the rayon bridge, it does nothing).
    pub fn abort_handle(&self) -> AbortHandle {
        let task = (self.task.as_ref())
            .filter(|t| t.metadata().shared.is_some() && !t.is_finished())
            .map(JoinCell::task_ref);
        AbortHandle { id: self.id, task }
    }

    /// Changes the task's priority; it applies from the task's next scheduling (a task already
    /// queued stays where it is, so no queue is ever corrupted).
    pub fn set_priority(&self, priority: Priority) {
        if let Some(meta) = self.metadata() {
            meta.set_priority(priority);
        }
    }

    /// Whether the task has finished: completed, panicked, or been cancelled.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's metadata (name, priority), while the handle is still awaitable.
    pub fn metadata(&self) -> Option<&TaskMeta> {
        self.task.as_ref().map(JoinCell::metadata)
    }
}

/// Aborts a task without owning its [`JoinHandle`] (tokio's `AbortHandle`); cloneable, and
/// `Send + Sync` whatever the task's output. Aborting a task that already finished does
/// nothing.
///
/// ```
/// # let rt = runtime_core::Runtime::new(runtime_core::BasicFifo::default(), Default::default())?;
/// rt.block_on(async {
///     let h = rt.spawn(std::future::pending::<()>());
///     let abort = h.abort_handle();
///     abort.abort();
///     assert!(h.await.unwrap_err().is_cancelled());
///     assert!(abort.is_finished());
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct AbortHandle {
    id: TaskId,
    /// A reference to the task (it keeps the task's allocation, and so its metadata, alive).
    /// `None` when the task had already ended, or belongs to no runtime.
    task: Option<TaskRef>,
}

impl AbortHandle {
    /// Cancels the task, as [`JoinHandle::abort`] does.
    pub fn abort(&self) {
        if let Some(task) = &self.task {
            if !task.is_complete() {
                task.metadata().set_aborted();
                task.wake();
            }
        }
    }

    /// Whether the task's future is gone (completed, panicked or cancelled).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(TaskRef::is_complete)
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("id", &self.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        let Some(task) = self.task.as_mut() else {
            panic!("JoinHandle polled after it returned its result");
        };
        std::task::ready!(crate::coop::poll_proceed(cx));
        let out = std::task::ready!(task.poll_join(cx));
        self.task = None;
        Poll::Ready(out.unwrap_or_else(|| Err(JoinError::cancelled(id))))
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Wraps every spawned future: catches panics, honours `abort`, and tells the runtime when the
/// future is gone (completed, cancelled, or dropped at shutdown). A [`Body`]: the cell hands it
/// the task's metadata at each poll and at a cancel, so it keeps no pointer to it.
pub(crate) struct TaskFuture<F> {
    /// Dropped in place once, when the task completes or is cancelled; the task's
    /// [`FUTURE_GONE`] flag says so (a flag in the metadata rather than an `Option` here: an
    /// async block has no niche for `None`, and this is in every task).
    future: ManuallyDrop<F>,
    /// The task's `runtime.spawn` span (tokio-console): entered around each poll, closed when
    /// the future is dropped.
    #[cfg(feature = "console")]
    span: tracing::Span,
}

impl<F> TaskFuture<F> {
    #[cfg_attr(not(feature = "console"), allow(unused_variables))]
    pub(crate) fn new(meta: &TaskMeta, future: F) -> TaskFuture<F> {
        TaskFuture {
            future: ManuallyDrop::new(future),
            #[cfg(feature = "console")]
            span: meta.console.take_span(),
        }
    }
}

/// Calls `f` with the metadata of the task being polled on this thread, if any (also while
/// its hooks run and while its future is dropped at its end).
pub fn with_current_task<R>(f: impl FnOnce(Option<&TaskMeta>) -> R) -> R {
    let ptr = crate::cell::polling_meta();
    // The pointer is null outside a poll, and otherwise valid for the poll, which `f` runs
    // within (it is called from code the poll calls).
    // SAFETY: per the above the pointer is null or valid, and the reference does not escape `f`.
    f(unsafe { ptr.as_ref() })
}

/// The priority of the task being polled on this thread, if any.
pub fn current_priority() -> Option<Priority> {
    with_current_task(|t| t.map(TaskMeta::priority))
}

/// Changes the priority of the task being polled on this thread; it applies from the task's
/// next scheduling. Returns `false` outside a task.
pub fn set_current_priority(priority: Priority) -> bool {
    with_current_task(|t| t.map(|t| t.set_priority(priority)).is_some())
}

impl<F: Future> Body for TaskFuture<F> {
    type Output = Result<F::Output, JoinError>;

    fn poll(self: Pin<&mut Self>, meta: &TaskMeta, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved (only dropped in place, in
        // `drop_future`).
        let this = unsafe { self.get_unchecked_mut() };
        let id = meta.id();
        if meta.has(FUTURE_GONE) {
            return Poll::Ready(Err(JoinError::cancelled(id)));
        }
        // Acquire: pairs with `set_aborted`.
        if meta.label.is_aborted() {
            this.drop_future(meta, false);
            return Poll::Ready(Err(JoinError::cancelled(id)));
        }
        // SAFETY: see above: the future stays where it is until it is dropped in place, and it
        // is still there (`FUTURE_GONE` is clear).
        let fut = unsafe { Pin::new_unchecked(&mut *this.future) };
        meta.begin_poll();
        #[cfg(feature = "console")]
        let _entered = this.span.enter();
        let polled = match meta.hooks() {
            // Out of line, so that the common path keeps its registers.
            Some(hooks) => poll_hooked(hooks, meta, fut, cx),
            None => catch_unwind(AssertUnwindSafe(|| fut.poll(cx))),
        };
        #[cfg(feature = "console")]
        drop(_entered);
        let out = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(v)) => Ok(v),
            Err(payload) => Err(JoinError::panic(id, payload)),
        };
        this.drop_future(meta, true);
        Poll::Ready(out)
    }

    fn cancel(self: Pin<&mut Self>, meta: &TaskMeta) {
        // SAFETY: as in `poll`: the future is only dropped in place.
        unsafe { self.get_unchecked_mut() }.drop_future(meta, false);
    }
}

/// A poll between the before and after hooks.
#[inline(never)]
fn poll_hooked<F: Future>(
    hooks: &crate::hooks::TaskHooks,
    meta: &TaskMeta,
    fut: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> std::thread::Result<Poll<F::Output>> {
    hooks.before_poll(meta);
    let polled = catch_unwind(AssertUnwindSafe(|| fut.poll(cx)));
    hooks.after_poll(meta);
    polled
}

impl<F> TaskFuture<F> {
    /// Drops the future once; `completed` says whether it ran to completion (output or panic)
    /// rather than being cancelled.
    fn drop_future(&mut self, meta: &TaskMeta, completed: bool) {
        if meta.has(FUTURE_GONE) {
            return;
        }
        // Only the thread that owns the future (polling or dropping it) sets or reads this flag.
        meta.set_owned_flag(FUTURE_GONE);
        // A panicking destructor must not take the worker down.
        // SAFETY: the future is dropped in place (it was pinned) exactly once: the flag, set
        // before, keeps every later poll and drop away from it, even if its destructor panics.
        let dropped = catch_unwind(AssertUnwindSafe(|| unsafe {
            ManuallyDrop::drop(&mut self.future)
        }));
        if let Err(p) = dropped {
            crate::fault::report_panic("the destructor of a task's future", &*p);
        }
        if let Some(shared) = &meta.shared
            && meta.is_registered()
        {
            shared.task_done(meta.key, meta, completed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words that pack two things keep each of them apart: the priority beside the id, the
    /// abort bit beside the label, the flags beside the poll count (which stops at its top).
    #[test]
    fn the_packed_words_keep_their_parts_apart() {
        let location = Location::caller();
        let id = TaskId::from_u64(ID_MASK);
        let meta = TaskMeta::new(id, Some("n".into()), Priority::HIGH, None, None, location);
        #[cfg(not(feature = "console"))]
        assert_eq!(size_of::<TaskMeta>(), 5 * 8, "five words");
        meta.set_priority(Priority::CRITICAL);
        assert_eq!((meta.id(), meta.priority()), (id, Priority::CRITICAL));
        meta.set_priority(Priority::BACKGROUND);
        assert_eq!((meta.id(), meta.priority()), (id, Priority::BACKGROUND));

        assert!(!meta.label.is_aborted());
        meta.set_aborted();
        assert!(meta.label.is_aborted());
        assert_eq!((meta.name(), meta.location()), (Some("n"), location));

        meta.set_owned_flag(FUTURE_GONE);
        for _ in 0..3 {
            meta.begin_poll();
        }
        assert_eq!(meta.polls(), 3);
        assert!(meta.has(FUTURE_GONE) && !meta.is_local());
        meta.polls_flags.store(
            (!FLAG_BITS - POLL_ONE) | u32::from(FUTURE_GONE),
            Ordering::Relaxed,
        );
        meta.begin_poll();
        meta.begin_poll();
        assert_eq!(meta.polls(), (1 << 24) - 1, "the count stops at its top");
        meta.set_owned_flag(LOCAL);
        assert!(meta.has(FUTURE_GONE) && meta.is_local());
        assert_eq!(meta.polls(), (1 << 24) - 1);
    }

    /// An unnamed task's label is the location itself; a timed or named one is boxed, and only
    /// a boxed label keeps the wake stamp.
    #[test]
    fn a_label_is_boxed_only_when_named_or_timed() {
        let location = Location::caller();
        let plain = Label::new(None, location, false);
        assert!(plain.named().is_none());
        assert_eq!((plain.name(), plain.location()), (None, location));
        plain.set_aborted();
        assert!(plain.is_aborted());
        assert_eq!(plain.location(), location);

        let timed = Label::new(None, location, true);
        let named = timed.named().expect("a timed label is boxed");
        named.woken_at.store(7, Ordering::Relaxed);
        assert_eq!((timed.name(), timed.location()), (None, location));
        timed.set_aborted();
        assert_eq!(timed.named().unwrap().woken_at.load(Ordering::Relaxed), 7);
    }
}
