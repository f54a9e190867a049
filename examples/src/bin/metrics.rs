//! The runtime's metrics while a load runs: a snapshot every second (poll time and schedule
//! latency histograms per class, queue depths, budget-forced yields, the blocking pool), then
//! the task dump.
//!
//! Run: `cargo run --release -p examples --bin metrics` (the priority scheduler by default, so
//! that the histograms are per band; `RUNTIME_SCHEDULER=worksteal` and the other variables of
//! `Builder::from_env` choose another). `METRICS_SECONDS` sets how long it runs (default 3).
//!
//! The load: 200 low-priority tasks that compute ~50 µs and yield, a high-priority task woken
//! by a 1 ms timer, a receiver draining a busy channel (its budget makes it yield), and a
//! blocking job every 10 ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use facade::{HistogramSnapshot, Priority, RuntimeMetrics};

fn us(d: Option<Duration>) -> String {
    match d {
        Some(Duration::MAX) => "over".into(),
        Some(d) => format!("{:.0?}", d),
        None => "-".into(),
    }
}

fn line(what: &str, class: &str, h: &HistogramSnapshot) {
    println!(
        "  {what:<16} {class:<12} n={:<9} p50<={:<8} p99<={:<8} p99.9<={}",
        h.total(),
        us(h.quantile(0.5)),
        us(h.quantile(0.99)),
        us(h.quantile(0.999))
    );
}

fn report(second: u64, m: &RuntimeMetrics, blocking: &facade::BlockingMetrics) {
    println!(
        "t={second}s  polls={} alive={} budget_forced_yields={} slow_polls={}",
        m.tasks_polled, m.tasks_alive, m.budget_forced_yields, m.slow_polls
    );
    for (class, h) in &m.poll_time {
        line("poll time", class, h);
    }
    for (class, h) in &m.schedule_latency {
        line("schedule latency", class, h);
    }
    let depths: Vec<String> = m
        .scheduler
        .iter()
        .filter(|(k, _)| k.contains("queued"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("  queues: {}", depths.join(" "));
    for (i, w) in m.workers.iter().enumerate() {
        let p99 = w.poll_time.as_ref().and_then(|h| h.quantile(0.99));
        println!(
            "  worker {i}: polls={} parks={} poll p99<={}",
            w.polls,
            w.parks,
            us(p99)
        );
    }
    println!(
        "  blocking pool: threads={} idle={} queued={} started={}",
        blocking.threads, blocking.idle, blocking.queued, blocking.started
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::var("METRICS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut builder = facade::Builder::from_env();
    if std::env::var_os("RUNTIME_SCHEDULER").is_none() {
        builder = builder.priority_scheduler();
    }
    let rt = builder.enable_histograms().build()?;
    println!("{} scheduler, {seconds} s of load", rt.scheduler());
    let stop = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        for _ in 0..200 {
            let stop = stop.clone();
            facade::spawn_with_priority(Priority::LOW, async move {
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(50) {
                        std::hint::black_box(0u64);
                    }
                    facade::yield_now().await;
                }
            });
        }
        let s = stop.clone();
        facade::task::Builder::new()
            .name("control-loop")
            .priority(Priority::HIGH)
            .spawn(async move {
                let mut tick = facade::time::interval(Duration::from_millis(1));
                while !s.load(Ordering::Relaxed) {
                    tick.tick().await;
                }
            });
        let (tx, mut rx) = facade::sync::mpsc::unbounded_channel::<u64>();
        let s = stop.clone();
        facade::spawn(async move {
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                for _ in 0..1_000 {
                    let _ = tx.send(n);
                    n += 1;
                }
                facade::time::sleep(Duration::from_millis(1)).await;
            }
        });
        facade::spawn(async move { while rx.recv().await.is_some() {} });
        let s = stop.clone();
        facade::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                facade::spawn_blocking(|| std::thread::sleep(Duration::from_millis(2)))
                    .await
                    .unwrap();
                facade::time::sleep(Duration::from_millis(10)).await;
            }
        });

        let handle = facade::Handle::current();
        for second in 1..=seconds {
            facade::time::sleep(Duration::from_secs(1)).await;
            report(second, &handle.metrics(), &handle.blocking_metrics());
        }
        let dump = handle.dump();
        let named: Vec<_> = dump.tasks.iter().filter(|t| t.name.is_some()).collect();
        println!(
            "task dump: {} live tasks; the named ones:",
            dump.tasks.len()
        );
        for t in named {
            println!(
                "  {} {:?} {} polls={} age={:.1?} spawned at {}",
                t.id,
                t.name.as_deref().unwrap_or("-"),
                t.state,
                t.polls,
                t.age,
                t.location
            );
        }
        stop.store(true, Ordering::Relaxed);
    });
    Ok(())
}
