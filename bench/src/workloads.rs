//! The workloads, written once for every runtime (sizes as in tokio's runtime benchmarks).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::exec::{Exec, Spawner};

/// Every workload, in the order the table shows them.
pub(crate) const WORKLOADS: &[&str] = &[
    "spawn_many_local",
    "spawn_many_remote",
    "yield_many",
    "ping_pong",
    "ping_pong_deadline",
    "chained_spawn",
    "join_set",
    "idle_memory",
    "tcp_echo",
    "timers_cancel",
    "timer_lateness",
    "timers_light",
    "latency_under_load",
    "latency_under_load_foreign",
    "spawn_blocking",
    "rayon_roundtrip",
];

/// One measurement: the time, and any figures of the workload's own.
pub(crate) struct Sample {
    pub(crate) elapsed: Duration,
    pub(crate) extra: Vec<(&'static str, f64)>,
}

impl Sample {
    fn time(elapsed: Duration) -> Sample {
        Sample {
            elapsed,
            extra: Vec::new(),
        }
    }
}

/// Whether the workload needs a new runtime for each sample (it leaves tasks behind).
pub(crate) fn fresh_runtime_per_sample(workload: &str) -> bool {
    workload == "idle_memory" || workload.starts_with("latency")
}

/// The scheduling workloads: tasks, wakes and queues only, no I/O, timers or other threads
/// (the ones the floor runtimes run).
pub(crate) fn is_scheduling(workload: &str) -> bool {
    matches!(
        workload,
        "spawn_many_local" | "spawn_many_remote" | "yield_many" | "ping_pong" | "chained_spawn"
    )
}

/// Runs one sample of `workload` on `e`; `None` if the runtime cannot run it.
pub(crate) fn run<E: Exec>(e: &E, workload: &str) -> Option<Sample> {
    if e.scheduling_only() && !is_scheduling(workload) {
        return None;
    }
    let s = e.spawner();
    Some(match workload {
        "spawn_many_local" => spawn_many_local(e, s, size("BENCH_SPAWN_TASKS", 10_000)),
        "spawn_many_remote" if e.remote_spawn() => {
            spawn_many_remote(e, s, size("BENCH_SPAWN_TASKS", 10_000))
        }
        "spawn_many_remote" => return None,
        "yield_many" => yield_many(e, s, size("BENCH_YIELD_TASKS", 1_000), 200),
        "ping_pong" => ping_pong(e, s, 1_000, 10),
        "ping_pong_deadline" => ping_pong_deadline(e, s, 1_000, 10),
        "chained_spawn" => chained_spawn(e, s, 1_000),
        "join_set" => join_set(e, size("BENCH_SPAWN_TASKS", 10_000))?,
        "idle_memory" => idle_memory(e, s, size("BENCH_IDLE_TASKS", 1_000_000)),
        "tcp_echo" => tcp_echo(e, s, 50, size("BENCH_ECHO_ROUNDS", 2_000)),
        "timers_cancel" => timers_cancel(e, size("BENCH_TIMERS_CANCEL", 1_000_000)),
        "timer_lateness" => timer_lateness(e, s, size("BENCH_LATENESS_TIMERS", 100_000)),
        "timers_light" => timer_lateness(e, s, 1_000),
        "latency_under_load" | "latency_under_load_foreign" if !e.multi_thread() => return None,
        "spawn_blocking" => spawn_blocking(e, s, size("BENCH_BLOCKING_JOBS", 10_000)),
        "rayon_roundtrip" => rayon_roundtrip(e, s, size("BENCH_RAYON_JOBS", 10_000)),
        "latency_under_load" => latency_under_load(e, s, false),
        "latency_under_load_foreign" => latency_under_load(e, s, true),
        other => panic!("unknown workload {other}"),
    })
}

/// A workload size from the environment variable `var`, or `default`:
/// `BENCH_SPAWN_TASKS` (spawn_many_*, join_set), `BENCH_YIELD_TASKS` (yield_many),
/// `BENCH_IDLE_TASKS` (idle_memory).
fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

fn spawn_many_local<E: Exec>(e: &E, s: E::S, n: usize) -> Sample {
    let start = Instant::now();
    e.block_on(async move {
        let inner = s.clone();
        s.spawn(async move {
            let handles: Vec<_> = (0..n).map(|_| inner.spawn(async {})).collect();
            for h in handles {
                h.await;
            }
        })
        .await
    });
    Sample::time(start.elapsed())
}

/// spawn_many_local through the runtime's `JoinSet`: each task yields once (so the set registers
/// its own waker with every handle, not only collects finished ones) and is joined in completion
/// order.
fn join_set<E: Exec>(e: &E, n: usize) -> Option<Sample> {
    let start = Instant::now();
    let sum = e.join_set_sum(n)?;
    let elapsed = start.elapsed();
    assert_eq!(sum, (n as u64) * (n as u64 - 1) / 2);
    Some(Sample::time(elapsed))
}

fn spawn_many_remote<E: Exec>(e: &E, s: E::S, n: usize) -> Sample {
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|_| s.spawn(async {})).collect();
    e.block_on(async move {
        for h in handles {
            h.await;
        }
    });
    Sample::time(start.elapsed())
}

fn yield_many<E: Exec>(e: &E, s: E::S, tasks: usize, yields: usize) -> Sample {
    let start = Instant::now();
    e.block_on(async move {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                s.spawn(async move {
                    for _ in 0..yields {
                        E::yield_now().await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await;
        }
    });
    Sample::time(start.elapsed())
}

fn ping_pong<E: Exec>(e: &E, s: E::S, pairs: usize, rounds: u32) -> Sample {
    let start = Instant::now();
    e.block_on(async move {
        let handles: Vec<_> = (0..pairs)
            .map(|_| {
                let s2 = s.clone();
                s.spawn(async move {
                    let (to_b, b_in) = (Mailbox::new(), Mailbox::new());
                    let b_in2 = b_in.clone();
                    let to_a = to_b.clone();
                    let b = s2.spawn(async move {
                        for _ in 0..rounds {
                            let v = b_in2.recv().await;
                            to_a.send(v + 1);
                        }
                    });
                    let mut v = 0u32;
                    for _ in 0..rounds {
                        b_in.send(v);
                        v = to_b.recv().await;
                    }
                    b.await;
                    assert_eq!(v, rounds);
                })
            })
            .collect();
        for h in handles {
            h.await;
        }
    });
    Sample::time(start.elapsed())
}

/// ping_pong where each side waits under one deadline for its whole exchange: a sleep made
/// before its loop and raced against every receive (a connection deadline or a heartbeat in a
/// `select!` loop), so every round polls a timer that is registered and pending.
fn ping_pong_deadline<E: Exec>(e: &E, s: E::S, pairs: usize, rounds: u32) -> Sample {
    /// Receives from `m`, unless `deadline` passes first.
    async fn recv_before<T, D: Future<Output = ()>>(
        m: &Mailbox<T>,
        mut deadline: Pin<&mut D>,
    ) -> Option<T> {
        futures_lite::future::or(async { Some(m.recv().await) }, async {
            deadline.as_mut().await;
            None
        })
        .await
    }
    const DEADLINE: Duration = Duration::from_secs(60);
    let start = Instant::now();
    e.block_on(async move {
        let handles: Vec<_> = (0..pairs)
            .map(|_| {
                let s2 = s.clone();
                s.spawn(async move {
                    let (to_b, b_in) = (Mailbox::new(), Mailbox::new());
                    let b_in2 = b_in.clone();
                    let to_a = to_b.clone();
                    let b = s2.spawn(async move {
                        let mut deadline = std::pin::pin!(E::sleep(DEADLINE));
                        for _ in 0..rounds {
                            let v = recv_before(&b_in2, deadline.as_mut()).await;
                            to_a.send(v.expect("the deadline is a minute away") + 1);
                        }
                    });
                    let mut deadline = std::pin::pin!(E::sleep(DEADLINE));
                    let mut v = 0u32;
                    for _ in 0..rounds {
                        b_in.send(v);
                        v = recv_before(&to_b, deadline.as_mut())
                            .await
                            .expect("the deadline is a minute away");
                    }
                    b.await;
                    assert_eq!(v, rounds);
                })
            })
            .collect();
        for h in handles {
            h.await;
        }
    });
    Sample::time(start.elapsed())
}

fn chained_spawn<E: Exec>(e: &E, s: E::S, depth: usize) -> Sample {
    fn link<S: Spawner>(s: S, n: usize, done: Mailbox<()>) {
        if n == 0 {
            done.send(());
        } else {
            let next = s.clone();
            S::detach(s.spawn(async move { link(next, n - 1, done) }));
        }
    }
    let start = Instant::now();
    e.block_on(async move {
        let done = Mailbox::new();
        let d = done.clone();
        let s2 = s.clone();
        E::S::detach(s.spawn(async move { link(s2, depth, d) }));
        done.recv().await;
    });
    Sample::time(start.elapsed())
}

fn idle_memory<E: Exec>(e: &E, s: E::S, n: usize) -> Sample {
    let polled = Arc::new(AtomicUsize::new(0));
    let before = crate::alloc::start_counting();
    let start = Instant::now();
    let p = polled.clone();
    e.block_on(async move {
        for _ in 0..n {
            let p = p.clone();
            E::S::detach(s.spawn(async move {
                p.fetch_add(1, Ordering::Relaxed);
                std::future::pending::<()>().await
            }));
        }
        // Wait until every task has been polled once and is parked.
        while p.load(Ordering::Relaxed) < n {
            E::yield_now().await;
        }
    });
    let elapsed = start.elapsed();
    let live = crate::alloc::stop_counting(before);
    Sample {
        elapsed,
        extra: vec![("bytes_per_task", live as f64 / n as f64)],
    }
}

/// `connections` clients each make `rounds` round trips of 64 bytes through an echo server.
fn tcp_echo<E: Exec>(e: &E, s: E::S, connections: usize, rounds: usize) -> Sample {
    let start = Instant::now();
    e.block_on(async move {
        let (listener, addr) = E::bind().await;
        let s2 = s.clone();
        let server = s.spawn(async move {
            for _ in 0..connections {
                let mut conn = E::accept(&listener).await;
                E::S::detach(s2.spawn(async move {
                    let mut buf = [0u8; 64];
                    while E::read_exact(&mut conn, &mut buf).await {
                        E::write_all(&mut conn, &buf).await;
                    }
                }));
            }
        });
        let clients: Vec<_> = (0..connections)
            .map(|i| {
                s.spawn(async move {
                    let mut c = E::connect(addr).await;
                    let msg = [i as u8; 64];
                    let mut back = [0u8; 64];
                    for _ in 0..rounds {
                        E::write_all(&mut c, &msg).await;
                        assert!(E::read_exact(&mut c, &mut back).await);
                    }
                })
            })
            .collect();
        for c in clients {
            c.await;
        }
        server.await;
    });
    let elapsed = start.elapsed();
    let rts = (connections * rounds) as f64 / elapsed.as_secs_f64();
    Sample {
        elapsed,
        extra: vec![("round_trips_per_s", rts)],
    }
}

/// Creates `n` timers (each registered by one poll) and cancels them.
fn timers_cancel<E: Exec>(e: &E, n: usize) -> Sample {
    let start = Instant::now();
    e.block_on(async move {
        for i in 0..n {
            let sleep = E::sleep(Duration::from_millis(1 + (i % 10_000) as u64));
            let mut sleep = std::pin::pin!(sleep);
            let _ = futures_lite::future::poll_once(sleep.as_mut()).await;
            // A fresh cooperative budget now and then: once it is spent, a sleep's poll returns
            // at once without registering the timer (ours and tokio's), and the loop would
            // measure nothing.
            if i % 64 == 63 {
                E::yield_now().await;
            }
        }
    });
    Sample::time(start.elapsed())
}

/// `n` tasks sleep a random 1-50 ms; lateness (actual wake minus deadline) percentiles.
fn timer_lateness<E: Exec>(e: &E, s: E::S, n: usize) -> Sample {
    let start = Instant::now();
    let mut late: Vec<u64> = e.block_on(async move {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let handles: Vec<_> = (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let d = Duration::from_micros(1_000 + seed % 49_000);
                s.spawn(async move {
                    let deadline = Instant::now() + d;
                    E::sleep(d).await;
                    Instant::now()
                        .saturating_duration_since(deadline)
                        .as_nanos() as u64
                })
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for h in handles {
            out.push(h.await);
        }
        out
    });
    let elapsed = start.elapsed();
    late.sort_unstable();
    let pct = |p: f64| late[((late.len() as f64 * p) as usize).min(late.len() - 1)] as f64;
    Sample {
        elapsed,
        extra: vec![("p50_ns", pct(0.50)), ("p99_ns", pct(0.99))],
    }
}

/// `n` short jobs on the blocking pool (tokio's spawn_blocking, smol's unblock, ours), all
/// awaited.
fn spawn_blocking<E: Exec>(e: &E, s: E::S, n: usize) -> Sample {
    let start = Instant::now();
    e.block_on(async move {
        let hs: Vec<_> = (0..n)
            .map(|i| s.spawn_blocking(move || std::hint::black_box(i * 2)))
            .collect();
        for h in hs {
            h.await;
        }
    });
    Sample::time(start.elapsed())
}

/// `n` trivial rayon jobs, one after the other, each awaited by a task before the next: the
/// bridge's round trip (to rayon's global pool and back to the awaiting task).
fn rayon_roundtrip<E: Exec>(e: &E, s: E::S, n: usize) -> Sample {
    let start = Instant::now();
    let inner = s.clone();
    e.block_on(s.spawn(async move {
        for i in 0..n {
            std::hint::black_box(inner.spawn_rayon(move || std::hint::black_box(i) + 1).await);
        }
    }));
    let elapsed = start.elapsed();
    Sample {
        elapsed,
        extra: vec![("us_per_round_trip", elapsed.as_secs_f64() * 1e6 / n as f64)],
    }
}

/// Busy for about `d` on this thread (the background tasks' "work").
fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Timestamps sent by a plain thread, taken all at once by the task it wakes; `None` once the
/// sender has closed it and everything was taken.
#[derive(Default)]
struct Inbox(Mutex<(Vec<Instant>, Option<Waker>, bool)>);

impl Inbox {
    fn send(&self, t: Instant) {
        let w = {
            let mut g = self.0.lock().unwrap();
            g.0.push(t);
            g.1.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    fn close(&self) {
        let w = {
            let mut g = self.0.lock().unwrap();
            g.2 = true;
            g.1.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    fn recv(&self) -> impl Future<Output = Option<Vec<Instant>>> + '_ {
        std::future::poll_fn(|cx| {
            let mut g = self.0.lock().unwrap();
            if !g.0.is_empty() {
                Poll::Ready(Some(std::mem::take(&mut g.0)))
            } else if g.2 {
                Poll::Ready(None)
            } else {
                g.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// Every worker saturated by 1,000 background tasks (about 50 us of work per poll, then a
/// yield); beside them an urgent task is due every millisecond for `BENCH_LATENCY_SECS`
/// (default 5): woken by its own timer, or (`foreign`) by a plain thread. Its latency runs from
/// the deadline (or the send) to the start of its poll.
fn latency_under_load<E: Exec>(e: &E, s: E::S, foreign: bool) -> Sample {
    let secs = size("BENCH_LATENCY_SECS", 5) as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let background = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let (stop2, bg2) = (stop.clone(), background.clone());
    let mut late: Vec<u64> = e.block_on(async move {
        for _ in 0..1_000 {
            let (stop, bg) = (stop2.clone(), bg2.clone());
            E::S::detach(s.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    spin(Duration::from_micros(50));
                    bg.fetch_add(1, Ordering::Relaxed);
                    E::yield_now().await;
                }
            }));
        }
        let end = Instant::now() + Duration::from_secs(secs);
        let urgent = if foreign {
            let inbox = Arc::new(Inbox::default());
            let sender = {
                let inbox = inbox.clone();
                std::thread::spawn(move || {
                    while Instant::now() < end {
                        std::thread::sleep(Duration::from_millis(1));
                        inbox.send(Instant::now());
                    }
                    inbox.close();
                })
            };
            let h = s.spawn_urgent(async move {
                let mut late = Vec::new();
                while let Some(sent) = inbox.recv().await {
                    let now = Instant::now();
                    late.extend(
                        sent.iter()
                            .map(|t| now.saturating_duration_since(*t).as_nanos() as u64),
                    );
                }
                late
            });
            let late = h.await;
            sender.join().unwrap();
            late
        } else {
            s.spawn_urgent(async move {
                let mut late = Vec::new();
                let mut deadline = Instant::now() + Duration::from_millis(1);
                while deadline < end {
                    E::sleep(deadline.saturating_duration_since(Instant::now())).await;
                    let now = Instant::now();
                    late.push(now.saturating_duration_since(deadline).as_nanos() as u64);
                    // Every millisecond; after a late wake-up, the next deadline ahead.
                    deadline += Duration::from_millis(1);
                    if deadline < now {
                        deadline = now + Duration::from_millis(1);
                    }
                }
                late
            })
            .await
        };
        stop2.store(true, Ordering::Relaxed);
        urgent
    });
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    late.sort_unstable();
    let pct = |p: f64| late[((late.len() as f64 * p) as usize).min(late.len() - 1)] as f64;
    Sample {
        elapsed,
        extra: vec![
            ("p50_ns", pct(0.50)),
            ("p99_ns", pct(0.99)),
            ("p999_ns", pct(0.999)),
            ("max_ns", *late.last().unwrap_or(&0) as f64),
            (
                "background_polls_per_s",
                background.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
            ),
        ],
    }
}

/// A single-value mailbox that can be reused: `send` stores and wakes, `recv` takes.
struct Mailbox<T>(Arc<Mutex<(Option<T>, Option<Waker>)>>);

impl<T> Clone for Mailbox<T> {
    fn clone(&self) -> Self {
        Mailbox(self.0.clone())
    }
}

impl<T> Mailbox<T> {
    fn new() -> Self {
        Mailbox(Arc::new(Mutex::new((None, None))))
    }

    fn send(&self, v: T) {
        let w = {
            let mut g = self.0.lock().unwrap();
            g.0 = Some(v);
            g.1.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    fn recv(&self) -> Recv<'_, T> {
        Recv(self)
    }
}

struct Recv<'a, T>(&'a Mailbox<T>);

impl<T> Future for Recv<'_, T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut g = self.0.0.lock().unwrap();
        match g.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                g.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
