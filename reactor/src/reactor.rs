//! The reactor: registered sources and the dispatch of readiness events.
//!
//! # Ground rules
//!
//! - Sources live in a slab. A source's token is its slab index in the low 32 bits and a
//!   registration number in the high 32 bits, so an event that arrives for a slot that has since
//!   been reused by another source is recognised as stale and ignored.
//! - Readiness is a per-direction *tick*: every dispatch that reports a direction ready bumps
//!   its tick and wakes its waiter. An operation snapshots the tick, tries the I/O, and only on
//!   `WouldBlock` waits, and only while the tick is still the snapshot. So readiness is
//!   "cleared" exactly when an operation hits `WouldBlock`, and an event that arrives during the
//!   attempt is never lost (the tick has moved, the operation retries at once).
//! - Only the holder of the [`Poller`] waits for events; registering, deregistering and waking
//!   go through the shared [`Reactor`] from any thread.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use runtime_core::IoHint;
use slab::Slab;

use crate::readiness::Readiness;
use crate::sys;

/// Read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Read = 0,
    Write = 1,
}

/// One registered file descriptor: per direction, its readiness (readiness.rs).
#[derive(Debug)]
pub(crate) struct Source {
    key: usize,
    token: usize,
    fd: RawFd,
    readiness: [Readiness; 2],
    /// Set for good once an event said the read side is closed (hang-up, error): a read will
    /// find EOF or the error at once, whatever a short read before suggested.
    read_closed: AtomicBool,
}

impl Source {
    /// Whether an event said the read side is closed (see the field).
    pub(crate) fn read_closed(&self) -> bool {
        self.read_closed.load(Ordering::Acquire)
    }

    /// The current tick of `dir`, to compare against after an attempt.
    pub(crate) fn tick(&self, dir: Direction) -> u64 {
        self.readiness[dir as usize].tick()
    }

    /// Ready once `dir` has seen an event after `seen`; otherwise registers `cx`'s waker.
    pub(crate) fn poll_ready(&self, dir: Direction, seen: u64, cx: &mut Context<'_>) -> Poll<()> {
        self.readiness[dir as usize].poll_ready(seen, cx)
    }

    fn dispatch(&self, readable: bool, writable: bool, wakers: &mut Vec<Waker>) {
        for (dir, ready) in [(0, readable), (1, writable)] {
            if ready {
                wakers.extend(self.readiness[dir].dispatch());
            }
        }
    }
}

/// The shared side of the I/O driver: registers sources and wakes the poller.
pub struct Reactor {
    registry: sys::Registry,
    sources: Mutex<Slab<Arc<Source>>>,
    registrations: AtomicU32,
    closed: AtomicBool,
    /// Whether `sources` is non-empty, for busy workers (set under the `sources` lock).
    io_hint: Arc<IoHint>,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("backend", &sys::BACKEND)
            .field("sources", &self.sources().len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The error of I/O attempted after the runtime shut down.
pub(crate) fn shut_down() -> io::Error {
    io::Error::other("the runtime that drives this I/O object has shut down")
}

impl Reactor {
    fn sources(&self) -> MutexGuard<'_, Slab<Arc<Source>>> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `fd` for read and write readiness (edge-triggered).
    pub(crate) fn register(&self, fd: RawFd) -> io::Result<Arc<Source>> {
        if self.is_closed() {
            return Err(shut_down());
        }
        let generation = self.registrations.fetch_add(1, Ordering::Relaxed) as usize;
        let source = {
            let mut sources = self.sources();
            let entry = sources.vacant_entry();
            let key = entry.key();
            let source = Arc::new(Source {
                key,
                token: key | (generation << 32),
                fd,
                readiness: Default::default(),
                read_closed: AtomicBool::new(!sys::REPORTS_READ_CLOSED),
            });
            entry.insert(source.clone());
            self.io_hint.set_watching(true);
            source
        };
        if let Err(e) = self.registry.register(fd, source.token) {
            self.remove(&source);
            return Err(e);
        }
        Ok(source)
    }

    /// Takes `source` out of the slab, unless its slot already holds another registration.
    fn remove(&self, source: &Source) {
        let mut sources = self.sources();
        if sources
            .get(source.key)
            .is_some_and(|s| s.token == source.token)
        {
            sources.remove(source.key);
        }
        self.io_hint.set_watching(!sources.is_empty());
    }

    /// The source an event's token names, unless the token is stale: its slot has since been
    /// reused by another registration (which has another registration number).
    fn source_for(&self, token: usize) -> Option<Arc<Source>> {
        let sources = self.sources();
        let s = sources.get(token & 0xFFFF_FFFF)?;
        (s.token == token).then(|| s.clone())
    }

    /// Stops watching a source (before its fd is closed).
    pub(crate) fn deregister(&self, source: &Source) {
        let _ = self.registry.deregister(source.fd);
        self.remove(source);
    }

    /// Whether any source is registered, published for the runtime's busy workers: with none,
    /// they do not poll for I/O between tasks (see `runtime_core::Driver::io_hint`).
    pub fn io_hint(&self) -> &Arc<IoHint> {
        &self.io_hint
    }

    /// Makes a concurrent or upcoming [`Poller::poll`] return.
    pub fn wake(&self) {
        let _ = self.registry.wake();
    }

    /// Whether the runtime has shut down: I/O then fails instead of waiting.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Shuts down: every waiting operation wakes up and fails with an error.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let sources: Vec<Arc<Source>> = self.sources().iter().map(|(_, s)| s.clone()).collect();
        let mut wakers = Vec::new();
        for s in sources {
            s.dispatch(true, true, &mut wakers);
        }
        for w in wakers {
            runtime_core::fault::wake_contained(w, "the waker of an I/O source (at shutdown)");
        }
        self.wake();
    }

    /// Number of registered sources.
    pub fn source_count(&self) -> usize {
        self.sources().len()
    }
}

/// The exclusive side of the I/O driver: waits for events and dispatches them.
pub struct Poller {
    poll: sys::Poll,
    reactor: Arc<Reactor>,
    wakers: Vec<Waker>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("reactor", &self.reactor)
            .finish()
    }
}

impl Poller {
    /// A new poller and its shared reactor.
    pub fn new() -> io::Result<Poller> {
        let (poll, registry) = sys::Poll::new()?;
        Ok(Poller {
            poll,
            reactor: Arc::new(Reactor {
                registry,
                sources: Mutex::new(Slab::new()),
                registrations: AtomicU32::new(0),
                closed: AtomicBool::new(false),
                io_hint: {
                    let hint = Arc::new(IoHint::default());
                    hint.set_watching(false);
                    hint
                },
            }),
            wakers: Vec::new(),
        })
    }

    /// The shared reactor.
    pub fn reactor(&self) -> &Arc<Reactor> {
        &self.reactor
    }

    /// Waits at most `timeout` (`None`: until an event or [`Reactor::wake`]; precise to well
    /// under a millisecond) and wakes the tasks whose sources became ready. Returns how many
    /// tasks it woke.
    pub fn poll(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let reactor = &self.reactor;
        let wakers = &mut self.wakers;
        let mut found: Vec<(Arc<Source>, bool, bool)> = Vec::new();
        self.poll.poll(timeout, |ev| {
            if ev.token != sys::WAKE_TOKEN {
                if let Some(s) = reactor.source_for(ev.token) {
                    if ev.read_closed {
                        // Before the tick moves (in `dispatch`): whoever sees the new tick
                        // sees the flag.
                        s.read_closed.store(true, Ordering::Release);
                    }
                    found.push((s, ev.readable, ev.writable));
                }
            }
        })?;
        for (s, r, w) in found {
            s.dispatch(r, w, wakers);
        }
        let n = wakers.len();
        for w in wakers.drain(..) {
            runtime_core::fault::wake_contained(w, "the waker of an I/O source");
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_stale_token_does_not_reach_the_slot_s_new_source() {
        let poller = Poller::new().unwrap();
        let r = poller.reactor();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let old = r.register(a.as_raw_fd()).unwrap();
        let old_token = old.token;
        r.deregister(&old);
        let new = r.register(b.as_raw_fd()).unwrap();
        assert_eq!(new.key, old.key, "the slot is reused");
        assert!(r.source_for(old_token).is_none(), "stale token ignored");
        assert!(r.source_for(new.token).is_some());
        r.deregister(&new);
    }

    #[test]
    fn the_io_hint_says_whether_any_source_is_registered() {
        let poller = Poller::new().unwrap();
        let r = poller.reactor();
        let hint = r.io_hint();
        assert!(!hint.is_watching(), "no source yet");
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let sa = r.register(a.as_raw_fd()).unwrap();
        assert!(hint.is_watching());
        let sb = r.register(b.as_raw_fd()).unwrap();
        r.deregister(&sa);
        assert!(hint.is_watching(), "one source left");
        r.deregister(&sa); // twice: still one left
        assert!(hint.is_watching());
        r.deregister(&sb);
        assert!(!hint.is_watching());
        // A registration the OS refuses (epoll does not take a regular file) leaves nothing
        // behind.
        let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        assert!(r.register(file.as_raw_fd()).is_err());
        assert!(!hint.is_watching());
    }
}
