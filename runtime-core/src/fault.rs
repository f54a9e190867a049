//! Containment: where the runtime calls code that is not its own (a waker the driver wakes, a
//! policy's method), a panic is caught, reported as a `tracing` ERROR naming what panicked
//! and how, and counted in [`RuntimeMetrics::caught_panics`](crate::RuntimeMetrics) of the
//! current thread's runtime. The runtime goes on.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering::Relaxed;
use std::task::Waker;

use crate::context;

/// The message of a panic payload, if it is a string (`&str` or `String`, what `panic!` makes).
pub fn panic_text(payload: &(dyn Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
}

/// The message of a panic payload, or a placeholder for a payload that is not a string.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    panic_text(payload).unwrap_or_else(|| "a panic with a non-string payload".to_owned())
}

/// Reports a caught panic of `what` (for instance "the waker of a timer").
pub fn report_panic(what: &str, payload: &(dyn Any + Send)) {
    let message = panic_message(payload);
    tracing::error!(
        what,
        panic = %message,
        "caught a panic in {what}; the runtime goes on"
    );
    context::with_current(|h| {
        if let Some(h) = h {
            h.shared.counters.caught_panics.fetch_add(1, Relaxed);
        }
    });
}

/// Wakes `waker`; a panic in it is caught and reported as a panic of `what`, so that the
/// caller (a driver waking many tasks) wakes the others and keeps its locks unpoisoned.
#[inline]
pub fn wake_contained(waker: Waker, what: &str) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| waker.wake())) {
        report_panic(what, &*payload);
    }
}

/// The subscriber of the thread that builds a runtime, if it has one of its own (not the
/// global default): the runtime's threads (workers, watchdog) report to it, so that a scoped
/// subscriber set around a runtime's construction receives its ERRORs and warnings.
pub(crate) fn creators_subscriber() -> Option<tracing::Dispatch> {
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    (!dispatch.is::<tracing::subscriber::NoSubscriber>()).then_some(dispatch)
}

/// Runs `f` with `dispatch` (from [`creators_subscriber`]) as this thread's default.
pub(crate) fn with_subscriber<R>(dispatch: Option<&tracing::Dispatch>, f: impl FnOnce() -> R) -> R {
    match dispatch {
        Some(d) => tracing::dispatcher::with_default(d, f),
        None => f(),
    }
}

/// The error of [`Runtime::new`](crate::Runtime::new) (inside its `io::Error`) when the
/// policy panics while the runtime starts (`init`, `hooks` or `new_local`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyPanicked {
    /// The policy's name.
    pub policy: String,
    /// The method that panicked.
    pub method: &'static str,
    /// The panic's message.
    pub message: String,
}

impl std::fmt::Display for PolicyPanicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the scheduling policy {:?} panicked in `{}` while the runtime started: {}",
            self.policy, self.method, self.message
        )
    }
}

impl std::error::Error for PolicyPanicked {}
