//! Child processes (tokio's `process`): [`Command`] spawns, [`Child::wait`] waits on the
//! reactor, piped stdio is `AsyncRead` / `AsyncWrite`.
//!
//! Waiting: on Linux a child gets a pidfd (`pidfd_open`), which becomes readable when the
//! child exits; it is registered with the current runtime's reactor, so a wait costs no thread
//! and many children can be waited on at once. Where `pidfd_open` is refused (kernels before
//! 5.3, or seccomp rules), `wait` polls `try_wait` on a timer instead, backing off from 1 ms to
//! 50 ms (a reaped exit is seen within that delay).
//!
//! ```
//! facade::block_on(async {
//!     let out = facade::process::Command::new("echo").arg("hello").output().await?;
//!     assert!(out.status.success());
//!     assert_eq!(out.stdout, b"hello\n");
//!     std::io::Result::Ok(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::pin::Pin;
use std::process::{ExitStatus, Output};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use reactor::Async;

pub use std::process::Stdio;

/// A process to spawn: std's `Command`, with spawning that returns an asynchronous [`Child`].
#[derive(Debug)]
pub struct Command {
    std: std::process::Command,
    kill_on_drop: bool,
}

impl Command {
    /// A command running `program`.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            std: std::process::Command::new(program),
            kill_on_drop: false,
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, val);
        self
    }

    /// Sets environment variables.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes an environment variable.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Starts from an empty environment.
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// The child's standard input.
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdin(cfg);
        self
    }

    /// The child's standard output.
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdout(cfg);
        self
    }

    /// The child's standard error.
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stderr(cfg);
        self
    }

    /// Kill the child when its [`Child`] is dropped before it exited (default: no, as std).
    pub fn kill_on_drop(&mut self, kill: bool) -> &mut Command {
        self.kill_on_drop = kill;
        self
    }

    /// std's `Command`, for settings not mirrored here (`uid`, `pre_exec`...).
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// Starts the process. Its stdio pipes, if any, and its exit are registered with the
    /// current runtime's reactor.
    ///
    /// # Errors
    ///
    /// As std's `spawn`; and outside a runtime, the reactor's message.
    pub fn spawn(&mut self) -> io::Result<Child> {
        let reactor = reactor::current()?;
        let mut std = self.std.spawn()?;
        let stdin = std
            .stdin
            .take()
            .map(|s| pipe(s.into(), &reactor))
            .transpose()?;
        let stdout = std
            .stdout
            .take()
            .map(|s| pipe(s.into(), &reactor))
            .transpose()?;
        let stderr = std
            .stderr
            .take()
            .map(|s| pipe(s.into(), &reactor))
            .transpose()?;
        let pid = rustix::process::Pid::from_raw(std.id() as i32);
        let pidfd = pid
            .and_then(|pid| {
                rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
            })
            .and_then(|fd| Async::with_reactor(fd, &reactor).ok());
        Ok(Child {
            std,
            pidfd,
            status: None,
            kill_on_drop: self.kill_on_drop,
            stdin: stdin.map(ChildStdin),
            stdout: stdout.map(ChildStdout),
            stderr: stderr.map(ChildStderr),
        })
    }

    /// Runs the process to completion, collecting its output (stdout and stderr piped unless
    /// set otherwise, stdin null).
    pub async fn output(&mut self) -> io::Result<Output> {
        self.std.stdin(Stdio::null());
        self.std.stdout(Stdio::piped());
        self.std.stderr(Stdio::piped());
        self.spawn()?.wait_with_output().await
    }

    /// Runs the process to completion (stdio inherited unless set otherwise); its exit status.
    pub async fn status(&mut self) -> io::Result<ExitStatus> {
        let mut child = self.spawn()?;
        // As std: the handles of piped stdio are dropped, not read.
        child.stdin.take();
        child.stdout.take();
        child.stderr.take();
        child.wait().await
    }
}

fn pipe(fd: OwnedFd, reactor: &std::sync::Arc<reactor::Reactor>) -> io::Result<Async<File>> {
    Async::with_reactor(File::from(fd), reactor)
}

/// A running (or exited) child process (tokio's `process::Child`).
#[derive(Debug)]
pub struct Child {
    std: std::process::Child,
    /// `None` where `pidfd_open` is refused: `wait` polls on a timer then.
    pidfd: Option<Async<OwnedFd>>,
    status: Option<ExitStatus>,
    kill_on_drop: bool,
    /// The child's stdin, if piped.
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, if piped.
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, if piped.
    pub stderr: Option<ChildStderr>,
}

impl Child {
    /// The process id (`None` once it was waited for, as tokio).
    pub fn id(&self) -> Option<u32> {
        self.status.is_none().then(|| self.std.id())
    }

    /// Its exit status, if it has exited (without waiting).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let s = self.std.try_wait()?;
        self.status = s;
        Ok(s)
    }

    /// Waits for the process to exit (closing its stdin first, so that a child reading it is
    /// not left waiting). Cancel-safe.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.stdin.take();
        if let Some(s) = self.try_wait()? {
            return Ok(s);
        }
        if self.pidfd.is_some() {
            let status = std::future::poll_fn(|cx| self.poll_pidfd(cx)).await?;
            self.status = Some(status);
            return Ok(status);
        }
        let mut delay = Duration::from_millis(1);
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(s);
            }
            crate::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(50));
        }
    }

    fn poll_pidfd(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        let Child { std, pidfd, .. } = self;
        let pidfd = pidfd.as_ref().expect("checked by wait");
        pidfd.poll_read_with(cx, |_| match std.try_wait()? {
            Some(s) => Ok(s),
            None => Err(io::ErrorKind::WouldBlock.into()),
        })
    }

    /// Waits for the process and collects what it writes to its piped stdout and stderr
    /// (read at the same time, so that a full pipe never stalls the child).
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        self.stdin.take();
        let mut out = self.stdout.take();
        let mut err = self.stderr.take();
        let read_out = async {
            let mut v = Vec::new();
            if let Some(o) = out.as_mut() {
                o.read_to_end(&mut v).await?;
            }
            io::Result::Ok(v)
        };
        let read_err = async {
            let mut v = Vec::new();
            if let Some(e) = err.as_mut() {
                e.read_to_end(&mut v).await?;
            }
            io::Result::Ok(v)
        };
        let (stdout, stderr) = futures_lite::future::try_zip(read_out, read_err).await?;
        let status = self.wait().await?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Sends `SIGKILL` (no-op once it was waited for).
    pub fn start_kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        self.std.kill()
    }

    /// Kills the process and waits for it.
    pub async fn kill(&mut self) -> io::Result<()> {
        self.start_kill()?;
        self.wait().await.map(|_| ())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.kill_on_drop && self.status.is_none() {
            if let Ok(None) = self.std.try_wait() {
                let _ = self.std.kill();
                // Reap it, so that no zombie is left (a killed process exits at once).
                let _ = self.std.wait();
            }
        }
    }
}

macro_rules! stdio {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(Async<File>);

        impl $name {
            /// The pipe's file descriptor, as an owned std file (deregistered from the reactor).
            pub fn into_owned_fd(self) -> OwnedFd {
                self.0.into_inner().into()
            }
        }
    };
}

stdio!(
    /// The child's piped stdin: `AsyncWrite`.
    ChildStdin
);
stdio!(
    /// The child's piped stdout: `AsyncRead`.
    ChildStdout
);
stdio!(
    /// The child's piped stderr: `AsyncRead`.
    ChildStderr
);

impl AsyncWrite for ChildStdin {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

impl AsyncRead for ChildStdout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncRead for ChildStderr {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}
