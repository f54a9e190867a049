//! The alternative backend (feature `polling`): the `polling` crate in edge-triggered mode. Its
//! epoll backend already uses a timerfd for precise timeouts.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::Event;
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
                read_closed: hup,
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
