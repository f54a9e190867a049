//! The watchdog: reports a poll that keeps a worker busy for longer than a threshold.
//!
//! # Cost on the hot path
//!
//! A worker publishes, in its own counters' cache line, which poll it is running: before a poll
//! it bumps its poll count (it did that anyway) and stores the task's id in `current`; after the
//! poll it stores 0. Two plain stores per poll, no read-modify-write, no fence, no clock. The
//! watchdog thread samples `(polls, current)` of every worker every half of the threshold: a
//! worker that shows the same pair, with `current != 0`, in two samples at least `threshold`
//! apart has been inside one single poll for at least that long. The report is therefore never
//! a false alarm (the poll started before the first of the two samples), and every poll longer
//! than the threshold plus one sampling period (1.5 thresholds) is caught.
//!
//! # Naming the stuck task
//!
//! The watchdog never dereferences anything of the stuck worker's: the id it needs is in the
//! published word, and the names of named tasks are in a map (`Watchdog::names`) that holds its own
//! reference to each name, filled at spawn and emptied when the task's future is dropped. Unnamed
//! tasks, the common case, cost nothing there.
//!
//! # Sleeping when there is nothing to watch
//!
//! When every worker has been parked (or, in current-thread mode, nobody has been inside
//! `block_on`) for eight samples in a row, the watchdog marks itself dormant and waits without a
//! timeout (a long one, as a backstop). A worker that leaves the parked state, or starts driving,
//! wakes it: that is the slow path of the worker loop (it just came back from sleeping). Both
//! sides write their own location, fence (SeqCst), then read the other's: either the watchdog
//! sees the worker awake or the worker sees the flag (loom-checked below).
//!
//! # A stuck worker's queue
//!
//! On each report the watchdog also wakes one idle worker (`Notify::Any`): with work-stealing, a
//! task left in the stuck worker's LIFO slot (which wakes nobody when it is filled) or local
//! queue is then stolen instead of waiting behind the blocking poll.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::scheduler::Notify;
use crate::shared::Shared;
use crate::sync::{AtomicBool, fence, lock_unpoisoned as lock};
use crate::task::TaskId;

/// `current` while worker is polling the main future of `block_on` (low bits: that future's
/// poll count, so that successive polls differ). Task ids stay far below.
pub(crate) const MAIN_POLL: u64 = 1 << 63;

/// Publishes what a worker polls for as long as it lives (it clears the word on drop, even when
/// a poll unwinds).
pub(crate) struct PollMark<'a>(&'a AtomicU64);

impl<'a> PollMark<'a> {
    #[inline]
    pub(crate) fn start(current: &'a AtomicU64, what: u64) -> PollMark<'a> {
        current.store(what, Ordering::Relaxed);
        PollMark(current)
    }
}

impl Drop for PollMark<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// What a report tells the user to do.
const ADVICE: &str = "move blocking calls to spawn_blocking, CPU-heavy work to spawn_rayon, \
                      endless loops to spawn_dedicated";

/// The longest the watchdog sleeps while dormant, should a wake-up ever be missed.
const DORMANT_BACKSTOP: Duration = Duration::from_secs(1);

/// Consecutive samples with every worker parked before the watchdog goes dormant (four
/// thresholds' worth).
const DORMANT_AFTER: u32 = 8;

/// The shortest sampling period.
const MIN_PERIOD: Duration = Duration::from_millis(1);

pub(crate) struct Watchdog {
    pub(crate) threshold: Duration,
    /// How long the policy may hold tasks while every worker is parked before it is ejected
    /// (`None`: never).
    pub(crate) stall_timeout: Option<Duration>,
    /// Reports per worker.
    pub(crate) slow_polls: Box<[AtomicU64]>,
    dormant: AtomicBool,
    stop: Mutex<bool>,
    wake: Condvar,
    /// Times the watchdog woke up (for the dormancy test).
    samples: AtomicU64,
}

impl Watchdog {
    pub(crate) fn new(
        threshold: Duration,
        stall_timeout: Option<Duration>,
        workers: usize,
    ) -> Watchdog {
        Watchdog {
            threshold,
            stall_timeout,
            slow_polls: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            dormant: AtomicBool::new(false),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            samples: AtomicU64::new(0),
        }
    }

    /// Called by a worker that comes back from parking or starts driving: wakes the watchdog if
    /// it is dormant. A fence and a load otherwise.
    #[inline]
    pub(crate) fn worker_resumed(&self) {
        if must_wake(&self.dormant) {
            // Through the lock: the watchdog either has not read the flag yet, or waits.
            drop(lock(&self.stop));
            self.wake.notify_one();
        }
    }

    /// Asks the watchdog thread to exit.
    pub(crate) fn stop(&self) {
        *lock(&self.stop) = true;
        self.wake.notify_one();
    }
}

/// The watchdog's half of the dormancy handshake: flag first, then look again, and stay
/// dormant only if there is still nothing to watch. `nothing_to_watch` reads the idle state
/// with SeqCst.
fn go_dormant(dormant: &AtomicBool, nothing_to_watch: impl Fn() -> bool) -> bool {
    dormant.store(true, Ordering::SeqCst);
    // Pairs with the fence of `must_wake`: store, fence, load on both sides (the form loom can
    // check; it models SeqCst loads and stores as acquire/release only).
    fence(Ordering::SeqCst);
    if nothing_to_watch() {
        return true;
    }
    dormant.store(false, Ordering::SeqCst);
    false
}

/// A worker's half, after it left the parked state (a SeqCst read-modify-write of the idle
/// state, by itself or by whoever woke it): whether it must wake the watchdog.
#[inline]
fn must_wake(dormant: &AtomicBool) -> bool {
    fence(Ordering::SeqCst);
    if dormant.load(Ordering::SeqCst) {
        dormant.store(false, Ordering::SeqCst);
        return true;
    }
    false
}

/// What the watchdog last saw of one worker.
#[derive(Clone, Copy)]
struct Seen {
    polls: u64,
    current: u64,
    /// The first sample that showed this poll running.
    since: Instant,
    reported: bool,
}

/// Starts the watchdog thread of `shared` (which must have a watchdog).
pub(crate) fn start(shared: Arc<Shared>, name: String) -> std::io::Result<thread::JoinHandle<()>> {
    // Reports go where the runtime's creator sends its traces: a scoped subscriber set around
    // the runtime's construction applies to them too (otherwise the global one, as usual).
    let dispatch = crate::fault::creators_subscriber();
    thread::Builder::new()
        .name(name)
        .spawn(move || crate::fault::with_subscriber(dispatch.as_ref(), || run(&shared)))
}

fn run(shared: &Shared) {
    let dog = shared.watchdog.as_ref().expect("started with a watchdog");
    // Half the threshold: every poll longer than 1.5 thresholds is caught. A quarter caught
    // more but cost a latency-bound workload 15% (rayon_roundtrip in current-thread mode, 7.4 ->
    // 8.7 us) on a two-core machine, where each wake-up competes with the workers.
    let period = (dog.threshold / 2).max(MIN_PERIOD);
    let mut seen: Vec<Option<Seen>> = vec![None; shared.workers()];
    let mut idle_samples = 0;
    let mut stall = StallCheck::default();
    let mut stop = lock(&dog.stop);
    loop {
        let timeout = if dog.dormant.load(Ordering::SeqCst) {
            DORMANT_BACKSTOP
        } else {
            period
        };
        stop = dog
            .wake
            .wait_timeout(stop, timeout)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if *stop || shared.is_closed() {
            return;
        }
        drop(stop);
        crate::metrics::bump(&dog.samples, true);
        let now = Instant::now();
        let mut busy = false;
        for (index, seen) in seen.iter_mut().enumerate() {
            let (polls, current) = shared.counters.running(index);
            if current == 0 {
                if let Some(s) = seen.take().filter(|s| s.reported) {
                    released(index, &s, now);
                }
                continue;
            }
            busy = true;
            match seen {
                Some(s) if s.polls == polls && s.current == current => {
                    if !s.reported && now.duration_since(s.since) >= dog.threshold {
                        s.reported = true;
                        report(shared, dog, index, s, now);
                    }
                }
                _ => {
                    if let Some(s) = seen.take().filter(|s| s.reported) {
                        released(index, &s, now);
                    }
                    *seen = Some(Seen {
                        polls,
                        current,
                        since: now,
                        reported: false,
                    });
                }
            }
        }
        let held = stall.sample(shared, dog, now);
        // Dormant only after a run of idle samples: a runtime that parks and wakes many times
        // per period (a request/response loop) would otherwise wake the watchdog on every
        // round trip. Never while the policy holds tasks: that is a stall to watch.
        if !busy && held == 0 && shared.nothing_to_watch() {
            idle_samples += 1;
            if idle_samples >= DORMANT_AFTER
                && go_dormant(&dog.dormant, || shared.nothing_to_watch())
            {
                idle_samples = 0;
            }
        } else {
            idle_samples = 0;
        }
        stop = lock(&dog.stop);
    }
}

/// The stall check: a policy that holds tasks while every worker has asked it for work and
/// parked, for longer than the stall timeout, breaks invariant 1 (no lost task) and is
/// ejected (policy.rs). Nothing may move meanwhile: no poll, no schedule.
#[derive(Default)]
struct StallCheck {
    /// Since when, with how many tasks held and how many polls made.
    since: Option<(Instant, u64, u64)>,
}

impl StallCheck {
    /// Samples; returns how many tasks the policy holds (0 if it cannot be stalling).
    fn sample(&mut self, shared: &Shared, dog: &Watchdog, now: Instant) -> u64 {
        let Some(timeout) = dog.stall_timeout else {
            return 0;
        };
        let parked = shared.idle.all_parked() && (!shared.current_thread || shared.ct_is_driven());
        let held = shared.held_by_policy();
        if !parked || held == 0 || shared.policy.is_ejected() {
            self.since = None;
            return if shared.policy.is_ejected() { 0 } else { held };
        }
        let polls = shared.counters.total_polls();
        match self.since {
            Some((since, h, p)) if h == held && p == polls => {
                if now.duration_since(since) >= timeout {
                    self.since = None;
                    let reason = format!(
                        "it held {held} runnable task(s) for {} ms while every worker had asked it \
                         for work (`next` returned None) and parked: a task it was given is never \
                         handed out (invariant 1, no lost task)",
                        now.duration_since(since).as_millis()
                    );
                    shared.policy.eject_for(shared, reason);
                }
            }
            _ => self.since = Some((now, held, polls)),
        }
        held
    }
}

fn report(shared: &Shared, dog: &Watchdog, worker: usize, seen: &Seen, now: Instant) {
    let blocked_ms = now.duration_since(seen.since).as_millis() as u64;
    let threshold_ms = dog.threshold.as_millis() as u64;
    if seen.current & MAIN_POLL != 0 {
        tracing::warn!(
            worker,
            blocked_ms,
            threshold_ms,
            "the future passed to `block_on` has been blocking its worker in a single poll for \
             at least {blocked_ms} ms (threshold {threshold_ms} ms): {ADVICE}"
        );
    } else {
        // The task is in its poll, so in the registry: its name and spawn location are there.
        let (name, location) = shared
            .active
            .find(TaskId::from_u64(seen.current), |meta| {
                (meta.name().map(str::to_owned), meta.location().to_string())
            })
            .unwrap_or_default();
        tracing::warn!(
            task.id = seen.current,
            task.name = name.as_deref(),
            task.spawned_at = %location,
            worker,
            blocked_ms,
            threshold_ms,
            "a task has been blocking its worker in a single poll for at least {blocked_ms} ms \
             (threshold {threshold_ms} ms): {ADVICE}"
        );
    }
    // Counted after the warning, so that whoever sees the count finds the warning too.
    crate::metrics::bump(&dog.slow_polls[worker], true);
    // Let an idle worker take what waits behind the stuck one (see the module docs).
    std::sync::atomic::fence(Ordering::SeqCst);
    shared.notify(Notify::Any);
}

fn released(worker: usize, seen: &Seen, now: Instant) {
    tracing::debug!(
        task.id = seen.current & !MAIN_POLL,
        worker,
        blocked_ms = now.duration_since(seen.since).as_millis() as u64,
        "worker {worker} is free again after a slow poll"
    );
}

#[cfg(all(test, not(rt_loom)))]
mod tests {
    use super::*;
    use crate::{BasicFifo as Fifo, Config, Runtime};

    /// An idle runtime's watchdog sleeps instead of sampling, and a worker that comes back to
    /// work wakes it in time to report a blocking poll.
    #[test]
    #[cfg_attr(miri, ignore = "real threads and sleeps; nothing unsafe here")]
    fn dormant_while_idle_and_woken_by_work() {
        for worker_threads in [0, 2] {
            let rt = Runtime::new(
                Fifo::default(),
                Config {
                    worker_threads,
                    watchdog: Some(Duration::from_millis(2)), // samples every millisecond
                    ..Config::default()
                },
            )
            .unwrap();
            let dog = rt.handle().shared.watchdog.as_ref().unwrap();
            for round in 0..3 {
                rt.block_on(async {});
                let before = dog.samples.load(Ordering::Relaxed);
                thread::sleep(Duration::from_millis(200));
                let idle_samples = dog.samples.load(Ordering::Relaxed) - before;
                // 200 while awake; eight on the way to sleep, a few more if the thread is slow.
                assert!(idle_samples <= 20, "{idle_samples} samples while idle");
                rt.block_on(async {
                    rt.spawn(async { thread::sleep(Duration::from_millis(50)) })
                        .await
                        .unwrap();
                });
                let deadline = Instant::now() + Duration::from_secs(2);
                while rt.metrics().slow_polls < round + 1 && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(1));
                }
                assert_eq!(
                    rt.metrics().slow_polls,
                    round + 1,
                    "workers: {worker_threads}"
                );
            }
        }
    }
}

#[cfg(all(test, rt_loom))]
mod loom_tests {
    use super::*;
    use crate::idle::Idle;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool as Flag;

    /// A worker leaves the parked state (by itself, or woken by a notifier) while the watchdog
    /// decides to go dormant: either the watchdog sees it awake, or it sees the watchdog dormant
    /// and wakes it. Never a dormant watchdog beside a running worker that did not wake it.
    fn round(notified: bool) {
        loom::model(move || {
            let idle = Arc::new(Idle::new(1));
            let dormant = Arc::new(AtomicBool::new(false));
            idle.transition_to_parked(0, false);
            let woke = Arc::new(Flag::new(false));
            let worker = {
                let (idle, dormant, woke) = (idle.clone(), dormant.clone(), woke.clone());
                loom::thread::spawn(move || {
                    if notified {
                        // The notifier's claim (its RMW), then the unpark, then the worker.
                        assert_eq!(idle.worker_to_notify(), Some(0));
                    }
                    idle.transition_from_parked(0);
                    if must_wake(&dormant) {
                        woke.store(true, Ordering::SeqCst);
                    }
                })
            };
            let slept = go_dormant(&dormant, || idle.all_parked());
            worker.join().unwrap();
            assert!(
                !slept || woke.load(Ordering::SeqCst),
                "the watchdog sleeps while a worker runs, and nobody woke it"
            );
        });
    }

    #[test]
    fn loom_dormancy_resuming_worker() {
        round(false);
    }

    #[test]
    fn loom_dormancy_notified_worker() {
        round(true);
    }
}
