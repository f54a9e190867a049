//! The cooperative budget.
//!
//! Each poll of a task gets [`BUDGET`] units. Resource futures (sockets, timers, join handles,
//! the runtime's channels) call [`poll_proceed`] before doing work: once the budget is spent it
//! wakes the task and returns `Pending`, so a task whose resources are always ready still yields
//! to the others. Outside a task the budget is unlimited.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Units a task may spend in one poll (tokio's figure).
pub const BUDGET: u8 = 128;

thread_local! {
    /// `None`: unconstrained (not inside a task poll).
    static CURRENT: Cell<Option<u8>> = const { Cell::new(None) };
}

/// Runs `f` (one task poll) with a fresh budget, restoring the previous one afterwards.
pub(crate) fn with_budget<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(Option<u8>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(BUDGET))));
    f()
}

/// Spends one unit of the current task's budget.
///
/// Returns `Poll::Ready(())` if the caller may proceed; otherwise wakes the task and returns
/// `Poll::Pending`, which the caller returns so that the task yields.
///
/// ```
/// use std::task::{Context, Poll};
///
/// fn poll_next_item(cx: &mut Context<'_>) -> Poll<u32> {
///     std::task::ready!(runtime_core::coop::poll_proceed(cx));
///     Poll::Ready(7) // the resource's own work
/// }
/// ```
#[inline]
pub fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    let proceed = CURRENT.with(|c| match c.get() {
        None => true,
        Some(0) => false,
        Some(n) => {
            c.set(Some(n - 1));
            true
        }
    });
    if proceed {
        Poll::Ready(())
    } else {
        budget_spent();
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Counts a budget-forced yield in the current runtime's metrics.
#[cold]
#[inline(never)]
fn budget_spent() {
    crate::context::with_current(|h| {
        if let Some(h) = h {
            h.shared
                .counters
                .budget_yields
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
}

/// Whether the current task still has budget left (always true outside a task).
pub fn has_budget_remaining() -> bool {
    CURRENT.with(|c| c.get() != Some(0))
}

/// Yields to the scheduler once: the task is scheduled again with
/// [`ScheduleReason::Yield`](crate::ScheduleReason::Yield) and other tasks get to run first.
///
/// ```
/// futures_lite::future::block_on(async {
///     runtime_core::yield_now().await;
/// });
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
