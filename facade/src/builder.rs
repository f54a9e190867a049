//! [`Builder`] and [`BuildError`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use runtime_core::{Config, Extensions, Scheduler};
use sched_fifo::FifoConfig;
use sched_priority::{PriorityConfig, PriorityScheduler};
use sched_worksteal::{WorkStealing, WorkStealingConfig};

use crate::Runtime;

/// The scheduler names that [`Builder::scheduler_name`] and `RUNTIME_SCHEDULER` accept.
pub const SCHEDULERS: &[&str] = &["fifo", "worksteal", "priority"];

/// The largest accepted `worker_threads`.
pub const MAX_WORKER_THREADS: usize = 1024;

/// The watchdog's default threshold (see [`Builder::watchdog_threshold`]).
pub const DEFAULT_WATCHDOG_THRESHOLD: Duration = Duration::from_millis(10);

/// The default of [`Builder::policy_stall_timeout`].
pub const DEFAULT_POLICY_STALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts a core runtime with the chosen policy.
pub(crate) type Start = Box<dyn FnOnce(Config) -> std::io::Result<runtime_core::Runtime> + Send>;

/// Builds a [`Runtime`]: pick the scheduler, the number of workers, thread names.
///
/// Settings are checked in [`build`](Builder::build), which names the bad setting, the value and
/// the valid choices.
///
/// ```
/// let rt = facade::Builder::new().fifo().worker_threads(2).build()?;
/// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
/// # Ok::<(), facade::BuildError>(())
/// ```
pub struct Builder {
    scheduler: Choice,
    worker_threads: Option<usize>,
    thread_name: Option<String>,
    thread_stack_size: Option<usize>,
    start_paused: bool,
    blocking: blocking::PoolConfig,
    rayon_threads: Option<usize>,
    watchdog: Option<Duration>,
    policy_stall_timeout: Option<Duration>,
    hooks: runtime_core::RuntimeHooks,
    histograms: Option<runtime_core::HistogramBuckets>,
    /// The first invalid setting, reported by `build`.
    error: Option<BuildError>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("scheduler", &self.scheduler.name())
            .field("worker_threads", &self.worker_threads)
            .field("thread_name", &self.thread_name)
            .field("thread_stack_size", &self.thread_stack_size)
            .field("watchdog", &self.watchdog)
            .field("hooks", &self.hooks)
            .finish()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// The defaults: the work-stealing scheduler, one worker per core.
    pub fn new() -> Builder {
        Builder {
            scheduler: Choice::WorkStealing(WorkStealingConfig::default()),
            worker_threads: None,
            thread_name: None,
            thread_stack_size: None,
            start_paused: false,
            blocking: blocking::PoolConfig::default(),
            rayon_threads: None,
            watchdog: Some(DEFAULT_WATCHDOG_THRESHOLD),
            policy_stall_timeout: Some(DEFAULT_POLICY_STALL_TIMEOUT),
            hooks: runtime_core::RuntimeHooks::default(),
            histograms: None,
            error: None,
        }
    }

    /// Records histograms of poll time and of schedule latency (from a task's wake-up to its
    /// poll), per worker and, with the priority scheduler, per band, in
    /// [`RuntimeMetrics`](crate::RuntimeMetrics) (`poll_time`, `schedule_latency`, and each
    /// worker's). Buckets: 1 µs doubling to about 0.5 s, unless
    /// [`histogram_buckets`](Builder::histogram_buckets) says otherwise. Off by default: on,
    /// each poll reads the clock twice and each wake-up once, and each task keeps its wake-up
    /// time in a small box of its own (40 bytes, allocated at spawn).
    ///
    /// ```
    /// let rt = facade::Builder::new_current_thread().enable_histograms().build()?;
    /// rt.block_on(async {
    ///     for _ in 0..10 {
    ///         facade::spawn(async {}).await.unwrap();
    ///     }
    /// });
    /// let m = rt.metrics();
    /// let (class, polls) = &m.poll_time[0];
    /// assert_eq!(class, "all");
    /// assert_eq!(polls.total(), 10);
    /// assert!(m.schedule_latency[0].1.quantile(0.99).is_some());
    /// # Ok::<(), facade::BuildError>(())
    /// ```
    pub fn enable_histograms(mut self) -> Builder {
        self.histograms.get_or_insert_with(Default::default);
        self
    }

    /// Records the histograms of [`enable_histograms`](Builder::enable_histograms) with these
    /// buckets.
    ///
    /// ```
    /// use std::time::Duration;
    /// let buckets = facade::HistogramBuckets::exponential(Duration::from_micros(10), 12)
    ///     .expect("valid buckets");
    /// let rt = facade::Builder::new().histogram_buckets(buckets).build()?;
    /// # Ok::<(), facade::BuildError>(())
    /// ```
    pub fn histogram_buckets(mut self, buckets: runtime_core::HistogramBuckets) -> Builder {
        self.histograms = Some(buckets);
        self
    }

    /// Runs `f` after each task is spawned, on the spawning thread, before the task first
    /// runs (tokio's unstable `on_task_spawn`, stable here). `f` gets the task's
    /// [`TaskMeta`](runtime_core::TaskMeta): id, name, priority, spawn location. Hooks cost
    /// nothing while unset; a hook that panics is caught and reported, and the runtime goes on.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// let spawned = Arc::new(AtomicUsize::new(0));
    /// let s = spawned.clone();
    /// let rt = facade::Builder::new_current_thread()
    ///     .on_task_spawn(move |meta| {
    ///         assert!(meta.location().file().ends_with(".rs"));
    ///         s.fetch_add(1, Ordering::Relaxed);
    ///     })
    ///     .build()?;
    /// rt.block_on(async { facade::spawn(async {}).await.unwrap() });
    /// assert_eq!(spawned.load(Ordering::Relaxed), 1);
    /// # Ok::<(), facade::BuildError>(())
    /// ```
    pub fn on_task_spawn(
        mut self,
        f: impl Fn(&runtime_core::TaskMeta) + Send + Sync + 'static,
    ) -> Builder {
        self.hooks.on_task_spawn = Some(Arc::new(f));
        self
    }

    /// Runs `f` when a task ends (its future is dropped: completed, panicked or cancelled), on
    /// the thread that drops it.
    pub fn on_task_terminate(
        mut self,
        f: impl Fn(&runtime_core::TaskMeta) + Send + Sync + 'static,
    ) -> Builder {
        self.hooks.on_task_terminate = Some(Arc::new(f));
        self
    }

    /// Runs `f` before each poll of a task, on the polling thread.
    pub fn on_before_task_poll(
        mut self,
        f: impl Fn(&runtime_core::TaskMeta) + Send + Sync + 'static,
    ) -> Builder {
        self.hooks.on_before_task_poll = Some(Arc::new(f));
        self
    }

    /// Runs `f` after each poll of a task (also one that panicked), on the polling thread.
    pub fn on_after_task_poll(
        mut self,
        f: impl Fn(&runtime_core::TaskMeta) + Send + Sync + 'static,
    ) -> Builder {
        self.hooks.on_after_task_poll = Some(Arc::new(f));
        self
    }

    /// Runs `f` on each worker thread the runtime starts, before it runs any task (a
    /// current-thread runtime starts none).
    pub fn on_thread_start(mut self, f: impl Fn() + Send + Sync + 'static) -> Builder {
        self.hooks.on_thread_start = Some(Arc::new(f));
        self
    }

    /// Runs `f` on each worker thread after its last task, before it exits.
    pub fn on_thread_stop(mut self, f: impl Fn() + Send + Sync + 'static) -> Builder {
        self.hooks.on_thread_stop = Some(Arc::new(f));
        self
    }

    /// Runs `f` before a worker parks (it found no task), given the worker's index.
    pub fn on_thread_park(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Builder {
        self.hooks.on_thread_park = Some(Arc::new(f));
        self
    }

    /// Runs `f` after a worker wakes from parking, given the worker's index.
    pub fn on_thread_unpark(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Builder {
        self.hooks.on_thread_unpark = Some(Arc::new(f));
        self
    }

    /// A current-thread runtime (tokio's name): `Builder::new().worker_threads(0)`. Tasks run
    /// on the thread that calls `block_on`, while it does.
    ///
    /// ```
    /// let rt = facade::Builder::new_current_thread().build()?;
    /// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
    /// # Ok::<(), facade::BuildError>(())
    /// ```
    pub fn new_current_thread() -> Builder {
        Builder::new().worker_threads(0)
    }

    /// A multi-thread runtime (tokio's name): `Builder::new()`, one worker per core unless
    /// [`worker_threads`](Builder::worker_threads) says otherwise.
    pub fn new_multi_thread() -> Builder {
        Builder::new()
    }

    /// The defaults, then the settings found in the environment:
    /// `RUNTIME_SCHEDULER` (one of [`SCHEDULERS`]), `RUNTIME_WORKER_THREADS` (a number,
    /// `0` for current-thread mode), `RUNTIME_WATCHDOG_MS` (the watchdog's threshold in
    /// milliseconds, `0` to turn it off) and `RUNTIME_POLICY_STALL_MS` (see
    /// [`policy_stall_timeout`](Builder::policy_stall_timeout), `0` to turn the check off). A variable that is set but invalid makes
    /// [`build`](Builder::build) fail with an error that names it.
    ///
    /// ```
    /// // With neither variable set, this is `Builder::new()`.
    /// let rt = facade::Builder::from_env().build()?;
    /// # Ok::<(), facade::BuildError>(())
    /// ```
    pub fn from_env() -> Builder {
        Builder::from_lookup(env_var)
    }

    /// `from_env` over any source of variables (tests pass a map).
    fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Builder {
        Builder::new().env_overrides(var)
    }

    /// The settings found in `var` (as `from_env` reads them) over those already made.
    pub(crate) fn env_overrides(self, var: impl Fn(&str) -> Option<String>) -> Builder {
        let mut b = self;
        if let Some(name) = var("RUNTIME_SCHEDULER") {
            b = b.scheduler_setting("RUNTIME_SCHEDULER", &name);
        }
        if let Some(n) = var("RUNTIME_WORKER_THREADS") {
            match n.trim().parse::<usize>() {
                Ok(n) => b = b.threads_setting("RUNTIME_WORKER_THREADS", n),
                Err(_) => {
                    b.fail(BuildError::invalid(
                        "RUNTIME_WORKER_THREADS",
                        &n,
                        format!("a whole number from 0 to {MAX_WORKER_THREADS} (0: run on the thread that calls block_on)"),
                    ));
                }
            }
        }
        if let Some(ms) = var("RUNTIME_WATCHDOG_MS") {
            match ms.trim().parse::<u64>() {
                Ok(0) => b = b.disable_watchdog(),
                Ok(ms) => b = b.watchdog_setting("RUNTIME_WATCHDOG_MS", Duration::from_millis(ms)),
                Err(_) => b.fail(BuildError::invalid(
                    "RUNTIME_WATCHDOG_MS",
                    &ms,
                    "a whole number of milliseconds from 1 to 3600000, or 0 to turn the watchdog off".into(),
                )),
            }
        }
        if let Some(ms) = var("RUNTIME_POLICY_STALL_MS") {
            match ms.trim().parse::<u64>() {
                Ok(0) => b = b.disable_policy_stall_check(),
                Ok(ms) => {
                    b = b.stall_setting("RUNTIME_POLICY_STALL_MS", Duration::from_millis(ms))
                }
                Err(_) => b.fail(BuildError::invalid(
                    "RUNTIME_POLICY_STALL_MS",
                    &ms,
                    "a whole number of milliseconds from 1 to 3600000, or 0 to never eject a policy for holding tasks".into(),
                )),
            }
        }
        b
    }

    /// Schedules first in, first out (`sched-fifo`), with its default settings: with several
    /// workers, each worker runs the tasks scheduled on it in order, taking turns with the
    /// shared queue.
    pub fn fifo(self) -> Builder {
        self.fifo_with(FifoConfig::default())
    }

    /// FIFO with explicit settings, for example one order for the whole runtime:
    ///
    /// ```
    /// use facade::sched::fifo::{FifoConfig, FifoOrder};
    ///
    /// let rt = facade::Builder::new()
    ///     .fifo_with(FifoConfig::default().with_order(FifoOrder::Global))
    ///     .worker_threads(2)
    ///     .build()?;
    /// assert_eq!(rt.scheduler(), "fifo");
    /// # Ok::<(), facade::BuildError>(())
    /// ```
    pub fn fifo_with(mut self, config: FifoConfig) -> Builder {
        self.scheduler = Choice::Fifo(config);
        self
    }

    /// Schedules with per-worker queues, a LIFO slot and stealing (`sched-worksteal`).
    pub fn work_stealing(self) -> Builder {
        self.work_stealing_with(WorkStealingConfig::default())
    }

    /// Work-stealing with explicit settings.
    pub fn work_stealing_with(mut self, config: WorkStealingConfig) -> Builder {
        self.scheduler = Choice::WorkStealing(config);
        self
    }

    /// Schedules by priority bands with weighted fair shares (`sched-priority`), with its
    /// default bands.
    pub fn priority_scheduler(self) -> Builder {
        self.priority_scheduler_with(PriorityConfig::default())
    }

    /// Schedules by priority bands with weighted fair shares, with these bands and shares;
    /// `build` reports a nonsensical configuration (no band, a zero share, ...).
    ///
    /// The naming is one scheme for every policy: `fifo()` / `fifo_with(config)`,
    /// `work_stealing()` / `work_stealing_with(config)`, `priority_scheduler()` /
    /// `priority_scheduler_with(config)`, with the configurations in
    /// [`facade::sched`](crate::sched).
    pub fn priority_scheduler_with(mut self, config: PriorityConfig) -> Builder {
        self.scheduler = Choice::Priority(config);
        self
    }

    /// Schedules with the policy named `name`: one of [`SCHEDULERS`], or a name registered
    /// with [`register_scheduler`](crate::scheduler::register_scheduler).
    pub fn scheduler_name(self, name: &str) -> Builder {
        self.scheduler_setting("scheduler", name)
    }

    /// Schedules with your own policy ([`facade::scheduler`](crate::scheduler) has the
    /// plug-in API). [`Runtime::scheduler`] then reports the policy's
    /// [`name`](Scheduler::name).
    ///
    /// ```
    /// use facade::scheduler::{BasicFifo, Scheduler};
    /// let rt = facade::Builder::new().custom(BasicFifo::default()).build()?;
    /// assert_eq!(rt.scheduler(), BasicFifo::default().name());
    /// # Ok::<(), facade::BuildError>(())
    /// ```
    pub fn custom<S: Scheduler>(mut self, scheduler: S) -> Builder {
        let name = scheduler.name().to_owned();
        self.scheduler = Choice::Custom(start_with(scheduler), name);
        self
    }

    /// Number of worker threads, from 0 to [`MAX_WORKER_THREADS`]. The default is the number of
    /// cores. `0` is current-thread mode: no worker threads; the thread that calls
    /// [`Runtime::block_on`] is the only worker, and tasks run only while it is inside
    /// `block_on`.
    pub fn worker_threads(self, n: usize) -> Builder {
        self.threads_setting("worker_threads", n)
    }

    /// Worker threads are named `"{name}-{index}"` (default `"rt-worker-{index}"`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.thread_name = Some(name.into());
        self
    }

    /// Stack size of the worker threads, in bytes (at least 16 KiB).
    pub fn thread_stack_size(mut self, bytes: usize) -> Builder {
        if bytes < 16 * 1024 {
            self.fail(BuildError::invalid(
                "thread_stack_size",
                &bytes.to_string(),
                "at least 16384 bytes".into(),
            ));
        } else {
            self.thread_stack_size = Some(bytes);
        }
        self
    }

    /// Most threads of the blocking pool (`spawn_blocking`), from 1 to 100,000 (default 512).
    pub fn max_blocking_threads(mut self, n: usize) -> Builder {
        if let Some(n) = self.in_range("max_blocking_threads", n, 1..=100_000, "1 to 100000") {
            self.blocking.max_threads = n;
        }
        self
    }

    /// How long an idle blocking-pool thread waits for work before it exits, from 1 ms to one
    /// day (default 10 s).
    pub fn blocking_keep_alive(mut self, keep_alive: Duration) -> Builder {
        let range = Duration::from_millis(1)..=Duration::from_secs(86_400);
        if let Some(d) = self.in_range("blocking_keep_alive", keep_alive, range, "1 ms to 1 day") {
            self.blocking.keep_alive = d;
        }
        self
    }

    /// Gives the runtime its own rayon pool with `n` threads (1 to 1024) for `spawn_rayon`;
    /// without it, `spawn_rayon` uses rayon's global pool (one thread per core).
    pub fn rayon_threads(mut self, n: usize) -> Builder {
        self.rayon_threads = self
            .in_range("rayon_threads", n, 1..=1024, "1 to 1024")
            .or(self.rayon_threads);
        self
    }

    /// The watchdog's threshold, from 1 ms to one hour (default 10 ms): when a single poll of a
    /// task (or of the future given to `block_on`) keeps a worker busy for longer, the runtime
    /// logs a `tracing` warning naming the task (id and name) and the worker, once per such poll,
    /// counts it in [`RuntimeMetrics::slow_polls`](crate::RuntimeMetrics::slow_polls), and wakes
    /// an idle worker to take over what waits behind the stuck one.
    ///
    /// The workers only publish which task they poll (two plain stores per poll); a watchdog
    /// thread samples that every half threshold, and sleeps while the runtime is idle. A report
    /// is never a false alarm; polls shorter than 1.5 times the threshold may go unreported.
    ///
    /// The watchdog is a thread: in a program that has no other thread (a current-thread
    /// runtime and nothing else), it turns off glibc's single-thread shortcut in `malloc`, which
    /// costs allocation-heavy code about 10%. Turn it off there if that matters.
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = facade::Builder::new().watchdog_threshold(Duration::from_millis(20)).build()?;
    /// rt.block_on(async {
    ///     facade::spawn(async {
    ///         std::thread::sleep(Duration::from_millis(100)); // reported: use spawn_blocking
    ///     })
    ///     .await
    /// })
    /// .unwrap();
    /// # std::thread::sleep(Duration::from_millis(50)); // the report may trail the poll
    /// assert_eq!(rt.metrics().slow_polls, 1);
    /// # Ok::<(), facade::BuildError>(())
    /// ```
    pub fn watchdog_threshold(self, threshold: Duration) -> Builder {
        self.watchdog_setting("watchdog_threshold", threshold)
    }

    /// Turns the watchdog off (see [`watchdog_threshold`](Builder::watchdog_threshold)).
    pub fn disable_watchdog(mut self) -> Builder {
        self.watchdog = None;
        self
    }

    /// How long a scheduling policy may hold runnable tasks while every worker has asked it
    /// for work and parked, before the runtime ejects it (default 2 s, from 1 ms to 1 hour; or
    /// `RUNTIME_POLICY_STALL_MS`, 0 = never). Such a policy breaks the "no lost task" rule of
    /// the contract: without this the application would hang. Ejected, its tasks are drained
    /// onto the built-in FIFO policy (those it never hands back are cancelled), an ERROR says
    /// what happened, and [`RuntimeMetrics::ejection`](crate::RuntimeMetrics) reports it. A
    /// policy that panics is ejected at once, whatever this says. The check runs on the
    /// watchdog's thread: with [`disable_watchdog`](Builder::disable_watchdog) it is off.
    pub fn policy_stall_timeout(self, timeout: Duration) -> Builder {
        self.stall_setting("policy_stall_timeout", timeout)
    }

    /// Never ejects a policy for holding tasks (see
    /// [`policy_stall_timeout`](Builder::policy_stall_timeout)).
    pub fn disable_policy_stall_check(mut self) -> Builder {
        self.policy_stall_timeout = None;
        self
    }

    fn stall_setting(mut self, setting: &str, timeout: Duration) -> Builder {
        let range = Duration::from_millis(1)..=Duration::from_secs(3600);
        if let Some(t) = self.in_range(setting, timeout, range, "1 ms to 1 hour") {
            self.policy_stall_timeout = Some(t);
        }
        self
    }

    fn watchdog_setting(mut self, setting: &str, threshold: Duration) -> Builder {
        let range = Duration::from_millis(1)..=Duration::from_secs(3600);
        if let Some(t) = self.in_range(setting, threshold, range, "1 ms to 1 hour") {
            self.watchdog = Some(t);
        }
        self
    }

    /// Starts with the clock paused (for deterministic timer tests): time moves only through
    /// `time::advance`, or, when the runtime is idle, straight to the next deadline. Needs
    /// current-thread mode (`worker_threads(0)`); `build` says so otherwise.
    pub fn start_paused(mut self, paused: bool) -> Builder {
        self.start_paused = paused;
        self
    }

    /// Starts a [`LocalRuntime`](crate::LocalRuntime): a runtime whose `block_on` also runs
    /// `!Send` futures and tasks spawned with [`task::spawn_local`](crate::task::spawn_local),
    /// on the calling thread. Usually current-thread
    /// ([`new_current_thread`](Builder::new_current_thread)); with workers, `Send` tasks run
    /// on them and local tasks on the thread in `block_on`.
    pub fn build_local(self) -> Result<crate::LocalRuntime, BuildError> {
        self.build().map(crate::LocalRuntime::new)
    }

    /// Starts the runtime, or says which setting is wrong.
    pub fn build(self) -> Result<Runtime, BuildError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let workers = self.worker_threads.unwrap_or_else(num_cpus::get);
        if self.start_paused && workers != 0 {
            return Err(BuildError::invalid(
                "start_paused",
                "true",
                format!(
                    "a current-thread runtime (worker_threads(0)); this one has {workers} worker threads, where an idle runtime is not well defined"
                ),
            ));
        }
        let name = self.thread_name.unwrap_or_else(|| "rt-worker".into());
        let blocking = blocking::PoolConfig {
            name: format!("{name}-blocking"),
            ..self.blocking
        };
        let rayon = match self.rayon_threads {
            None => None,
            Some(n) => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name({
                        let name = name.clone();
                        move |i| format!("{name}-rayon-{i}")
                    })
                    .build()
                    .map_err(|e| BuildError {
                        kind: BuildErrorKind::ThreadSpawn,
                        message: format!("could not start the rayon pool: {e}"),
                    })?,
            )),
        };
        let (driver, io) = crate::driver::RtDriver::new(self.start_paused, blocking, rayon)
            .map_err(|e| BuildError {
                kind: BuildErrorKind::Driver,
                message: format!("could not create the I/O driver: {e}"),
            })?;
        let watchdog_thread_name = format!("{name}-watchdog");
        // How the reactor, the resolver and the facade's own resources find this runtime's
        // state: typed values in the runtime, no process-global hook.
        let mut extensions = Extensions::default();
        extensions.insert(io.reactor.clone());
        let pool = io.blocking.clone();
        extensions.insert(reactor::Resolver::new(move |lookup| pool.spawn(lookup)));
        extensions.insert(io.clone());
        let config = Config {
            worker_threads: workers,
            thread_name: Arc::new(move |i| format!("{name}-{i}")),
            thread_stack_size: self.thread_stack_size,
            driver: Some(Box::new(driver)),
            extensions,
            watchdog: self.watchdog,
            watchdog_thread_name,
            policy_stall_timeout: self.policy_stall_timeout,
            hooks: self.hooks,
            histograms: self
                .histograms
                .map(|buckets| runtime_core::HistogramConfig {
                    buckets,
                    classes: match &self.scheduler {
                        Choice::Priority(c) => band_classes(&c.bands),
                        _ => runtime_core::HistogramClasses::default(),
                    },
                }),
        };
        let scheduler = self.scheduler.name().to_owned();
        let start = match self.scheduler {
            Choice::Fifo(c) => start_with(sched_fifo::Fifo::with_config(c)),
            Choice::WorkStealing(c) => start_with(WorkStealing::with_config(c)),
            Choice::Priority(c) => match PriorityScheduler::new(c) {
                Ok(s) => start_with(s),
                Err(e) => {
                    return Err(BuildError::invalid(
                        "priority bands",
                        &e.to_string(),
                        "bands from the most urgent down, each share at least 1, the last starting at priority 0".into(),
                    ));
                }
            },
            Choice::Custom(start, _) => start,
        };
        let inner = start(config).map_err(|e| {
            let policy = e
                .get_ref()
                .is_some_and(|inner| inner.is::<runtime_core::fault::PolicyPanicked>());
            if policy {
                BuildError {
                    kind: BuildErrorKind::Policy,
                    message: e.to_string(),
                }
            } else {
                BuildError {
                    kind: BuildErrorKind::ThreadSpawn,
                    message: format!("could not start the worker threads: {e}"),
                }
            }
        })?;
        tracing::debug!(scheduler, workers, "runtime started");
        Ok(Runtime::from_core(inner, scheduler, io))
    }

    fn scheduler_setting(mut self, setting: &str, name: &str) -> Builder {
        let key = crate::scheduler::normalize(name);
        match key.as_str() {
            "fifo" => self.fifo(),
            "worksteal" | "work-stealing" | "work_stealing" => self.work_stealing(),
            "priority" => self.priority_scheduler(),
            _ => match crate::scheduler::registered(&key) {
                Some(start) => {
                    self.scheduler = Choice::Custom(start, key);
                    self
                }
                None => {
                    let registered = crate::scheduler::registered_schedulers();
                    let registered = if registered.is_empty() {
                        "none".to_owned()
                    } else {
                        registered.join(", ")
                    };
                    self.fail(BuildError::invalid(
                        setting,
                        name,
                        format!(
                            "a built-in scheduler ({}) or a registered one ({registered})",
                            SCHEDULERS.join(", ")
                        ),
                    ));
                    self
                }
            },
        }
    }

    fn threads_setting(mut self, setting: &str, n: usize) -> Builder {
        if n > MAX_WORKER_THREADS {
            self.fail(BuildError::invalid(
                setting,
                &n.to_string(),
                format!("0 to {MAX_WORKER_THREADS} (0: run on the thread that calls block_on)"),
            ));
        } else {
            self.worker_threads = Some(n);
        }
        self
    }

    fn fail(&mut self, e: BuildError) {
        self.error.get_or_insert(e);
    }

    /// `value` if it lies in `range`; otherwise records the error naming `setting`, the value
    /// and `valid`, and gives `None`.
    fn in_range<T: PartialOrd + fmt::Debug>(
        &mut self,
        setting: &str,
        value: T,
        range: std::ops::RangeInclusive<T>,
        valid: &str,
    ) -> Option<T> {
        if range.contains(&value) {
            return Some(value);
        }
        self.fail(BuildError::invalid(
            setting,
            &format!("{value:?}"),
            valid.into(),
        ));
        None
    }
}

/// The policy chosen so far.
/// The priority scheduler's bands as histogram classes (the bands go from the most urgent,
/// highest `min_priority`, down to the one that starts at 0).
fn band_classes(bands: &[sched_priority::Band]) -> runtime_core::HistogramClasses {
    let mins: Vec<u8> = bands.iter().map(|b| b.min_priority).collect();
    let last = mins.len().saturating_sub(1);
    runtime_core::HistogramClasses::new(bands.iter().map(|b| b.name.clone()).collect(), move |p| {
        mins.iter().position(|&m| p.0 >= m).unwrap_or(last)
    })
}

enum Choice {
    Fifo(FifoConfig),
    WorkStealing(WorkStealingConfig),
    Priority(PriorityConfig),
    /// A policy of the user's: how to start it, and its name.
    Custom(Start, String),
}

impl Choice {
    fn name(&self) -> &str {
        match self {
            Choice::Fifo(_) => "fifo",
            Choice::WorkStealing(_) => "worksteal",
            Choice::Priority(_) => "priority",
            Choice::Custom(_, name) => name,
        }
    }
}

pub(crate) fn start_with<S: Scheduler>(scheduler: S) -> Start {
    Box::new(move |config| runtime_core::Runtime::new(scheduler, config))
}

pub(crate) fn env_var(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => None,
        Ok(v) => Some(v),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(v)) => Some(v.to_string_lossy().into_owned()),
    }
}

/// What kind of failure a [`BuildError`] is.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildErrorKind {
    /// A setting (or environment variable) has a value outside its valid range.
    InvalidSetting,
    /// The operating system refused to start a worker thread.
    ThreadSpawn,
    /// The I/O driver could not be created (out of file descriptors, for instance).
    Driver,
    /// The scheduling policy panicked while the runtime started (in `init` or `new_local`).
    Policy,
}

/// Why [`Builder::build`] failed. Its message names the setting, the bad value and the valid
/// choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    kind: BuildErrorKind,
    message: String,
}

impl BuildError {
    pub(crate) fn invalid(setting: &str, value: &str, valid: String) -> BuildError {
        BuildError {
            kind: BuildErrorKind::InvalidSetting,
            message: format!("invalid {setting} = {value:?}: expected {valid}"),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> BuildErrorKind {
        self.kind
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// `facade-macros` (a proc-macro crate, which cannot import this constant) checks
    /// `worker_threads = N` against the same bound.
    #[test]
    fn the_macros_bound_on_worker_threads_is_this_one() {
        assert_eq!(MAX_WORKER_THREADS, 1024);
        let ui = include_str!("../tests/ui/bad_worker_threads.stderr");
        assert!(
            ui.contains(&format!("from 0 to {MAX_WORKER_THREADS}")),
            "{ui}"
        );
    }

    fn env(pairs: &[(&str, &str)]) -> Builder {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Builder::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.trim().is_empty())
        })
    }

    #[test]
    fn a_registered_scheduler_is_selected_by_name_like_a_built_in_one() {
        use crate::scheduler::{BasicFifo, register_scheduler, registered_schedulers};
        register_scheduler("Builder-Test-Basic", BasicFifo::default).unwrap();
        assert!(registered_schedulers().contains(&"builder-test-basic".to_owned()));
        // From the environment, case and spaces aside.
        let rt = env(&[
            ("RUNTIME_SCHEDULER", " builder-test-basic "),
            ("RUNTIME_WORKER_THREADS", "1"),
        ])
        .build()
        .unwrap();
        assert_eq!(rt.scheduler(), "builder-test-basic");
        assert_eq!(
            rt.block_on(async { crate::spawn(async { 5 }).await })
                .unwrap(),
            5
        );
        // An unknown name lists the registered ones beside the built-in ones.
        let msg = Builder::new()
            .scheduler_name("nope")
            .build()
            .unwrap_err()
            .to_string();
        assert!(msg.contains("builder-test-basic"), "{msg}");
        assert!(msg.contains("worksteal"), "{msg}");
        // Built-in and empty names cannot be taken.
        for name in ["fifo", " Priority ", ""] {
            let e = register_scheduler(name, BasicFifo::default).unwrap_err();
            assert_eq!(e.kind(), BuildErrorKind::InvalidSetting, "{name:?}");
        }
    }

    #[test]
    fn unknown_scheduler_names_the_variable_the_value_and_the_choices() {
        let e = env(&[("RUNTIME_SCHEDULER", "bogus")]).build().unwrap_err();
        assert_eq!(e.kind(), BuildErrorKind::InvalidSetting);
        let msg = e.to_string();
        assert!(msg.contains("RUNTIME_SCHEDULER"), "{msg}");
        assert!(msg.contains("bogus"), "{msg}");
        for name in SCHEDULERS {
            assert!(msg.contains(name), "{msg}");
        }
    }

    #[test]
    fn unparsable_and_absurd_thread_counts_are_errors() {
        let e = env(&[("RUNTIME_WORKER_THREADS", "two")])
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("RUNTIME_WORKER_THREADS"));
        assert!(e.to_string().contains("\"two\""));
        let e = env(&[("RUNTIME_WORKER_THREADS", "-1")])
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("0 to 1024"), "{e}");
        let e = Builder::new()
            .worker_threads(1_000_000)
            .build()
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("worker_threads") && msg.contains("1000000"),
            "{msg}"
        );
        assert!(Builder::new().thread_stack_size(10).build().is_err());
        let e = Builder::new().max_blocking_threads(0).build().unwrap_err();
        assert!(
            e.to_string().contains("max_blocking_threads") && e.to_string().contains("1 to 100000"),
            "{e}"
        );
        let e = Builder::new()
            .blocking_keep_alive(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("blocking_keep_alive"), "{e}");
    }

    #[test]
    fn a_policy_that_panics_in_init_is_a_build_error_naming_it() {
        use crate::scheduler::{BasicFifo, Notify, Runnable, ScheduleInfo, Scheduler};
        struct BadInit(BasicFifo);
        impl Scheduler for BadInit {
            type Local = ();
            fn name(&self) -> &str {
                "bad-init"
            }
            fn init(&mut self, _: usize) {
                panic!("injected: init fails");
            }
            fn new_local(&self, _: usize) {}
            fn schedule(&self, t: Runnable, i: ScheduleInfo, _: Option<&mut ()>) -> Notify {
                self.0.schedule(t, i, None)
            }
            fn next(&self, w: usize, _: &mut ()) -> Option<Runnable> {
                self.0.next(w, &mut ())
            }
        }
        for workers in [0, 2] {
            let e = Builder::new()
                .custom(BadInit(BasicFifo::default()))
                .worker_threads(workers)
                .build()
                .unwrap_err();
            assert_eq!(e.kind(), BuildErrorKind::Policy);
            let msg = e.to_string();
            assert!(
                msg.contains("bad-init") && msg.contains("`init`") && msg.contains("injected"),
                "{msg}"
            );
        }
    }

    #[test]
    fn policy_stall_settings_are_checked() {
        let e = env(&[("RUNTIME_POLICY_STALL_MS", "never")])
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("RUNTIME_POLICY_STALL_MS"), "{e}");
        let e = Builder::new()
            .policy_stall_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(
            e.to_string().contains("policy_stall_timeout")
                && e.to_string().contains("1 ms to 1 hour"),
            "{e}"
        );
        assert_eq!(
            env(&[("RUNTIME_POLICY_STALL_MS", "0")]).policy_stall_timeout,
            None
        );
        assert_eq!(
            env(&[("RUNTIME_POLICY_STALL_MS", "250")]).policy_stall_timeout,
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            Builder::new().policy_stall_timeout,
            Some(DEFAULT_POLICY_STALL_TIMEOUT)
        );
    }

    #[test]
    fn watchdog_settings_are_checked() {
        let e = env(&[("RUNTIME_WATCHDOG_MS", "soon")]).build().unwrap_err();
        assert!(
            e.to_string().contains("RUNTIME_WATCHDOG_MS") && e.to_string().contains("0 to turn"),
            "{e}"
        );
        let e = Builder::new()
            .watchdog_threshold(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(
            e.to_string().contains("watchdog_threshold")
                && e.to_string().contains("1 ms to 1 hour"),
            "{e}"
        );
        assert!(
            Builder::new()
                .watchdog_threshold(Duration::from_secs(7200))
                .build()
                .is_err()
        );
        let b = env(&[("RUNTIME_WATCHDOG_MS", "0")]);
        assert_eq!(b.watchdog, None);
        let b = env(&[("RUNTIME_WATCHDOG_MS", " 25 ")]);
        assert_eq!(b.watchdog, Some(Duration::from_millis(25)));
        assert_eq!(Builder::new().watchdog, Some(DEFAULT_WATCHDOG_THRESHOLD));
    }

    #[test]
    fn valid_environment_is_applied() {
        let rt = env(&[
            ("RUNTIME_SCHEDULER", " FIFO "),
            ("RUNTIME_WORKER_THREADS", "0"),
        ])
        .build()
        .unwrap();
        assert_eq!(rt.scheduler(), "fifo");
        assert!(rt.handle().as_core().is_current_thread());
        let rt = env(&[("RUNTIME_WORKER_THREADS", "3"), ("RUNTIME_SCHEDULER", "")])
            .build()
            .unwrap();
        assert_eq!(rt.metrics().workers.len(), 3);
    }

    #[test]
    fn nonsensical_priority_bands_are_build_errors() {
        use sched_priority::Band;
        let mut c = PriorityConfig::default();
        c.bands[1].share = 0;
        let e = Builder::new()
            .priority_scheduler_with(c)
            .build()
            .unwrap_err();
        assert!(
            e.to_string().contains("priority bands") && e.to_string().contains("share 0"),
            "{e}"
        );
        let error_of = |bands: Vec<Band>| {
            let c = PriorityConfig {
                bands,
                ..PriorityConfig::default()
            };
            Builder::new()
                .priority_scheduler_with(c)
                .build()
                .unwrap_err()
                .to_string()
        };
        assert!(error_of(vec![]).contains("no bands"));
        assert!(error_of(vec![Band::new("a", 10, 1)]).contains("start at 0"));
        assert_eq!(
            env(&[("RUNTIME_SCHEDULER", "priority")])
                .build()
                .unwrap()
                .scheduler(),
            "priority"
        );
    }

    #[test]
    fn work_stealing_is_the_default() {
        assert_eq!(Builder::new().build().unwrap().scheduler(), "worksteal");
        assert_eq!(env(&[]).build().unwrap().scheduler(), "worksteal");
    }

    #[test]
    fn the_first_bad_setting_is_reported() {
        let e = Builder::new()
            .scheduler_name("nope")
            .worker_threads(5000)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn thread_names_are_applied() {
        let rt = Builder::new()
            .worker_threads(1)
            .thread_name("my-pool")
            .build()
            .unwrap();
        let name = rt.block_on(async {
            crate::spawn(async { std::thread::current().name().map(str::to_string) })
                .await
                .unwrap()
        });
        assert_eq!(name.as_deref(), Some("my-pool-0"));
    }
}
