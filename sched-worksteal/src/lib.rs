//! The work-stealing scheduling policy: tokio's proven shape.
//!
//! - **Local queues.** Each worker has a bounded run queue (256 tasks by default). A task that a
//!   worker schedules (spawned or woken by the task it is running) goes to that worker's queue;
//!   when the queue is full, half of it moves to the shared overflow queue.
//! - **LIFO slot.** A task spawned or woken by the running task goes first into its worker's
//!   LIFO slot and runs next, while the data it was sent is still in cache (message passing).
//!   A yield never uses the slot. At most [`MAX_LIFO_POLLS`] consecutive polls come from the
//!   slot; then its task goes to the back of the local queue, so two tasks that keep waking each
//!   other cannot starve the rest. The slot is stealable: a thief looks at it on its last pass,
//!   so a task in the slot is not stranded behind a worker stuck in a long poll.
//!   [`WorkStealingConfig::lifo_slot`] turns it off.
//! - **Global queue** (`concurrent-queue`), and beside it the **overflow queue**. The global
//!   queue holds tasks spawned or woken from outside the workers; the overflow queue the tasks
//!   a full local queue gave up. They are kept apart so that a task already running (woken by a
//!   burst of timers, say) that overflowed does not wait behind every task spawned from outside
//!   that has not started yet (timer_lateness: 100,000 timers, p99 lateness 80 ms with one
//!   queue, a few ms with two). A worker whose local queue is empty takes from the overflow
//!   queue first, then the global one; the fairness check below alternates between them, so
//!   neither waits for the other. A worker takes one task from them about every 200 us of polling (between 2 and
//!   [`WorkStealingConfig::global_queue_interval`] = 61 ticks, from poll times measured once per
//!   window, as tokio does), so nothing queued there waits long; and a fair share when its local
//!   queue is empty. Measured against crossbeam-deque's
//!   `Injector` (same speed) and a mutex-guarded `VecDeque` with batch transfers (slower: every
//!   foreign push takes the lock), it stays.
//! - **Stealing.** A worker with nothing local and nothing global steals about half of a random
//!   victim's queue. At most half of the workers steal at once. A worker that finds work after
//!   being woken to search wakes the next one (core's idle protocol), so work spreads one worker
//!   at a time, without a thundering herd.
//! - **Notify.** After a local schedule that only filled an empty LIFO slot, or a yield, nobody
//!   is woken: the worker runs the task itself. Anything else that lands in a stealable queue
//!   wakes an idle worker (if none is already searching).
//!
//! Counters (in `RuntimeMetrics::scheduler`): `steals`, `stolen_tasks`, `local_pushes`,
//! `global_pushes`, `overflows`, `lifo_polls`.

mod lifo;
mod queue;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use concurrent_queue::ConcurrentQueue;
use runtime_core::{MetricsVisitor, Notify, Runnable, ScheduleInfo, ScheduleReason, Scheduler};

use lifo::LifoSlot;
use queue::{LocalQueue, Stealer};

/// Most consecutive polls a worker takes from its LIFO slot before it runs its queue.
pub const MAX_LIFO_POLLS: u32 = 3;

/// Settings of the work-stealing policy.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkStealingConfig {
    /// Whether a task woken by the running task goes to the LIFO slot (default: yes).
    pub lifo_slot: bool,
    /// Capacity of each worker's local queue (default 256).
    pub local_queue_capacity: usize,
    /// A worker looks at the global queue first every this many ticks (default 61).
    pub global_queue_interval: u32,
}

impl WorkStealingConfig {
    /// These settings with the LIFO slot on or off.
    pub fn with_lifo_slot(mut self, enabled: bool) -> Self {
        self.lifo_slot = enabled;
        self
    }

    /// These settings with another local queue capacity (at least 1).
    pub fn with_local_queue_capacity(mut self, capacity: usize) -> Self {
        self.local_queue_capacity = capacity;
        self
    }
}

impl Default for WorkStealingConfig {
    fn default() -> Self {
        WorkStealingConfig {
            lifo_slot: true,
            local_queue_capacity: 256,
            global_queue_interval: 61,
        }
    }
}

/// One worker's counters, on a cache line of their own. Written by their worker only, except
/// through the shared `global_pushes`.
#[repr(align(128))]
#[derive(Default)]
struct Counters {
    steals: AtomicU64,
    stolen_tasks: AtomicU64,
    local_pushes: AtomicU64,
    overflows: AtomicU64,
    lifo_polls: AtomicU64,
}

/// Increments a counter that only its owner writes (no read-modify-write needed).
#[inline]
fn bump(c: &AtomicU64, by: u64) {
    c.store(c.load(Relaxed) + by, Relaxed);
}

/// What other workers can reach of worker `i`.
struct WorkerShared {
    /// Set once, by `new_local(i)`, which creates the queue; until then there is nothing to
    /// steal.
    stealer: OnceLock<Stealer>,
    lifo: LifoSlot,
    counters: Counters,
}

/// The work-stealing policy. See the [crate docs](crate).
pub struct WorkStealing {
    config: WorkStealingConfig,
    workers: Box<[WorkerShared]>,
    global: ConcurrentQueue<Runnable>,
    /// What full local queues gave up (see the crate docs).
    overflow: ConcurrentQueue<Runnable>,
    global_pushes: AtomicU64,
    stealing: AtomicUsize,
}

impl std::fmt::Debug for WorkStealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkStealing")
            .field("config", &self.config)
            .field("workers", &self.workers.len())
            .field("global", &self.global.len())
            .field("overflow", &self.overflow.len())
            .finish()
    }
}

impl Default for WorkStealing {
    fn default() -> Self {
        WorkStealing::new()
    }
}

impl WorkStealing {
    /// The policy with default settings.
    pub fn new() -> WorkStealing {
        WorkStealing::with_config(WorkStealingConfig::default())
    }

    /// The policy with the given settings. A zero capacity or interval is raised to 1.
    pub fn with_config(mut config: WorkStealingConfig) -> WorkStealing {
        config.local_queue_capacity = config.local_queue_capacity.max(1);
        config.global_queue_interval = config.global_queue_interval.max(1);
        WorkStealing {
            config,
            workers: Box::new([]),
            global: ConcurrentQueue::unbounded(),
            overflow: ConcurrentQueue::unbounded(),
            global_pushes: AtomicU64::new(0),
            stealing: AtomicUsize::new(0),
        }
    }

    fn push_global(&self, task: Runnable) {
        if let Err(e) = self.global.push(task) {
            unreachable!("the global queue is never closed: {e}");
        }
        self.global_pushes.fetch_add(1, Relaxed);
    }

    fn push_overflow(&self, task: Runnable) {
        if let Err(e) = self.overflow.push(task) {
            unreachable!("the overflow queue is never closed: {e}");
        }
    }

    /// Pushes at the back of worker `l`'s queue; when it is full, moves half of it to the
    /// overflow queue first.
    fn push_local(&self, l: &Local, task: Runnable) {
        let cap = self.config.local_queue_capacity;
        let c = &self.workers[l.index].counters;
        bump(&c.local_pushes, 1);
        if let Err(task) = l.queue.push(task, cap) {
            bump(&c.overflows, 1);
            for _ in 0..(l.queue.len() / 2).max(1) {
                match l.queue.pop() {
                    Some(t) => self.push_overflow(t),
                    None => break,
                }
            }
            if let Err(task) = l.queue.push(task, cap) {
                self.push_overflow(task);
            }
        }
    }

    /// Takes a task from the overflow queue, or else the global queue, and a fair share more
    /// of the same queue into the local queue.
    fn pop_global(&self, l: &Local) -> Option<Runnable> {
        let (queue, first) = match self.overflow.pop() {
            Ok(t) => (&self.overflow, t),
            Err(_) => (&self.global, self.global.pop().ok()?),
        };
        let share = (queue.len() / self.workers.len())
            .min(self.config.local_queue_capacity / 2)
            .min(32);
        for _ in 0..share {
            let Ok(t) = queue.pop() else { break };
            self.push_local(l, t);
        }
        Some(first)
    }

    fn steal(&self, l: &mut Local) -> Option<Runnable> {
        let n = self.workers.len();
        if n < 2 {
            return None;
        }
        // At most half of the workers steal at once.
        if self.stealing.fetch_add(1, Relaxed) >= (n / 2).max(1) {
            self.stealing.fetch_sub(1, Relaxed);
            return None;
        }
        let found = self.steal_pass(l);
        self.stealing.fetch_sub(1, Relaxed);
        found
    }

    fn steal_pass(&self, l: &mut Local) -> Option<Runnable> {
        let n = self.workers.len();
        let start = l.random() as usize % n;
        let c = &self.workers[l.index].counters;
        for k in 0..n {
            let v = (start + k) % n;
            let Some(victim) = self.workers[v].stealer.get() else {
                continue;
            };
            if v == l.index || victim.is_empty() {
                continue;
            }
            let before = l.queue.len();
            if let Some(t) = victim.steal_into(&l.queue) {
                bump(&c.steals, 1);
                bump(
                    &c.stolen_tasks,
                    (l.queue.len() - before.min(l.queue.len())) as u64 + 1,
                );
                return Some(t);
            }
        }
        // Last pass: the global queue, then the other workers' LIFO slots.
        if let Some(t) = self.pop_global(l) {
            return Some(t);
        }
        for k in 0..n {
            let v = (start + k) % n;
            if v != l.index {
                if let Some(t) = self.workers[v].lifo.take() {
                    bump(&c.steals, 1);
                    bump(&c.stolen_tasks, 1);
                    return Some(t);
                }
            }
        }
        None
    }
}

/// Worker state of [`WorkStealing`]: its queue and the bookkeeping of its picks.
pub struct Local {
    index: usize,
    queue: LocalQueue,
    tick: u32,
    /// Ticks between two looks at the global queue (adapted from measured poll times).
    global_interval: u32,
    /// Fairness checks made, to alternate between the global and the overflow queue.
    checks: u32,
    /// Start and length (in ticks) of the current measurement window.
    window_start: Instant,
    window_ticks: u32,
    lifo_polls: u32,
    rng: u32,
}

/// About this much polling between two looks at the global queue.
const GLOBAL_QUEUE_PERIOD: Duration = Duration::from_micros(200);

impl Local {
    /// Recomputes the global-queue interval from the time the last window of ticks took.
    fn adapt_interval(&mut self, max: u32) {
        self.window_ticks += self.global_interval;
        if self.window_ticks < max {
            return;
        }
        let now = Instant::now();
        let per_tick = now.saturating_duration_since(self.window_start) / self.window_ticks;
        self.window_start = now;
        self.window_ticks = 0;
        let ticks = GLOBAL_QUEUE_PERIOD.as_nanos() / per_tick.as_nanos().max(1);
        self.global_interval = ticks.clamp(2, u128::from(max)) as u32;
    }

    fn random(&mut self) -> u32 {
        // xorshift32
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Local(worker {}, {} queued)",
            self.index,
            self.queue.len()
        )
    }
}

impl Scheduler for WorkStealing {
    type Local = Local;

    fn name(&self) -> &str {
        "worksteal"
    }

    fn init(&mut self, workers: usize) {
        self.workers = (0..workers)
            .map(|_| WorkerShared {
                stealer: OnceLock::new(),
                lifo: LifoSlot::new(),
                counters: Counters::default(),
            })
            .collect();
    }

    fn new_local(&self, worker: usize) -> Local {
        let (queue, stealer) = LocalQueue::new();
        if self.workers[worker].stealer.set(stealer).is_err() {
            panic!("core creates worker {worker}'s state once");
        }
        Local {
            index: worker,
            queue,
            tick: 0,
            global_interval: self.config.global_queue_interval,
            checks: 0,
            window_start: Instant::now(),
            window_ticks: 0,
            lifo_polls: 0,
            rng: 0x9E37_79B9 ^ (worker as u32).wrapping_mul(0x85EB_CA6B) | 1,
        }
    }

    #[inline]
    fn schedule(&self, task: Runnable, info: ScheduleInfo, local: Option<&mut Local>) -> Notify {
        let Some(l) = local else {
            self.push_global(task);
            return Notify::Any;
        };
        let slot = &self.workers[l.index].lifo;
        if self.config.lifo_slot && info.reason == ScheduleReason::Spawn && !slot.is_empty() {
            // A spawn fills an empty slot but does not displace its task: a loop of spawns
            // would otherwise move every task through the slot on its way to the queue.
            self.push_local(l, task);
            Notify::Any
        } else if self.config.lifo_slot && info.reason != ScheduleReason::Yield {
            match slot.put(task) {
                Some(prev) => {
                    self.push_local(l, prev);
                    Notify::Any
                }
                // Only the slot was filled: this worker runs the task next.
                None => Notify::None,
            }
        } else {
            self.push_local(l, task);
            // A yield wakes nobody (as tokio's deferred yields): this worker is awake and will
            // come back to the task; a worker woken for it would only steal it back and forth.
            if info.reason == ScheduleReason::Yield {
                Notify::None
            } else {
                Notify::Any
            }
        }
    }

    #[inline]
    fn next(&self, _worker: usize, l: &mut Local) -> Option<Runnable> {
        let me = &self.workers[l.index];
        // The LIFO slot first (at most MAX_LIFO_POLLS in a row): its task was just woken by
        // the task this worker ran, and nothing else may starve it (with the global queue
        // first and looked at on every tick, a woken task sat in the slot for good).
        if self.config.lifo_slot {
            if l.lifo_polls < MAX_LIFO_POLLS {
                if let Some(t) = me.lifo.take() {
                    l.lifo_polls += 1;
                    bump(&me.counters.lifo_polls, 1);
                    return Some(t);
                }
            } else if let Some(t) = me.lifo.take() {
                // Enough LIFO polls in a row: behind the others it goes.
                self.push_local(l, t);
            }
        }
        l.lifo_polls = 0;
        l.tick = l.tick.wrapping_add(1);
        if l.tick >= l.global_interval {
            l.tick = 0;
            // Fairness: one task from the global queue, not a batch. A batch here lands in a
            // busy local queue and overflows straight back (measured: this alone made
            // yield_many 1.7x slower). How often: about every GLOBAL_QUEUE_PERIOD of work,
            // between 2 and `global_queue_interval` ticks, from the average poll time measured
            // over the last window (one clock read per window; tokio's adaptive interval).
            // With a fixed 61 ticks of 50 us polls, a task woken from outside waited behind
            // overflowed tasks for over a second (latency_under_load_foreign).
            l.adapt_interval(self.config.global_queue_interval);
            // The global queue first, but the overflow queue first one time in four, so that
            // neither waits for the other for good.
            l.checks = l.checks.wrapping_add(1);
            let (a, b) = if l.checks % 4 != 0 {
                (&self.global, &self.overflow)
            } else {
                (&self.overflow, &self.global)
            };
            if let Ok(t) = a.pop().or_else(|_| b.pop()) {
                return Some(t);
            }
        }
        if let Some(t) = l.queue.pop() {
            return Some(t);
        }
        if let Some(t) = self.pop_global(l) {
            return Some(t);
        }
        self.steal(l)
    }

    fn drain(&self, worker: usize, l: &mut Local) -> Option<Runnable> {
        // Its own slot and queue, then what all workers share: the global queue and the slots
        // of the others (a worker that has not stopped yet may refill its slot; it drains that
        // itself when it stops).
        self.workers[worker]
            .lifo
            .take()
            .or_else(|| l.queue.pop())
            .or_else(|| self.global.pop().ok())
            .or_else(|| self.overflow.pop().ok())
            .or_else(|| self.workers.iter().find_map(|w| w.lifo.take()))
    }

    fn metrics(&self, worker: Option<usize>, out: &mut dyn MetricsVisitor) {
        let pick: &[WorkerShared] = match worker {
            Some(i) => self.workers.get(i..=i).unwrap_or(&[]),
            None => &self.workers,
        };
        let sum = |f: fn(&Counters) -> &AtomicU64| -> u64 {
            pick.iter().map(|w| f(&w.counters).load(Relaxed)).sum()
        };
        out.counter("steals", sum(|c| &c.steals));
        out.counter("stolen_tasks", sum(|c| &c.stolen_tasks));
        out.counter("local_pushes", sum(|c| &c.local_pushes));
        out.counter("overflows", sum(|c| &c.overflows));
        out.counter("lifo_polls", sum(|c| &c.lifo_polls));
        // Queue depths now (gauges): the local queues (not the LIFO slots), then the shared
        // queues for the runtime as a whole.
        let local: usize = pick
            .iter()
            .filter_map(|w| w.stealer.get())
            .map(Stealer::len)
            .sum();
        out.counter("queued_local", local as u64);
        if worker.is_none() {
            out.counter("global_pushes", self.global_pushes.load(Relaxed));
            out.counter(
                "queued_global",
                (self.global.len() + self.overflow.len()) as u64,
            );
        }
    }
}
