//! `select!`, `join!`, `try_join!` (the expansions are in `facade-macros`) and what the
//! expansions of those and of `#[facade::main]` / `#[facade::test]` call.

/// Waits on several futures at once and runs the branch of the first to finish (tokio's
/// `select!`, same syntax). The other futures are dropped as soon as one finishes, before its
/// branch runs.
///
/// Each branch is `pattern = future => handler`, optionally `pattern = future, if condition =>
/// handler` (a branch whose condition is false is not polled). A branch whose output does not
/// match its pattern is disabled, and the others are waited on. When every branch is disabled,
/// the `else => handler` branch runs (without one, `select!` panics). Branches are polled from
/// a random one each time, so that none starves the others; `biased;` first polls them in
/// order. Each poll of `select!` spends one unit of the task's cooperative budget: a `select!`
/// over futures that are always ready still lets the other tasks run.
///
/// ```
/// use std::time::Duration;
///
/// facade::block_on(async {
///     let (tx, mut rx) = facade::sync::mpsc::channel::<u32>(1);
///     facade::spawn(async move { tx.send(7).await.unwrap() });
///     let got = facade::select! {
///         Some(v) = rx.recv() => v,
///         _ = facade::time::sleep(Duration::from_secs(5)) => 0,
///     };
///     assert_eq!(got, 7);
/// });
/// ```
#[macro_export]
macro_rules! select {
    ($($input:tt)*) => {
        $crate::__private::select_impl!(($crate) $($input)*)
    };
}

/// Waits for all the futures given and returns their outputs as a tuple (tokio's `join!`).
///
/// ```
/// facade::block_on(async {
///     let (a, b) = facade::join!(async { 1 }, async { "two" });
///     assert_eq!((a, b), (1, "two"));
/// });
/// ```
#[macro_export]
macro_rules! join {
    ($($input:tt)*) => {
        $crate::__private::join_impl!(($crate) $($input)*)
    };
}

/// Waits for all the futures given, which return `Result`s with one error type, and returns
/// `Ok` of their outputs; or the first error as soon as one fails, dropping the others
/// (tokio's `try_join!`).
///
/// ```
/// facade::block_on(async {
///     let ok: Result<(u8, u8), &str> = facade::try_join!(async { Ok(1) }, async { Ok(2) });
///     assert_eq!(ok, Ok((1, 2)));
///     let err: Result<(u8, ()), &str> =
///         facade::try_join!(async { Ok(1) }, async { Err("no") });
///     assert_eq!(err, Err("no"));
/// });
/// ```
#[macro_export]
macro_rules! try_join {
    ($($input:tt)*) => {
        $crate::__private::try_join_impl!(($crate) $($input)*)
    };
}

/// Not public API: what the macros' expansions call.
#[doc(hidden)]
pub mod __private {
    use std::cell::Cell;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub use facade_macros::{join_impl, select_impl, try_join_impl};

    /// One unit of the cooperative budget (see [`runtime_core::coop`]).
    #[inline]
    pub fn poll_budget(cx: &mut Context<'_>) -> Poll<()> {
        runtime_core::coop::poll_proceed(cx)
    }

    thread_local! {
        static RNG: Cell<u64> = Cell::new({
            // Any odd, per-thread seed: the address of a local and the time.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let here = &t as *const u64 as u64;
            (t ^ here.rotate_left(32)) | 1
        });
    }

    /// A number in `0..n` (`n > 0`), from a per-thread xorshift generator.
    pub fn random_below(n: usize) -> usize {
        RNG.with(|r| {
            let mut x = r.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            r.set(x);
            (((x >> 32) * n as u64) >> 32) as usize
        })
    }

    pin_project_lite::pin_project! {
        /// A future, then its output, then nothing (what `join!` keeps for each future).
        #[project = MaybeDoneProj]
        #[project_replace = MaybeDoneReplace]
        #[derive(Debug)]
        pub enum MaybeDone<F: Future> {
            Future { #[pin] future: F },
            Done { output: F::Output },
            Gone,
        }
    }

    impl<F: Future> MaybeDone<F> {
        /// Wraps `future`.
        pub fn new(future: F) -> MaybeDone<F> {
            MaybeDone::Future { future }
        }

        /// Polls the future if it is still running; whether it is done.
        pub fn poll_done(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
            let out = match self.as_mut().project() {
                MaybeDoneProj::Future { future } => match future.poll(cx) {
                    Poll::Ready(out) => out,
                    Poll::Pending => return false,
                },
                MaybeDoneProj::Done { .. } => return true,
                MaybeDoneProj::Gone => return true,
            };
            self.project_replace(MaybeDone::Done { output: out });
            true
        }

        /// The output (once done).
        pub fn take(self: Pin<&mut Self>) -> F::Output {
            match self.project_replace(MaybeDone::Gone) {
                MaybeDoneReplace::Done { output } => output,
                _ => unreachable!("join!: output taken before the future was done"),
            }
        }
    }

    impl<F: Future<Output = Result<T, E>>, T, E> MaybeDone<F> {
        /// The error, if the future is done and failed (it is taken out).
        pub fn take_err(mut self: Pin<&mut Self>) -> Option<E> {
            if !matches!(&*self, MaybeDone::Done { output: Err(_) }) {
                return None;
            }
            match self.as_mut().project_replace(MaybeDone::Gone) {
                MaybeDoneReplace::Done { output: Err(e) } => Some(e),
                _ => None,
            }
        }

        /// The value (once done and successful).
        pub fn take_ok(self: Pin<&mut Self>) -> T {
            match self.take() {
                Ok(v) => v,
                Err(_) => unreachable!("try_join!: an error is returned as soon as it is seen"),
            }
        }
    }

    /// The runtime `#[facade::main]` / `#[facade::test]` run their body on: the macro's
    /// arguments, then `RUNTIME_SCHEDULER`, `RUNTIME_WORKER_THREADS` (and the other variables
    /// of [`Builder::from_env`](crate::Builder::from_env)) over them.
    pub fn entry_runtime(
        which: &str,
        scheduler: Option<&str>,
        worker_threads: Option<usize>,
        start_paused: bool,
    ) -> EntryRuntime {
        let mut b = crate::Builder::new();
        if let Some(s) = scheduler {
            b = b.scheduler_name(s);
        }
        if let Some(n) = worker_threads {
            b = b.worker_threads(n);
        }
        let b = b
            .env_overrides(crate::builder::env_var)
            .start_paused(start_paused);
        match b.build() {
            Ok(rt) => EntryRuntime(rt),
            Err(e) => panic!("#[{which}] could not build its runtime: {e}"),
        }
    }

    /// See [`entry_runtime`].
    #[derive(Debug)]
    pub struct EntryRuntime(crate::Runtime);

    impl EntryRuntime {
        /// Runs the body (its output type is the function's, for `?` in the body).
        pub fn block_on<F: Future<Output = T>, T>(self, body: F) -> T {
            self.0.block_on(body)
        }
    }
}
