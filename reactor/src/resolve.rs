//! Address resolution that does not block a worker: IP literals are parsed on the spot, host
//! names are looked up where the current runtime's [`Resolver`] sends them (the facade: its
//! blocking pool), as tokio does.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use runtime_core::JoinHandle;

/// A host-name lookup to run where blocking is allowed.
pub type Lookup = Box<dyn FnOnce() -> io::Result<Vec<SocketAddr>> + Send + 'static>;

/// Where a runtime runs host-name lookups, off its async workers: a value in the runtime's
/// [`Extensions`](runtime_core::Extensions), inserted by whoever builds the runtime (the facade
/// sends lookups to its blocking pool).
pub struct Resolver(Box<dyn Fn(Lookup) -> JoinHandle<io::Result<Vec<SocketAddr>>> + Send + Sync>);

impl Resolver {
    /// A resolver that hands each lookup to `run` (which must not run it on the calling
    /// thread, an async worker) and awaits the handle it returns.
    pub fn new(
        run: impl Fn(Lookup) -> JoinHandle<io::Result<Vec<SocketAddr>>> + Send + Sync + 'static,
    ) -> Resolver {
        Resolver(Box::new(run))
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
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
            let handle = runtime_core::context::with_current(|h| {
                let h = h.ok_or_else(no_runtime)?;
                let resolver = h.extension::<Resolver>().ok_or_else(no_resolver)?;
                Ok::<_, io::Error>((resolver.0)(job))
            })?;
            handle.await.map_err(io::Error::other)??
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

fn no_resolver() -> io::Error {
    io::Error::other(
        "this runtime has no resolver for host names: build it with the facade's Builder, or \
         insert a reactor::Resolver into its Config::extensions; or connect to an IP address",
    )
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
/// IP literals need no runtime; a host name needs one (inside a facade runtime,
/// `facade::net::lookup_host` sends it to the blocking pool):
///
/// ```
/// use futures_lite::future::block_on;
/// let addrs: Vec<_> = block_on(reactor::lookup_host("127.0.0.1:80"))?.collect();
/// assert_eq!(addrs, ["127.0.0.1:80".parse().unwrap()]);
/// let err = block_on(reactor::lookup_host("localhost:80")).unwrap_err();
/// assert!(err.to_string().contains("inside a runtime"), "{err}");
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn lookup_host(host: impl ToSocketAddrs) -> io::Result<std::vec::IntoIter<SocketAddr>> {
    Ok(resolve(host).await?.into_iter())
}
