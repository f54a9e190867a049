//! The priority scheduling policy: bands with weighted fair shares.
//!
//! A task's [`Priority`] (0-255) maps to a *band*: the first band, from the most urgent down,
//! whose threshold it reaches. The default bands are Critical (224+), High (160+), Normal
//! (96+), Low (32+) and Background (0+), with shares 50, 25, 15, 7 and 3. Within a band tasks
//! run in FIFO order.
//!
//! # Sharing between bands
//!
//! Each band keeps a *virtual runtime*, advanced after every poll of one of its tasks by the
//! poll's duration divided by the band's share (glommio's and Linux CFS's idea; with
//! [`Accounting::PollCount`] by a fixed cost per poll instead). A worker always takes the next
//! task from the band with the smallest virtual runtime, the more urgent band on a tie. So under
//! contention each band with runnable tasks gets its share of worker time, and no band starves:
//! the smallest share still gets its share.
//!
//! # Latency
//!
//! A band that becomes runnable starts at the smallest virtual runtime among the runnable bands,
//! and never further ahead of it than [`PriorityConfig::max_lag`]. An urgent band that stays
//! within its share is therefore picked by the next worker that finishes a poll, whichever
//! worker that is (all bands are shared): an urgent task waits for about one poll, not for the
//! queue. Strict priority would give the same latency but starve the low bands; here an urgent
//! band that floods the runtime is held to its share.
//!
//! Poll times come from core ([`Hooks::account_polls`]): two clock reads per poll.
//!
//! A task's priority can change while it runs or waits (`JoinHandle::set_priority`, or from
//! inside the task); the change applies at its next scheduling. A queued task stays in the
//! queue it was put in, so no queue is ever corrupted.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use runtime_core::{Hooks, MetricsVisitor, Notify, Priority, Runnable, ScheduleInfo, Scheduler};

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

struct BandQueue {
    queue: VecDeque<Runnable>,
    vruntime: u64,
}

struct State {
    bands: Vec<BandQueue>,
    /// Monotonic: the smallest virtual runtime among runnable bands when last computed.
    min_vruntime: u64,
}

/// Per-band counters, on their own cache lines would be overkill: one per band.
#[derive(Default)]
struct BandCounters {
    polls: AtomicU64,
}

/// The priority policy. See the [crate docs](crate).
pub struct PriorityScheduler {
    config: PriorityConfig,
    /// `band_of[p]`: the band of priority `p`.
    band_of: [u8; 256],
    weights: Vec<u64>,
    /// `config.max_lag` in nanoseconds of poll time.
    max_lag: u64,
    state: Mutex<State>,
    queued: AtomicUsize,
    counters: Vec<BandCounters>,
}

impl fmt::Debug for PriorityScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriorityScheduler")
            .field("config", &self.config)
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish()
    }
}

/// A worker's state: the accounting of its last poll, applied at its next pick.
#[derive(Debug, Default)]
pub struct Local {
    pending: Option<(u8, u64)>,
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
        Ok(PriorityScheduler {
            band_of,
            max_lag,
            state: Mutex::new(State {
                bands: weights
                    .iter()
                    .map(|_| BandQueue {
                        queue: VecDeque::new(),
                        vruntime: 0,
                    })
                    .collect(),
                min_vruntime: 0,
            }),
            counters: weights.iter().map(|_| BandCounters::default()).collect(),
            weights,
            queued: AtomicUsize::new(0),
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

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn charge(&self, state: &mut State, band: usize, cost: u64) {
        let v = &mut state.bands[band].vruntime;
        *v = v.saturating_add(cost.saturating_mul(SCALE) / self.weights[band]);
    }
}

impl Scheduler for PriorityScheduler {
    type Local = Local;

    fn name(&self) -> &str {
        "priority"
    }

    fn new_local(&self, _worker: usize) -> Local {
        Local::default()
    }

    fn hooks(&self) -> Hooks {
        Hooks::NONE.account_polls()
    }

    fn schedule(&self, task: Runnable, _info: ScheduleInfo, _local: Option<&mut Local>) -> Notify {
        let band = self.band_of(task.metadata().priority());
        let mut state = self.state();
        let floor = state.min_vruntime;
        let b = &mut state.bands[band];
        if b.queue.is_empty() {
            // Waking up: no credit for the time it was idle, and no more than `max_lag` of its
            // own poll time ahead of the others either.
            let lag = self.max_lag.saturating_mul(SCALE) / self.weights[band];
            b.vruntime = b.vruntime.clamp(floor, floor.saturating_add(lag));
        }
        b.queue.push_back(task);
        self.queued.fetch_add(1, Ordering::Release);
        // Every band is shared by every worker: any idle one can take it.
        Notify::Any
    }

    fn next(&self, _worker: usize, local: &mut Local) -> Option<Runnable> {
        let pending = local.pending.take();
        if pending.is_none() && self.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut state = self.state();
        if let Some((band, cost)) = pending {
            self.charge(&mut state, usize::from(band), cost);
        }
        let mut best: Option<usize> = None;
        for (i, b) in state.bands.iter().enumerate() {
            if !b.queue.is_empty() && best.is_none_or(|j| b.vruntime < state.bands[j].vruntime) {
                best = Some(i);
            }
        }
        let band = best?;
        state.min_vruntime = state.min_vruntime.max(state.bands[band].vruntime);
        let task = state.bands[band].queue.pop_front();
        if task.is_some() {
            self.queued.fetch_sub(1, Ordering::Release);
            self.counters[band].polls.fetch_add(1, Ordering::Relaxed);
        }
        task
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
        if worker.is_some() {
            return;
        }
        let mut name = String::new();
        for (band, c) in self.config.bands.iter().zip(&self.counters) {
            name.clear();
            name.push_str(&band.name);
            name.push_str("_polls");
            out.counter(&name, c.polls.load(Ordering::Relaxed));
        }
    }
}
