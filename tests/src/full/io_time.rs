//! Conformance tests of the shared driver: sockets and timers under every scheduler.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use facade::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use facade::time;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::Make;
use crate::util::{LIMIT, panic_message, within};

fn rt(make: Make, workers: usize) -> facade::Runtime {
    make(workers)
        .build()
        .expect("the scheduler under test builds")
}

/// A size from the environment, for the long stress runs (small default for CI).
fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn tcp_echo_100_connections(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let server = facade::spawn(async move {
                    for _ in 0..100 {
                        let (mut s, _) = listener.accept().await.unwrap();
                        facade::spawn(async move {
                            let mut buf = [0u8; 1024];
                            loop {
                                let n = s.read(&mut buf).await.unwrap();
                                if n == 0 {
                                    break;
                                }
                                s.write_all(&buf[..n]).await.unwrap();
                            }
                        });
                    }
                });
                let clients: Vec<_> = (0..100u32)
                    .map(|i| {
                        facade::spawn(async move {
                            let mut c = TcpStream::connect(addr).await.unwrap();
                            for round in 0..10u32 {
                                let msg = format!("client {i} round {round}");
                                c.write_all(msg.as_bytes()).await.unwrap();
                                let mut back = vec![0u8; msg.len()];
                                c.read_exact(&mut back).await.unwrap();
                                assert_eq!(back, msg.as_bytes());
                            }
                        })
                    })
                    .collect();
                for c in clients {
                    c.await.unwrap();
                }
                server.await.unwrap();
            });
        }
    });
}

pub fn udp_round_trip(make: Make) {
    within(LIMIT, move || {
        let rt = rt(make, 2);
        rt.block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let b_addr = b.local_addr().unwrap();
            let echo = facade::spawn(async move {
                let mut buf = [0u8; 64];
                let (n, from) = b.recv_from(&mut buf).await.unwrap();
                b.send_to(&buf[..n], from).await.unwrap();
            });
            a.send_to(b"ping", b_addr).await.unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = a.recv_from(&mut buf).await.unwrap();
            assert_eq!((&buf[..n], from), (&b"ping"[..], b_addr));
            echo.await.unwrap();
        });
    });
}

pub fn unix_stream_pair(make: Make) {
    within(LIMIT, move || {
        let rt = rt(make, 2);
        rt.block_on(async {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            let t = facade::spawn(async move {
                let mut got = Vec::new();
                b.read_to_end(&mut got).await.unwrap();
                b.write_all(&got).await.unwrap();
            });
            a.write_all(b"over a unix pair").await.unwrap();
            a.close().await.unwrap(); // half-close: the peer reads EOF, we can still read
            let mut back = Vec::new();
            a.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"over a unix pair");
            t.await.unwrap();
        });
    });
}

/// A client that connects, writes half a message and vanishes does not take the accept loop
/// down: later clients are still served.
pub fn accept_loop_survives_a_client_that_disconnects_mid_write(make: Make) {
    within(LIMIT, move || {
        let rt = rt(make, 2);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = facade::spawn(async move {
                let mut served = 0;
                while served < 3 {
                    let (mut s, _) = listener.accept().await.unwrap();
                    let h = facade::spawn(async move {
                        let mut len = [0u8; 4];
                        s.read_exact(&mut len).await?;
                        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                        s.read_exact(&mut body).await?;
                        s.write_all(&body).await?;
                        io::Result::Ok(())
                    });
                    if h.await.unwrap().is_ok() {
                        served += 1;
                    }
                }
                served
            });
            // The rude client: promises 1000 bytes, sends 10, resets.
            {
                let mut c = TcpStream::connect(addr).await.unwrap();
                c.write_all(&1000u32.to_be_bytes()).await.unwrap();
                c.write_all(&[7u8; 10]).await.unwrap();
            }
            for i in 0..3u8 {
                let mut c = TcpStream::connect(addr).await.unwrap();
                c.write_all(&3u32.to_be_bytes()).await.unwrap();
                c.write_all(&[i; 3]).await.unwrap();
                let mut back = [0u8; 3];
                c.read_exact(&mut back).await.unwrap();
                assert_eq!(back, [i; 3]);
            }
            assert_eq!(server.await.unwrap(), 3);
        });
    });
}

pub fn timeout_on_a_read_that_never_completes(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async {
                let (mut a, _b) = UnixStream::pair().unwrap();
                let mut buf = [0u8; 8];
                let r = time::timeout(Duration::from_millis(20), a.read(&mut buf)).await;
                assert!(r.is_err(), "the read has nothing to read");
                assert_eq!(time::timer_count(), 0, "the timeout's timer is gone");
            });
        }
    });
}

/// 10,000 timers with random deadlines on a paused clock fire in deadline order, never early.
pub fn timers_fire_in_deadline_order_never_early(make: Make) {
    within(LIMIT, move || {
        let rt = make(0).start_paused(true).build().unwrap();
        let n = size("CONFORMANCE_TIMERS", 10_000);
        let fired: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
        rt.block_on(async {
            let start = time::now();
            let mut seed = 0x9E37_79B9_7F4A_7C15u64;
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let deadline = start + Duration::from_micros(seed % 5_000_000);
                    let fired = fired.clone();
                    facade::spawn(async move {
                        time::sleep_until(deadline).await;
                        fired.lock().unwrap().push((deadline, time::now()));
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        });
        let fired = fired.lock().unwrap();
        assert_eq!(fired.len(), n);
        for (deadline, at) in fired.iter() {
            assert!(at >= deadline, "fired early");
        }
        assert!(
            fired.windows(2).all(|w| w[0].0 <= w[1].0),
            "timers completed out of deadline order"
        );
    });
}

/// Creating and cancelling many timers keeps the wheel's memory constant.
pub fn cancelled_timers_free_their_slots(make: Make) {
    within(LIMIT, move || {
        let rt = rt(make, 0);
        let cycles = size("CONFORMANCE_TIMER_CYCLES", 100_000);
        rt.block_on(async move {
            let keep: Vec<_> = (0..10)
                .map(|_| Box::pin(time::sleep(Duration::from_secs(60))))
                .collect();
            let mut keep = keep;
            for k in keep.iter_mut() {
                let _ = futures_lite::future::poll_once(k.as_mut()).await;
            }
            let slots = time::timer_slots();
            for i in 0..cycles {
                let mut s = Box::pin(time::sleep(Duration::from_millis(1 + (i % 5000) as u64)));
                let _ = futures_lite::future::poll_once(s.as_mut()).await; // registers it
            }
            assert_eq!(time::timer_count(), 10);
            assert!(
                time::timer_slots() <= slots + 1,
                "{} slots after {cycles} cycles, {slots} before",
                time::timer_slots()
            );
        });
    });
}

/// `n` tasks that compute a little and yield until `stop` is set: they keep the workers busy.
fn spinners(n: usize, stop: &Arc<AtomicBool>) -> Vec<facade::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let stop = stop.clone();
            facade::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    std::hint::black_box((0..200).sum::<u64>());
                    facade::yield_now().await;
                }
            })
        })
        .collect()
}

/// A timer fires while every worker is busy with tasks that only yield: the busy tasks spin
/// until the timer's task stops them, so a starved timer shows up as a hang.
pub fn timer_fires_while_workers_are_busy(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 1, 2] {
            let rt = rt(make, workers);
            rt.block_on(async move {
                let stop = Arc::new(AtomicBool::new(false));
                let busy = spinners(4, &stop);
                let s = stop.clone();
                let timer = facade::spawn(async move {
                    time::sleep(Duration::from_millis(20)).await;
                    s.store(true, Ordering::SeqCst);
                });
                timer.await.unwrap();
                for b in busy {
                    b.await.unwrap();
                }
            });
        }
    });
}

/// A socket becomes readable while every worker is busy with tasks that only yield (and no
/// worker is parked in the driver): the busy tasks spin until the reader stops them, so I/O
/// that waits for a worker to park shows up as a hang. The peer is a plain thread, outside
/// the runtime, that writes once the reader waits.
pub fn io_is_served_while_workers_are_busy(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 1, 2] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let peer = std::thread::spawn(move || {
                use std::io::Write;
                let (mut conn, _) = listener.accept().unwrap();
                std::thread::sleep(Duration::from_millis(20));
                conn.write_all(b"ping").unwrap();
            });
            let rt = rt(make, workers);
            rt.block_on(async move {
                let mut conn = TcpStream::connect(addr).await.unwrap();
                let stop = Arc::new(AtomicBool::new(false));
                let busy = spinners(4, &stop);
                let s = stop.clone();
                let reader = facade::spawn(async move {
                    let mut buf = [0u8; 4];
                    conn.read_exact(&mut buf).await.unwrap();
                    s.store(true, Ordering::SeqCst);
                    buf
                });
                assert_eq!(&reader.await.unwrap(), b"ping");
                for b in busy {
                    b.await.unwrap();
                }
            });
            peer.join().unwrap();
        }
    });
}

/// A sleep whose deadline passes before its first poll still completes, on an idle runtime
/// and beside busy tasks (a sleep of a millisecond or more registers without reading the
/// clock: the wheel must then finish it). Never early: the task blocked past the deadline.
pub fn an_overdue_sleep_completes(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async move {
                for busy in [false, true] {
                    let stop = Arc::new(AtomicBool::new(false));
                    let spinning = spinners(if busy { 3 } else { 0 }, &stop);
                    // Another timer, due while the sleeper blocks: an idle worker's driver
                    // fires it, so the wheel has passed the sleeper's tick by its first poll.
                    let other = facade::spawn(time::sleep(Duration::from_millis(3)));
                    let sleeper = facade::spawn(async {
                        let made = Instant::now();
                        let s = time::sleep(Duration::from_millis(2));
                        // Blocks past the deadline before the first poll.
                        std::thread::sleep(Duration::from_millis(5));
                        s.await;
                        made.elapsed()
                    });
                    let took = sleeper.await.unwrap();
                    assert!(took >= Duration::from_millis(2), "busy {busy}: {took:?}");
                    other.await.unwrap();
                    stop.store(true, Ordering::SeqCst);
                    for t in spinning {
                        t.await.unwrap();
                    }
                }
            });
        }
    });
}

/// A deadline raced against a busy stream of messages (a `select!` loop: the same pending
/// sleep is polled after every message, with the same waker) still fires on time, and not
/// early: the receiving loop ends at the deadline, long before the stream does.
pub fn a_deadline_polled_after_every_message_fires_on_time(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async move {
                let (tx, mut rx) = facade::sync::mpsc::channel::<()>(16);
                let sender = facade::spawn(async move {
                    let end = Instant::now() + Duration::from_secs(5);
                    while Instant::now() < end && tx.send(()).await.is_ok() {
                        time::sleep(Duration::from_micros(200)).await;
                    }
                });
                let start = Instant::now();
                let mut deadline = std::pin::pin!(time::sleep(Duration::from_millis(30)));
                let mut messages = 0u32;
                loop {
                    let next =
                        futures_lite::future::or(async { rx.recv().await.is_some() }, async {
                            deadline.as_mut().await;
                            false
                        });
                    if !next.await {
                        break;
                    }
                    messages += 1;
                }
                let took = start.elapsed();
                assert!(took >= Duration::from_millis(30), "early: {took:?}");
                assert!(
                    took < Duration::from_secs(4),
                    "the deadline waited for the stream to end: {took:?}, {messages} messages"
                );
                assert!(messages > 1, "{messages} messages");
                drop(rx); // the sender's next send fails: it stops
                sender.await.unwrap();
            });
        }
    });
}

/// A sleep registered with a waker, polled with that waker again after its runtime shut down,
/// says so (a panic with the message) instead of waiting for a driver that is gone.
pub fn a_registered_sleep_polled_after_shutdown_says_so(make: Make) {
    use std::future::Future;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::task::{Context, Waker};
    within(LIMIT, move || {
        let rt = rt(make, 2);
        let mut sleep = {
            let _g = rt.enter();
            Box::pin(time::sleep(Duration::from_secs(60)))
        };
        let mut cx = Context::from_waker(Waker::noop());
        assert!(sleep.as_mut().poll(&mut cx).is_pending(), "registered");
        drop(rt);
        let p = catch_unwind(AssertUnwindSafe(|| sleep.as_mut().poll(&mut cx))).unwrap_err();
        assert!(
            panic_message(&*p).contains("shut down"),
            "{}",
            panic_message(&*p)
        );
    });
}

/// Timers are serviced by elapsed time, not only when a worker parks or every so many polls:
/// a 1 ms ticker beside a task that yields between polls of 1 ms each ticks at least 10 times
/// in 40 ms (current-thread mode, where they share the only worker, and with 2 workers). Ticks
/// that come too late are skipped, not made up, so the count is what was on time. A policy
/// that runs the woken ticker before the yielded busy task gets about 20; one that queues it
/// behind gets about 14 (a tick costs a busy poll more). A worker that services timers only
/// every so many polls, or when it parks, gets one or none, so the bound sits far from both.
/// The OS preempting the spinning thread on a loaded machine costs ticks, so the best of five
/// tries counts.
pub fn timers_are_serviced_by_elapsed_time_beside_long_polls(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let mut tries = Vec::new();
            while tries.len() < 5 && tries.last().is_none_or(|&t| t < MIN_TICKS) {
                tries.push(ticks_beside_long_polls(make, workers));
            }
            assert!(
                tries.iter().any(|&t| t >= MIN_TICKS),
                "{workers} workers: ticks of 1 ms in 40 ms, per try: {tries:?}"
            );
        }
    });
}

const MIN_TICKS: u32 = 10;

fn ticks_beside_long_polls(make: Make, workers: usize) -> u32 {
    let rt = rt(make, workers);
    rt.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let busy = facade::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                let until = Instant::now() + Duration::from_millis(1);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                facade::yield_now().await;
            }
        });
        let ticker = facade::spawn(async move {
            let mut interval = time::interval(Duration::from_millis(1));
            interval.set_missed_tick_behavior(time::MissedTickBehavior::Skip);
            let end = Instant::now() + Duration::from_millis(40);
            let mut ticks = 0;
            while Instant::now() < end {
                interval.tick().await;
                ticks += 1;
            }
            ticks
        });
        let ticks = ticker.await.unwrap();
        stop.store(true, Ordering::SeqCst);
        busy.await.unwrap();
        ticks
    })
}

/// Data that arrives while a task is attempting a read is not lost, across many rounds.
pub fn readiness_not_lost_during_a_poll(make: Make) {
    within(LIMIT, move || {
        let rt = rt(make, 2);
        let rounds = 1_000;
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut b = b;
            for i in 0..rounds {
                if i % 5 == 0 {
                    std::thread::yield_now();
                }
                b.write_all(&[i as u8]).unwrap();
                b.read_exact(&mut [0u8; 1]).unwrap();
            }
        });
        rt.block_on(async move {
            let a = facade::net::Async::new(a).unwrap();
            for i in 0..rounds {
                let mut byte = [0u8; 1];
                (&a).read_exact(&mut byte).await.unwrap();
                assert_eq!(byte[0], i as u8);
                (&a).write_all(&[1]).await.unwrap();
            }
        });
        writer.join().unwrap();
    });
}

/// After the runtime shuts down, I/O on its sockets is an error, not a hang; with no runtime,
/// resources say what to do.
pub fn io_after_shutdown_and_outside_a_runtime(make: Make) {
    within(LIMIT, move || {
        let rt = rt(make, 2);
        let (a, _b) = {
            let _g = rt.enter();
            UnixStream::pair().unwrap()
        };
        drop(rt);
        let mut a = a;
        let err = futures_lite::future::block_on(a.read(&mut [0u8; 4])).unwrap_err();
        assert!(err.to_string().contains("shut down"), "{err}");

        let err = futures_lite::future::block_on(TcpListener::bind("127.0.0.1:0")).unwrap_err();
        assert!(err.to_string().contains("inside a runtime"), "{err}");
        let p = std::panic::catch_unwind(|| time::sleep(Duration::from_millis(1))).unwrap_err();
        assert!(
            panic_message(&*p).contains("outside a runtime"),
            "{}",
            panic_message(&*p)
        );
    });
}

/// `Interval` keeps its schedule (burst), restarts it (delay) or skips ticks (skip).
pub fn interval_missed_tick_behaviours(make: Make) {
    within(LIMIT, move || {
        let rt = make(0).start_paused(true).build().unwrap();
        rt.block_on(async {
            let period = Duration::from_millis(10);
            for (behavior, expect) in [
                (time::MissedTickBehavior::Burst, [0u64, 10, 20, 30, 40]),
                // The late tick reports its scheduled time; the schedule restarts from then.
                (time::MissedTickBehavior::Delay, [0, 10, 45, 55, 65]),
                (time::MissedTickBehavior::Skip, [0, 10, 40, 50, 60]),
            ] {
                let start = time::now();
                let mut iv = time::interval(period);
                iv.set_missed_tick_behavior(behavior);
                let mut got = vec![iv.tick().await];
                time::advance(Duration::from_millis(35)).await; // miss ticks 10, 20, 30
                for _ in 0..4 {
                    got.push(iv.tick().await);
                }
                let ms: Vec<u64> = got
                    .iter()
                    .map(|t| t.duration_since(start).as_millis() as u64)
                    .collect();
                assert_eq!(ms, expect, "{behavior:?}");
            }
            // Duration::MAX saturates instead of overflowing.
            let s = time::sleep(Duration::MAX);
            assert!(s.deadline() > time::now());
        });
    });
}

/// Many short real-time sleeps, round after round: every one completes. (A driver that blocks
/// after waking tasks onto its own queue hangs here: found by the timers_light benchmark.)
pub fn many_short_sleeps_all_complete(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            for round in 0..size("CONFORMANCE_SLEEP_ROUNDS", 20) {
                rt.block_on(async move {
                    let hs: Vec<_> = (0..500u64)
                        .map(|i| {
                            facade::spawn(async move {
                                let d = Duration::from_micros(
                                    200 + (i * 37 + round as u64 * 11) % 3_000,
                                );
                                let deadline = Instant::now() + d;
                                time::sleep(d).await;
                                assert!(Instant::now() >= deadline, "woke early");
                            })
                        })
                        .collect();
                    for h in hs {
                        h.await.unwrap();
                    }
                });
            }
        }
    });
}

/// Host names are looked up on the blocking pool, never on an async worker; IP literals are
/// parsed in place (the pool starts no thread for them); outside a runtime, a lookup says where
/// to do it.
pub fn host_names_resolve_on_the_blocking_pool(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = listener.local_addr().unwrap().port();
                let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                let (mut s, _) = listener.accept().await.unwrap();
                assert_eq!(
                    facade::Handle::current().blocking_metrics().started,
                    0,
                    "an IP literal needs no lookup"
                );

                let addrs: Vec<_> = facade::net::lookup_host(format!("localhost:{port}"))
                    .await
                    .unwrap()
                    .collect();
                assert!(!addrs.is_empty());
                assert!(
                    addrs
                        .iter()
                        .all(|a| a.ip().is_loopback() && a.port() == port)
                );
                assert!(
                    facade::Handle::current().blocking_metrics().started >= 1,
                    "the lookup ran on the blocking pool"
                );
                // A name works wherever an address does (this one may resolve to ::1 first,
                // where nothing listens: connect tries each address).
                drop(TcpStream::connect(("localhost", port)).await.unwrap());
                c.write_all(b"ok").await.unwrap();
                let mut buf = [0u8; 2];
                s.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"ok");
            });
        }
        let err =
            futures_lite::future::block_on(facade::net::lookup_host("localhost:80")).unwrap_err();
        assert!(err.to_string().contains("inside a runtime"), "{err}");
    });
}
