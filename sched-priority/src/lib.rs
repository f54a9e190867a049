//! The priority scheduling policy: bands with weighted fair shares.
//!
//! A task's [`Priority`] (0-255) maps to a *band*: the first band, from the most urgent down,
//! whose threshold it reaches. The default bands are Critical (224+), High (160+), Normal
//! (96+), Low (32+) and Background (0+), with shares 50, 25, 15, 7 and 3. Within a band tasks
//! run in FIFO order.
//!
//! # Queues: per worker, per band, no global lock
//!
//! Each worker has one FIFO queue per band (crossbeam-deque's Chase-Lev deque: the owner pushes
//! and pops without a read-modify-write); each band also has an injector, for tasks scheduled
//! from outside the workers. A task woken or spawned on a worker goes to that worker's queue of
//! its band; one scheduled from elsewhere goes to its band's injector. A worker with nothing
//! visible to it steals about half of another worker's queue of the most urgent band that has
//! work. Nothing on the schedule/next path takes a lock or touches a counter that another
//! worker writes. Which bands a worker has work in, the others learn from one word it
//! publishes (a bit per band, stored only when a band's queue turns from empty to not or
//! back), not by reading the two ends of each of its queues, which it writes on every push and
//! pop: on yield_many that look cost an eighth of the profile.
//!
//! # Sharing between bands
//!
//! Each worker keeps a *virtual runtime* per band, advanced after every poll of one of the
//! band's tasks on that worker by the poll's duration divided by the band's share (glommio's
//! and Linux CFS's idea; with [`Accounting::PollCount`] by a fixed cost per poll instead). A
//! worker takes its next task from the band with the smallest virtual runtime among the bands
//! it can see work in (its own queues and the injectors), the more urgent band on a tie. So on
//! each worker, each band with runnable tasks gets its share of that worker's time, and no band
//! starves; since tasks are spread over the workers (spawns land where they are made, idle
//! workers steal, the injectors are shared), the shares hold for the runtime as a whole too.
//! The accounting is batched per worker: no other worker ever reads it.
//!
//! # Latency
//!
//! A band that becomes runnable on a worker starts at that worker's smallest virtual runtime
//! among runnable bands, and never further ahead of it than [`PriorityConfig::max_lag`]. An
//! urgent band that stays within its share is therefore picked by the next pick of the worker
//! that holds its task: the task waits for the poll in progress on that worker, not for the
//! queue. An urgent task woken from outside the workers sits in its band's injector, which
//! every worker looks at on every pick, so the first worker to finish a poll takes it. And a
//! worker that is idle (or wakes up for the task) steals urgent bands first. Strict priority
//! would give the same latency but starve the low bands; here an urgent band that floods the
//! runtime is held to its share.
//!
//! Poll times come from core ([`Hooks::account_polls`]): one clock read per poll when polls
//! follow each other (a poll is timed from the end of the previous one).
//!
//! A task's priority can change while it runs or waits (`JoinHandle::set_priority`, or from
//! inside the task); the change applies at its next scheduling. A queued task stays in the
//! queue it was put in, so no queue is ever corrupted.
//!
//! On one worker, tasks of one band run in the order they were scheduled, those scheduled on
//! the worker before those that came through the injector since its last pick.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_utils::CachePadded;

use runtime_core::{
    Hooks, MetricsVisitor, Notify, Priority, Runnable, ScheduleInfo, ScheduleReason, Scheduler,
};

/// One band: tasks whose priority is at least `min_priority` (and below the previous band's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Band {
    /// A name for reports.
    pub name: String,
    /// The lowest priority that belongs to this band.
    pub min_priority: u8,
    /// The band's weight in the sharing of worker time (at least 1).
    pub share: u32,
}

impl Band {
    /// A band.
    pub fn new(name: impl Into<String>, min_priority: u8, share: u32) -> Band {
        Band {
            name: name.into(),
            min_priority,
            share,
        }
    }
}

/// What a band's virtual runtime counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accounting {
    /// The time actually spent polling (the default).
    #[default]
    PollTime,
    /// One unit per poll, whatever its length: deterministic, for tests.
    PollCount,
}

/// Settings of the priority policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityConfig {
    /// From the most urgent (highest `min_priority`) down; the last must start at 0.
    pub bands: Vec<Band>,
    /// What the virtual runtimes count.
    pub accounting: Accounting,
    /// How far ahead of the most-served runnable band a band that wakes up may start, in its
    /// own poll time (bounds the wait of an urgent band that used more than its share
    /// recently); also the most one poll is charged.
    pub max_lag: Duration,
}

impl Default for PriorityConfig {
    fn default() -> Self {
        PriorityConfig {
            bands: vec![
                Band::new("critical", 224, 50),
                Band::new("high", 160, 25),
                Band::new("normal", 96, 15),
                Band::new("low", 32, 7),
                Band::new("background", 0, 3),
            ],
            accounting: Accounting::PollTime,
            max_lag: Duration::from_millis(2),
        }
    }
}

/// A nonsensical [`PriorityConfig`]: the message says which part and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl PriorityConfig {
    /// Checks the bands: at least one, shares at least 1, thresholds strictly decreasing and
    /// the last one 0 (so every priority has a band; hence at most 256 bands).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.bands.is_empty() {
            return err("no bands: at least one band is needed".into());
        }
        for (i, b) in self.bands.iter().enumerate() {
            if b.share == 0 {
                return err(format!(
                    "band {:?} has share 0: shares must be at least 1",
                    b.name
                ));
            }
            if i > 0 && b.min_priority >= self.bands[i - 1].min_priority {
                return err(format!(
                    "band {:?} starts at priority {}, not below the band before it ({}): list bands from the most urgent down",
                    b.name,
                    b.min_priority,
                    self.bands[i - 1].min_priority
                ));
            }
        }
        let last = self.bands.last().expect("not empty");
        if last.min_priority != 0 {
            return err(format!(
                "the last band {:?} starts at priority {}: it must start at 0 so that every priority has a band",
                last.name, last.min_priority
            ));
        }
        Ok(())
    }
}

/// Virtual time units per nanosecond of poll time at share 1 (keeps the division exact enough).
const SCALE: u64 = 1 << 10;
/// The cost of one poll under [`Accounting::PollCount`].
const POLL_UNIT: u64 = 1_000_000;
/// Most tasks one steal takes (from a worker's queue or an injector).
const MAX_STEAL: usize = 32;
/// Every this many picks, a worker moves tasks from the injector of its chosen band to the back
/// of its own queue of that band, so that tasks scheduled from outside are not held up for good
/// by a queue that never empties.
const INJECTOR_INTERVAL: u32 = 31;

/// Every this many picks, a worker looks at which bands the other workers have work in.
const REMOTE_INTERVAL: u32 = 16;

/// What the other workers can reach of one worker: its queue of each band, and its counters.
struct WorkerShared {
    /// Set once, by `new_local`.
    stealers: OnceLock<Box<[Stealer<Runnable>]>>,
    /// Polls per band of this worker's picks (written by the worker only).
    /// Each on cache lines of its own.
    polls: Box<[CachePadded<AtomicU64>]>,
    /// The bands this worker's queues may hold work in, one bit per band (64 bands a word),
    /// written by the worker only and only when a bit changes (see [`Local::published`]).
    /// The others read these words instead of each queue's two ends, which the owner
    /// writes on every push and pop.
    with_work: Box<[CachePadded<AtomicU64>]>,
}

/// The priority policy. See the [crate docs](crate).
pub struct PriorityScheduler {
    config: PriorityConfig,
    /// `band_of[p]`: the band of priority `p`.
    band_of: [u8; 256],
    weights: Vec<u64>,
    /// Per band: `config.max_lag` in virtual time.
    lag: Vec<u64>,
    /// `config.max_lag` in nanoseconds of poll time.
    max_lag: u64,
    /// Per band: tasks scheduled from outside the workers.
    injectors: Box<[Injector<Runnable>]>,
    workers: Box<[WorkerShared]>,
}

impl fmt::Debug for PriorityScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriorityScheduler")
            .field("config", &self.config)
            .field("workers", &self.workers.len())
            .finish()
    }
}

/// A worker's state: its queues, its virtual runtimes, and the accounting of its last poll
/// (applied at its next pick).
pub struct Local {
    index: usize,
    /// One FIFO queue per band.
    queues: Box<[Worker<Runnable>]>,
    /// Per band, each on cache lines of its own.
    bands: Box<[CachePadded<BandState>]>,
    /// Monotonic: the virtual runtime of the band last picked.
    min_vruntime: u64,
    pending: Option<(u8, u64)>,
    tick: u32,
    /// This worker's copy of its [`WorkerShared::with_work`]: a band's bit is set before a
    /// task is scheduled to its queue here and after a pick that moved a batch into it, and
    /// cleared when a pick finds or leaves the queue empty. So a clear bit means the queue was
    /// empty at this worker's last look and has had no push since; a set bit may be stale
    /// (another worker stole the work), which costs that worker one failed steal.
    published: Box<[u64]>,
}

impl fmt::Debug for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("worker", &self.index)
            .field(
                "queued",
                &self.queues.iter().map(Worker::len).sum::<usize>(),
            )
            .finish()
    }
}

/// One band's accounting on one worker, padded to its own cache lines ([`CachePadded`]): the
/// small per-worker allocations of two workers would otherwise share lines, and every pick
/// writes here (measured: yield_many took 27 ms instead of 14 when the heap happened to place
/// them together).
#[derive(Debug, Default)]
struct BandState {
    vruntime: u64,
    /// Whether the band had work at this worker's last pick (a band that had none starts
    /// again near the others: see the crate docs).
    active: bool,
    /// Whether another worker's queue of this band had work at the last look (every
    /// [`REMOTE_INTERVAL`] picks): a band served only by another worker is runnable here too,
    /// so that shares hold across workers and not only on each.
    remote: bool,
}

/// Only the owner writes its counters: no read-modify-write needed.
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// The word and bit of `band` in a band mask.
#[inline]
fn bit(band: usize) -> (usize, u64) {
    (band / 64, 1 << (band % 64))
}

/// Runs a steal to completion (retrying a lost race).
fn settle(mut steal: impl FnMut() -> Steal<Runnable>) -> Option<Runnable> {
    loop {
        match steal() {
            Steal::Success(t) => return Some(t),
            Steal::Empty => return None,
            Steal::Retry => std::hint::spin_loop(),
        }
    }
}

impl PriorityScheduler {
    /// The policy with `config`, or the reason the configuration makes no sense.
    pub fn new(config: PriorityConfig) -> Result<PriorityScheduler, ConfigError> {
        config.validate()?;
        let mut band_of = [0u8; 256];
        for (p, slot) in band_of.iter_mut().enumerate() {
            *slot = config
                .bands
                .iter()
                .position(|b| p as u32 >= u32::from(b.min_priority))
                .expect("the last band starts at 0") as u8;
        }
        let weights: Vec<u64> = config.bands.iter().map(|b| u64::from(b.share)).collect();
        let max_lag = u64::try_from(config.max_lag.as_nanos()).unwrap_or(u64::MAX / SCALE);
        let lag = weights
            .iter()
            .map(|w| max_lag.saturating_mul(SCALE) / w)
            .collect();
        Ok(PriorityScheduler {
            band_of,
            max_lag,
            lag,
            injectors: weights.iter().map(|_| Injector::new()).collect(),
            workers: Box::new([]),
            weights,
            config,
        })
    }

    /// The band a priority maps to (0 = the most urgent).
    pub fn band_of(&self, priority: Priority) -> usize {
        usize::from(self.band_of[usize::from(priority.0)])
    }

    /// The configuration.
    pub fn config(&self) -> &PriorityConfig {
        &self.config
    }

    /// The band with runnable work that `l` should serve now, if any: the smallest virtual
    /// runtime among the bands with work in `l`'s queues, the injectors, or (at the last
    /// look) other workers' queues.
    #[inline]
    fn pick_band(&self, l: &mut Local) -> Option<usize> {
        let mut best: Option<usize> = None;
        for b in 0..l.queues.len() {
            if l.queues[b].is_empty() {
                self.publish(l, b, false);
                if !l.bands[b].remote && self.injectors[b].is_empty() {
                    l.bands[b].active = false;
                    continue;
                }
            }
            if !l.bands[b].active {
                // Waking up: no credit for the time it was idle, and no more than `max_lag`
                // of its own poll time ahead of the others either.
                let floor = l.min_vruntime;
                let st = &mut l.bands[b];
                st.active = true;
                st.vruntime = st.vruntime.clamp(floor, floor.saturating_add(self.lag[b]));
            }
            if best.is_none_or(|j| l.bands[b].vruntime < l.bands[j].vruntime) {
                best = Some(b);
            }
        }
        best
    }

    fn take_injected(&self, l: &Local, band: usize) -> Option<Runnable> {
        settle(|| self.injectors[band].steal_batch_with_limit_and_pop(&l.queues[band], MAX_STEAL))
    }

    /// Steals about half of another worker's queue of `band` (at most [`MAX_STEAL`]).
    fn steal_band(&self, l: &Local, band: usize) -> Option<Runnable> {
        let n = self.workers.len();
        for k in 1..n {
            let v = (l.index + k) % n;
            let Some(stealers) = self.workers[v].stealers.get() else {
                continue;
            };
            let victim = &stealers[band];
            if victim.is_empty() {
                continue;
            }
            let dest = &l.queues[band];
            if let Some(t) = settle(|| victim.steal_batch_with_limit_and_pop(dest, MAX_STEAL)) {
                return Some(t);
            }
        }
        None
    }

    /// Which bands have work in other workers' queues, as they publish it.
    fn look_remote(&self, l: &mut Local) {
        let n = self.workers.len();
        for w in 0..l.published.len() {
            let mut seen = 0u64;
            for k in 1..n {
                seen |= self.workers[(l.index + k) % n].with_work[w].load(Ordering::Acquire);
            }
            for (j, st) in l.bands[w * 64..].iter_mut().take(64).enumerate() {
                st.remote = seen & (1 << j) != 0;
            }
        }
    }

    /// Tells the other workers whether `l`'s queue of `band` has work (set before a push, so
    /// that a worker woken for the task sees it; cleared when a pick finds the queue empty).
    /// Stores only a change.
    #[inline]
    fn publish(&self, l: &mut Local, band: usize, has_work: bool) {
        let (w, m) = bit(band);
        let word = if has_work {
            l.published[w] | m
        } else {
            l.published[w] & !m
        };
        if word != l.published[w] {
            l.published[w] = word;
            self.workers[l.index].with_work[w].store(word, Ordering::Release);
        }
    }

    #[inline]
    fn picked(&self, l: &mut Local, band: usize, task: Runnable) -> Runnable {
        l.min_vruntime = l.min_vruntime.max(l.bands[band].vruntime);
        bump(&self.workers[l.index].polls[band]);
        // A pick may have moved a batch into the queue (from the injector or another worker's
        // queue), which `schedule` never saw: the others must learn of it too.
        self.publish(l, band, !l.queues[band].is_empty());
        task
    }
}

impl Scheduler for PriorityScheduler {
    type Local = Local;

    fn name(&self) -> &str {
        "priority"
    }

    fn init(&mut self, workers: usize) {
        let bands = self.weights.len();
        self.workers = (0..workers.max(1))
            .map(|_| WorkerShared {
                stealers: OnceLock::new(),
                polls: (0..bands).map(|_| CachePadded::default()).collect(),
                with_work: (0..bands.div_ceil(64))
                    .map(|_| CachePadded::default())
                    .collect(),
            })
            .collect();
    }

    fn new_local(&self, worker: usize) -> Local {
        let queues: Box<[Worker<Runnable>]> =
            self.weights.iter().map(|_| Worker::new_fifo()).collect();
        let stealers = queues.iter().map(Worker::stealer).collect();
        if self.workers[worker].stealers.set(stealers).is_err() {
            panic!("core creates worker {worker}'s state once");
        }
        Local {
            index: worker,
            bands: self
                .weights
                .iter()
                .map(|_| CachePadded::default())
                .collect(),
            queues,
            min_vruntime: 0,
            pending: None,
            tick: 0,
            published: vec![0; self.weights.len().div_ceil(64)].into(),
        }
    }

    fn hooks(&self) -> Hooks {
        Hooks::NONE.account_polls()
    }

    #[inline]
    fn schedule(&self, task: Runnable, info: ScheduleInfo, local: Option<&mut Local>) -> Notify {
        let band = self.band_of(task.metadata().priority());
        match local {
            Some(l) => {
                let was_empty = l.queues[band].is_empty();
                self.publish(l, band, true);
                l.queues[band].push(task);
                // A yield wakes nobody: this worker is awake and comes back to the task. Nor
                // does the only task of its band's queue: this worker takes it at its next pick
                // of the band (a chain of spawns or wakes stays on one worker instead of waking
                // the other for each hop, as tokio's LIFO slot does); a second one is there for
                // another worker to take.
                if info.reason == ScheduleReason::Yield || was_empty {
                    Notify::None
                } else {
                    Notify::Any
                }
            }
            None => {
                self.injectors[band].push(task);
                Notify::Any
            }
        }
    }

    #[inline]
    fn next(&self, _worker: usize, l: &mut Local) -> Option<Runnable> {
        if let Some((band, cost)) = l.pending.take() {
            let b = usize::from(band);
            let v = &mut l.bands[b].vruntime;
            *v = v.saturating_add(cost.saturating_mul(SCALE) / self.weights[b]);
        }
        l.tick = l.tick.wrapping_add(1);
        if self.workers.len() > 1 && l.tick % REMOTE_INTERVAL == 0 {
            self.look_remote(l);
        }
        // At most one round per band: a band whose work turns out to be gone is dropped from
        // the remote view and the pick is made again.
        for _ in 0..l.queues.len() {
            let Some(band) = self.pick_band(l) else {
                break;
            };
            if l.tick % INJECTOR_INTERVAL == 0 {
                // Behind what this worker holds (FIFO within the band), not ahead of it.
                let _ = self.injectors[band].steal_batch_with_limit(&l.queues[band], MAX_STEAL);
            }
            let task = l.queues[band]
                .pop()
                .or_else(|| self.take_injected(l, band))
                .or_else(|| self.steal_band(l, band));
            if let Some(t) = task {
                return Some(self.picked(l, band, t));
            }
            l.bands[band].remote = false;
        }
        // Nothing seen yet: look at the other workers now (an idle worker, or one just woken
        // for a task another worker queued), the most urgent band first.
        if self.workers.len() > 1 {
            self.look_remote(l);
            for band in 0..l.queues.len() {
                if l.bands[band].remote {
                    if let Some(t) = self.steal_band(l, band) {
                        self.pick_band(l);
                        return Some(self.picked(l, band, t));
                    }
                }
            }
        }
        None
    }

    fn drain(&self, _worker: usize, l: &mut Local) -> Option<Runnable> {
        // Its own queues, then what all workers share (the injectors); the other workers'
        // queues are drained with their own state.
        for b in 0..l.queues.len() {
            if let Some(t) = l.queues[b].pop() {
                return Some(t);
            }
            if let Some(t) = settle(|| self.injectors[b].steal()) {
                return Some(t);
            }
        }
        None
    }

    fn account(&self, _worker: usize, local: &mut Local, priority: Priority, elapsed: Duration) {
        let cost = match self.config.accounting {
            // Capped at `max_lag`: one poll that the OS preempted (or that blocked) must not
            // push its band's next wake-up back by more than that.
            Accounting::PollTime => u64::try_from(elapsed.as_nanos())
                .unwrap_or(u64::MAX)
                .min(self.max_lag),
            Accounting::PollCount => POLL_UNIT,
        };
        local.pending = Some((self.band_of[usize::from(priority.0)], cost));
    }

    /// Polls per band, each under `<band name>_polls` (for instance `critical_polls`).
    fn metrics(&self, worker: Option<usize>, out: &mut dyn MetricsVisitor) {
        let pick: &[WorkerShared] = match worker {
            Some(i) => self.workers.get(i..=i).unwrap_or(&[]),
            None => &self.workers,
        };
        let mut name = String::new();
        for (b, band) in self.config.bands.iter().enumerate() {
            name.clear();
            name.push_str(&band.name);
            name.push_str("_polls");
            let n = pick
                .iter()
                .map(|w| w.polls[b].load(Ordering::Relaxed))
                .sum();
            out.counter(&name, n);
            // The band's queue depth now (a gauge): the workers' queues, and the injector
            // for the runtime as a whole.
            name.truncate(band.name.len());
            name.push_str("_queued");
            let mut queued: usize = pick
                .iter()
                .filter_map(|w| w.stealers.get())
                .map(|s| s[b].len())
                .sum();
            if worker.is_none() {
                queued += self.injectors[b].len();
            }
            out.counter(&name, queued as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> (Runnable, runtime_core::JoinHandle<()>) {
        runtime_core::pool_task(async {}, |_| {}, None)
    }

    /// The default policy with two workers, and their states.
    fn two_workers() -> (PriorityScheduler, Local, Local) {
        let mut s = PriorityScheduler::new(PriorityConfig::default()).unwrap();
        s.init(2);
        let (w0, w1) = (s.new_local(0), s.new_local(1));
        (s, w0, w1)
    }

    /// A worker with nothing of its own finds another worker's queued task through the bands
    /// that worker publishes, and a bit is cleared once its owner finds the queue empty.
    #[test]
    fn idle_workers_find_work_through_the_published_bands() {
        let (s, mut w0, mut w1) = two_workers();
        let on_w0 = ScheduleInfo::new(ScheduleReason::Wake, Some(0));
        let (tasks, _handles): (Vec<_>, Vec<_>) = (0..2).map(|_| task()).unzip();
        let (word, mask) = bit(s.band_of(tasks[0].metadata().priority()));
        let published =
            |s: &PriorityScheduler| s.workers[0].with_work[word].load(Ordering::Relaxed);
        assert_eq!(published(&s) & mask, 0);
        for t in tasks {
            s.schedule(t, on_w0, Some(&mut w0));
        }
        assert_ne!(published(&s) & mask, 0, "a push publishes its band");
        // Worker 1 has never looked at the others (that happens every few picks, or when it
        // finds nothing): it looks now, and steals.
        assert!(
            s.next(1, &mut w1).is_some(),
            "worker 1 finds worker 0's task"
        );
        let rest = std::iter::from_fn(|| s.next(0, &mut w0)).count()
            + std::iter::from_fn(|| s.next(1, &mut w1)).count();
        assert_eq!(rest, 1);
        assert_eq!(published(&s) & mask, 0, "an empty queue is unpublished");
    }

    /// Tasks that a pick moved from the injector into a worker's queue are published too: an
    /// idle worker finds them there.
    #[test]
    fn a_batch_taken_from_the_injector_is_published() {
        let (s, mut w0, mut w1) = two_workers();
        let foreign = ScheduleInfo::new(ScheduleReason::Wake, None);
        let (tasks, _handles): (Vec<_>, Vec<_>) = (0..4).map(|_| task()).unzip();
        for t in tasks {
            s.schedule(t, foreign, None);
        }
        // Worker 0 takes half of the injector into its queue and runs one of them.
        assert!(s.next(0, &mut w0).is_some());
        assert!(!w0.queues.iter().all(Worker::is_empty));
        // The injector's other half goes elsewhere: worker 0's queue is all that is left.
        for injector in s.injectors.iter() {
            while settle(|| injector.steal()).is_some() {}
        }
        assert!(
            s.next(1, &mut w1).is_some(),
            "worker 1 finds the rest of the batch in worker 0's queue"
        );
    }
}
