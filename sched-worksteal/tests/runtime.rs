//! Work-stealing under a real runtime, small enough for Miri: the LIFO slot, local queues,
//! overflow to the global queue and stealing all see traffic, and every task runs once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use runtime_core::{Config, Handle, Runtime};
use sched_worksteal::{WorkStealing, WorkStealingConfig};

fn run(config: WorkStealingConfig, workers: usize) -> runtime_core::RuntimeMetrics {
    let rt = Runtime::new(
        WorkStealing::with_config(config),
        Config {
            worker_threads: workers,
            ..Config::default()
        },
    )
    .unwrap();
    let n = if cfg!(miri) { 40 } else { 2_000 };
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    rt.block_on(async move {
        let h = Handle::try_current().unwrap();
        let h2 = h.clone();
        // Spawned from a worker: LIFO slot and local queue (capacity 4: overflow too).
        let outer = h.spawn(async move {
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    let d = d.clone();
                    h2.spawn(async move {
                        if i % 3 == 0 {
                            runtime_core::yield_now().await;
                        }
                        d.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            for h in hs {
                h.await.unwrap();
            }
        });
        outer.await.unwrap();
    });
    assert_eq!(done.load(Ordering::SeqCst), n);
    rt.metrics()
}

#[test]
fn every_task_runs_once_with_overflow_and_stealing() {
    let small = WorkStealingConfig::default().with_local_queue_capacity(4);
    let m = run(small.clone(), 2);
    assert!(m.scheduler_counter("overflows").unwrap() > 0, "{m:?}");
    assert!(m.scheduler_counter("global_pushes").unwrap() > 0, "{m:?}");
    run(small.with_lifo_slot(false), 2);
    run(WorkStealingConfig::default(), 0);
}
