//! Conformance tests of what the runtime tells about its tasks: the hooks (task spawn, polls,
//! end; worker start, stop, park, unpark), contained when they panic; the task dump (id, name,
//! spawn location, state, age, polls). Current-thread and 2 workers, every scheduler.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use facade::sync::oneshot;
use facade::{TaskState, time};

use crate::Make;
use crate::util::{LIMIT, within};

#[derive(Default)]
struct Seen {
    spawned: AtomicUsize,
    terminated: AtomicUsize,
    before: AtomicUsize,
    after: AtomicUsize,
    started: AtomicUsize,
    stopped: AtomicUsize,
    parked: AtomicUsize,
    unparked: AtomicUsize,
    /// Set if a poll hook saw a poll begin while another was open on the same thread.
    nested: AtomicBool,
    locations: Mutex<Vec<String>>,
    workers: Mutex<Vec<usize>>,
}

thread_local! {
    static IN_POLL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn hooked(make: Make, workers: usize, seen: &Arc<Seen>) -> facade::Builder {
    let s = [(); 8].map(|_| seen.clone());
    let [s0, s1, s2, s3, s4, s5, s6, s7] = s;
    make(workers)
        .on_task_spawn(move |meta| {
            s0.spawned.fetch_add(1, Ordering::SeqCst);
            s0.locations
                .lock()
                .unwrap()
                .push(meta.location().to_string());
        })
        .on_task_terminate(move |_| {
            s1.terminated.fetch_add(1, Ordering::SeqCst);
        })
        .on_before_task_poll(move |_| {
            s2.before.fetch_add(1, Ordering::SeqCst);
            if IN_POLL.with(|p| p.replace(true)) {
                s2.nested.store(true, Ordering::SeqCst);
            }
        })
        .on_after_task_poll(move |_| {
            s3.after.fetch_add(1, Ordering::SeqCst);
            IN_POLL.with(|p| p.set(false));
        })
        .on_thread_start(move || {
            s4.started.fetch_add(1, Ordering::SeqCst);
        })
        .on_thread_stop(move || {
            s5.stopped.fetch_add(1, Ordering::SeqCst);
        })
        .on_thread_park(move |w| {
            s6.parked.fetch_add(1, Ordering::SeqCst);
            s6.workers.lock().unwrap().push(w);
        })
        .on_thread_unpark(move |_| {
            s7.unparked.fetch_add(1, Ordering::SeqCst);
        })
}

/// Every hook fires for what it names: each spawn and each end once (completion, panic and
/// abort alike), a before and an after around every poll, each worker thread's start and stop,
/// parks and unparks with the worker's index; spawn locations are the caller's.
pub fn hooks_see_every_spawn_poll_end_and_worker_event(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let seen = Arc::new(Seen::default());
            let rt = hooked(make, workers, &seen).build().unwrap();
            rt.block_on(async {
                let mut handles = Vec::new();
                for _ in 0..50 {
                    handles.push(facade::spawn(async {
                        for _ in 0..3 {
                            facade::yield_now().await;
                        }
                    }));
                }
                let panicking = facade::spawn(async { panic!("expected by the test") });
                let aborted = facade::spawn(std::future::pending::<()>());
                for h in handles {
                    h.await.unwrap();
                }
                assert!(panicking.await.unwrap_err().is_panic());
                aborted.abort();
                assert!(aborted.await.unwrap_err().is_cancelled());
                // Let the workers run dry and park.
                time::sleep(Duration::from_millis(20)).await;
            });
            assert_eq!(seen.spawned.load(Ordering::SeqCst), 52, "{workers} workers");
            assert_eq!(
                seen.terminated.load(Ordering::SeqCst),
                52,
                "{workers} workers"
            );
            let before = seen.before.load(Ordering::SeqCst);
            assert!(before > 50 * 4, "{workers} workers: {before} polls");
            assert_eq!(before, seen.after.load(Ordering::SeqCst));
            assert!(!seen.nested.load(Ordering::SeqCst), "before/after pair up");
            let this_file = file!();
            assert!(
                seen.locations
                    .lock()
                    .unwrap()
                    .iter()
                    .all(|l| l.starts_with(this_file)),
                "spawn locations are the callers': {:?}",
                seen.locations.lock().unwrap().first()
            );
            let parked = seen.parked.load(Ordering::SeqCst);
            assert!(parked >= 1, "{workers} workers: an idle worker parks");
            assert!(
                seen.workers
                    .lock()
                    .unwrap()
                    .iter()
                    .all(|&w| w < workers.max(1))
            );
            drop(rt);
            assert_eq!(
                seen.started.load(Ordering::SeqCst),
                workers,
                "one per thread"
            );
            assert_eq!(seen.stopped.load(Ordering::SeqCst), workers);
            // Counted once the workers are gone: the main future's waker unparks worker 0 as
            // well as the `block_on` thread, so worker 0 may wake and park again between the
            // count above and the drop.
            let parked = seen.parked.load(Ordering::SeqCst);
            let unparked = seen.unparked.load(Ordering::SeqCst);
            assert!(
                unparked <= parked && unparked + workers.max(1) >= parked,
                "{workers} workers: {parked} parks, {unparked} unparks"
            );
        }
    });
}

/// Hooks that panic every time are caught and reported; tasks, workers and their results are
/// unaffected.
pub fn a_panicking_hook_is_contained(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = make(workers)
                .on_task_spawn(|_| panic!("spawn hook"))
                .on_before_task_poll(|_| panic!("before hook"))
                .on_after_task_poll(|_| panic!("after hook"))
                .on_task_terminate(|_| panic!("terminate hook"))
                .on_thread_park(|_| panic!("park hook"))
                .on_thread_start(|| panic!("start hook"))
                .build()
                .unwrap();
            let sum = rt.block_on(async {
                let mut total = 0;
                for i in 0..20u64 {
                    total += facade::spawn(async move {
                        facade::yield_now().await;
                        i
                    })
                    .await
                    .unwrap();
                }
                total
            });
            assert_eq!(sum, 190, "{workers} workers");
            let m = rt.metrics();
            assert!(m.caught_panics >= 20 * 4, "{workers} workers: {m:?}");
        }
    });
}

/// The dump lists each live task once, with its name, the line that spawned it, its state
/// (idle while it waits, running when it is the one asking, scheduled when woken but not yet
/// polled), its age and polls; a task that ended is gone from it.
pub fn dump_lists_live_tasks_with_state_location_age_and_polls(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = make(workers).build().unwrap();
            let handle = rt.handle().clone();
            rt.block_on(async move {
                let (release, released) = oneshot::channel::<()>();
                let first = line!();
                let waiter = facade::task::Builder::new()
                    .name("waiter")
                    .spawn(async move {
                        for _ in 0..4 {
                            facade::yield_now().await;
                        }
                        let _ = released.await;
                    });
                let last = line!();
                time::sleep(Duration::from_millis(60)).await;
                let dump = handle.dump();
                let w = dump
                    .tasks
                    .iter()
                    .find(|t| t.id == waiter.id())
                    .unwrap_or_else(|| panic!("the waiter is listed:\n{dump}"));
                assert_eq!(w.name.as_deref(), Some("waiter"));
                assert_eq!(w.state, TaskState::Idle, "{dump}");
                assert_eq!(w.polls, 5, "{dump}");
                assert_eq!(w.location.file(), file!());
                assert!(
                    (first..last).contains(&w.location.line()),
                    "the spawn's own line: {}",
                    w.location
                );
                assert!(w.age >= Duration::from_millis(40), "{dump}");
                assert!(dump.to_string().contains("waiter"));

                // Asked from inside a task: that task is running; one it just spawned is
                // scheduled (on one thread nothing else can have polled it yet).
                let h = handle.clone();
                let (me, other, dump) = facade::spawn(async move {
                    let me = facade::task::id();
                    let other = facade::spawn(std::future::pending::<()>());
                    let id = other.id();
                    let dump = h.dump();
                    other.abort();
                    (me, id, dump)
                })
                .await
                .unwrap();
                let state = |id| dump.tasks.iter().find(|t| t.id == id).map(|t| t.state);
                assert!(
                    matches!(state(me), Some(TaskState::Running { .. })),
                    "{dump}"
                );
                if workers == 0 {
                    assert_eq!(state(other), Some(TaskState::Scheduled), "{dump}");
                } else {
                    assert!(state(other).is_some(), "{dump}");
                }

                release.send(()).unwrap();
                let waiter_id = waiter.id();
                waiter.await.unwrap();
                let after = handle.dump();
                assert!(
                    after.tasks.iter().all(|t| t.id != waiter_id),
                    "an ended task is gone:\n{after}"
                );
            });
        }
    });
}

/// With histograms on, every poll a worker makes is in the poll-time and the schedule-latency
/// histograms, once: per worker and per class they add up to the poll count; a poll that
/// blocks 20 ms lands in a bucket at least that high. A receiver draining a full channel is
/// made to yield by its budget, and that is counted.
pub fn histograms_count_every_poll_and_budget_yields_are_counted(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = make(workers).enable_histograms().build().unwrap();
            rt.block_on(async {
                let mut hs = Vec::new();
                for i in 0..40u64 {
                    hs.push(facade::spawn(async move {
                        facade::yield_now().await;
                        if i == 0 {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }));
                }
                for h in hs {
                    h.await.unwrap();
                }
                let (tx, mut rx) = facade::sync::mpsc::unbounded_channel::<u32>();
                for i in 0..5_000 {
                    tx.send(i).unwrap();
                }
                drop(tx);
                facade::spawn(async move { while rx.recv().await.is_some() {} })
                    .await
                    .unwrap();
            });
            let sum = |v: &[(String, facade::HistogramSnapshot)]| -> u64 {
                v.iter().map(|(_, h)| h.total()).sum()
            };
            let per_worker = |m: &facade::RuntimeMetrics| -> u64 {
                m.workers
                    .iter()
                    .map(|w| w.poll_time.as_ref().map_or(0, |h| h.total()))
                    .sum()
            };
            // A worker records a poll (in both histograms) just after it ends, maybe after
            // `block_on` saw the output it produced: wait for the last records (bounded). A
            // snapshot reads the per-worker histograms before the per-class ones, so a record
            // that lands in between shows in the second only: wait until all three agree.
            let mut m = rt.metrics();
            for _ in 0..1000 {
                let polls = m.tasks_polled;
                if sum(&m.poll_time) == polls
                    && sum(&m.schedule_latency) == polls
                    && per_worker(&m) == polls
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
                m = rt.metrics();
            }
            let polls = m.tasks_polled;
            assert!(polls >= 81, "{workers} workers: {polls}");
            assert!(!m.poll_time.is_empty(), "at least one class");
            assert_eq!(sum(&m.poll_time), polls, "{workers} workers: {m:?}");
            assert_eq!(sum(&m.schedule_latency), polls, "{workers} workers");
            assert_eq!(per_worker(&m), polls, "{workers} workers: per worker");
            let slowest = m
                .poll_time
                .iter()
                .filter_map(|(_, h)| h.quantile(1.0))
                .max()
                .unwrap();
            assert!(slowest >= Duration::from_millis(16), "{slowest:?}");
            assert!(
                m.budget_forced_yields >= 1,
                "{workers} workers: the receiver spent its budget"
            );
        }
    });
}
