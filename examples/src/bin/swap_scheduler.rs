//! The same application under any scheduler: the policy comes from the first command-line
//! argument or from `RUNTIME_SCHEDULER`, and the application code below does not change. With
//! neither, the application runs under every built-in scheduler in turn.
//!
//! Run: `cargo run --release -p examples --bin swap_scheduler` (all of them)
//! or:  `cargo run --release -p examples --bin swap_scheduler -- fifo`
//! or:  `RUNTIME_SCHEDULER=worksteal RUNTIME_WORKER_THREADS=2 cargo run -p examples --bin swap_scheduler`

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

/// Builds a runtime from `builder` and runs the application on it.
fn run(builder: facade::Builder) {
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
    let policy: Vec<String> = m
        .scheduler
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "{:>9}: chain depth {chained}, sum {sum}, {} tasks, {} polls, {} parks, in {elapsed:>9.2?}  {}",
        rt.scheduler(),
        m.tasks_spawned,
        m.tasks_polled,
        m.workers.iter().map(|w| w.parks).sum::<u64>(),
        policy.join(", ")
    );
}

fn main() {
    let from_env = std::env::var("RUNTIME_SCHEDULER").is_ok_and(|v| !v.trim().is_empty());
    match std::env::args().nth(1) {
        Some(name) => run(facade::Builder::from_env().scheduler_name(&name)),
        None if from_env => run(facade::Builder::from_env()),
        None => {
            println!(
                "The same application under each scheduler (RUNTIME_WORKER_THREADS or the core count):"
            );
            for name in facade::SCHEDULERS {
                run(facade::Builder::from_env().scheduler_name(name));
            }
        }
    }
}
