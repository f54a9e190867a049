//! One direction's readiness of a registered source: a tick that counts the readiness events,
//! and the waker of the one operation waiting for the next event.
//!
//! The tick is an atomic *written under the lock* that guards the waker. A reader that only
//! compares a tick (is there an event since I last looked?) takes no lock. `poll_ready`, which
//! may register a waker, compares once without the lock (the fast path: an event came) and once
//! more under it: `dispatch` moves the tick and takes the waker under the same lock, so an event
//! cannot fall between the check and the registration (a lost wake-up). The loom model below
//! checks that, and that the twin without the second check loses wake-ups.

use std::task::{Context, Poll, Waker};

#[cfg(rt_loom)]
use loom::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicU64, Ordering},
};
#[cfg(not(rt_loom))]
use std::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicU64, Ordering},
};

#[derive(Debug, Default)]
pub(crate) struct Readiness {
    tick: AtomicU64,
    waker: Mutex<Option<Waker>>,
}

impl Readiness {
    // Poisoning is ignored: each critical section is a compare, a store or a take.
    fn waker(&self) -> MutexGuard<'_, Option<Waker>> {
        self.waker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current tick, to compare against after an attempt.
    #[inline]
    pub(crate) fn tick(&self) -> u64 {
        self.tick.load(Ordering::Acquire)
    }

    /// Ready once an event came after tick `seen`; otherwise registers `cx`'s waker.
    pub(crate) fn poll_ready(&self, seen: u64, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_ready_checked::<true>(seen, cx)
    }

    /// `poll_ready`; `RECHECK = false` is the mutated twin the loom model must catch.
    #[inline]
    fn poll_ready_checked<const RECHECK: bool>(&self, seen: u64, cx: &mut Context<'_>) -> Poll<()> {
        if self.tick.load(Ordering::Acquire) != seen {
            return Poll::Ready(()); // no lock: an event came since
        }
        let mut slot = self.waker();
        // Under the lock, where `dispatch` moves the tick: no event can slip in between.
        if RECHECK && self.tick.load(Ordering::Acquire) != seen {
            return Poll::Ready(());
        }
        match &*slot {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// An event: moves the tick and returns the waiting operation's waker, if any.
    pub(crate) fn dispatch(&self) -> Option<Waker> {
        let mut slot = self.waker();
        self.tick.fetch_add(1, Ordering::Release);
        slot.take()
    }
}

#[cfg(all(test, rt_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;
    use std::task::Wake;

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// A waiter that saw tick 0 polls while an event is dispatched: it is either told ready or
    /// woken, never left waiting.
    fn model<const RECHECK: bool>() {
        loom::model(|| {
            let r = Arc::new(Readiness::default());
            let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
            let waker = Waker::from(flag.clone());
            let r2 = r.clone();
            let event = loom::thread::spawn(move || {
                if let Some(w) = r2.dispatch() {
                    w.wake();
                }
            });
            let mut cx = Context::from_waker(&waker);
            let polled = r.poll_ready_checked::<RECHECK>(0, &mut cx);
            event.join().unwrap();
            assert!(
                polled.is_ready() || flag.0.load(Ordering::SeqCst),
                "wake-up lost"
            );
        });
    }

    #[test]
    fn loom_readiness_never_loses_a_wake_up() {
        model::<true>();
    }

    #[test]
    #[should_panic(expected = "wake-up lost")]
    fn loom_readiness_twin_without_the_recheck_loses_one() {
        model::<false>();
    }
}
