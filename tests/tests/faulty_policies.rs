//! Faulty policies (the faults the plug-in contract must survive): with each, an application
//! of 200 tasks finishes in bounded time because the runtime ejects the policy and goes on
//! with its built-in FIFO policy; every future is dropped exactly once; the ejection is an
//! ERROR naming the policy and what it did, and is in the metrics. Current-thread and 2
//! workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use conformance::util::{Captured, DropCounter, LIMIT, within};
use facade::scheduler::{
    BasicFifo, Hooks, MetricsVisitor, Notify, Runnable, ScheduleInfo, ScheduleReason, Scheduler,
    TaskMeta,
};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// `next` panics once (on its 50th call).
    NextOnce,
    /// `next` panics on every call; `drain` still works.
    NextAlways,
    /// `schedule` panics once (on its 100th call).
    Schedule,
    /// `schedule` panics when the driver wakes a task from its timer.
    ScheduleOnTimerWake,
    /// Keeps every other task it is given, forever (neither `next` nor `drain` returns it).
    Hoard,
    /// `task_ended` panics (the first task that finishes).
    TaskEnded,
    /// `metrics` panics (the first `Runtime::metrics` call).
    Metrics,
    /// Hands tasks only to worker 0, and asks core to wake worker 1 for them (which finds
    /// nothing: with worker 0 asleep, everyone sleeps).
    OnlyWorker0,
}

/// FIFO with a fault injected.
struct Faulty {
    inner: BasicFifo,
    fault: Fault,
    calls: AtomicUsize,
    hoard: std::sync::Mutex<Vec<Runnable>>,
}

impl Scheduler for Faulty {
    type Local = ();
    fn name(&self) -> &str {
        "faulty"
    }
    fn new_local(&self, _: usize) {}
    fn hooks(&self) -> Hooks {
        match self.fault {
            Fault::TaskEnded => Hooks::NONE.task_ended(),
            _ => Hooks::NONE,
        }
    }
    fn task_ended(&self, _: &TaskMeta) {
        if self.fault == Fault::TaskEnded {
            panic!("injected: task_ended fails");
        }
    }
    fn metrics(&self, _: Option<usize>, _: &mut dyn MetricsVisitor) {
        if self.fault == Fault::Metrics {
            panic!("injected: metrics fails");
        }
    }
    fn schedule(&self, t: Runnable, info: ScheduleInfo, _: Option<&mut ()>) -> Notify {
        match self.fault {
            Fault::Schedule if self.calls.fetch_add(1, Ordering::SeqCst) == 99 => {
                panic!("injected: schedule fails")
            }
            Fault::ScheduleOnTimerWake
                if info.reason == ScheduleReason::Wake
                    && t.metadata().name() == Some("timer-woken") =>
            {
                panic!("injected: schedule fails on a timer's wake")
            }
            Fault::Hoard if self.calls.fetch_add(1, Ordering::SeqCst) % 2 == 1 => {
                self.hoard.lock().unwrap().push(t);
                Notify::Any
            }
            Fault::OnlyWorker0 => {
                self.inner.schedule(t, info, None);
                Notify::Worker(1)
            }
            _ => self.inner.schedule(t, info, None),
        }
    }
    fn next(&self, worker: usize, _: &mut ()) -> Option<Runnable> {
        match self.fault {
            Fault::NextOnce if self.calls.fetch_add(1, Ordering::SeqCst) == 49 => {
                panic!("injected: next fails once")
            }
            Fault::NextAlways => panic!("injected: next always fails"),
            Fault::OnlyWorker0 if worker != 0 => None,
            _ => self.inner.next(worker, &mut ()),
        }
    }
    fn drain(&self, worker: usize, _: &mut ()) -> Option<Runnable> {
        self.inner.drain(worker, &mut ())
    }
}

/// Runs the application of 200 tasks (and one woken by a timer) on the faulty policy.
fn run(fault: Fault, workers: usize) {
    let (captured, _guard) = Captured::install_at(tracing::Level::ERROR);
    let drops = DropCounter::new();
    let rt = facade::Builder::new()
        .custom(Faulty {
            inner: BasicFifo::default(),
            fault,
            calls: AtomicUsize::new(0),
            hoard: Default::default(),
        })
        .policy_stall_timeout(Duration::from_millis(100))
        .worker_threads(workers)
        .build()
        .unwrap();
    // Every worker asleep before the application starts.
    std::thread::sleep(Duration::from_millis(20));
    let d = drops.clone();
    let ok = rt.block_on(async move {
        // First, so that its sleep starts before the others run; long enough that it is
        // always woken by the driver rather than found elapsed at its first poll.
        let mut handles = vec![
            facade::task::Builder::new()
                .name("timer-woken")
                .spawn(d.wrap(async {
                    facade::time::sleep(Duration::from_millis(20)).await;
                    1000
                })),
        ];
        handles.extend((0..200u64).map(|i| {
            facade::spawn(d.wrap(async move {
                for _ in 0..3 {
                    facade::yield_now().await;
                }
                i
            }))
        }));
        let mut ok = 0;
        for h in handles {
            // A task whose runnable was in the panicking call is lost: cancelled.
            match h.await {
                Ok(_) => ok += 1,
                Err(e) => assert!(e.is_cancelled(), "{fault:?}: {e}"),
            }
        }
        ok
    });
    // The task given to a panicking `schedule` is cancelled as the panic unwinds, before the
    // worker that caught it has ejected the policy; the tasks a policy kept are cancelled as it
    // is dropped, before the report is final: wait (a bounded time) for the final report.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !rt.metrics().ejection.is_some_and(|e| e.dropped) && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let m = rt.metrics();
    let ejection = m.ejection.clone().unwrap_or_else(|| {
        panic!(
            "{fault:?}, {workers} workers: not ejected: {m:?} {:#?}",
            captured.lines()
        )
    });
    assert_eq!(ejection.policy, "faulty");
    let (method, want) = match fault {
        // `next` loses nothing; a panicking `schedule` loses the task it was given; a hoarding
        // policy the half it kept (cancelled when it is dropped).
        Fault::NextOnce | Fault::NextAlways => ("next", 201),
        Fault::Schedule | Fault::ScheduleOnTimerWake => ("schedule", 200),
        Fault::Hoard => ("held", 0),
        // Neither touches a task.
        Fault::TaskEnded => ("task_ended", 201),
        Fault::Metrics => ("metrics", 201),
        Fault::OnlyWorker0 => ("held", 201),
    };
    let what = if method == "held" {
        "every worker"
    } else {
        "injected"
    };
    assert!(
        ejection.reason.contains(method) && ejection.reason.contains(what),
        "{ejection:?}"
    );
    assert!(
        ok >= want,
        "{fault:?}, {workers} workers: only {ok} of 201 joins got their value"
    );
    match fault {
        // With worker threads, `next` fails when they start, before any task is queued; in
        // current-thread mode, after the main future queued them all.
        Fault::NextAlways if workers > 0 => {}
        Fault::NextAlways | Fault::OnlyWorker0 => {
            assert!(
                ejection.rescued > 0,
                "drain hands its tasks back: {ejection:?}"
            )
        }
        Fault::Hoard => assert!(ejection.lost > 0, "kept tasks are dropped: {ejection:?}"),
        _ => {}
    }
    assert_eq!(rt.scheduler(), "basic-fifo");
    // The runtime goes on.
    assert_eq!(
        rt.block_on(async { facade::spawn(async { 7 }).await.unwrap() }),
        7
    );
    drop(rt);
    assert_eq!(
        drops.drops(),
        201,
        "{fault:?}, {workers} workers: every future dropped once"
    );
    let lines = captured.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ERROR") && l.contains("ejected") && l.contains("faulty")),
        "{fault:?}, {workers} workers: {lines:#?}"
    );
}

fn two_workers(fault: Fault) {
    within(LIMIT, move || run(fault, 2));
}

fn both_shapes(fault: Fault) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            run(fault, workers);
        }
    });
}

#[test]
fn next_panicking_once_ejects_the_policy() {
    both_shapes(Fault::NextOnce);
}

#[test]
fn next_panicking_always_ejects_the_policy_and_drain_rescues_its_tasks() {
    both_shapes(Fault::NextAlways);
}

#[test]
fn schedule_panicking_ejects_the_policy() {
    both_shapes(Fault::Schedule);
}

#[test]
fn schedule_panicking_on_a_timer_wake_from_the_driver_ejects_the_policy() {
    both_shapes(Fault::ScheduleOnTimerWake);
}

#[test]
fn a_policy_that_hoards_tasks_is_ejected_after_the_stall_timeout() {
    both_shapes(Fault::Hoard);
}

#[test]
fn a_policy_that_serves_only_worker_0_is_ejected_and_its_tasks_rescued() {
    two_workers(Fault::OnlyWorker0);
}

#[test]
fn task_ended_panicking_ejects_the_policy() {
    both_shapes(Fault::TaskEnded);
}

#[test]
fn metrics_panicking_ejects_the_policy() {
    both_shapes(Fault::Metrics);
}
