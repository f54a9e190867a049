//! The thread-local runtime context: which runtime this thread belongs to (for `spawn` and the
//! resource types), and, on a worker, which worker it is.

use std::cell::{Cell, RefCell};
use std::fmt;

use crate::handle::Handle;
use crate::shared::Shared;

thread_local! {
    static CONTEXT: Context = const {
        Context {
            handle: RefCell::new(None),
            depth: Cell::new(0),
            orphans: RefCell::new(Vec::new()),
            driving: Cell::new(false),
        }
    };
    /// Set while this thread is a worker of some runtime. A thread-local of its own, with no
    /// destructor, because every schedule reads it: access is then a plain load.
    static WORKER: Cell<Option<WorkerRef>> = const { Cell::new(None) };
}

struct Context {
    /// The runtime that `spawn` and resources use on this thread.
    handle: RefCell<Option<Handle>>,
    /// How many [`EnterGuard`]s are alive on this thread: each guard remembers the depth it
    /// made, so that one dropped out of order is caught.
    depth: Cell<usize>,
    /// Guards dropped out of order, as (depth, the handle they would have restored): when the
    /// guard above them goes, the context skips down past them, so the right runtime (or none)
    /// is current again once every guard is gone.
    orphans: RefCell<Vec<(usize, Option<Handle>)>>,
    /// Set while this thread drives a runtime (a worker loop or `block_on`): blocking on another
    /// future here would stall that runtime, so `block_on` refuses.
    driving: Cell<bool>,
}

/// Identifies the worker that the current thread is, for the scheduler's fast path.
#[derive(Clone, Copy)]
pub(crate) struct WorkerRef {
    /// The worker's runtime; compared by address, never dereferenced through this field.
    pub(crate) shared: *const Shared,
    pub(crate) index: usize,
    /// Points to the worker's `RefCell<S::Local>` for the runtime's scheduler type `S`; valid
    /// while this `WorkerRef` is installed (see `WorkerGuard`).
    pub(crate) local: *const (),
}

/// Error returned when there is no runtime on the current thread.
#[derive(Debug, Clone)]
pub struct NoRuntime(pub(crate) &'static str);

impl NoRuntime {
    /// The error for a call to `what` (a function's name) made outside a runtime.
    pub fn new(what: &'static str) -> NoRuntime {
        NoRuntime(what)
    }
}

impl fmt::Display for NoRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} was called outside a runtime: call it from a task, from inside `Runtime::block_on`, \
             or while a `Runtime::enter()` guard is alive; or use `Handle::spawn` on a handle you \
             kept, or the one-line `facade::block_on(future)`",
            self.0
        )
    }
}

impl std::error::Error for NoRuntime {}

/// The runtime handle installed on this thread, if any.
pub fn try_current() -> Option<Handle> {
    CONTEXT.with(|c| c.handle.borrow().clone())
}

/// Calls `f` with the handle installed on this thread, without cloning it.
pub fn with_current<R>(f: impl FnOnce(Option<&Handle>) -> R) -> R {
    CONTEXT.with(|c| f(c.handle.borrow().as_ref()))
}

#[inline]
pub(crate) fn current_worker() -> Option<WorkerRef> {
    WORKER.with(Cell::get)
}

/// Whether this thread is currently driving a runtime (a worker, or inside `block_on`).
pub fn is_driving() -> bool {
    CONTEXT.with(|c| c.driving.get())
}

/// Restores the previously installed handle when dropped.
///
/// Guards must be dropped in the reverse order of their creation (as tokio's): dropping one
/// while a guard made after it is still alive panics. The context is still put right: once the
/// newer guard goes too, the runtime that was current before the older one is current again.
#[must_use = "the handle is uninstalled when the guard is dropped"]
pub struct EnterGuard {
    prev: Option<Handle>,
    /// The thread's guard depth once this guard was made.
    depth: usize,
    // Not Send: the guard must be dropped on the thread that made it.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl fmt::Debug for EnterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnterGuard")
    }
}

pub(crate) fn enter(handle: Handle) -> EnterGuard {
    let (prev, depth) = CONTEXT.with(|c| {
        c.depth.set(c.depth.get() + 1);
        (c.handle.replace(Some(handle)), c.depth.get())
    });
    EnterGuard {
        prev,
        depth,
        _not_send: std::marker::PhantomData,
    }
}

/// The message of the panic when [`EnterGuard`]s are dropped out of order.
pub const GUARDS_OUT_OF_ORDER: &str = "`EnterGuard` values were dropped out of order: guards \
     returned by `Runtime::enter()` / `Handle::enter()` must be dropped in the reverse order of \
     their creation (keep each in a scope of its own, or drop the newest first)";

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let in_order = CONTEXT
            .try_with(|c| {
                if c.depth.get() != self.depth {
                    // A newer guard is alive: it stays in charge; it restores our `prev`.
                    c.orphans.borrow_mut().push((self.depth, prev));
                    return false;
                }
                let (mut restore, mut depth) = (prev, self.depth - 1);
                let mut orphans = c.orphans.borrow_mut();
                while let Some(i) = orphans.iter().position(|(d, _)| *d == depth) {
                    restore = orphans.swap_remove(i).1;
                    depth -= 1;
                }
                drop(orphans);
                c.depth.set(depth);
                // The handle replaced here may be a runtime's last: dropped outside the borrow.
                let replaced = c.handle.replace(restore);
                drop(replaced);
                true
            })
            .unwrap_or(true);
        // While already unwinding, a second panic would abort: then only the context is fixed.
        if !in_order && !std::thread::panicking() {
            panic!("{GUARDS_OUT_OF_ORDER}");
        }
    }
}

/// Marks this thread as driving a runtime; clears the mark when dropped.
pub(crate) struct DrivingGuard(());

/// The message of the panic when `block_on` is called where it would stall a runtime.
pub const NESTED_BLOCK_ON: &str = "`block_on` was called on a thread that is already driving an async runtime \
     (a worker thread, or inside another `block_on`); blocking here would stall that runtime. \
     Use `.await` instead, or run the blocking code on another thread (spawn_blocking or \
     std::thread::spawn) and await its result";

pub(crate) fn enter_driving() -> Result<DrivingGuard, &'static str> {
    CONTEXT.with(|c| {
        if c.driving.replace(true) {
            Err(NESTED_BLOCK_ON)
        } else {
            Ok(DrivingGuard(()))
        }
    })
}

impl Drop for DrivingGuard {
    fn drop(&mut self) {
        let _ = CONTEXT.try_with(|c| c.driving.set(false));
    }
}

/// Installs a worker identity; removes it when dropped.
pub(crate) struct WorkerGuard {
    prev: Option<WorkerRef>,
}

pub(crate) fn set_worker(worker: WorkerRef) -> WorkerGuard {
    WorkerGuard {
        prev: WORKER.with(|w| w.replace(Some(worker))),
    }
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        WORKER.with(|w| w.set(self.prev.take()));
    }
}
