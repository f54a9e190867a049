//! Sharing between bands, counted in polls (deterministic enough for CI; no timings asserted).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use runtime_core::{Config, Handle, Priority, Runtime, SpawnOptions, yield_now};
use sched_priority::{Accounting, Band, PriorityConfig, PriorityScheduler};

fn runtime(config: PriorityConfig, workers: usize) -> Runtime {
    Runtime::new(
        PriorityScheduler::new(config).unwrap(),
        Config {
            worker_threads: workers,
            ..Config::default()
        },
    )
    .unwrap()
}

fn spawn_at(h: &Handle, p: u8, f: impl Future<Output = ()> + Send + 'static) {
    drop(h.spawn_with(
        f,
        SpawnOptions {
            name: None,
            priority: Some(Priority(p)),
        },
    ));
}

/// Runs `f` on a thread; fails instead of hanging.
fn within(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("did not finish in 60 s: starvation or a hang");
}

/// Three saturated bands with shares 70/20/10 get 70/20/10 of the polls, within +-20%.
#[test]
fn saturated_bands_share_polls_by_weight() {
    within(|| {
        for workers in [1, 2] {
            let config = PriorityConfig {
                bands: vec![
                    Band::new("a", 200, 70),
                    Band::new("b", 100, 20),
                    Band::new("c", 0, 10),
                ],
                accounting: Accounting::PollCount,
                ..PriorityConfig::default()
            };
            let rt = runtime(config, workers);
            let counts: Arc<[AtomicU64; 3]> = Arc::default();
            let stop = Arc::new(AtomicBool::new(false));
            for (band, p) in [(0usize, 220u8), (1, 150), (2, 10)] {
                for _ in 0..8 {
                    let (counts, stop) = (counts.clone(), stop.clone());
                    spawn_at(rt.handle(), p, async move {
                        while !stop.load(Ordering::Relaxed) {
                            counts[band].fetch_add(1, Ordering::Relaxed);
                            yield_now().await;
                        }
                    });
                }
            }
            let total = || {
                counts
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .sum::<u64>()
            };
            while total() < 100_000 {
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::Relaxed);
            let t = total() as f64;
            for (band, share) in [(0, 0.70), (1, 0.20), (2, 0.10)] {
                let got = counts[band].load(Ordering::Relaxed) as f64 / t;
                assert!(
                    (got - share).abs() <= share * 0.2,
                    "{workers} workers: band {band} got {got:.3} of the polls, share {share}"
                );
            }
        }
    });
}

/// The smallest band still finishes its work while the most urgent band never goes idle.
#[test]
fn background_completes_while_urgent_never_idles() {
    within(|| {
        let rt = runtime(PriorityConfig::default(), 2);
        let stop = Arc::new(AtomicBool::new(false));
        for _ in 0..4 {
            let stop = stop.clone();
            spawn_at(rt.handle(), 255, async move {
                while !stop.load(Ordering::Relaxed) {
                    yield_now().await;
                }
            });
        }
        let done = Arc::new(AtomicU64::new(0));
        for _ in 0..50 {
            let done = done.clone();
            spawn_at(rt.handle(), 0, async move {
                for _ in 0..20 {
                    yield_now().await;
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        while done.load(Ordering::SeqCst) < 50 {
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, Ordering::Relaxed);
        let polls = rt.metrics().scheduler;
        assert!(
            polls
                .iter()
                .any(|(k, v)| *k == "background_polls" && *v >= 50 * 21),
            "{polls:?}"
        );
    });
}

/// An urgent task woken while the other bands are saturated is the next one taken, even on one
/// worker: counted as the number of background polls in between (no timing; polls are
/// counted rather than timed, so that the OS preempting a poll changes nothing).
#[test]
fn an_urgent_task_runs_next() {
    within(|| {
        let config = PriorityConfig {
            accounting: Accounting::PollCount,
            ..PriorityConfig::default()
        };
        let rt = runtime(config, 1);
        let stop = Arc::new(AtomicBool::new(false));
        let background = Arc::new(AtomicU64::new(0));
        for _ in 0..100 {
            let (stop, background) = (stop.clone(), background.clone());
            spawn_at(rt.handle(), Priority::NORMAL.0, async move {
                while !stop.load(Ordering::Relaxed) {
                    background.fetch_add(1, Ordering::Relaxed);
                    // A poll of some length, so that a poll is longer than the spawn below.
                    let t = std::time::Instant::now();
                    while t.elapsed() < Duration::from_micros(20) {
                        std::hint::spin_loop();
                    }
                    yield_now().await;
                }
            });
        }
        let mut worst = 0;
        for _ in 0..100 {
            // A trigger task reads the background count and spawns the urgent task in the same
            // poll, on the worker: nothing (not the OS scheduling a test thread) comes between.
            let (bg, handle) = (background.clone(), rt.handle().clone());
            let (tx, rx) = std::sync::mpsc::channel();
            spawn_at(rt.handle(), Priority::NORMAL.0, async move {
                let start = bg.load(Ordering::Relaxed);
                let bg2 = bg.clone();
                spawn_at(&handle, Priority::CRITICAL.0, async move {
                    let _ = tx.send(bg2.load(Ordering::Relaxed) - start);
                });
            });
            worst = worst.max(rx.recv().unwrap());
        }
        stop.store(true, Ordering::Relaxed);
        // At most the poll in progress when it was spawned, and the next one started in the
        // meantime; FIFO would run the ~100 queued background polls first.
        assert!(
            worst <= 3,
            "an urgent task waited behind {worst} background polls"
        );
    });
}

#[test]
fn bands_map_priorities_and_nonsense_is_rejected() {
    let s = PriorityScheduler::new(PriorityConfig::default()).unwrap();
    assert_eq!(s.band_of(Priority::CRITICAL), 0);
    assert_eq!(s.band_of(Priority::HIGH), 1);
    assert_eq!(s.band_of(Priority::NORMAL), 2);
    assert_eq!(s.band_of(Priority::LOW), 3);
    assert_eq!(s.band_of(Priority::BACKGROUND), 4);
    let mut c = PriorityConfig::default();
    c.bands.swap(0, 1);
    assert!(
        PriorityScheduler::new(c)
            .unwrap_err()
            .to_string()
            .contains("most urgent down")
    );
}

/// Bands are not capped in number, and each reports its polls under its own name.
#[test]
fn many_bands_report_polls_under_their_own_names() {
    within(|| {
        let bands: Vec<Band> = (0..12u8)
            .rev()
            .map(|i| Band::new(format!("tier{i}"), i * 20, 1))
            .collect();
        let config = PriorityConfig {
            bands,
            accounting: Accounting::PollCount,
            ..PriorityConfig::default()
        };
        let rt = runtime(config, 1);
        let done = Arc::new(AtomicU64::new(0));
        for i in 0..12u8 {
            let done = done.clone();
            spawn_at(rt.handle(), i * 20, async move {
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        while done.load(Ordering::SeqCst) < 12 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let m = rt.metrics();
        for i in 0..12 {
            assert_eq!(
                m.scheduler_counter(&format!("tier{i}_polls")),
                Some(1),
                "{:?}",
                m.scheduler
            );
        }
    });
}
