//! tokio-console instrumentation (feature `console`): what console-subscriber reads, emitted
//! by our runtime under the names tokio uses.
//!
//! - A `runtime.spawn` span per task (target `tokio::task`, no parent), with the fields
//!   `kind`, `task.name`, `task.id`, `loc.file`, `loc.line`, `loc.col`; entered and exited
//!   around each poll (console's poll counts and busy time), closed when the task's future is
//!   dropped (console's "completed").
//! - A `runtime::waker` event with `op = "waker.wake"` and `task.id` (the span's id) each time
//!   the task is woken. Waker clones and drops are not reported (console shows wakes, not
//!   waker counts): they are the task cell's hottest operations.
//!
//! Without a subscriber that wants them, a span is a disabled `Span` and nothing is recorded;
//! with the feature off, none of this is compiled.

use std::panic::Location;
use std::sync::Mutex;

use crate::sync::lock_unpoisoned as lock;
use crate::task::TaskId;

/// A task's span, made at spawn, handed to the task's future when it is created.
pub(crate) struct TaskSpan {
    /// The span's id (0: disabled), for the waker events.
    id: u64,
    span: Mutex<Option<tracing::Span>>,
}

impl TaskSpan {
    pub(crate) fn new(
        task: TaskId,
        name: Option<&str>,
        location: &'static Location<'static>,
    ) -> TaskSpan {
        let span = tracing::trace_span!(
            target: "tokio::task",
            parent: None,
            "runtime.spawn",
            kind = "task",
            task.name = name.unwrap_or_default(),
            task.id = task.as_u64(),
            loc.file = location.file(),
            loc.line = location.line(),
            loc.col = location.column(),
        );
        TaskSpan {
            id: span.id().map_or(0, |id| id.into_u64()),
            span: Mutex::new(Some(span)),
        }
    }

    /// The span, for the task's future (once).
    pub(crate) fn take_span(&self) -> tracing::Span {
        lock(&self.span).take().unwrap_or_else(tracing::Span::none)
    }

    /// The task was woken.
    #[inline]
    pub(crate) fn woken(&self) {
        if self.id != 0 {
            tracing::trace!(target: "runtime::waker", op = "waker.wake", task.id = self.id);
        }
    }
}
