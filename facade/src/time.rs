//! Time: [`sleep`], [`sleep_until`], [`timeout`], [`interval`], and a clock that tests can
//! pause and advance.
//!
//! Timers live in the runtime's hierarchical timing wheel (crate `timer`) with microsecond
//! ticks; an idle runtime waits in the reactor exactly until the next deadline (a timerfd, not
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use runtime_core::Unpark;
use timer::{Key, Wheel};

/// `Timers::wake_at` when no worker waits in the driver (tick 0 is the clock's base, never a
/// future deadline).
const NOT_PARKED: u64 = 0;

/// Where "never" lands: far enough to never fire in practice, near enough not to overflow.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The runtime's clock: real time, or a paused time that moves only when told to (or, when the
/// runtime is idle, straight to the next deadline).
pub(crate) struct Clock {
    base: Instant,
    paused: AtomicBool,
    /// Time since `base` while paused.
    offset: Mutex<Duration>,
}

impl Clock {
    fn offset(&self) -> MutexGuard<'_, Duration> {
        self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn now(&self) -> Instant {
        if self.paused.load(Ordering::Acquire) {
            self.base + *self.offset()
        } else {
            Instant::now()
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    fn pause(&self) {
        let mut off = self.offset();
        if !self.paused.load(Ordering::Acquire) {
            *off = Instant::now().saturating_duration_since(self.base);
            self.paused.store(true, Ordering::Release);
        }
    }

    fn resume(&self) {
        let _off = self.offset();
        self.paused.store(false, Ordering::Release);
    }

    fn advance(&self, by: Duration) {
        let mut off = self.offset();
        *off = off.saturating_add(by);
    }

    /// Moves a paused clock forward to `t` (never backwards).
    pub(crate) fn advance_to(&self, t: Instant) {
        let mut off = self.offset();
        *off = (*off).max(t.saturating_duration_since(self.base));
    }

    /// Microsecond tick of a deadline, rounded up (so a timer never fires early).
    fn tick_ceil(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.base);
        let us = d.as_micros() + u128::from(d.subsec_nanos() % 1000 != 0);
        u64::try_from(us).unwrap_or(u64::MAX)
    }

    /// Microsecond tick of the present, rounded down.
    fn tick_floor(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_micros()).unwrap_or(u64::MAX)
    }

    fn instant(&self, tick: u64) -> Instant {
        self.base
            .checked_add(Duration::from_micros(tick))
            .unwrap_or_else(|| self.base + FAR)
    }
}

/// What the parking driver must do about timers.
pub(crate) struct Wait {
    /// How long it may wait (the caller's limit, or less for the next timer).
    pub(crate) timeout: Option<Duration>,
    /// The next timer's deadline, if any.
    pub(crate) deadline: Option<Instant>,
}

/// The runtime's timers: the wheel, the clock, and how to wake the parked driver.
pub(crate) struct Timers {
    wheel: Mutex<Wheel<(u64, Waker)>>,
    pub(crate) clock: Clock,
    /// The tick until which the driver is parked: `NOT_PARKED`, `u64::MAX` (parked with no timer),
    /// or the next deadline. Written and compared under the wheel's lock.
    wake_at: AtomicU64,
    next_id: AtomicU64,
    pub(crate) unpark: Arc<dyn Unpark>,
    /// The earliest deadline, for workers that check for due timers between polls.
    pub(crate) hint: Arc<runtime_core::TimerHint>,
    closed: AtomicBool,
}

impl Timers {
    pub(crate) fn new(paused: bool, unpark: Arc<dyn Unpark>) -> Timers {
        let base = Instant::now();
        Timers {
            wheel: Mutex::new(Wheel::new()),
            clock: Clock {
                base,
                paused: AtomicBool::new(paused),
                offset: Mutex::new(Duration::ZERO),
            },
            wake_at: AtomicU64::new(NOT_PARKED),
            next_id: AtomicU64::new(1),
            unpark,
            hint: Arc::default(),
            closed: AtomicBool::new(false),
        }
    }

    fn wheel(&self) -> MutexGuard<'_, Wheel<(u64, Waker)>> {
        self.wheel.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every timer whose deadline has passed.
    pub(crate) fn fire_due(&self) -> usize {
        let now = self.clock.tick_floor(self.clock.now());
        let mut wakers = Vec::new();
        {
            let mut wheel = self.wheel();
            wheel.poll(now, |(_, w)| wakers.push(w));
            self.publish_hint(wheel.next_deadline());
        }
        let n = wakers.len();
        wakers.into_iter().for_each(Waker::wake);
        n
    }

    /// Tells busy workers the earliest deadline (not with a paused clock: its deadlines are not
    /// real times).
    fn publish_hint(&self, next: Option<u64>) {
        if self.clock.is_paused() {
            self.hint.set(None);
        } else {
            self.hint.set(next.map(|t| self.clock.instant(t)));
        }
    }

    /// Publishes the next deadline before the driver waits (see driver.rs).
    pub(crate) fn wait_before_park(&self, timeout: Option<Duration>) -> Wait {
        let wheel = self.wheel();
        let next = wheel.next_deadline();
        self.wake_at
            .store(next.unwrap_or(u64::MAX), Ordering::SeqCst);
        drop(wheel);
        let deadline = next.map(|t| self.clock.instant(t));
        let until_timer = deadline.map(|d| d.saturating_duration_since(self.clock.now()));
        let timeout = match (timeout, until_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Wait { timeout, deadline }
    }

    pub(crate) fn done_parking(&self) {
        self.wake_at.store(NOT_PARKED, Ordering::SeqCst);
    }

    /// Registers (or refreshes) a timer's waker; wakes the driver if it sleeps past `tick`.
    fn register(&self, entry: &mut Option<(Key, u64)>, tick: u64, waker: &Waker) {
        let mut wheel = self.wheel();
        if let Some((key, id)) = *entry {
            match wheel.get_mut(key) {
                Some((i, w)) if *i == id => {
                    if !w.will_wake(waker) {
                        *w = waker.clone();
                    }
                    return;
                }
                _ => *entry = None, // fired, and the slot may hold another timer now
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        *entry = Some((wheel.insert(tick, (id, waker.clone())), id));
        if !self.clock.is_paused() {
            self.hint.lower(self.clock.instant(tick));
        }
        // Only a driver that is parked past this deadline needs waking; one that is not parked
        // reads the wheel before it parks. Once woken it is as good as not parked (it will read
        // the wheel again), so later registrations do not wake it again.
        let parked_until = self.wake_at.load(Ordering::SeqCst);
        let wake = parked_until != NOT_PARKED && tick < parked_until;
        if wake {
            self.wake_at.store(NOT_PARKED, Ordering::SeqCst);
        }
        drop(wheel);
        if wake {
            self.unpark.unpark();
        }
    }

    fn cancel(&self, entry: &mut Option<(Key, u64)>) {
        if let Some((key, id)) = entry.take() {
            let mut wheel = self.wheel();
            if matches!(wheel.get_mut(key), Some((i, _)) if *i == id) {
                wheel.remove(key);
            }
        }
    }

    /// Number of timers registered (for tests).
    pub(crate) fn len(&self) -> usize {
        self.wheel().len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.wheel().capacity()
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let wakers: Vec<Waker> = {
            let mut wheel = self.wheel();
            let mut out = Vec::new();
            wheel.poll(u64::MAX, |(_, w)| out.push(w));
            out
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

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
    }
}

/// Completes at `deadline` (never earlier).
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        timers: timers(),
        entry: None,
    }
}

/// The future of [`sleep`] and [`sleep_until`]. Dropping it cancels the timer.
pub struct Sleep {
    deadline: Instant,
    timers: Arc<Timers>,
    entry: Option<(Key, u64)>,
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
        self.timers.cancel(&mut self.entry);
        self.deadline = deadline;
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        ready!(runtime_core::coop::poll_proceed(cx));
        let this = &mut *self;
        if this.timers.clock.now() >= this.deadline {
            this.timers.cancel(&mut this.entry);
            return Poll::Ready(());
        }
        if this.timers.closed.load(Ordering::Acquire) {
            panic!("the runtime that drives this timer has shut down");
        }
        let tick = this.timers.clock.tick_ceil(this.deadline);
        this.timers.register(&mut this.entry, tick, cx.waker());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.timers.cancel(&mut self.entry);
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
