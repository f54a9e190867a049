//! Unix signals, delivered through the reactor (tokio's `signal`): [`ctrl_c`] and
//! [`unix::signal`].
//!
//! Each listener registers a handler with `signal-hook-registry` (which chains handlers, so
//! several listeners of one signal, in this crate or elsewhere, all get it) and owns a socket
//! pair: the handler writes a byte to one end, which is all a signal handler may safely do,
//! and the other end is registered with the current runtime's reactor, so `recv` waits like
//! any socket read. Signals that arrive before `recv` is called are not lost; several of them
//! arriving together may be seen as one.
//!
//! Once a process listens for a signal, that signal's default action (for `SIGINT`,
//! terminating) no longer happens, even after the listener is dropped, as with tokio.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use reactor::Async;

/// Waits for Ctrl-C (`SIGINT`) once.
///
/// ```no_run
/// #[facade::main]
/// async fn main() -> std::io::Result<()> {
///     facade::signal::ctrl_c().await?;
///     println!("bye");
///     Ok(())
/// }
/// ```
pub async fn ctrl_c() -> io::Result<()> {
    let mut s = unix::signal(unix::SignalKind::interrupt())?;
    s.recv().await;
    Ok(())
}

/// Listening for any Unix signal.
pub mod unix {
    use super::*;

    /// A signal number, with constructors for the usual ones (tokio's `SignalKind`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SignalKind(i32);

    impl SignalKind {
        /// Any signal by number.
        pub const fn from_raw(signum: i32) -> SignalKind {
            SignalKind(signum)
        }

        /// The signal's number.
        pub const fn as_raw_value(&self) -> i32 {
            self.0
        }

        /// `SIGINT` (Ctrl-C).
        pub fn interrupt() -> SignalKind {
            SignalKind(rustix::process::Signal::INT.as_raw())
        }

        /// `SIGTERM`.
        pub fn terminate() -> SignalKind {
            SignalKind(rustix::process::Signal::TERM.as_raw())
        }

        /// `SIGHUP`.
        pub fn hangup() -> SignalKind {
            SignalKind(rustix::process::Signal::HUP.as_raw())
        }

        /// `SIGQUIT`.
        pub fn quit() -> SignalKind {
            SignalKind(rustix::process::Signal::QUIT.as_raw())
        }

        /// `SIGUSR1`.
        pub fn user_defined1() -> SignalKind {
            SignalKind(rustix::process::Signal::USR1.as_raw())
        }

        /// `SIGUSR2`.
        pub fn user_defined2() -> SignalKind {
            SignalKind(rustix::process::Signal::USR2.as_raw())
        }

        /// `SIGCHLD`.
        pub fn child() -> SignalKind {
            SignalKind(rustix::process::Signal::CHILD.as_raw())
        }

        /// `SIGALRM`.
        pub fn alarm() -> SignalKind {
            SignalKind(rustix::process::Signal::ALARM.as_raw())
        }

        /// `SIGPIPE`.
        pub fn pipe() -> SignalKind {
            SignalKind(rustix::process::Signal::PIPE.as_raw())
        }

        /// `SIGWINCH`.
        pub fn window_change() -> SignalKind {
            SignalKind(rustix::process::Signal::WINCH.as_raw())
        }
    }

    /// A listener for one signal (tokio's `unix::Signal`); see [`signal`].
    #[derive(Debug)]
    pub struct Signal {
        id: signal_hook_registry::SigId,
        kind: SignalKind,
        rx: Async<UnixStream>,
    }

    /// Starts listening for `kind` on the current runtime's reactor.
    ///
    /// Fails with `InvalidInput` for a signal that cannot be caught (`SIGKILL`, `SIGSTOP`) or
    /// must not be (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`), and outside a runtime with the
    /// message of the reactor.
    ///
    /// ```
    /// use facade::signal::unix::{SignalKind, signal};
    ///
    /// facade::block_on(async {
    ///     let mut usr1 = signal(SignalKind::user_defined1())?;
    ///     rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::USR1)?;
    ///     assert_eq!(usr1.recv().await, Some(()));
    ///     std::io::Result::Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn signal(kind: SignalKind) -> io::Result<Signal> {
        let n = kind.0;
        if n <= 0 || signal_hook_registry::FORBIDDEN.contains(&n) || n >= 65 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "signal {n} cannot be listened for: SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, \
                     SIGILL and SIGFPE are refused, and a signal number is from 1 to 64"
                ),
            ));
        }
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        let rx = Async::new(rx)?;
        let action = move || {
            // A full socket already holds a pending wake-up: nothing is lost.
            let _ = (&tx).write(&[1]);
        };
        // SAFETY: the action only writes to a non-blocking socket (one `write` system call,
        // no allocation, no lock), which is async-signal-safe; the signal is not in FORBIDDEN.
        let id = unsafe { signal_hook_registry::register(n, action) }?;
        Ok(Signal { id, kind, rx })
    }

    impl Signal {
        /// Waits for the signal; `None` if it can never come (the runtime's reactor shut
        /// down). Cancel-safe.
        pub async fn recv(&mut self) -> Option<()> {
            std::future::poll_fn(|cx| self.poll_recv(cx)).await
        }

        /// Polls for the signal, as [`recv`](Self::recv).
        pub fn poll_recv(
            &mut self,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<()>> {
            self.rx
                .poll_read_with(cx, |mut s| {
                    let mut buf = [0u8; 64];
                    match s.read(&mut buf)? {
                        0 => Err(io::ErrorKind::UnexpectedEof.into()),
                        _ => Ok(()),
                    }
                })
                .map(|r| r.ok())
        }

        /// The signal listened for.
        pub fn kind(&self) -> SignalKind {
            self.kind
        }
    }

    impl Drop for Signal {
        fn drop(&mut self) {
            signal_hook_registry::unregister(self.id);
        }
    }
}
