//! A seeded chaos test: random spawns, nested spawns, wakes from other threads and from tasks,
//! aborts, panics, timers, yields and panicking wakers, with every future's drop counted.
//!
//! Size: `CHAOS_OPS` operations per runtime shape (default 2000); seed: `CHAOS_SEED` (default
//! fixed, so a failure replays; the seed is in the failure message).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::Make;
use crate::util::{DropCounter, LIMIT, oneshot, within};

/// xorshift64*: small, deterministic, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// What a task of the chaos run ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Value(u64),
    Panic,
    /// Aborted: cancelled, unless it finished first.
    Aborted(u64),
}

struct PanicsWhenWoken;

impl Wake for PanicsWhenWoken {
    fn wake(self: Arc<Self>) {
        panic!("injected: chaos waker");
    }
}

/// Polls a sleep once with a waker that panics when the timer fires; the runtime contains it.
struct PanickingTimer(Option<Pin<Box<facade::time::Sleep>>>);

impl std::future::Future for PanickingTimer {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(mut s) = self.0.take() {
            let waker = Waker::from(Arc::new(PanicsWhenWoken));
            let _ = s.as_mut().poll(&mut Context::from_waker(&waker));
            // Keep it registered for a while, then finish (polled again by our own timer).
            let me = cx.waker().clone();
            facade::spawn(async move {
                facade::time::sleep(Duration::from_millis(3)).await;
                drop(s);
                me.wake();
            });
            return Poll::Pending;
        }
        Poll::Ready(())
    }
}

/// The chaos run: `CHAOS_OPS` random operations on each runtime shape; every join gets what
/// its task was meant to end with, and every future is dropped exactly once.
pub fn chaos_every_future_dropped_once_every_join_answered(make: Make) {
    let ops = env_number("CHAOS_OPS", 2000);
    let seed = env_number("CHAOS_SEED", 0x5EED_CA05);
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = make(workers).build().unwrap();
            let drops = DropCounter::new();
            let mut rng = Rng(seed ^ workers as u64 | 1);
            let spawned = Arc::new(AtomicU64::new(0));
            let d = drops.clone();
            let sp = spawned.clone();
            rt.block_on(async move {
                let mut joins = Vec::new();
                let mut senders = Vec::new();
                for i in 0..ops {
                    let op = rng.below(9);
                    let value = rng.next() >> 8;
                    sp.fetch_add(1, Ordering::Relaxed);
                    match op {
                        // Plain, yielding, timer.
                        0 => joins.push((
                            facade::spawn(d.wrap(async move { value })),
                            Expect::Value(value),
                        )),
                        1 => joins.push((
                            facade::spawn(d.wrap(async move {
                                for _ in 0..(value % 5) {
                                    facade::yield_now().await;
                                }
                                value
                            })),
                            Expect::Value(value),
                        )),
                        2 => joins.push((
                            facade::spawn(d.wrap(async move {
                                facade::time::sleep(Duration::from_micros(value % 2000)).await;
                                value
                            })),
                            Expect::Value(value),
                        )),
                        // Nested spawn (the inner one is counted and joined by the outer).
                        3 => {
                            sp.fetch_add(1, Ordering::Relaxed);
                            let inner = d.clone();
                            joins.push((
                                facade::spawn(d.wrap(async move {
                                    facade::spawn(inner.wrap(async move { value }))
                                        .await
                                        .unwrap()
                                })),
                                Expect::Value(value),
                            ));
                        }
                        // Woken from another thread (later, all at once) or from a task.
                        4 | 5 => {
                            let (tx, rx) = oneshot::<u64>();
                            joins.push((
                                facade::spawn(d.wrap(async move { rx.await.unwrap_or(0) })),
                                Expect::Value(value),
                            ));
                            if op == 4 {
                                senders.push((tx, value));
                            } else {
                                sp.fetch_add(1, Ordering::Relaxed);
                                facade::spawn(d.wrap(async move {
                                    facade::yield_now().await;
                                    tx.send(value);
                                }));
                            }
                        }
                        // Panics.
                        6 => joins.push((
                            facade::spawn(d.wrap(async move {
                                facade::yield_now().await;
                                if value != u64::MAX {
                                    panic!("injected: chaos task {i}");
                                }
                                value
                            })),
                            Expect::Panic,
                        )),
                        // Aborted at once or after a while.
                        7 => {
                            let h = facade::spawn(d.wrap(async move {
                                facade::time::sleep(Duration::from_micros(value % 500)).await;
                                value
                            }));
                            if value % 2 == 0 {
                                facade::yield_now().await;
                            }
                            h.abort();
                            joins.push((h, Expect::Aborted(value)));
                        }
                        // A timer whose waker panics.
                        _ => {
                            joins.push((
                                facade::spawn(d.wrap(async move {
                                    let sleep =
                                        Box::pin(facade::time::sleep(Duration::from_millis(1)));
                                    PanickingTimer(Some(sleep)).await;
                                    value
                                })),
                                Expect::Value(value),
                            ));
                        }
                    }
                    if rng.below(16) == 0 {
                        facade::yield_now().await;
                    }
                }
                let waker = std::thread::spawn(move || {
                    for (tx, v) in senders {
                        tx.send(v);
                    }
                });
                for (n, (h, expect)) in joins.into_iter().enumerate() {
                    let got = h.await;
                    match (expect, &got) {
                        (Expect::Value(v), Ok(g)) if *g == v => {}
                        (Expect::Panic, Err(e)) if e.is_panic() => {}
                        (Expect::Aborted(v), Ok(g)) if *g == v => {}
                        (Expect::Aborted(_), Err(e)) if e.is_cancelled() => {}
                        _ => panic!("seed {seed:#x}, join {n}: expected {expect:?}, got {got:?}"),
                    }
                }
                waker.join().unwrap();
            });
            // Helper tasks may still be finishing; dropping the runtime drops what is left.
            drop(rt);
            assert_eq!(
                drops.drops() as u64,
                spawned.load(Ordering::Relaxed),
                "seed {seed:#x}, {workers} workers: every future dropped exactly once"
            );
        }
    });
}
