//! When a busy worker services the driver (fires due timers, dispatches ready I/O) between two
//! polls. Core's own mechanism, the same for every policy.
//!
//! - Every [`DRIVER_INTERVAL`] polls, whatever they cost (I/O readiness is never starved by a
//!   stream of short polls).
//! - By elapsed time: at least every [`SERVICE_PERIOD`] of busy time, and as soon as the
//!   earliest timer is due. That needs the time, and a clock read per poll would cost about
//!   20 ns on polls of 100 ns; so the worker reads the clock every `every` polls and adapts
//!   `every` to the poll times it sees (as work-stealing adapts its global-queue interval):
//!   halved while a window of `every` polls lasts more than half a period, doubled (up to
//!   [`MAX_EVERY`]) while it lasts less than an eighth. Long polls are thus checked after every
//!   poll, short ones about every microsecond or two. A worker whose polls jump from short to
//!   long notices within `MAX_EVERY` polls, then within one. When the policy times its polls
//!   anyway (`Hooks::account_polls`), that time is used and nothing is read.
//! - But while the driver watches no I/O source ([`IoHint`]) and publishes its timers
//!   ([`TimerHint`]), only when a timer is due: nothing else can be ready, and each of the
//!   other services is a system call (a non-blocking `epoll_wait`) that finds nothing. With no
//!   timer either, the worker does not read the clock. A program without sockets thus makes no
//!   system call while it is busy; one source (a listener) brings the count and the period
//!   back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::park::{IoHint, Parking, TimerHint};

/// How many polls a busy worker makes between two non-blocking driver polls.
pub(crate) const DRIVER_INTERVAL: u32 = 61;

/// The most busy time between two services of the driver (about: one poll can be longer).
pub(crate) const SERVICE_PERIOD: Duration = Duration::from_millis(1);

/// The most polls between two clock reads.
const MAX_EVERY: u32 = 16;

/// One worker's service schedule.
pub(crate) struct Service {
    /// Polls since the last driver poll by count.
    ticks: u32,
    /// Polls since the last clock read, and how many polls a read may wait.
    since_read: u32,
    every: u32,
    /// The last clock read (`None` after parking: the next read starts a new window).
    last_read: Option<Instant>,
    /// When this worker last serviced the driver.
    last_service: Option<Instant>,
    /// The driver's next deadline, if it publishes one.
    hint: Option<Arc<TimerHint>>,
    /// Whether the driver watches I/O, if it publishes that (only read with a `hint`).
    io: Option<Arc<IoHint>>,
}

impl Service {
    pub(crate) fn new(hint: Option<Arc<TimerHint>>, io: Option<Arc<IoHint>>) -> Service {
        Service {
            // No driver, no clock to read: the slow path runs by count only.
            every: if hint.is_some() { 1 } else { MAX_EVERY },
            hint,
            io,
            ticks: 0,
            since_read: 0,
            last_read: None,
            last_service: None,
        }
    }

    /// The worker parked (and so serviced the driver, or another worker did): the time until
    /// it resumes is not busy time.
    #[inline]
    pub(crate) fn parked(&mut self) {
        self.last_read = None;
        self.last_service = None;
        self.since_read = 0;
    }

    /// After a poll: services the driver if it is time; whether it did. `now` is the end of
    /// the poll if the caller read the clock anyway.
    #[inline(always)]
    pub(crate) fn after_poll(&mut self, parking: &Parking, now: Option<Instant>) -> bool {
        // The common case in the caller's registers: two counters, no clock, no call.
        self.ticks += 1;
        self.since_read += 1;
        if self.ticks < DRIVER_INTERVAL && now.is_none() {
            if self.since_read < self.every {
                return false;
            }
            // Two loads, still no call: this is every poll of a busy worker in a program
            // without sockets and timers, since `every` stays where it was while no clock is
            // read.
            if self.rest_if_quiet() {
                return false;
            }
        }
        self.after_poll_slow(parking, now)
    }

    /// Whether the driver says that nothing can be ready: it watches no I/O and holds no
    /// timer (`false` if it does not publish both). Then there is no clock to read either,
    /// and the next read opens a new window.
    #[inline(always)]
    fn rest_if_quiet(&mut self) -> bool {
        let quiet = match (&self.hint, &self.io) {
            (Some(hint), Some(io)) => !io.is_watching() && !hint.has_timer(),
            _ => false,
        };
        if quiet {
            self.since_read = 0;
            self.last_read = None;
        }
        quiet
    }

    #[inline(never)]
    fn after_poll_slow(&mut self, parking: &Parking, now: Option<Instant>) -> bool {
        // I/O could be ready (or the driver does not say what it has): services by count and
        // by period. Otherwise only a due timer calls for one.
        let io = self.hint.is_none() || self.io.as_ref().is_none_or(|io| io.is_watching());
        if self.ticks >= DRIVER_INTERVAL {
            self.ticks = 0;
            if io {
                parking.poll_driver();
                return true;
            }
        }
        if self.rest_if_quiet() {
            return false;
        }
        let Some(hint) = &self.hint else {
            self.since_read = 0;
            return false; // no driver: nothing to service
        };
        let now = match now {
            Some(now) => now,
            None if self.since_read >= self.every => Instant::now(),
            None => return false,
        };
        let due = hint.is_due(now);
        self.adapt(now);
        // Just back from parking (where the driver was serviced): the period starts now.
        let since = *self.last_service.get_or_insert(now);
        if (io && now.saturating_duration_since(since) >= SERVICE_PERIOD) || due {
            self.last_service = Some(now);
            parking.poll_driver();
            return true;
        }
        false
    }

    /// A clock read at `now` closes a window of `since_read` polls: adapts `every`.
    #[inline]
    fn adapt(&mut self, now: Instant) {
        if let Some(last) = self.last_read {
            let window = now.saturating_duration_since(last);
            if window > SERVICE_PERIOD / 2 {
                self.every = (self.every / 2).max(1);
            } else if window < SERVICE_PERIOD / 8 {
                self.every = (self.every * 2).min(MAX_EVERY);
            }
        }
        self.last_read = Some(now);
        self.since_read = 0;
    }
}

/// Windows of polls longer than this are timed poll by poll.
const EXACT_ABOVE: Duration = Duration::from_micros(20);
/// Polls shorter than this on average let the window grow (doubling, up to [`MAX_EVERY`]).
const SHORT_POLL: Duration = Duration::from_micros(2);

/// Poll times for a policy that accounts them (`Hooks::account_polls`), at the cost of a
/// clock read every few polls rather than two per poll.
///
/// A window of `every` back-to-back polls is timed as a whole: each poll but the last is
/// charged the average poll time of the previous window, and the last the rest of the window's
/// time, so what is charged adds up to the time that passed (the policy's shares stay exact in
/// total; only how a window's time is split between its polls is estimated). `every` is 1, an
/// exact time for each poll, as soon as a window lasts more than 20 us, and doubles up to 16
/// while polls average under 2 us: a long poll is charged to its own task, and short ones,
/// where two clock reads would cost as much as the poll, are timed in bulk. The window starts
/// where the previous poll ended; anything else the loop does (a driver service, the main
/// future, parking) ends it ([`interrupt`](Self::interrupt)).
pub(crate) struct PollClock {
    start: Option<Instant>,
    polls: u32,
    every: u32,
    avg: Duration,
    charged: Duration,
}

impl PollClock {
    pub(crate) fn new() -> PollClock {
        PollClock {
            start: None,
            polls: 0,
            every: 1,
            avg: Duration::ZERO,
            charged: Duration::ZERO,
        }
    }

    /// Before a poll: opens a window if none is open.
    #[inline]
    pub(crate) fn before_poll(&mut self) {
        if self.start.is_none() {
            self.start = Some(Instant::now());
            self.polls = 0;
            self.charged = Duration::ZERO;
        }
    }

    /// After a poll: what to charge it, and the time if the clock was read.
    #[inline]
    pub(crate) fn after_poll(&mut self) -> (Duration, Option<Instant>) {
        self.polls += 1;
        let Some(start) = self.start else {
            return (self.avg, None); // not reached: `before_poll` opened a window
        };
        if self.polls < self.every {
            self.charged += self.avg;
            return (self.avg, None);
        }
        let now = Instant::now();
        let total = now.saturating_duration_since(start);
        let charge = total.saturating_sub(self.charged);
        self.avg = total / self.polls;
        if total > EXACT_ABOVE {
            self.every = 1;
        } else if self.avg < SHORT_POLL {
            self.every = (self.every * 2).min(MAX_EVERY);
        }
        self.start = Some(now);
        self.polls = 0;
        self.charged = Duration::ZERO;
        (charge, Some(now))
    }

    /// Something other than back-to-back polls ran: the next poll opens a new window.
    #[inline]
    pub(crate) fn interrupt(&mut self) {
        self.start = None;
    }
}

#[cfg(all(test, not(rt_loom)))]
mod tests {
    use super::*;
    use crate::park::{Driver, Unpark};
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    /// A driver that counts its non-blocking polls and publishes the given hints.
    struct Counting {
        polls: Arc<AtomicUsize>,
        timers: Option<Arc<TimerHint>>,
        io: Option<Arc<IoHint>>,
    }

    struct NoUnpark;
    impl Unpark for NoUnpark {
        fn unpark(&self) {}
    }

    impl Driver for Counting {
        fn park(&mut self, _timeout: Option<Duration>) {
            self.polls.fetch_add(1, Relaxed);
        }
        fn unparker(&self) -> Arc<dyn Unpark> {
            Arc::new(NoUnpark)
        }
        fn timer_hint(&self) -> Option<Arc<TimerHint>> {
            self.timers.clone()
        }
        fn io_hint(&self) -> Option<Arc<IoHint>> {
            self.io.clone()
        }
    }

    /// How many times `polls` back-to-back task polls service a driver that publishes these
    /// hints.
    fn services(polls: u32, timers: Option<Arc<TimerHint>>, io: Option<Arc<IoHint>>) -> usize {
        let count = Arc::new(AtomicUsize::new(0));
        let parking = Parking::new(
            1,
            Some(Box::new(Counting {
                polls: count.clone(),
                timers,
                io,
            })),
        );
        let mut service = Service::new(parking.timer_hint(), parking.io_hint());
        for _ in 0..polls {
            service.after_poll(&parking, None);
        }
        count.load(Relaxed)
    }

    fn io_hint(watching: bool) -> Option<Arc<IoHint>> {
        let hint = IoHint::default();
        hint.set_watching(watching);
        Some(Arc::new(hint))
    }

    /// 100 counted services' worth of polls. They take well under the service period, but a
    /// preempted thread may see a period pass now and then: the bounds leave room for that.
    const POLLS: u32 = 100 * DRIVER_INTERVAL;

    #[test]
    fn a_driver_watching_io_is_serviced_by_count() {
        let timers = Some(Arc::new(TimerHint::default()));
        assert!(services(POLLS, timers.clone(), io_hint(true)) >= 100);
        // One that does not say is serviced as if it watched I/O.
        assert!(services(POLLS, timers, None) >= 100);
    }

    #[test]
    fn a_driver_without_io_is_serviced_only_when_a_timer_is_due() {
        let timers = Arc::new(TimerHint::default());
        let n = services(POLLS, Some(timers.clone()), io_hint(false));
        assert!(n < 10, "{n} services without I/O or a due timer");
        timers.set(Some(Instant::now()));
        let n = services(POLLS, Some(timers), io_hint(false));
        assert!(n >= 100, "a due timer: {n} services");
    }

    #[test]
    fn a_timer_published_after_quiet_polls_is_serviced_at_the_next_poll() {
        let count = Arc::new(AtomicUsize::new(0));
        let timers = Arc::new(TimerHint::default());
        let parking = Parking::new(
            1,
            Some(Box::new(Counting {
                polls: count.clone(),
                timers: Some(timers.clone()),
                io: io_hint(false),
            })),
        );
        let mut service = Service::new(parking.timer_hint(), parking.io_hint());
        // Fewer than the count that services anyway: only the hint can call for this one.
        for _ in 0..DRIVER_INTERVAL / 2 {
            assert!(!service.after_poll(&parking, None), "nothing to service");
        }
        assert_eq!(count.load(Relaxed), 0);
        // A task polled here sleeps until now: the very next poll's end services the driver.
        timers.lower(Instant::now());
        assert!(
            service.after_poll(&parking, None),
            "a due timer is serviced"
        );
        assert_eq!(count.load(Relaxed), 1);
    }

    #[test]
    fn without_a_timer_hint_the_io_hint_is_not_enough_to_skip() {
        // Timers would then only be fired by these services.
        assert!(services(POLLS, None, io_hint(false)) >= 100);
    }
}
