//! hyper 1 on this runtime (cargo feature `hyper`): what `hyper-util`'s `rt::tokio` module is to
//! tokio, plus a server loop with graceful shutdown.
//!
//! - [`Executor`]: hyper's [`Executor`](hyper::rt::Executor), spawning on the runtime (HTTP/2
//!   runs a task per stream through it).
//! - [`Timer`]: hyper's [`Timer`](hyper::rt::Timer) over our timer wheel, with a sleep that is
//!   reset in place (header-read timeouts, HTTP/2 keep-alive); it follows a paused clock.
//! - [`Io`]: hyper's [`Read`](hyper::rt::Read) / [`Write`](hyper::rt::Write) over our
//!   [`TcpStream`] and [`UnixStream`] (reads go
//!   straight into hyper's buffer, writes are vectored) and over any `futures-io` stream.
//! - [`Server`]: an accept loop serving a hyper or tower service (HTTP/1 and HTTP/2, told apart
//!   by the connection's first bytes) with graceful shutdown, an optional connection limit and
//!   accept errors that neither spin nor stop it.
//!
//! A hello-world server, a client request to it, and a graceful stop:
//!
//! ```
//! use std::convert::Infallible;
//! use facade::hyper::{Io, Server};
//! use hyper::{Request, Response, body::{Bytes, Incoming}};
//!
//! # #[derive(Debug)] struct Full(Option<Bytes>);
//! # impl hyper::body::Body for Full {
//! #     type Data = Bytes; type Error = Infallible;
//! #     fn poll_frame(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>)
//! #         -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
//! #         std::task::Poll::Ready(self.0.take().map(|b| Ok(hyper::body::Frame::data(b))))
//! #     }
//! # }
//! facade::block_on(async {
//!     let listener = facade::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     let hello = hyper::service::service_fn(|_req: Request<Incoming>| async {
//!         Ok::<_, Infallible>(Response::new(Full(Some(Bytes::from("hello")))))
//!     });
//!     let (stop, stopped) = facade::sync::oneshot::channel::<()>();
//!     let server = facade::spawn(async move {
//!         Server::new().serve(listener, hello, async { stopped.await.ok(); }).await
//!     });
//!
//!     let stream = facade::net::TcpStream::connect(addr).await?;
//!     let (mut sender, conn) = hyper::client::conn::http1::handshake(Io::new(stream)).await.unwrap();
//!     facade::spawn(conn);
//!     let req = Request::get("/").body(Full(None)).unwrap();
//!     let response = sender.send_request(req).await.unwrap();
//!     assert_eq!(response.status(), 200);
//!
//!     stop.send(()).unwrap();
//!     let summary = server.await.unwrap()?;
//!     assert_eq!(summary.accepted, 1);
//!     # std::io::Result::Ok(())
//! }).unwrap();
//! ```

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use ::hyper::body::{Body, Incoming};
use ::hyper::rt::ReadBufCursor;
use ::hyper::{Request, Response};
use ::hyper_util::server::conn::auto;
use futures_lite::{AsyncRead, AsyncWrite};
use runtime_core::lock_unpoisoned as lock;
use slab::Slab;

use crate::net::{TcpListener, TcpStream, UnixStream};
use crate::task::JoinSet;
use crate::{Handle, time};

/// hyper's executor: spawns hyper's background tasks (HTTP/2 streams and connection drivers)
/// on a runtime of this crate.
///
/// ```
/// # facade::block_on(async {
/// let builder = hyper::server::conn::http2::Builder::new(facade::hyper::Executor::new());
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct Executor {
    handle: Option<Handle>,
}

impl Executor {
    /// Spawns on the runtime current where [`execute`](hyper::rt::Executor::execute) is
    /// called (hyper calls it from the connection's task), or, when made inside a runtime, on
    /// that one.
    pub fn new() -> Executor {
        Executor {
            handle: Handle::try_current().ok(),
        }
    }

    /// Spawns on `handle`'s runtime, wherever it is called from.
    pub fn with_handle(handle: Handle) -> Executor {
        Executor {
            handle: Some(handle),
        }
    }
}

impl<F> ::hyper::rt::Executor<F> for Executor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        match &self.handle {
            Some(handle) => drop(handle.spawn(future)),
            None => drop(crate::spawn(future)),
        }
    }
}

/// hyper's timer, over this runtime's timer wheel. Its [`now`](hyper::rt::Timer::now) is the
/// runtime's clock, so hyper's timeouts follow a paused test clock.
#[derive(Clone, Default)]
pub struct Timer {
    /// The timers of the runtime it was made in (no context lookup per sleep), if any.
    timers: Option<Arc<timer::Timers>>,
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("bound", &self.timers.is_some())
            .finish()
    }
}

impl Timer {
    /// Timers on the runtime it is made in, or, made outside any, on the runtime current
    /// where hyper asks for a sleep.
    pub fn new() -> Timer {
        Timer {
            timers: time::current_timers(),
        }
    }

    /// Timers on `handle`'s runtime.
    pub fn with_handle(handle: Handle) -> Timer {
        let _guard = handle.enter();
        Timer::new()
    }

    fn sleep_at(&self, deadline: Instant) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        Box::pin(Sleep(match &self.timers {
            Some(timers) => time::sleep_on(timers.clone(), deadline),
            None => time::sleep_until(deadline),
        }))
    }
}

impl ::hyper::rt::Timer for Timer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        let now = ::hyper::rt::Timer::now(self);
        // As `time::sleep`: a duration past the clock's range sleeps about forever.
        let far = now.checked_add(timer::FAR).unwrap_or(now);
        self.sleep_at(now.checked_add(duration).unwrap_or(far))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        self.sleep_at(deadline)
    }

    fn now(&self) -> Instant {
        match &self.timers {
            Some(timers) => timers.clock.now(),
            None => time::now(),
        }
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn ::hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<Sleep>() {
            // Ours: move the deadline, keeping the allocation and the timer slot.
            Some(mut ours) => ours.0.reset(new_deadline),
            None => *sleep = self.sleep_at(new_deadline),
        }
    }
}

/// The sleep [`Timer`] hands to hyper.
struct Sleep(time::Sleep);

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl ::hyper::rt::Sleep for Sleep {}

/// A stream as hyper's [`Read`](hyper::rt::Read) / [`Write`](hyper::rt::Write) (tokio's
/// `TokioIo`).
///
/// Over this crate's [`TcpStream`] and [`UnixStream`], reads go from the socket straight into
/// hyper's (uninitialised) buffer and writes are vectored (`writev`), so hyper's headers and
/// body leave in one system call. Any other `futures-io` stream (a TLS stream, say) works too:
/// its reads go into the zero-filled buffer and its writes are single-buffer, which is what
/// `futures-io` offers.
#[derive(Debug)]
pub struct Io<T> {
    inner: T,
}

impl<T> Io<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Io<T> {
        Io { inner }
    }

    /// The wrapped stream.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

/// Which of our sockets `T` is, if it is one. `TypeId`s are known at compile time, so after
/// monomorphisation this is a constant and the other branch is gone.
enum Socket<'a> {
    Tcp(&'a reactor::Async<std::net::TcpStream>),
    Unix(&'a reactor::Async<std::os::unix::net::UnixStream>),
}

fn socket_of<T: 'static>(io: &T) -> Option<Socket<'_>> {
    let any: &dyn Any = io;
    if let Some(s) = any.downcast_ref::<TcpStream>() {
        return Some(Socket::Tcp(s.as_async()));
    }
    any.downcast_ref::<UnixStream>()
        .map(|s| Socket::Unix(s.as_async()))
}

/// Reads from a registered socket into uninitialised memory; returns how many bytes were
/// written (and so initialised) at the start of `buf`.
fn poll_read_uninit<S: AsFd>(
    io: &reactor::Async<S>,
    cx: &mut Context<'_>,
    buf: &mut [MaybeUninit<u8>],
) -> Poll<io::Result<usize>> {
    let len = buf.len();
    io.poll_read_stream(cx, len, |s| {
        rustix::io::read(s, &mut *buf)
            .map(|(filled, _)| filled.len())
            .map_err(io::Error::from)
    })
}

impl<T: AsyncRead + Unpin + 'static> ::hyper::rt::Read for Io<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // SAFETY: the slice is only written to (by `read(2)` or by zero-filling below),
        // never de-initialised, which is `as_mut`'s contract.
        let unfilled = unsafe { buf.as_mut() };
        let n = match socket_of(&this.inner) {
            Some(Socket::Tcp(s)) => ready!(poll_read_uninit(s, cx, unfilled))?,
            Some(Socket::Unix(s)) => ready!(poll_read_uninit(s, cx, unfilled))?,
            None => {
                // `futures-io` reads into initialised memory: zero it first.
                let zeroed: &mut [u8] = zero_fill(unfilled);
                ready!(Pin::new(&mut this.inner).poll_read(cx, zeroed))?
            }
        };
        // SAFETY: the first `n` bytes of the cursor were written by the read above (`read(2)`
        // reports how many it wrote; a `futures-io` read reports at most the slice's length,
        // all of which was zero-filled).
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

/// Zero-fills `buf` and returns it as initialised bytes.
fn zero_fill(buf: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    for b in buf.iter_mut() {
        b.write(0);
    }
    // SAFETY: every element was written just above; `MaybeUninit<u8>` and `u8` have the same
    // layout.
    unsafe { &mut *(buf as *mut [MaybeUninit<u8>] as *mut [u8]) }
}

impl<T: AsyncWrite + Unpin + 'static> ::hyper::rt::Write for Io<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        // futures-io cannot tell; our sockets do `writev`, others may write one buffer only.
        socket_of(&self.inner).is_some()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// The error type hyper's bounds take (what `Into<BoxError>` accepts).
type BoxError = Box<dyn StdError + Send + Sync>;

/// How long a server waits for open connections after shutdown starts, by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's headers, by default (hyper's default).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What [`Server::serve`] did, returned when it stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeSummary {
    /// Connections accepted.
    pub accepted: u64,
    /// Accepts that failed (each logged; the loop went on).
    pub accept_errors: u64,
    /// Connections that ended with an error (a client gone mid-request, a header-read
    /// timeout, a protocol error).
    pub connection_errors: u64,
    /// Connections still open when the shutdown timeout passed, and so dropped.
    pub aborted_at_shutdown: usize,
}

impl ServeSummary {
    /// Counts a connection's end: an error, a panic in the service or a cancellation is a
    /// connection error.
    fn connection_ended(&mut self, ended: &Result<Result<(), BoxError>, crate::JoinError>) {
        if !matches!(ended, Ok(Ok(()))) {
            self.connection_errors += 1;
        }
    }
}

/// An HTTP server loop: accepts connections and serves each with a hyper service on its own
/// task, HTTP/1.1 or HTTP/2 (prior knowledge) as the client speaks.
///
/// - **Graceful shutdown**: when the `shutdown` future given to [`serve`](Server::serve)
///   completes, the listener is closed, every connection is asked to finish (HTTP/1: after the
///   request in flight; HTTP/2: GOAWAY, then the open streams), and the loop waits for them up
///   to [`shutdown_timeout`](Server::shutdown_timeout), then drops what is left.
/// - **Connection limit** ([`max_connections`](Server::max_connections)): at the limit, the
///   loop stops accepting until a connection closes (the kernel's backlog holds the rest).
/// - **Accept errors**: a failure of one connection (reset, aborted) is counted and skipped; a
///   failure that says a resource is exhausted (no file descriptors, no memory, no buffers) or
///   anything else backs off (5 ms, doubling to 1 s, back to 5 ms at the next success), so the
///   loop never spins and never stops for an accept error.
///
/// The HTTP settings are hyper-util's ([`http1`](Server::http1), [`http2`](Server::http2));
/// both have our [`Timer`], and HTTP/1 a header-read timeout of
/// [`DEFAULT_HEADER_READ_TIMEOUT`].
#[derive(Clone)]
pub struct Server {
    builder: auto::Builder<Executor>,
    max_connections: Option<usize>,
    shutdown_timeout: Duration,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("max_connections", &self.max_connections)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Server {
    fn default() -> Server {
        Server::new()
    }
}

impl Server {
    /// A server with the defaults above, its tasks spawned on the current runtime.
    pub fn new() -> Server {
        let mut builder = auto::Builder::new(Executor::new());
        builder
            .http1()
            .timer(Timer::new())
            .header_read_timeout(DEFAULT_HEADER_READ_TIMEOUT);
        builder.http2().timer(Timer::new());
        Server {
            builder,
            max_connections: None,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }

    /// hyper-util's HTTP/1 settings (keep-alive, header-read timeout, buffer sizes, ...).
    pub fn http1(&mut self) -> auto::Http1Builder<'_, Executor> {
        self.builder.http1()
    }

    /// hyper-util's HTTP/2 settings (streams, windows, keep-alive pings, ...).
    pub fn http2(&mut self) -> auto::Http2Builder<'_, Executor> {
        self.builder.http2()
    }

    /// How long a client may take to send a request's headers before the connection is closed
    /// (HTTP/1). `None`: no limit.
    pub fn header_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Server {
        self.builder.http1().header_read_timeout(timeout);
        self
    }

    /// At most `n` connections open at once (at least 1).
    pub fn max_connections(mut self, n: usize) -> Server {
        self.max_connections = Some(n.max(1));
        self
    }

    /// How long [`serve`](Server::serve) waits for open connections once shutdown starts.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Server {
        self.shutdown_timeout = timeout;
        self
    }

    /// Serves a tower service (an axum `Router`, say) until `shutdown` completes.
    pub async fn serve_tower<S, B>(
        &self,
        listener: TcpListener,
        service: S,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<ServeSummary>
    where
        S: tower_service::Service<Request<Incoming>, Response = Response<B>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let service = ::hyper_util::service::TowerToHyperService::new(service);
        self.serve(listener, service, shutdown).await
    }

    /// Serves `service` on every connection `listener` accepts until `shutdown` completes,
    /// then shuts down gracefully (see [`Server`]). Returns what it did; it does not return
    /// early for an accept error.
    pub async fn serve<S, B>(
        &self,
        listener: TcpListener,
        service: S,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<ServeSummary>
    where
        S: ::hyper::service::Service<Request<Incoming>, Response = Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let mut summary = ServeSummary::default();
        let stop = Arc::new(Stop::default());
        let limit = self
            .max_connections
            .map(|n| Arc::new(tokio::sync::Semaphore::new(n)));
        let mut connections = JoinSet::new();
        let mut shutdown = pin!(shutdown);
        let mut backoff = AcceptBackoff::default();
        loop {
            let accept = async {
                let permit = match &limit {
                    Some(sem) => Some(sem.clone().acquire_owned().await),
                    None => None,
                };
                (listener.accept().await, permit)
            };
            crate::select! {
                biased;
                _ = &mut shutdown => break,
                Some(ended) = connections.join_next(), if !connections.is_empty() => {
                    summary.connection_ended(&ended);
                }
                (accepted, permit) = accept => match accepted {
                    Ok((stream, _peer)) => {
                        backoff.reset();
                        summary.accepted += 1;
                        let _ = stream.set_nodelay(true);
                        let conn = self
                            .builder
                            .serve_connection_with_upgrades(Io::new(stream), service.clone())
                            .into_owned();
                        let conn = Graceful {
                            conn,
                            stop: stop.clone(),
                            registered: None,
                            draining: false,
                        };
                        connections.spawn(async move {
                            let _permit = permit;
                            conn.await
                        });
                    }
                    Err(e) => {
                        summary.accept_errors += 1;
                        if let Some(pause) = backoff.after(&e) {
                            tracing::warn!(error = %e, ?pause, "accept failed; backing off");
                            time::sleep(pause).await;
                        } else {
                            tracing::debug!(error = %e, "accept failed for one connection");
                        }
                    }
                },
            }
        }
        drop(listener);
        stop.fire();
        let drain = async {
            while let Some(ended) = connections.join_next().await {
                summary.connection_ended(&ended);
            }
        };
        if time::timeout(self.shutdown_timeout, drain).await.is_err() {
            summary.aborted_at_shutdown = connections.len();
            tracing::warn!(
                open = connections.len(),
                "connections still open after the shutdown timeout: dropping them"
            );
            connections.shutdown().await;
        }
        Ok(summary)
    }
}

/// The server's stop signal to its connections: a flag, and the wakers of the connections
/// that wait. A connection registers its waker once (again only if its task's waker changes),
/// so that a poll of a busy connection costs one atomic load for it, not a channel's poll.
#[derive(Default)]
struct Stop {
    stopping: AtomicBool,
    waiting: Mutex<Slab<Waker>>,
}

impl Stop {
    fn fire(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = lock(&self.waiting).drain().collect();
        for w in wakers {
            w.wake();
        }
    }
}

pin_project_lite::pin_project! {
    /// One connection: when the server stops, asks it to finish gracefully, then drives it to
    /// its end.
    struct Graceful<C> {
        #[pin]
        conn: C,
        stop: Arc<Stop>,
        // The registered waker's key in `stop.waiting`, and a copy to compare with.
        registered: Option<(usize, Waker)>,
        draining: bool,
    }

    impl<C> PinnedDrop for Graceful<C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some((key, _)) = this.registered.take() {
                lock(&this.stop.waiting).try_remove(key);
            }
        }
    }
}

impl<C> Future for Graceful<C>
where
    C: Future<Output = Result<(), BoxError>> + GracefulShutdown,
{
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        if !*this.draining {
            let fresh = match this.registered {
                Some((_, w)) => !w.will_wake(cx.waker()),
                None => true,
            };
            if fresh {
                let mut waiting = lock(&this.stop.waiting);
                if let Some((key, _)) = this.registered.take() {
                    waiting.try_remove(key);
                }
                let key = waiting.insert(cx.waker().clone());
                *this.registered = Some((key, cx.waker().clone()));
            }
            // Checked after registering: a `fire` in between is seen here or wakes us.
            if this.stop.stopping.load(Ordering::SeqCst) {
                *this.draining = true;
                this.conn.as_mut().graceful_shutdown();
            }
        }
        this.conn.poll(cx)
    }
}

/// hyper-util's connections, which each have an inherent `graceful_shutdown`.
trait GracefulShutdown {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> GracefulShutdown for auto::UpgradeableConnection<'static, I, S, Executor>
where
    S: ::hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: 'static,
    S::Error: Into<BoxError>,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    I: ::hyper::rt::Read + ::hyper::rt::Write + Unpin + Send + 'static,
    Executor: ::hyper_util::server::conn::auto::HttpServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        auto::UpgradeableConnection::graceful_shutdown(self)
    }
}

/// The accept loop's pause after an error.
#[derive(Debug, Default)]
struct AcceptBackoff {
    next: Option<Duration>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    fn reset(&mut self) {
        self.next = None;
    }

    /// `None` for an error of the one connection being accepted (go on at once); otherwise how
    /// long to pause (5 ms, doubling up to 1 s).
    fn after(&mut self, e: &io::Error) -> Option<Duration> {
        use io::ErrorKind::*;
        if matches!(
            e.kind(),
            ConnectionAborted | ConnectionReset | Interrupted | PermissionDenied
        ) || e.raw_os_error() == Some(rustix::io::Errno::PROTO.raw_os_error())
        {
            return None;
        }
        let pause = self.next.unwrap_or(Self::FIRST);
        self.next = Some((pause * 2).min(Self::MAX));
        Some(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_skips_per_connection_errors_and_doubles_on_exhaustion() {
        let mut b = AcceptBackoff::default();
        assert_eq!(
            b.after(&io::Error::from(io::ErrorKind::ConnectionAborted)),
            None
        );
        let emfile = io::Error::from_raw_os_error(rustix::io::Errno::MFILE.raw_os_error());
        assert_eq!(b.after(&emfile), Some(Duration::from_millis(5)));
        assert_eq!(b.after(&emfile), Some(Duration::from_millis(10)));
        for _ in 0..20 {
            b.after(&emfile);
        }
        assert_eq!(b.after(&emfile), Some(Duration::from_secs(1)));
        b.reset();
        assert_eq!(b.after(&emfile), Some(Duration::from_millis(5)));
    }

    /// The futures-io path of `Io::poll_read`: into an uninitialised cursor, then advanced
    /// (Miri checks the unsafe parts).
    #[test]
    fn futures_io_reads_fill_hypers_buffer() {
        use ::hyper::rt::Read;
        let mut io = Io::new(futures_lite::io::Cursor::new(b"hello, hyper".to_vec()));
        let mut storage = [MaybeUninit::<u8>::uninit(); 5];
        let mut buf = ::hyper::rt::ReadBuf::uninit(&mut storage);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let polled = Pin::new(&mut io).poll_read(&mut cx, buf.unfilled());
        assert!(matches!(polled, Poll::Ready(Ok(()))));
        assert_eq!(buf.filled(), b"hello");
        assert!(
            !::hyper::rt::Write::is_write_vectored(&io),
            "not one of our sockets"
        );
    }

    #[test]
    fn zero_fill_initialises_everything() {
        let mut buf = [MaybeUninit::<u8>::uninit(); 17];
        assert_eq!(zero_fill(&mut buf), &[0u8; 17][..]);
    }
}
