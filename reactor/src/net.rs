//! Sockets: TCP, UDP and Unix, over [`Async`].

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net as unix;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::Async;
use crate::resolve::{ToSocketAddrs, resolve};

/// The listen backlog: tokio's figure. std's 128 overflows when a thousand clients connect at
/// once, and the kernel's SYN retries then cost whole seconds.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Tries `f` on each address; the last error if all fail.
async fn each_addr<T, F: Future<Output = io::Result<T>>>(
    addrs: Vec<SocketAddr>,
    mut f: impl FnMut(SocketAddr) -> F,
) -> io::Result<T> {
    let mut last = None;
    for a in addrs {
        match f(a).await {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one address"))
}

/// Starts a non-blocking connect; the socket is connected once it is writable without error.
fn start_connect(
    family: AddressFamily,
    connect: impl FnOnce(&OwnedFd) -> rustix::io::Result<()>,
) -> io::Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    match connect(&fd) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) | Err(rustix::io::Errno::AGAIN) => Ok(fd),
        Err(e) => Err(e.into()),
    }
}

/// Waits for a non-blocking connect to finish.
async fn finish_connect<T: AsFd>(io: &Async<T>) -> io::Result<()> {
    io.write_with(|s| match rustix::net::sockopt::socket_error(s)? {
        Err(e) => Err(e.into()),
        Ok(()) => match rustix::net::getpeername(s) {
            Ok(_) => Ok(()),
            Err(rustix::io::Errno::NOTCONN) => Err(io::ErrorKind::WouldBlock.into()),
            Err(e) => Err(e.into()),
        },
    })
    .await
}

/// Listens for TCP connections.
#[derive(Debug)]
pub struct TcpListener(Async<std::net::TcpListener>);

impl TcpListener {
    /// Binds to `addr` and listens with a backlog of [`LISTEN_BACKLOG`].
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let l = std::net::TcpListener::bind(&resolve(addr).await?[..])?;
        rustix::net::listen(&l, LISTEN_BACKLOG)?;
        Ok(TcpListener(Async::new(l)?))
    }

    /// Accepts a connection.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, addr) = self.0.read_with(|l| l.accept()).await?;
        Ok((TcpStream(Async::new(s)?), addr))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }

    /// The `Async` wrapper, for operations not covered here.
    pub fn as_async(&self) -> &Async<std::net::TcpListener> {
        &self.0
    }
}

/// A TCP connection. `poll_close` shuts down the write half: the peer reads end-of-file while
/// this side can still read (a half-close).
#[derive(Debug)]
pub struct TcpStream(Async<std::net::TcpStream>);

impl TcpStream {
    /// Connects to `addr` (each resolved address in turn) without blocking the thread.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(resolve(addr).await?, |a| async move {
            let family = if a.is_ipv4() {
                AddressFamily::INET
            } else {
                AddressFamily::INET6
            };
            let fd = start_connect(family, |fd| rustix::net::connect(fd, &a))?;
            let s = Async::new(std::net::TcpStream::from(fd))?;
            finish_connect(&s).await?;
            Ok(TcpStream(s))
        })
        .await
    }

    /// Wraps a connected std stream.
    pub fn from_std(s: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream(Async::new(s)?))
    }

    /// Local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }

    /// Peer address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().peer_addr()
    }

    /// Sets TCP_NODELAY.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.0.get_ref().set_nodelay(on)
    }

    /// Shuts down one or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.0.get_ref().shutdown(how)
    }

    /// The `Async` wrapper, for operations not covered here.
    pub fn as_async(&self) -> &Async<std::net::TcpStream> {
        &self.0
    }
}

/// Half-close for a stream socket: flush nothing (sockets have no buffer here), shut down
/// writing. A peer that already went away is not an error for a close.
fn shutdown_write(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

macro_rules! stream_io {
    ($($ty:ty),*) => {$(
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                let len = buf.len();
                self.0.poll_read_stream(cx, len, |mut io| std::io::Read::read(&mut io, buf))
            }
        }

        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut &self.0).poll_write(cx, buf)
            }
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut &self.0).poll_write_vectored(cx, bufs)
            }
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(shutdown_write(self.0.get_ref().shutdown(Shutdown::Write)))
            }
        }
    )*};
}

stream_io!(TcpStream, &TcpStream, UnixStream, &UnixStream);

/// A UDP socket.
#[derive(Debug)]
pub struct UdpSocket(Async<std::net::UdpSocket>);

impl UdpSocket {
    /// Binds to `addr`.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let addrs = resolve(addr).await?;
        Ok(UdpSocket(Async::new(std::net::UdpSocket::bind(
            &addrs[..],
        )?)?))
    }

    /// Sets the default peer for `send` and `recv`.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let addrs = resolve(addr).await?;
        self.0.get_ref().connect(&addrs[..])
    }

    /// Sends a datagram to `addr`.
    pub async fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let addr = resolve(addr).await?[0];
        self.0.write_with(|s| s.send_to(buf, addr)).await
    }

    /// Receives a datagram and its sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.read_with(|s| s.recv_from(buf)).await
    }

    /// Sends to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_with(|s| s.send(buf)).await
    }

    /// Receives from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_with(|s| s.recv(buf)).await
    }

    /// Local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }

    /// The `Async` wrapper, for operations not covered here.
    pub fn as_async(&self) -> &Async<std::net::UdpSocket> {
        &self.0
    }
}

/// Listens for Unix stream connections.
#[derive(Debug)]
pub struct UnixListener(Async<unix::UnixListener>);

impl UnixListener {
    /// Binds to `path` and listens with a backlog of [`LISTEN_BACKLOG`].
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let l = unix::UnixListener::bind(path)?;
        rustix::net::listen(&l, LISTEN_BACKLOG)?;
        Ok(UnixListener(Async::new(l)?))
    }

    /// Accepts a connection.
    pub async fn accept(&self) -> io::Result<(UnixStream, unix::SocketAddr)> {
        let (s, addr) = self.0.read_with(|l| l.accept()).await?;
        Ok((UnixStream(Async::new(s)?), addr))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<unix::SocketAddr> {
        self.0.get_ref().local_addr()
    }
}

/// A Unix stream connection; `poll_close` shuts down the write half, as for TCP.
#[derive(Debug)]
pub struct UnixStream(Async<unix::UnixStream>);

impl UnixStream {
    /// Connects to `path` without blocking the thread.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = SocketAddrUnix::new(path.as_ref())?;
        let fd = start_connect(AddressFamily::UNIX, |fd| rustix::net::connect(fd, &addr))?;
        let s = Async::new(unix::UnixStream::from(fd))?;
        finish_connect(&s).await?;
        Ok(UnixStream(s))
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = unix::UnixStream::pair()?;
        Ok((UnixStream(Async::new(a)?), UnixStream(Async::new(b)?)))
    }

    /// Shuts down one or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.0.get_ref().shutdown(how)
    }

    /// The `Async` wrapper, for operations not covered here.
    pub fn as_async(&self) -> &Async<unix::UnixStream> {
        &self.0
    }
}

/// A Unix datagram socket.
#[derive(Debug)]
pub struct UnixDatagram(Async<unix::UnixDatagram>);

impl UnixDatagram {
    /// Binds to `path`.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram(Async::new(unix::UnixDatagram::bind(path)?)?))
    }

    /// An unbound socket.
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram(Async::new(unix::UnixDatagram::unbound()?)?))
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = unix::UnixDatagram::pair()?;
        Ok((UnixDatagram(Async::new(a)?), UnixDatagram(Async::new(b)?)))
    }

    /// Sets the default peer.
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.0.get_ref().connect(path)
    }

    /// Sends a datagram to `path`.
    pub async fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        self.0.write_with(|s| s.send_to(buf, path.as_ref())).await
    }

    /// Receives a datagram and its sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, unix::SocketAddr)> {
        self.0.read_with(|s| s.recv_from(buf)).await
    }

    /// Sends to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_with(|s| s.send(buf)).await
    }

    /// Receives from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_with(|s| s.recv(buf)).await
    }
}
