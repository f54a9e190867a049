//! Parking idle workers, and the [`Driver`] abstraction that an I/O and timer driver implements.
//!
//! # Protocol
//!
//! Each worker has a parker with four states: `EMPTY`, `PARKED_CONDVAR`, `PARKED_DRIVER` and
//! `NOTIFIED`. `unpark` swaps in `NOTIFIED` and, depending on what it replaced, signals the
//! condvar (taking its lock first, so the signal cannot slip in between the sleeper's state
//! change and its wait) or unparks the driver. `park` first consumes a pending `NOTIFIED`
//! (an unpark that came before the park is never lost), then:
//!
//! 1. if the runtime has a driver and nobody holds it, takes it and waits inside
//!    [`Driver::park`]: an idle worker thus sleeps in the I/O poll, with the next timer
//!    deadline as its timeout, and I/O readiness wakes it directly;
//! 2. otherwise sleeps on its condvar.
//!
//! Either way it returns to `EMPTY` on the way out. Spurious returns are allowed: the worker
//! loop looks for work after every return.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use crate::sync::{AtomicUsize, Condvar, Mutex, lock};

/// What drives I/O and timers for a runtime: implemented by the facade over the reactor and the
/// timer wheel. Exactly one worker at a time holds it.
pub trait Driver: Send + 'static {
    /// Waits until an event arrives, [`Unpark::unpark`] is called, or `timeout` passes
    /// (`None`: no limit; `Some(ZERO)`: do not block), and dispatches what is ready (waking the
    /// tasks waiting on it).
    fn park(&mut self, timeout: Option<Duration>);

    /// A handle that makes a concurrent or later [`park`](Driver::park) return promptly.
    fn unparker(&self) -> Arc<dyn Unpark>;

    /// Where the driver publishes its earliest timer deadline, so that workers that time their
    /// polls can notice a due timer between any two polls. `None` (the default): they rely on
    /// the periodic non-blocking poll.
    fn timer_hint(&self) -> Option<Arc<TimerHint>> {
        None
    }

    /// Where the driver publishes whether it watches any I/O source. With none, nothing can
    /// become ready, so a busy worker skips its periodic non-blocking poll (a system call every
    /// few dozen polls) and services the driver only when a timer is due; for that the driver
    /// must also publish a [`timer_hint`](Driver::timer_hint). `None` (the default): busy
    /// workers always poll.
    fn io_hint(&self) -> Option<Arc<IoHint>> {
        None
    }
}

/// Whether a driver watches any I/O source, published for busy workers (see
/// [`Driver::io_hint`]). It starts as watching, so a driver that never updates it is polled
/// as if it had sources.
///
/// ```
/// let hint = runtime_core::IoHint::default();
/// assert!(hint.is_watching());
/// hint.set_watching(false); // the last source was deregistered
/// assert!(!hint.is_watching());
/// ```
#[derive(Debug)]
#[repr(align(128))]
pub struct IoHint {
    /// Read by busy workers every few dozen polls: on a line of its own, written only when it
    /// changes (not on every registration).
    watching: std::sync::atomic::AtomicBool,
}

impl Default for IoHint {
    fn default() -> Self {
        IoHint {
            watching: std::sync::atomic::AtomicBool::new(true),
        }
    }
}

impl IoHint {
    /// Publishes whether any I/O source is registered. A driver calls it where its count of
    /// sources changes (under the lock that orders the changes, so the last word is the true
    /// one); a worker that reads a stale value polls once too often or a few dozen polls late.
    pub fn set_watching(&self, watching: bool) {
        if self.watching.load(std::sync::atomic::Ordering::Relaxed) != watching {
            self.watching
                .store(watching, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether any I/O source is registered, as last published.
    #[inline]
    pub fn is_watching(&self) -> bool {
        self.watching.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The earliest timer deadline, published by a driver for busy workers: a worker that has the
/// time anyway (it times its polls) compares it and polls the driver when a timer is due.
#[derive(Debug)]
#[repr(align(128))]
pub struct TimerHint {
    base: Instant,
    /// Nanoseconds since `base`; `u64::MAX`: no timer. Read by every busy worker every few
    /// polls: on a cache line of its own, and written only when it changes.
    next: std::sync::atomic::AtomicU64,
}

impl Default for TimerHint {
    fn default() -> Self {
        TimerHint::with_base(Instant::now())
    }
}

impl TimerHint {
    /// A hint whose deadlines count from `base`: a driver whose clock has that base publishes
    /// with [`set_since_base`](Self::set_since_base) and
    /// [`lower_since_base`](Self::lower_since_base), without converting instants.
    pub fn with_base(base: Instant) -> TimerHint {
        TimerHint {
            base,
            next: std::sync::atomic::AtomicU64::new(u64::MAX),
        }
    }

    fn nanos(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.base);
        d.as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(d.subsec_nanos()))
    }

    /// Publishes the earliest deadline (`None`: no timer).
    pub fn set(&self, deadline: Option<Instant>) {
        self.set_since_base(deadline.map(|d| self.nanos(d)));
    }

    /// Lowers the published deadline to `deadline` if that is earlier.
    pub fn lower(&self, deadline: Instant) {
        self.lower_since_base(self.nanos(deadline));
    }

    /// [`set`](Self::set), with the deadline in nanoseconds since the hint's base.
    pub fn set_since_base(&self, nanos: Option<u64>) {
        let v = nanos.map_or(u64::MAX, |n| n.min(u64::MAX - 1));
        // A store of the same value would still take the line from every worker reading it.
        if self.next.load(std::sync::atomic::Ordering::Relaxed) != v {
            self.next.store(v, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// [`lower`](Self::lower), with the deadline in nanoseconds since the hint's base.
    pub fn lower_since_base(&self, nanos: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let v = nanos.min(u64::MAX - 1);
        // Most deadlines are later than the published one and change nothing: a load then,
        // which leaves the line shared with the workers reading it. A `fetch_min` is a
        // bus-locked instruction that takes the line from them even when it changes nothing.
        // Still an atomic minimum: a deadline the load finds no earlier is a minimum that
        // takes effect at the load.
        if v < self.next.load(Relaxed) {
            self.next.fetch_min(v, Relaxed);
        }
    }

    /// Whether any timer is published (due or not).
    #[inline]
    pub fn has_timer(&self) -> bool {
        self.next.load(std::sync::atomic::Ordering::Relaxed) != u64::MAX
    }

    /// Whether a timer is due at `now`.
    #[inline]
    pub fn is_due(&self, now: Instant) -> bool {
        let next = self.next.load(std::sync::atomic::Ordering::Relaxed);
        next != u64::MAX && self.nanos(now) >= next
    }
}

/// Wakes a thread blocked in [`Driver::park`].
pub trait Unpark: Send + Sync + 'static {
    /// Makes the current or next `park` return.
    fn unpark(&self);
}

/// Neither parked nor notified: the worker runs (or is about to park). `park` moves it to one
/// of the two parked states with a CAS, so an `unpark` that came first (state `NOTIFIED`) is
/// never overwritten.
const EMPTY: usize = 0;
/// Asleep on the condvar. Set only while holding the parker's lock, and the sleeper waits
/// without releasing it in between: an `unpark` that sees this state takes the lock before it
/// signals, so its signal cannot fall between the state change and the wait.
const PARKED_CONDVAR: usize = 1;
/// Asleep inside [`Driver::park`]. An `unpark` that sees this state wakes the driver through
/// its [`Unpark`] handle (the reactor's waker), which makes a current or the next wait return.
const PARKED_DRIVER: usize = 2;
/// An `unpark` is pending: the next (or current) `park` consumes it and returns. Only the
/// parked worker itself moves the state away from `NOTIFIED` (back to `EMPTY`).
const NOTIFIED: usize = 3;

struct WorkerParker {
    state: AtomicUsize,
    lock: Mutex<()>,
    cvar: Condvar,
}

/// The driver, taken by one idle worker at a time, and its unpark handle.
struct SharedDriver {
    driver: std::sync::Mutex<Box<dyn Driver>>,
    unpark: Arc<dyn Unpark>,
}

pub(crate) struct Parking {
    driver: Option<SharedDriver>,
    hint: Option<Arc<TimerHint>>,
    io_hint: Option<Arc<IoHint>>,
    workers: Box<[WorkerParker]>,
}

impl fmt::Debug for Parking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parking")
            .field("driver", &self.driver.is_some())
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl SharedDriver {
    /// The driver, unless another worker holds it. A panic in a driver is caught (`park`
    /// below), so the lock is never poisoned by one; it would be by a panic of ours in between,
    /// and the driver stays usable then (its state is its own), so poisoning is cleared.
    fn try_take(&self) -> Option<std::sync::MutexGuard<'_, Box<dyn Driver>>> {
        match self.driver.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::WouldBlock) => None,
            Err(std::sync::TryLockError::Poisoned(e)) => {
                self.driver.clear_poison();
                Some(e.into_inner())
            }
        }
    }

    /// Runs the driver; a panic out of it (a waker it woke, a policy it scheduled into, its own
    /// code) is caught and reported, and the worker goes on.
    fn park(&self, driver: &mut dyn Driver, timeout: Option<Duration>) {
        let parked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| driver.park(timeout)));
        if let Err(payload) = parked {
            crate::fault::report_panic("the I/O and timer driver", &*payload);
        }
    }
}

impl Parking {
    pub(crate) fn new(workers: usize, driver: Option<Box<dyn Driver>>) -> Parking {
        Parking {
            hint: driver.as_ref().and_then(|d| d.timer_hint()),
            io_hint: driver.as_ref().and_then(|d| d.io_hint()),
            driver: driver.map(|d| SharedDriver {
                unpark: d.unparker(),
                driver: std::sync::Mutex::new(d),
            }),
            workers: (0..workers)
                .map(|_| WorkerParker {
                    state: AtomicUsize::new(EMPTY),
                    lock: Mutex::new(()),
                    cvar: Condvar::new(),
                })
                .collect(),
        }
    }

    /// Parks worker `index` until it is unparked (or spuriously).
    pub(crate) fn park(&self, index: usize) {
        let p = &self.workers[index];
        if p.state
            .compare_exchange(NOTIFIED, EMPTY, SeqCst, SeqCst)
            .is_ok()
        {
            return;
        }
        if let Some(shared) = &self.driver {
            if let Some(mut driver) = shared.try_take() {
                if p.state
                    .compare_exchange(EMPTY, PARKED_DRIVER, SeqCst, SeqCst)
                    .is_err()
                {
                    // Only an unpark can have changed it: consume the notification.
                    p.state.store(EMPTY, SeqCst);
                    return;
                }
                shared.park(&mut **driver, None);
                p.state.store(EMPTY, SeqCst);
                return;
            }
        }
        let mut guard = lock(&p.lock);
        if p.state
            .compare_exchange(EMPTY, PARKED_CONDVAR, SeqCst, SeqCst)
            .is_err()
        {
            p.state.store(EMPTY, SeqCst);
            return;
        }
        loop {
            guard = p.cvar.wait(guard).unwrap_or_else(|e| e.into_inner());
            if p.state
                .compare_exchange(NOTIFIED, EMPTY, SeqCst, SeqCst)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Wakes worker `index` (now, or at its next park).
    pub(crate) fn unpark(&self, index: usize) {
        let p = &self.workers[index];
        match p.state.swap(NOTIFIED, SeqCst) {
            PARKED_CONDVAR => {
                drop(lock(&p.lock));
                p.cvar.notify_one();
            }
            PARKED_DRIVER => {
                if let Some(shared) = &self.driver {
                    shared.unpark.unpark();
                }
            }
            _ => {}
        }
    }

    /// The driver's published next deadline, if it publishes one (see [`TimerHint`]); each
    /// worker keeps its own reference, so that a check between polls reads nothing another
    /// worker writes (the driver's lock sits beside this field).
    pub(crate) fn timer_hint(&self) -> Option<Arc<TimerHint>> {
        self.hint.clone()
    }

    /// Whether the driver watches I/O, if it publishes that (see [`IoHint`]).
    pub(crate) fn io_hint(&self) -> Option<Arc<IoHint>> {
        self.io_hint.clone()
    }

    /// Lets a busy worker dispatch ready I/O and expired timers without blocking, if no other
    /// worker holds the driver.
    pub(crate) fn poll_driver(&self) {
        if let Some(shared) = &self.driver {
            if let Some(mut driver) = shared.try_take() {
                shared.park(&mut **driver, Some(Duration::ZERO));
            }
        }
    }
}

#[cfg(all(test, not(rt_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as StdAtomic;
    use std::time::Instant;

    #[test]
    fn unpark_before_park_is_not_lost() {
        let p = Parking::new(1, None);
        p.unpark(0);
        p.park(0); // returns at once
    }

    #[test]
    fn unpark_wakes_a_condvar_sleeper() {
        let p = Arc::new(Parking::new(1, None));
        let t = {
            let p = p.clone();
            std::thread::spawn(move || p.park(0))
        };
        std::thread::sleep(Duration::from_millis(20));
        p.unpark(0);
        t.join().unwrap();
    }

    /// A driver that sleeps on a condvar, to check the driver path of the protocol.
    struct TestDriver {
        shared: Arc<(std::sync::Mutex<bool>, std::sync::Condvar, StdAtomic)>,
    }
    struct TestUnpark(Arc<(std::sync::Mutex<bool>, std::sync::Condvar, StdAtomic)>);

    impl Driver for TestDriver {
        fn park(&mut self, timeout: Option<Duration>) {
            let (m, c, parks) = &*self.shared;
            parks.fetch_add(1, SeqCst);
            let mut woken = m.lock().unwrap();
            let deadline = timeout.map(|t| Instant::now() + t);
            while !*woken {
                match deadline {
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            break;
                        }
                        woken = c.wait_timeout(woken, d - now).unwrap().0;
                    }
                    None => woken = c.wait(woken).unwrap(),
                }
            }
            *woken = false;
        }
        fn unparker(&self) -> Arc<dyn Unpark> {
            Arc::new(TestUnpark(self.shared.clone()))
        }
    }
    impl Unpark for TestUnpark {
        fn unpark(&self) {
            *self.0.0.lock().unwrap() = true;
            self.0.1.notify_all();
        }
    }

    #[test]
    fn one_worker_parks_in_the_driver_the_other_on_its_condvar() {
        let shared = Arc::new((
            std::sync::Mutex::new(false),
            std::sync::Condvar::new(),
            StdAtomic::new(0),
        ));
        let p = Arc::new(Parking::new(
            2,
            Some(Box::new(TestDriver {
                shared: shared.clone(),
            })),
        ));
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let p = p.clone();
                std::thread::spawn(move || p.park(i))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            shared.2.load(SeqCst),
            1,
            "exactly one worker holds the driver"
        );
        p.unpark(0);
        p.unpark(1);
        for t in threads {
            t.join().unwrap();
        }
        p.poll_driver();
        assert_eq!(
            shared.2.load(SeqCst),
            2,
            "poll_driver takes the free driver"
        );
    }

    #[test]
    fn timer_hint_lower_keeps_the_earliest_deadline() {
        let base = Instant::now();
        let h = TimerHint::with_base(base);
        assert!(!h.has_timer());
        h.lower_since_base(5_000);
        assert!(h.has_timer());
        assert!(!h.is_due(base + Duration::from_nanos(4_999)));
        assert!(h.is_due(base + Duration::from_nanos(5_000)));
        // A later deadline changes nothing; an earlier one lowers it.
        h.lower_since_base(9_000);
        assert!(h.is_due(base + Duration::from_nanos(5_000)));
        h.lower(base + Duration::from_nanos(2_000));
        assert!(h.is_due(base + Duration::from_nanos(2_000)));
        assert!(!h.is_due(base + Duration::from_nanos(1_999)));
        // `u64::MAX` means "no timer": a deadline that far is clamped, never read as none.
        let far = TimerHint::with_base(base);
        far.lower_since_base(u64::MAX);
        assert!(far.has_timer());
        // Concurrent lowering keeps the minimum of all.
        let h = Arc::new(TimerHint::with_base(base));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in (0..1_000u64).rev() {
                        h.lower_since_base(10_000 + i * 4 + t);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(h.is_due(base + Duration::from_nanos(10_000)));
        assert!(!h.is_due(base + Duration::from_nanos(9_999)));
        h.set(None);
        assert!(!h.has_timer());
    }
}

#[cfg(all(test, rt_loom))]
mod loom_tests {
    use super::*;
    use crate::sync::{AtomicUsize, Mutex};
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;

    /// A worker parks until it sees a flag that another thread sets before unparking it. A lost
    /// wake-up leaves the worker asleep for good, which loom reports as a deadlock.
    fn round() {
        let parking = Arc::new(Parking::new(1, None));
        let flag = Arc::new(AtomicBool::new(false));
        let waker = {
            let (parking, flag) = (parking.clone(), flag.clone());
            loom::thread::spawn(move || {
                flag.store(true, SeqCst);
                parking.unpark(0);
            })
        };
        while !flag.load(SeqCst) {
            parking.park(0);
        }
        waker.join().unwrap();
    }

    /// Every interleaving of park and unpark wakes the worker.
    #[test]
    fn park_and_unpark_never_lose_a_wakeup() {
        loom::model(round);
    }

    /// The condvar half of the protocol, step by step, with the wait replaced by a flag set
    /// while still holding the lock (a condvar's wait releases the lock and starts waiting in
    /// one step). An `unpark` that takes the lock before it signals always signals a waiter;
    /// the mutated twin, signalling without the lock, can signal before the wait: lost. (The
    /// twin cannot run the real `park`: loom reports the resulting deadlock by unwinding
    /// through the condvar's guard, which aborts the test process.)
    fn condvar_round(signal_without_lock: bool) {
        let state = Arc::new(AtomicUsize::new(EMPTY));
        let lock = Arc::new(Mutex::new(()));
        let waiting = Arc::new(AtomicBool::new(false));
        let waker = {
            let (state, lock, waiting) = (state.clone(), lock.clone(), waiting.clone());
            loom::thread::spawn(move || {
                if state.swap(NOTIFIED, SeqCst) == PARKED_CONDVAR {
                    let _guard = (!signal_without_lock).then(|| super::lock(&lock));
                    assert!(
                        waiting.load(SeqCst),
                        "signal lost: the sleeper is not waiting yet"
                    );
                }
            })
        };
        // The sleeper, as `park` does it.
        let guard = super::lock(&lock);
        if state
            .compare_exchange(EMPTY, PARKED_CONDVAR, SeqCst, SeqCst)
            .is_ok()
        {
            waiting.store(true, SeqCst); // "wait": releases the lock below, atomically
        }
        drop(guard);
        waker.join().unwrap();
    }

    #[test]
    fn an_unpark_that_takes_the_lock_signals_a_waiting_sleeper() {
        loom::model(|| condvar_round(false));
    }

    /// The model catches the lost wake-up of an unpark that signals without the lock.
    #[test]
    #[should_panic(expected = "signal lost")]
    fn signalling_without_the_lock_loses_the_wakeup() {
        loom::model(|| condvar_round(true));
    }
}
