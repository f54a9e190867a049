//! Where work that is not async goes: the blocking pool, rayon, a dedicated thread, and the
//! watchdog that catches the task that got it wrong.
//!
//! 1. Reading files: `spawn_blocking` (file I/O blocks the calling thread; the blocking pool has
//!    threads to spare for that, the async workers do not).
//! 2. Hashing a large buffer: `spawn_rayon` + `par_iter` (CPU-bound work wants every core for a
//!    short while, which is what rayon's pool is for; the awaiting task is woken when it is done).
//! 3. A metrics reporter: `spawn_dedicated` (a loop that runs for the whole life of the program
//!    would pin a pool thread or an async worker forever; it gets a thread of its own).
//! 4. A task that calls `std::thread::sleep` inside a poll, as if it were async code: the watchdog
//!    reports it (a `tracing` warning with the task's id, name and worker) and counts it.
//!
//! Run: `cargo run --release -p examples --bin blocking_work`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

const FILES: usize = 8;
const FILE_BYTES: usize = 1 << 20;
const BUFFER_BYTES: usize = 64 << 20;
const CHUNK_BYTES: usize = 1 << 20;

/// FNV-1a: a simple, dependency-free hash to keep the cores busy.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The watchdog reports through `tracing`: print warnings (and up), in line with the rest.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::stdout)
        .init();

    let rt = facade::Builder::new()
        .worker_threads(2)
        .watchdog_threshold(Duration::from_millis(10))
        .build()?;

    // 3. The reporter: its own thread for as long as the program runs.
    let stop = Arc::new(AtomicBool::new(false));
    let reporter = {
        let (handle, stop) = (rt.handle().clone(), stop.clone());
        facade::spawn_dedicated("metrics-reporter", move || {
            let mut reports = 0;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let m = handle.metrics();
                let b = handle.blocking_metrics();
                println!(
                    "  [reporter] tasks alive {:>3}, polls {:>6}, blocking threads {:>2}, slow polls {}",
                    m.tasks_alive, m.tasks_polled, b.threads, m.slow_polls
                );
                reports += 1;
            }
            reports
        })?
    };

    rt.block_on(async {
        // 1. Files: write then read them back on the blocking pool, all at once.
        let dir = std::env::temp_dir().join(format!("blocking-work-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let start = Instant::now();
        let reads: Vec<_> = (0..FILES)
            .map(|i| {
                let path = dir.join(format!("file-{i}"));
                facade::spawn_blocking(move || -> std::io::Result<usize> {
                    std::fs::write(&path, vec![i as u8; FILE_BYTES])?;
                    Ok(std::fs::read(&path)?.len())
                })
            })
            .collect();
        let mut total = 0;
        for r in reads {
            total += r.await??;
        }
        std::fs::remove_dir_all(&dir)?;
        println!(
            "1. spawn_blocking: wrote and read {FILES} files, {total} bytes, in {:.1?}",
            start.elapsed()
        );

        // 2. Hashing: rayon splits the buffer over its threads; this task just awaits.
        let start = Instant::now();
        let hash = facade::spawn_rayon(|| {
            let buffer: Vec<u8> = (0..BUFFER_BYTES).map(|i| (i % 251) as u8).collect();
            let per_chunk: Vec<u64> = buffer.par_chunks(CHUNK_BYTES).map(fnv1a).collect();
            fnv1a(
                &per_chunk
                    .iter()
                    .flat_map(|h| h.to_le_bytes())
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
        println!(
            "2. spawn_rayon: hashed {} MiB with par_iter: {hash:016x}, in {:.1?}",
            BUFFER_BYTES >> 20,
            start.elapsed()
        );

        // 4. The mistake: a blocking call inside an async task. The watchdog prints a warning
        //    naming this task while it blocks.
        println!(
            "4. a task that blocks its worker for 50 ms (expect a warning from the watchdog):"
        );
        facade::task::Builder::new()
            .name("sleeps-on-a-worker")
            .spawn(async { std::thread::sleep(Duration::from_millis(50)) })
            .await?;
        // Let the reporter print once more.
        facade::time::sleep(Duration::from_millis(150)).await;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;

    stop.store(true, Ordering::Relaxed);
    let reports = rt.block_on(reporter)?;
    let m = rt.metrics();
    println!(
        "3. spawn_dedicated: the reporter printed {reports} times from its own thread\n\
         watchdog: {} slow poll(s) reported",
        m.slow_polls
    );
    Ok(())
}
