//! The OS poller behind one small interface, with two implementations chosen at build time:
//! `mio.rs` (default) and `polling.rs` (feature `polling`).
//!
//! # The backend contract
//!
//! A backend provides two types, `Poll` and `Registry`, made together by `Poll::new()`:
//!
//! - `Poll::poll(&mut self, timeout, each)` waits until at least one event is ready, the
//!   registry's `wake` is called, or `timeout` passes (`None`: no limit; `Some(ZERO)`: do not
//!   block), then calls `each` once per ready source. It must wait no longer than `timeout` and
//!   not much shorter: sub-millisecond timeouts are honoured (epoll rounds up to whole
//!   milliseconds, so the mio backend arms a timerfd). An interrupted wait (`EINTR`) returns
//!   `Ok` with no events. `Poll` is exclusive: one thread waits in it at a time (whoever holds
//!   the runtime's driver).
//! - `Registry` is shared by every thread: `register(fd, token)` watches `fd` for readability
//!   and writability, **edge-triggered** (an event comes when readiness changes, so a source
//!   must be drained until `WouldBlock`: `Async` does); `deregister(fd)` must be called before
//!   the fd is closed; `wake()` makes a current or the next `poll` return promptly. Its own
//!   wake-up is either not reported at all (polling) or reported with [`WAKE_TOKEN`] (mio),
//!   which no source has and the reactor ignores.
//! - An [`Event`] reports hang-up and error as both readable and writable, so that a waiting
//!   operation retries and sees the error itself.

/// One readiness event: the source's token and what it is ready for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub(crate) token: usize,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The peer closed its side (or the fd is in error): reads will not block again.
    pub(crate) read_closed: bool,
}

/// Token reserved for the poller's own wake-ups.
pub(crate) const WAKE_TOKEN: usize = usize::MAX;

#[cfg(not(feature = "polling"))]
mod mio;
#[cfg(feature = "polling")]
mod polling;

#[cfg(not(feature = "polling"))]
pub(crate) use self::mio::{Poll, Registry};
#[cfg(feature = "polling")]
pub(crate) use self::polling::{Poll, Registry};

/// The name of the backend compiled in.
pub const BACKEND: &str = if cfg!(feature = "polling") {
    "polling"
} else {
    "mio"
};

/// Whether the backend reports the peer's half-close (`EPOLLRDHUP`) in [`Event::read_closed`].
/// mio does; `polling` reports only a full hang-up, so with it a short read is never taken to
/// mean the buffer is drained (EOF could be waiting behind it with no event to come).
pub(crate) const REPORTS_READ_CLOSED: bool = !cfg!(feature = "polling");
