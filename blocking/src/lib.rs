//! An elastic thread pool for work that blocks: synchronous I/O, short blocking calls.
//!
//! Threads start on demand up to [`PoolConfig::max_threads`] (default 512, as tokio); a thread
//! idle for [`PoolConfig::keep_alive`] (default 10 s) retires; jobs queue while every thread is
//! busy. A job returns the runtime's [`JoinHandle`]: await it, drop it to detach, and a panic
//! arrives as a `JoinError`.
//!
//! # Ground rules
//!
//! - `State` is only touched under its mutex; the condvar is signalled for a new job (one idle
//!   thread) and for shutdown (all).
//! - A thread counts in `threads` from before it is spawned until it exits; a failed spawn undoes
//!   that, is counted in `spawn_failures` and logged. If another thread is running, the job
//!   waits for it. If none is, a job would wait forever: the spawning thread retries the start
//!   with backoff (1 ms, doubling) for at most [`START_RETRY_BOUND`]; if the system still
//!   refuses, every queued job fails (its `JoinHandle` gets a `JoinError` whose message names
//!   the cause: "could not start a blocking thread: ..."). The caller waits meanwhile (a
//!   refused thread is an emergency; on an async worker the watchdog reports the wait).
//!   `started` counts threads that did start.
//! - Shutdown empties the queue (dropping a runnable cancels its task, so those handles report
//!   cancellation), lets running jobs finish, and waits for the threads at most the timeout.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use runtime_core::{JoinHandle, Runnable};

/// How long a pool with no running thread keeps retrying a thread start the system refuses
/// before it fails the queued jobs.
pub const START_RETRY_BOUND: Duration = Duration::from_secs(1);

/// Starts a pool thread: `std::thread::Builder::spawn` unless a test injects refusals.
type Spawner = Arc<
    dyn Fn(std::thread::Builder, Box<dyn FnOnce() + Send>) -> std::io::Result<()> + Send + Sync,
>;

/// Settings of a [`Pool`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most threads at once (at least 1).
    pub max_threads: usize,
    /// How long an idle thread waits for work before it exits.
    pub keep_alive: Duration,
    /// Threads are named `"{name}-{n}"`.
    pub name: String,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_threads: 512,
            keep_alive: Duration::from_secs(10),
            name: "rt-blocking".into(),
        }
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Runnable>,
    threads: usize,
    idle: usize,
    shutdown: bool,
    started: u64,
    spawn_failures: u64,
    /// Names threads: `{name}-{n}`.
    next_name: u64,
    /// While the pool fails its queued jobs (no thread could start): the cause, which the
    /// jobs run meanwhile panic with.
    failing: Option<String>,
}

struct Inner {
    config: PoolConfig,
    spawner: Spawner,
    /// Whether `State::failing` is set: read by every job before it runs, without the lock.
    failing_now: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
    /// New work or shutdown, for idle threads.
    work: Condvar,
    /// A thread exited, for shutdown.
    exited: Condvar,
}

/// What a [`Pool`] is doing now.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolMetrics {
    /// Threads alive.
    pub threads: usize,
    /// Of those, waiting for work.
    pub idle: usize,
    /// Jobs waiting for a thread.
    pub queued: usize,
    /// Threads that started since the pool was created (not counting refused starts).
    pub started: u64,
    /// Thread starts the system refused.
    pub spawn_failures: u64,
}

/// An elastic pool of threads for blocking work. Cloning shares the pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.inner.config)
            .field("metrics", &self.metrics())
            .finish()
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a runnable job; wakes an idle thread or starts one.
    fn schedule(self: &Arc<Self>, job: Runnable) {
        let mut state = self.state();
        if state.shutdown {
            drop(state);
            drop(job); // cancels the task: its handle reports cancellation
            return;
        }
        state.queue.push_back(job);
        if state.idle > 0 {
            drop(state);
            self.work.notify_one();
            return;
        }
        if state.threads >= self.config.max_threads {
            return; // a busy thread takes it when it is done
        }
        drop(state);
        let Err(e) = self.start_thread() else {
            return;
        };
        // With no thread running, nobody would take the job: retry, then give up.
        let mut delay = Duration::from_millis(1);
        let since = Instant::now();
        let mut last = e;
        loop {
            {
                let state = self.state();
                if state.threads > 0 || state.queue.is_empty() || state.shutdown {
                    return;
                }
            }
            if since.elapsed() >= START_RETRY_BOUND {
                break;
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(100));
            match self.start_thread() {
                Ok(()) => return,
                Err(e) => last = e,
            }
        }
        self.fail_queued(format!("could not start a blocking thread: {last}"));
    }

    /// Starts one pool thread; on failure counts and logs it.
    fn start_thread(self: &Arc<Self>) -> std::io::Result<()> {
        let n = {
            let mut state = self.state();
            state.threads += 1;
            state.next_name += 1;
            state.next_name - 1
        };
        let inner = self.clone();
        let builder = std::thread::Builder::new().name(format!("{}-{n}", self.config.name));
        match (self.spawner)(builder, Box::new(move || inner.run())) {
            Ok(()) => {
                self.state().started += 1;
                Ok(())
            }
            Err(e) => {
                let mut state = self.state();
                state.threads -= 1;
                state.spawn_failures += 1;
                let (threads, queued) = (state.threads, state.queue.len());
                drop(state);
                tracing::warn!(
                    error = %e,
                    threads,
                    queued,
                    "could not start a blocking-pool thread"
                );
                Err(e)
            }
        }
    }

    /// No thread could start: runs the queued jobs here with `cause` set, so that each fails
    /// at once (before calling its function) with a `JoinError` naming the cause.
    fn fail_queued(&self, cause: String) {
        tracing::error!(cause = %cause, "blocking jobs fail: no pool thread could be started");
        let jobs: Vec<Runnable> = {
            let mut state = self.state();
            state.failing = Some(cause);
            self.failing_now
                .store(true, std::sync::atomic::Ordering::SeqCst);
            state.queue.drain(..).collect()
        };
        for job in jobs {
            job.run();
        }
        self.state().failing = None;
        self.failing_now
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// The cause a job must fail with, if the pool is failing its jobs.
    fn failing(&self) -> Option<String> {
        if !self.failing_now.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        self.state().failing.clone()
    }

    /// A pool thread: runs jobs until idle for `keep_alive`, or until shutdown.
    fn run(&self) {
        let mut state = self.state();
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                job.run();
                state = self.state();
                continue;
            }
            if state.shutdown {
                break;
            }
            state.idle += 1;
            let deadline = Instant::now() + self.config.keep_alive;
            let mut timed_out = false;
            while state.queue.is_empty() && !state.shutdown {
                let now = Instant::now();
                if now >= deadline {
                    timed_out = true;
                    break;
                }
                state = self
                    .work
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            state.idle -= 1;
            if timed_out && state.queue.is_empty() {
                break; // retire
            }
        }
        state.threads -= 1;
        drop(state);
        self.exited.notify_all();
    }
}

impl Pool {
    /// An empty pool (threads start with the first jobs).
    pub fn new(config: PoolConfig) -> Pool {
        Pool::with_spawner(config, |builder, f| builder.spawn(f).map(drop))
    }

    /// A pool that starts its threads with `spawner` (for tests that inject refused thread
    /// starts, or to start threads another way: pinned, with another stack size).
    pub fn with_spawner(
        config: PoolConfig,
        spawner: impl Fn(std::thread::Builder, Box<dyn FnOnce() + Send>) -> std::io::Result<()>
        + Send
        + Sync
        + 'static,
    ) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                config,
                spawner: Arc::new(spawner),
                failing_now: std::sync::atomic::AtomicBool::new(false),
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                exited: Condvar::new(),
            }),
        }
    }

    /// Runs `f` on a pool thread.
    ///
    /// ```
    /// let pool = blocking::Pool::new(blocking::PoolConfig::default());
    /// let h = pool.spawn(|| std::fs::metadata("/").is_ok());
    /// assert!(futures_lite::future::block_on(h).unwrap());
    /// ```
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        let pool = Arc::downgrade(&self.inner);
        let job = async move {
            if let Some(cause) = pool.upgrade().and_then(|p| p.failing()) {
                panic!("{cause}");
            }
            f()
        };
        let (runnable, handle) = runtime_core::pool_task(job, move |job| inner.schedule(job), None);
        runnable.schedule();
        handle
    }

    /// What the pool is doing now.
    pub fn metrics(&self) -> PoolMetrics {
        let s = self.inner.state();
        PoolMetrics {
            threads: s.threads,
            idle: s.idle,
            queued: s.queue.len(),
            started: s.started,
            spawn_failures: s.spawn_failures,
        }
    }

    /// Stops: jobs that never started are dropped (their handles report cancellation), running
    /// jobs finish, and this waits at most `timeout` for the threads to exit. Returns whether
    /// they all did. Jobs submitted afterwards are cancelled at once.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let mut state = self.inner.state();
        state.shutdown = true;
        let queued: Vec<Runnable> = state.queue.drain(..).collect();
        drop(state);
        self.inner.work.notify_all();
        drop(queued);
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.inner.state();
        while state.threads > 0 {
            let now = Instant::now();
            let wait = match deadline {
                Some(d) if now >= d => return false,
                Some(d) => d - now,
                None => Duration::from_secs(3600),
            };
            state = self
                .inner
                .exited
                .wait_timeout(state, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A pool whose thread starts the system refuses while `refuse` says so.
    fn refusing_pool(refuse: Arc<std::sync::atomic::AtomicBool>) -> Pool {
        Pool::with_spawner(PoolConfig::default(), move |builder, f| {
            if refuse.load(Ordering::SeqCst) {
                Err(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    "injected: no threads",
                ))
            } else {
                builder.spawn(f).map(drop)
            }
        })
    }

    /// Thread starts refused for a while, then allowed: the job runs (it is not left queued
    /// with no thread), and `started` counts only the thread that started.
    #[test]
    fn a_refused_thread_start_is_retried_until_it_succeeds() {
        let refuse = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let pool = refusing_pool(refuse.clone());
        let lift = {
            let refuse = refuse.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                refuse.store(false, Ordering::SeqCst);
            })
        };
        let h = pool.spawn(|| 5);
        assert_eq!(block_on(h).unwrap(), 5);
        lift.join().unwrap();
        let m = pool.metrics();
        assert_eq!(m.started, 1, "{m:?}");
        assert!(m.spawn_failures >= 2, "{m:?}");
        assert!(pool.shutdown(Duration::from_secs(5)));
    }

    /// Thread starts refused for good: after the retry bound the job fails with an error that
    /// names the cause, and its function never runs; the pool works again once threads can start.
    #[test]
    fn a_job_fails_with_the_cause_when_no_thread_can_start() {
        let refuse = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let pool = refusing_pool(refuse.clone());
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let e = block_on(pool.spawn(move || r.fetch_add(1, Ordering::SeqCst))).unwrap_err();
        assert!(e.is_panic(), "{e}");
        assert!(
            e.to_string().contains("could not start a blocking thread")
                && e.to_string().contains("injected"),
            "{e}"
        );
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(pool.metrics().started, 0);
        assert_eq!(pool.metrics().queued, 0);
        refuse.store(false, Ordering::SeqCst);
        assert_eq!(block_on(pool.spawn(|| 7)).unwrap(), 7);
        assert!(pool.shutdown(Duration::from_secs(5)));
    }

    #[test]
    fn results_and_panics() {
        let pool = Pool::new(PoolConfig::default());
        assert_eq!(block_on(pool.spawn(|| 2 + 2)).unwrap(), 4);
        let e = block_on(pool.spawn(|| panic!("blocking boom"))).unwrap_err();
        assert!(e.is_panic() && e.to_string().contains("blocking boom"));
        assert!(pool.shutdown(Duration::from_secs(5)));
    }

    #[test]
    fn never_more_threads_than_the_maximum() {
        let pool = Pool::new(PoolConfig {
            max_threads: 8,
            ..PoolConfig::default()
        });
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..1_000)
            .map(|_| {
                let (running, peak) = (running.clone(), peak.clone());
                pool.spawn(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_micros(200));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        assert!(pool.metrics().threads <= 8);
        for h in hs {
            block_on(h).unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 8);
        assert!(pool.metrics().started <= 8, "{:?}", pool.metrics());
        assert!(pool.shutdown(Duration::from_secs(5)));
    }

    #[test]
    fn idle_threads_retire() {
        let pool = Pool::new(PoolConfig {
            keep_alive: Duration::from_millis(20),
            ..PoolConfig::default()
        });
        let hs: Vec<_> = (0..4)
            .map(|_| pool.spawn(|| std::thread::sleep(Duration::from_millis(5))))
            .collect();
        for h in hs {
            block_on(h).unwrap();
        }
        let start = Instant::now();
        while pool.metrics().threads > 0 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "threads never retired"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn shutdown_respects_the_timeout_and_cancels_queued_jobs() {
        let pool = Pool::new(PoolConfig {
            max_threads: 1,
            ..PoolConfig::default()
        });
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let running = pool.spawn(move || {
            started_tx.send(()).unwrap();
            let _ = rx.recv();
        });
        started_rx.recv().unwrap();
        let queued = pool.spawn(|| 1);
        assert!(
            !pool.shutdown(Duration::from_millis(20)),
            "the running job is still blocked"
        );
        assert!(block_on(queued).unwrap_err().is_cancelled());
        assert!(
            block_on(pool.spawn(|| 2)).unwrap_err().is_cancelled(),
            "after shutdown"
        );
        tx.send(()).unwrap();
        block_on(running).unwrap();
        assert!(pool.shutdown(Duration::from_secs(5)));
    }
}
