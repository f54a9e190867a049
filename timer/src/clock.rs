//! The runtime's clock and the conversion between instants and the wheel's microsecond ticks
//! (tick 0 is the clock's creation). Deadlines round up, the present rounds down, so a timer
//! never fires early.

use std::sync::Mutex;
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// `secs` seconds and `us` microseconds in microseconds, saturating, in 64-bit arithmetic
/// (a 128-bit division per timer cost more than the wheel's insertion).
fn micros(secs: u64, us: u32) -> u64 {
    secs.saturating_mul(1_000_000).saturating_add(u64::from(us))
}

/// Where "never" lands: far enough to never fire in practice, near enough not to overflow.
pub const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The runtime's clock: real time, or a paused time that moves only when told to (or, when the
/// runtime is idle, straight to the next deadline).
#[derive(Debug)]
pub struct Clock {
    base: Instant,
    paused: AtomicBool,
    /// Time since `base` while paused.
    offset: Mutex<Duration>,
}

impl Clock {
    /// A clock starting now, paused or running.
    pub fn new(paused: bool) -> Clock {
        Clock {
            base: Instant::now(),
            paused: AtomicBool::new(paused),
            offset: Mutex::new(Duration::ZERO),
        }
    }

    // Poisoning is ignored: the offset is a plain value, consistent after any panic.
    fn offset(&self) -> MutexGuard<'_, Duration> {
        self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The clock's time: real time, or the paused time.
    pub fn now(&self) -> Instant {
        if self.paused.load(Ordering::Acquire) {
            self.base + *self.offset()
        } else {
            Instant::now()
        }
    }

    /// Whether the clock is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Stops the clock at the present.
    pub fn pause(&self) {
        let mut off = self.offset();
        if !self.paused.load(Ordering::Acquire) {
            *off = Instant::now().saturating_duration_since(self.base);
            self.paused.store(true, Ordering::Release);
        }
    }

    /// Goes back to real time.
    pub fn resume(&self) {
        let _off = self.offset();
        self.paused.store(false, Ordering::Release);
    }

    /// Moves a paused clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut off = self.offset();
        *off = off.saturating_add(by);
    }

    /// Moves a paused clock forward to `t` (never backwards).
    pub fn advance_to(&self, t: Instant) {
        let mut off = self.offset();
        *off = (*off).max(t.saturating_duration_since(self.base));
    }

    /// The instant tick 0 stands for.
    pub fn base(&self) -> Instant {
        self.base
    }

    /// Microsecond tick of a deadline, rounded up (so a timer never fires early).
    pub fn tick_ceil(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.base);
        micros(d.as_secs(), d.subsec_nanos().div_ceil(1000))
    }

    /// Microsecond tick of the present, rounded down.
    pub fn tick_floor(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.base);
        micros(d.as_secs(), d.subsec_micros())
    }

    /// The instant of a tick (saturating far in the future).
    pub fn instant(&self, tick: u64) -> Instant {
        self.base
            .checked_add(Duration::from_micros(tick))
            .unwrap_or_else(|| self.base + FAR)
    }
}
