//! [`Async<T>`]: any I/O object with a file descriptor, driven by the reactor.

use std::future::Future;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use futures_io::{AsyncRead, AsyncWrite};

use crate::reactor::{Direction, Reactor, Source, shut_down};

/// The reactor of the current thread's runtime: the `Arc<Reactor>` in that runtime's
/// [`Extensions`](runtime_core::Extensions), which whoever builds the runtime (the facade)
/// inserts. I/O objects created with [`Async::new`] use it.
pub fn current() -> io::Result<Arc<Reactor>> {
    runtime_core::context::with_current(|h| h.and_then(|h| h.extension::<Arc<Reactor>>().cloned()))
        .ok_or_else(|| {
            io::Error::other(
                "there is no runtime with I/O on this thread: create sockets inside a runtime \
             (in a task, inside Runtime::block_on, or while a Runtime::enter() guard is alive), \
             or pass a reactor to Async::with_reactor",
            )
        })
}

/// Never blocked yet: readiness is assumed until an operation says otherwise.
const NEVER: u64 = u64::MAX;

/// An I/O object in non-blocking mode, registered with a runtime's reactor.
///
/// Operations try the I/O first and wait for readiness only after `WouldBlock`. Each attempt
/// spends one unit of the task's cooperative budget. After the runtime has shut down,
/// operations fail with an `io::Error` instead of waiting forever.
///
/// `Async<T>` implements `AsyncRead`/`AsyncWrite` from `futures-io` when `&T` implements
/// `Read`/`Write`, so runtime-agnostic crates work over it.
pub struct Async<T: AsFd> {
    io: Option<T>,
    source: Arc<Source>,
    reactor: Arc<Reactor>,
    /// Per direction, the tick at which an operation last hit `WouldBlock`.
    blocked_at: [AtomicU64; 2],
    /// The tick at which a stream read last came back short (the kernel's buffer was empty
    /// then), or `NEVER`: the next read waits for an event after it instead of trying a
    /// system call that would return `WouldBlock`.
    drained_at: AtomicU64,
}

impl<T: AsFd + std::fmt::Debug> std::fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Async").field("io", &self.io).finish()
    }
}

impl<T: AsFd> Async<T> {
    /// Puts `io` in non-blocking mode and registers it with the current runtime's reactor.
    pub fn new(io: T) -> io::Result<Async<T>> {
        Async::with_reactor(io, &current()?)
    }

    /// Puts `io` in non-blocking mode and registers it with `reactor`.
    pub fn with_reactor(io: T, reactor: &Arc<Reactor>) -> io::Result<Async<T>> {
        rustix::io::ioctl_fionbio(io.as_fd(), true)?;
        let source = reactor.register(io.as_fd().as_raw_fd())?;
        Ok(Async {
            io: Some(io),
            source,
            reactor: reactor.clone(),
            blocked_at: [AtomicU64::new(NEVER), AtomicU64::new(NEVER)],
            drained_at: AtomicU64::new(NEVER),
        })
    }

    /// The inner I/O object.
    pub fn get_ref(&self) -> &T {
        self.io.as_ref().expect("present until drop or into_inner")
    }

    /// The inner I/O object, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        self.io.as_mut().expect("present until drop or into_inner")
    }

    /// Deregisters and returns the I/O object (still in non-blocking mode).
    pub fn into_inner(mut self) -> T {
        self.reactor.deregister(&self.source);
        self.io.take().expect("present until drop or into_inner")
    }

    fn poll_io<R>(
        &self,
        dir: Direction,
        cx: &mut Context<'_>,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io_at(dir, cx, op).map(|(res, _)| res)
    }

    /// [`poll_io`](Self::poll_io), also returning the tick read before the attempt that ended
    /// it.
    fn poll_io_at<R>(
        &self,
        dir: Direction,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<(io::Result<R>, u64)> {
        if runtime_core::coop::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        loop {
            if self.reactor.is_closed() {
                return Poll::Ready((Err(shut_down()), NEVER));
            }
            let tick = self.source.tick(dir);
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                res => return Poll::Ready((res, tick)),
            }
            self.blocked_at[dir as usize].store(tick, Ordering::Relaxed);
            ready!(self.source.poll_ready(dir, tick, cx));
        }
    }

    /// Polls a read of a byte stream into a buffer of `len` bytes: `op` runs until it does not
    /// return `WouldBlock`, and returns how many bytes it read.
    ///
    /// Unlike [`poll_read_with`](Async::poll_read_with), a read that comes back short
    /// (`0 < n < len`) is taken to have emptied the kernel's buffer, as it has for a stream
    /// socket or a pipe with an edge-triggered poller: the next read waits for the next
    /// readiness event instead of making a system call that would fail with `WouldBlock`
    /// (one system call saved per message in a request-response protocol). Once an event has
    /// said the read side is closed (the peer's FIN, a hang-up, an error), reads are always
    /// tried: EOF may already be there behind the data. Only for streams: a short read of a
    /// datagram or packet socket says nothing about what is queued.
    pub fn poll_read_stream(
        &self,
        cx: &mut Context<'_>,
        len: usize,
        mut op: impl FnMut(&T) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let drained = self.drained_at.load(Ordering::Relaxed);
        if drained != NEVER && !self.source.read_closed() {
            ready!(self.poll_event_after(Direction::Read, drained, cx))?;
            self.drained_at.store(NEVER, Ordering::Relaxed);
        }
        let (res, tick) = ready!(self.poll_io_at(Direction::Read, cx, &mut op));
        if matches!(res, Ok(n) if n > 0 && n < len) {
            self.drained_at.store(tick, Ordering::Relaxed);
        }
        Poll::Ready(res)
    }

    /// Polls a read-like operation: `op` runs until it does not return `WouldBlock`.
    pub fn poll_read_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io(Direction::Read, cx, op)
    }

    /// Polls a write-like operation: `op` runs until it does not return `WouldBlock`.
    pub fn poll_write_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io(Direction::Write, cx, op)
    }

    /// Runs a read-like operation until it does not return `WouldBlock`.
    ///
    /// ```no_run
    /// # async fn f(sock: reactor::Async<std::net::UdpSocket>) -> std::io::Result<()> {
    /// let mut buf = [0u8; 1500];
    /// let (n, from) = sock.read_with(|s| s.recv_from(&mut buf)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_read_with(cx, &mut op)).await
    }

    /// Runs a write-like operation until it does not return `WouldBlock`.
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_write_with(cx, &mut op)).await
    }

    fn poll_ready(&self, dir: Direction, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_event_after(
            dir,
            self.blocked_at[dir as usize].load(Ordering::Relaxed),
            cx,
        )
    }

    /// Ready once `dir` has seen an event after tick `seen` (at once for `NEVER`); an error
    /// once the runtime has shut down.
    fn poll_event_after(
        &self,
        dir: Direction,
        seen: u64,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if self.reactor.is_closed() {
            return Poll::Ready(Err(shut_down()));
        }
        if seen == NEVER {
            return Poll::Ready(Ok(()));
        }
        self.source.poll_ready(dir, seen, cx).map(Ok)
    }

    /// Waits until a read would not block (as far as the last `WouldBlock` tells).
    pub fn readable(&self) -> impl Future<Output = io::Result<()>> + '_ {
        std::future::poll_fn(|cx| self.poll_ready(Direction::Read, cx))
    }

    /// Waits until a write would not block (as far as the last `WouldBlock` tells).
    pub fn writable(&self) -> impl Future<Output = io::Result<()>> + '_ {
        std::future::poll_fn(|cx| self.poll_ready(Direction::Write, cx))
    }
}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        if self.io.is_some() {
            // Deregister before the fd is closed (the `polling` backend requires it).
            self.reactor.deregister(&self.source);
            self.io = None;
        }
    }
}

/// `AsyncRead` / `AsyncWrite` for `$ty` (an `Async<T>` or a reference to one): the same bodies.
macro_rules! async_io_traits {
    ($ty:ty) => {
        impl<T: AsFd> AsyncRead for $ty
        where
            for<'a> &'a T: Read,
        {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_read_with(cx, |mut io| io.read(buf))
            }
        }

        impl<T: AsFd> AsyncWrite for $ty
        where
            for<'a> &'a T: Write,
        {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_with(cx, |mut io| io.write(buf))
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_with(cx, |mut io| io.write_vectored(bufs))
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.poll_write_with(cx, |mut io| io.flush())
            }

            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.poll_write_with(cx, |mut io| io.flush())
            }
        }
    };
}

async_io_traits!(Async<T>);
async_io_traits!(&Async<T>);
