//! The runtime's policy, and its ejection: a policy that panics, or that holds tasks while
//! every worker has parked (the watchdog's stall check), is replaced, while the runtime runs,
//! by the built-in [`BasicFifo`]; the tasks it hands back are rescheduled there,
//! then it is dropped (and with it any task it kept, whose `JoinHandle` then reports
//! cancellation).
//!
//! # Protocol
//!
//! The policy is `primary` until `ejected` is set, and `fallback` from then on. Who may call
//! the primary:
//!
//! - a thread inside the primary's worker loop (counted in `in_loop`), for calls made from that
//!   loop (`next`, `account`, and `schedule` from its own tasks: such a `schedule` sees
//!   `ejected` unset, or it takes the fallback path);
//! - any other thread between [`Policy::enter`] and [`Policy::exit`] (counted in `inflight`).
//!
//! [`Policy::enter`] increments `inflight`, then reads `ejected` (both SeqCst); the ejector
//! sets `ejected`, then reads both counters (SeqCst): either the caller sees `ejected` and
//! leaves the primary alone, or the ejector sees it counted. The last one out (a thread leaving
//! the loop, a caller exiting, or the ejector, whichever sees `ejected` and both counters at
//! zero) *retires* the primary, once: it drains every worker state into the fallback, then
//! drops the primary and the states. From then on nothing can reach the primary.

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use crate::basic::BasicFifo;
use crate::fault::panic_message;
use crate::shared::Shared;
use crate::sync::lock_unpoisoned as lock;
use crate::worker::DynScheduler;

/// Why and how a policy was ejected (in [`RuntimeMetrics::ejection`](crate::RuntimeMetrics)).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ejection {
    /// The ejected policy's name.
    pub policy: String,
    /// What it did: which method panicked and the panic's message.
    pub reason: String,
    /// Tasks it handed back through `drain`, rescheduled on the fallback policy.
    pub rescued: u64,
    /// Tasks dropped with it (it kept them and never handed them back): their `JoinHandle`s
    /// report cancellation.
    pub lost: u64,
    /// Whether the ejected policy has been dropped yet (it is, as soon as no thread is inside
    /// it any more); `rescued` and `lost` are final once it has.
    pub dropped: bool,
}

thread_local! {
    /// While this thread retires a policy: the tasks cancelled meanwhile (the policy's own).
    static CANCELLED_BY_RETIRE: Cell<Option<u64>> = const { Cell::new(None) };
}

/// A task was cancelled: counted if this thread is retiring a policy (see `maybe_retire`).
pub(crate) fn note_cancelled() {
    let _ = CANCELLED_BY_RETIRE.try_with(|c| {
        if let Some(n) = c.get() {
            c.set(Some(n + 1));
        }
    });
}

/// Bits of `Policy::inflight` that count callers in flight (up to 16 million threads); the
/// 40 above count foreign schedules (a trillion before they wrap).
const INFLIGHT_BITS: u32 = 24;
const INFLIGHT_MASK: u64 = (1 << INFLIGHT_BITS) - 1;

pub(crate) struct Policy {
    /// The user's policy; dropped (once) when retired, after which nothing reads it.
    primary: UnsafeCell<ManuallyDrop<Box<dyn DynScheduler>>>,
    /// Its name, kept for reports after it is gone.
    primary_name: String,
    pub(crate) fallback: BasicFifo,
    ejected: AtomicBool,
    /// Low [`INFLIGHT_BITS`]: callers between `enter` and `exit`. Above: how many of them
    /// scheduled a task (`exit_scheduled`), for the stall check; one word, so that a foreign
    /// schedule pays one read-modify-write on the way in and one on the way out.
    inflight: AtomicU64,
    in_loop: AtomicU64,
    retired: AtomicBool,
    rescued: AtomicU64,
    report: Mutex<Option<Ejection>>,
}

// SAFETY: `primary` is a `Box<dyn DynScheduler>` (and `DynScheduler: Send + Sync`), shared by
// reference under the protocol above and dropped once, by the thread that retires it.
unsafe impl Send for Policy {}
// SAFETY: as above.
unsafe impl Sync for Policy {}

impl Policy {
    pub(crate) fn new(primary: Box<dyn DynScheduler>) -> Policy {
        let primary_name = primary.name().to_owned();
        Policy {
            primary: UnsafeCell::new(ManuallyDrop::new(primary)),
            primary_name,
            fallback: BasicFifo::default(),
            ejected: AtomicBool::new(false),
            inflight: AtomicU64::new(0),
            in_loop: AtomicU64::new(0),
            retired: AtomicBool::new(false),
            rescued: AtomicU64::new(0),
            report: Mutex::new(None),
        }
    }

    /// Whether the fallback policy is in use (as seen by this thread).
    #[inline]
    pub(crate) fn is_ejected(&self) -> bool {
        self.ejected.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The primary, for a thread inside its worker loop or between `enter` and `exit`.
    ///
    /// # Safety
    ///
    /// The caller is counted in `in_loop` or `inflight` and saw `ejected` unset after counting
    /// itself: the primary cannot be retired before it leaves.
    #[inline]
    pub(crate) unsafe fn primary(&self) -> &dyn DynScheduler {
        // SAFETY: per the caller's guarantee, `primary` is not dropped (nor being dropped), and
        // nothing mutates it before it is.
        unsafe { &***self.primary.get() }
    }

    /// Counts the caller in `counter`; `false` (and nothing counted) once the policy is ejected.
    #[inline]
    fn count_in(&self, shared: &Shared, counter: &AtomicU64) -> bool {
        counter.fetch_add(1, SeqCst);
        if self.ejected.load(SeqCst) {
            self.count_out(shared, counter, 1u64.wrapping_neg());
            return false;
        }
        true
    }

    /// Adds `delta` to `counter` (a caller leaving), then retires the primary if it is ejected
    /// and this was the last one out.
    #[inline]
    fn count_out(&self, shared: &Shared, counter: &AtomicU64, delta: u64) {
        counter.fetch_add(delta, SeqCst);
        if self.ejected.load(SeqCst) {
            self.maybe_retire(shared);
        }
    }

    /// Counts the caller in; `false` (and nothing counted) once the policy is ejected.
    #[inline]
    pub(crate) fn enter(&self, shared: &Shared) -> bool {
        self.count_in(shared, &self.inflight)
    }

    /// Counts the caller out (after `enter` returned `true`).
    #[inline]
    pub(crate) fn exit(&self, shared: &Shared) {
        self.count_out(shared, &self.inflight, 1u64.wrapping_neg());
    }

    /// `exit` for a caller whose `schedule` handed the policy a task: one step that counts it
    /// out and counts the task.
    #[inline]
    pub(crate) fn exit_scheduled(&self, shared: &Shared) {
        self.count_out(shared, &self.inflight, (1 << INFLIGHT_BITS) - 1);
    }

    /// Tasks handed to the policy by callers other than its workers (see `inflight`).
    pub(crate) fn foreign_scheduled(&self) -> u64 {
        self.inflight.load(std::sync::atomic::Ordering::Relaxed) >> INFLIGHT_BITS
    }

    /// Calls `f` with the primary under `enter`/`exit`, containing a panic (which ejects it as
    /// a panic of `method`); `None` if the policy is ejected (or `f` panicked).
    pub(crate) fn with_primary<R>(
        &self,
        shared: &Shared,
        method: &str,
        f: impl FnOnce(&dyn DynScheduler) -> R,
    ) -> Option<R> {
        if !self.enter(shared) {
            return None;
        }
        // SAFETY: counted in `inflight` with `ejected` unset.
        let out = catch_unwind(AssertUnwindSafe(|| f(unsafe { self.primary() })));
        let out = match out {
            Ok(v) => Some(v),
            Err(p) => {
                self.eject(shared, method, &*p);
                None
            }
        };
        self.exit(shared);
        out
    }

    /// Enters the primary's worker loop; `false` once the policy is ejected.
    pub(crate) fn enter_loop(&self, shared: &Shared) -> bool {
        self.count_in(shared, &self.in_loop)
    }

    pub(crate) fn leave_loop(&self, shared: &Shared) {
        self.count_out(shared, &self.in_loop, 1u64.wrapping_neg());
    }

    /// Ejects the primary for a panic in `method`: an ERROR, the fallback from now on, every
    /// worker woken to switch. Later calls do nothing.
    pub(crate) fn eject(&self, shared: &Shared, method: &str, payload: &(dyn Any + Send)) {
        self.eject_for(
            shared,
            format!("`{method}` panicked: {}", panic_message(payload)),
        );
    }

    /// Ejects the primary for `reason` (see [`eject`](Policy::eject)).
    pub(crate) fn eject_for(&self, shared: &Shared, reason: String) {
        {
            let mut report = lock(&self.report);
            if report.is_some() {
                return;
            }
            tracing::error!(
                policy = %self.primary_name,
                reason = %reason,
                "the scheduling policy failed and is ejected: the runtime goes on with the \
                 built-in FIFO policy (fix the policy, or run it through the conformance kit)"
            );
            *report = Some(Ejection {
                policy: self.primary_name.clone(),
                reason,
                rescued: 0,
                lost: 0,
                dropped: false,
            });
        }
        shared.counters.caught_panics.fetch_add(1, SeqCst);
        self.ejected.store(true, SeqCst);
        for i in 0..shared.workers {
            shared.parking.unpark(i);
        }
        self.maybe_retire(shared);
    }

    /// Retires the primary if nobody can reach it any more (see the module docs).
    fn maybe_retire(&self, shared: &Shared) {
        if self.in_loop.load(SeqCst) != 0 || self.inflight.load(SeqCst) & INFLIGHT_MASK != 0 {
            return;
        }
        if self.retired.swap(true, SeqCst) {
            return;
        }
        // SAFETY: nobody is counted in, and `ejected` is set, so nobody can reach the policy
        // again (`retired` makes this the only thread here): it is ours to use and drop, once.
        let primary: Box<dyn DynScheduler> =
            unsafe { ManuallyDrop::take(&mut *self.primary.get()) };
        CANCELLED_BY_RETIRE.with(|c| c.set(Some(0)));
        for (index, slot) in shared.states.iter().enumerate() {
            let Some(state) = lock(slot).take() else {
                continue;
            };
            loop {
                match catch_unwind(AssertUnwindSafe(|| primary.drain_one(index, &state))) {
                    Ok(Some(task)) => {
                        self.rescued.fetch_add(1, SeqCst);
                        shared.schedule_fallback(task);
                    }
                    Ok(None) => break,
                    Err(p) => {
                        crate::fault::report_panic("the ejected policy's `drain`", &*p);
                        break;
                    }
                }
            }
            // What the state still holds was never handed back: lost.
            if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(state))) {
                crate::fault::report_panic("the ejected policy's worker state", &*p);
            }
        }
        if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(primary))) {
            crate::fault::report_panic("the ejected policy's destructor", &*p);
        }
        let rescued = self.rescued.load(SeqCst);
        let lost = CANCELLED_BY_RETIRE.with(|c| c.take()).unwrap_or(0);
        if let Some(r) = lock(&self.report).as_mut() {
            r.rescued = rescued;
            r.lost = lost;
            r.dropped = true;
        }
        tracing::error!(
            policy = %self.primary_name,
            rescued,
            lost,
            "the ejected policy is dropped: tasks it handed back run on the FIFO policy, \
             the tasks it kept are cancelled"
        );
    }

    /// The ejection, if there was one.
    pub(crate) fn ejection(&self) -> Option<Ejection> {
        lock(&self.report).clone()
    }

    /// The name of the policy in use.
    pub(crate) fn name_in_use(&self) -> String {
        if self.is_ejected() {
            "basic-fifo".to_owned()
        } else {
            self.primary_name.clone()
        }
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        if !*self.retired.get_mut() {
            // SAFETY: not retired (so not dropped yet), and `&mut self`: nobody else has it.
            unsafe { ManuallyDrop::drop(self.primary.get_mut()) };
        }
    }
}
