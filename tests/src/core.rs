//! The core tier: the invariants of the scheduler contract, checked with `runtime-core` alone
//! (the contract is in runtime-core's crate docs). Each test runs in current-thread mode, with
//! one worker thread and with two.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runtime_core::{Handle, SpawnOptions, yield_now};

use crate::util::{Captured, DropCounter, LIMIT, oneshot, within};
use crate::{Core, Order};

const SHAPES: [usize; 3] = [0, 1, 2];

/// Invariant 1: every task scheduled (spawned from a worker, from `block_on`, from foreign
/// threads, woken from foreign threads) runs.
pub fn no_task_is_lost(policy: Core) {
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = policy.runtime(workers);
            let ran = Arc::new(AtomicUsize::new(0));
            // From foreign threads, concurrently.
            let foreign: Vec<_> = (0..4)
                .map(|_| {
                    let (h, ran) = (rt.handle().clone(), ran.clone());
                    std::thread::spawn(move || {
                        (0..250)
                            .map(|_| {
                                let ran = ran.clone();
                                h.spawn(async move {
                                    ran.fetch_add(1, Ordering::SeqCst);
                                })
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let handles: Vec<_> = foreign
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect();
            let ran2 = ran.clone();
            rt.block_on(async move {
                // From inside: tasks spawning tasks.
                let h = Handle::try_current().unwrap();
                let inner: Vec<_> = (0..100)
                    .map(|_| {
                        let (h, ran) = (h.clone(), ran2.clone());
                        h.clone().spawn(async move {
                            let ran = ran.clone();
                            h.spawn(async move {
                                ran.fetch_add(1, Ordering::SeqCst);
                            })
                            .await
                            .unwrap();
                        })
                    })
                    .collect();
                for t in handles.into_iter().chain(inner) {
                    t.await.unwrap();
                }
            });
            assert_eq!(ran.load(Ordering::SeqCst), 1_100, "{workers} workers");
        }
    });
}

/// Invariant 2: a task runs once per schedule. A task that yields `k` times is polled exactly
/// `k + 1` times, even while other threads wake it concurrently (a wake of a task already
/// scheduled is merged, never a second copy).
pub fn each_schedule_runs_the_task_once(policy: Core) {
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = policy.runtime(workers);
            let polls = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..50)
                .map(|_| {
                    let polls = polls.clone();
                    rt.spawn(async move {
                        for _ in 0..10 {
                            polls.fetch_add(1, Ordering::SeqCst);
                            yield_now().await;
                        }
                        polls.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            rt.block_on(async {
                for t in tasks {
                    t.await.unwrap();
                }
            });
            assert_eq!(polls.load(Ordering::SeqCst), 50 * 11, "{workers} workers");
            assert!(rt.metrics().tasks_polled >= 50 * 11);
        }
    });
}

/// Invariant 4: at shutdown every task still queued (in a worker's own state or in the
/// policy's shared state), and every task waiting on something, has its future dropped exactly
/// once.
pub fn shutdown_drains_every_queued_task_once(policy: Core) {
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = policy.runtime(workers);
            let drops = DropCounter::new();
            // Queued from outside (shared state), some never completing.
            for _ in 0..100 {
                rt.spawn(drops.wrap(std::future::pending::<()>()));
                rt.spawn(drops.wrap(async {}));
            }
            // Queued from a worker (its own state, for a policy that keeps one), then the
            // runtime goes while they wait.
            let d = drops.clone();
            let spawner = async move {
                let h = Handle::try_current().unwrap();
                for _ in 0..100 {
                    h.spawn(d.wrap(std::future::pending::<()>()));
                    h.spawn(d.wrap(async {}));
                }
            };
            if workers == 0 {
                rt.block_on(spawner);
            } else {
                let (tx, rx) = std::sync::mpsc::channel();
                rt.spawn(async move {
                    spawner.await;
                    tx.send(()).unwrap();
                    // Keep this worker busy while the runtime shuts down.
                    std::thread::sleep(Duration::from_millis(20));
                });
                rx.recv().unwrap();
            }
            drop(rt);
            assert_eq!(drops.drops(), 400, "{workers} workers");
        }
    });
}

/// Wakes from threads outside the runtime reach the policy as foreign schedules and run.
pub fn foreign_wakes_run(policy: Core) {
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = policy.runtime(workers);
            let (senders, receivers): (Vec<_>, Vec<_>) = (0..100).map(|_| oneshot::<u32>()).unzip();
            let tasks: Vec<_> = receivers
                .into_iter()
                .map(|rx| rt.spawn(async move { rx.await.unwrap() + 1 }))
                .collect();
            let waker = std::thread::spawn(move || {
                for (i, tx) in senders.into_iter().enumerate() {
                    tx.send(i as u32);
                }
            });
            let sum: u32 = rt.block_on(async {
                let mut sum = 0;
                for t in tasks {
                    sum += t.await.unwrap();
                }
                sum
            });
            waker.join().unwrap();
            assert_eq!(sum, (1..=100).sum::<u32>(), "{workers} workers");
        }
    });
}

/// Wakes from other threads racing with shutdown: every future is still dropped exactly once,
/// nothing hangs, nothing is polled after the runtime is gone.
pub fn wakes_racing_with_shutdown_drop_each_task_once(policy: Core) {
    within(LIMIT, move || {
        for workers in SHAPES {
            for round in 0..10 {
                let rt = policy.runtime(workers);
                let drops = DropCounter::new();
                let wakers = Arc::new(Mutex::new(Vec::new()));
                let n = 100;
                for _ in 0..n {
                    let wakers = wakers.clone();
                    rt.spawn(drops.wrap(std::future::poll_fn(move |cx| {
                        wakers.lock().unwrap().push(cx.waker().clone());
                        std::task::Poll::<()>::Pending
                    })));
                }
                // Let some of them register a waker (current-thread: none ran yet; fine).
                if workers > 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let stop = Arc::new(AtomicBool::new(false));
                let racers: Vec<_> = (0..2)
                    .map(|_| {
                        let (wakers, stop) = (wakers.clone(), stop.clone());
                        std::thread::spawn(move || {
                            while !stop.load(Ordering::SeqCst) {
                                let ws: Vec<_> = wakers.lock().unwrap().drain(..).collect();
                                for w in ws {
                                    w.wake();
                                }
                                std::thread::yield_now();
                            }
                        })
                    })
                    .collect();
                if round % 2 == 1 {
                    std::thread::sleep(Duration::from_micros(200));
                }
                drop(rt);
                stop.store(true, Ordering::SeqCst);
                for r in racers {
                    r.join().unwrap();
                }
                wakers.lock().unwrap().clear();
                assert_eq!(drops.drops(), n, "{workers} workers, round {round}");
            }
        }
    });
}

/// Invariant 3: a task that stays queued runs while another task keeps yielding (the yielder
/// goes behind it), on one worker as on two.
pub fn a_queued_task_is_not_starved_by_a_yielding_one(policy: Core) {
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = policy.runtime(workers);
            let stop = Arc::new(AtomicBool::new(false));
            let spinners: Vec<_> = (0..workers.max(1))
                .map(|_| {
                    let stop = stop.clone();
                    rt.spawn(async move {
                        while !stop.load(Ordering::SeqCst) {
                            yield_now().await;
                        }
                    })
                })
                .collect();
            let stop2 = stop.clone();
            rt.block_on(async move {
                let h = Handle::try_current().unwrap();
                h.spawn(async { 7 }).await.unwrap();
                stop2.store(true, Ordering::SeqCst);
                for s in spinners {
                    s.await.unwrap();
                }
            });
            assert!(stop.load(Ordering::SeqCst));
        }
    });
}

/// Invariant 5: the order the policy declares. With [`Order::FifoOnOneWorker`], tasks
/// scheduled from the worker itself and from a foreign thread run in the order in which they
/// were scheduled.
pub fn order_is_the_declared_one(policy: Core) {
    if policy.order != Order::FifoOnOneWorker {
        return;
    }
    within(LIMIT, move || {
        for workers in [0, 1] {
            let rt = policy.runtime(workers);
            let order = Arc::new(Mutex::new(Vec::new()));
            let o = order.clone();
            rt.block_on(async move {
                let h = Handle::try_current().unwrap();
                // Spawned by the worker itself (block_on's future in current-thread mode; a
                // task with a worker thread), then from a foreign thread after them.
                let o2 = o.clone();
                let h2 = h.clone();
                let tasks = h
                    .spawn(async move {
                        let mut tasks: Vec<_> = (0..20)
                            .map(|i| {
                                let o = o2.clone();
                                h2.spawn(async move { o.lock().unwrap().push(i) })
                            })
                            .collect();
                        let h3 = h2.clone();
                        let o3 = o2.clone();
                        let foreign = std::thread::spawn(move || {
                            (20..40)
                                .map(|i| {
                                    let o = o3.clone();
                                    h3.spawn(async move { o.lock().unwrap().push(i) })
                                })
                                .collect::<Vec<_>>()
                        })
                        .join()
                        .unwrap();
                        tasks.extend(foreign);
                        tasks
                    })
                    .await
                    .unwrap();
                for t in tasks {
                    t.await.unwrap();
                }
            });
            let order = order.lock().unwrap().clone();
            assert_eq!(order, (0..40).collect::<Vec<_>>(), "{workers} workers");
        }
    });
}

/// Core's tracing, under any policy: a TRACE span `poll` per poll naming the task (id and
/// name), and DEBUG events for its spawn and its completion.
pub fn polls_spawns_and_completions_are_traced(policy: Core) {
    within(LIMIT, move || {
        // Current-thread mode: tasks are polled on this thread, where the capture is installed.
        let rt = policy.runtime(0);
        let (captured, guard) = Captured::install_at(tracing::Level::TRACE);
        let id = rt.block_on(async {
            let h = Handle::try_current().unwrap().spawn_with(
                async { yield_now().await },
                SpawnOptions {
                    name: Some("traced".into()),
                    priority: None,
                },
            );
            let id = h.id();
            h.await.unwrap();
            id
        });
        drop(guard);
        let lines = captured.lines();
        let poll = format!("poll{{task.id={id} task.name=\"traced\"}}: new");
        let polls = lines.iter().filter(|l| l.contains(&poll)).count();
        assert_eq!(
            polls, 2,
            "one span per poll (the task yields once): {lines:#?}"
        );
        let event = |level: &str, msg: &str| {
            lines.iter().any(|l| {
                l.starts_with(level) && l.contains(msg) && l.contains(&format!("task.id={id}"))
            })
        };
        assert!(event("DEBUG", "spawn"), "{lines:#?}");
        assert!(event("DEBUG", "task completed"), "{lines:#?}");
    });
}

/// A future whose destructor wakes another task, dropped by the drain at shutdown: the wake
/// finds the runtime closed and drops that task too. Nothing hangs (the drain holds a worker
/// state's lock while it drops tasks), and every future is dropped once.
pub fn destructors_that_wake_tasks_during_shutdown(policy: Core) {
    /// Wakes the task that registered in `slot` when dropped.
    struct WakeOnDrop(Arc<Mutex<Option<std::task::Waker>>>);
    impl Drop for WakeOnDrop {
        fn drop(&mut self) {
            if let Some(w) = self.0.lock().unwrap().take() {
                w.wake();
            }
        }
    }
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = policy.runtime(workers);
            let drops = DropCounter::new();
            let n = 50;
            let slots: Vec<_> = (0..n).map(|_| Arc::new(Mutex::new(None))).collect();
            let registered = Arc::new(AtomicUsize::new(0));
            for slot in &slots {
                let (slot, registered) = (slot.clone(), registered.clone());
                rt.spawn(drops.wrap(std::future::poll_fn(move |cx| {
                    if slot.lock().unwrap().replace(cx.waker().clone()).is_none() {
                        registered.fetch_add(1, Ordering::SeqCst);
                    }
                    std::task::Poll::<()>::Pending
                })));
            }
            let (d, r) = (drops.clone(), registered.clone());
            // Wait (on the runtime) until every waiter has registered, then queue the waking
            // futures from a worker and leave them queued.
            rt.block_on(async move {
                while r.load(Ordering::SeqCst) < n {
                    yield_now().await;
                }
                let h = Handle::try_current().unwrap();
                for slot in slots {
                    let waker = WakeOnDrop(slot);
                    h.spawn(d.wrap(async move {
                        let _waker = waker;
                        std::future::pending::<()>().await
                    }));
                }
            });
            drop(rt);
            assert_eq!(drops.drops(), 2 * n, "{workers} workers");
        }
    });
}
