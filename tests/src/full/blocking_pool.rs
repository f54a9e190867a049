//! Conformance tests of the blocking pool under every scheduler.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::Make;
use crate::util::{LIMIT, panic_message, within};

pub fn spawn_blocking_results_and_panics(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = make(workers).build().unwrap();
            rt.block_on(async {
                let v = facade::spawn_blocking(|| {
                    std::thread::sleep(Duration::from_millis(5));
                    21 * 2
                })
                .await
                .unwrap();
                assert_eq!(v, 42);
                let e = facade::spawn_blocking(|| panic!("blocking job failed"))
                    .await
                    .unwrap_err();
                assert!(e.is_panic());
                assert_eq!(panic_message(&*e.into_panic()), "blocking job failed");
                // The async workers are not blocked meanwhile.
                let slow = facade::spawn_blocking(|| std::thread::sleep(Duration::from_millis(50)));
                let quick = facade::spawn(async { 7 }).await.unwrap();
                assert_eq!(quick, 7);
                slow.await.unwrap();
            });
        }
        let p = std::panic::catch_unwind(|| drop(facade::spawn_blocking(|| ()))).unwrap_err();
        assert!(panic_message(&*p).contains("outside a runtime"));
    });
}

/// 1,000 concurrent jobs never run on more than `max_blocking_threads` threads.
pub fn blocking_pool_never_exceeds_its_maximum(make: Make) {
    within(LIMIT, move || {
        let rt = make(2).max_blocking_threads(8).build().unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let hs: Vec<_> = (0..1_000)
                .map(|_| {
                    let (running, peak) = (running.clone(), peak.clone());
                    facade::spawn_blocking(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(100));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                })
                .collect();
            assert!(rt.handle().blocking_metrics().threads <= 8);
            for h in hs {
                h.await.unwrap();
            }
        });
        assert!(
            peak.load(Ordering::SeqCst) <= 8,
            "peak {}",
            peak.load(Ordering::SeqCst)
        );
        assert!(rt.handle().blocking_metrics().started <= 8);
    });
}

pub fn idle_blocking_threads_retire(make: Make) {
    within(LIMIT, move || {
        let rt = make(2)
            .blocking_keep_alive(Duration::from_millis(20))
            .build()
            .unwrap();
        rt.block_on(async {
            let hs: Vec<_> = (0..4)
                .map(|_| facade::spawn_blocking(|| std::thread::sleep(Duration::from_millis(5))))
                .collect();
            for h in hs {
                h.await.unwrap();
            }
        });
        let start = Instant::now();
        while rt.handle().blocking_metrics().threads > 0 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "idle threads never retired"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    });
}

/// `shutdown_timeout` waits at most its timeout for a running blocking job, and cancels jobs
/// that never started.
pub fn shutdown_timeout_bounds_running_blocking_jobs(make: Make) {
    within(LIMIT, move || {
        let rt = make(2).max_blocking_threads(1).build().unwrap();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (running, queued) = {
            let _g = rt.enter();
            let running = facade::spawn_blocking(move || {
                started_tx.send(()).unwrap();
                let _ = release_rx.recv();
                "finished"
            });
            started_rx.recv().unwrap();
            (running, facade::spawn_blocking(|| "never started"))
        };
        let t = Instant::now();
        rt.shutdown_timeout(Duration::from_millis(50));
        let took = t.elapsed();
        assert!(
            futures_lite::future::block_on(queued)
                .unwrap_err()
                .is_cancelled()
        );
        release_tx.send(()).unwrap();
        assert_eq!(futures_lite::future::block_on(running).unwrap(), "finished");
        // Bounded, not timed to the millisecond: the job stays blocked until after this.
        assert!(
            took < Duration::from_secs(20),
            "shutdown_timeout waited {took:?}"
        );
    });
}

/// A dedicated thread outlives the runtime that started it, and a runtime outlives a
/// dedicated thread that finished.
pub fn spawn_dedicated_outlives_and_is_outlived(make: Make) {
    within(LIMIT, move || {
        // The thread outlives the runtime.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let h = {
            let rt = make(2).build().unwrap();
            let _g = rt.enter();
            let h = facade::spawn_dedicated("survivor", move || {
                let _ = rx.recv();
                std::thread::current().name().map(str::to_string)
            })
            .unwrap();
            drop(_g);
            drop(rt);
            h
        };
        tx.send(()).unwrap();
        let name = futures_lite::future::block_on(h).unwrap().unwrap();
        assert!(name.starts_with("survivor-"), "{name}");
        // The runtime outlives the thread; a panic there reaches the handle.
        let rt = make(2).build().unwrap();
        rt.block_on(async {
            let e = facade::spawn_dedicated("doomed", || panic!("dedicated failure"))
                .unwrap()
                .await
                .unwrap_err();
            assert!(e.is_panic());
            let v = facade::spawn_dedicated_async("loop", async {
                facade::time::sleep(Duration::from_millis(2)).await;
                facade::spawn(async { 5 }).await.unwrap()
            })
            .unwrap()
            .await
            .unwrap();
            assert_eq!(v, 5);
            assert_eq!(facade::spawn(async { 1 }).await.unwrap(), 1);
        });
    });
}

/// `spawn_rayon` with `par_iter` gives the right sum, on rayon's global pool and on a runtime's
/// own, without blocking the async workers; a panic arrives as a `JoinError`.
pub fn spawn_rayon_par_iter_without_blocking_workers(make: Make) {
    use rayon::prelude::*;
    within(LIMIT, move || {
        for builder in [make(2), make(2).rayon_threads(2), make(0)] {
            let rt = builder.build().unwrap();
            rt.block_on(async {
                let (tx, rx) = std::sync::mpsc::channel::<()>();
                let sum = facade::spawn_rayon(move || {
                    let _ = rx.recv(); // held until an async task has run meanwhile
                    (1..=100_000u64).into_par_iter().map(|x| x * 2).sum::<u64>()
                });
                facade::spawn(async move { tx.send(()).unwrap() })
                    .await
                    .unwrap();
                assert_eq!(sum.await.unwrap(), 100_000 * 100_001);
                let e = facade::spawn_rayon(|| panic!("rayon job failed"))
                    .await
                    .unwrap_err();
                assert_eq!(panic_message(&*e.into_panic()), "rayon job failed");
            });
        }
        let e = make(2).rayon_threads(0).build().unwrap_err();
        assert!(e.to_string().contains("rayon_threads"), "{e}");
    });
}
