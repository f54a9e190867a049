//! The built-in policies report their queue depths (gauges among the scheduler counters):
//! with both workers blocked, tasks spawned from outside wait in the queues and are counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn queued(m: &facade::RuntimeMetrics) -> u64 {
    m.scheduler
        .iter()
        .filter(|(k, _)| k.contains("queued"))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn blocked_workers_leave_spawned_tasks_counted_in_the_queues() {
    for scheduler in ["fifo", "worksteal", "priority"] {
        let rt = facade::Builder::new()
            .scheduler_name(scheduler)
            .worker_threads(2)
            .build()
            .unwrap();
        let started = Arc::new(AtomicUsize::new(0));
        let blockers: Vec<_> = (0..2)
            .map(|_| {
                let started = started.clone();
                rt.spawn(async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(400));
                })
            })
            .collect();
        while started.load(Ordering::SeqCst) < 2 {
            std::thread::yield_now();
        }
        let waiting: Vec<_> = (0..100).map(|_| rt.spawn(async {})).collect();
        let m = rt.metrics();
        assert!(queued(&m) >= 100, "{scheduler}: {:?}", m.scheduler);
        rt.block_on(async {
            for h in blockers.into_iter().chain(waiting) {
                h.await.unwrap();
            }
        });
        assert_eq!(queued(&rt.metrics()), 0, "{scheduler}: drained");
    }
}
