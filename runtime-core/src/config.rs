//! [`Config`] (how to build a core runtime), [`SpawnOptions`] and [`Extensions`].

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::hooks::RuntimeHooks;
use crate::park::Driver;
use crate::task::Priority;

/// How to build a core runtime. The facade's `Builder` fills this in; most users never see it.
pub struct Config {
    /// Worker threads; `0` runs the single worker on the thread inside `block_on`.
    pub worker_threads: usize,
    /// Names worker thread `i`.
    pub thread_name: Arc<dyn Fn(usize) -> String + Send + Sync>,
    /// Stack size of the worker threads, or the platform default.
    pub thread_stack_size: Option<usize>,
    /// The I/O and timer driver, if any; without one, idle workers sleep on a condvar.
    pub driver: Option<Box<dyn Driver>>,
    /// State of the layers above (the reactor, the timers, the blocking pool), one value per
    /// type, reachable through [`Handle::extension`](crate::Handle::extension).
    pub extensions: Extensions,
    /// The watchdog's threshold: a single poll that keeps a worker longer than this is reported
    /// (a `tracing` warning naming the task and the worker, and
    /// [`RuntimeMetrics::slow_polls`](crate::RuntimeMetrics::slow_polls)). `None`: no watchdog.
    pub watchdog: Option<Duration>,
    /// The watchdog thread's name.
    pub watchdog_thread_name: String,
    /// A policy that holds runnable tasks while every worker has asked it for work and parked,
    /// for this long, is ejected (see [`RuntimeMetrics::ejection`](crate::RuntimeMetrics)).
    /// Checked by the watchdog thread: only with [`watchdog`](Config::watchdog) on. `None`:
    /// never.
    pub policy_stall_timeout: Option<Duration>,
    /// Callbacks at task and worker events (hooks.rs); none by default.
    pub hooks: RuntimeHooks,
    /// Histograms of poll time and schedule latency (histogram.rs); off by default.
    pub histograms: Option<crate::HistogramConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            worker_threads: 1,
            thread_name: Arc::new(|i| format!("rt-worker-{i}")),
            thread_stack_size: None,
            driver: None,
            extensions: Extensions::default(),
            watchdog: None,
            watchdog_thread_name: "rt-watchdog".into(),
            policy_stall_timeout: Some(Duration::from_secs(2)),
            hooks: RuntimeHooks::default(),
            histograms: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("worker_threads", &self.worker_threads)
            .field("thread_stack_size", &self.thread_stack_size)
            .field("driver", &self.driver.is_some())
            .field("watchdog", &self.watchdog)
            .finish_non_exhaustive()
    }
}

/// Options for one spawn.
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    /// The task's name, shown in traces and watchdog reports.
    pub name: Option<String>,
    /// The task's priority; `None` inherits the spawning task's, or gives [`Priority::NORMAL`]
    /// outside a task.
    pub priority: Option<Priority>,
}

/// Per-runtime state of the layers above core, one value per type, set at build time: how the
/// facade's reactor, timers and blocking pool find their own runtime's state from a
/// [`Handle`](crate::Handle), with no process-global hook.
///
/// ```
/// use runtime_core::{Config, Extensions, Runtime};
/// # use runtime_core::{Notify, Runnable, ScheduleInfo, Scheduler};
/// # #[derive(Default)] struct S(std::sync::Mutex<Vec<Runnable>>);
/// # impl Scheduler for S { type Local = ();
/// #   fn new_local(&self, _: usize) {}
/// #   fn schedule(&self, t: Runnable, _: ScheduleInfo, _: Option<&mut ()>) -> Notify {
/// #       self.0.lock().unwrap().push(t); Notify::Any }
/// #   fn next(&self, _: usize, _: &mut ()) -> Option<Runnable> { self.0.lock().unwrap().pop() } }
/// struct Greeting(&'static str);
///
/// let mut extensions = Extensions::default();
/// extensions.insert(Greeting("hello"));
/// let rt = Runtime::new(S::default(), Config { extensions, ..Config::default() })?;
/// assert_eq!(rt.handle().extension::<Greeting>().unwrap().0, "hello");
/// assert!(rt.handle().extension::<String>().is_none());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Default)]
pub struct Extensions {
    /// Few entries (the facade sets one): a vector searched by type beats a map.
    entries: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
}

impl Extensions {
    /// Stores `value`, replacing the value of the same type if there was one.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        let value: Arc<dyn Any + Send + Sync> = Arc::new(value);
        match self
            .entries
            .iter_mut()
            .find(|(t, _)| *t == TypeId::of::<T>())
        {
            Some(entry) => entry.1 = value,
            None => self.entries.push((TypeId::of::<T>(), value)),
        }
    }

    /// The value of type `T`, if one was stored.
    #[inline]
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.entries
            .iter()
            .find(|(t, _)| *t == TypeId::of::<T>())
            .and_then(|(_, v)| v.downcast_ref::<T>())
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("entries", &self.entries.len())
            .finish()
    }
}
