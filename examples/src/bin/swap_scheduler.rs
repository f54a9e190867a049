//! The same application under any scheduler: the policy comes from the first command-line
//! argument or from `RUNTIME_SCHEDULER`, and the application code below does not change.
//!
//! Run: `cargo run -p examples --bin swap_scheduler -- fifo`
//! or:  `RUNTIME_SCHEDULER=fifo RUNTIME_WORKER_THREADS=2 cargo run -p examples --bin swap_scheduler`

use std::time::Instant;

/// The application: a fan-out of tasks that pass a counter along a chain, then a tree of spawns.
async fn application() -> (u64, u64) {
    // A chain of 1,000 tasks, each spawning the next.
    fn chain(depth: u64) -> facade::JoinHandle<u64> {
        facade::spawn(async move {
            if depth == 0 {
                0
            } else {
                chain(depth - 1).await.unwrap() + 1
            }
        })
    }
    let chained = chain(1_000).await.unwrap();

    // 10,000 tasks that each yield a few times.
    let tasks: Vec<_> = (0..10_000u64)
        .map(|i| {
            facade::spawn(async move {
                for _ in 0..3 {
                    facade::yield_now().await;
                }
                i
            })
        })
        .collect();
    let mut sum = 0;
    for t in tasks {
        sum += t.await.unwrap();
    }
    (chained, sum)
}

fn main() {
    let mut builder = facade::Builder::from_env();
    if let Some(name) = std::env::args().nth(1) {
        builder = builder.scheduler_name(&name);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let (chained, sum) = rt.block_on(application());
    let elapsed = start.elapsed();
    let m = rt.metrics();
    println!(
        "scheduler {:>8}: chain depth {chained}, sum {sum}, {} tasks, {} polls, in {elapsed:.2?}",
        rt.scheduler(),
        m.tasks_spawned,
        m.tasks_polled
    );
}
