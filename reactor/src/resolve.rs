//! Address resolution that does not block a worker: IP literals are parsed on the spot, host
//! names are looked up on the runtime's blocking pool (through a hook that the layer above
//! installs), as tokio does.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::OnceLock;

use runtime_core::JoinHandle;

/// A host-name lookup to run where blocking is allowed.
pub type Lookup = Box<dyn FnOnce() -> io::Result<Vec<SocketAddr>> + Send + 'static>;

/// Runs a [`Lookup`] off the async workers; `None` when the calling thread has no runtime to
/// run it on (the lookup then runs in place).
pub type LookupHook = fn(Lookup) -> Option<JoinHandle<io::Result<Vec<SocketAddr>>>>;

static LOOKUP: OnceLock<LookupHook> = OnceLock::new();

/// Tells the reactor crate where host-name lookups run (the facade sends them to the blocking
/// pool). Without a hook they run in place, blocking the caller.
pub fn set_lookup_hook(hook: LookupHook) {
    let _ = LOOKUP.set(hook);
}

mod sealed {
    use super::*;

    /// An address, resolved or not yet.
    #[derive(Debug)]
    pub enum Addrs {
        Ready(Vec<SocketAddr>),
        /// `host:port` or (host, port), for the blocking resolver.
        Lookup(String, Option<u16>),
    }

    pub trait Sealed {
        fn addrs(&self) -> io::Result<Addrs>;
    }
}

use sealed::Addrs;

/// What the sockets' `bind`/`connect`/`send_to` accept: a [`SocketAddr`] (and its V4/V6
/// forms), an `(IpAddr, u16)` pair, a slice of addresses, or a host name with a port, as
/// `"host:port"` or `("host", port)`. IP literals never block; names are looked up on the
/// runtime's blocking pool. The same set as `std::net::ToSocketAddrs`, sealed.
pub trait ToSocketAddrs: sealed::Sealed {}

impl<T: sealed::Sealed + ?Sized> ToSocketAddrs for T {}

macro_rules! ready {
    ($($t:ty => |$s:ident| $e:expr),* $(,)?) => {$(
        impl sealed::Sealed for $t {
            fn addrs(&self) -> io::Result<Addrs> {
                let $s = self;
                Ok(Addrs::Ready($e))
            }
        }
    )*};
}

ready!(
    SocketAddr => |a| vec![*a],
    SocketAddrV4 => |a| vec![SocketAddr::V4(*a)],
    SocketAddrV6 => |a| vec![SocketAddr::V6(*a)],
    (IpAddr, u16) => |a| vec![SocketAddr::new(a.0, a.1)],
    (Ipv4Addr, u16) => |a| vec![SocketAddr::new(IpAddr::V4(a.0), a.1)],
    (Ipv6Addr, u16) => |a| vec![SocketAddr::new(IpAddr::V6(a.0), a.1)],
    [SocketAddr] => |a| a.to_vec(),
);

impl sealed::Sealed for str {
    fn addrs(&self) -> io::Result<Addrs> {
        match self.parse::<SocketAddr>() {
            Ok(a) => Ok(Addrs::Ready(vec![a])),
            Err(_) => Ok(Addrs::Lookup(self.to_owned(), None)),
        }
    }
}

impl sealed::Sealed for String {
    fn addrs(&self) -> io::Result<Addrs> {
        self.as_str().addrs()
    }
}

impl sealed::Sealed for (&str, u16) {
    fn addrs(&self) -> io::Result<Addrs> {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Ok(Addrs::Ready(vec![SocketAddr::new(ip, self.1)])),
            Err(_) => Ok(Addrs::Lookup(self.0.to_owned(), Some(self.1))),
        }
    }
}

impl sealed::Sealed for (String, u16) {
    fn addrs(&self) -> io::Result<Addrs> {
        (self.0.as_str(), self.1).addrs()
    }
}

impl<T: sealed::Sealed + ?Sized> sealed::Sealed for &T {
    fn addrs(&self) -> io::Result<Addrs> {
        (**self).addrs()
    }
}

fn lookup_now(host: &str, port: Option<u16>) -> io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs as _;
    Ok(match port {
        Some(port) => (host, port).to_socket_addrs()?.collect(),
        None => host.to_socket_addrs()?.collect(),
    })
}

/// Resolves `addr`: at once for IP literals, on the blocking pool for host names. Fails if it
/// resolves to nothing.
pub(crate) async fn resolve(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    let addrs = match addr.addrs()? {
        Addrs::Ready(a) => a,
        Addrs::Lookup(host, port) => {
            let job: Lookup = Box::new(move || lookup_now(&host, port));
            match LOOKUP.get() {
                Some(hook) => match hook(job) {
                    Some(handle) => handle.await.map_err(io::Error::other)??,
                    None => return Err(no_runtime()),
                },
                None => job()?,
            }
        }
    };
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        ));
    }
    Ok(addrs)
}

fn no_runtime() -> io::Error {
    io::Error::other(
        "there is no runtime on this thread to look a host name up on: resolve inside a runtime \
         (in a task, inside Runtime::block_on, or while a Runtime::enter() guard is alive)",
    )
}

/// Looks up the addresses of `host` (`"host:port"`, `("host", port)` or any address that
/// [`ToSocketAddrs`] takes) without blocking the async workers, as `tokio::net::lookup_host`.
///
/// ```
/// // (Here without a runtime's hook, so the lookup runs in place; `facade::net::lookup_host`
/// // inside a runtime sends it to the blocking pool.)
/// let addrs: Vec<_> =
///     futures_lite::future::block_on(reactor::lookup_host("localhost:80"))?.collect();
/// assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn lookup_host(host: impl ToSocketAddrs) -> io::Result<std::vec::IntoIter<SocketAddr>> {
    Ok(resolve(host).await?.into_iter())
}
