//! Runtime counters: plain relaxed atomics, one cache line per worker, written only by their
//! worker (a load and a store, no read-modify-write), plus one shared slot for events that
//! happen on other threads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::histogram::HistogramSnapshot;

/// One worker's counters, on a cache line of their own.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) polls: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) spawned: AtomicU64,
    pub(crate) completed: AtomicU64,
    /// What the worker is polling: a task id, `watchdog::MAIN_POLL | n`, or 0 between polls.
    pub(crate) current: AtomicU64,
    /// Tasks the policy took from this worker's thread (`schedule` returned), for the stall
    /// check (`Shared::held_by_policy`).
    pub(crate) scheduled: AtomicU64,
}

/// Increments a counter. `owned`: the caller is the only thread that writes it.
#[inline]
pub(crate) fn bump(counter: &AtomicU64, owned: bool) {
    if owned {
        counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
    } else {
        counter.fetch_add(1, Relaxed);
    }
}

pub(crate) struct Counters {
    pub(crate) workers: Box<[Slot]>,
    /// Spawns and completions that happen off the workers (foreign threads, shutdown).
    pub(crate) foreign: Slot,
    /// Panics caught where the runtime called into code that is not its own (see fault.rs).
    pub(crate) caught_panics: AtomicU64,
    /// Polls that ended because the task spent its cooperative budget (coop.rs).
    pub(crate) budget_yields: AtomicU64,
}

impl Counters {
    /// Polls of all workers together.
    pub(crate) fn total_polls(&self) -> u64 {
        self.workers.iter().map(|w| w.polls.load(Relaxed)).sum()
    }

    pub(crate) fn new(workers: usize) -> Counters {
        Counters {
            workers: (0..workers).map(|_| Slot::default()).collect(),
            foreign: Slot::default(),
            caught_panics: AtomicU64::new(0),
            budget_yields: AtomicU64::new(0),
        }
    }

    /// The slot for worker `index` (owned by the caller), or the shared one.
    #[inline]
    pub(crate) fn slot(&self, worker: Option<usize>) -> (&Slot, bool) {
        match worker {
            Some(i) => (&self.workers[i], true),
            None => (&self.foreign, false),
        }
    }

    /// Worker `index`'s poll count and what it is polling (for the watchdog). Relaxed: the
    /// watchdog only compares samples taken half its threshold apart.
    pub(crate) fn running(&self, index: usize) -> (u64, u64) {
        let slot = &self.workers[index];
        (slot.polls.load(Relaxed), slot.current.load(Relaxed))
    }

    pub(crate) fn snapshot(&self) -> RuntimeMetrics {
        let workers: Vec<WorkerMetrics> = self
            .workers
            .iter()
            .map(|s| WorkerMetrics {
                polls: s.polls.load(Relaxed),
                parks: s.parks.load(Relaxed),
                tasks_spawned: s.spawned.load(Relaxed),
                tasks_completed: s.completed.load(Relaxed),
                slow_polls: 0,
                scheduler: Vec::new(),
                poll_time: None,
                schedule_latency: None,
            })
            .collect();
        let sum = |f: fn(&WorkerMetrics) -> u64| workers.iter().map(f).sum::<u64>();
        RuntimeMetrics {
            tasks_spawned: sum(|w| w.tasks_spawned) + self.foreign.spawned.load(Relaxed),
            tasks_completed: sum(|w| w.tasks_completed) + self.foreign.completed.load(Relaxed),
            tasks_polled: sum(|w| w.polls),
            tasks_alive: 0,
            slow_polls: 0,
            caught_panics: self.caught_panics.load(Relaxed),
            budget_forced_yields: self.budget_yields.load(Relaxed),
            ejection: None,
            workers,
            scheduler: Vec::new(),
            poll_time: Vec::new(),
            schedule_latency: Vec::new(),
        }
    }
}

/// A snapshot of a runtime's counters, from [`Handle::metrics`](crate::Handle::metrics).
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeMetrics {
    /// Tasks spawned since the runtime started.
    pub tasks_spawned: u64,
    /// Tasks whose future is gone: finished, panicked or cancelled.
    pub tasks_completed: u64,
    /// Polls of tasks, all workers together.
    pub tasks_polled: u64,
    /// Tasks alive now (spawned and not yet completed).
    pub tasks_alive: u64,
    /// Polls that the watchdog reported for blocking a worker longer than its threshold
    /// (always 0 with the watchdog off).
    pub slow_polls: u64,
    /// Panics the runtime caught and reported (a `tracing` ERROR each) where it called code
    /// that is not its own: a waker woken by the driver (a timer, I/O readiness), a policy's
    /// method. A task's own panic is not counted here: it goes to its `JoinHandle`.
    pub caught_panics: u64,
    /// The scheduling policy's ejection, if it failed (see `Ejection`): since then the runtime
    /// schedules with the built-in FIFO policy.
    pub ejection: Option<crate::Ejection>,
    /// Per-worker counters, by worker index.
    pub workers: Vec<WorkerMetrics>,
    /// The scheduling policy's own counters, summed over the workers (for instance
    /// work-stealing's `steals`, or the depth of its queues).
    pub scheduler: Vec<(String, u64)>,
    /// Times a task's poll ended because it spent its cooperative budget (it was made to
    /// yield by a resource that said "not now": tokio's budget-forced yields).
    pub budget_forced_yields: u64,
    /// With histograms on ([`Config::histograms`](crate::Config)): poll times, all workers
    /// together, per class of priority (the priority scheduler's bands, or `"all"`).
    pub poll_time: Vec<(String, HistogramSnapshot)>,
    /// With histograms on: schedule latency (wake-up or spawn to poll), per class.
    pub schedule_latency: Vec<(String, HistogramSnapshot)>,
}

impl RuntimeMetrics {
    /// The policy's counter named `name`, if it has one.
    pub fn scheduler_counter(&self, name: &str) -> Option<u64> {
        self.scheduler
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }
}

/// One worker's counters.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerMetrics {
    /// Task polls this worker made.
    pub polls: u64,
    /// Times this worker went to sleep for lack of work.
    pub parks: u64,
    /// Tasks spawned from this worker.
    pub tasks_spawned: u64,
    /// Tasks that completed on this worker.
    pub tasks_completed: u64,
    /// Polls on this worker that the watchdog reported.
    pub slow_polls: u64,
    /// The scheduling policy's own counters for this worker.
    pub scheduler: Vec<(String, u64)>,
    /// With histograms on: this worker's poll times, all classes together.
    pub poll_time: Option<HistogramSnapshot>,
    /// With histograms on: the schedule latency of the polls this worker made.
    pub schedule_latency: Option<HistogramSnapshot>,
}
