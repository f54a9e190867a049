//! Time: [`sleep`], [`sleep_until`], [`timeout`], [`interval`], and a clock that tests can
//! pause and advance.
//!
//! Timers live in the runtime's timer driver (crate `timer`: a hierarchical timing wheel with
//! microsecond ticks, its clock, and the handshake with the parked worker); an idle runtime waits in the reactor exactly until the next deadline (a timerfd, not
//! epoll's whole milliseconds). A timer never fires early. `Duration::MAX` and far deadlines
//! saturate to "about a century from now" instead of overflowing.
//!
//! ```
//! use std::time::Duration;
//! facade::block_on(async {
//!     facade::time::sleep(Duration::from_millis(1)).await;
//!     let r = facade::time::timeout(Duration::from_millis(1), std::future::pending::<()>()).await;
//!     assert!(r.is_err());
//! });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
pub use std::time::{Duration, Instant};

use timer::{FAR, Key, Timers};

fn timers() -> Arc<Timers> {
    crate::driver::with_current(|io| io.map(|io| io.timers.clone())).unwrap_or_else(|| {
        panic!(
            "{}",
            runtime_core::NoRuntime::new("a facade::time function (sleep, timeout, interval)")
        )
    })
}

/// The current runtime's timers, for the functions below that need more than a clone.
fn with_timers<R>(what: &'static str, f: impl FnOnce(&Timers) -> R) -> R {
    crate::driver::with_current(|io| match io {
        Some(io) => f(&io.timers),
        None => panic!("{}", runtime_core::NoRuntime::new(what)),
    })
}

/// The current time as the runtime sees it (paused and advanced by tests; real otherwise).
/// Outside a runtime, the real time.
pub fn now() -> Instant {
    crate::driver::with_current(|io| io.map_or_else(Instant::now, |io| io.timers.clock.now()))
}

/// `now + d`, saturating far in the future instead of overflowing.
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

/// Completes after `duration` (never earlier). `Duration::MAX` sleeps about forever.
///
/// # Panics
///
/// Outside a runtime, with a message that says where to call it.
pub fn sleep(duration: Duration) -> Sleep {
    let timers = timers();
    let deadline = after(timers.clock.now(), duration);
    Sleep {
        deadline,
        timers,
        entry: None,
        tick: 0,
        check_clock: duration < CLOCKLESS_FROM,
        waker: NO_WAKER,
    }
}

/// A sleep at least this long registers at its first poll without reading the clock (see
/// `Sleep::check_clock`).
const CLOCKLESS_FROM: Duration = Duration::from_millis(1);

/// A sleep on the given timers (for adapters that hold their runtime's timers).
#[cfg(feature = "hyper")]
pub(crate) fn sleep_on(timers: Arc<Timers>, deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        timers,
        entry: None,
        tick: 0,
        check_clock: true,
        waker: NO_WAKER,
    }
}

/// The current runtime's timers, if there is a runtime.
#[cfg(feature = "hyper")]
pub(crate) fn current_timers() -> Option<Arc<Timers>> {
    crate::driver::with_current(|io| io.map(|io| io.timers.clone()))
}

/// Completes at `deadline` (never earlier).
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        timers: timers(),
        entry: None,
        tick: 0,
        check_clock: true,
        waker: NO_WAKER,
    }
}

/// The future of [`sleep`] and [`sleep_until`]. Dropping it cancels the timer.
pub struct Sleep {
    deadline: Instant,
    timers: Arc<Timers>,
    entry: Option<Key>,
    /// The deadline's tick, which `entry` is registered for (kept rather than recomputed
    /// from `deadline`: every drop reads it).
    tick: u64,
    /// Whether a poll of the unregistered timer compares the deadline with the clock. Not for
    /// a `sleep` of a millisecond or more, whose deadline was ahead when it was made: its first
    /// poll registers it at once (as tokio's does), and if it has become due meanwhile, the
    /// wheel says so ([`Timers::register`]) or fires it at its next service. Shorter sleeps,
    /// and deadlines given as instants, read the clock: they are often due by their first poll.
    check_clock: bool,
    /// Which waker `entry` is registered with (its data and vtable addresses): a poll with
    /// the same waker, while the timer is pending, has nothing to do (see `poll`).
    waker: (usize, usize),
}

/// No waker registered.
const NO_WAKER: (usize, usize) = (0, 0);

/// A waker's identity, as `Waker::will_wake` compares it. While the wheel holds a clone of
/// the waker, its task cannot be freed, so no other waker can take on the same identity.
fn identity(w: &Waker) -> (usize, usize) {
    (w.data() as usize, w.vtable() as *const _ as usize)
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Sleep {
    /// When it completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        self.timers.clock.now() >= self.deadline
    }

    /// Moves the deadline (the timer's slot is reused).
    pub fn reset(&mut self, deadline: Instant) {
        self.cancel();
        self.deadline = deadline;
        self.check_clock = true;
    }

    /// Cancels the timer if it is registered and has not fired.
    #[inline]
    fn cancel(&mut self) {
        self.timers.cancel_at(&mut self.entry, self.tick);
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        ready!(runtime_core::coop::poll_proceed(cx));
        let this = &mut *self;
        if this.entry.is_some() {
            // Registered and fired (the usual way here): done, with no clock read and no lock.
            if this.timers.has_fired(this.tick) {
                this.entry = None;
                return Poll::Ready(());
            }
            // Pending, and registered with this very waker (a `select!` loop or a deadline
            // polled beside other work): the wheel fires it and wakes that waker, so there is
            // nothing to do, no clock to read and no lock to take (tokio's timer is the same:
            // a pending timer completes when the driver fires it). A closed driver fired
            // everything without moving `has_fired`: the slow path below says so.
            if this.waker == identity(cx.waker()) && !this.timers.is_closed() {
                return Poll::Pending;
            }
        }
        if (this.check_clock || this.entry.is_some()) && this.timers.clock.now() >= this.deadline {
            this.cancel();
            return Poll::Ready(());
        }
        if this.timers.is_closed() {
            panic!("the runtime that drives this timer has shut down");
        }
        this.tick = this.timers.clock.tick_ceil(this.deadline);
        if this.timers.register(&mut this.entry, this.tick, cx.waker()) {
            this.waker = identity(cx.waker());
            Poll::Pending
        } else {
            Poll::Ready(()) // due: the wheel has passed its tick
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The error of [`timeout`]: the deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> Self {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

/// Runs `future` for at most `duration`: `Err(Elapsed)` if it is not done by then.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(duration),
    }
}

/// Runs `future` until `deadline` at most.
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep_until(deadline),
    }
}

/// The future of [`timeout`].
#[derive(Debug)]
pub struct Timeout<F> {
    future: F,
    sleep: Sleep,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned (never moved out while pinned); `sleep` is
        // `Unpin` and not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        if let Poll::Ready(v) = future.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        Pin::new(&mut this.sleep)
            .poll(cx)
            .map(|()| Err(Elapsed(())))
    }
}

/// What an [`Interval`] does with ticks it missed because it was polled late.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks back to back until caught up (the schedule is kept).
    #[default]
    Burst,
    /// Start a new schedule from the late tick: the next one is a full period later.
    Delay,
    /// Drop the missed ticks: the next one is the next on the original schedule.
    Skip,
}

/// Ticks every `period`, the first tick at once.
///
/// # Panics
///
/// If `period` is zero, or outside a runtime.
pub fn interval(period: Duration) -> Interval {
    interval_at(now(), period)
}

/// Ticks every `period`, the first tick at `start`.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval period must be non-zero");
    Interval {
        sleep: sleep_until(start),
        period,
        behavior: MissedTickBehavior::default(),
    }
}

/// A periodic timer: see [`interval`].
#[derive(Debug)]
pub struct Interval {
    sleep: Sleep,
    period: Duration,
    behavior: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick; returns its scheduled time.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        ready!(Pin::new(&mut self.sleep).poll(cx));
        let scheduled = self.sleep.deadline();
        let now = self.sleep.timers.clock.now();
        let next = match self.behavior {
            MissedTickBehavior::Burst => after(scheduled, self.period),
            MissedTickBehavior::Delay => after(now, self.period),
            MissedTickBehavior::Skip => {
                let behind = now.saturating_duration_since(scheduled);
                let periods = behind.as_nanos() / self.period.as_nanos() + 1;
                let skip = self
                    .period
                    .checked_mul(u32::try_from(periods).unwrap_or(u32::MAX))
                    .unwrap_or(FAR);
                after(scheduled, skip)
            }
        };
        self.sleep.reset(next);
        Poll::Ready(scheduled)
    }

    /// Chooses what happens to missed ticks.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.behavior = behavior;
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}

/// Pauses the runtime's clock: time then moves only through [`advance`], or, when the runtime
/// has nothing else to do, straight to the next timer's deadline.
///
/// # Panics
///
/// Outside a current-thread runtime (with worker threads, "idle" is not well defined).
pub fn pause() {
    assert!(
        runtime_core::Handle::try_current().is_ok_and(|h| h.is_current_thread()),
        "facade::time::pause needs a current-thread runtime: build it with worker_threads(0)"
    );
    with_timers("facade::time::pause", |t| t.clock.pause());
}

/// Resumes real time after [`pause`].
pub fn resume() {
    crate::driver::with_current(|io| {
        if let Some(io) = io {
            io.timers.clock.resume();
        }
    });
}

/// Moves a paused clock forward by `by`, fires the timers now due, and yields so that their
/// tasks run.
pub async fn advance(by: Duration) {
    with_timers("facade::time::advance", |t| {
        assert!(
            t.clock.is_paused(),
            "facade::time::advance needs a paused clock: call pause() first"
        );
        t.clock.advance(by);
        t.fire_due();
    });
    crate::yield_now().await;
}

/// Timers registered in the current runtime right now (for tests and diagnostics).
pub fn timer_count() -> usize {
    crate::driver::with_current(|io| io.map_or(0, |io| io.timers.len()))
}

/// Timer slots allocated in the current runtime's wheel: it grows to the peak number of live
/// timers and no further (for tests and diagnostics).
pub fn timer_slots() -> usize {
    crate::driver::with_current(|io| io.map_or(0, |io| io.timers.capacity()))
}

/// The errors of this module (tokio's `time::error`).
pub mod error {
    pub use super::Elapsed;
}
