//! The default backend: mio (epoll on Linux), plus a timerfd for timeouts finer than epoll's
//! whole milliseconds.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{Event, WAKE_TOKEN};
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
            it_value: timespec(after.map_or(Duration::ZERO, |d| d.max(Duration::from_nanos(1)))),
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
                    read_closed: ev.is_read_closed() || ev.is_error(),
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
