//! A task's one allocation, and the state word that says who may touch which part of it.
//!
//! This is the runtime's own task cell (in place of async-task's): a task is one heap block
//! holding a [`Header`] (the state word, the functions that know the future's type, the waker
//! of whoever awaits the output, and the runtime's [`TaskMeta`]), then the task's schedule
//! function, then its future or, once it has completed, its output (the two share the space).
//! The header is eight words: the state, the functions, the awaiter's waker in one word (see
//! [`Awaiter`]) rather than a `Waker`'s two, and the metadata's five (see [`TaskMeta`]). So a
//! parked task with a 24-byte future costs 88 bytes, and 96 with its word in the runtime's
//! registry.
//!
//! Three kinds of handle point at a cell, and each holds one reference:
//!
//! - a [`Runnable`]: the task is scheduled, and whoever holds the runnable may poll the
//!   future once ([`Runnable::run`]) or cancel the task by dropping it;
//! - a [`Waker`] (and a [`TaskRef`], the registry's uncloneable kind of waker);
//! - the [`JoinCell`], through which the output is read (at most one).
//!
//! The cell is freed when the last reference goes.
//!
//! # The state word
//!
//! One `usize`: six flags in the low bits and the reference count above them.
//!
//! | flag | set | meaning |
//! | --- | --- | --- |
//! | `SCHEDULED` | by a wake of an idle or running task | a runnable exists, or will be made when the poll in progress ends |
//! | `RUNNING` | by `run` (and by a cancel) | one thread has the future |
//! | `COMPLETE` | once, when the future is gone | the output is stored, unless `CLOSED` |
//! | `CLOSED` | with `COMPLETE` | there is no output: the task was cancelled, or nobody was left to read it |
//! | `JOIN` | at spawn; cleared by the join handle's drop | a join handle exists |
//! | `JOIN_WAKER` | by the join handle | the awaiter slot holds a waker for the completer to wake |
//!
//! # Who may touch what
//!
//! - **The future** belongs to the thread that set `RUNNING` (from a runnable, which exists only
//!   while `SCHEDULED`, so one thread at a time); it polls or drops it. A cell whose last
//!   reference goes before `COMPLETE` (no runnable exists then) drops the future when it is
//!   freed.
//! - **The output** is written by the completing thread before it sets `COMPLETE` (release);
//!   from then on it belongs to the join handle (acquire), or, if `JOIN` was clear when
//!   `COMPLETE` was set, to the completer, which drops it at once and sets `CLOSED`. A
//!   completer that finds `JOIN` already clear (a detached task) drops the output before it
//!   sets `COMPLETE`, and completes as for a task with no output: `JOIN` is never set again.
//! - **The awaiter slot** belongs to the join handle while `JOIN_WAKER` is clear and `COMPLETE`
//!   is not set. The handle writes a waker, then sets `JOIN_WAKER` (release); the completer that
//!   sets `COMPLETE` while `JOIN_WAKER` is set wakes that waker (it reads the slot; nobody
//!   writes it any more). To replace its waker the handle clears `JOIN_WAKER` first, which fails
//!   once `COMPLETE` is set. The slot's last waker is dropped with the cell, or by the handle
//!   when it is dropped while it still owns the slot.
//!
//! # Transitions, each one atomic operation on the word
//!
//! - `run`: `SCHEDULED` to `RUNNING` (a `fetch_add`: the two bits are adjacent).
//! - The poll returns `Pending`: clear `RUNNING`. If `SCHEDULED` was set meanwhile (a wake
//!   during the poll) the runnable's reference passes to a new runnable, which is scheduled
//!   with "woken while running"; otherwise the runnable's reference is dropped *in the same
//!   compare-and-swap* (async-task spends a second locked instruction on it).
//! - The poll returns `Ready` (or a runnable is dropped, or the poll panics): clear `RUNNING`
//!   and `SCHEDULED`, set `COMPLETE` (and `CLOSED` if there is no output); the completer's
//!   reference is dropped in the same operation unless it still has work: waking the awaiter,
//!   or dropping an output whose handle went during the completion.
//! - A registry's reference to an ended task is given up with a load, not a decrement, when it
//!   is the last one ([`TaskRef::release_ended`]): every new reference is made from one held,
//!   so a count of one that is ours cannot grow.
//! - A wake of an idle task sets `SCHEDULED` and makes a runnable (with a new reference for
//!   `wake_by_ref`, with the waker's own for `wake`); of a running task, sets `SCHEDULED` only;
//!   of a complete task, does nothing; of a scheduled one, writes the same word back (an
//!   exchange, not a load alone: it orders what the waker's caller wrote before the poll that
//!   is to see it; see `wake_by_ref`).

use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop, MaybeUninit};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use crate::sync::AtomicUsize;
use crate::task::TaskMeta;

const SCHEDULED: usize = 1 << 0;
const RUNNING: usize = 1 << 1;
const COMPLETE: usize = 1 << 2;
const CLOSED: usize = 1 << 3;
const JOIN: usize = 1 << 4;
const JOIN_WAKER: usize = 1 << 5;
const REF_ONE: usize = 1 << 6;
const REF_MASK: usize = !(REF_ONE - 1);
/// More references than this is a leak of wakers (a waker cloned in a loop and forgotten):
/// the process aborts before the count can overflow into the flags.
const MAX_REFS: usize = isize::MAX as usize;

// `run` turns `SCHEDULED` into `RUNNING` by adding one.
const _: () = assert!(RUNNING == SCHEDULED << 1);

/// Futures this big or bigger are boxed: the cell stays small, and the future is moved once.
const BOX_FUTURES_FROM: usize = 2048;

/// How a task is scheduled: called with the task's runnable whenever it must run.
pub(crate) trait Schedule: Send + Sync + 'static {
    /// `woken_while_running`: the task was woken during its own poll (it yielded), rather than
    /// while idle.
    fn schedule(&self, runnable: Runnable, woken_while_running: bool);
}

impl<F: Fn(Runnable) + Send + Sync + 'static> Schedule for F {
    fn schedule(&self, runnable: Runnable, _: bool) {
        self(runnable)
    }
}

/// What a cell polls: a future that is handed the task's metadata (so it needs no pointer to
/// it). Every `Future` is one that ignores it; the runtime's harness (`TaskFuture`) uses it.
pub(crate) trait Body {
    type Output;

    fn poll(self: Pin<&mut Self>, meta: &TaskMeta, cx: &mut Context<'_>) -> Poll<Self::Output>;

    /// Called once before a body that has not completed is dropped in place (its task was
    /// cancelled, or freed while waiting).
    fn cancel(self: Pin<&mut Self>, meta: &TaskMeta) {
        let _ = (self, meta);
    }
}

impl<F: Future> Body for F {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, _: &TaskMeta, cx: &mut Context<'_>) -> Poll<F::Output> {
        Future::poll(self, cx)
    }
}

/// A big body, boxed (see [`BOX_FUTURES_FROM`]).
struct Boxed<B>(Pin<Box<B>>);

impl<B: Body> Body for Boxed<B> {
    type Output = B::Output;

    fn poll(self: Pin<&mut Self>, meta: &TaskMeta, cx: &mut Context<'_>) -> Poll<B::Output> {
        // `Boxed` is `Unpin`: the body is pinned in its box.
        self.get_mut().0.as_mut().poll(meta, cx)
    }

    fn cancel(self: Pin<&mut Self>, meta: &TaskMeta) {
        self.get_mut().0.as_mut().cancel(meta)
    }
}

/// The part of every cell that does not depend on the future's type (`#[repr(C)]`: it is the
/// first field of [`Cell`], so a pointer to the one is a pointer to the other).
#[repr(C)]
pub(crate) struct Header {
    state: AtomicUsize,
    vtable: &'static Vtable,
    /// The join handle's awaiter (see the module docs for who may touch it).
    awaiter: UnsafeCell<Option<Awaiter>>,
    meta: TaskMeta,
}

impl Header {
    /// Whether `COMPLETE` is set (acquire: what the completer wrote before it is visible).
    #[inline]
    fn is_complete(&self) -> bool {
        self.state.load(Acquire) & COMPLETE != 0
    }
}

/// The operations that know the future's, output's and schedule function's types.
struct Vtable {
    /// Polls the future; on `Ready` drops it and stores the output. The caller holds `RUNNING`.
    poll: unsafe fn(NonNull<Header>, &mut Context<'_>) -> Polled,
    /// Drops the future in place. The caller holds `RUNNING`; the future is there.
    drop_future: unsafe fn(NonNull<Header>),
    /// Moves the output to `*out` (a `*mut Option<T>`). The caller owns the output.
    take_output: unsafe fn(NonNull<Header>, *mut ()),
    /// Drops the output in place. The caller owns the output.
    drop_output: unsafe fn(NonNull<Header>),
    /// Hands a new runnable (whose reference the caller gives up) to the schedule function.
    schedule: unsafe fn(NonNull<Header>, bool),
    /// Frees the cell, dropping the future too if the task never completed. The caller had
    /// the last reference.
    dealloc: unsafe fn(NonNull<Header>),
}

#[repr(C)]
struct Cell<F: Body, S> {
    header: Header,
    schedule: S,
    stage: UnsafeCell<Stage<F>>,
}

/// What a poll did.
enum Polled {
    Pending,
    /// The future is gone and its output stored.
    Ready,
    /// The future returned its output, but its destructor panicked: the output is dropped and
    /// the stage is empty.
    DropPanicked(Box<dyn std::any::Any + Send>),
}

/// The future until the task completes, then its output.
union Stage<F: Body> {
    future: ManuallyDrop<F>,
    output: ManuallyDrop<F::Output>,
}

impl<F: Body, S: Schedule> Cell<F, S> {
    const VTABLE: Vtable = Vtable {
        poll: Self::poll,
        drop_future: Self::drop_future,
        take_output: Self::take_output,
        drop_output: Self::drop_output,
        schedule: Self::schedule,
        dealloc: Self::dealloc,
    };

    /// # Safety
    ///
    /// `ptr` is the header of a `Cell<F, S>`.
    unsafe fn stage(ptr: NonNull<Header>) -> *mut Stage<F> {
        // SAFETY: `Header` is the first field of the `#[repr(C)]` cell.
        unsafe { (*ptr.cast::<Cell<F, S>>().as_ptr()).stage.get() }
    }

    unsafe fn poll(ptr: NonNull<Header>, cx: &mut Context<'_>) -> Polled {
        // SAFETY: the caller holds `RUNNING`, so the future is there and nobody else touches
        // it; the cell is never moved, so the future stays pinned until it is dropped in
        // place. The output is written only once the future is gone.
        unsafe {
            let stage = Self::stage(ptr);
            let future = Pin::new_unchecked(&mut *(*stage).future);
            let Poll::Ready(out) = future.poll(&ptr.as_ref().meta, cx) else {
                return Polled::Pending;
            };
            let future = &mut (*stage).future;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| ManuallyDrop::drop(future))) {
                drop(out);
                return Polled::DropPanicked(panic);
            }
            ptr::write(
                stage,
                Stage {
                    output: ManuallyDrop::new(out),
                },
            );
            Polled::Ready
        }
    }

    unsafe fn drop_future(ptr: NonNull<Header>) {
        // SAFETY: the caller holds `RUNNING` (or the last reference) and the future is there,
        // pinned: it is cancelled and dropped in place.
        unsafe {
            let future = &mut (*Self::stage(ptr)).future;
            Pin::new_unchecked(&mut **future).cancel(&ptr.as_ref().meta);
            ManuallyDrop::drop(future);
        }
    }

    unsafe fn take_output(ptr: NonNull<Header>, out: *mut ()) {
        // SAFETY: the caller owns the output (it is there) and `out` is a `*mut Option<T>`.
        unsafe {
            let output = ManuallyDrop::take(&mut (*Self::stage(ptr)).output);
            *out.cast::<Option<F::Output>>() = Some(output);
        }
    }

    unsafe fn drop_output(ptr: NonNull<Header>) {
        // SAFETY: the caller owns the output and it is there.
        unsafe { ManuallyDrop::drop(&mut (*Self::stage(ptr)).output) }
    }

    unsafe fn schedule(ptr: NonNull<Header>, woken_while_running: bool) {
        // SAFETY: the caller gives its reference to the runnable; the schedule function lives
        // as long as the cell, which the runnable keeps alive during the call.
        unsafe {
            let schedule = &(*ptr.cast::<Cell<F, S>>().as_ptr()).schedule;
            schedule.schedule(Runnable::from_header(ptr), woken_while_running);
        }
    }

    unsafe fn dealloc(ptr: NonNull<Header>) {
        let cell = ptr.cast::<Cell<F, S>>().as_ptr();
        // SAFETY: the caller had the last reference: nobody else can reach the cell. The
        // future is there if the task never completed; the output never is (its owner dropped
        // or took it when `COMPLETE` was set). The cell came from `Box<MaybeUninit<Cell>>`.
        unsafe {
            let state = (*cell).header.state.load(Relaxed);
            if state & COMPLETE == 0 {
                Self::drop_future(ptr);
            }
            // A waker that is not a task's is user code: a panic in its destructor is caught
            // and reported, so that the cell is still freed, and whoever gave up the last
            // reference (a worker's nursery as it compacts, a spawn, a join handle's drop)
            // goes on.
            if let Some(awaiter) = (*(*cell).header.awaiter.get()).take() {
                if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(awaiter))) {
                    crate::fault::report_panic("the destructor of a join handle's waker", &*p);
                }
            }
            ptr::drop_in_place(ptr::addr_of_mut!((*cell).header.meta));
            ptr::drop_in_place(ptr::addr_of_mut!((*cell).schedule));
            drop(Box::from_raw(cell.cast::<MaybeUninit<Cell<F, S>>>()));
        }
    }
}

/// A new task's handles: its runnable (the task starts scheduled), its join handle and, for a
/// task of a runtime (its metadata names one), the registry's reference (counted from the
/// start, so that it costs no atomic operation of its own).
pub(crate) type Spawned<T> = (Runnable, JoinCell<T>, Option<TaskRef>);

/// Creates a task: a cell holding `meta`, `schedule` and the future that `make` builds (with a
/// look at the cell's metadata).
pub(crate) fn spawn<M, F, S>(meta: TaskMeta, make: M, schedule: S) -> Spawned<F::Output>
where
    M: FnOnce(&TaskMeta) -> F,
    F: Body + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the future and its output are `Send`.
    unsafe { spawn_unchecked(meta, make, schedule) }
}

/// [`spawn`] for a future that need not be `Send`.
///
/// # Safety
///
/// If the future is not `Send`, the runnable must be run and dropped on the thread that called
/// this, the task must not be freed elsewhere before its future is gone, and the join handle
/// must stay on this thread too if the output is not `Send`.
pub(crate) unsafe fn spawn_unchecked<M, F, S>(
    meta: TaskMeta,
    make: M,
    schedule: S,
) -> Spawned<F::Output>
where
    M: FnOnce(&TaskMeta) -> F,
    F: Body + 'static,
    F::Output: 'static,
    S: Schedule,
{
    if mem::size_of::<F>() >= BOX_FUTURES_FROM {
        let make = move |meta: &TaskMeta| Boxed(Box::pin(make(meta)));
        // SAFETY: the caller's promises carry over; the box is the same future.
        return unsafe { allocate(meta, make, schedule) };
    }
    // SAFETY: the caller's promises.
    unsafe { allocate(meta, make, schedule) }
}

/// Allocates the cell and builds the future in it.
///
/// # Safety
///
/// As for [`spawn_unchecked`].
unsafe fn allocate<M, F, S>(meta: TaskMeta, make: M, schedule: S) -> Spawned<F::Output>
where
    M: FnOnce(&TaskMeta) -> F,
    F: Body,
    S: Schedule,
{
    let registered = meta.shared.is_some();
    let refs = if registered { 3 } else { 2 };
    let cell: *mut Cell<F, S> = Box::into_raw(Box::<Cell<F, S>>::new_uninit()).cast();
    // SAFETY: `cell` is a fresh allocation of the right layout. Each field is written once
    // before anything reads it: the header and the schedule function, then the future, made
    // with a look at the metadata.
    unsafe {
        ptr::addr_of_mut!((*cell).header).write(Header {
            state: AtomicUsize::new(SCHEDULED | JOIN | (refs * REF_ONE)),
            vtable: &Cell::<F, S>::VTABLE,
            awaiter: UnsafeCell::new(None),
            meta,
        });
        ptr::addr_of_mut!((*cell).schedule).write(schedule);
        let future = make(&*ptr::addr_of!((*cell).header.meta));
        (*cell).stage.get().write(Stage {
            future: ManuallyDrop::new(future),
        });
        let ptr = NonNull::new_unchecked(cell).cast::<Header>();
        (
            Runnable::from_header(ptr),
            JoinCell {
                ptr,
                taken: false,
                _output: PhantomData,
            },
            // (Made only if counted: a `TaskRef` dropped here would give up a reference.)
            registered.then(|| TaskRef { ptr }),
        )
    }
}

/// Drops one reference; frees the cell if it was the last.
///
/// # Safety
///
/// The caller holds a reference to a live cell and gives it up.
unsafe fn release(ptr: NonNull<Header>) {
    // SAFETY: the caller's promise.
    unsafe { release_n(ptr, 1) }
}

/// Drops `n` references; frees the cell if they were the last.
///
/// # Safety
///
/// The caller holds `n` references to a live cell and gives them up.
unsafe fn release_n(ptr: NonNull<Header>, n: usize) {
    // SAFETY: the caller's references keep the cell alive until this decrement.
    let prev = unsafe { ptr.as_ref() }
        .state
        .fetch_sub(n * REF_ONE, Release);
    if prev & REF_MASK == n * REF_ONE {
        // Every other holder's accesses happen before their decrements (release), and so
        // before this load (an acquire load rather than a fence: ThreadSanitizer models
        // loads, not fences, as std's `Arc` does under it).
        // SAFETY: the cell is still allocated: nobody else holds a reference.
        let _ = unsafe { ptr.as_ref() }.state.load(Acquire);
        // SAFETY: that was the last reference.
        unsafe { dealloc(ptr) }
    }
}

/// # Safety
///
/// The caller had the last reference.
unsafe fn dealloc(ptr: NonNull<Header>) {
    // SAFETY: the caller's promise; the vtable is the cell's own.
    unsafe { (ptr.as_ref().vtable.dealloc)(ptr) }
}

/// Adds a reference, aborting on a count that has run away.
fn acquire(header: &Header) {
    let prev = header.state.fetch_add(REF_ONE, Relaxed);
    if prev > MAX_REFS {
        std::process::abort();
    }
}

/// What this thread knows of the task whose future it is polling, if any: two things the poll
/// does to its own task that can wait for the end of the poll, and then cost nothing extra.
///
/// - A wake of the task by its own poll (a yield) sets `woken` instead of `SCHEDULED`: the
///   compare-and-swap that ends the poll sets `SCHEDULED` anyway.
/// - A reference the poll drops (its own waker, or the registry's reference as the task
///   ends) is counted in `refs` and dropped in the operation that ends the poll. Delaying a
///   drop is always sound: the runner's own reference keeps the cell alive meanwhile. (A
///   clone cannot be delayed: the clone may be dropped on another thread first.)
///
/// A poll saves the record it finds and restores it when it ends, so a poll nested in
/// another (a runnable run from inside a future) keeps the outer one's.
#[derive(Clone, Copy)]
struct Polling {
    cell: *const Header,
    woken: bool,
    refs: usize,
}

impl Polling {
    const NONE: Polling = Polling {
        cell: ptr::null(),
        woken: false,
        refs: 0,
    };
}

#[cfg(not(rt_loom))]
thread_local! {
    static POLLING: std::cell::Cell<Polling> = const { std::cell::Cell::new(Polling::NONE) };
}
#[cfg(rt_loom)]
loom::thread_local! {
    static POLLING: std::cell::Cell<Polling> = std::cell::Cell::new(Polling::NONE);
}

/// The metadata of the task this thread is polling (the innermost, if polls nest), or null.
///
/// The pointer is valid for as long as that poll runs: the runner's reference keeps the cell
/// alive, and the record is put back before the poll gives that reference up.
#[inline]
pub(crate) fn polling_meta() -> *const TaskMeta {
    let cell = POLLING.with(|p| p.get().cell);
    if cell.is_null() {
        return ptr::null();
    }
    // SAFETY: a non-null record's cell is alive while its poll runs (above), and this thread
    // is inside that poll.
    unsafe { ptr::addr_of!((*cell).meta) }
}

/// If this thread is polling the task of `ptr`, notes a wake of it (`wake`) and the drop of
/// `refs` references, for the end of the poll, and returns `true`.
fn defer_to_poll(ptr: NonNull<Header>, wake: bool, refs: usize) -> bool {
    POLLING.with(|p| {
        let mut polling = p.get();
        if polling.cell != ptr.as_ptr().cast_const() {
            return false;
        }
        polling.woken |= wake;
        polling.refs += refs;
        p.set(polling);
        true
    })
}

/// The task is done with its future: clears `RUNNING` and `SCHEDULED`, sets `COMPLETE` (and
/// `CLOSED` unless `has_output`), wakes the awaiter, and drops the caller's `refs` references.
///
/// # Safety
///
/// The caller holds `RUNNING` and `refs` references; the future is gone, and the output is in
/// the stage if `has_output`.
unsafe fn complete(ptr: NonNull<Header>, has_output: bool, refs: usize) {
    // SAFETY: the caller's reference keeps the cell alive.
    let header = unsafe { ptr.as_ref() };
    let done = if has_output {
        COMPLETE
    } else {
        COMPLETE | CLOSED
    };
    let mut state = header.state.load(Relaxed);
    if has_output && state & JOIN == 0 {
        // Nobody will read the output: the join handle is gone, and `JOIN` is never set
        // again. It is dropped now, while the stage is still ours (`RUNNING`), so that the
        // references go in the exchange that completes the task, as for a task with no
        // output, rather than in a decrement of their own after it.
        // SAFETY: the output is in the stage, ours while we hold `RUNNING`.
        unsafe { drop_orphaned_output(ptr) };
        // SAFETY: as for this call; the output is gone.
        return unsafe { complete(ptr, false, refs) };
    }
    loop {
        let mut next = (state & !(RUNNING | SCHEDULED)) | done;
        // (The handle was still there at the load above, and is gone now.)
        let orphan = has_output && state & JOIN == 0;
        let wake = state & (JOIN | JOIN_WAKER) == JOIN | JOIN_WAKER;
        if orphan {
            // Nobody will read the output: we drop it, then our references.
            next |= CLOSED;
        } else if !wake {
            // Nothing left to do: the references go in the same operation. (Wrapping: from
            // a stale `state` the result is garbage, and the exchange fails.)
            next = next.wrapping_sub(refs * REF_ONE);
        }
        // Release: the output (and the future's last writes) before `COMPLETE`; acquire: the
        // awaiter's waker, written before `JOIN_WAKER`.
        match header
            .state
            .compare_exchange_weak(state, next, AcqRel, Relaxed)
        {
            Ok(_) => {
                if !orphan && !wake {
                    if next & REF_MASK == 0 {
                        // SAFETY: that was the last reference (and the exchange acquired
                        // every other holder's release).
                        unsafe { dealloc(ptr) };
                    }
                    return;
                }
                /// Gives up the completer's references when dropped: after the work below,
                /// or if the awaiter's waker panics.
                struct Release(NonNull<Header>, usize);
                impl Drop for Release {
                    fn drop(&mut self) {
                        // SAFETY: the completer's references, given up once, here.
                        unsafe { release_n(self.0, self.1) }
                    }
                }
                let _release = Release(ptr, refs);
                if orphan {
                    // SAFETY: `JOIN` was clear when `COMPLETE` was set, so the output is ours.
                    unsafe { drop_orphaned_output(ptr) };
                } else {
                    // SAFETY: `JOIN_WAKER` was set with `COMPLETE`: the slot holds a waker
                    // that nobody writes any more (see the module docs).
                    if let Some(awaiter) = unsafe { &*header.awaiter.get() } {
                        awaiter.wake_by_ref();
                    }
                }
                return;
            }
            Err(actual) => state = actual,
        }
    }
}

/// Drops an output that nobody will read (the task's handle is gone). A panic in its destructor
/// is the task's, not the runtime's: it is caught and reported here (as tokio does), so that it
/// costs neither the worker that completes the task nor the policy that runs the worker.
///
/// # Safety
///
/// The output is in the stage and the caller owns it.
unsafe fn drop_orphaned_output(ptr: NonNull<Header>) {
    // SAFETY: the caller's promise; the vtable is the cell's own.
    let dropped = catch_unwind(AssertUnwindSafe(|| unsafe {
        (ptr.as_ref().vtable.drop_output)(ptr)
    }));
    if let Err(p) = dropped {
        crate::fault::report_panic("the destructor of a detached task's output", &*p);
    }
}

/// Drops the future of a task this thread has set `RUNNING` on, and completes it as
/// cancelled. If the future's destructor panics, the task is still completed, then the panic
/// goes on.
///
/// # Safety
///
/// The caller holds `RUNNING` and `refs` references, and the future is there.
unsafe fn cancel_running(ptr: NonNull<Header>, refs: usize) {
    struct Complete(NonNull<Header>, usize);
    impl Drop for Complete {
        fn drop(&mut self) {
            // SAFETY: `cancel_running`'s promises; the future is gone (dropped, or dropped
            // as far as it got).
            unsafe { complete(self.0, false, self.1) }
        }
    }
    let done = Complete(ptr, refs);
    // SAFETY: the caller's promises.
    unsafe { (ptr.as_ref().vtable.drop_future)(ptr) };
    drop(done);
}

/// A task that is scheduled, as a policy stores it: core runs it (polls the future once); a
/// policy only queues it and hands it out.
///
/// A task has at most one runnable: a wake makes it and hands it to the task's schedule
/// function (for a runtime's tasks, the policy's [`schedule`](crate::Scheduler::schedule)),
/// and [`run`](Runnable::run) consumes it. A wake while the task is queued or running makes
/// none (a wake during the poll makes one when the poll ends). Dropping a runnable cancels
/// the task: its future is dropped there and then, and its join handle reports it cancelled.
///
/// One pointer wide: [`into_raw`](Runnable::into_raw) and [`from_raw`](Runnable::from_raw)
/// store it in a word.
///
/// ```
/// use std::sync::{Arc, Mutex};
///
/// // A task of no runtime whose schedule function queues it.
/// let queue = Arc::new(Mutex::new(Vec::new()));
/// let q = queue.clone();
/// let (runnable, handle) = runtime_core::pool_task(
///     async {
///         runtime_core::yield_now().await; // woken during its poll: scheduled again
///         6 * 7
///     },
///     move |r| q.lock().unwrap().push(r),
///     None,
/// );
/// assert!(runnable.run()); // the first poll yields
/// let again = queue.lock().unwrap().pop().expect("rescheduled");
/// assert!(!again.run()); // the second completes
/// assert_eq!(futures_lite::future::block_on(handle).unwrap(), 42);
/// ```
pub struct Runnable {
    ptr: NonNull<Header>,
}

// SAFETY: a runnable is a reference to the cell plus the right to set `RUNNING`; its creator
// (`spawn_unchecked`'s caller) promised that a runnable of a `!Send` future stays on its
// thread.
unsafe impl Send for Runnable {}
// SAFETY: `&Runnable` only reads the metadata (which is `Sync`) and clones wakers.
unsafe impl Sync for Runnable {}

impl Runnable {
    /// # Safety
    ///
    /// `ptr` is a live cell's header, `SCHEDULED` is set for this runnable, and the caller
    /// gives it a reference.
    unsafe fn from_header(ptr: NonNull<Header>) -> Runnable {
        Runnable { ptr }
    }

    fn header(&self) -> &Header {
        // SAFETY: the runnable's reference keeps the cell alive.
        unsafe { self.ptr.as_ref() }
    }

    /// The task's metadata.
    pub fn metadata(&self) -> &TaskMeta {
        &self.header().meta
    }

    /// A waker for the task.
    pub fn waker(&self) -> Waker {
        acquire(self.header());
        // SAFETY: the reference just taken is the waker's.
        unsafe { Waker::from_raw(raw_waker(self.ptr)) }
    }

    /// Polls the future once. Returns whether the task was woken during the poll (and so is
    /// scheduled again). A panic of the future cancels the task, then goes on.
    pub fn run(self) -> bool {
        let ptr = self.ptr;
        mem::forget(self);
        // SAFETY: the runnable's reference (now ours) keeps the cell alive.
        let header = unsafe { ptr.as_ref() };
        // Acquire: the previous poll's writes to the future, released when it ended.
        let mut state = header.state.fetch_add(RUNNING - SCHEDULED, Acquire) + RUNNING - SCHEDULED;
        debug_assert!(
            state & (RUNNING | COMPLETE) == RUNNING,
            "run of a task not scheduled"
        );

        /// This thread's record of the poll (see [`Polling`]); if the poll unwinds, restores
        /// the outer record and cancels the task.
        struct Run {
            ptr: NonNull<Header>,
            outer: Polling,
        }
        impl Run {
            /// Ends the poll: restores the outer record, returns this poll's.
            fn end(self) -> Polling {
                let this = ManuallyDrop::new(self);
                POLLING.with(|p| p.replace(this.outer))
            }
        }
        impl Drop for Run {
            fn drop(&mut self) {
                let ours = POLLING.with(|p| p.replace(self.outer));
                // SAFETY: we hold `RUNNING`, our reference and the deferred ones, and the
                // future is there (a panicking poll did not get to `Ready`).
                unsafe { cancel_running(self.ptr, 1 + ours.refs) }
            }
        }
        let mine = Polling {
            cell: ptr.as_ptr(),
            woken: false,
            refs: 0,
        };
        let run = Run {
            ptr,
            outer: POLLING.with(|p| p.replace(mine)),
        };
        // A waker borrowed from our reference: it is not counted, and not dropped.
        // SAFETY: the reference outlives the context.
        let waker = ManuallyDrop::new(unsafe { Waker::from_raw(raw_waker(ptr)) });
        let mut cx = Context::from_waker(&waker);
        // SAFETY: we hold `RUNNING`.
        let polled = unsafe { (header.vtable.poll)(ptr, &mut cx) };
        let Polling { woken, refs, .. } = run.end();
        match polled {
            Polled::Pending => {}
            Polled::Ready => {
                // SAFETY: we hold `RUNNING` and the references; the output is stored.
                unsafe { complete(ptr, true, 1 + refs) };
                return false;
            }
            Polled::DropPanicked(panic) => {
                // SAFETY: we hold `RUNNING` and the references; the future is gone.
                unsafe { complete(ptr, false, 1 + refs) };
                resume_unwind(panic);
            }
        }
        loop {
            if woken || state & SCHEDULED != 0 {
                // Woken during the poll: our reference goes to the new runnable, the deferred
                // ones in the same operation.
                // (Wrapping: `state` may be stale, below the deferred count; then the
                // exchange fails and the loop retries with the real one.)
                let next = ((state & !RUNNING) | SCHEDULED).wrapping_sub(refs * REF_ONE);
                match header
                    .state
                    .compare_exchange_weak(state, next, AcqRel, Relaxed)
                {
                    Ok(_) => {
                        // SAFETY: `SCHEDULED` is set and the reference is the runnable's.
                        unsafe { (header.vtable.schedule)(ptr, true) };
                        return true;
                    }
                    Err(actual) => state = actual,
                }
            } else {
                // Idle: our references go in the same operation. Release: this poll's writes
                // to the future, for the next runner or the thread that frees the cell.
                let next = (state & !RUNNING).wrapping_sub((1 + refs) * REF_ONE);
                match header
                    .state
                    .compare_exchange_weak(state, next, AcqRel, Relaxed)
                {
                    Ok(_) => {
                        if next & REF_MASK == 0 {
                            // SAFETY: that was the last reference.
                            unsafe { dealloc(ptr) };
                        }
                        return false;
                    }
                    Err(actual) => state = actual,
                }
            }
        }
    }

    /// Hands the runnable to the task's schedule function (as a wake would).
    pub fn schedule(self) {
        let ptr = self.ptr;
        mem::forget(self);
        // SAFETY: the runnable's `SCHEDULED` and reference pass to the new one.
        unsafe { (ptr.as_ref().vtable.schedule)(ptr, false) }
    }

    /// The runnable as a pointer, for queues that store one word (see [`Runnable::from_raw`]).
    pub fn into_raw(self) -> NonNull<()> {
        let ptr = self.ptr;
        mem::forget(self);
        ptr.cast()
    }

    /// The runnable that [`Runnable::into_raw`] returned.
    ///
    /// # Safety
    ///
    /// `ptr` came from `into_raw`, and this is the only `from_raw` for that call.
    pub unsafe fn from_raw(ptr: NonNull<()>) -> Runnable {
        Runnable { ptr: ptr.cast() }
    }
}

impl Drop for Runnable {
    fn drop(&mut self) {
        // Cancel: take the future as if to poll it, and drop it instead.
        let header = self.header();
        let state = header.state.fetch_add(RUNNING - SCHEDULED, Acquire);
        debug_assert!(state & (SCHEDULED | RUNNING | COMPLETE) == SCHEDULED);
        // SAFETY: we hold `RUNNING` and the runnable's reference, and the future is there.
        unsafe { cancel_running(self.ptr, 1) }
    }
}

impl fmt::Debug for Runnable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runnable")
            .field("id", &self.metadata().id())
            .finish()
    }
}

/// The join side of a task: its output, once.
pub(crate) struct JoinCell<T> {
    ptr: NonNull<Header>,
    /// The output has been read.
    taken: bool,
    _output: PhantomData<T>,
}

// SAFETY: the handle moves the output (`T: Send`) to whoever polls it; its other accesses are
// to atomics and to the awaiter slot under the join protocol.
unsafe impl<T: Send> Send for JoinCell<T> {}
// SAFETY: `&JoinCell` only reads the metadata and the state.
unsafe impl<T> Sync for JoinCell<T> {}
// The handle never pins the output: it moves it out.
impl<T> Unpin for JoinCell<T> {}

impl<T> JoinCell<T> {
    fn header(&self) -> &Header {
        // SAFETY: the handle's reference keeps the cell alive.
        unsafe { self.ptr.as_ref() }
    }

    /// The task's metadata.
    pub(crate) fn metadata(&self) -> &TaskMeta {
        &self.header().meta
    }

    /// Whether the future is gone (completed or cancelled).
    pub(crate) fn is_finished(&self) -> bool {
        self.header().is_complete()
    }

    /// Wakes the task (as `Waker::wake_by_ref`), through the handle's own reference.
    pub(crate) fn wake(&self) {
        // SAFETY: the handle's reference keeps the cell alive during the call.
        unsafe { wake_by_ref(self.ptr.as_ptr().cast()) }
    }

    /// A reference to the task, to wake it or keep its metadata without the handle.
    pub(crate) fn task_ref(&self) -> TaskRef {
        acquire(self.header());
        TaskRef { ptr: self.ptr }
    }

    /// The output once the task completes; `None` if it was cancelled. Must not be polled again
    /// after it returns `Ready`.
    pub(crate) fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        assert!(
            !self.taken,
            "a join handle polled after it returned its output"
        );
        // SAFETY: the handle's reference keeps the cell alive (a borrow not tied to `self`,
        // which is updated below).
        let header = unsafe { &*self.ptr.as_ptr() };
        let mut state = header.state.load(Acquire);
        if state & COMPLETE == 0 {
            if state & JOIN_WAKER != 0 {
                // SAFETY: with `JOIN_WAKER` set the slot holds a waker that only the
                // completer reads (and nobody writes).
                let same = unsafe { &*header.awaiter.get() }
                    .as_ref()
                    .is_some_and(|a| a.will_wake(cx.waker()));
                if same {
                    return Poll::Pending;
                }
                // Take the slot back to replace the waker.
                match header.state.fetch_update(AcqRel, Acquire, |s| {
                    (s & COMPLETE == 0).then_some(s & !JOIN_WAKER)
                }) {
                    Ok(prev) => state = prev & !JOIN_WAKER,
                    Err(now) => state = now,
                }
            }
            if state & COMPLETE == 0 {
                // SAFETY: `JOIN_WAKER` is clear and `COMPLETE` is not set: the slot is ours.
                unsafe { *header.awaiter.get() = Some(Awaiter::new(cx.waker())) };
                // Release: the waker, before the completer may read it.
                match header.state.fetch_update(AcqRel, Acquire, |s| {
                    (s & COMPLETE == 0).then_some(s | JOIN_WAKER)
                }) {
                    Ok(_) => return Poll::Pending,
                    Err(now) => state = now,
                }
            }
        }
        // Complete (acquire, above): the output is ours, if there is one.
        self.taken = true;
        if state & CLOSED != 0 {
            return Poll::Ready(None);
        }
        let mut out: Option<T> = None;
        // SAFETY: `COMPLETE` with `JOIN` set and `CLOSED` clear: the output is there and ours.
        unsafe { (header.vtable.take_output)(self.ptr, ptr::addr_of_mut!(out).cast()) };
        Poll::Ready(out)
    }
}

impl<T> Drop for JoinCell<T> {
    fn drop(&mut self) {
        let header = self.header();
        let mut state = header.state.load(Acquire);
        loop {
            if state & COMPLETE != 0 {
                if !self.taken && state & CLOSED == 0 {
                    // SAFETY: complete with `JOIN` set: the output is ours, and still there.
                    unsafe { (header.vtable.drop_output)(self.ptr) };
                }
                // `JOIN` is set (it is ours): clear it and drop our reference at once. The
                // awaiter slot, if it holds a waker, goes with the cell.
                let prev = header.state.fetch_sub(JOIN + REF_ONE, AcqRel);
                if prev & REF_MASK == REF_ONE {
                    // SAFETY: that was the last reference.
                    unsafe { dealloc(self.ptr) };
                }
                return;
            }
            // Not complete: give up the output, and the slot with its waker. Without a waker
            // to drop, our reference goes in the same operation.
            let holds_waker = state & JOIN_WAKER != 0;
            let mut next = state & !(JOIN | JOIN_WAKER);
            if !holds_waker {
                next -= REF_ONE;
            }
            match header
                .state
                .compare_exchange_weak(state, next, AcqRel, Acquire)
            {
                Ok(_) if holds_waker => {
                    // SAFETY: `JOIN_WAKER` was cleared before `COMPLETE`: the slot is ours,
                    // and the completer will not read it.
                    drop(unsafe { (*header.awaiter.get()).take() });
                    // SAFETY: the handle's reference.
                    unsafe { release(self.ptr) };
                    return;
                }
                Ok(_) => {
                    if next & REF_MASK == 0 {
                        // SAFETY: that was the last reference.
                        unsafe { dealloc(self.ptr) };
                    }
                    return;
                }
                Err(actual) => state = actual,
            }
        }
    }
}

/// A counted reference to a task that can wake it and read its metadata: what the runtime's
/// registry keeps for each live task (one word, where a `Waker` and a metadata pointer are
/// three).
pub(crate) struct TaskRef {
    ptr: NonNull<Header>,
}

// SAFETY: like a `Waker`: waking and reading the (`Sync`) metadata work from any thread.
unsafe impl Send for TaskRef {}
// SAFETY: as above.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// A reference to the runnable's task.
    #[cfg(test)]
    pub(crate) fn new(runnable: &Runnable) -> TaskRef {
        acquire(runnable.header());
        TaskRef { ptr: runnable.ptr }
    }

    /// The task's metadata.
    pub(crate) fn metadata(&self) -> &TaskMeta {
        // SAFETY: the reference keeps the cell alive.
        &unsafe { self.ptr.as_ref() }.meta
    }

    /// Whether the task waits in a queue to be polled (woken or just spawned, and not yet
    /// started on the poll this wake asked for). A snapshot, for the task dump.
    pub(crate) fn is_scheduled(&self) -> bool {
        // SAFETY: the reference keeps the cell alive.
        let state = unsafe { self.ptr.as_ref() }.state.load(Relaxed);
        state & (SCHEDULED | COMPLETE) == SCHEDULED
    }

    /// Wakes the task (as `Waker::wake_by_ref`).
    pub(crate) fn wake(&self) {
        // SAFETY: our reference keeps the cell alive during the call.
        unsafe { wake_by_ref(self.ptr.as_ptr().cast()) }
    }

    /// Whether the task's future is gone (completed, panicked or cancelled).
    pub(crate) fn is_complete(&self) -> bool {
        // SAFETY: the reference keeps the cell alive.
        unsafe { self.ptr.as_ref() }.is_complete()
    }

    /// The reference as a pointer, for a registry that stores words (see
    /// [`TaskRef::from_raw`]).
    pub(crate) fn into_raw(self) -> *mut () {
        let ptr = self.ptr;
        mem::forget(self);
        ptr.as_ptr().cast()
    }

    /// The reference that [`TaskRef::into_raw`] returned.
    ///
    /// # Safety
    ///
    /// `ptr` came from `into_raw`, and this is the only `from_raw` for that call.
    pub(crate) unsafe fn from_raw(ptr: *mut ()) -> TaskRef {
        TaskRef {
            // SAFETY: `into_raw` was given a live cell's header, which is not null.
            ptr: unsafe { NonNull::new_unchecked(ptr.cast()) },
        }
    }

    /// A look at the reference that `ptr` (from [`TaskRef::into_raw`]) stands for, without
    /// taking it over: the `TaskRef` returned must not be dropped.
    ///
    /// # Safety
    ///
    /// `ptr` came from `into_raw`, and its `from_raw` is not called while the look lasts.
    pub(crate) unsafe fn peek(ptr: *mut ()) -> ManuallyDrop<TaskRef> {
        // SAFETY: the caller's promise: the reference `ptr` stands for keeps the cell alive.
        ManuallyDrop::new(unsafe { TaskRef::from_raw(ptr) })
    }

    /// Gives the reference up, as dropping it does, for a task that has ended (its future is
    /// gone): if it is the last reference, without a read-modify-write of the state.
    ///
    /// A registry's reference is often the last one left to an ended task that nobody
    /// joined, and an atomic decrement costs a spawn-and-end tens of cycles for nothing there.
    pub(crate) fn release_ended(self) {
        let ptr = self.ptr;
        mem::forget(self);
        // SAFETY: our reference keeps the cell alive.
        let header = unsafe { ptr.as_ref() };
        // An ended task is polled by nobody, so no poll's record defers this drop
        // (`defer_to_poll`). Acquire: every other holder's accesses happen before its
        // decrement (release), and so before this load.
        let state = header.state.load(Acquire);
        debug_assert!(state & COMPLETE != 0, "release_ended of a live task");
        if state & REF_MASK == REF_ONE {
            // Ours is the only reference, and every new one is made from one held (a clone,
            // or a wake through a waker): nobody else reads or writes the cell again.
            // SAFETY: that is the last reference.
            unsafe { dealloc(ptr) }
        } else {
            // SAFETY: our reference, given up once.
            unsafe { release(ptr) }
        }
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> TaskRef {
        // SAFETY: our reference keeps the cell alive.
        acquire(unsafe { self.ptr.as_ref() });
        TaskRef { ptr: self.ptr }
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        if !defer_to_poll(self.ptr, false, 1) {
            // SAFETY: our reference.
            unsafe { release(self.ptr) }
        }
    }
}

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(clone_waker, wake, wake_by_ref, drop_waker);

fn raw_waker(ptr: NonNull<Header>) -> RawWaker {
    RawWaker::new(ptr.as_ptr().cast(), &WAKER_VTABLE)
}

/// The join handle's waker in one word (a `Waker` takes two): the waker of one of our tasks,
/// which is what a task awaiting a join handle gives, is kept as its cell's address (with the
/// waker's reference); any other waker (`block_on`'s, another executor's) is boxed, and its
/// address tagged with [`Awaiter::BOXED`]. Either address is 8-aligned, so the tag bit is free.
struct Awaiter(NonNull<u8>);

// The point of the type: an empty slot and a full one are one word.
const _: () = assert!(mem::size_of::<Option<Awaiter>>() == mem::size_of::<usize>());

impl Awaiter {
    const BOXED: usize = 1;

    fn new(waker: &Waker) -> Awaiter {
        if ptr::eq(waker.vtable(), &WAKER_VTABLE) {
            // Ours: keep the clone's reference (given back in `drop`).
            let waker = ManuallyDrop::new(waker.clone());
            // SAFETY: our wakers' data is a cell's header, never null.
            Awaiter(unsafe { NonNull::new_unchecked(waker.data().cast_mut().cast()) })
        } else {
            let boxed = NonNull::from(Box::leak(Box::new(waker.clone())));
            Awaiter(boxed.cast::<u8>().map_addr(|a| a | Self::BOXED))
        }
    }

    /// The boxed waker's address (for a tagged `self`).
    fn boxed(&self) -> NonNull<Waker> {
        let untagged = self.0.as_ptr().map_addr(|a| a & !Self::BOXED);
        // SAFETY: the box's address, not null.
        unsafe { NonNull::new_unchecked(untagged.cast()) }
    }

    /// Calls `f` with the waker (borrowed: not counted, not dropped).
    fn with<R>(&self, f: impl FnOnce(&Waker) -> R) -> R {
        let addr = self.0.addr().get();
        if addr & Self::BOXED == 0 {
            // SAFETY: `self` holds the waker's reference on that cell, so the cell is alive;
            // the waker is not dropped (`ManuallyDrop`), so the reference stays ours.
            let waker = ManuallyDrop::new(unsafe { Waker::from_raw(raw_waker(self.0.cast())) });
            f(&waker)
        } else {
            // SAFETY: the untagged address is our `Box<Waker>`.
            f(unsafe { self.boxed().as_ref() })
        }
    }

    fn wake_by_ref(&self) {
        self.with(Waker::wake_by_ref)
    }

    fn will_wake(&self, other: &Waker) -> bool {
        self.with(|waker| waker.will_wake(other))
    }
}

impl Drop for Awaiter {
    fn drop(&mut self) {
        let addr = self.0.addr().get();
        if addr & Self::BOXED == 0 {
            // SAFETY: the reference `new` kept, given back by the waker's drop.
            drop(unsafe { Waker::from_raw(raw_waker(self.0.cast())) });
        } else {
            // SAFETY: the untagged address is our `Box<Waker>`, dropped once, here.
            drop(unsafe { Box::from_raw(self.boxed().as_ptr()) });
        }
    }
}

/// The cell that a waker's data points to.
///
/// # Safety
///
/// `data` is a live cell's header, which outlives `'a`.
unsafe fn cell_of<'a>(data: *const ()) -> (NonNull<Header>, &'a Header) {
    // SAFETY: the caller's promise.
    unsafe {
        let ptr = NonNull::new_unchecked(data.cast_mut().cast::<Header>());
        (ptr, &*ptr.as_ptr())
    }
}

// The four functions of a waker's vtable. Safety: `data` is a live cell's header, on which
// the waker holds a reference.

unsafe fn clone_waker(data: *const ()) -> RawWaker {
    // SAFETY: the waker's reference keeps the cell alive.
    let (ptr, header) = unsafe { cell_of(data) };
    acquire(header);
    raw_waker(ptr)
}

unsafe fn wake(data: *const ()) {
    // SAFETY: the waker's reference keeps the cell alive until we give it up.
    let (ptr, header) = unsafe { cell_of(data) };
    if defer_to_poll(ptr, true, 1) {
        return;
    }
    let mut state = header.state.load(Acquire);
    loop {
        let next = if state & (COMPLETE | SCHEDULED) != 0 {
            state - REF_ONE
        } else if state & RUNNING != 0 {
            // The runner holds a reference: the count stays above zero.
            (state | SCHEDULED) - REF_ONE
        } else {
            // Our reference becomes the runnable's.
            state | SCHEDULED
        };
        match header
            .state
            .compare_exchange_weak(state, next, AcqRel, Acquire)
        {
            Ok(_) => {
                if state & (COMPLETE | SCHEDULED | RUNNING) == 0 {
                    // SAFETY: `SCHEDULED` is set for the runnable, with our reference.
                    unsafe { (header.vtable.schedule)(ptr, false) };
                } else if next & REF_MASK == 0 {
                    // SAFETY: that was the last reference.
                    unsafe { dealloc(ptr) };
                }
                return;
            }
            Err(actual) => state = actual,
        }
    }
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: the waker's reference keeps the cell alive during the call.
    let (ptr, header) = unsafe { cell_of(data) };
    if defer_to_poll(ptr, true, 0) {
        return;
    }
    let mut state = header.state.load(Acquire);
    loop {
        if state & COMPLETE != 0 {
            return;
        }
        let next = if state & SCHEDULED != 0 {
            // Already scheduled: still an exchange (of the same value), never a return on the
            // load alone. The waker's caller wrote what the task is to see (a message, the
            // abort bit) before this call; the exchange publishes it (release) to the poll this
            // schedule stands for, whose `RUNNING` exchange comes later in the state's order.
            // A load alone can read a `SCHEDULED` that the poll has already cleared: then
            // neither side sees the other's write, and the wake-up is lost (store buffering;
            // x86 reorders a plain store before a later load, so this is not only Miri's).
            state
        } else if state & RUNNING != 0 {
            state | SCHEDULED
        } else {
            // A new reference, for the runnable.
            (state | SCHEDULED) + REF_ONE
        };
        match header
            .state
            .compare_exchange_weak(state, next, AcqRel, Acquire)
        {
            Ok(_) => {
                if state & (RUNNING | SCHEDULED) == 0 {
                    if state > MAX_REFS {
                        std::process::abort();
                    }
                    // SAFETY: `SCHEDULED` is set for the runnable, with the new reference.
                    unsafe { (header.vtable.schedule)(ptr, false) };
                }
                return;
            }
            Err(actual) => state = actual,
        }
    }
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: the waker's reference, which we give up.
    let ptr = unsafe { cell_of(data).0 };
    if !defer_to_poll(ptr, false, 1) {
        // SAFETY: as above.
        unsafe { release(ptr) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::{Arc, Mutex};
    use std::task::Wake;

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn counter() -> Arc<AtomicUsize> {
        Arc::new(AtomicUsize::new(0))
    }

    /// A schedule function that queues runnables (with whether they were woken while
    /// running); each cell holds a clone of `cells`, so its count tells the live cells.
    #[derive(Clone)]
    struct Queue {
        tasks: Arc<Mutex<Vec<(Runnable, bool)>>>,
        cells: Arc<()>,
    }

    impl Schedule for Queue {
        fn schedule(&self, runnable: Runnable, yielded: bool) {
            self.tasks.lock().unwrap().push((runnable, yielded));
        }
    }

    struct Harness {
        queue: Queue,
        spawned: AtomicUsize,
    }

    impl Harness {
        fn new() -> Harness {
            Harness {
                queue: Queue {
                    tasks: Arc::default(),
                    cells: Arc::new(()),
                },
                spawned: AtomicUsize::new(0),
            }
        }

        fn spawn<F: Future + Send + 'static>(&self, f: F) -> (Runnable, JoinCell<F::Output>)
        where
            F::Output: Send,
        {
            self.spawned.fetch_add(1, SeqCst);
            let (r, j, _) = spawn(TaskMeta::default(), move |_| f, self.queue.clone());
            (r, j)
        }

        fn pop(&self) -> Option<(Runnable, bool)> {
            self.queue.tasks.lock().unwrap().pop()
        }

        /// Cells freed so far.
        fn freed(&self) -> usize {
            self.spawned.load(SeqCst) - (Arc::strong_count(&self.queue.cells) - 1)
        }

        /// The task behind `j` ended with no output: the handle says so; dropping it leaves
        /// `freed` cells freed.
        fn assert_closed_then_freed<T>(&self, mut j: JoinCell<T>, freed: usize) {
            let (_, jw) = flag();
            assert!(matches!(
                j.poll_join(&mut Context::from_waker(&jw)),
                Poll::Ready(None)
            ));
            drop(j);
            assert_eq!(self.freed(), freed);
        }
    }

    /// Counts its wakes.
    struct Flag(AtomicUsize);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn flag() -> (Arc<Flag>, Waker) {
        let f = Arc::new(Flag(AtomicUsize::new(0)));
        (f.clone(), Waker::from(f))
    }

    /// A future that returns `Pending` `n` times, waking itself each time if `wake`, and
    /// keeping its waker in `slot` otherwise.
    struct Pend {
        n: usize,
        wake: bool,
        slot: Arc<Mutex<Option<Waker>>>,
        _drop: Counted,
    }
    impl Future for Pend {
        type Output = Counted;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Counted> {
            if self.n == 0 {
                return Poll::Ready(Counted(self._drop.0.clone()));
            }
            self.n -= 1;
            if self.wake {
                cx.waker().wake_by_ref();
            } else {
                *self.slot.lock().unwrap() = Some(cx.waker().clone());
            }
            Poll::Pending
        }
    }

    fn pend(n: usize, wake: bool, drops: &Arc<AtomicUsize>) -> (Pend, Arc<Mutex<Option<Waker>>>) {
        let slot = Arc::new(Mutex::new(None));
        let p = Pend {
            n,
            wake,
            slot: slot.clone(),
            _drop: Counted(drops.clone()),
        };
        (p, slot)
    }

    #[test]
    fn a_task_runs_to_its_output_and_is_freed_once() {
        let h = Harness::new();
        let (r, mut j) = h.spawn(async { 6 * 7 });
        assert!(!j.is_finished());
        assert!(!r.run());
        assert!(j.is_finished());
        let (_, waker) = flag();
        let out = j.poll_join(&mut Context::from_waker(&waker));
        assert_eq!(out, Poll::Ready(Some(42)));
        assert_eq!(h.freed(), 0, "the join handle still holds the cell");
        drop(j);
        assert_eq!(h.freed(), 1);
    }

    #[test]
    fn a_wake_during_the_poll_reschedules_once_as_woken_while_running() {
        let h = Harness::new();
        let drops = counter();
        let (f, _) = pend(2, true, &drops);
        let (r, j) = h.spawn(f);
        assert!(r.run());
        let (r, yielded) = h.pop().expect("rescheduled");
        assert!(yielded);
        assert!(h.pop().is_none());
        assert!(r.run());
        let (r, _) = h.pop().unwrap();
        assert!(!r.run());
        // The future (counted once) and the output (counted once when dropped with the
        // handle) are both gone.
        assert_eq!(drops.load(SeqCst), 1);
        drop(j);
        assert_eq!(drops.load(SeqCst), 2);
        assert_eq!(h.freed(), 1);
    }

    #[test]
    fn a_wake_of_an_idle_task_schedules_it_and_wakes_the_joiner_at_the_end() {
        let h = Harness::new();
        let drops = counter();
        let (f, slot) = pend(1, false, &drops);
        let (r, mut j) = h.spawn(f);
        let (joiner, jw) = flag();
        assert!(j.poll_join(&mut Context::from_waker(&jw)).is_pending());
        assert!(!r.run());
        assert!(h.pop().is_none(), "idle until woken");
        let w = slot.lock().unwrap().take().unwrap();
        w.wake_by_ref();
        w.wake_by_ref(); // already scheduled: nothing
        let (r, yielded) = h.pop().expect("scheduled by the wake");
        assert!(!yielded);
        assert!(h.pop().is_none());
        assert_eq!(joiner.0.load(SeqCst), 0);
        assert!(!r.run());
        assert_eq!(joiner.0.load(SeqCst), 1);
        w.wake(); // complete: nothing, and the waker's reference goes
        assert!(h.pop().is_none());
        let Poll::Ready(Some(out)) = j.poll_join(&mut Context::from_waker(&jw)) else {
            panic!("no output");
        };
        drop(out);
        assert_eq!(drops.load(SeqCst), 2);
        assert_eq!(h.freed(), 0);
        drop(j);
        assert_eq!(h.freed(), 1);
    }

    #[test]
    fn the_joiner_woken_is_the_last_one_registered() {
        let h = Harness::new();
        let (r, mut j) = h.spawn(async {});
        let (first, w1) = flag();
        let (second, w2) = flag();
        assert!(j.poll_join(&mut Context::from_waker(&w1)).is_pending());
        assert!(j.poll_join(&mut Context::from_waker(&w1)).is_pending());
        assert!(j.poll_join(&mut Context::from_waker(&w2)).is_pending());
        r.run();
        assert_eq!((first.0.load(SeqCst), second.0.load(SeqCst)), (0, 1));
        assert_eq!(
            j.poll_join(&mut Context::from_waker(&w2)),
            Poll::Ready(Some(()))
        );
        drop(j);
        assert_eq!(h.freed(), 1);
        // The cell dropped the waker it held.
        assert_eq!(Arc::strong_count(&second), 2);
    }

    /// A task's own waker as the joiner's (what a task awaiting a join handle gives) is kept
    /// in one word with its reference: the completion wakes that task, and the reference goes
    /// back when the waker is replaced, or with the handle.
    #[test]
    fn a_task_waker_as_the_joiner_wakes_that_task_and_keeps_its_count() {
        let h = Harness::new();
        let drops = counter();
        let (f, slot) = pend(1, false, &drops);
        let (joiner, joiner_j) = h.spawn(f);
        let joiner_meta: *const TaskMeta = joiner.metadata();
        let tw = joiner.waker();
        assert!(!joiner.run(), "the joining task is idle");
        let (r, mut j) = h.spawn(async { 5 });
        assert!(j.poll_join(&mut Context::from_waker(&tw)).is_pending());
        // The same waker again: kept as it is.
        assert!(
            j.poll_join(&mut Context::from_waker(&tw.clone()))
                .is_pending()
        );
        r.run();
        let (woken, yielded) = h.pop().expect("the completion woke the joining task");
        assert!(!yielded);
        assert!(ptr::eq(woken.metadata(), joiner_meta));
        assert!(h.pop().is_none());
        assert_eq!(
            j.poll_join(&mut Context::from_waker(&tw)),
            Poll::Ready(Some(5))
        );
        drop(j);
        assert_eq!(h.freed(), 1);
        // A foreign waker replaces a task's waker (whose reference goes back), then the handle
        // is dropped with the foreign one (boxed) in the slot.
        let (r2, mut j2) = h.spawn(async {});
        assert!(j2.poll_join(&mut Context::from_waker(&tw)).is_pending());
        let (other, ow) = flag();
        assert!(j2.poll_join(&mut Context::from_waker(&ow)).is_pending());
        assert_eq!(Arc::strong_count(&other), 3, "the slot holds a clone");
        drop(j2);
        assert_eq!(Arc::strong_count(&other), 2, "the handle dropped its waker");
        drop(r2);
        drop((tw, woken, slot));
        drop(joiner_j);
        // Every reference on the joining task came back: its cell is freed.
        assert_eq!(h.freed(), 3);
    }

    /// The joiner's waker panics when the task completes: the panic goes on from `run`, and
    /// the completer's references are still given back (the cell is freed with the handle).
    #[test]
    fn a_panicking_joiner_waker_does_not_leak_the_cell() {
        struct Panics;
        impl Wake for Panics {
            fn wake(self: Arc<Self>) {
                panic!("joiner waker");
            }
        }
        let h = Harness::new();
        let (r, mut j) = h.spawn(async { 3 });
        let waker = Waker::from(Arc::new(Panics));
        assert!(j.poll_join(&mut Context::from_waker(&waker)).is_pending());
        let err = std::panic::catch_unwind(AssertUnwindSafe(|| r.run())).unwrap_err();
        assert_eq!(err.downcast_ref::<&str>(), Some(&"joiner waker"));
        assert_eq!(
            j.poll_join(&mut Context::from_waker(&waker)),
            Poll::Ready(Some(3))
        );
        drop(j);
        assert_eq!(h.freed(), 1, "the completer's reference came back");
    }

    #[test]
    fn dropping_the_runnable_cancels_the_task() {
        let h = Harness::new();
        let drops = counter();
        let (f, _) = pend(5, false, &drops);
        let (r, mut j) = h.spawn(f);
        let (joiner, jw) = flag();
        assert!(j.poll_join(&mut Context::from_waker(&jw)).is_pending());
        drop(r);
        assert_eq!(drops.load(SeqCst), 1, "the future is dropped");
        assert_eq!(joiner.0.load(SeqCst), 1, "the joiner is told");
        assert!(j.is_finished());
        h.assert_closed_then_freed(j, 1);
    }

    #[test]
    fn a_detached_task_drops_its_output_when_it_completes() {
        let h = Harness::new();
        let drops = counter();
        let (f, _) = pend(0, false, &drops);
        let (r, j) = h.spawn(f);
        drop(j);
        assert_eq!(h.freed(), 0);
        r.run();
        assert_eq!(drops.load(SeqCst), 2, "future and output");
        assert_eq!(h.freed(), 1);
    }

    #[test]
    fn an_ended_task_is_freed_by_its_last_reference_given_up_as_ended() {
        let h = Harness::new();
        let (r, j) = h.spawn(async {});
        let a = TaskRef::new(&r);
        let b = a.clone();
        drop(j);
        r.run();
        assert_eq!(h.freed(), 0);
        a.release_ended();
        assert_eq!(h.freed(), 0, "the other reference holds the cell");
        b.release_ended();
        assert_eq!(h.freed(), 1);
    }

    #[test]
    fn a_detached_tasks_output_that_panics_as_it_drops_is_contained_and_freed() {
        struct BadOutput(#[expect(dead_code, reason = "dropped, never read")] Counted);
        impl Drop for BadOutput {
            fn drop(&mut self) {
                panic!("bad output");
            }
        }
        let h = Harness::new();
        let drops = counter();
        let d = drops.clone();
        // A waker kept by someone else: the task's cell outlives the completion.
        let slot = Arc::new(Mutex::new(None));
        let s = slot.clone();
        let (r, j) = h.spawn(std::future::poll_fn(move |cx| {
            *s.lock().unwrap() = Some(cx.waker().clone());
            Poll::Ready(BadOutput(Counted(d.clone())))
        }));
        drop(j);
        // The panic is the task's: reported, not passed on to whoever ran the task.
        assert!(!r.run());
        assert_eq!(drops.load(SeqCst), 1, "the output's field, once");
        assert_eq!(h.freed(), 0, "the waker holds the cell");
        let waker = slot.lock().unwrap().take().unwrap();
        waker.wake_by_ref(); // a wake of an ended task does nothing
        assert!(h.pop().is_none());
        drop(waker);
        assert_eq!(h.freed(), 1);
    }

    #[test]
    fn a_task_nobody_can_wake_drops_its_future_with_the_last_reference() {
        let h = Harness::new();
        let drops = counter();
        let (f, slot) = pend(1, false, &drops);
        let (r, j) = h.spawn(f);
        r.run();
        drop(j);
        assert_eq!(drops.load(SeqCst), 0);
        let w = slot.lock().unwrap().take().unwrap();
        // A registry reference, taken while the runnable existed, would keep it the same way;
        // here the waker is the last reference.
        assert_eq!(h.freed(), 0);
        drop(w);
        assert_eq!(drops.load(SeqCst), 1);
        assert_eq!(h.freed(), 1);
    }

    #[test]
    fn a_panicking_poll_cancels_the_task_and_goes_on() {
        let h = Harness::new();
        let drops = counter();
        let d = Counted(drops.clone());
        let (r, j) = h.spawn(async move {
            let _d = d;
            panic!("boom");
        });
        let err = std::panic::catch_unwind(AssertUnwindSafe(|| r.run())).unwrap_err();
        assert_eq!(err.downcast_ref::<&str>(), Some(&"boom"));
        assert_eq!(drops.load(SeqCst), 1);
        h.assert_closed_then_freed(j, 1);
    }

    #[test]
    fn a_future_whose_destructor_panics_at_completion_is_cancelled_once() {
        struct Bad(Counted);
        impl Drop for Bad {
            fn drop(&mut self) {
                panic!("bad drop");
            }
        }
        impl Future for Bad {
            type Output = Counted;
            fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Counted> {
                Poll::Ready(Counted(self.0.0.clone()))
            }
        }
        let h = Harness::new();
        let drops = counter();
        let (r, j) = h.spawn(Bad(Counted(drops.clone())));
        let err = std::panic::catch_unwind(AssertUnwindSafe(|| r.run())).unwrap_err();
        assert_eq!(err.downcast_ref::<&str>(), Some(&"bad drop"));
        assert_eq!(drops.load(SeqCst), 2, "the future's field and the output");
        h.assert_closed_then_freed(j, 1);
    }

    /// A waker leak that takes the reference count to its limit (a waker cloned in a loop
    /// and forgotten) aborts the process at the next clone rather than let the count run into
    /// the flags. The abort ends the process, so the test runs itself again as a child.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot start a process")]
    fn a_reference_count_at_its_limit_aborts_the_process() {
        const CHILD: &str = "RT_CELL_TEST_ABORT_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let h = Harness::new();
            let (r, _j) = h.spawn(async {});
            let w = r.waker();
            // What 2^57 forgotten clones would leave.
            r.header().state.fetch_add(1 << (usize::BITS - 1), Relaxed);
            eprintln!("cloning at the limit");
            let _leaked = w.clone();
            eprintln!("the clone returned");
            return;
        }
        use std::os::unix::process::ExitStatusExt;
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "cell::tests::a_reference_count_at_its_limit_aborts_the_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("cloning at the limit"),
            "the child ran: {stderr}"
        );
        assert!(!stderr.contains("the clone returned"), "{stderr}");
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}", out.status);
    }

    #[test]
    fn a_runnable_survives_a_round_trip_through_a_pointer() {
        let h = Harness::new();
        let (r, mut j) = h.spawn(async { "out" });
        let raw = r.into_raw();
        // SAFETY: from `into_raw`, once.
        let r = unsafe { Runnable::from_raw(raw) };
        assert_eq!(r.metadata().id(), j.metadata().id());
        r.run();
        let (_, jw) = flag();
        assert_eq!(
            j.poll_join(&mut Context::from_waker(&jw)),
            Poll::Ready(Some("out"))
        );
    }

    #[test]
    fn a_big_future_is_boxed_and_still_runs() {
        let h = Harness::new();
        let big = [7u8; 4096];
        let (r, mut j) = h.spawn(async move { big.iter().map(|&b| b as usize).sum::<usize>() });
        r.run();
        let (_, jw) = flag();
        assert_eq!(
            j.poll_join(&mut Context::from_waker(&jw)),
            Poll::Ready(Some(7 * 4096))
        );
        drop(j);
        assert_eq!(h.freed(), 1);
    }

    #[test]
    fn a_task_ref_wakes_the_task() {
        let h = Harness::new();
        let drops = counter();
        let (f, _) = pend(1, false, &drops);
        let (r, j) = h.spawn(f);
        let t = TaskRef::new(&r);
        r.run();
        t.wake();
        let (r, yielded) = h.pop().expect("woken");
        assert!(!yielded);
        t.wake(); // scheduled already
        assert!(h.pop().is_none());
        r.run();
        drop((t, j));
        assert_eq!(h.freed(), 1);
    }

    /// A body that counts its cancels, pending until `ready` is set.
    struct Watched {
        cancels: Arc<AtomicUsize>,
        ready: Arc<std::sync::atomic::AtomicBool>,
    }
    impl Body for Watched {
        type Output = ();
        fn poll(self: Pin<&mut Self>, meta: &TaskMeta, _: &mut Context<'_>) -> Poll<()> {
            assert_eq!(meta.name(), None, "the cell hands its own metadata");
            if self.ready.load(SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
        fn cancel(self: Pin<&mut Self>, _: &TaskMeta) {
            self.cancels.fetch_add(1, SeqCst);
        }
    }

    /// A body is told of its cancel once, whether its runnable is dropped or its last
    /// reference goes while it waits, and never when it completes.
    #[test]
    fn a_body_is_cancelled_once_and_only_if_it_did_not_complete() {
        let h = Harness::new();
        let spawn = |ready: bool| {
            let cancels = counter();
            let ready = Arc::new(std::sync::atomic::AtomicBool::new(ready));
            let body = Watched {
                cancels: cancels.clone(),
                ready,
            };
            let (r, j, _) = spawn(TaskMeta::default(), move |_| body, h.queue.clone());
            h.spawned.fetch_add(1, SeqCst);
            (r, j, cancels)
        };
        let (r, j, cancels) = spawn(false);
        drop(r);
        assert_eq!(cancels.load(SeqCst), 1, "runnable dropped");
        drop(j);
        let (r, j, cancels) = spawn(false);
        r.run();
        drop(j);
        assert_eq!(cancels.load(SeqCst), 1, "last reference gone while waiting");
        let (r, j, cancels) = spawn(true);
        r.run();
        drop(j);
        assert_eq!(cancels.load(SeqCst), 0, "completed");
        assert_eq!(h.freed(), 3);
    }

    /// What a poll does to its own task waits for the end of the poll: a wake by value, a
    /// clone dropped, a panic after both. Each case counts references right: the task is
    /// rescheduled once, completes, and is freed once.
    #[test]
    fn a_poll_that_wakes_and_drops_its_own_wakers_keeps_the_count() {
        struct Own {
            polls: usize,
            panic_at: usize,
        }
        impl Future for Own {
            type Output = usize;
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
                self.polls += 1;
                let n = self.polls;
                drop(cx.waker().clone()); // a clone dropped: deferred
                if n == self.panic_at {
                    let _kept = cx.waker().clone();
                    drop(cx.waker().clone());
                    panic!("after deferring");
                }
                if n < 3 {
                    let w = cx.waker().clone();
                    w.wake(); // by value: deferred wake and drop
                    return Poll::Pending;
                }
                Poll::Ready(n)
            }
        }
        let h = Harness::new();
        let (r, mut j) = h.spawn(Own {
            polls: 0,
            panic_at: 0,
        });
        assert!(r.run());
        let (r, yielded) = h.pop().expect("rescheduled by its own wake");
        assert!(yielded);
        assert!(h.pop().is_none(), "once");
        assert!(r.run());
        let (r, _) = h.pop().unwrap();
        assert!(!r.run());
        let (_, jw) = flag();
        assert_eq!(
            j.poll_join(&mut Context::from_waker(&jw)),
            Poll::Ready(Some(3))
        );
        drop(j);
        assert_eq!(h.freed(), 1);

        let (r, j) = h.spawn(Own {
            polls: 0,
            panic_at: 2,
        });
        assert!(r.run());
        let (r, _) = h.pop().unwrap();
        let err = std::panic::catch_unwind(AssertUnwindSafe(|| r.run())).unwrap_err();
        assert_eq!(err.downcast_ref::<&str>(), Some(&"after deferring"));
        h.assert_closed_then_freed(j, 2);
    }

    /// A runnable run inside another task's poll keeps each poll's record apart: the inner
    /// task's wake does not count as the outer's, and the outer's deferred drop survives.
    #[test]
    fn a_poll_nested_in_another_keeps_its_own_record() {
        let h = Harness::new();
        let (inner, inner_j) = h.spawn(async {
            crate::yield_now().await;
        });
        let inner = Mutex::new(Some(inner));
        let (outer, outer_j) = h.spawn(std::future::poll_fn(move |cx| {
            drop(cx.waker().clone()); // deferred on the outer poll
            if let Some(r) = inner.lock().unwrap().take() {
                assert!(r.run(), "the inner task yielded");
            }
            Poll::Ready(())
        }));
        assert!(!outer.run());
        assert!(outer_j.is_finished());
        let (r, yielded) = h.pop().expect("the inner task, rescheduled");
        assert!(yielded);
        assert!(h.pop().is_none(), "and nothing for the outer one");
        r.run();
        assert!(inner_j.is_finished());
        drop((outer_j, inner_j));
        assert_eq!(h.freed(), 2);
    }

    /// Threads wake, clone and drop wakers of tasks that a worker runs: every task completes,
    /// each is freed once, every output is read once.
    #[test]
    fn wakes_from_other_threads_race_with_the_polls() {
        const TASKS: usize = if cfg!(miri) { 4 } else { 200 };
        let h = Harness::new();
        let drops = counter();
        let mut joins = Vec::new();
        let mut slots = Vec::new();
        for _ in 0..TASKS {
            let (f, slot) = pend(3, false, &drops);
            let (r, j) = h.spawn(f);
            h.queue.schedule(r, false);
            joins.push(j);
            slots.push(slot);
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let wakers: Vec<_> = (0..2)
            .map(|_| {
                let (slots, stop) = (slots.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(SeqCst) {
                        for s in &slots {
                            let w = s.lock().unwrap().clone();
                            if let Some(w) = w {
                                w.wake();
                            }
                        }
                        std::thread::yield_now();
                    }
                })
            })
            .collect();
        let (_, jw) = flag();
        let mut done = 0;
        while done < TASKS {
            if let Some((r, _)) = h.pop() {
                r.run();
            }
            done = joins.iter().filter(|j| j.is_finished()).count();
        }
        stop.store(true, SeqCst);
        for w in wakers {
            w.join().unwrap();
        }
        for mut j in joins {
            let Poll::Ready(Some(out)) = j.poll_join(&mut Context::from_waker(&jw)) else {
                panic!("no output");
            };
            drop(out);
        }
        drop(slots);
        while h.pop().is_some() {}
        assert_eq!(drops.load(SeqCst), 2 * TASKS);
        assert_eq!(h.freed(), TASKS);
    }
}

#[cfg(all(test, rt_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Mutex;
    use loom::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::sync::atomic::Ordering::SeqCst;

    /// Queues runnables; every cell holds a clone of `cells`, so its count tells the live cells.
    #[derive(Clone)]
    struct Queue {
        tasks: Arc<Mutex<Vec<Runnable>>>,
        cells: Arc<()>,
    }

    impl Schedule for Queue {
        fn schedule(&self, runnable: Runnable, _: bool) {
            self.tasks.lock().unwrap().push(runnable);
        }
    }

    impl Queue {
        fn new() -> Queue {
            Queue {
                tasks: Arc::new(Mutex::new(Vec::new())),
                cells: Arc::new(()),
            }
        }

        fn spawn<F: Future + Send + 'static>(&self, f: F) -> (Runnable, JoinCell<F::Output>)
        where
            F::Output: Send,
        {
            let (r, j, _) = spawn(TaskMeta::default(), move |_| f, self.clone());
            (r, j)
        }

        fn pop(&self) -> Option<Runnable> {
            self.tasks.lock().unwrap().pop()
        }

        fn live_cells(&self) -> usize {
            Arc::strong_count(&self.cells) - 1
        }
    }

    /// Counts its drops.
    struct Counted(Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// Pending once (handing its waker out through `slot`), then ready with a `Counted`.
    struct Once {
        polled: bool,
        slot: Arc<Mutex<Option<Waker>>>,
        drops: Arc<std::sync::atomic::AtomicUsize>,
    }
    impl Future for Once {
        type Output = Counted;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Counted> {
            if self.polled {
                return Poll::Ready(Counted(self.drops.clone()));
            }
            self.polled = true;
            *self.slot.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    fn once() -> (
        Once,
        Arc<Mutex<Option<Waker>>>,
        Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let slot = Arc::new(Mutex::new(None));
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let f = Once {
            polled: false,
            slot: slot.clone(),
            drops: drops.clone(),
        };
        (f, slot, drops)
    }

    /// A waker that sets a flag.
    fn flag_waker(flag: Arc<AtomicBool>) -> Waker {
        struct Flag(Arc<AtomicBool>);
        impl std::task::Wake for Flag {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.store(true, SeqCst);
            }
        }
        Waker::from(std::sync::Arc::new(Flag(flag)))
    }

    /// Polls the join handle until it is ready, sleeping on its waker in between.
    fn join<T>(mut j: JoinCell<T>) -> Option<T> {
        let flag = Arc::new(AtomicBool::new(false));
        let waker = flag_waker(flag.clone());
        loop {
            if let Poll::Ready(out) = j.poll_join(&mut Context::from_waker(&waker)) {
                return out;
            }
            while !flag.swap(false, SeqCst) {
                loom::thread::yield_now();
            }
        }
    }

    /// Runs queued runnables until the queue is empty and `done` holds.
    fn drain(q: &Queue, done: impl Fn() -> bool) {
        loop {
            match q.pop() {
                Some(r) => {
                    r.run();
                }
                None if done() => return,
                None => loom::thread::yield_now(),
            }
        }
    }

    /// A wake from another thread, at any point of the poll that hands the waker out: the task
    /// is rescheduled exactly once, completes, its output is read once, and its cell is freed.
    #[test]
    fn a_wake_from_another_thread_races_with_the_poll() {
        loom::model(|| {
            let q = Queue::new();
            let (f, slot, drops) = once();
            let (r, j) = q.spawn(f);
            let waking = loom::thread::spawn(move || {
                loop {
                    if let Some(w) = slot.lock().unwrap().take() {
                        w.wake();
                        return;
                    }
                    loom::thread::yield_now();
                }
            });
            r.run();
            let finished = || j.is_finished();
            drain(&q, finished);
            waking.join().unwrap();
            assert!(q.pop().is_none());
            drop(join(j).expect("an output"));
            assert_eq!(drops.load(SeqCst), 1);
            assert_eq!(q.live_cells(), 0);
        });
    }

    /// The poll wakes its own task and drops a clone of its waker (both deferred to the end of
    /// the poll) while another thread wakes it too: one runnable at a time, the task completes,
    /// and its cell is freed.
    #[test]
    fn a_self_wake_races_with_a_foreign_wake() {
        struct SelfWake {
            polled: bool,
            slot: Arc<Mutex<Option<Waker>>>,
        }
        impl Future for SelfWake {
            type Output = ();
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
                if self.polled {
                    return Poll::Ready(());
                }
                self.polled = true;
                *self.slot.lock().unwrap() = Some(cx.waker().clone());
                drop(cx.waker().clone());
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
        loom::model(|| {
            let q = Queue::new();
            let slot = Arc::new(Mutex::new(None));
            let (r, j) = q.spawn(SelfWake {
                polled: false,
                slot: slot.clone(),
            });
            let waking = loom::thread::spawn(move || {
                loop {
                    if let Some(w) = slot.lock().unwrap().take() {
                        w.wake();
                        return;
                    }
                    loom::thread::yield_now();
                }
            });
            assert!(r.run(), "rescheduled by its own wake");
            loop {
                let mut tasks = q.tasks.lock().unwrap();
                assert!(tasks.len() <= 1, "one runnable at a time");
                let Some(r) = tasks.pop() else {
                    break;
                };
                drop(tasks);
                r.run();
            }
            waking.join().unwrap();
            assert!(q.pop().is_none());
            assert!(j.is_finished());
            drop(j);
            assert_eq!(q.live_cells(), 0);
        });
    }

    /// The joiner registers its waker on another thread while the task completes: either it
    /// sees the output at once, or it has been woken by the time the task is done.
    #[test]
    fn the_joiner_races_with_the_completion() {
        loom::model(|| {
            let q = Queue::new();
            let (r, mut j) = q.spawn(async { 7 });
            let flag = Arc::new(AtomicBool::new(false));
            let waker = flag_waker(flag.clone());
            let joiner = loom::thread::spawn(move || {
                let first = j.poll_join(&mut Context::from_waker(&waker));
                (first, j, waker)
            });
            r.run();
            let (first, mut j, waker) = joiner.join().unwrap();
            match first {
                Poll::Ready(out) => assert_eq!(out, Some(7)),
                Poll::Pending => {
                    assert!(flag.load(SeqCst), "a joiner that waits is woken");
                    let out = j.poll_join(&mut Context::from_waker(&waker));
                    assert_eq!(out, Poll::Ready(Some(7)));
                }
            }
            drop(j);
            assert_eq!(q.live_cells(), 0);
        });
    }

    /// An ended task's registry reference is given up (`release_ended`) while another thread
    /// drops the last waker: whichever is last frees the cell, once.
    #[test]
    fn an_ended_tasks_registry_reference_races_the_last_waker() {
        loom::model(|| {
            let q = Queue::new();
            let (f, slot, _) = once();
            let (r, j) = q.spawn(f);
            let entry = TaskRef::new(&r);
            drop(j);
            r.run(); // pending: its waker is in the slot
            let waker = slot.lock().unwrap().take().unwrap();
            waker.wake_by_ref();
            q.pop().unwrap().run(); // ended
            let holder = loom::thread::spawn(move || drop(waker));
            entry.release_ended();
            holder.join().unwrap();
            assert_eq!(q.live_cells(), 0);
        });
    }

    /// The join handle is dropped on another thread while the task completes: the output is
    /// dropped exactly once, by one of them, and the cell is freed.
    #[test]
    fn a_join_handle_dropped_during_the_completion_drops_the_output_once() {
        loom::model(|| {
            let q = Queue::new();
            let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let d = drops.clone();
            let (r, j) = q.spawn(async move { Counted(d) });
            let dropper = loom::thread::spawn(move || drop(j));
            r.run();
            dropper.join().unwrap();
            assert_eq!(drops.load(SeqCst), 1);
            assert_eq!(q.live_cells(), 0);
        });
    }

    /// A scheduled task is cancelled (its runnable dropped) while another thread wakes it with
    /// its last waker: the future is dropped once, the joiner sees the cancellation, and the
    /// cell is freed.
    #[test]
    fn a_cancel_races_with_a_wake() {
        loom::model(|| {
            let q = Queue::new();
            let (f, slot, drops) = once();
            let (r, j) = q.spawn(f);
            r.run(); // pending: the waker is in the slot
            let w = slot.lock().unwrap().take().unwrap();
            let w2 = w.clone();
            w.wake(); // scheduled again
            let waking = loom::thread::spawn(move || w2.wake());
            drop(q.pop().expect("scheduled"));
            waking.join().unwrap();
            assert!(q.pop().is_none(), "a cancelled task is not scheduled");
            assert!(join(j).is_none());
            assert_eq!(drops.load(SeqCst), 0, "no output was made");
            assert_eq!(Arc::strong_count(&slot), 1, "the future is dropped");
            assert_eq!(q.live_cells(), 0);
        });
    }

    /// Another thread writes what the task waits for (a release store, as an abort sets its
    /// bit) and wakes the task by reference just as a poll of it starts: either the poll sees
    /// the write or the wake schedules one that does. A wake that returned on a stale load of
    /// `SCHEDULED` lost this (Miri found it as a deadlock of `JoinHandle::abort`).
    #[test]
    fn a_wake_of_a_scheduled_task_is_seen_by_its_poll() {
        loom::model(|| {
            let q = Queue::new();
            let ready = Arc::new(AtomicBool::new(false));
            let seen = ready.clone();
            let (r, j) = q.spawn(std::future::poll_fn(move |_| {
                if seen.load(Acquire) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }));
            let task = j.task_ref();
            let waking = loom::thread::spawn(move || {
                ready.store(true, Release);
                task.wake();
            });
            r.run();
            waking.join().unwrap();
            while let Some(r) = q.pop() {
                r.run();
            }
            assert!(j.is_finished(), "the write and the wake were both lost");
            drop(j);
            assert_eq!(q.live_cells(), 0);
        });
    }
}
