//! The runtime's driver: the reactor and the timer driver (crate `timer`, whose docs describe
//! the wake-at handshake) behind core's `Driver`. The reactor's timerfd makes the wait precise
//! to well under a millisecond.
//!
//! With the clock paused and nothing else to do, the driver jumps the clock to the next
//! deadline instead of waiting (tokio users know this as `start_paused`).

use std::sync::Arc;
use std::time::Duration;

use runtime_core::{Driver, Unpark};

use timer::Timers;

/// State the facade attaches to each runtime (as an `Arc<IoTime>` extension, beside the
/// reactor's own `Arc<Reactor>` and `Resolver`): how resources find their driver.
pub(crate) struct IoTime {
    pub(crate) reactor: Arc<reactor::Reactor>,
    pub(crate) timers: Arc<Timers>,
    /// The pool for blocking work (`spawn_blocking`).
    pub(crate) blocking: blocking::Pool,
    /// The runtime's own rayon pool, if the builder made one (`spawn_rayon`).
    pub(crate) rayon: Option<Arc<rayon::ThreadPool>>,
}

/// Calls `f` with the current thread's runtime's driver state, if any (no reference counting).
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&IoTime>) -> R) -> R {
    runtime_core::context::with_current(|h| {
        f(h.and_then(|h| h.extension::<Arc<IoTime>>()).map(|io| &**io))
    })
}

pub(crate) struct RtDriver {
    poller: reactor::Poller,
    timers: Arc<Timers>,
}

struct ReactorUnpark(Arc<reactor::Reactor>);

impl Unpark for ReactorUnpark {
    fn unpark(&self) {
        self.0.wake();
    }
}

impl RtDriver {
    pub(crate) fn new(
        paused: bool,
        blocking: blocking::PoolConfig,
        rayon: Option<Arc<rayon::ThreadPool>>,
    ) -> std::io::Result<(RtDriver, Arc<IoTime>)> {
        let poller = reactor::Poller::new()?;
        let reactor = poller.reactor().clone();
        let unpark: Arc<dyn Unpark> = Arc::new(ReactorUnpark(reactor.clone()));
        let timers = Arc::new(Timers::new(paused, unpark));
        Ok((
            RtDriver {
                poller,
                timers: timers.clone(),
            },
            Arc::new(IoTime {
                reactor,
                timers,
                blocking: blocking::Pool::new(blocking),
                rayon,
            }),
        ))
    }
}

impl Driver for RtDriver {
    fn park(&mut self, timeout: Option<Duration>) {
        let timers = &self.timers;
        if timeout == Some(Duration::ZERO) && !self.poller.reactor().io_hint().is_watching() {
            // A busy worker's service with no source registered: the timers are all there is
            // to look at, and the poll would be a system call that finds nothing (a pending
            // wake-up stays for the next real wait, which then returns at once).
            timers.fire_due();
            return;
        }
        // Timers that came due before we got here wake their tasks now, possibly onto this very
        // worker's queue: then the worker must not block (it would sleep over runnable tasks).
        let timeout = if timers.fire_due() > 0 {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        let wait = timers.wait_before_park(timeout);
        if timers.clock.is_paused() && timeout.is_none() {
            if let Some(deadline) = wait.deadline {
                // Idle with a paused clock: look for I/O without waiting; if none, jump.
                let woke = self.poller.poll(Some(Duration::ZERO)).unwrap_or(0);
                if woke == 0 {
                    timers.clock.advance_to(deadline);
                }
                timers.done_parking();
                timers.fire_due();
                return;
            }
        }
        let _ = self.poller.poll(wait.timeout);
        timers.done_parking();
        timers.fire_due();
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.timers.unpark.clone()
    }

    fn timer_hint(&self) -> Option<Arc<runtime_core::TimerHint>> {
        Some(self.timers.hint.clone())
    }

    fn io_hint(&self) -> Option<Arc<runtime_core::IoHint>> {
        Some(self.poller.reactor().io_hint().clone())
    }
}
