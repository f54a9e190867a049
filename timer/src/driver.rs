//! The timer driver: the wheel under a lock, the wakers of the timers in it, and the wake-at
//! handshake with the worker that parks in the reactor.
//!
//! # Parking with timers
//!
//! The idle worker that holds the runtime's driver fires due timers, then, under the wheel's
//! lock, reads the next deadline and publishes it in `wake_at` ([`Timers::wait_before_park`])
//! before it waits in the reactor for at most that long. A task that adds an earlier timer
//! does so under the same lock ([`Timers::register`]) and, seeing `wake_at` later than its
//! deadline, wakes the reactor. So the wait is always short enough.
//!
//! Busy workers learn the earliest deadline through the [`TimerHint`] this driver keeps up to
//! date, and poll the driver when it is due.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use runtime_core::{TimerHint, Unpark};

use crate::clock::Clock;
use crate::wheel::{Key, Wheel};

/// `Timers::wake_at` when no worker waits in the driver (tick 0 is the clock's base, never a
/// future deadline).
const NOT_PARKED: u64 = 0;

/// What the parking driver must do about timers.
#[derive(Debug)]
pub struct Wait {
    /// How long it may wait (the caller's limit, or less for the next timer).
    pub timeout: Option<Duration>,
    /// The next timer's deadline, if any.
    pub deadline: Option<Instant>,
}

/// The runtime's timers: the wheel, the clock, and how to wake the parked driver.
pub struct Timers {
    wheel: Mutex<Wheel<Waker>>,
    pub clock: Clock,
    /// The tick until which the driver is parked: `NOT_PARKED`, `u64::MAX` (parked with no timer),
    /// or the next deadline. Written and compared under the wheel's lock.
    wake_at: AtomicU64,
    pub unpark: Arc<dyn Unpark>,
    /// The earliest deadline, for workers that check for due timers between polls.
    pub hint: Arc<TimerHint>,
    closed: AtomicBool,
    /// Whether the wheel may hold timers (written under its lock, only when it changes; a stale
    /// `true` costs a lock): a busy worker's driver poll skips the lock when it holds none.
    armed: AtomicBool,
    /// The wheel's elapsed tick after its last poll: every timer in the wheel with a deadline
    /// at or before it has fired (none is inserted at or before it: see
    /// [`register`](Self::register)). Written under the wheel's lock; read without it by
    /// [`cancel_at`](Self::cancel_at).
    fired_through: AtomicU64,
}

impl std::fmt::Debug for Timers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timers")
            .field("clock", &self.clock)
            .field("timers", &self.len())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// A tick (microseconds since the clock's base) in nanoseconds since the same base.
fn tick_nanos(tick: u64) -> u64 {
    tick.saturating_mul(1000)
}

impl Timers {
    /// Timers on a clock that starts paused or running; `unpark` wakes the worker that waits
    /// in the reactor.
    pub fn new(paused: bool, unpark: Arc<dyn Unpark>) -> Timers {
        let clock = Clock::new(paused);
        Timers {
            wheel: Mutex::new(Wheel::new()),
            // The hint counts from the clock's base, so that a tick is published with a
            // multiplication rather than two conversions through an `Instant`.
            hint: Arc::new(TimerHint::with_base(clock.base())),
            clock,
            wake_at: AtomicU64::new(NOT_PARKED),
            unpark,
            closed: AtomicBool::new(false),
            armed: AtomicBool::new(false),
            fired_through: AtomicU64::new(0),
        }
    }

    // Poisoning is ignored: every critical section leaves the wheel consistent (a waker's
    // `wake` runs outside the lock).
    fn wheel(&self) -> MutexGuard<'_, Wheel<Waker>> {
        self.wheel.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every timer whose deadline has passed; returns how many.
    ///
    /// With no timer in the wheel it takes no lock. A timer registered meanwhile is not missed:
    /// it is not due yet (a sleep registers only a deadline still ahead), and the driver takes
    /// the lock before it parks ([`wait_before_park`](Self::wait_before_park)).
    pub fn fire_due(&self) -> usize {
        if !self.armed.load(Ordering::Acquire) {
            return 0;
        }
        let now = self.clock.tick_floor(self.clock.now());
        let mut wakers = Vec::new();
        {
            let mut wheel = self.wheel();
            wheel.poll(now, |w| wakers.push(w));
            // Every timer at or before `now` has fired (`now` rather than the wheel's time,
            // which shutdown moved to the end of time without the clock).
            let through = now.min(wheel.elapsed());
            if through > self.fired_through.load(Ordering::Relaxed) {
                self.fired_through.store(through, Ordering::Release);
            }
            self.publish_hint(wheel.next_deadline());
            if wheel.is_empty() {
                self.armed.store(false, Ordering::Release);
            }
        }
        let n = wakers.len();
        for w in wakers {
            runtime_core::fault::wake_contained(w, "the waker of a timer");
        }
        n
    }

    /// Tells busy workers the earliest deadline (not with a paused clock: its deadlines are not
    /// real times).
    fn publish_hint(&self, next: Option<u64>) {
        if self.clock.is_paused() {
            self.hint.set(None);
        } else {
            self.hint.set_since_base(next.map(tick_nanos));
        }
    }

    /// Publishes the next deadline before the driver waits (the handshake in the module docs).
    pub fn wait_before_park(&self, timeout: Option<Duration>) -> Wait {
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

    /// The driver is back from waiting: registrations no longer need to wake it.
    pub fn done_parking(&self) {
        self.wake_at.store(NOT_PARKED, Ordering::SeqCst);
    }

    /// Registers (or refreshes) a timer's waker for `tick`; `entry` holds the timer's key
    /// between calls. Wakes the driver if it sleeps past `tick`. Returns whether the timer is
    /// pending; `false`: it is due now (the caller completes it, nothing wakes `waker`).
    ///
    /// A `tick` the wheel has already passed (the deadline was already behind when the timer
    /// was made, or another worker's driver poll read a later clock than the caller) is due:
    /// nothing is registered, so that every timer in the wheel fires by the time its tick is
    /// passed (what [`cancel_at`](Self::cancel_at) relies on). So a caller that knows its
    /// deadline was ahead when it made it need not read the clock to register: a deadline
    /// that has passed since is due here, or fires at the driver's next service.
    #[must_use = "a timer that is not pending is due now: complete it"]
    pub fn register(&self, entry: &mut Option<Key>, tick: u64, waker: &Waker) -> bool {
        let mut wheel = self.wheel();
        if let Some(key) = *entry {
            // The key is generational: once its timer fired, it matches nothing.
            if let Some(w) = wheel.get_mut(key) {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                return true;
            }
        }
        if tick <= wheel.elapsed() {
            *entry = None;
            return false;
        }
        *entry = Some(wheel.insert(tick, waker.clone()));
        if !self.armed.load(Ordering::Relaxed) {
            self.armed.store(true, Ordering::Release);
        }
        if !self.clock.is_paused() {
            self.hint.lower_since_base(tick_nanos(tick));
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
        true
    }

    /// Cancels the timer in `entry`, if it has not fired.
    pub fn cancel(&self, entry: &mut Option<Key>) {
        if let Some(key) = entry.take() {
            self.wheel().remove(key);
        }
    }

    /// Whether the timer registered for `tick` has fired: the driver has fired every timer
    /// through `tick` (so the clock has passed it too). No lock, no clock read.
    #[inline]
    pub fn has_fired(&self, tick: u64) -> bool {
        self.fired_through.load(Ordering::Acquire) >= tick
    }

    /// Cancels the timer in `entry`, registered for `tick`, if it has not fired; without the
    /// lock when it has.
    #[inline]
    pub fn cancel_at(&self, entry: &mut Option<Key>, tick: u64) {
        if entry.is_some() && self.has_fired(tick) {
            *entry = None;
        }
        self.cancel(entry);
    }

    /// Number of timers registered (for tests).
    pub fn len(&self) -> usize {
        self.wheel().len()
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.wheel().is_empty()
    }

    /// Entry slots allocated in the wheel (its peak number of timers).
    pub fn capacity(&self) -> usize {
        self.wheel().capacity()
    }

    /// Whether [`close`](Timers::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The runtime is gone: wakes every timer so that its future sees the closed driver.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let wakers: Vec<Waker> = {
            let mut wheel = self.wheel();
            let mut out = Vec::new();
            wheel.poll(u64::MAX, |w| out.push(w));
            out
        };
        for w in wakers {
            runtime_core::fault::wake_contained(w, "the waker of a timer (at shutdown)");
        }
    }
}
