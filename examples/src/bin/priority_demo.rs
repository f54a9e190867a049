//! A control loop beside a batch job, under each scheduler: why you would pick the priority
//! scheduler.
//!
//! The batch job floods the runtime with 1,000 low-priority tasks that each compute for ~50 us
//! and yield, forever. The control loop runs at high priority: every millisecond it wakes on a
//! timer and "reads a sensor". It prints how late the loop woke (p50 / p99 / max) and how much
//! batch work got done. Under FIFO and work-stealing the priority is carried but ignored.
//!
//! Run: `cargo run --release -p examples --bin priority_demo` (2 seconds per scheduler).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use facade::Priority;

fn run(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let rt = facade::Builder::new()
        .scheduler_name(name)
        .worker_threads(2)
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let batch_polls = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut late = rt.block_on(async {
        // The batch job: low priority, never idle.
        for _ in 0..1_000 {
            let (stop, polls) = (stop.clone(), batch_polls.clone());
            facade::spawn_with_priority(Priority::LOW, async move {
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(50) {
                        std::hint::black_box(0u64); // the "computation"
                    }
                    polls.fetch_add(1, Ordering::Relaxed);
                    facade::yield_now().await;
                }
            });
        }
        // The control loop: high priority, due every millisecond for 2 seconds.
        let control = facade::task::Builder::new()
            .name("control-loop")
            .priority(Priority::HIGH)
            .spawn(async {
                let mut late = Vec::new();
                let mut deadline = facade::time::now() + Duration::from_millis(1);
                let end = Instant::now() + Duration::from_secs(2);
                while deadline < end {
                    facade::time::sleep_until(deadline).await;
                    let now = Instant::now();
                    late.push(now.saturating_duration_since(deadline));
                    deadline = (deadline + Duration::from_millis(1)).max(now);
                }
                late
            });
        let late = control.await.expect("the control loop");
        stop.store(true, Ordering::Relaxed);
        late
    });
    late.sort();
    let pct = |p: f64| late[((late.len() as f64 * p) as usize).min(late.len() - 1)];
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:>9}: control loop late by p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?};  batch {:>6.0} polls/s",
        pct(0.5),
        pct(0.99),
        late.last().copied().unwrap_or_default(),
        batch_polls.load(Ordering::Relaxed) as f64 / secs
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "A 1 ms control loop (high priority) beside 1,000 busy batch tasks (low priority), 2 workers:"
    );
    for name in facade::SCHEDULERS {
        run(name)?;
    }
    Ok(())
}
