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

use std::time::{Duration, Instant};

use crate::park::Parking;

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
}

impl Service {
    pub(crate) fn new() -> Service {
        Service {
            ticks: 0,
            since_read: 0,
            every: 1,
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
    #[inline]
    pub(crate) fn after_poll(&mut self, parking: &Parking, now: Option<Instant>) -> bool {
        self.ticks += 1;
        if self.ticks >= DRIVER_INTERVAL {
            self.ticks = 0;
            parking.poll_driver();
            return true;
        }
        if !parking.has_timer_hint() {
            return false; // no driver: nothing to service
        }
        self.since_read += 1;
        let now = match now {
            Some(now) => now,
            None if self.since_read >= self.every => Instant::now(),
            None => return false,
        };
        self.adapt(now);
        // Just back from parking (where the driver was serviced): the period starts now.
        let since = *self.last_service.get_or_insert(now);
        if now.saturating_duration_since(since) >= SERVICE_PERIOD || parking.timer_due(now) {
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
