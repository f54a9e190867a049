//! A scheduler of our own (`examples::round_robin`, written with `facade::scheduler` only),
//! plugged into the runtime with `Builder::custom`.
//!
//! Run: `cargo run -p examples --bin custom_scheduler`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use examples::round_robin::RoundRobin;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = facade::Builder::new()
        .custom(RoundRobin::new())
        .worker_threads(2)
        .build()?;

    let polls = Arc::new(AtomicUsize::new(0));
    let total: u64 = rt.block_on(async {
        let tasks: Vec<_> = (0..1_000u64)
            .map(|i| {
                let polls = polls.clone();
                facade::spawn(async move {
                    for _ in 0..3 {
                        polls.fetch_add(1, Ordering::Relaxed);
                        facade::yield_now().await;
                    }
                    i
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("task failed");
        }
        total
    });

    let m = rt.metrics();
    println!(
        "scheduler: {} (defined in examples/src/round_robin.rs)",
        rt.scheduler()
    );
    println!("1,000 tasks, 3 yields each: sum of ids = {total}");
    for (i, w) in m.workers.iter().enumerate() {
        println!("worker {i}: {} polls, {} parks", w.polls, w.parks);
    }
    assert_eq!(total, 999 * 1000 / 2);
    assert_eq!(polls.load(Ordering::Relaxed), 3_000);
    Ok(())
}
