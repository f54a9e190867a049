//! An async runtime whose scheduler is a plug-in.
//!
//! Build a [`Runtime`] with [`Builder`], choosing the scheduling policy with one call (or the
//! `RUNTIME_SCHEDULER` environment variable through [`Builder::from_env`]); application code does
//! not change when the policy does.
//!
//! The smallest program:
//!
//! ```
//! facade::block_on(async { println!("hello") });
//! ```
//!
//! A runtime of your own, with tasks:
//!
//! ```
//! let rt = facade::Builder::new().fifo().worker_threads(2).build()?;
//! let sum = rt.block_on(async {
//!     let tasks: Vec<_> = (0..10u64).map(|i| facade::spawn(async move { i * i })).collect();
//!     let mut sum = 0;
//!     for t in tasks {
//!         sum += t.await.unwrap();
//!     }
//!     sum
//! });
//! assert_eq!(sum, 285);
//! # Ok::<(), facade::BuildError>(())
//! ```
//!
//! Sockets and timers work the same under every scheduler:
//!
//! ```
//! use facade::prelude::*;
//! use std::time::Duration;
//!
//! facade::block_on(async {
//!     let listener = facade::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     facade::spawn(async move {
//!         let (mut conn, _) = listener.accept().await?;
//!         let mut buf = [0u8; 5];
//!         conn.read_exact(&mut buf).await?;
//!         conn.write_all(&buf).await // echo
//!     });
//!     let mut c = facade::net::TcpStream::connect(addr).await?;
//!     c.write_all(b"hello").await?;
//!     let mut back = [0u8; 5];
//!     facade::time::timeout(Duration::from_secs(1), c.read_exact(&mut back)).await??;
//!     assert_eq!(&back, b"hello");
//!     std::io::Result::Ok(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Writing a scheduler: implement [`scheduler::Scheduler`] and pass it to [`Builder::custom`],
//! or register it by name with [`scheduler::register_scheduler`].
//!
//! # Guide
//!
//! ## Choosing a scheduler
//!
//! - **Work-stealing** ([`Builder::work_stealing`], the default): per-worker queues, idle
//!   workers steal. The best throughput for many short tasks; the one to start with.
//! - **FIFO** ([`Builder::fifo`]): one shared queue, tasks run in the order they became
//!   runnable, so no task waits behind more than the queue ahead of it: bounded waiting, and
//!   simple to reason about. Current-thread FIFO is the leanest runtime for one core.
//! - **Priority** ([`Builder::priority_scheduler`]): bands by [`Priority`], with shares so the
//!   low bands are not starved. For services where some work (control traffic, health checks,
//!   a UI) must keep a bounded latency while the machine is saturated by the rest.
//! - **Your own** ([`Builder::custom`]): see [`scheduler`].
//!
//! `RUNTIME_SCHEDULER` (with [`Builder::from_env`], `#[facade::main]` and `#[facade::test]`)
//! switches policies without touching code: measure yours under each.
//!
//! ## Where blocking work goes
//!
//! | work | call | runs on |
//! |---|---|---|
//! | CPU-bound (parsing, compression, a `par_iter`) | [`spawn_rayon`] | the rayon pool |
//! | synchronous I/O, a blocking library call | [`spawn_blocking`] | the elastic blocking pool |
//! | forever (a loop reading a device, a C event loop) | [`spawn_dedicated`] | a thread of its own |
//!
//! The **watchdog** ([`Builder::watchdog_threshold`]) reports a task whose single poll holds a
//! worker longer than the threshold (10 ms by default) as a `tracing` warning naming the task,
//! counts it in [`RuntimeMetrics::slow_polls`], and wakes an idle worker to take over what
//! waits behind the stuck one: the sign that some work above belongs on another pool.
//!
//! ## Coming from tokio
//!
//! A program ports by renaming `tokio::` to `facade::` for: `#[main]`, `#[test]`, `spawn`,
//! [`task::JoinHandle`], [`task::AbortHandle`], [`task::JoinSet`], [`select!`], [`join!`],
//! [`try_join!`], [`spawn_blocking`], [`time`], [`net`], [`sync`], [`fs`], [`process`],
//! [`signal`], [`io`] (over the futures-io traits, with the extension traits in [`prelude`]),
//! `Builder::new_current_thread` / `new_multi_thread`, and `LocalRuntime` with
//! [`task::spawn_local`] (there is no `LocalSet`: build a [`LocalRuntime`]). Not provided:
//! tokio's own I/O traits (use the futures-io ones, or tokio-util's compat layer),
//! `task_local!`, and a paused clock on a multi-thread runtime. The README has the table.
//!
//! ## HTTP
//!
//! With the cargo feature `hyper`, `facade::hyper` has hyper 1's executor, timer and I/O
//! adapters and `Server`, an accept loop for a hyper or tower service (an axum `Router`) with
//! graceful shutdown and a connection limit.
//!
//! ## Seeing what the runtime does
//!
//! [`Handle::metrics`] (counters, queue depths, budget-forced yields, and with
//! [`Builder::enable_histograms`] poll-time and schedule-latency histograms per worker and per
//! priority band), [`Handle::dump`] (every live task: name, spawn location, state, age, polls),
//! the hooks (`Builder::on_task_spawn` and the others: stable here), the watchdog's reports,
//! and with the cargo feature `console` the instrumentation tokio-console reads.

mod builder;
mod dedicated;
mod driver;
pub mod fs;
#[cfg(feature = "hyper")]
pub mod hyper;
pub mod io;
mod join_set;
mod local;
mod macros;
pub mod prelude;
pub mod process;
mod runtime;
pub mod scheduler;
pub mod signal;
pub mod sync;
pub mod task;
pub mod time;

/// Sockets driven by the runtime's reactor (TCP, UDP, Unix) and [`net::Async`] for any other
/// file descriptor. They implement `futures-io`'s `AsyncRead` / `AsyncWrite`.
pub mod net {
    pub use reactor::{
        Async, LISTEN_BACKLOG, TcpListener, TcpStream, ToSocketAddrs, UdpSocket, UnixDatagram,
        UnixListener, UnixStream, lookup_host,
    };
}

use std::future::Future;
use std::sync::OnceLock;

pub use blocking::PoolMetrics as BlockingMetrics;
pub use builder::{
    BuildError, BuildErrorKind, Builder, DEFAULT_POLICY_STALL_TIMEOUT, DEFAULT_WATCHDOG_THRESHOLD,
    MAX_WORKER_THREADS, SCHEDULERS,
};
pub use dedicated::{spawn_dedicated, spawn_dedicated_async, spawn_rayon};
pub use local::LocalRuntime;
#[doc(hidden)]
pub use macros::__private;

/// Runs `async fn main` on a runtime of this crate (tokio's `#[tokio::main]`).
///
/// Arguments: `scheduler = "fifo" | "worksteal" | "priority" | a name registered with
/// [`scheduler::register_scheduler`]` and `worker_threads = N` (`0`: current-thread). Without
/// them, the defaults of [`Builder::new`]. The environment variables `RUNTIME_SCHEDULER` and
/// `RUNTIME_WORKER_THREADS` (and the others [`Builder::from_env`] reads), when set, override
/// the arguments: `RUNTIME_SCHEDULER=priority cargo run` runs the same program under another
/// policy. Bad arguments are compile errors that point at the argument.
///
/// ```
/// #[facade::main(scheduler = "fifo", worker_threads = 2)]
/// async fn main() -> std::io::Result<()> {
///     let answer = facade::spawn(async { 42 }).await?;
///     assert_eq!(answer, 42);
///     Ok(())
/// }
/// ```
pub use facade_macros::main;

/// Runs an `async fn` test on a fresh runtime (tokio's `#[tokio::test]`), current-thread
/// unless `worker_threads = N` says otherwise.
///
/// Arguments as [`main`](macro@main), plus `start_paused = true` (the clock starts paused:
/// see [`Builder::start_paused`]). The environment overrides them as for `main`, so
/// `RUNTIME_SCHEDULER=priority cargo test` runs a whole test suite under another scheduler
/// without a code change.
///
/// ```no_run
/// #[facade::test(scheduler = "priority")]
/// async fn adds() {
///     assert_eq!(facade::spawn(async { 1 + 1 }).await.unwrap(), 2);
/// }
/// ```
pub use facade_macros::test;
pub use runtime::{BLOCKING_SHUTDOWN_GRACE, Handle, Runtime};
pub use runtime_core::{
    EnterGuard, HistogramBuckets, HistogramSnapshot, JoinError, JoinHandle, Priority,
    RuntimeMetrics, TaskDump, TaskId, TaskMeta, TaskSnapshot, TaskState, WorkerMetrics, YieldNow,
    yield_now,
};

/// The built-in policies and their configurations, for [`Builder::fifo_with`],
/// [`Builder::work_stealing_with`] and [`Builder::priority_scheduler_with`] (or to run a policy
/// through [`Builder::custom`]).
pub mod sched {
    /// First in, first out, with bounded waiting; the order with several workers is set in
    /// [`FifoConfig`](sched_fifo::FifoConfig).
    pub mod fifo {
        pub use sched_fifo::{Fifo, FifoConfig, FifoOrder};
    }
    /// Per-worker queues with stealing; the LIFO slot is set in
    /// [`WorkStealingConfig`](sched_worksteal::WorkStealingConfig).
    pub mod worksteal {
        pub use sched_worksteal::{WorkStealing, WorkStealingConfig};
    }
    /// Priority bands with weighted fair shares.
    pub mod priority {
        pub use sched_priority::{Accounting, Band, PriorityConfig, PriorityScheduler};
    }
}

/// Spawns a task on the current runtime.
///
/// # Panics
///
/// Outside a runtime (no task, `block_on` or `enter` guard on this thread), with a message that
/// says what to do.
///
/// ```
/// facade::block_on(async {
///     let h = facade::spawn(async { 2 + 2 });
///     assert_eq!(h.await.unwrap(), 4);
/// });
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match runtime_core::Handle::try_current() {
        Ok(h) => h.spawn(future),
        Err(_) => panic!("{}", runtime_core::NoRuntime::new("facade::spawn")),
    }
}

/// Spawns a task with priority `priority` on the current runtime (short for
/// `task::Builder::new().priority(priority).spawn(future)`). Only the priority scheduler acts on
/// priorities; the others carry them.
///
/// ```
/// facade::block_on(async {
///     let h = facade::spawn_with_priority(facade::Priority::HIGH, async {
///         facade::task::priority()
///     });
///     assert_eq!(h.await.unwrap(), Some(facade::Priority::HIGH));
/// });
/// ```
#[track_caller]
pub fn spawn_with_priority<F>(priority: Priority, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    task::Builder::new().priority(priority).spawn(future)
}

/// Runs the blocking function `f` (synchronous I/O, a short blocking call) on the current
/// runtime's blocking pool, so that no async worker waits on it. Returns the same
/// [`JoinHandle`] as a task: await it, drop it to detach; a panic in `f` arrives as a
/// [`JoinError`].
///
/// # Panics
///
/// Outside a runtime, with a message that says what to do.
///
/// ```
/// facade::block_on(async {
///     let len = facade::spawn_blocking(|| std::fs::read_dir(".").map(|d| d.count()))
///         .await
///         .unwrap();
///     assert!(len.is_ok());
/// });
/// ```
#[track_caller]
pub fn spawn_blocking<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    driver::with_current(|io| io.map(|io| io.blocking.spawn(f)))
        .unwrap_or_else(|| panic!("{}", runtime_core::NoRuntime::new("facade::spawn_blocking")))
}

/// Runs `future` to completion on a default runtime, built on first use with
/// [`Builder::from_env`] and kept for the life of the process.
///
/// # Panics
///
/// If the environment holds an invalid setting (the message names it), or when called where
/// blocking would stall a runtime (inside a task or another `block_on`).
pub fn block_on<F: Future>(future: F) -> F::Output {
    static DEFAULT: OnceLock<Runtime> = OnceLock::new();
    let rt = DEFAULT.get_or_init(|| {
        Builder::from_env()
            .build()
            .unwrap_or_else(|e| panic!("facade::block_on could not build the default runtime: {e}"))
    });
    rt.block_on(future)
}
