//! The tests, written once. Each takes a function that gives a `Builder` for the scheduler
//! under test with a given number of worker threads (0: current-thread mode).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::Duration;

use facade::{Builder, Runtime};

use crate::Make;
use crate::util::{DropCounter, LIMIT, oneshot, panic_message, within};

fn rt(make: Make, workers: usize) -> Runtime {
    make(workers)
        .build()
        .expect("the scheduler under test builds")
}

/// Every runtime shape the suite exercises: current-thread, one worker, two workers.
const SHAPES: [usize; 3] = [0, 1, 2];

pub fn spawn_join(make: Make) {
    for workers in SHAPES {
        let rt = rt(make, workers);
        let out = rt.block_on(async {
            let h = facade::spawn(async { 40 + 2 });
            h.await.unwrap()
        });
        assert_eq!(out, 42);
        // From outside, through Runtime::spawn.
        let h = rt.spawn(async { "done" });
        assert_eq!(rt.block_on(h).unwrap(), "done");
    }
}

pub fn many_tasks(make: Make) {
    within(LIMIT, move || {
        let rt = rt(make, 2);
        let n = 100_000u64;
        let sum = rt.block_on(async move {
            let handles: Vec<_> = (0..n).map(|i| facade::spawn(async move { i })).collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, n * (n - 1) / 2);
        let m = rt.metrics();
        assert_eq!(m.tasks_spawned, n);
        assert!(m.tasks_polled >= n, "{m:?}");
    });
}

pub fn nested_spawn(make: Make) {
    fn tree(depth: u32) -> facade::JoinHandle<u64> {
        facade::spawn(async move {
            if depth == 0 {
                return 1;
            }
            let (a, b) = (tree(depth - 1), tree(depth - 1));
            a.await.unwrap() + b.await.unwrap()
        })
    }
    fn chain(depth: u32) -> facade::JoinHandle<u32> {
        facade::spawn(async move {
            if depth == 0 {
                0
            } else {
                chain(depth - 1).await.unwrap() + 1
            }
        })
    }
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = rt(make, workers);
            assert_eq!(rt.block_on(async { tree(10).await.unwrap() }), 1024);
            assert_eq!(rt.block_on(async { chain(1_000).await.unwrap() }), 1_000);
        }
    });
}

pub fn spawn_from_foreign_thread(make: Make) {
    within(LIMIT, move || {
        for workers in [1, 2] {
            let rt = rt(make, workers);
            let handle = rt.handle().clone();
            let sum: u64 = std::thread::scope(|s| {
                let threads: Vec<_> = (0..4u64)
                    .map(|t| {
                        let handle = handle.clone();
                        s.spawn(move || {
                            let hs: Vec<_> = (0..1_000u64)
                                .map(|i| handle.spawn(async move { t * 1_000 + i }))
                                .collect();
                            // JoinHandles can be awaited outside the runtime too.
                            futures_lite::future::block_on(async {
                                let mut sum = 0;
                                for h in hs {
                                    sum += h.await.unwrap();
                                }
                                sum
                            })
                        })
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().unwrap()).sum()
            });
            assert_eq!(sum, (0..4_000u64).sum::<u64>());
        }
    });
}

pub fn wake_from_foreign_thread(make: Make) {
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = rt(make, workers);
            let (senders, receivers): (Vec<_>, Vec<_>) = (0..500u32).map(|_| oneshot()).unzip();
            let waiting: Vec<_> = receivers.into_iter().map(|r| rt.spawn(r)).collect();
            let waker = std::thread::spawn(move || {
                for (i, s) in senders.into_iter().enumerate() {
                    if i % 100 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    s.send(i as u32);
                }
            });
            let got = rt.block_on(async move {
                let mut got = Vec::new();
                for h in waiting {
                    got.push(h.await.unwrap().unwrap());
                }
                got
            });
            waker.join().unwrap();
            assert_eq!(got, (0..500).collect::<Vec<_>>());
        }
    });
}

/// Tasks that yield in a loop do not starve a task that needs one poll, even on one worker.
pub fn yield_fairness(make: Make) {
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = rt(make, workers);
            let flag = Arc::new(AtomicBool::new(false));
            let spinners: Vec<_> = (0..4)
                .map(|_| {
                    let flag = flag.clone();
                    rt.spawn(async move {
                        let mut yields = 0u32;
                        while !flag.load(Ordering::SeqCst) {
                            yields += 1;
                            if yields == 100_000 {
                                return false; // starved the other task
                            }
                            facade::yield_now().await;
                        }
                        true
                    })
                })
                .collect();
            let setter = {
                let flag = flag.clone();
                rt.spawn(async move { flag.store(true, Ordering::SeqCst) })
            };
            rt.block_on(async move {
                setter.await.unwrap();
                for s in spinners {
                    assert!(s.await.unwrap(), "a yielding loop starved another task");
                }
            });
        }
    });
}

pub fn panic_gives_join_error(make: Make) {
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = rt(make, workers);
            rt.block_on(async {
                for _ in 0..8 {
                    let e = facade::spawn(async { panic!("boom in a task") })
                        .await
                        .unwrap_err();
                    assert!(e.is_panic() && !e.is_cancelled());
                    assert!(e.to_string().contains("boom in a task"), "{e}");
                    assert_eq!(panic_message(&*e.into_panic()), "boom in a task");
                }
                // The workers survived: more tasks than workers still run.
                let hs: Vec<_> = (0..100).map(|i| facade::spawn(async move { i })).collect();
                for (i, h) in hs.into_iter().enumerate() {
                    assert_eq!(h.await.unwrap(), i);
                }
            });
        }
    });
}

pub fn abort(make: Make) {
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = rt(make, workers);
            let drops = DropCounter::new();
            // A task waiting forever.
            let waiting = rt.spawn(drops.wrap(std::future::pending::<()>()));
            // A task that keeps yielding.
            let busy = rt.spawn(drops.wrap(async {
                loop {
                    facade::yield_now().await;
                }
            }));
            // A task that already finished keeps its output.
            let finished = rt.spawn(async { 7 });
            rt.block_on(async {
                while !finished.is_finished() {
                    facade::yield_now().await;
                }
                facade::yield_now().await;
                waiting.abort();
                busy.abort();
                finished.abort();
                assert!(waiting.await.unwrap_err().is_cancelled());
                assert!(busy.await.unwrap_err().is_cancelled());
                assert_eq!(finished.await.unwrap(), 7);
            });
            assert_eq!(drops.drops(), 2, "each aborted future dropped once");
        }
    });
}

pub fn detach(make: Make) {
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = rt(make, workers);
            let (tx, rx) = oneshot();
            rt.block_on(async move {
                drop(facade::spawn(async move {
                    facade::yield_now().await;
                    tx.send(5);
                }));
                assert_eq!(rx.await, Some(5), "a detached task keeps running");
            });
        }
    });
}

/// Current-thread mode: tasks run on the thread inside `block_on`.
pub fn current_thread(make: Make) {
    within(LIMIT, move || {
        let rt = rt(make, 0);
        let me = std::thread::current().id();
        let ids = rt.block_on(async {
            let hs: Vec<_> = (0..10)
                .map(|_| {
                    facade::spawn(async {
                        facade::yield_now().await;
                        std::thread::current().id()
                    })
                })
                .collect();
            let mut ids = Vec::new();
            for h in hs {
                ids.push(h.await.unwrap());
            }
            ids
        });
        assert!(ids.iter().all(|&id| id == me));
        assert_eq!(rt.metrics().workers.len(), 1);
        // Tasks spawned between two block_on calls run in the next one.
        let h = rt.spawn(async { 3 });
        assert_eq!(rt.block_on(h).unwrap(), 3);
    });
}

/// Dropping the runtime drops every future exactly once: queued tasks, tasks parked on a
/// waker that someone still holds, and tasks that nobody will ever wake.
pub fn shutdown_drops_every_future_once(make: Make) {
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = rt(make, workers);
            let drops = DropCounter::new();
            let polled = Arc::new(AtomicUsize::new(0));
            let mut expected = 0;
            let mut keep_senders = Vec::new();

            // Parked on a receiver whose sender the test keeps.
            for _ in 0..50 {
                let (tx, rx) = oneshot::<()>();
                keep_senders.push(tx);
                let polled = polled.clone();
                drop(rt.spawn(drops.wrap(async move {
                    polled.fetch_add(1, Ordering::SeqCst);
                    rx.await
                })));
                expected += 1;
            }
            // Never woken.
            for _ in 0..50 {
                let polled = polled.clone();
                drop(rt.spawn(drops.wrap(async move {
                    polled.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<()>().await
                })));
                expected += 1;
            }
            if workers > 0 {
                // Let them all be polled once.
                while polled.load(Ordering::SeqCst) < 100 {
                    std::thread::yield_now();
                }
                // Occupy every worker, then queue tasks behind them.
                let barrier = Arc::new(Barrier::new(workers + 1));
                let (release_tx, release_rx) = mpsc::channel::<()>();
                let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
                for _ in 0..workers {
                    let (barrier, release_rx) = (barrier.clone(), release_rx.clone());
                    drop(rt.spawn(drops.wrap(async move {
                        barrier.wait();
                        let _ = release_rx.lock().unwrap().recv();
                    })));
                    expected += 1;
                }
                barrier.wait();
                // The first queued future takes a while to drop: the runtime's drop must still
                // return only after it is gone (it once returned while the last worker was
                // still emptying the queue).
                struct SlowDrop(Option<crate::util::Counted<std::future::Ready<()>>>);
                impl Drop for SlowDrop {
                    fn drop(&mut self) {
                        std::thread::sleep(Duration::from_millis(30));
                        self.0.take(); // counted only now
                    }
                }
                let slow = SlowDrop(Some(drops.wrap(std::future::ready(()))));
                drop(rt.spawn(async move {
                    let _slow = &slow;
                }));
                expected += 1;
                for _ in 0..99 {
                    drop(rt.spawn(drops.wrap(async {})));
                    expected += 1;
                }
                // Release the blocked workers shortly after the shutdown has begun.
                let releaser = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    drop(release_tx);
                });
                drop(rt);
                releaser.join().unwrap();
            } else {
                // Current-thread: nothing ran; everything is queued.
                for _ in 0..100 {
                    drop(rt.spawn(drops.wrap(async {})));
                    expected += 1;
                }
                drop(rt);
            }
            assert_eq!(drops.drops(), expected, "workers = {workers}");
            drop(keep_senders);
            assert_eq!(drops.drops(), expected, "no future dropped twice");
        }
    });
}

pub fn block_on_inside_runtime_fails(make: Make) {
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = rt(make, workers);
            let other = rt_for_nesting();
            // Inside a task.
            let err = rt
                .block_on(async { facade::spawn(async move { other.block_on(async {}) }).await })
                .unwrap_err();
            let msg = panic_message(&*err.into_panic());
            assert!(msg.contains("block_on") && msg.contains(".await"), "{msg}");
            // Inside block_on itself.
            let p = catch_unwind(AssertUnwindSafe(|| {
                rt.block_on(async { rt.block_on(async {}) })
            }))
            .unwrap_err();
            assert!(panic_message(&*p).contains("already driving"));
            // The runtime still works afterwards.
            assert_eq!(
                rt.block_on(async { facade::spawn(async { 1 }).await.unwrap() }),
                1
            );
        }
    });
}

fn rt_for_nesting() -> Runtime {
    Builder::new().worker_threads(0).build().unwrap()
}

pub fn spawn_outside_runtime_fails(make: Make) {
    let _ = make;
    let p = catch_unwind(|| drop(facade::spawn(async {}))).unwrap_err();
    let msg = panic_message(&*p);
    assert!(
        msg.contains("outside a runtime") && msg.contains("block_on"),
        "{msg}"
    );
}

/// Nested `enter` guards dropped in order restore each runtime in turn; dropped out of order,
/// the older guard panics with a message saying so, and once both runtimes are gone a spawn
/// outside any runtime still panics with the usual message (instead of a stale runtime
/// silently cancelling it).
pub fn enter_guards_restore_in_order_and_panic_out_of_order(make: Make) {
    let (a, b) = (rt(make, 1), rt(make, 0));
    {
        let _ga = a.enter();
        {
            let _gb = b.enter();
            assert!(
                facade::Handle::current()
                    .as_core()
                    .ptr_eq(b.handle().as_core())
            );
        }
        assert!(
            facade::Handle::current()
                .as_core()
                .ptr_eq(a.handle().as_core())
        );
    }
    assert!(facade::Handle::try_current().is_err());

    let ga = a.enter();
    let gb = b.enter();
    let p = catch_unwind(AssertUnwindSafe(move || drop(ga))).unwrap_err();
    let msg = panic_message(&*p);
    assert!(msg.contains("dropped out of order"), "{msg}");
    drop(gb);
    drop((a, b));
    let p = catch_unwind(|| drop(facade::spawn(async {}))).unwrap_err();
    assert!(panic_message(&*p).contains("outside a runtime"));
}

pub fn spawn_after_shutdown_is_cancelled(make: Make) {
    for workers in SHAPES {
        let rt = rt(make, workers);
        let handle = rt.handle().clone();
        drop(rt);
        let drops = DropCounter::new();
        let h = handle.spawn(drops.wrap(async { 1 }));
        assert!(
            futures_lite::future::block_on(h)
                .unwrap_err()
                .is_cancelled()
        );
        assert_eq!(drops.drops(), 1);
    }
}

pub fn shutdown_timeout_does_not_wait_for_a_stuck_worker(make: Make) {
    within(LIMIT, move || {
        for workers in [1, 2] {
            let rt = rt(make, workers);
            let (started_tx, started_rx) = mpsc::channel();
            let (release_tx, release_rx) = mpsc::channel::<()>();
            let drops = DropCounter::new();
            drop(rt.spawn(drops.wrap(async move {
                started_tx.send(()).unwrap();
                // Blocks its worker (a bug the runtime must survive).
                let _ = release_rx.recv();
            })));
            started_rx.recv().unwrap();
            // Returns although the worker is still stuck: the task can only end after this.
            rt.shutdown_timeout(Duration::from_millis(10));
            assert_eq!(drops.drops(), 0, "the stuck task is still running");
            release_tx.send(()).unwrap();
            while drops.drops() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
}

pub fn shutdown_background_returns(make: Make) {
    within(LIMIT, move || {
        let rt = rt(make, 2);
        for _ in 0..100 {
            drop(rt.spawn(async { facade::yield_now().await }));
        }
        rt.shutdown_background();
    });
}

/// A task's future whose destructor panics, dropped by `abort` and by shutdown: each
/// destructor runs exactly once, the panic costs only its own task, and the runtime goes on.
pub fn panicking_future_destructors_are_contained(make: Make) {
    struct Bomb(Arc<AtomicUsize>);
    impl Drop for Bomb {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("a task's future panics in its destructor");
        }
    }
    within(LIMIT, move || {
        for workers in SHAPES {
            let drops = Arc::new(AtomicUsize::new(0));
            let rt = rt(make, workers);
            let (aborted, left) = (Bomb(drops.clone()), Bomb(drops.clone()));
            rt.block_on(async move {
                let waiting = facade::spawn(async move {
                    let _bomb = aborted;
                    std::future::pending::<()>().await
                });
                facade::yield_now().await;
                waiting.abort();
                assert!(waiting.await.unwrap_err().is_cancelled());
                assert_eq!(facade::spawn(async { 1 }).await.unwrap(), 1);
            });
            assert_eq!(drops.load(Ordering::SeqCst), 1, "workers: {workers}");
            drop(rt.spawn(async move {
                let _bomb = left;
                std::future::pending::<()>().await
            }));
            assert_eq!(
                rt.block_on(async { facade::spawn(async { 2 }).await })
                    .unwrap(),
                2
            );
            assert!(
                rt.metrics().caught_panics >= 1,
                "workers: {workers}: reported"
            );
            drop(rt);
            assert_eq!(drops.load(Ordering::SeqCst), 2, "workers: {workers}");
        }
    });
}

/// Dropping a runtime while a panic unwinds neither hangs nor aborts.
pub fn drop_while_panicking(make: Make) {
    within(LIMIT, move || {
        for workers in SHAPES {
            let r = catch_unwind(AssertUnwindSafe(|| {
                let rt = rt(make, workers);
                drop(rt.spawn(std::future::pending::<()>()));
                rt.block_on(async { panic!("unwinding through block_on") })
            }));
            assert!(r.is_err());
        }
    });
}

pub fn metrics_count_tasks(make: Make) {
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = rt(make, workers);
            rt.block_on(async {
                let hs: Vec<_> = (0..1_000)
                    .map(|_| facade::spawn(async { facade::yield_now().await }))
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
            });
            let m = rt.metrics();
            assert_eq!(m.tasks_spawned, 1_000);
            assert_eq!(m.tasks_completed, 1_000);
            assert_eq!(m.tasks_alive, 0);
            assert!(m.tasks_polled >= 2_000, "{m:?}");
            assert_eq!(m.workers.len(), workers.max(1));
            assert_eq!(
                m.workers.iter().map(|w| w.polls).sum::<u64>(),
                m.tasks_polled
            );
            assert_eq!(rt.handle().as_core().active_tasks(), 0);
        }
    });
}

/// Many pairs of tasks waking each other: a lost wake-up hangs (and fails through `within`).
pub fn ping_pong(make: Make) {
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = rt(make, workers);
            rt.block_on(async {
                let pairs: Vec<_> = (0..200)
                    .map(|_| {
                        facade::spawn(async {
                            let mut total = 0;
                            for i in 0..20 {
                                let (tx, rx) = oneshot();
                                let (back_tx, back_rx) = oneshot();
                                let peer = facade::spawn(async move {
                                    let v: u32 = rx.await.unwrap();
                                    back_tx.send(v + 1);
                                });
                                tx.send(i);
                                total += back_rx.await.unwrap();
                                peer.await.unwrap();
                            }
                            total
                        })
                    })
                    .collect();
                for p in pairs {
                    assert_eq!(p.await.unwrap(), (1..=20).sum::<u32>());
                }
            });
        }
    });
}

/// `task::id` inside a task is that task's id (as tokio's), also in its future's destructor,
/// whether the future ends by completing or by an abort; `try_id` outside a task is `None`.
pub fn the_task_id_is_known_in_the_task_and_its_destructor(make: Make) {
    use facade::task::{TaskId, try_id};
    use std::sync::Mutex;

    /// Records `try_id()` when dropped.
    struct SeesId(Arc<Mutex<Vec<Option<TaskId>>>>);
    impl Drop for SeesId {
        fn drop(&mut self) {
            self.0.lock().unwrap().push(try_id());
        }
    }

    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = rt(make, workers);
            let seen = Arc::new(Mutex::new(Vec::new()));
            rt.block_on(async {
                assert_eq!(try_id(), None, "block_on's own future is not a task");
                let guard = SeesId(seen.clone());
                let done = facade::spawn(async move {
                    let _guard = guard;
                    facade::yield_now().await;
                    facade::task::id()
                });
                let done_id = done.id();
                assert_eq!(done.await.unwrap(), done_id, "{workers} workers");

                let guard = SeesId(seen.clone());
                let (started, wait) = oneshot::<()>();
                let aborted = facade::spawn(async move {
                    let _guard = guard;
                    started.send(());
                    std::future::pending::<()>().await
                });
                let aborted_id = aborted.id();
                wait.await;
                aborted.abort();
                assert!(aborted.await.unwrap_err().is_cancelled());
                assert_eq!(
                    *seen.lock().unwrap(),
                    [Some(done_id), Some(aborted_id)],
                    "{workers} workers: each destructor ran in its own task"
                );
                assert_eq!(try_id(), None);
            });
        }
    });
}

pub fn task_names_and_priorities_are_carried(make: Make) {
    let rt = rt(make, 1);
    rt.block_on(async {
        let h = facade::task::Builder::new()
            .name("worker-of-the-month")
            .priority(facade::Priority::HIGH)
            .spawn(std::future::pending::<()>());
        let meta = h.metadata().unwrap();
        assert_eq!(meta.name(), Some("worker-of-the-month"));
        assert_eq!(meta.priority(), facade::Priority::HIGH);
        h.abort();
        assert!(h.await.unwrap_err().is_cancelled());
    });
}

/// Every scheduler carries priorities: readable inside the task, inherited by tasks it spawns,
/// changeable from inside and through the handle (only the priority scheduler acts on them).
pub fn priorities_are_carried_inherited_and_changeable(make: Make) {
    use facade::{Priority, task};
    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = rt(make, workers);
            assert_eq!(task::priority(), None, "outside a task");
            rt.block_on(async {
                let h = facade::spawn_with_priority(Priority::HIGH, async {
                    let mine = task::priority();
                    let inherited = facade::spawn(async { task::priority() }).await.unwrap();
                    let explicit =
                        facade::spawn_with_priority(Priority::LOW, async { task::priority() })
                            .await
                            .unwrap();
                    assert!(task::set_priority(Priority::CRITICAL));
                    facade::yield_now().await;
                    (mine, inherited, explicit, task::priority())
                });
                let (mine, inherited, explicit, changed) = h.await.unwrap();
                assert_eq!(mine, Some(Priority::HIGH));
                assert_eq!(inherited, Some(Priority::HIGH));
                assert_eq!(explicit, Some(Priority::LOW));
                assert_eq!(changed, Some(Priority::CRITICAL));

                // Changed through the handle while the task waits.
                let (tx, rx) = crate::util::oneshot::<()>();
                let waiting = facade::spawn(async move {
                    rx.await;
                    task::priority()
                });
                facade::yield_now().await;
                waiting.set_priority(Priority::BACKGROUND);
                tx.send(());
                assert_eq!(waiting.await.unwrap(), Some(Priority::BACKGROUND));
            });
        }
    });
}

/// Shutdown survives destructors that wake each other under a lock. Two waiting tasks share a
/// mutex; each one's future, when dropped, locks it and wakes the other while holding it (h2's
/// connection and its streams do this). At shutdown the first drop wakes the other task, whose
/// cancellation must not drop its future right there, inside the first destructor, where it
/// would take the same lock again: a deadlock. Both futures are dropped, once each.
pub fn shutdown_survives_destructors_that_wake_each_other_under_a_lock(make: Make) {
    use std::sync::Mutex;
    use std::task::{Poll, Waker};

    /// A future that waits forever, keeping its waker in the shared slot of its side.
    struct Side {
        wakers: Arc<Mutex<[Option<Waker>; 2]>>,
        me: usize,
        dropped: Arc<AtomicUsize>,
        polled: Arc<AtomicUsize>,
    }
    impl std::future::Future for Side {
        type Output = ();
        fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
            self.wakers.lock().unwrap()[self.me] = Some(cx.waker().clone());
            self.polled.fetch_add(1, Ordering::SeqCst);
            Poll::Pending
        }
    }
    impl Drop for Side {
        fn drop(&mut self) {
            let wakers = self.wakers.lock().unwrap();
            if let Some(other) = &wakers[1 - self.me] {
                other.wake_by_ref();
            }
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    within(LIMIT, move || {
        for workers in SHAPES {
            let rt = rt(make, workers);
            let wakers = Arc::new(Mutex::new([None, None]));
            let dropped = Arc::new(AtomicUsize::new(0));
            let polled = Arc::new(AtomicUsize::new(0));
            for me in 0..2 {
                drop(rt.spawn(Side {
                    wakers: wakers.clone(),
                    me,
                    dropped: dropped.clone(),
                    polled: polled.clone(),
                }));
            }
            let p = polled.clone();
            rt.block_on(async move {
                while p.load(Ordering::SeqCst) < 2 {
                    facade::task::yield_now().await;
                }
            });
            drop(rt);
            assert_eq!(dropped.load(Ordering::SeqCst), 2, "{workers} workers");
            // The slot's wakers are the last references to the tasks: no leak either.
            wakers
                .lock()
                .unwrap()
                .iter_mut()
                .for_each(|w| drop(w.take()));
        }
    });
}

/// Tasks spawned by a task (entered in their worker's nursery, with no lock) are registered
/// like the others: the dump lists the live ones and none that ended, `active_tasks` counts
/// them, an abort reaches a waiting one, and shutdown drops every future once, whether its task
/// waits forever, waits on a sender the test keeps, or ended long ago, and the runtime is then
/// freed. There are more of them than a nursery's first table holds, ended and live mixed, so it
/// is compacted and grows.
pub fn tasks_spawned_by_tasks_are_registered_and_shut_down(make: Make) {
    within(LIMIT, move || {
        for workers in SHAPES {
            // Kept by a hook, so by the runtime: freed with it.
            let marker = Arc::new(());
            let m = marker.clone();
            let rt = make(workers)
                .on_thread_park(move |_| drop(m.clone()))
                .build()
                .expect("the scheduler under test builds");
            let handle = rt.handle().clone();
            let drops = DropCounter::new();
            let polled = Arc::new(AtomicUsize::new(0));
            let d = drops.clone();
            let p = polled.clone();
            let (senders, live, ended, aborted) = rt.block_on(async move {
                facade::spawn(async move {
                    let (mut senders, mut live, mut ended, mut finished) =
                        (vec![], vec![], vec![], vec![]);
                    for i in 0..300 {
                        let p = p.clone();
                        match i % 3 {
                            0 => {
                                let h = facade::spawn(d.wrap(async {}));
                                ended.push(h.id());
                                finished.push(h);
                            }
                            1 => {
                                let (tx, rx) = oneshot::<()>();
                                senders.push(tx);
                                let h = facade::spawn(d.wrap(async move {
                                    p.fetch_add(1, Ordering::SeqCst);
                                    let _ = rx.await;
                                }));
                                live.push(h.id());
                            }
                            _ => {
                                let h = facade::spawn(d.wrap(async move {
                                    p.fetch_add(1, Ordering::SeqCst);
                                    std::future::pending::<()>().await
                                }));
                                live.push(h.id());
                                if i == 2 {
                                    h.abort();
                                    assert!(h.await.unwrap_err().is_cancelled());
                                }
                            }
                        }
                    }
                    for h in finished {
                        h.await.unwrap();
                    }
                    let aborted = live.remove(1);
                    (senders, live, ended, aborted)
                })
                .await
                .unwrap()
            });
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while polled.load(Ordering::SeqCst) < live.len() {
                if workers == 0 {
                    rt.block_on(facade::yield_now());
                } else {
                    std::thread::yield_now();
                }
                assert!(std::time::Instant::now() < deadline, "the tasks are polled");
            }
            let dump = handle.dump();
            let listed: std::collections::HashSet<_> = dump.tasks.iter().map(|t| t.id).collect();
            for id in &live {
                assert!(
                    listed.contains(id),
                    "a waiting task is listed ({workers} workers)"
                );
            }
            for id in ended.iter().chain([&aborted]) {
                assert!(
                    !listed.contains(id),
                    "an ended task is not ({workers} workers)"
                );
            }
            assert_eq!(handle.as_core().active_tasks(), live.len(), "{dump}");
            assert_eq!(
                drops.drops(),
                ended.len() + 1,
                "the ended and the aborted are dropped"
            );
            drop(rt);
            assert_eq!(
                drops.drops(),
                300,
                "every future dropped once ({workers} workers)"
            );
            drop((senders, handle));
            // No registry entry outlived the shutdown (each holds its task, which holds the
            // runtime).
            assert_eq!(
                Arc::strong_count(&marker),
                1,
                "the runtime is freed ({workers} workers)"
            );
        }
    });
}
