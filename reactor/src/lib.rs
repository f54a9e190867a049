//! The I/O driver: readiness events from the operating system, dispatched to the tasks that wait
//! for them. It knows nothing of schedulers: the runtime's driver calls [`Poller::poll`] from
//! whichever worker holds it, and tasks wait on [`Async`] objects.
//!
//! Backends, chosen at build time: `mio` (default) or the `polling` crate (feature `polling`).
//! Both wait with sub-millisecond precision (epoll alone rounds timeouts up to whole
//! milliseconds; a timerfd gives the exact wake-up).
//!
//! The socket types ([`TcpListener`], [`TcpStream`], [`UdpSocket`], [`UnixListener`],
//! [`UnixStream`], [`UnixDatagram`]) and [`Async<T>`] implement `futures-io`'s `AsyncRead` /
//! `AsyncWrite` where they apply.

mod io;
mod net;
mod reactor;
mod readiness;
mod resolve;
mod sys;

pub use io::{Async, current};
pub use net::{
    LISTEN_BACKLOG, TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream,
};
pub use reactor::{Poller, Reactor};
pub use resolve::{Lookup, Resolver, ToSocketAddrs, lookup_host};
pub use sys::BACKEND;
