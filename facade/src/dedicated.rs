//! Threads of their own, for work that would pin a pool thread or a worker forever.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use runtime_core::JoinHandle;

use crate::Builder;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Runs `f` on a thread of its own; the handle gives its result (or its panic as a
/// [`JoinError`](crate::JoinError)). For synchronous work that runs forever or for a very long
/// time: a pool thread would be pinned, an async worker blocked. The thread is named
/// `"{name}-{n}"`; it does not belong to any runtime, so it outlives them (and they it).
///
/// # Errors
///
/// The system refused to start a thread.
///
/// ```
/// let h = facade::spawn_dedicated("metrics-reporter", || 40 + 2)?;
/// assert_eq!(facade::block_on(h).unwrap(), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn spawn_dedicated<F, T>(name: &str, f: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // The task completes in its one poll, on the new thread: nothing ever schedules it again.
    let (runnable, handle) = runtime_core::pool_task(async move { f() }, drop, Some(name.into()));
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::thread::Builder::new()
        .name(format!("{name}-{n}"))
        .spawn(move || runnable.run())?;
    Ok(handle)
}

/// Runs `future` on a thread of its own, with a current-thread runtime of its own (FIFO, with
/// I/O and timers): for an async loop that must never share a worker with other tasks.
///
/// # Errors
///
/// The system refused to start a thread.
///
/// ```
/// let h = facade::spawn_dedicated_async("control-loop", async {
///     facade::time::sleep(std::time::Duration::from_millis(1)).await;
///     facade::spawn(async { 7 }).await.unwrap()
/// })?;
/// assert_eq!(facade::block_on(h).unwrap(), 7);
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn spawn_dedicated_async<F>(name: &str, future: F) -> std::io::Result<JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let thread_name = name.to_string();
    spawn_dedicated(name, move || {
        let rt = Builder::new()
            .fifo()
            .worker_threads(0)
            .thread_name(thread_name)
            .build()
            .unwrap_or_else(|e| panic!("the dedicated thread could not build its runtime: {e}"));
        rt.block_on(future)
    })
}

/// Runs the CPU-bound function `f` on rayon's thread pool (the runtime's own if the builder set
/// [`rayon_threads`](crate::Builder::rayon_threads), else rayon's global pool) and returns a
/// [`JoinHandle`]: the awaiting task is woken when `f` returns, no async worker waits for it,
/// and a panic in `f` arrives as a [`JoinError`](crate::JoinError). `f` may use `par_iter`.
///
/// ```
/// use rayon::prelude::*;
/// facade::block_on(async {
///     let sum = facade::spawn_rayon(|| (1..=1_000u64).into_par_iter().sum::<u64>()).await;
///     assert_eq!(sum.unwrap(), 500_500);
/// });
/// ```
#[track_caller]
pub fn spawn_rayon<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let pool = crate::driver::with_current(|io| io.and_then(|io| io.rayon.clone()));
    if pool.is_none() {
        if let Err(cause) = global_rayon_pool() {
            // The job fails at once, without running `f`, with the cause: the handle's
            // `JoinError` says it, whether awaited in a task or from `block_on`.
            let (runnable, handle) =
                runtime_core::pool_task(async move { panic!("{cause}") }, drop, None);
            runnable.run();
            return handle;
        }
    }
    // The task completes in its one poll, on a rayon thread: nothing ever schedules it again.
    let (runnable, handle) = runtime_core::pool_task(async move { f() }, drop, None);
    match pool {
        Some(pool) => pool.spawn(move || {
            runnable.run();
        }),
        None => rayon::spawn(move || {
            runnable.run();
        }),
    }
    handle
}

/// Whether rayon's global pool runs (starting it if nobody has): rayon panics inside
/// `rayon::spawn` when it cannot start it, with a message about its own internals.
fn global_rayon_pool() -> Result<(), String> {
    std::panic::catch_unwind(rayon::current_num_threads)
        .map(drop)
        .map_err(|p| {
            format!(
                "could not start rayon's global thread pool ({}): give the runtime a pool of \
                 its own with Builder::rayon_threads, or let rayon start its threads",
                runtime_core::fault::panic_message(&*p)
            )
        })
}
