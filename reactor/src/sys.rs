//! The OS poller behind one small interface, with two implementations chosen at build time:
//! mio (default) and `polling` (feature `polling`). Both wait with sub-millisecond precision:
//! epoll rounds its timeout up to whole milliseconds, so the mio backend arms a timerfd for the
//! exact timeout (polling does the same internally).
//!
//! `Poll` is exclusive (one thread waits in it at a time: whoever holds the driver); `Registry`
//! is shared by everything that registers sources or wakes the poller.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// One readiness event: the source's token and what it is ready for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub(crate) token: usize,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
}

/// Token reserved for the poller's own wake-ups.
pub(crate) const WAKE_TOKEN: usize = usize::MAX;

#[cfg(not(feature = "polling"))]
pub(crate) use mio_backend::{Poll, Registry};
#[cfg(feature = "polling")]
pub(crate) use polling_backend::{Poll, Registry};

/// The name of the backend compiled in.
pub const BACKEND: &str = if cfg!(feature = "polling") {
    "polling"
} else {
    "mio"
};

#[cfg(not(feature = "polling"))]
mod mio_backend {
    use super::*;
    use mio::unix::SourceFd;
    use mio::{Interest, Token};
    use rustix::fd::OwnedFd;
    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
        timerfd_settime,
    };
    use std::os::fd::AsRawFd;

    const TIMER_TOKEN: usize = usize::MAX - 1;

    pub(crate) struct Poll {
        poll: mio::Poll,
        events: mio::Events,
        /// Fires at the exact timeout; `None` if the system has no timerfd.
        timer: Option<OwnedFd>,
        timer_armed: bool,
    }

    pub(crate) struct Registry {
        registry: mio::Registry,
        waker: mio::Waker,
    }

    fn timespec(d: Duration) -> Timespec {
        Timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as _,
            tv_nsec: d.subsec_nanos() as _,
        }
    }

    impl Poll {
        pub(crate) fn new() -> io::Result<(Poll, Registry)> {
            let poll = mio::Poll::new()?;
            let registry = poll.registry().try_clone()?;
            let waker = mio::Waker::new(poll.registry(), Token(WAKE_TOKEN))?;
            let timer = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )
            .ok();
            if let Some(t) = &timer {
                poll.registry().register(
                    &mut SourceFd(&t.as_raw_fd()),
                    Token(TIMER_TOKEN),
                    Interest::READABLE,
                )?;
            }
            Ok((
                Poll {
                    poll,
                    events: mio::Events::with_capacity(1024),
                    timer,
                    timer_armed: false,
                },
                Registry { registry, waker },
            ))
        }

        fn arm(&mut self, after: Option<Duration>) {
            let Some(t) = &self.timer else { return };
            if after.is_none() && !self.timer_armed {
                return;
            }
            let spec = Itimerspec {
                it_interval: timespec(Duration::ZERO),
                // A zero value disarms; keep a non-zero one for "now-ish" timeouts.
                it_value: timespec(
                    after.map_or(Duration::ZERO, |d| d.max(Duration::from_nanos(1))),
                ),
            };
            if timerfd_settime(t, TimerfdTimerFlags::empty(), &spec).is_ok() {
                self.timer_armed = after.is_some();
            }
        }

        /// Waits for events for at most `timeout` and calls `each` for every event.
        pub(crate) fn poll(
            &mut self,
            timeout: Option<Duration>,
            mut each: impl FnMut(Event),
        ) -> io::Result<()> {
            let mio_timeout = match timeout {
                Some(t) if !t.is_zero() && self.timer.is_some() => {
                    self.arm(Some(t));
                    // The timerfd wakes us on time; epoll's own (rounded up) timeout is a
                    // safety net only.
                    Some(t + Duration::from_millis(1))
                }
                other => {
                    self.arm(None);
                    other
                }
            };
            match self.poll.poll(&mut self.events, mio_timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            for ev in self.events.iter() {
                match ev.token().0 {
                    TIMER_TOKEN => {
                        if let Some(t) = &self.timer {
                            let _ = rustix::io::read(t, &mut [0u8; 8]);
                        }
                        self.timer_armed = false;
                    }
                    token => each(Event {
                        token,
                        readable: ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                        writable: ev.is_writable() || ev.is_write_closed() || ev.is_error(),
                    }),
                }
            }
            Ok(())
        }
    }

    impl Registry {
        pub(crate) fn register(&self, fd: RawFd, token: usize) -> io::Result<()> {
            self.registry.register(
                &mut SourceFd(&fd),
                Token(token),
                Interest::READABLE | Interest::WRITABLE,
            )
        }

        pub(crate) fn deregister(&self, fd: RawFd) -> io::Result<()> {
            self.registry.deregister(&mut SourceFd(&fd))
        }

        pub(crate) fn wake(&self) -> io::Result<()> {
            self.waker.wake()
        }
    }
}

#[cfg(feature = "polling")]
mod polling_backend {
    use super::*;
    use polling::{PollMode, Poller};
    use std::os::fd::BorrowedFd;
    use std::sync::Arc;

    pub(crate) struct Poll {
        poller: Arc<Poller>,
        events: polling::Events,
    }

    pub(crate) struct Registry {
        poller: Arc<Poller>,
    }

    impl Poll {
        pub(crate) fn new() -> io::Result<(Poll, Registry)> {
            let poller = Arc::new(Poller::new()?);
            Ok((
                Poll {
                    poller: poller.clone(),
                    events: polling::Events::new(),
                },
                Registry { poller },
            ))
        }

        /// Waits for events for at most `timeout` (polling's epoll backend is precise: it
        /// uses a timerfd) and calls `each` for every event.
        pub(crate) fn poll(
            &mut self,
            timeout: Option<Duration>,
            mut each: impl FnMut(Event),
        ) -> io::Result<()> {
            self.events.clear();
            match self.poller.wait(&mut self.events, timeout) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            for ev in self.events.iter() {
                let hup = ev.is_interrupt() || ev.is_err().unwrap_or(false);
                each(Event {
                    token: ev.key,
                    readable: ev.readable || hup,
                    writable: ev.writable || hup,
                });
            }
            Ok(())
        }
    }

    impl Registry {
        pub(crate) fn register(&self, fd: RawFd, token: usize) -> io::Result<()> {
            // SAFETY: `polling` requires the fd to be deleted from the poller before it is
            // closed. `Async` owns the I/O object and deregisters in its `Drop` before dropping
            // (closing) it; the fd is valid now because the caller owns an open object for it.
            unsafe {
                self.poller
                    .add_with_mode(fd, polling::Event::all(token), PollMode::Edge)
            }
        }

        pub(crate) fn deregister(&self, fd: RawFd) -> io::Result<()> {
            // SAFETY: called by `Async::drop` before the object owning `fd` is closed.
            self.poller.delete(unsafe { BorrowedFd::borrow_raw(fd) })
        }

        pub(crate) fn wake(&self) -> io::Result<()> {
            self.poller.notify()
        }
    }
}
